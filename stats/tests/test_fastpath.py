"""Warm hits served before DRF (stats.fastpath): same answers, same checks, one round trip."""

import json
import logging
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from carenotes.core import throttling
from carenotes.core.days import local_today
from carenotes.core.observability import REQUEST_LOGGER_NAME
from carenotes.notes.tests.factories import CareNoteFactory
from stats import views
from stats.fastpath import SCOPE_STATS
from stats.services import care_stats_invalidate
from stats.tests.factories import (
    CARE_STATS_URL,
    DAY,
    NOON,
    expected_body,
    redis_commands_recorded,
    stats_query,
)
from tenants.services import (
    api_token_create,
    api_token_revoke,
    membership_revoke,
    tenant_info_cache_invalidate,
)
from tenants.tests.factories import FacilityFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PINNED_NOW = 1_700_000_000 - 1_700_000_000 % 60 + 10  # 10 s into a one-minute window
# Headers that differ between any two answers.
PER_REQUEST_HEADERS = {"X-Request-ID", "Server-Timing"}


def _warm(client, group, **params):
    """Ask twice through the full path's first sight of the token: MISS, then a fast HIT."""
    first = client.get(CARE_STATS_URL, stats_query(group, **params))
    assert (first.status_code, first["X-Cache"]) == (HTTPStatus.OK, "MISS")
    return first


def test_a_warm_hit_skips_drf_and_answers_in_one_redis_command(
    care_group, member_client, served_fast, monkeypatch, django_assert_num_queries
):
    _warm(member_client, care_group)
    member_client.get(CARE_STATS_URL, stats_query(care_group))  # Redis now holds the script
    commands = redis_commands_recorded(monkeypatch)
    monkeypatch.setattr(
        "rest_framework.views.APIView.initial",
        lambda *args, **kwargs: pytest.fail("DRF handled a warm hit"),
    )
    with django_assert_num_queries(0):
        response = member_client.get(CARE_STATS_URL, stats_query(care_group))

    assert (response.status_code, response["X-Cache"]) == (HTTPStatus.OK, "HIT")
    assert response.json() == expected_body(care_group)
    assert served_fast == [False, True, True]
    assert commands == ["EVALSHA"]


@pytest.mark.parametrize(
    "params",
    [{}, {"facility_ids": "SOUTH,NORTH"}, {"facility_ids": "NORTH"}],
    ids=["every facility", "every facility named", "one facility"],
)
def test_the_fast_answer_is_the_full_paths_byte_for_byte(
    care_group, member_client, served_fast, monkeypatch, params
):
    ids = {"NORTH": str(care_group.north.pk), "SOUTH": str(care_group.south.pk)}
    for name, value in params.items():
        for placeholder, facility_id in ids.items():
            value = value.replace(placeholder, facility_id)
        params[name] = value
    _warm(member_client, care_group, **params)
    fast = member_client.get(CARE_STATS_URL, stats_query(care_group, **params))
    monkeypatch.setattr(views, "care_stats_warm_hit", lambda request: None)
    full = member_client.get(CARE_STATS_URL, stats_query(care_group, **params))

    assert (fast["X-Cache"], full["X-Cache"]) == ("HIT", "HIT")
    assert fast.content == full.content
    assert [(k, v) for k, v in fast.items() if k not in PER_REQUEST_HEADERS] == [
        (k, v) for k, v in full.items() if k not in PER_REQUEST_HEADERS
    ]
    assert served_fast == [False, True]  # the third request went to DRF by construction


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda query, headers: headers.update(HTTP_ACCEPT="text/html"), "browsable API"),
        (lambda query, headers: query.update(format="json"), "DRF's format switch"),
        (lambda query, headers: query.update(date=[query["date"]] * 2), "repeated parameter"),
        (lambda query, headers: query.update(extra="1"), "unknown parameter"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_anything_but_a_plain_request_takes_the_full_path(
    care_group, member_client, served_fast, change, why
):
    _warm(member_client, care_group)
    query, headers = stats_query(care_group), {}
    change(query, headers)

    response = member_client.get(CARE_STATS_URL, query, **headers)

    assert served_fast[-1] is False, why
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.BAD_REQUEST)


def test_today_by_default_is_served_fast_in_one_round_trip(
    care_group, member_client, served_fast, monkeypatch
):
    query = {"tenant_id": care_group.tenant.pk}
    assert member_client.get(CARE_STATS_URL, query)["X-Cache"] == "MISS"
    # Redis now holds the script; this worker has seen the tenant's zone (second round trip).
    member_client.get(CARE_STATS_URL, query)
    commands = redis_commands_recorded(monkeypatch)
    response = member_client.get(CARE_STATS_URL, query)

    assert (response["X-Cache"], served_fast[-1]) == ("HIT", True)
    assert response.json()["date"] == local_today(timezone_name="Europe/London").isoformat()
    assert commands == ["EVALSHA"]


