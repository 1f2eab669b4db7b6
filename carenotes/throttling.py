"""Per-user, per-endpoint request throttling: a fixed window counted in the shared Redis.

DRF's ``SimpleRateThrottle`` keeps a list of timestamps per key and costs a GET and a SET
of that list per request. Here a request costs one pipelined ``INCR`` + ``EXPIRE`` (one
Redis round trip, a few bytes). A fixed window lets a client send up to twice the rate
across a window boundary; for a guard against runaway clients that is an acceptable price.

Redis unreachable: the request is let through and a warning logged (fail open). Throttling
protects capacity; it must never turn a Redis outage into an API outage.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection
from rest_framework.throttling import BaseThrottle

from tenants.cache import CACHE_ERRORS

logger = logging.getLogger(__name__)

# Seconds per period letter, as in DRF's "<count>/<period>" rate strings.
THROTTLE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
THROTTLE_KEY_PREFIX = "throttle"
# Scopes the views use; the rates come from settings.THROTTLE_RATES (environment).
SCOPE_STATS = "stats"
SCOPE_NOTES_READ = "notes_read"
SCOPE_NOTES_WRITE = "notes_write"
SCOPE_ME = "me"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The clock windows are cut from; tests pin it to assert exact Retry-After values.
clock = time.time


class ThrottleRateError(ValueError):
    """A rate string that is not ``<positive count>/<s|m|h|d>``."""


def throttle_rate_parse(rate: str) -> tuple[int, int]:
    """Return ``(requests, window_seconds)`` of a rate such as ``"600/m"``."""
    count_text, _, period = rate.partition("/")
    seconds = THROTTLE_PERIODS.get(period[:1].lower()) if period else None
    if not count_text.isdigit() or int(count_text) < 1 or seconds is None:
        raise ThrottleRateError(
            f"Throttle rates look like 600/m (count per s, m, h or d), got {rate!r}."
        )
    return int(count_text), seconds


def throttle_key(*, scope: str, user_id: int, window: int) -> str:
    """Return the cache key counting one user's requests to one scope in one window."""
    return f"{THROTTLE_KEY_PREFIX}:{scope}:{user_id}:{window}"


def view_throttle_scope(view, method: str) -> str | None:
    """Return the view's scope for ``method``: ``throttle_scope``, or by safe/unsafe method."""
    if method in SAFE_METHODS:
        return getattr(view, "throttle_scope", None)
    return getattr(view, "throttle_scope_write", None) or getattr(view, "throttle_scope", None)


class RedisFixedWindowThrottle(BaseThrottle):
    """Limit each authenticated user to the rate of the view's scope; 429 with Retry-After.

    Views name their scope in ``throttle_scope`` (and ``throttle_scope_write`` for unsafe
    methods when writes have their own budget). Views without a scope, or a scope without a
    rate, are not throttled. Anonymous requests are rejected by authentication first.
    """

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request, view) -> bool:
        scope = view_throttle_scope(view, request.method)
        rate = settings.THROTTLE_RATES.get(scope) if scope else None
        user_id = getattr(request.user, "pk", None)
        if rate is None or user_id is None:
            return True
        limit, window_seconds = throttle_rate_parse(rate)
        now = clock()
        window = int(now // window_seconds)
        key = cache.make_key(throttle_key(scope=scope, user_id=user_id, window=window))
        try:
            count = self._count(key, window_seconds)
        except CACHE_ERRORS as exc:
            logger.warning("throttle %s unavailable, request let through: %s", scope, exc)
            return True
        if count <= limit:
            return True
        self.retry_after = (window + 1) * window_seconds - now
        return False

    @staticmethod
    def _count(key: str, window_seconds: int) -> int:
        # One round trip; the key outlives its window by a second so a late INCR never
        # recreates it without a lifetime.
        pipe = get_redis_connection("default").pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, window_seconds + 1)
        count, _ = pipe.execute()
        return count

    def wait(self) -> float | None:
        return self.retry_after
