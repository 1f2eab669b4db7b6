"""Redis access that degrades instead of failing: a dead cache costs a miss, never a 500."""

import logging
from typing import Any

from django.core.cache import cache
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

CACHE_ERRORS = (ConnectionInterrupted, RedisError, OSError)


def cache_get(key: str) -> Any:
    """Return the cached value, or None when absent or Redis is unreachable."""
    try:
        return cache.get(key)
    except CACHE_ERRORS as exc:
        logger.warning("cache get %s failed: %s", key, exc)
        return None


def cache_get_many(keys: list[str]) -> dict[str, Any]:
    """Return the cached values found for ``keys`` in one round trip ({} if Redis is down)."""
    try:
        return cache.get_many(keys)
    except CACHE_ERRORS as exc:
        logger.warning("cache get of %d keys failed: %s", len(keys), exc)
        return {}


def cache_set(key: str, value: Any, timeout: int) -> None:
    """Store ``value``; a Redis failure is logged and otherwise ignored."""
    try:
        cache.set(key, value, timeout)
    except CACHE_ERRORS as exc:
        logger.warning("cache set %s failed: %s", key, exc)


def cache_delete_many(keys: list[str]) -> None:
    """Delete ``keys``; a Redis failure is logged (entries then expire by TTL)."""
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except CACHE_ERRORS as exc:
        logger.warning("cache delete of %d keys failed: %s", len(keys), exc)
