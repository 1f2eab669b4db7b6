"""Throttling: per user and scope in Redis, 429 with Retry-After, fail-open without Redis."""

import logging
from http import HTTPStatus

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import override_settings
from django_redis import get_redis_connection

from carenotes.core import throttling
from carenotes.notes import seeding
from carenotes.notes.api.views import SCOPE_NOTES_READ, SCOPE_NOTES_WRITE
from carenotes.notes.tests.factories import PatientFactory, note_payload
from stats.fastpath import SCOPE_STATS
from stats.tests.factories import CARE_STATS_URL
from tenants.tests.factories import MembershipFactory
from tenants.views import SCOPE_ME
from tools.load_profile import MIXED_WAIT_SECONDS, SEED_WAIT_SECONDS, offered_ceiling

pytestmark = pytest.mark.django_db

NOTES_URL = "/api/notes/"
ME_URL = "/api/me/"
# A pinned clock 10 s into a one-minute window: the window ends 50 s later.
PINNED_NOW = 1_700_000_000 - 1_700_000_000 % 60 + 10
PINNED_RETRY_AFTER = 50
# Nothing listens here (the project's port range on this machine): a Redis that is down.
DEAD_REDIS_URL = "redis://127.0.0.1:8619/0"
# make load's default user counts (Makefile USERS) per profile.
SEED_USERS = 50
MIXED_USERS = 200


@pytest.fixture
def tight_rates(settings, monkeypatch):
    """Two requests per minute per scope, on a clock that stands still."""
    settings.THROTTLE_RATES = {
        SCOPE_STATS: "2/m",
        SCOPE_NOTES_READ: "2/m",
        SCOPE_NOTES_WRITE: "2/m",
        SCOPE_ME: "2/m",
    }
    monkeypatch.setattr(throttling, "clock", lambda: PINNED_NOW)


@pytest.fixture
def patient():
    return PatientFactory()


def _member_client(token_client, patient):
    return token_client(MembershipFactory(tenant=patient.tenant, role="manager").user)


def _stats(client, patient):
    return client.get(CARE_STATS_URL, {"tenant_id": patient.tenant_id})


def test_rates_parse_as_count_per_period():
    assert throttling.throttle_rate_parse("600/m") == (600, 60)
    assert throttling.throttle_rate_parse("5/s") == (5, 1)
    assert throttling.throttle_rate_parse("100/day") == (100, 86400)
    for bad in ("0/m", "x/m", "10", "10/w", "-1/s"):
        with pytest.raises(throttling.ThrottleRateError):
            throttling.throttle_rate_parse(bad)


def test_default_rates_are_configured_for_every_scope():
    assert set(django_settings.THROTTLE_RATES) == {
        SCOPE_STATS,
        SCOPE_NOTES_READ,
        SCOPE_NOTES_WRITE,
        SCOPE_ME,
    }
    for rate in django_settings.THROTTLE_RATES.values():
        throttling.throttle_rate_parse(rate)


def test_exceeding_a_scope_gives_429_with_retry_after(tight_rates, token_client, patient):
    client = _member_client(token_client, patient)
    assert [_stats(client, patient).status_code for _ in range(2)] == [HTTPStatus.OK] * 2

    response = _stats(client, patient)

    assert response.status_code == HTTPStatus.TOO_MANY_REQUESTS
    assert response["Retry-After"] == str(PINNED_RETRY_AFTER)
    assert response.json() == {
        "detail": f"Request was throttled. Expected available in {PINNED_RETRY_AFTER} seconds."
    }


def test_the_next_window_lets_the_user_in_again(tight_rates, token_client, patient, monkeypatch):
    client = _member_client(token_client, patient)
    for _ in range(3):
        _stats(client, patient)
    monkeypatch.setattr(throttling, "clock", lambda: PINNED_NOW + PINNED_RETRY_AFTER)
    assert _stats(client, patient).status_code == HTTPStatus.OK


