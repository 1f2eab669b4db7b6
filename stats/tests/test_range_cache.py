"""Range answers are cached like day answers: stale on a write to any of their days, and
nothing else; warm hits come from the fast path in one Redis round trip (two for periods)."""

from datetime import datetime, time, timedelta
from http import HTTPStatus
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.http import QueryDict
from django_redis import get_redis_connection

from carenotes.core.days import local_today
from carenotes.notes.tests.factories import note_payload
from stats import views
from stats.cache import (
    STATS_TTL_PAST,
    STATS_TTL_TODAY,
    StatsQuestion,
    care_stats_keys,
    care_stats_question_keys,
)
from stats.fastpath import _params
from stats.ranges import STATS_RANGE_MAX_DAYS
from stats.services import (
    care_stats_generation_key,
    care_stats_invalidate,
    care_stats_version_key,
)
from stats.tests.factories import (
    CARE_STATS_URL,
    RANGE_FROM,
    RANGE_TO,
    expected_range_body,
    range_query,
    redis_commands_recorded,
)

pytestmark = pytest.mark.django_db

PER_REQUEST_HEADERS = {"X-Request-ID", "Server-Timing"}
LONDON = "Europe/London"  # the care group's time zone


def _get(client, params):
    response = client.get(CARE_STATS_URL, params)
    assert response.status_code == HTTPStatus.OK, response.content
    return response


def _today():
    return local_today(timezone_name=LONDON)


def _days_ago(days: int) -> str:
    return (_today() - timedelta(days=days)).isoformat()


def test_a_range_is_computed_once_then_served_from_the_fast_path_in_one_command(
    care_group, member_client, served_fast, monkeypatch, django_assert_num_queries
):
    first = _get(member_client, range_query(care_group))
    _get(member_client, range_query(care_group))  # Redis now holds the script
    commands = redis_commands_recorded(monkeypatch)
    with django_assert_num_queries(0):
        hit = _get(member_client, range_query(care_group))

    assert (first["X-Cache"], hit["X-Cache"]) == ("MISS", "HIT")
    assert hit.json() == first.json() == expected_range_body(care_group)
    assert served_fast == [False, True, True]
    assert commands == ["EVALSHA"]


def test_a_period_is_served_fast_in_one_round_trip(
    care_group, member_client, served_fast, monkeypatch
):
    query = {"tenant_id": care_group.tenant.pk, "period": "last_7_days"}
    assert _get(member_client, query)["X-Cache"] == "MISS"
    _get(member_client, query)
    commands = redis_commands_recorded(monkeypatch)

    response = _get(member_client, query)

    assert (response["X-Cache"], served_fast[-1]) == ("HIT", True)
    assert response.json()["date_to"] == _today().isoformat()
    assert commands == ["EVALSHA"]


@pytest.mark.parametrize(
    "params",
    [{}, {"facility_ids": "NORTH"}, {"period": "this_month"}],
    ids=["every facility", "one facility", "a period"],
)
def test_the_fast_range_answer_is_the_full_paths_byte_for_byte(
    care_group, member_client, served_fast, monkeypatch, params
):
    query = range_query(care_group)
    if "period" in params:
        query = {"tenant_id": care_group.tenant.pk, **params}
    elif params:
        query["facility_ids"] = str(care_group.north.pk)
    _get(member_client, query)
    fast = _get(member_client, query)
    monkeypatch.setattr(views, "care_stats_warm_hit", lambda request: None)
    full = _get(member_client, query)

    assert (fast["X-Cache"], full["X-Cache"]) == ("HIT", "HIT")
    assert fast.content == full.content
    assert [(k, v) for k, v in fast.items() if k not in PER_REQUEST_HEADERS] == [
        (k, v) for k, v in full.items() if k not in PER_REQUEST_HEADERS
    ]
    assert served_fast == [False, True]


def test_a_write_to_any_day_of_a_cached_range_is_seen_and_nothing_else_is_invalidated(
    care_group, member_client, django_capture_on_commit_callbacks
):
    group = care_group
    week = {"tenant_id": group.tenant.pk, "date_from": _days_ago(6), "date_to": _days_ago(0)}
    earlier = {"tenant_id": group.tenant.pk, "date_from": _days_ago(20), "date_to": _days_ago(10)}
    day_before = {"tenant_id": group.tenant.pk, "date": _days_ago(7)}
    for query in (week, earlier, day_before):
        assert _get(member_client, query)["X-Cache"] == "MISS"
    before = _get(member_client, week).json()

    # A note at noon three local days ago, posted through the API (its day's version bumps
    # on commit).
    noon = datetime.combine(_today() - timedelta(days=3), time(12), tzinfo=ZoneInfo(LONDON))
    with django_capture_on_commit_callbacks(execute=True):
        posted = member_client.post(
            "/api/notes/",
            note_payload(group.patients[0], created_at=noon.isoformat()),
            format="json",
        )
    assert posted.status_code == HTTPStatus.CREATED

    after = _get(member_client, week)
    assert after["X-Cache"] == "MISS"
    assert after.json()["total_notes"] == before["total_notes"] + 1
    changed = [d for d, b in zip(after.json()["by_day"], before["by_day"], strict=True) if d != b]
    assert [day["date"] for day in changed] == [_days_ago(3)]
    assert _get(member_client, earlier)["X-Cache"] == "HIT"
    assert _get(member_client, day_before)["X-Cache"] == "HIT"


