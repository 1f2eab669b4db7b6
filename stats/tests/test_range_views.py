"""GET /api/care-stats/ over a range of days or a named period: the contract and bad input."""

from datetime import UTC, date, datetime, timedelta
from http import HTTPStatus

import pytest

from carenotes.core.days import local_today
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.ranges import STATS_RANGE_MAX_DAYS, Period
from stats.tests.factories import (
    CARE_STATS_URL,
    RANGE_FROM,
    RANGE_TO,
    expected_body,
    expected_range_body,
    range_query,
    stats_query,
)
from stats.views import STATS_DATE_MIN, CareStatsView, one_year_after
from tenants.tests.factories import FacilityFactory, MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db

# A Wednesday, 11:00 in London (BST).
NOW = datetime(2025, 8, 13, 10, 0, tzinfo=UTC)
EXCLUSIVE = "Give one of date, date_from with date_to, or period: they exclude each other."


def test_a_range_answer_has_the_day_fields_every_day_and_exact_residents(care_group, member_client):
    response = member_client.get(CARE_STATS_URL, range_query(care_group))

    assert response.status_code == HTTPStatus.OK
    assert response.json() == expected_range_body(care_group)
    assert response["X-Cache"] == "MISS"


def test_the_day_answer_gains_patients_and_keeps_its_other_fields(care_group, member_client):
    body = member_client.get(CARE_STATS_URL, stats_query(care_group)).json()
    assert body == expected_body(care_group)
    assert list(body) == [
        "tenant_id",
        "date",
        "timezone",
        "facility_ids",
        "total_notes",
        "by_category",
        "by_priority",
        "by_facility",
        "patients",
        "avg_notes_per_patient",
    ]


def test_a_resident_noted_on_several_days_counts_once(care_group, member_client):
    ann = care_group.patients[0]
    CareNoteFactory(patient=ann, created_at=datetime(2025, 3, 11, 9, tzinfo=UTC))
    body = member_client.get(CARE_STATS_URL, range_query(care_group)).json()
    assert (body["total_notes"], body["patients"], body["avg_notes_per_patient"]) == (5, 3, 1.67)
    assert [day["total_notes"] for day in body["by_day"]] == [0, 4, 1]


def test_facility_ids_limit_a_range_too(care_group, member_client):
    south = care_group.south.pk
    body = member_client.get(CARE_STATS_URL, range_query(care_group, facility_ids=south)).json()
    assert (body["facility_ids"], body["by_facility"]) == ([south], {str(south): 1})
    assert (body["total_notes"], body["patients"]) == (1, 1)


def test_the_longest_range_lists_every_day(care_group, member_client):
    last = RANGE_FROM + timedelta(days=STATS_RANGE_MAX_DAYS - 1)
    response = member_client.get(CARE_STATS_URL, range_query(care_group, date_to=last.isoformat()))
    assert response.status_code == HTTPStatus.OK
    days = [entry["date"] for entry in response.json()["by_day"]]
    assert (len(days), days[0], days[-1]) == (STATS_RANGE_MAX_DAYS, "2025-03-09", last.isoformat())


PERIODS = {
    Period.TODAY: ("2025-08-13", "2025-08-13"),
    Period.YESTERDAY: ("2025-08-12", "2025-08-12"),
    Period.LAST_7_DAYS: ("2025-08-07", "2025-08-13"),
    Period.LAST_30_DAYS: ("2025-07-15", "2025-08-13"),
    Period.THIS_WEEK: ("2025-08-11", "2025-08-13"),
    Period.THIS_MONTH: ("2025-08-01", "2025-08-13"),
    Period.LAST_MONTH: ("2025-07-01", "2025-07-31"),
    Period.THIS_QUARTER: ("2025-07-01", "2025-08-13"),
}


@pytest.mark.parametrize(("period", "expected"), PERIODS.items(), ids=[p.value for p in PERIODS])
def test_a_period_is_the_range_it_names_in_the_tenants_time_zone(
    care_group, member_client, monkeypatch, period, expected
):
    monkeypatch.setattr("carenotes.core.days.timezone.now", lambda: NOW)
    query = {"tenant_id": care_group.tenant.pk, "period": period.value}

    body = member_client.get(CARE_STATS_URL, query).json()
    explicit = member_client.get(
        CARE_STATS_URL,
        {"tenant_id": care_group.tenant.pk, "date_from": expected[0], "date_to": expected[1]},
    )

    assert (body["date_from"], body["date_to"]) == expected
    assert body == explicit.json()
    assert explicit["X-Cache"] == "HIT"  # the same answer, cached once


