"""Warm stats hits without DRF: one Redis round trip from request to response.

Most analytics reads are repeats of an answer Redis already holds. Through DRF such a hit
costs three Redis round trips (principal, throttle count, entry) and DRF's request,
negotiation and rendering machinery, which makes it slower than DRF's own trivial
authenticated endpoint. Here the same checks run in the same order in one Lua call:

1. the cached principal of the API key (tenants.tokens parses the header and digests the key,
   as for DRF's tenants.authentication; tenants.principal decides expiry and access),
2. the caller's throttle count in the stats scope (the window of carenotes.core.throttling,
   counted by the same Lua function, carenotes.core.cache.COUNTER_INCR_LUA),
3. the entry's generation, its days' versions and its value (stats.cache.care_stats_keys;
   a range answer has a version per day, stats.cache.care_stats_question_keys).

Without a ``date`` the day is today in the tenant's time zone, and a ``period`` is resolved
from today there: the call also reads the tenant's cached facts, which decide the day, and
the entry of the day the worker expects from the zone it last saw (_today_guess); only when
the facts name another day (a first request, a changed zone, midnight) does a second round
trip (one MGET) read the entry. An explicit ``date`` or ``date_from``/``date_to`` needs one.

The answer is served only when every check passes plainly: a GET with ``Authorization:
Token`` asking for JSON, the documented parameters written canonically, a key this worker
has authenticated before (tenants.tokens.token_users: its user names the throttle counter),
the tenant's facts cached
(when the day is today by default), a cached, unexpired principal that may read the tenant, a
count within the rate, and a fresh entry. Anything else returns None and the request takes
the full DRF path, which answers misses, errors (401/404/400/429) and other formats exactly
as documented; a count already made travels in the request's RequestState
(carenotes.core.request_state) so no request is counted twice.

An entry exists only for a request the full path validated (a member, the tenant's own
facilities, dates in bounds, a range of at most STATS_RANGE_MAX_DAYS days), so serving it to
a caller who may read the tenant gives the answer the full path would. The body is the full
path's byte for byte, and the view adds DRF's own response headers
(APIView.finalize_response); a test holds them equal.
"""

import time
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils import timezone
from django_redis import get_redis_connection
from rest_framework import serializers

from carenotes.core.cache import CACHE_ERRORS, COUNTER_INCR_LUA
from carenotes.core.days import local_today
from carenotes.core.metrics import BACKEND_REDIS, SITE_WARM_HIT, backend_error
from carenotes.core.observability import request_user_tag
from carenotes.core.params import (
    TENANT_PARAM,
    parse_facility_ids,
    parse_iso_date,
    parse_positive_id,
)
from carenotes.core.request_state import ThrottleCount, TokenLookup, request_state
from carenotes.core.throttling import throttle_window
from stats.cache import (
    CACHE_STATUS_COUNTERS,
    CacheStatus,
    StatsQuestion,
    care_stats_entry_body,
    care_stats_entry_key,
    care_stats_question_keys,
    care_stats_stamp,
)
from stats.ranges import Period, parse_period, period_dates, range_length_error
from tenants.principal import Principal, TenantInfo, TokenAuth
from tenants.selectors import principal_token_cache_key, tenant_info_cache_key
from tenants.tokens import TokenHeaderError, token_digest, token_key_parse, token_users

# The throttle scope of the stats endpoint (its rate: settings.THROTTLE_RATES["stats"]).
SCOPE_STATS = "stats"
# Accept headers DRF answers with its JSON renderer; anything else (a browser's text/html
# for the browsable API, odd media types) is negotiated by DRF.
JSON_ACCEPTS = frozenset({"", "*/*", "application/json"})
# Warm hits are counted as HITs like the full path's; bound once, an increment per hit.
_HIT_COUNTER = CACHE_STATUS_COUNTERS[CacheStatus.HIT]