def test_a_zone_guess_the_tenants_facts_contradict_costs_a_round_trip_not_the_answer(
    care_group, member_client, served_fast, monkeypatch, no_zone_guesses
):
    query = {"tenant_id": care_group.tenant.pk}
    member_client.get(CARE_STATS_URL, query)
    member_client.get(CARE_STATS_URL, query)
    london = local_today(timezone_name="Europe/London")
    # 26 hours apart, so at least one of them is not on London's date now.
    wrong = next(
        zone for zone in ("Etc/GMT-14", "Etc/GMT+12") if local_today(timezone_name=zone) != london
    )
    wrong_day = local_today(timezone_name=wrong).isoformat()
    # The guessed day's entry is there to be (wrongly) served.
    member_client.get(CARE_STATS_URL, {**query, "date": wrong_day})
    no_zone_guesses[care_group.tenant.pk] = wrong
    commands = redis_commands_recorded(monkeypatch)

    response = member_client.get(CARE_STATS_URL, query)

    assert (response["X-Cache"], served_fast[-1]) == ("HIT", True)
    assert response.json()["date"] == london.isoformat()
    assert commands == ["EVALSHA", "MGET"]
    assert no_zone_guesses[care_group.tenant.pk] == "Europe/London"


def test_today_with_the_tenants_facts_not_cached_takes_the_full_path(
    care_group, member_client, served_fast
):
    query = {"tenant_id": care_group.tenant.pk}
    member_client.get(CARE_STATS_URL, query)
    tenant_info_cache_invalidate(tenant_id=care_group.tenant.pk)
    response = member_client.get(CARE_STATS_URL, query)
    assert (response["X-Cache"], served_fast[-1]) == ("HIT", False)


def test_a_key_this_worker_has_not_authenticated_takes_the_full_path(
    care_group, member_client, token_client, served_fast
):
    _warm(member_client, care_group)
    user = MembershipFactory(tenant=care_group.tenant).user
    response = token_client(user).get(CARE_STATS_URL, stats_query(care_group))
    assert (response["X-Cache"], served_fast[-1]) == ("HIT", False)


def test_a_cached_answer_never_reaches_a_caller_outside_the_tenant(
    care_group, member_client, token_client, served_fast
):
    _warm(member_client, care_group)
    outsider = token_client(MembershipFactory().user)  # a member of another tenant
    assert outsider.get("/api/me/").status_code == HTTPStatus.OK  # its key is now known

    response = outsider.get(CARE_STATS_URL, stats_query(care_group))

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"detail": "Not found."}
    assert served_fast[-1] is False


def test_a_revoked_membership_or_token_applies_to_warm_hits_at_once(
    care_group, token_client, served_fast
):
    membership = MembershipFactory(tenant=care_group.tenant)
    _warm(token_client(membership.user), care_group)
    token, key = api_token_create(user=membership.user, name="soon revoked")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.get(CARE_STATS_URL, stats_query(care_group))  # the worker learns this key
    assert client.get(CARE_STATS_URL, stats_query(care_group)).status_code == HTTPStatus.OK
    assert served_fast[-1] is True

    api_token_revoke(token=token)
    assert client.get(CARE_STATS_URL, stats_query(care_group)).status_code == 401

    _, key = api_token_create(user=membership.user, name="second")
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.get(CARE_STATS_URL, stats_query(care_group))
    assert client.get(CARE_STATS_URL, stats_query(care_group)).status_code == HTTPStatus.OK
    assert served_fast[-1] is True
    membership_revoke(tenant=care_group.tenant, user=membership.user)
    response = client.get(CARE_STATS_URL, stats_query(care_group))
    assert (response.status_code, served_fast[-1]) == (HTTPStatus.NOT_FOUND, False)


