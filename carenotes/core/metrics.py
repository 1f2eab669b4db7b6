"""Prometheus metrics: the metric objects the layers increment, and the ``/metrics`` endpoint.

Under gunicorn every worker process counts for itself: prometheus_client's multiprocess mode
keeps each process's samples in files under ``PROMETHEUS_MULTIPROC_DIR`` and the endpoint
sums them at scrape time (gunicorn.conf.py names and empties the directory and merges a dead
worker's files away: carenotes/core/metrics_files.py). The mode is chosen when
prometheus_client is imported, so the variable must be in the environment before the app
loads. Without it (tests, ``manage.py shell``) the samples live in this process only.

Increments cost a few microseconds (docs/OPERATIONS.md, "Cost"): label children are bound
once and reused, never looked up per request.

docs/OPERATIONS.md lists the metrics, the PromQL of the SLOs and the alert rules.
"""

import os
import secrets
from http import HTTPStatus

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
if not os.environ.get(MULTIPROC_DIR_VARIABLE, "").strip():
    # Empty means unset, as for every variable (carenotes/env.py): prometheus_client would
    # read an empty value as "multiprocess mode, files in the current directory".
    os.environ.pop(MULTIPROC_DIR_VARIABLE, None)
else:
    # It must exist before the first sample is written (an unlabelled metric writes one when
    # it is created, below).
    os.makedirs(os.environ[MULTIPROC_DIR_VARIABLE], exist_ok=True)

from prometheus_client import (  # noqa: E402 (after the directory exists)
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

from carenotes.core.metrics_files import metrics_files_locked  # noqa: E402

# The route name of /metrics (carenotes/urls.py). Scrapes are not counted as requests: a
# scrape every few seconds would be most of a quiet service's traffic.
METRICS_ROUTE = "metrics"
# The route label of a request no URL pattern matched: 404s, static files, and answers a
# middleware gave before routing (413, the query-string 400, HTTPS redirects).
UNMATCHED_ROUTE = "unmatched"
# Methods are a label; anything else a client sends is one value, so it cannot add series.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
# Seconds. Warm stats hits take about a millisecond; misses and writes tens of milliseconds.
REQUEST_DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# The outcome label of STATS_HERD_WAITS.
HERD_WAIT_SERVED = "served"  # the lock holder's answer arrived while waiting
HERD_WAIT_COMPUTED = "computed"  # it did not (in time): the waiter computed itself

BACKEND_POSTGRESQL = "postgresql"
BACKEND_REDIS = "redis"
# Where an error was caught and degraded (the ``site`` label of BACKEND_ERRORS).
SITE_REQUEST = "request"  # a view's database connection died: 503 (carenotes.core.resilience)
SITE_CACHE = "cache"  # a cache read or write skipped (carenotes.core.cache)
SITE_THROTTLE = "throttle"  # a throttle count skipped, request let through
SITE_AUTH_THROTTLE = "auth_throttle"  # the token-guessing check or count skipped
SITE_STATS_CACHE = "stats_cache"  # stats answered from PostgreSQL (X-Cache: BYPASS)
SITE_WARM_HIT = "warm_hit"  # the warm-hit lookup failed; the request took the full path

REQUEST_DURATION = Histogram(
    "carenotes_http_request_duration_seconds",
    "Seconds from the first middleware to the response, by route, method and status; "
    "its _count is the request count.",
    ["route", "method", "status"],
    buckets=REQUEST_DURATION_BUCKETS,
)
STATS_CACHE_REQUESTS = Counter(
    "carenotes_stats_cache_requests",
    "Daily stats answers by where they came from: HIT (Redis, warm-hit path included), "
    "MISS (computed and stored), BYPASS (computed, the cache off or Redis unavailable).",
    ["result"],
)
STATS_HERD_WAITS = Counter(
    "carenotes_stats_herd_waits",
    "Stats requests that waited for another request computing the same answer: served "
    "(its answer arrived) or computed (it did not arrive in time, so computed again).",
    ["outcome"],
)
THROTTLED_REQUESTS = Counter(
    "carenotes_throttled_requests",
    "Requests refused with 429, by throttle scope (auth_failures: token guessing per "
    "address; signin_lockout: session sign-in locked out).",
    ["scope"],
)
BACKEND_ERRORS = Counter(
    "carenotes_backend_errors",
    "PostgreSQL and Redis errors caught and degraded, by backend and where they were caught.",
    ["backend", "site"],
)
TOKEN_AUTH_FAILURES = Counter(
    "carenotes_token_auth_failures",
    "API token lookups that failed (unknown, revoked or expired token).",
)
# For idempotency keys on POST /api/notes/: a request whose key was seen before is answered
# with the stored response instead of being executed again. The feature increments this
# (IDEMPOTENT_REPLAYS.inc()) each time it sends such a replay.
IDEMPOTENT_REPLAYS = Counter(
    "carenotes_idempotent_replays",
    "Requests answered with the stored response of an earlier request with the same "
    "Idempotency-Key, not executed again.",
)

# The histogram child of each (route, method, status) seen, bound once.
_request_children: dict[tuple[str | None, str, int], Histogram] = {}


def request_observe(*, route: str | None, method: str, status: int, seconds: float) -> None:
    """Count one request of ``route`` (a URL name, None when none matched) and its duration."""
    if route == METRICS_ROUTE:
        return
    if method not in HTTP_METHODS:
        method = OTHER_METHOD
    key = (route, method, status)
    child = _request_children.get(key)
    if child is None:
        # Bounded: route names x methods x statuses. Two threads may both bind a child; the
        # client returns the same one to both.
        child = REQUEST_DURATION.labels(route or UNMATCHED_ROUTE, method, str(status))
        _request_children[key] = child
    child.observe(seconds)


def backend_error(*, backend: str, site: str) -> None:
    """Count one PostgreSQL or Redis error that was caught at ``site`` and degraded."""
    BACKEND_ERRORS.labels(backend, site).inc()


def throttled(*, scope: str) -> None:
    """Count one request refused with 429 in throttle ``scope``."""
    THROTTLED_REQUESTS.labels(scope).inc()


def metrics_exposition() -> bytes:
    """Return the metrics in Prometheus' text format: every worker's summed, or this process's."""
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    # Not while gunicorn's master merges a dead worker's files into the archives.
    with metrics_files_locked(directory, shared=True):
        return generate_latest(registry)


METRICS_UNAUTHORIZED_DETAIL = (
    "Metrics need the scrape token: send 'Authorization: Bearer <METRICS_TOKEN>'."
)
METRICS_FORBIDDEN_DETAIL = (
    "Wrong metrics token: send the value of the server's METRICS_TOKEN as the Bearer token."
)
BEARER_SCHEME = b"bearer"


def _bearer_token(header: str) -> bytes | None:
    parts = header.encode("latin-1", "replace").split()
    if len(parts) != 2 or parts[0].lower() != BEARER_SCHEME:
        return None
    return parts[1]


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Serve the metrics to ``Authorization: Bearer <METRICS_TOKEN>``; 404 while it is unset."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404
    presented = _bearer_token(request.META.get("HTTP_AUTHORIZATION", ""))
    if presented is None:
        response = JsonResponse(
            {"detail": METRICS_UNAUTHORIZED_DETAIL}, status=HTTPStatus.UNAUTHORIZED
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not secrets.compare_digest(presented, token.encode()):
        return JsonResponse({"detail": METRICS_FORBIDDEN_DETAIL}, status=HTTPStatus.FORBIDDEN)
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)
