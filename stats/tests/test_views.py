"""GET /api/care-stats/: the contract, authentication, tenant isolation and bad input."""

import re
from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carenotes.core.days import local_today
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.tests.factories import CARE_STATS_URL, expected_body, stats_query
from stats.views import BIGINT_MAX, STATS_DATE_MIN, STATS_MAX_FACILITY_IDS, one_year_after
from tenants.services import membership_revoke
from tenants.tests.factories import (
    FacilityFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SERVER_TIMING = re.compile(r"db;dur=\d+\.\d{2}, cache;dur=\d+\.\d{2}")
NOT_FOUND = {"detail": "Not found."}


def test_returns_the_documented_body(care_group, member_client):
    response = member_client.get(CARE_STATS_URL, stats_query(care_group))

    assert response.status_code == HTTPStatus.OK
    assert response.json() == expected_body(care_group)
    assert response["X-Cache"] == "MISS"
    assert SERVER_TIMING.fullmatch(response["Server-Timing"]), response["Server-Timing"]


def test_a_warm_request_is_a_hit_without_any_database_query(
    care_group, member_client, django_assert_num_queries
):
    first = member_client.get(CARE_STATS_URL, stats_query(care_group))
    with django_assert_num_queries(0):
        second = member_client.get(CARE_STATS_URL, stats_query(care_group))

    assert (first["X-Cache"], second["X-Cache"]) == ("MISS", "HIT")
    assert second.json() == first.json() == expected_body(care_group)
    assert second["Server-Timing"].startswith("db;dur=0.00, ")


def test_date_defaults_to_today_in_the_tenant_time_zone(token_client, monkeypatch):
    tenant = TenantFactory(timezone="Asia/Kolkata")
    patient = PatientFactory(facility=FacilityFactory(tenant=tenant))
    # 20:00 UTC on 10 March is 01:30 on 11 March in Kolkata: "today" there is the 11th.
    now = datetime(2025, 3, 10, 20, 0, tzinfo=UTC)
    monkeypatch.setattr("carenotes.core.days.timezone.now", lambda: now)
    CareNoteFactory(patient=patient, created_at=now - timedelta(hours=1))  # 00:30 local
    CareNoteFactory(patient=patient, created_at=now - timedelta(hours=2))  # 23:30 the 10th
    client = token_client(MembershipFactory(tenant=tenant).user)

    response = client.get(CARE_STATS_URL, {"tenant_id": tenant.pk})

    assert response.status_code == HTTPStatus.OK
    assert (response.json()["date"], response.json()["total_notes"]) == ("2025-03-11", 1)


def test_facility_ids_are_deduplicated_sorted_and_limit_the_scope(care_group, member_client):
    group = care_group
    response = member_client.get(
        CARE_STATS_URL, stats_query(group, facility_ids=f"{group.south.pk},{group.south.pk}")
    )

    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert body["facility_ids"] == [group.south.pk]
    assert body["by_facility"] == {str(group.south.pk): 1}
    assert (body["total_notes"], body["avg_notes_per_patient"]) == (1, 1.0)


def test_every_facility_in_scope_is_listed_even_without_notes(care_group, member_client):
    empty = FacilityFactory(tenant=care_group.tenant)
    response = member_client.get(
        CARE_STATS_URL,
        stats_query(care_group, facility_ids=f"{empty.pk},{care_group.north.pk}"),
    )
    assert response.json()["by_facility"] == {str(care_group.north.pk): 3, str(empty.pk): 0}


def test_no_credentials_is_401(care_group, api_client):
    response = api_client.get(CARE_STATS_URL, stats_query(care_group))
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_a_bad_token_is_401(care_group, api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    response = api_client.get(CARE_STATS_URL, stats_query(care_group))
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {"detail": "Invalid, revoked or expired token."}


def test_session_login_works_for_the_browsable_api(care_group, client):
    user = MembershipFactory(tenant=care_group.tenant).user
    client.force_login(user)
    response = client.get(CARE_STATS_URL, stats_query(care_group), HTTP_ACCEPT="text/html")
    assert response.status_code == HTTPStatus.OK
    assert b"total_notes" in response.content


def test_member_of_another_tenant_gets_404_and_no_data(care_group, token_client):
    outsider = token_client(MembershipFactory(tenant=TenantFactory(), role="admin").user)

    response = outsider.get(CARE_STATS_URL, stats_query(care_group))

    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == NOT_FOUND
    assert "X-Cache" not in response


def test_unknown_tenant_and_foreign_tenant_answer_alike(care_group, token_client):
    outsider = token_client(MembershipFactory(tenant=TenantFactory()).user)
    missing_id = care_group.tenant.pk + 1000

    foreign = outsider.get(CARE_STATS_URL, stats_query(care_group))
    missing = outsider.get(CARE_STATS_URL, {"tenant_id": missing_id})

    assert (foreign.status_code, missing.status_code) == (HTTPStatus.NOT_FOUND,) * 2
    assert foreign.json() == missing.json() == NOT_FOUND


def test_non_member_gets_404_before_any_other_parameter_is_judged(care_group, token_client):
    outsider = token_client(MembershipFactory(tenant=TenantFactory()).user)
    response = outsider.get(
        CARE_STATS_URL,
        {"tenant_id": care_group.tenant.pk, "facility_ids": "abc", "date": "x", "zz": "1"},
    )
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == NOT_FOUND


def test_non_member_cannot_read_a_cached_answer(care_group, member_client, token_client):
    assert member_client.get(CARE_STATS_URL, stats_query(care_group))["X-Cache"] == "MISS"
    outsider = token_client(MembershipFactory(tenant=TenantFactory()).user)
    response = outsider.get(CARE_STATS_URL, stats_query(care_group))
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == NOT_FOUND


def test_revoked_membership_is_404_on_the_next_request(care_group, token_client):
    membership = MembershipFactory(tenant=care_group.tenant)
    client = token_client(membership.user)
    assert client.get(CARE_STATS_URL, stats_query(care_group)).status_code == HTTPStatus.OK

    membership_revoke(user=membership.user, tenant=care_group.tenant)

    response = client.get(CARE_STATS_URL, stats_query(care_group))
    assert response.status_code == HTTPStatus.NOT_FOUND


def test_superuser_sees_any_tenant_but_not_a_missing_one(care_group, token_client):
    admin = token_client(UserFactory(is_superuser=True, is_staff=True))
    response = admin.get(CARE_STATS_URL, stats_query(care_group))
    assert response.status_code == HTTPStatus.OK
    assert response.json() == expected_body(care_group)
    missing = admin.get(CARE_STATS_URL, {"tenant_id": care_group.tenant.pk + 1000})
    assert (missing.status_code, missing.json()) == (HTTPStatus.NOT_FOUND, NOT_FOUND)


def test_facility_ids_of_another_tenant_are_named_and_nothing_is_computed(
    care_group, member_client, monkeypatch
):
    computed = []
    monkeypatch.setattr("stats.cache.care_stats_get", lambda **kwargs: computed.append(kwargs))
    elsewhere = FacilityFactory()  # exists, in another tenant
    missing_id = elsewhere.pk + 1000  # exists nowhere
    ids = f"{care_group.north.pk},{missing_id},{elsewhere.pk}"

    response = member_client.get(CARE_STATS_URL, stats_query(care_group, facility_ids=ids))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {
        "facility_ids": [f"Not facilities of this tenant: {elsewhere.pk}, {missing_id}."]
    }
    assert computed == []


def _too_many_ids() -> str:
    return ",".join(str(n) for n in range(1, STATS_MAX_FACILITY_IDS + 2))


def _latest_date() -> date:
    """The last accepted date for the London care group (today there + one year)."""
    return one_year_after(local_today(timezone_name="Europe/London"))


BAD_PARAMETERS = [
    ("facility_ids", "abc", "Expected comma-separated positive integer ids"),
    ("facility_ids", "1,,2", "Expected comma-separated positive integer ids"),
    ("facility_ids", "-1", "Expected comma-separated positive integer ids"),
    ("facility_ids", "0", "Expected comma-separated positive integer ids"),
    ("facility_ids", str(BIGINT_MAX + 1), "Expected comma-separated positive integer ids"),
    ("facility_ids", "1" * 30, "Expected comma-separated positive integer ids"),
    ("facility_ids", "", "Expected comma-separated positive integer ids"),
    ("facility_ids", "1.0", "Expected comma-separated positive integer ids"),
    ("facility_ids", _too_many_ids(), f"At most {STATS_MAX_FACILITY_IDS} facility ids, got"),
    ("date", "2025-02-30", "2025-02-30 is not a real calendar date."),
    ("date", "2025-13-01", "2025-13-01 is not a real calendar date."),
    ("date", "2025-3-1", "Expected a date as YYYY-MM-DD, got '2025-3-1'."),
    ("date", "20250310", "Expected a date as YYYY-MM-DD, got '20250310'."),
    ("date", "", "Expected a date as YYYY-MM-DD, got ''."),
    ("date", (STATS_DATE_MIN - timedelta(days=1)).isoformat(), "Dates run from 2000-01-01 to"),
    ("date", "1900-01-01", "Dates run from 2000-01-01 to"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_PARAMETERS)
def test_bad_parameters_are_400_naming_the_field(care_group, member_client, name, value, message):
    response = member_client.get(CARE_STATS_URL, stats_query(care_group, **{name: value}))

    assert response.status_code == HTTPStatus.BAD_REQUEST
    body = response.json()
    assert list(body) == [name]
    assert body[name][0].startswith(message), body


def test_date_range_ends_a_year_after_today(care_group, member_client):
    latest = _latest_date()
    ok = member_client.get(CARE_STATS_URL, stats_query(care_group, date=latest.isoformat()))
    late = member_client.get(
        CARE_STATS_URL, stats_query(care_group, date=(latest + timedelta(days=1)).isoformat())
    )
    first = member_client.get(
        CARE_STATS_URL, stats_query(care_group, date=STATS_DATE_MIN.isoformat())
    )

    assert (ok.status_code, first.status_code) == (HTTPStatus.OK, HTTPStatus.OK)
    assert late.status_code == HTTPStatus.BAD_REQUEST
    assert late.json() == {
        "date": [
            f"Dates run from 2000-01-01 to {latest.isoformat()} "
            "(a year after today in the tenant's time zone)."
        ]
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Give the id of the tenant to report on: tenant_id=1."),
        ("abc", "Expected a positive integer id, got 'abc'."),
        ("", "Expected a positive integer id, got ''."),
        ("-3", "Expected a positive integer id, got '-3'."),
        ("0", f"Ids run from 1 to {BIGINT_MAX}, got 0."),
        (str(BIGINT_MAX + 1), f"Ids run from 1 to {BIGINT_MAX}, got {BIGINT_MAX + 1}."),
        ("9" * 40, f"Expected a positive integer id, got '{'9' * 40}'."),
    ],
)
def test_bad_tenant_id_is_400(member_client, value, message):
    params = {} if value is None else {"tenant_id": value}
    response = member_client.get(CARE_STATS_URL, params)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"tenant_id": [message]}


def test_unknown_and_repeated_parameters_are_400_naming_them(care_group, member_client):
    response = member_client.get(
        f"{CARE_STATS_URL}?tenant_id={care_group.tenant.pk}&date=2025-03-10&date=2025-03-11"
        "&facility=1&limit=5"
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    known = (
        "Unknown query parameter; the parameters are "
        "date, date_from, date_to, facility_ids, period, tenant_id."
    )
    assert response.json() == {
        "date": ["Give this parameter once."],
        "facility": [known],
        "limit": [known],
    }


def test_field_errors_and_unknown_parameters_are_reported_together(care_group, member_client):
    response = member_client.get(
        CARE_STATS_URL, stats_query(care_group, date="2025-02-30", extra="1")
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert set(response.json()) == {"date", "extra"}


def test_drf_format_switch_is_accepted(care_group, member_client):
    response = member_client.get(CARE_STATS_URL, stats_query(care_group, format="json"))
    assert response.status_code == HTTPStatus.OK


query_values = st.one_of(
    st.text(max_size=30),
    st.from_regex(r"-?[0-9]{0,25}(,[0-9]{0,25}){0,3}", fullmatch=True),
    st.dates().map(date.isoformat),
)


@settings(
    max_examples=60,
    deadline=None,
    # The fixtures' rows are only read, so sharing them between examples is safe.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    params=st.dictionaries(
        st.sampled_from(["tenant_id", "facility_ids", "date", "format", "x"]), query_values
    )
)
def test_no_query_string_causes_a_server_error(care_group, member_client, params):
    response = member_client.get(CARE_STATS_URL, {"tenant_id": care_group.tenant.pk, **params})
    assert response.status_code in {HTTPStatus.OK, HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND}