def test_today_is_the_tenants_today(token_client, monkeypatch):
    tenant = TenantFactory(timezone="Asia/Kolkata")
    patient = PatientFactory(facility=FacilityFactory(tenant=tenant))
    # 20:00 UTC on 10 March is 01:30 on 11 March in Kolkata.
    now = datetime(2025, 3, 10, 20, 0, tzinfo=UTC)
    monkeypatch.setattr("carenotes.core.days.timezone.now", lambda: now)
    CareNoteFactory(patient=patient, created_at=now - timedelta(hours=1))  # 00:30 the 11th
    CareNoteFactory(patient=patient, created_at=now - timedelta(hours=2))  # 23:30 the 10th
    client = token_client(MembershipFactory(tenant=tenant).user)

    today = client.get(CARE_STATS_URL, {"tenant_id": tenant.pk, "period": "today"}).json()
    yesterday = client.get(CARE_STATS_URL, {"tenant_id": tenant.pk, "period": "yesterday"}).json()

    assert (today["date_from"], today["total_notes"]) == ("2025-03-11", 1)
    assert (yesterday["date_to"], yesterday["total_notes"]) == ("2025-03-10", 1)


def _latest() -> str:
    return one_year_after(local_today(timezone_name="Europe/London")).isoformat()


BAD_COMBINATIONS = [
    ({"date": "2025-03-10", "date_from": "2025-03-09", "date_to": "2025-03-11"},
     {"date": [EXCLUSIVE], "date_from": [EXCLUSIVE], "date_to": [EXCLUSIVE]}),
    ({"date": "2025-03-10", "period": "today"}, {"date": [EXCLUSIVE], "period": [EXCLUSIVE]}),
    ({"period": "today", "date_from": "2025-03-09"},
     {"date_from": [EXCLUSIVE], "period": [EXCLUSIVE]}),
    ({"date_from": "2025-03-09"},
     {"date_to": ["Give date_to with date_from: a range names both ends."]}),
    ({"date_to": "2025-03-09"},
     {"date_from": ["Give date_from with date_to: a range names both ends."]}),
    ({"date_from": "2025-03-11", "date_to": "2025-03-10"},
     {"date_to": ["date_to (2025-03-10) is before date_from (2025-03-11); give the first day "
                  "as date_from and the last as date_to."]}),
    ({"date_from": "2025-01-01", "date_to": "2025-04-03"},
     {"date_to": ["A range covers at most 92 days (both ends included); 2025-01-01 to "
                  "2025-04-03 is 93."]}),
    ({"period": "last_week"},
     {"period": ["Unknown period 'last_week'; the periods are today, yesterday, last_7_days, "
                 "last_30_days, this_week, this_month, last_month, this_quarter."]}),
    ({"period": ""},
     {"period": ["Unknown period ''; the periods are today, yesterday, last_7_days, "
                 "last_30_days, this_week, this_month, last_month, this_quarter."]}),
    ({"date_from": "2025-02-30", "date_to": "2025-03-01"},
     {"date_from": ["2025-02-30 is not a real calendar date."]}),
    ({"date_from": "1999-12-31", "date_to": "2000-01-02"},
     {"date_from": [f"Dates run from {STATS_DATE_MIN.isoformat()} to LATEST (a year after "
                    "today in the tenant's time zone)."]}),
    ({"date_from": "2025-03-09", "date_to": "2025-3-11"},
     {"date_to": ["Expected a date as YYYY-MM-DD, got '2025-3-11'."]}),
]  # fmt: skip


@pytest.mark.parametrize(("params", "errors"), BAD_COMBINATIONS)
def test_bad_combinations_are_400_naming_each_parameter(care_group, member_client, params, errors):
    response = member_client.get(CARE_STATS_URL, {"tenant_id": care_group.tenant.pk, **params})

    assert response.status_code == HTTPStatus.BAD_REQUEST
    expected = {
        name: [message.replace("LATEST", _latest()) for message in messages]
        for name, messages in errors.items()
    }
    assert response.json() == expected


def test_a_non_member_gets_404_for_a_range_before_its_parameters_are_judged(
    care_group, token_client
):
    outsider = token_client(MembershipFactory(tenant=TenantFactory()).user)
    for params in (range_query(care_group), range_query(care_group, date_to="garbage")):
        response = outsider.get(CARE_STATS_URL, params)
        assert (response.status_code, response.json()) == (
            HTTPStatus.NOT_FOUND,
            {"detail": "Not found."},
        )


def test_a_range_reaching_a_year_after_today_is_accepted(care_group, member_client):
    latest = date.fromisoformat(_latest())
    response = member_client.get(
        CARE_STATS_URL,
        range_query(
            care_group,
            date_from=(latest - timedelta(days=3)).isoformat(),
            date_to=latest.isoformat(),
        ),
    )
    assert response.status_code == HTTPStatus.OK


def test_the_json_body_is_what_the_documented_range_serializer_gives(care_group, member_client):
    from stats.selectors import care_stats_range_get
    from stats.tests.factories import tenant_info_of

    stats = care_stats_range_get(
        tenant=tenant_info_of(care_group.tenant), date_from=RANGE_FROM, date_to=RANGE_TO
    )
    documented = CareStatsView.RangeOutputSerializer(stats.as_dict()).data

    assert stats.as_json() == documented
    assert list(stats.as_json()) == list(documented)  # same key order, same rendered bytes
    assert [list(day) for day in stats.as_json()["by_day"]] == [
        list(day) for day in documented["by_day"]
    ]