# KEYS: principal, throttle counter ('' for none), then the keys to MGET; ARGV: the
# counter's lifetime. One command instead of a pipeline.
_WARM_HIT_LOOKUP = (
    COUNTER_INCR_LUA
    + """
local count = false
if KEYS[2] ~= '' then count = counter_incr(KEYS[2], ARGV[1]) end
return {redis.call('GET', KEYS[1]), count, redis.call('MGET', unpack(KEYS, 3))}
"""
)


# The parameters that name the days of an answer, as a request may combine them (none: today).
_DAY_FORMS = (frozenset(), {"date"}, {"date_from", "date_to"}, {"period"})
_SCOPE_PARAM = "facility_ids"


@dataclass(frozen=True)
class _Asked:
    """The answer a canonical query names; today-relative ones need the tenant's zone."""

    tenant_id: int
    facility_ids: tuple[int, ...] | None
    day: date | None = None
    date_from: date | None = None
    date_to: date | None = None
    period: Period | None = None

    def needs_today(self) -> bool:
        """Return True when the days follow from today in the tenant's time zone."""
        return self.day is None and self.date_from is None

    def question(self, *, today: date | None) -> StatsQuestion:
        """Return the cached answer's question (``today``: the tenant's, when needed)."""
        if self.period is not None:
            date_from, date_to = period_dates(period=self.period, today=today)
        elif self.date_from is not None:
            date_from, date_to = self.date_from, self.date_to
        else:
            day = self.day or today
            return StatsQuestion.for_day(
                tenant_id=self.tenant_id, day=day, facility_ids=self.facility_ids
            )
        return StatsQuestion.for_range(
            tenant_id=self.tenant_id,
            date_from=date_from,
            date_to=date_to,
            facility_ids=self.facility_ids,
        )


def _params(query: QueryDict) -> _Asked | None:
    """Return what a canonical query asks for, else None (the full path judges it)."""
    try:
        if any(len(values) != 1 for _, values in query.lists()):
            return None
        if set(query) - {TENANT_PARAM, _SCOPE_PARAM} not in _DAY_FORMS:
            return None
        raw_ids = query.get(_SCOPE_PARAM)
        asked = _Asked(
            tenant_id=parse_positive_id(query[TENANT_PARAM]),
            facility_ids=None if raw_ids is None else parse_facility_ids(raw_ids),
            day=_date_or_none(query, "date"),
            date_from=_date_or_none(query, "date_from"),
            date_to=_date_or_none(query, "date_to"),
            period=None if "period" not in query else parse_period(query["period"]),
        )
    except (KeyError, serializers.ValidationError):
        return None
    if asked.date_from is not None and range_length_error(
        date_from=asked.date_from, date_to=asked.date_to
    ):
        return None  # a reversed or over-long range never has an entry (nor its keys built)
    return asked


def _date_or_none(query: QueryDict, name: str) -> date | None:
    raw = query.get(name)
    return None if raw is None else parse_iso_date(raw)


def _token_key(request: HttpRequest) -> str | None:
    try:
        return token_key_parse(request.META.get("HTTP_AUTHORIZATION", ""))
    except TokenHeaderError:
        return None  # DRF answers it (401 naming the problem)


# The time zone of each tenant as this worker last read it from the tenant's cached facts:
# only a guess of which day "today" is there, so that a today-relative hit can read the entry
# in the round trip that reads the facts. The facts read in that same call decide the day; a
# guess they contradict (a changed zone, midnight in between) costs the second round trip.
_tenant_zones: dict[int, str] = {}


def _today_guess(asked: _Asked) -> StatsQuestion | None:
    zone = _tenant_zones.get(asked.tenant_id)
    if zone is None:
        return None
    return asked.question(today=local_today(timezone_name=zone))


def _tenant_info(cached: bytes | None) -> TenantInfo | None:
    return None if cached is None else TenantInfo(**cache.client.decode(cached))


