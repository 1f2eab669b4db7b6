"""Writes for the analytics: stale cached answers when care notes change; rollup repair."""

import logging
from datetime import date

from django.core.cache import cache
from django.db import connection, transaction

from carenotes.core.cache import CACHE_ERRORS, counter_incr

logger = logging.getLogger(__name__)

# Counters expire when their (tenant, day) sees no write for this long. That is safe because
# it is far longer than any stats entry lives (stats.cache.STATS_TTL_PAST): no entry stamped
# with an old counter value can outlive the counter and be mistaken for fresh.
STATS_COUNTER_TTL = 86_400


def care_stats_version_key(*, tenant_id: int, day: date) -> str:
    """Redis key of the (tenant, local day) version that is part of every stats cache key."""
    return f"stats:ver:{tenant_id}:{day.isoformat()}"


def care_stats_generation_key(*, tenant_id: int) -> str:
    """Redis key of the per-tenant generation that is part of every stats cache key."""
    return f"stats:gen:{tenant_id}"


def _incr(key: str) -> None:
    try:
        # make_key applies the cache's KEY_PREFIX and version so that cache.get()/get_many()
        # read the same counter.
        counter_incr(redis_key=cache.make_key(key), seconds=STATS_COUNTER_TTL)
    except CACHE_ERRORS as exc:
        logger.warning("stats invalidation of %s failed: %s", key, exc)


def care_stats_invalidate(*, tenant_id: int, day: date) -> None:
    """Make every cached stats answer for (tenant, local ``day``) stale at once."""
    _incr(care_stats_version_key(tenant_id=tenant_id, day=day))


def care_stats_invalidate_tenant(*, tenant_id: int) -> None:
    """Make every cached stats answer of a tenant stale (after bulk loads)."""
    _incr(care_stats_generation_key(tenant_id=tenant_id))


# The rollups' repair (stats migration 0003): under the tenant's exclusive rollup lock,
# delete its rollup rows and recount them from its notes.
ROLLUP_REBUILD_SQL = "SELECT stats_rollups_rebuild(%(tenant_id)s::bigint)"


def care_rollups_rebuild(*, tenant_id: int) -> None:
    """Recount the tenant's day rollups from its notes, in a transaction of their own.

    Safe while the service writes: the rebuild waits for the tenant's in-flight writers and
    holds its later ones off until it commits (they then apply their change on top). Cached
    answers of the tenant are made stale after commit.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(ROLLUP_REBUILD_SQL, {"tenant_id": tenant_id})
        transaction.on_commit(lambda: care_stats_invalidate_tenant(tenant_id=tenant_id))
