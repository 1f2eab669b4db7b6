"""Probes: liveness (no dependencies) and readiness (PostgreSQL and Redis reachable)."""

import logging
from http import HTTPStatus

from django.db import DatabaseError, connections
from django.http import HttpRequest, JsonResponse
from django_redis import get_redis_connection

from carenotes.core.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)

DATABASE_ALIAS = "default"
CACHE_ALIAS = "default"
CHECK_OK = "ok"
# The body names the failing dependency but not why: the probe is unauthenticated, and
# host names or driver messages belong in the log, not in a public answer.
CHECK_UNREACHABLE = "unreachable"


def healthz(request: HttpRequest) -> JsonResponse:
    """Return 200 while the process can serve requests."""
    return JsonResponse({"status": "ok"})


def postgresql_check() -> str:
    """Return ``CHECK_OK`` when ``SELECT 1`` succeeds on the default database."""
    # The request's own (persistent or pooled) connection: a probe must not open a new one
    # each time. Its connect timeout is DATABASE_CONNECT_TIMEOUT.
    try:
        with connections[DATABASE_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("readiness: PostgreSQL unreachable: %s", exc)
        return CHECK_UNREACHABLE
    return CHECK_OK


def redis_check() -> str:
    """Return ``CHECK_OK`` when Redis answers ``PING`` (within REDIS_SOCKET_TIMEOUT)."""
    try:
        get_redis_connection(CACHE_ALIAS).ping()
    except CACHE_ERRORS as exc:
        logger.warning("readiness: Redis unreachable: %s", exc)
        return CHECK_UNREACHABLE
    return CHECK_OK


def readyz(request: HttpRequest) -> JsonResponse:
    """Return 200 when PostgreSQL and Redis answer, else 503 naming the failing ones."""
    checks = {"postgresql": postgresql_check(), "redis": redis_check()}
    failing = sorted(name for name, result in checks.items() if result != CHECK_OK)
    if failing:
        return JsonResponse(
            {"status": "unavailable", "failing": failing, "checks": checks},
            status=HTTPStatus.SERVICE_UNAVAILABLE,
        )
    return JsonResponse({"status": "ok", "checks": checks})
