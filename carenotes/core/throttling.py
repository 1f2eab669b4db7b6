"""Per-user, per-endpoint request throttling: a fixed window counted in the shared Redis.

DRF's ``SimpleRateThrottle`` keeps a list of timestamps per key and costs a GET and a SET
of that list per request. Here a request costs one counter increment with its lifetime
(``carenotes.core.cache.counter_incr``: one Redis round trip, a few bytes). A fixed window
lets a client send up to twice the rate across a window boundary; for a guard against
runaway clients that is an acceptable price.

Redis unreachable: the request is let through and a warning logged (fail open). Throttling
protects capacity; it must never turn a Redis outage into an API outage.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from carenotes.core.cache import CACHE_ERRORS, counter_incr
from carenotes.core.metrics import BACKEND_REDIS, SITE_THROTTLE, backend_error, throttled
from carenotes.core.request_state import request_state

logger = logging.getLogger(__name__)

# Seconds per period letter, as in DRF's "<count>/<period>" rate strings.
THROTTLE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
THROTTLE_KEY_PREFIX = "throttle"
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


@dataclass(frozen=True)
class ThrottleWindow:
    """The fixed window a request of one user to one scope is counted in."""

    key: str  # Redis key, cache prefix applied
    limit: int
    seconds: int
    index: int
    now: float

    @property
    def key_lifetime(self) -> int:
        # The key outlives its window by a second so a late count never outlives it unset.
        return self.seconds + 1

    def retry_after(self) -> float:
        return (self.index + 1) * self.seconds - self.now

    def count(self) -> int:
        """Count one request in this window and return the window's count (raises CACHE_ERRORS)."""
        return counter_incr(redis_key=self.key, seconds=self.key_lifetime)


def fixed_window(*, rate: str, key: Callable[[int], str]) -> ThrottleWindow:
    """Return the window of ``rate`` the clock is in now; ``key(index)`` names its counter."""
    limit, seconds = throttle_rate_parse(rate)
    now = clock()
    index = int(now // seconds)
    return ThrottleWindow(
        key=cache.make_key(key(index)), limit=limit, seconds=seconds, index=index, now=now
    )


def throttle_window(*, scope: str | None, user_id: int | None) -> ThrottleWindow | None:
    """Return the current window for ``user_id`` in ``scope``; None when nothing limits it."""
    rate = settings.THROTTLE_RATES.get(scope) if scope else None
    if rate is None or user_id is None:
        return None
    return fixed_window(
        rate=rate, key=lambda index: throttle_key(scope=scope, user_id=user_id, window=index)
    )


def view_throttle_scope(view, method: str) -> str | None:
    """Return the view's scope for ``method``: ``throttle_scope``, or by safe/unsafe method."""
    if method in SAFE_METHODS:
        return getattr(view, "throttle_scope", None)
    return getattr(view, "throttle_scope_write", None) or getattr(view, "throttle_scope", None)


class RedisFixedWindowThrottle(BaseThrottle):
    """Limit each authenticated user to the rate of the view's scope; 429 with Retry-After.

    A request the warm-hit path already counted carries its count in its RequestState
    (carenotes.core.request_state) and is not counted again.

    Views name their scope in ``throttle_scope`` (and ``throttle_scope_write`` for unsafe
    methods when writes have their own budget). Views without a scope, or a scope without a
    rate, are not throttled. Anonymous requests are rejected by authentication first.
    """

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request, view) -> bool:
        scope = view_throttle_scope(view, request.method)
        window = throttle_window(scope=scope, user_id=getattr(request.user, "pk", None))
        if window is None:
            return True
        counted = request_state(request).throttle_count
        if counted is not None and counted.key == window.key:
            count = counted.count
        else:
            try:
                count = window.count()
            except CACHE_ERRORS as exc:
                backend_error(backend=BACKEND_REDIS, site=SITE_THROTTLE)
                logger.warning("throttle %s unavailable, request let through: %s", scope, exc)
                return True
        if count <= window.limit:
            return True
        throttled(scope=scope)
        self.retry_after = window.retry_after()
        return False

    def wait(self) -> float | None:
        return self.retry_after