def test_another_user_and_another_scope_are_unaffected(tight_rates, token_client, patient):
    client = _member_client(token_client, patient)
    for _ in range(3):
        _stats(client, patient)
    assert _stats(client, patient).status_code == HTTPStatus.TOO_MANY_REQUESTS

    other = _member_client(token_client, patient)
    assert _stats(other, patient).status_code == HTTPStatus.OK
    assert client.get(ME_URL).status_code == HTTPStatus.OK
    assert client.get(NOTES_URL, {"tenant_id": patient.tenant_id}).status_code == HTTPStatus.OK


def test_note_writes_have_their_own_budget(tight_rates, token_client, patient):
    carer = MembershipFactory(tenant=patient.tenant, role="carer").user
    client = token_client(carer)
    for _ in range(3):
        client.get(NOTES_URL, {"tenant_id": patient.tenant_id})
    assert client.get(NOTES_URL, {"tenant_id": patient.tenant_id}).status_code == (
        HTTPStatus.TOO_MANY_REQUESTS
    )
    payload = note_payload(patient)
    statuses = [client.post(NOTES_URL, payload, format="json").status_code for _ in range(3)]
    assert statuses == [HTTPStatus.CREATED, HTTPStatus.CREATED, HTTPStatus.TOO_MANY_REQUESTS]


def test_throttle_counters_live_in_the_shared_cache(tight_rates, token_client, patient):
    membership = MembershipFactory(tenant=patient.tenant, role="manager")
    client = token_client(membership.user)
    _stats(client, patient)
    _stats(client, patient)
    key = throttling.throttle_key(
        scope=SCOPE_STATS, user_id=membership.user_id, window=PINNED_NOW // 60
    )
    redis = get_redis_connection("default")
    assert int(redis.get(cache.make_key(key))) == 2
    assert 0 < redis.ttl(cache.make_key(key)) <= 61


def test_redis_down_fails_open_and_logs(tight_rates, token_client, patient, caplog):
    client = _member_client(token_client, patient)
    dead = {"default": {**django_settings.CACHES["default"], "LOCATION": DEAD_REDIS_URL}}
    with (
        override_settings(CACHES=dead),
        caplog.at_level(logging.WARNING, "carenotes.core.throttling"),
    ):
        statuses = [_stats(client, patient).status_code for _ in range(3)]
    assert statuses == [HTTPStatus.OK] * 3
    assert "throttle stats unavailable, request let through" in caplog.text


def _per_minute(scope: str) -> float:
    limit, window_seconds = throttling.throttle_rate_parse(django_settings.THROTTLE_RATES[scope])
    return limit * 60 / window_seconds


def test_the_load_profiles_stay_under_the_default_rates():
    # make load's users share the seed's tokens: one manager, one admin and two carers with
    # tokens per tenant. An unlucky random split puts twice the mean share on one token.
    tenants, unlucky_split = seeding.DEFAULT_TENANTS, 2
    seed_stats = offered_ceiling(SEED_USERS, SEED_WAIT_SECONDS) / tenants
    assert seed_stats * 60 * unlucky_split < _per_minute(SCOPE_STATS)
    # Mixed profile: 200 users weighted managers 3, admins 2, carers 5; a carer's task is a
    # stats read (as the tenant's manager), a POST and another stats read.
    cycles = offered_ceiling(MIXED_USERS, MIXED_WAIT_SECONDS)
    carer_cycles = cycles * 5 / 10
    writes_per_token = carer_cycles / (tenants * seeding.CARERS_WITH_TOKENS)
    reads_per_manager = (cycles * 3 / 10 + 2 * carer_cycles) / tenants
    lists_per_admin = cycles * 2 / 10 / tenants
    assert writes_per_token * 60 * unlucky_split < _per_minute(SCOPE_NOTES_WRITE)
    assert reads_per_manager * 60 * unlucky_split < _per_minute(SCOPE_STATS)
    assert lists_per_admin * 60 * unlucky_split < _per_minute(SCOPE_NOTES_READ)