def test_an_expired_token_gets_401_even_with_its_principal_cached(care_group, served_fast):
    membership = MembershipFactory(tenant=care_group.tenant)
    _, key = api_token_create(
        user=membership.user, name="short", expires_at=timezone.now() + timedelta(seconds=30)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    _warm(client, care_group)
    assert client.get(CARE_STATS_URL, stats_query(care_group)).status_code == HTTPStatus.OK
    assert served_fast[-1] is True
    # The cached principal carries the expiry: past it, the answer is 401 at once.
    later = timezone.now() + timedelta(seconds=31)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.utils.timezone.now", lambda: later)
        response = client.get(CARE_STATS_URL, stats_query(care_group))
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert served_fast[-1] is False


def test_a_new_note_makes_the_next_answer_a_miss_that_includes_it(
    care_group, member_client, served_fast
):
    _warm(member_client, care_group)
    CareNoteFactory(patient=care_group.patients[0], created_at=NOON)
    care_stats_invalidate(tenant_id=care_group.tenant.pk, day=DAY)

    response = member_client.get(CARE_STATS_URL, stats_query(care_group))

    assert (response["X-Cache"], response.json()["total_notes"]) == ("MISS", 5)
    assert served_fast[-1] is False


def test_tenant_changes_make_default_scope_answers_stale(care_group, member_client):
    _warm(member_client, care_group)
    added = FacilityFactory(tenant=care_group.tenant)
    response = member_client.get(CARE_STATS_URL, stats_query(care_group))
    assert response["X-Cache"] == "MISS"
    assert added.pk in response.json()["facility_ids"]

    care_group.tenant.timezone = "America/New_York"
    care_group.tenant.save()
    response = member_client.get(CARE_STATS_URL, stats_query(care_group))
    assert (response["X-Cache"], response.json()["timezone"]) == ("MISS", "America/New_York")


def test_each_request_is_counted_once_whichever_path_answers(
    care_group, member_client, settings, monkeypatch, served_fast
):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, SCOPE_STATS: "4/m"}
    monkeypatch.setattr(throttling, "clock", lambda: PINNED_NOW)
    statuses = [member_client.get(CARE_STATS_URL, stats_query(care_group)).status_code]  # 1
    statuses.append(member_client.get(CARE_STATS_URL, stats_query(care_group)).status_code)  # 2
    care_stats_invalidate(tenant_id=care_group.tenant.pk, day=DAY)
    # Counted by the fast path, answered (MISS) by the full path: still one count.
    statuses.append(member_client.get(CARE_STATS_URL, stats_query(care_group)).status_code)  # 3
    statuses.append(member_client.get(CARE_STATS_URL, stats_query(care_group)).status_code)  # 4
    refused = member_client.get(CARE_STATS_URL, stats_query(care_group))  # 5

    assert statuses == [HTTPStatus.OK] * 4
    assert served_fast == [False, True, False, True, False]
    assert refused.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert refused["Retry-After"] == "50"


def test_the_request_log_names_the_caller_of_a_fast_hit(
    care_group, member_client, served_fast, caplog
):
    _warm(member_client, care_group)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=REQUEST_LOGGER_NAME):
        member_client.get(CARE_STATS_URL, stats_query(care_group))
    (record,) = [r for r in caplog.records if r.name == REQUEST_LOGGER_NAME]
    assert served_fast[-1] is True
    assert record.tenant_id == care_group.tenant.pk
    assert record.user_id is not None


def test_a_superuser_gets_fast_hits_for_any_tenant(care_group, token_client, served_fast):
    client = token_client(UserFactory(is_superuser=True, is_staff=True))
    _warm(client, care_group)
    response = client.get(CARE_STATS_URL, stats_query(care_group))
    assert (response.status_code, served_fast[-1]) == (HTTPStatus.OK, True)
    assert json.loads(response.content) == expected_body(care_group)


def test_a_true_miss_the_fast_path_found_takes_the_lock_without_a_second_look(
    care_group, member_client, served_fast, monkeypatch
):
    _warm(member_client, care_group)
    member_client.get(CARE_STATS_URL, stats_query(care_group))  # Redis now holds the scripts
    care_stats_invalidate(tenant_id=care_group.tenant.pk, day=DAY)
    commands = redis_commands_recorded(monkeypatch)

    response = member_client.get(CARE_STATS_URL, stats_query(care_group))

    assert (response["X-Cache"], served_fast[-1]) == ("MISS", False)
    assert response.json() == expected_body(care_group)
    # Warm-hit lookup; DRF's token-guessing check (the principal and the tenant's facts come
    # from the warm-hit lookup); lock and look up; store.
    assert commands == ["EVALSHA", "GET", "EVALSHA", "EVALSHA"]
    assert member_client.get(CARE_STATS_URL, stats_query(care_group))["X-Cache"] == "HIT"


def test_a_miss_the_fast_path_did_not_see_looks_up_before_taking_the_lock(
    care_group, member_client, monkeypatch
):
    _warm(member_client, care_group)
    care_stats_invalidate(tenant_id=care_group.tenant.pk, day=DAY)
    monkeypatch.setattr(views, "care_stats_warm_hit", lambda request: None)
    commands = redis_commands_recorded(monkeypatch)

    response = member_client.get(CARE_STATS_URL, stats_query(care_group))

    assert response["X-Cache"] == "MISS"
    # Token-guessing check, principal, throttle count; first look; lock and look up; store.
    assert commands == ["GET", "MGET", "EVALSHA", "MGET", "EVALSHA", "EVALSHA"]
