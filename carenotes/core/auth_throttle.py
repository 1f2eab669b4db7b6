"""Token guessing, throttled per address before the lookup: 429 once too many tokens failed.

Every failed API token lookup (unknown, revoked or expired key) counts once in a fixed
window of the caller's address (carenotes.core.client_address; an IPv6 address counts for
its /64, which one client usually holds whole), in Redis with the same counter and window as
the per-user throttle (carenotes.core.throttling). The rate is ``AUTH_FAILURE_THROTTLE_RATE``
(``THROTTLE_RATE_AUTH_FAILURES``, e.g. ``30/m``; ``off`` disables it).

Once an address has spent its budget, every request from it that presents a token is
answered 429 with Retry-After until the window ends, *before* the token is looked up — a good
token too. So a locked address learns nothing from its guesses (no 200 among the 429s) and
costs no database lookup. Good tokens seen succeed before are still answered by the stats
warm-hit path (stats.fastpath), which looks nothing up and so is no oracle to a guesser.

The check is one Redis GET per request that presents a token on the full (DRF) path; the
count one INCR per failed lookup. Redis unreachable: let through, counted in the metrics.
"""

import ipaddress
import logging

from django.conf import settings
from django_redis import get_redis_connection
from rest_framework.exceptions import Throttled

from carenotes.core.cache import CACHE_ERRORS
from carenotes.core.client_address import client_address
from carenotes.core.metrics import (
    BACKEND_REDIS,
    SITE_AUTH_THROTTLE,
    TOKEN_AUTH_FAILURES,
    backend_error,
    throttled,
)
from carenotes.core.throttling import THROTTLE_KEY_PREFIX, ThrottleWindow, fixed_window

logger = logging.getLogger(__name__)

AUTH_FAILURE_SCOPE = "auth_failures"
AUTH_FAILURE_DETAIL = "Too many requests with an invalid API token from your address."
IPV6_GROUP_PREFIX = 64


def address_group(address: str) -> str:
    """Return what an address is counted as: itself (IPv4), or its /64 network (IPv6)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 4:
        return str(parsed)
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.ip_network(f"{parsed}/{IPV6_GROUP_PREFIX}", strict=False))


def auth_failure_key(*, group: str, window: int) -> str:
    """Return the cache key counting one address group's failed token lookups in one window."""
    return f"{THROTTLE_KEY_PREFIX}:{AUTH_FAILURE_SCOPE}:{group}:{window}"


def _window(request) -> ThrottleWindow | None:
    rate = settings.AUTH_FAILURE_THROTTLE_RATE
    if rate is None:
        return None
    group = address_group(client_address(request))
    return fixed_window(rate=rate, key=lambda index: auth_failure_key(group=group, window=index))


def _refuse(window: ThrottleWindow) -> None:
    throttled(scope=AUTH_FAILURE_SCOPE)
    raise Throttled(wait=window.retry_after(), detail=AUTH_FAILURE_DETAIL)


def auth_failures_check(request) -> ThrottleWindow | None:
    """Raise Throttled (429) if the caller's address has no failed lookups left this window.

    Call before looking a token up; returns the window to count a failure in (None: off).
    """
    window = _window(request)
    if window is None:
        return None
    try:
        count = int(get_redis_connection("default").get(window.key) or 0)
    except CACHE_ERRORS as exc:
        backend_error(backend=BACKEND_REDIS, site=SITE_AUTH_THROTTLE)
        logger.warning("token guessing check unavailable, request let through: %s", exc)
        return window
    if count >= window.limit:
        _refuse(window)
    return window


def auth_failure_count(window: ThrottleWindow | None) -> None:
    """Count one failed token lookup; raise Throttled (429) when it exceeds the budget."""
    TOKEN_AUTH_FAILURES.inc()
    if window is None:
        return
    try:
        count = window.count()
    except CACHE_ERRORS as exc:
        backend_error(backend=BACKEND_REDIS, site=SITE_AUTH_THROTTLE)
        logger.warning("token guessing count unavailable: %s", exc)
        return
    if count > window.limit:
        _refuse(window)
