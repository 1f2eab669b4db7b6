"""Redis access that degrades instead of failing: a dead cache costs a miss, never a 500."""

import logging
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django_redis import get_redis_connection
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from carenotes.core.metrics import BACKEND_REDIS, SITE_CACHE, backend_error

logger = logging.getLogger(__name__)

CACHE_ERRORS = (ConnectionInterrupted, RedisError, OSError)


def cache_get(key: str) -> Any:
    """Return the cached value, or None when absent or Redis is unreachable."""
    try:
        return cache.get(key)
    except CACHE_ERRORS as exc:
        backend_error(backend=BACKEND_REDIS, site=SITE_CACHE)
        logger.warning("cache get %s failed: %s", key, exc)
        return None


def cache_get_many(keys: list[str]) -> dict[str, Any]:
    """Return the cached values found for ``keys`` in one round trip ({} if Redis is down)."""
    try:
        return cache.get_many(keys)
    except CACHE_ERRORS as exc:
        backend_error(backend=BACKEND_REDIS, site=SITE_CACHE)
        logger.warning("cache get of %d keys failed: %s", len(keys), exc)
        return {}


def cache_set(key: str, value: Any, timeout: int) -> None:
    """Store ``value``; a Redis failure is logged and otherwise ignored."""
    try:
        cache.set(key, value, timeout)
    except CACHE_ERRORS as exc:
        backend_error(backend=BACKEND_REDIS, site=SITE_CACHE)
        logger.warning("cache set %s failed: %s", key, exc)


def cache_delete_many(keys: list[str]) -> None:
    """Delete ``keys``; a Redis failure is logged (entries then expire by TTL)."""
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except CACHE_ERRORS as exc:
        backend_error(backend=BACKEND_REDIS, site=SITE_CACHE)
        logger.warning("cache delete of %d keys failed: %s", len(keys), exc)


# The one definition of a counter with a lifetime: INCR, then (re)set the lifetime, in Lua so
# both run atomically in one round trip. Refreshing the lifetime at every count keeps a busy
# counter alive (a version counter must never restart under entries stamped with its old
# values). Scripts that count as part of a larger lookup (stats.fastpath) include it.
COUNTER_INCR_LUA = """
local function counter_incr(key, seconds)
  local count = redis.call('INCR', key)
  redis.call('EXPIRE', key, seconds)
  return count
end
"""
_COUNTER_INCR_SCRIPT = COUNTER_INCR_LUA + "return counter_incr(KEYS[1], ARGV[1])"


def counter_incr(*, redis_key: str, seconds: int) -> int:
    """Count one at ``redis_key`` (cache prefix already applied) and return the new count.

    The counter lives ``seconds`` after its latest count. Raises one of CACHE_ERRORS when
    Redis is unreachable: callers decide how to degrade.
    """
    script = get_redis_connection("default").register_script(_COUNTER_INCR_SCRIPT)
    return script(keys=[redis_key], args=[seconds])


def now_and_after_commit(action: Callable[[], None]) -> None:
    """Run ``action`` now and again after the current transaction commits.

    For cache invalidation: now, because the change is visible to this transaction's own
    reads; after commit, because a concurrent request may re-cache the old state in between.
    """
    action()
    transaction.on_commit(action)