def test_the_first_and_last_day_of_a_range_invalidate_it(care_group, member_client):
    for day in (RANGE_FROM, RANGE_TO):
        _get(member_client, range_query(care_group))
        assert _get(member_client, range_query(care_group))["X-Cache"] == "HIT"
        care_stats_invalidate(tenant_id=care_group.tenant.pk, day=day)
        assert _get(member_client, range_query(care_group))["X-Cache"] == "MISS"
    care_stats_invalidate(tenant_id=care_group.tenant.pk, day=RANGE_TO + timedelta(days=1))
    assert _get(member_client, range_query(care_group))["X-Cache"] == "HIT"


def test_a_range_and_the_days_it_covers_are_separate_entries(care_group, member_client):
    day_only = {"tenant_id": care_group.tenant.pk, "date": RANGE_FROM.isoformat()}
    one_day_range = range_query(care_group, date_to=RANGE_FROM.isoformat())
    assert _get(member_client, day_only)["X-Cache"] == "MISS"
    response = _get(member_client, one_day_range)
    assert response["X-Cache"] == "MISS"
    assert "by_day" in response.json()


@pytest.mark.parametrize(
    ("ends_days_ago", "ttl"), [(0, STATS_TTL_TODAY), (1, STATS_TTL_PAST)], ids=["today", "past"]
)
def test_a_range_lives_as_long_as_its_last_day(care_group, member_client, ends_days_ago, ttl):
    query = {
        "tenant_id": care_group.tenant.pk,
        "date_from": _days_ago(ends_days_ago + 5),
        "date_to": _days_ago(ends_days_ago),
    }
    _get(member_client, query)
    question = StatsQuestion.for_range(
        tenant_id=care_group.tenant.pk,
        date_from=_today() - timedelta(days=ends_days_ago + 5),
        date_to=_today() - timedelta(days=ends_days_ago),
        facility_ids=None,
    )
    entry_key = care_stats_question_keys(question)[-1]
    assert ttl - 5 <= get_redis_connection("default").ttl(entry_key) <= ttl


def test_range_keys_are_the_generation_a_version_per_day_and_the_entry(care_group):
    question = StatsQuestion.for_range(
        tenant_id=7, date_from=RANGE_FROM, date_to=RANGE_TO, facility_ids=(3, 9)
    )
    keys = care_stats_question_keys(question)
    day_keys = [care_stats_keys(tenant_id=7, day=RANGE_FROM + timedelta(days=n), facility_ids=None)
                for n in range(3)]  # fmt: skip

    assert keys[0] == day_keys[0][0] == cache.make_key(care_stats_generation_key(tenant_id=7))
    assert keys[1:4] == [version for _, version, _ in day_keys]
    assert keys[1:4] == [
        cache.make_key(care_stats_version_key(tenant_id=7, day=RANGE_FROM + timedelta(days=n)))
        for n in range(3)
    ]
    assert keys[4].endswith("stats:val:7:2025-03-09..2025-03-11:3,9")
    assert len(keys) == 5


@pytest.mark.parametrize(
    "query",
    [
        "tenant_id=1&date_from=2025-03-11&date_to=2025-03-10",  # reversed
        "tenant_id=1&date_from=2000-01-01&date_to=2025-01-01",  # far too long
        "tenant_id=1&date=2025-03-10&date_from=2025-03-09&date_to=2025-03-11",
        "tenant_id=1&date_from=2025-03-09",
        "tenant_id=1&period=today&date=2025-03-10",
        "tenant_id=1&period=last_week",
    ],
)
def test_queries_the_full_path_must_refuse_never_reach_redis_from_the_fast_path(query):
    assert _params(QueryDict(query)) is None


def test_the_longest_range_is_looked_up_by_the_fast_path():
    last = RANGE_FROM + timedelta(days=STATS_RANGE_MAX_DAYS - 1)
    asked = _params(QueryDict(f"tenant_id=1&date_from=2025-03-09&date_to={last}"))
    assert len(care_stats_question_keys(asked.question(today=None))) == STATS_RANGE_MAX_DAYS + 2


def test_a_bad_combination_is_answered_by_the_full_path(care_group, member_client, served_fast):
    _get(member_client, range_query(care_group))
    response = member_client.get(CARE_STATS_URL, range_query(care_group, date="2025-03-10"))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert served_fast[-1] is False
