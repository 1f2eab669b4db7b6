"""The stats cache: invalidation on write, TTLs, herd protection, and life without Redis."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from http import HTTPStatus

import pytest
from django.core.cache import cache
from django.db import connection
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from carenotes.core.days import local_today
from carenotes.notes.tests.factories import CareNoteFactory
from stats import cache as stats_cache
from stats.cache import (
    STATS_TTL_PAST,
    STATS_TTL_TODAY,
    care_stats_get_cached,
    care_stats_keys,
)
from stats.selectors import care_stats_get
from stats.services import (
    STATS_COUNTER_TTL,
    care_stats_invalidate,
    care_stats_invalidate_tenant,
    care_stats_version_key,
)
from stats.tests.factories import (
    CARE_STATS_URL,
    DAY,
    NOON,
    care_group_create,
    expected_body,
    stats_query,
    tenant_info_of,
)
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

HERD_SIZE = 20


def _get(client, group, **params):
    response = client.get(CARE_STATS_URL, stats_query(group, **params))
    assert response.status_code == HTTPStatus.OK, response.content
    return response


def _count_computations(monkeypatch, delay: float = 0.0) -> list:
    """Wrap the selector the cache calls; return the list that records each computation."""
    calls = []
    lock = threading.Lock()

    def counting(**kwargs):
        with lock:
            calls.append(kwargs)
        time.sleep(delay)
        return care_stats_get(**kwargs)

    monkeypatch.setattr(stats_cache, "care_stats_get", counting)
    return calls


def test_a_write_with_invalidation_changes_the_next_response(care_group, member_client):
    assert _get(member_client, care_group).json()["total_notes"] == 4
    assert _get(member_client, care_group)["X-Cache"] == "HIT"

    CareNoteFactory(patient=care_group.patients[0], created_at=NOON)
    care_stats_invalidate(tenant_id=care_group.tenant.pk, day=DAY)

    after = _get(member_client, care_group)
    assert (after["X-Cache"], after.json()["total_notes"]) == ("MISS", 5)
    assert _get(member_client, care_group)["X-Cache"] == "HIT"


def test_without_invalidation_the_cached_answer_is_served(care_group, member_client):
    _get(member_client, care_group)
    CareNoteFactory(patient=care_group.patients[0], created_at=NOON)

    stale = _get(member_client, care_group)

    assert (stale["X-Cache"], stale.json()) == ("HIT", expected_body(care_group))


def test_invalidating_a_day_leaves_other_days_and_tenants_cached(care_group, member_client):
    other_group = care_group_create()
    other_client = APIClient()
    other_user = MembershipFactory(tenant=other_group.tenant).user
    other_client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_create(user=other_user)[1]}")
    day_before = (DAY - timedelta(days=1)).isoformat()
    _get(member_client, care_group)
    _get(member_client, care_group, date=day_before)
    _get(other_client, other_group)

    care_stats_invalidate(tenant_id=care_group.tenant.pk, day=DAY)

    assert _get(member_client, care_group)["X-Cache"] == "MISS"
    assert _get(member_client, care_group, date=day_before)["X-Cache"] == "HIT"
    assert _get(other_client, other_group)["X-Cache"] == "HIT"


def test_invalidating_the_tenant_makes_every_day_stale(care_group, member_client):
    day_before = (DAY - timedelta(days=1)).isoformat()
    _get(member_client, care_group)
    _get(member_client, care_group, date=day_before)

    care_stats_invalidate_tenant(tenant_id=care_group.tenant.pk)

    assert _get(member_client, care_group)["X-Cache"] == "MISS"
    assert _get(member_client, care_group, date=day_before)["X-Cache"] == "MISS"


def test_each_facility_scope_has_its_own_entry(care_group, member_client):
    default = _get(member_client, care_group)
    north_only = _get(member_client, care_group, facility_ids=str(care_group.north.pk))
    both = f"{care_group.south.pk},{care_group.north.pk}"
    explicit_all = _get(member_client, care_group, facility_ids=both)

    assert (north_only["X-Cache"], north_only.json()["total_notes"]) == ("MISS", 3)
    # Naming every facility is its own key (a warm hit is looked up from the request alone,
    # without the tenant's facility list), with the default scope's answer.
    assert explicit_all["X-Cache"] == "MISS"
    assert explicit_all.content == default.content
    assert _get(member_client, care_group, facility_ids=both)["X-Cache"] == "HIT"


def _entry_key(tenant_id: int, day, facility_ids=None) -> str:
    return care_stats_keys(tenant_id=tenant_id, day=day, facility_ids=facility_ids)[2]


def _lock_key(tenant_id: int, day, facility_ids=None) -> str:
    return _entry_key(tenant_id, day, facility_ids).replace(":stats:val:", ":stats:lock:")


def _entry_ttl(group, day) -> int:
    return get_redis_connection("default").ttl(_entry_key(group.tenant.pk, day))


def test_past_days_are_kept_long_and_today_briefly(care_group, member_client):
    today = local_today(timezone_name="Europe/London")
    _get(member_client, care_group)  # DAY, in the past
    member_client.get(CARE_STATS_URL, {"tenant_id": care_group.tenant.pk})  # today

    assert STATS_TTL_TODAY < _entry_ttl(care_group, DAY) <= STATS_TTL_PAST
    assert 0 < _entry_ttl(care_group, today) <= STATS_TTL_TODAY


def test_an_unreadable_entry_is_recomputed_and_replaced(care_group, member_client):
    get_redis_connection("default").set(_entry_key(care_group.tenant.pk, DAY), b"not json")

    assert _get(member_client, care_group)["X-Cache"] == "MISS"
    assert _get(member_client, care_group)["X-Cache"] == "HIT"


def test_a_waiter_computes_itself_when_the_lock_holder_never_delivers(care_group, monkeypatch):
    calls = _count_computations(monkeypatch)
    monkeypatch.setattr(stats_cache, "STATS_HERD_WAIT", 0.2)
    info = tenant_info_of(care_group.tenant)
    lock_key = _lock_key(info.id, DAY, info.facility_ids)
    get_redis_connection("default").set(lock_key, "a stuck holder", px=60_000)

    started = time.monotonic()
    result = care_stats_get_cached(
        tenant=info, day=DAY, facility_ids=info.facility_ids, serialize=lambda stats: {"n": 1}
    )

    assert (result.status, len(calls)) == ("MISS", 1)
    assert time.monotonic() - started >= stats_cache.STATS_HERD_WAIT


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_on_a_cold_key_compute_once(monkeypatch):
    group = care_group_create()
    _, key = api_token_create(user=MembershipFactory(tenant=group.tenant).user)
    # The computation stays in flight long enough for every request to miss the cold key;
    # the waiters' patience is raised so a loaded CI machine cannot time them out.
    calls = _count_computations(monkeypatch, delay=0.5)
    monkeypatch.setattr(stats_cache, "STATS_HERD_WAIT", 10.0)
    barrier = threading.Barrier(HERD_SIZE)

    def request(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        try:
            barrier.wait()
            response = client.get(CARE_STATS_URL, stats_query(group))
            return response.status_code, response["X-Cache"], response.json()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=HERD_SIZE) as pool:
        results = list(pool.map(request, range(HERD_SIZE)))

    assert len(calls) == 1
    assert sorted(cache_status for _, cache_status, _ in results) == ["HIT"] * (HERD_SIZE - 1) + [
        "MISS"
    ]
    assert {status for status, _, _ in results} == {HTTPStatus.OK}
    assert all(body == expected_body(group) for _, _, body in results)


def test_invalidation_counters_expire_long_after_any_stats_entry():
    day = date(2025, 3, 10)
    care_stats_invalidate(tenant_id=424242, day=day)
    ttl = get_redis_connection("default").ttl(
        cache.make_key(care_stats_version_key(tenant_id=424242, day=day))
    )
    assert STATS_TTL_PAST < ttl <= STATS_COUNTER_TTL


def test_cache_switched_off_computes_every_time_and_says_bypass(settings, care_group):
    settings.STATS_CACHE_ENABLED = False
    info = tenant_info_of(care_group.tenant)
    calls = []

    def serialize(stats):
        calls.append(stats)
        return stats.as_dict()

    statuses = [
        care_stats_get_cached(
            tenant=info, day=DAY, facility_ids=info.facility_ids, serialize=serialize
        ).status
        for _ in range(2)
    ]
    assert (statuses, len(calls)) == (["BYPASS", "BYPASS"], 2)


def test_an_entry_stored_between_miss_and_lock_is_used_not_recomputed(care_group, monkeypatch):
    info = tenant_info_of(care_group.tenant)
    first = care_stats_get_cached(
        tenant=info,
        day=DAY,
        facility_ids=info.facility_ids,
        serialize=lambda stats: {"n": stats.total_notes},
    )
    assert first.status == "MISS"
    stored = get_redis_connection("default").get(_entry_key(info.id, DAY, info.facility_ids))
    calls = _count_computations(monkeypatch)
    real_lookup = stats_cache._StatsCache.lookup
    lookups = []

    def lookup_racing_a_holder(self):
        lookups.append(1)
        if len(lookups) == 1:
            # Our first look finds nothing; another request stores it right after.
            self.redis.delete(self.keys[2])
            found = real_lookup(self)
            self.redis.set(self.keys[2], stored)
            return found
        return real_lookup(self)

    monkeypatch.setattr(stats_cache._StatsCache, "lookup", lookup_racing_a_holder)
    result = care_stats_get_cached(
        tenant=info,
        day=DAY,
        facility_ids=info.facility_ids,
        serialize=lambda stats: {"n": stats.total_notes},
    )
    assert (result.status, len(calls)) == ("HIT", 0)
    assert not get_redis_connection("default").exists(_lock_key(info.id, DAY, info.facility_ids))
