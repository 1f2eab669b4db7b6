"""Redis cache of stats answers: versioned entries, one computation per cold key, optional Redis.

Freshness. Every entry carries the stamp read *before* it was computed: the tenant
generation and the (tenant, day) version of every day it covers — one for a day answer, one
per day of a range. ``stats.services.care_stats_invalidate`` increments a day's version, so
an entry whose stamp differs from the current counters is stale: a write to any day of a
cached range makes that range stale, and nothing else. A warm hit reads the counters, the
entry and the herd lock in one MGET (one Redis round trip).

Herd protection. The first request that misses takes a short Redis lock (SET NX PX, in the
Lua call that reads the entry again under it) and computes; the others poll the entry for up
to STATS_HERD_WAIT seconds and compute themselves only if it does not arrive (or the lock
holder gave up). A request the warm-hit path already found missing skips the first look.

Redis is optional. Any Redis error makes the request a BYPASS: the answer comes from
PostgreSQL, a warning is logged, and the next request tries Redis again.

Lost invalidations. An increment that fails (Redis unreachable during a write) leaves an
older entry looking fresh. The TTLs bound that: STATS_TTL_TODAY for today and later (the
days that are still being written), STATS_TTL_PAST for past days (late corrections are rare,
and an hour of staleness after a Redis outage is the accepted worst case). A range takes
the lifetime of its last day.
"""

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection

from carenotes.core.cache import CACHE_ERRORS
from carenotes.core.days import local_today
from carenotes.core.metrics import (
    BACKEND_REDIS,
    HERD_WAIT_COMPUTED,
    HERD_WAIT_SERVED,
    SITE_STATS_CACHE,
    STATS_CACHE_REQUESTS,
    STATS_HERD_WAITS,
    backend_error,
)
from stats.selectors import CareRangeStats, CareStats, care_stats_get, care_stats_range_get
from stats.services import care_stats_generation_key, care_stats_version_key
from tenants.principal import TenantInfo

logger = logging.getLogger(__name__)

STATS_TTL_TODAY = 30  # seconds, for today and future days (tenant-local)
STATS_TTL_PAST = 3600  # seconds, for past days
STATS_LOCK_TIMEOUT_MS = 10_000  # the lock frees itself if its holder dies
STATS_HERD_WAIT = 3.0  # seconds a waiter polls for the holder's result
STATS_HERD_POLL = 0.02  # seconds between polls

