"""The /metrics endpoint (token, 404 when off) and what the infrastructure layers count."""

import os
import secrets
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path

import pytest
from django.db import OperationalError
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import path
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from carenotes.core import metrics
from carenotes.core.cache import cache_get, cache_set
from carenotes.core.resilience import DatabaseUnavailableMiddleware

ROOT = Path(__file__).resolve().parents[3]
METRICS_URL = "/metrics"
TOKEN = secrets.token_urlsafe(32)
REQUESTS = "carenotes_http_request_duration_seconds_count"
# Nothing listens on port 1 (only root could bind it): a Redis that is down, refused at once.
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


def _lost_connection(request):
    raise OperationalError("server closed the connection unexpectedly")


# Routes of the tests below (pytest.mark.urls points here).
urlpatterns = [
    path("lost", _lost_connection, name="lost-connection"),
    path("metrics", metrics.metrics_view, name=metrics.METRICS_ROUTE),
]


def sample(name: str, **labels: str) -> float:
    """Return a sample of this process's registry, 0 when it was never counted."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


def _scrape(client, token: str = TOKEN):
    return client.get(METRICS_URL, headers={"Authorization": f"Bearer {token}"})


def test_metrics_are_404_while_no_token_is_set(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get(METRICS_URL).status_code == HTTPStatus.NOT_FOUND
    assert _scrape(client).status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("header", [None, "", "Bearer", f"Token {TOKEN}", f"Bearer {TOKEN} x"])
def test_metrics_without_a_bearer_token_are_401_saying_what_to_send(client, metrics_on, header):
    headers = {"Authorization": header} if header is not None else {}
    response = client.get(METRICS_URL, headers=headers)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {"detail": metrics.METRICS_UNAUTHORIZED_DETAIL}
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


@pytest.mark.parametrize("wrong", [TOKEN[:-1], TOKEN + "x", TOKEN.upper(), "é" * 40])
def test_metrics_with_a_wrong_token_are_403(client, metrics_on, wrong):
    response = _scrape(client, wrong)
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.json() == {"detail": metrics.METRICS_FORBIDDEN_DETAIL}


def test_metrics_with_the_token_are_the_prometheus_text_format(client, metrics_on):
    response = _scrape(client)
    assert response.status_code == HTTPStatus.OK
    assert response["Content-Type"].startswith("text/plain; version=")
    families = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {
        "carenotes_http_request_duration_seconds",
        "carenotes_stats_cache_requests",
        "carenotes_stats_herd_waits",
        "carenotes_throttled_requests",
        "carenotes_backend_errors",
        "carenotes_token_auth_failures",
        "carenotes_idempotent_replays",
    } <= families


def test_metrics_answer_get_and_head_only(client, metrics_on):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    assert client.head(METRICS_URL, headers=headers).status_code == HTTPStatus.OK
    assert client.post(METRICS_URL, headers=headers).status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_scrapes_are_not_counted_as_requests(client, metrics_on):
    before = sample(REQUESTS, route=metrics.METRICS_ROUTE, method="GET", status="200")
    for _ in range(3):
        assert _scrape(client).status_code == HTTPStatus.OK
    assert sample(REQUESTS, route=metrics.METRICS_ROUTE, method="GET", status="200") == before


def test_each_request_is_counted_once_by_route_method_and_status(client):
    labels = {"route": "healthz", "method": "GET", "status": "200"}
    before = sample(REQUESTS, **labels)
    slow_before = sample("carenotes_http_request_duration_seconds_bucket", le="10.0", **labels)
    for _ in range(2):
        client.get("/healthz")
    assert sample(REQUESTS, **labels) == before + 2
    # Every observation falls in the last finite bucket (all of them are under 10 s).
    assert sample("carenotes_http_request_duration_seconds_bucket", le="10.0", **labels) == (
        slow_before + 2
    )


def test_unrouted_requests_and_odd_methods_cannot_add_series(client):
    unmatched = {"route": metrics.UNMATCHED_ROUTE, "method": "GET", "status": "404"}
    before = sample(REQUESTS, **unmatched)
    client.get("/no-such-page")
    client.get("/another-page-that-does-not-exist")
    assert sample(REQUESTS, **unmatched) == before + 2

    other = {"route": "healthz", "method": metrics.OTHER_METHOD, "status": "200"}
    before = sample(REQUESTS, **other)
    client.generic("BREW", "/healthz")
    client.generic("PROPFIND", "/healthz")
    assert sample(REQUESTS, **other) == before + 2


@pytest.mark.urls(__name__)
def test_a_lost_database_connection_is_counted_where_it_became_a_503(client):
    labels = {"backend": metrics.BACKEND_POSTGRESQL, "site": metrics.SITE_REQUEST}
    before = sample("carenotes_backend_errors_total", **labels)
    response = client.get("/lost")
    assert response.status_code == HTTPStatus.SERVICE_UNAVAILABLE
    assert sample("carenotes_backend_errors_total", **labels) == before + 1
    assert sample(REQUESTS, route="lost-connection", method="GET", status="503") >= 1


def test_the_middleware_alone_counts_one_database_error():
    labels = {"backend": metrics.BACKEND_POSTGRESQL, "site": metrics.SITE_REQUEST}
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())
    request = RequestFactory().get("/")
    before = sample("carenotes_backend_errors_total", **labels)
    assert middleware.process_exception(request, ValueError("not a database error")) is None
    middleware.process_exception(request, OperationalError("gone"))
    assert sample("carenotes_backend_errors_total", **labels) == before + 1


def test_degraded_cache_calls_are_counted_as_redis_errors(settings):
    labels = {"backend": metrics.BACKEND_REDIS, "site": metrics.SITE_CACHE}
    before = sample("carenotes_backend_errors_total", **labels)
    cache_set("metrics-test", 1, 30)
    assert cache_get("metrics-test") == 1
    assert sample("carenotes_backend_errors_total", **labels) == before

    dead = {"default": {**settings.CACHES["default"], "LOCATION": DEAD_REDIS_URL}}
    with override_settings(CACHES=dead):
        assert cache_get("metrics-test") is None
        cache_set("metrics-test", 2, 30)
    assert sample("carenotes_backend_errors_total", **labels) == before + 2


def test_the_idempotent_replays_counter_is_exposed_for_the_idempotency_feature(client, metrics_on):
    before = sample("carenotes_idempotent_replays_total")
    metrics.IDEMPOTENT_REPLAYS.inc()
    assert sample("carenotes_idempotent_replays_total") == before + 1
    assert b"carenotes_idempotent_replays_total" in _scrape(client).content


def test_metrics_are_scraped_over_plain_http_even_with_the_https_redirect_on(client, settings):
    settings.METRICS_TOKEN = TOKEN
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == HTTPStatus.OK  # exempt, like /metrics
    assert _scrape(client).status_code == HTTPStatus.OK
    assert client.get("/no-such-page").status_code == HTTPStatus.MOVED_PERMANENTLY


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_multiprocess_directory_means_one_process_and_writes_no_file(tmp_path, value):
    # docker compose passes PROMETHEUS_MULTIPROC_DIR= from .env to manage.py commands too.
    script = (
        "from carenotes.core import metrics; from prometheus_client import values; "
        "metrics.IDEMPOTENT_REPLAYS.inc(); print(values.ValueClass.__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": value, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "MutexValue"), result.stderr
    assert list(tmp_path.iterdir()) == []