def care_stats_warm_hit(request: HttpRequest) -> HttpResponse | None:
    """Return the cached answer to a plain stats request, or None for the full path.

    The response carries the body and the stats headers; the view adds DRF's own.
    """
    if (
        request.method != "GET"
        or not settings.STATS_CACHE_ENABLED
        or request.META.get("HTTP_ACCEPT", "") not in JSON_ACCEPTS
    ):
        return None
    key = _token_key(request)
    asked = _params(request.GET) if key is not None else None
    if asked is None:
        return None
    tenant_id = asked.tenant_id
    digest = token_digest(key)
    user_id = token_users.recall(digest)
    if user_id is None:
        return None
    window = throttle_window(scope=SCOPE_STATS, user_id=user_id)

    # Days that follow from today in the tenant's time zone: the tenant's cached facts come in
    # the first round trip, with the entry of the day this worker expects (_today_guess); the
    # entry of any other day takes a second round trip. The facts come for every other
    # question too (a few bytes): a true miss hands them, with the principal, to DRF's token
    # authentication (RequestState.token_lookup), which then reads neither again.
    question = None if asked.needs_today() else asked.question(today=None)
    looked_up = question if question is not None else _today_guess(asked)
    wanted = [cache.make_key(tenant_info_cache_key(tenant_id))]
    if looked_up is not None:
        wanted += care_stats_question_keys(looked_up)
    keys = [cache.make_key(principal_token_cache_key(digest)), window.key if window else ""]
    started = time.perf_counter()
    try:
        redis = get_redis_connection("default")
        cached_principal, count, found = redis.register_script(_WARM_HIT_LOOKUP)(
            # As bytes: redis-py's packing spends ~10 Python calls on each text argument, and
            # a 92-day range sends 96 keys (2,995 -> 2,612 calls per range hit, measured).
            keys=[key.encode() for key in keys + wanted],
            args=[window.key_lifetime if window else 0],
        )
        cached_tenant, *found = found
        if question is None and cached_tenant is not None:
            tenant = _tenant_info(cached_tenant)
            _tenant_zones[tenant.id] = tenant.timezone
            question = asked.question(today=local_today(timezone_name=tenant.timezone))
            if question != looked_up:
                found = redis.mget(care_stats_question_keys(question))
    except CACHE_ERRORS:
        backend_error(backend=BACKEND_REDIS, site=SITE_WARM_HIT)
        return None  # the full path degrades as documented (BYPASS, fail-open throttle)
    cache_seconds = time.perf_counter() - started

    if window is not None:
        # The full path uses this count only for the same key, i.e. the same user.
        request_state(request).throttle_count = ThrottleCount(key=window.key, count=count)
        if count > window.limit:
            return None
    if question is None:
        return None  # the tenant's facts are not cached (or there is no such tenant)
    *counters, entry = found
    if cached_principal is None:
        return None
    principal = Principal.from_cache(cache.client.decode(cached_principal))
    if principal.user_id != user_id:
        token_users.forget(digest)
        return None
    if principal.is_expired(now=timezone.now()) or not principal.can_access(tenant_id):
        return None
    body = care_stats_entry_body(entry=entry, stamp=care_stats_stamp(*counters))
    if body is None:
        # A true miss: the full path locks and reads the entry again, without a first look,
        # and authenticates the key from what this lookup read.
        state = request_state(request)
        state.cache_misses = frozenset({care_stats_entry_key(question)})
        state.token_lookup = TokenLookup(
            digest=digest,
            auth=TokenAuth(principal=principal, named_tenant=_tenant_info(cached_tenant)),
        )
        return None

    request_user_tag(request, principal.user_id)
    _HIT_COUNTER.inc()
    response = HttpResponse(body, content_type="application/json")
    response["X-Cache"] = CacheStatus.HIT.value
    response["Server-Timing"] = f"db;dur=0.00, cache;dur={cache_seconds * 1000:.2f}"
    return response