# Store the entry and release the lock (only if still ours) in one round trip.
_STORE_AND_UNLOCK = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
"""
# Take the lock when it is free, then read the counters, the entry and the lock: one round
# trip for what a miss needs after its first look (a free lock, and a stamp read under it).
_LOCK_AND_LOOKUP = """
local taken = redis.call('SET', KEYS[#KEYS], ARGV[1], 'NX', 'PX', ARGV[2])
return {taken and 1 or 0, redis.call('MGET', unpack(KEYS))}
"""
# Release the lock only if still ours.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""


class CacheStatus(StrEnum):
    HIT = "HIT"
    MISS = "MISS"
    BYPASS = "BYPASS"


# The answers counted by where they came from (the warm-hit path counts its HITs here too).
CACHE_STATUS_COUNTERS = {
    status: STATS_CACHE_REQUESTS.labels(status.value) for status in CacheStatus
}


@dataclass(frozen=True)
class CachedStats:
    """A serialized stats answer, where it came from, and the seconds spent on Redis."""

    data: dict
    status: CacheStatus
    cache_seconds: float


@dataclass(frozen=True)
class _Lookup:
    stamp: list[int]
    data: dict | None
    locked: bool


ALL_FACILITIES = "all"


@dataclass(frozen=True)
class StatsQuestion:
    """What one cached answer is about: a tenant, its local days and the facility scope.

    ``facility_ids`` is the sorted scope the request named, or None for every facility of the
    tenant. A day answer (``date``) and a range answer (``date_from``/``date_to``, or a
    period) are different bodies, so a one-day range is not the day's entry.
    """

    tenant_id: int
    date_from: date
    date_to: date
    facility_ids: tuple[int, ...] | None
    is_range: bool

    @classmethod
    def for_day(
        cls, *, tenant_id: int, day: date, facility_ids: tuple[int, ...] | None
    ) -> "StatsQuestion":
        """Return the question of the day answer for ``day``."""
        return cls(tenant_id, day, day, facility_ids, is_range=False)

    @classmethod
    def for_range(
        cls,
        *,
        tenant_id: int,
        date_from: date,
        date_to: date,
        facility_ids: tuple[int, ...] | None,
    ) -> "StatsQuestion":
        """Return the question of the range answer for ``date_from``..``date_to``."""
        return cls(tenant_id, date_from, date_to, facility_ids, is_range=True)

    def days(self) -> list[date]:
        """Return every local day the answer covers, in order."""
        return [
            self.date_from + timedelta(days=n)
            for n in range((self.date_to - self.date_from).days + 1)
        ]

    def name(self) -> str:
        """Return the part of the entry and lock keys that names this answer."""
        scope = (
            ALL_FACILITIES if self.facility_ids is None else ",".join(map(str, self.facility_ids))
        )
        days = self.date_from.isoformat()
        if self.is_range:
            days += ".." + self.date_to.isoformat()
        return f"{self.tenant_id}:{days}:{scope}"


class _KeyMaker:
    """``cache.make_key`` for many keys at once: the cache's key function, applied once."""

    _SENTINEL = "\x00"

    def __init__(self) -> None:
        self.make_key = cache.make_key  # one lookup of the thread's cache backend
        template = str(self.make_key(self._SENTINEL))
        # The key function embeds the key verbatim (Django's default does): splice keys in.
        # Any other key function is applied key by key.
        self.parts = template.split(self._SENTINEL) if template.count(self._SENTINEL) == 1 else None

    def __call__(self, key: str) -> str:
        if self.parts is None:
            return self.make_key(key)
        return self.parts[0] + key + self.parts[1]


def care_stats_question_keys(question: StatsQuestion) -> list[str]:
    """Return the generation key, the version key of each day, then the entry key.

    Neither the tenant's time zone nor its facility list is part of a key: changing either
    bumps the tenant generation (stats.signals), which makes such entries stale. So a warm
    hit can be looked up from the request alone (stats.fastpath).
    """
    make_key = _KeyMaker()
    tenant_id = question.tenant_id
    return [
        make_key(care_stats_generation_key(tenant_id=tenant_id)),
        *(
            make_key(care_stats_version_key(tenant_id=tenant_id, day=day))
            for day in question.days()
        ),
        make_key(_entry_name(question)),
    ]


def care_stats_entry_key(question: StatsQuestion) -> str:
    """Return the entry key of ``question``, cache prefix applied (the last question key)."""
    return cache.make_key(_entry_name(question))


def _entry_name(question: StatsQuestion) -> str:
    return f"stats:val:{question.name()}"


def care_stats_keys(
    *, tenant_id: int, day: date, facility_ids: tuple[int, ...] | None
) -> tuple[str, str, str]:
    """Return the (generation, version, entry) keys of one day answer, cache prefix applied."""
    question = StatsQuestion.for_day(tenant_id=tenant_id, day=day, facility_ids=facility_ids)
    generation, version, entry = care_stats_question_keys(question)
    return generation, version, entry


def care_stats_entry_data(*, entry: bytes | None, stamp: list[int]) -> dict | None:
    """Return the answer stored in ``entry`` when its stamp is ``stamp`` (fresh), else None."""
    body = care_stats_entry_body(entry=entry, stamp=stamp)
    if body is None:
        return None
    try:
        return json.loads(body)
    except ValueError:
        # Not written by this module: recompute and overwrite.
        logger.warning("unreadable stats cache entry")
        return None


def care_stats_stamp(generation: bytes | None, *versions: bytes | None) -> list[int]:
    """Return the stamp of the counters read: the generation, then each day's version."""
    return [int(generation or 0), *(int(version or 0) for version in versions)]


def care_stats_body(data: dict) -> bytes:
    """Return ``data`` as the API's JSON body: DRF's JSONRenderer output, byte for byte."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _entry_prefix(stamp: list[int]) -> bytes:
    return b'{"stamp":[' + b",".join(b"%d" % counter for counter in stamp) + b'],"data":'


def care_stats_entry_encode(*, stamp: list[int], data: dict) -> bytes:
    """Return the stored form of an answer: its stamp and its body, as one JSON document.

    The body is embedded exactly as it is served, so a warm hit can slice it out instead of
    parsing and re-rendering (care_stats_entry_body).
    """
    return _entry_prefix(stamp) + care_stats_body(data) + b"}"


def care_stats_entry_body(*, entry: bytes | None, stamp: list[int]) -> bytes | None:
    """Return the JSON body stored in ``entry`` when its stamp is ``stamp`` (fresh), else None."""
    prefix = _entry_prefix(stamp)
    if entry is None or not entry.startswith(prefix) or not entry.endswith(b"}"):
        return None
    return entry[len(prefix) : -1]


def care_stats_ttl(*, tenant: TenantInfo, day: date) -> int:
    """Return the entry lifetime: short while the day can still change, long once it is past."""
    if day < local_today(timezone_name=tenant.timezone):
        return STATS_TTL_PAST
    return STATS_TTL_TODAY


class _StatsCache:
    """The Redis round trips of one request, with the time they took.

    ``keys``: generation, the versions, the entry, the lock (the lock is last, the entry
    second to last).
    """

    def __init__(self, *, tenant: TenantInfo, question: StatsQuestion):
        self.redis = get_redis_connection("default")
        self.keys = [
            *care_stats_question_keys(question),
            cache.make_key(f"stats:lock:{question.name()}"),
        ]
        self.ttl = care_stats_ttl(tenant=tenant, day=question.date_to)
        self.token = ""  # set when this request takes the lock; hits never need one
        self.seconds = 0.0

    def _timed(self, call: Callable, *args, **kwargs):
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    @property
    def entry_key(self) -> str:
        return self.keys[-2]

    def lookup(self) -> _Lookup:
        return self._found(self._timed(self.redis.mget, self.keys))

    @staticmethod
    def _found(values: list) -> _Lookup:
        *counters, entry, lock = values
        stamp = care_stats_stamp(*counters)
        data = care_stats_entry_data(entry=entry, stamp=stamp)
        return _Lookup(stamp=stamp, data=data, locked=lock is not None)

    def lock_and_lookup(self) -> tuple[bool, _Lookup]:
        """Take the lock if it is free and look up, atomically: (taken, what was found)."""
        self.token = secrets.token_hex(8)
        script = self.redis.register_script(_LOCK_AND_LOOKUP)
        taken, values = self._timed(
            script, keys=self.keys, args=[self.token, STATS_LOCK_TIMEOUT_MS]
        )
        return bool(taken), self._found(values)

    def unlock(self) -> None:
        script = self.redis.register_script(_UNLOCK)
        self._timed(script, keys=self.keys[-1:], args=[self.token])

    def wait(self) -> _Lookup | None:
        """Poll until the lock holder's entry arrives; None when it gives up or time runs out."""
        deadline = time.monotonic() + STATS_HERD_WAIT
        while time.monotonic() < deadline:
            self._timed(time.sleep, STATS_HERD_POLL)
            found = self.lookup()
            if found.data is not None:
                return found
            if not found.locked:
                return None
        return None

    def store(self, *, stamp: list[int], data: dict) -> None:
        payload = care_stats_entry_encode(stamp=stamp, data=data)
        script = self.redis.register_script(_STORE_AND_UNLOCK)
        self._timed(script, keys=self.keys[-2:], args=[payload, self.ttl, self.token])


def care_stats_get_cached(
    *,
    tenant: TenantInfo,
    day: date,
    facility_ids: tuple[int, ...] | None,
    serialize: Callable[[CareStats], dict],
    known_misses: frozenset[str] = frozenset(),
) -> CachedStats:
    """Return the serialized day answer from Redis when fresh, else computed once and stored.

    ``facility_ids``: the sorted, validated scope the request named; None for every facility
    of the tenant. ``known_misses``: entry keys this request already found absent or stale
    (RequestState.cache_misses): such an entry is not looked up again before the lock.
    """
    return _cached(
        tenant=tenant,
        question=StatsQuestion.for_day(tenant_id=tenant.id, day=day, facility_ids=facility_ids),
        compute=lambda: serialize(
            care_stats_get(tenant=tenant, day=day, facility_ids=facility_ids)
        ),
        known_misses=known_misses,
    )


def care_stats_range_get_cached(
    *,
    tenant: TenantInfo,
    date_from: date,
    date_to: date,
    facility_ids: tuple[int, ...] | None,
    serialize: Callable[[CareRangeStats], dict],
    known_misses: frozenset[str] = frozenset(),
) -> CachedStats:
    """Return the serialized range answer from Redis when fresh, else computed once and stored.

    ``date_from``..``date_to``: a validated range (stats.ranges); ``facility_ids`` and
    ``known_misses`` as for a day.
    """
    question = StatsQuestion.for_range(
        tenant_id=tenant.id, date_from=date_from, date_to=date_to, facility_ids=facility_ids
    )
    return _cached(
        tenant=tenant,
        question=question,
        compute=lambda: serialize(
            care_stats_range_get(
                tenant=tenant, date_from=date_from, date_to=date_to, facility_ids=facility_ids
            )
        ),
        known_misses=known_misses,
    )


def _cached(
    *,
    tenant: TenantInfo,
    question: StatsQuestion,
    compute: Callable[[], dict],
    known_misses: frozenset[str],
) -> CachedStats:
    result = _answer(tenant=tenant, question=question, compute=compute, known_misses=known_misses)
    CACHE_STATUS_COUNTERS[result.status].inc()
    return result


def _answer(
    *,
    tenant: TenantInfo,
    question: StatsQuestion,
    compute: Callable[[], dict],
    known_misses: frozenset[str],
) -> CachedStats:
    if not settings.STATS_CACHE_ENABLED:
        # The operator's switch (and the benchmark's way to measure the uncached path).
        return CachedStats(compute(), CacheStatus.BYPASS, 0.0)

    stats_cache = None
    data = None
    try:
        stats_cache = _StatsCache(tenant=tenant, question=question)
        if stats_cache.entry_key not in known_misses:
            found = stats_cache.lookup()
            if found.data is not None:
                return CachedStats(found.data, CacheStatus.HIT, stats_cache.seconds)
        # Read under the lock: the previous holder may have stored and unlocked since the
        # first look, and the stamp the entry is stored with must be read before computing.
        taken, found = stats_cache.lock_and_lookup()
        if found.data is not None:
            if taken:
                stats_cache.unlock()
            return CachedStats(found.data, CacheStatus.HIT, stats_cache.seconds)
        if not taken:
            arrived = stats_cache.wait()
            if arrived is not None:
                STATS_HERD_WAITS.labels(HERD_WAIT_SERVED).inc()
                return CachedStats(arrived.data, CacheStatus.HIT, stats_cache.seconds)
            STATS_HERD_WAITS.labels(HERD_WAIT_COMPUTED).inc()
            # The holder gave up or is slow: compute, stamped with what is current now.
            found = stats_cache.lookup()
        data = compute()
        stats_cache.store(stamp=found.stamp, data=data)
        return CachedStats(data, CacheStatus.MISS, stats_cache.seconds)
    except CACHE_ERRORS as exc:
        backend_error(backend=BACKEND_REDIS, site=SITE_STATS_CACHE)
        logger.warning("stats cache unavailable, answering from PostgreSQL: %s", exc)
        if data is None:
            data = compute()
        seconds = stats_cache.seconds if stats_cache is not None else 0.0
        return CachedStats(data, CacheStatus.BYPASS, seconds)
