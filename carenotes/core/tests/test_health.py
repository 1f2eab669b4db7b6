"""The probes answer without credentials; readiness names the dependency that is down."""

import socket
from http import HTTPStatus

import pytest
from django.db import connections

from carenotes.core import health


def test_healthz_answers_200_without_credentials(client):
    response = client.get("/healthz")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"status": "ok"}


def _closed_port() -> int:
    """Return a loopback TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_readyz_answers_200_naming_each_dependency(client, django_assert_num_queries):
    with django_assert_num_queries(1):
        response = client.get("/readyz")
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "status": "ok",
        "checks": {"postgresql": health.CHECK_OK, "redis": health.CHECK_OK},
    }


@pytest.mark.django_db
def test_readyz_is_503_naming_redis_when_redis_is_unreachable(client, settings):
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json() == {
        "status": "unavailable",
        "failing": ["redis"],
        "checks": {"postgresql": health.CHECK_OK, "redis": health.CHECK_UNREACHABLE},
    }


@pytest.mark.django_db
def test_readyz_is_503_naming_postgresql_when_postgresql_is_unreachable(client, monkeypatch):
    default = connections[health.DATABASE_ALIAS]
    # A real connection to a closed port: the refusal comes from the operating system.
    unreachable = default.__class__(
        {**default.settings_dict, "HOST": "127.0.0.1", "PORT": str(_closed_port())},
        health.DATABASE_ALIAS,
    )
    monkeypatch.setattr(health, "connections", {health.DATABASE_ALIAS: unreachable})
    response = client.get("/readyz")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert response.json() == {
        "status": "unavailable",
        "failing": ["postgresql"],
        "checks": {"postgresql": health.CHECK_UNREACHABLE, "redis": health.CHECK_OK},
    }
