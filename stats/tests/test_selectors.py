"""The optimized daily stats query: exact numbers, local-day bounds, scope, statement count."""

from datetime import UTC, date, datetime, timedelta

import pytest

from carenotes.core.days import local_today
from carenotes.notes.models import Category
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.reference import care_stats_reference
from stats.selectors import (
    PRIORITY_KEYS,
    CareStats,
    avg_notes_per_patient,
    care_stats_get,
)
from stats.tests.factories import DAY, NOON, care_group_create, tenant_info_of
from tenants.principal import TenantInfo
from tenants.tests.factories import FacilityFactory, TenantFactory

pytestmark = pytest.mark.django_db


def _zeros(keys) -> dict[str, int]:
    return dict.fromkeys(keys, 0)


@pytest.fixture
def london_group():
    """The care group without notes: a London tenant, two facilities, three patients."""
    group = care_group_create(with_notes=False)
    return group.tenant, group.north, group.south, group.patients


def test_counts_one_day_by_category_priority_and_facility(london_group):
    tenant, north, south, (ann, bob, cat) = london_group
    CareNoteFactory(patient=ann, category=Category.MEDICATION, priority=1, created_at=NOON)
    CareNoteFactory(patient=ann, category=Category.MEDICATION, priority=5, created_at=NOON)
    CareNoteFactory(patient=bob, category=Category.TREATMENT, priority=5, created_at=NOON)
    CareNoteFactory(
        patient=cat,
        category=Category.OBSERVATION,
        priority=2,
        created_at=datetime(2025, 3, 10, 0, 0, tzinfo=UTC),  # local midnight: included
    )
    # Outside the day or the tenant: never counted.
    CareNoteFactory(patient=cat, created_at=datetime(2025, 3, 9, 23, 59, 59, tzinfo=UTC))
    CareNoteFactory(patient=cat, created_at=datetime(2025, 3, 11, 0, 0, tzinfo=UTC))
    other = FacilityFactory(tenant=TenantFactory(timezone="Europe/London"))
    CareNoteFactory(patient=PatientFactory(facility=other), created_at=NOON)

    info = tenant_info_of(tenant)
    stats = care_stats_get(tenant=info, day=DAY, facility_ids=info.facility_ids)

    assert stats == CareStats(
        tenant_id=tenant.pk,
        date=DAY,
        timezone="Europe/London",
        facility_ids=(north.pk, south.pk),
        total_notes=4,
        by_category={"medication": 2, "observation": 1, "treatment": 1},
        by_priority={"1": 1, "2": 1, "3": 0, "4": 0, "5": 2},
        by_facility={str(north.pk): 3, str(south.pk): 1},
        patients=3,
        avg_notes_per_patient=1.33,
    )


def test_facility_scope_limits_the_counts_and_lists_empty_facilities(london_group):
    tenant, _, south, (ann, _, cat) = london_group
    CareNoteFactory(patient=ann, created_at=NOON)
    CareNoteFactory(patient=cat, created_at=NOON)
    empty = FacilityFactory(tenant=tenant)
    info = tenant_info_of(tenant)

    stats = care_stats_get(tenant=info, day=DAY, facility_ids=(south.pk, empty.pk))

    assert stats.total_notes == 1
    assert stats.by_facility == {str(south.pk): 1, str(empty.pk): 0}
    assert stats.avg_notes_per_patient == 1.0


def test_a_day_without_notes_is_all_zeros(london_group):
    tenant, north, south, _ = london_group
    info = tenant_info_of(tenant)

    stats = care_stats_get(tenant=info, day=DAY, facility_ids=info.facility_ids)

    assert stats.total_notes == 0
    assert stats.by_category == _zeros(Category.values)
    assert stats.by_priority == _zeros(PRIORITY_KEYS)
    assert stats.by_facility == {str(north.pk): 0, str(south.pk): 0}
    assert stats.avg_notes_per_patient == 0


def test_25_hour_day_counts_both_ends_and_not_the_neighbours():
    tenant = TenantFactory(timezone="Europe/London")
    patient = PatientFactory(facility=FacilityFactory(tenant=tenant))
    inside = [
        datetime(2025, 10, 25, 23, 0, tzinfo=UTC),  # 00:00 BST, first instant of the day
        datetime(2025, 10, 26, 0, 30, tzinfo=UTC),  # 01:30 BST
        datetime(2025, 10, 26, 1, 30, tzinfo=UTC),  # 01:30 GMT, the repeated hour
        datetime(2025, 10, 26, 23, 59, 59, tzinfo=UTC),  # 23:59:59 GMT, last second
    ]
    outside = [
        datetime(2025, 10, 25, 22, 59, 59, tzinfo=UTC),
        datetime(2025, 10, 27, 0, 0, tzinfo=UTC),
    ]
    for created_at in inside + outside:
        CareNoteFactory(patient=patient, created_at=created_at)
    info = tenant_info_of(tenant)

    stats = care_stats_get(tenant=info, day=date(2025, 10, 26), facility_ids=info.facility_ids)

    assert stats.total_notes == len(inside)


def test_23_hour_day_ends_at_the_next_local_midnight():
    tenant = TenantFactory(timezone="America/New_York")
    patient = PatientFactory(facility=FacilityFactory(tenant=tenant))
    last_second = datetime(2025, 3, 10, 3, 59, 59, tzinfo=UTC)  # 23:59:59 EDT on 9 March
    next_day = datetime(2025, 3, 10, 4, 0, tzinfo=UTC)  # 00:00 EDT on 10 March
    first_second = datetime(2025, 3, 9, 5, 0, tzinfo=UTC)  # 00:00 EST on 9 March
    for created_at in (first_second, last_second, next_day):
        CareNoteFactory(patient=patient, created_at=created_at)
    info = tenant_info_of(tenant)

    day_stats = care_stats_get(tenant=info, day=date(2025, 3, 9), facility_ids=info.facility_ids)
    next_stats = care_stats_get(tenant=info, day=date(2025, 3, 10), facility_ids=info.facility_ids)

    assert (day_stats.total_notes, next_stats.total_notes) == (2, 1)


@pytest.mark.parametrize(
    ("total_notes", "patients", "expected"),
    [(0, 0, 0.0), (4, 3, 1.33), (2, 3, 0.67), (1, 8, 0.13), (107, 40, 2.68), (6, 2, 3.0)],
)
def test_average_is_rounded_half_up_to_two_decimals(total_notes, patients, expected):
    assert avg_notes_per_patient(total_notes=total_notes, patients=patients) == expected


def test_local_today_uses_the_tenant_time_zone():
    late_evening_utc = datetime(2025, 3, 10, 20, 0, tzinfo=UTC)
    assert local_today(timezone_name="Asia/Kolkata", now=late_evening_utc) == date(2025, 3, 11)
    assert local_today(timezone_name="America/New_York", now=late_evening_utc) == DAY


@pytest.mark.parametrize("notes", [1, 40])
def test_two_statements_whatever_the_number_of_notes(
    london_group, django_assert_num_queries, notes
):
    tenant, _, _, patients = london_group
    for index in range(notes):
        CareNoteFactory(
            patient=patients[index % len(patients)],
            category=Category.values[index % len(Category.values)],
            priority=1 + index % 5,
            created_at=NOON + timedelta(minutes=index),
        )
    info = tenant_info_of(tenant)

    with django_assert_num_queries(2):
        stats = care_stats_get(tenant=info, day=DAY, facility_ids=info.facility_ids)

    assert stats.total_notes == notes


def test_an_empty_day_costs_one_statement(london_group, django_assert_num_queries):
    tenant, *_ = london_group
    info = tenant_info_of(tenant)
    with django_assert_num_queries(1):
        care_stats_get(tenant=info, day=DAY, facility_ids=info.facility_ids)


def test_reference_agrees_on_a_fixed_day(london_group):
    tenant, _, _, (ann, bob, cat) = london_group
    for patient, priority in [(ann, 1), (ann, 2), (bob, 4), (cat, 4), (cat, 4)]:
        CareNoteFactory(patient=patient, priority=priority, created_at=NOON)
    info = tenant_info_of(tenant)

    expected = care_stats_reference(tenant=info, day=DAY, facility_ids=info.facility_ids)

    assert care_stats_get(tenant=info, day=DAY, facility_ids=info.facility_ids) == expected
    assert expected.total_notes == 5
    assert expected.avg_notes_per_patient == round(5 / 3, 2)


def test_the_json_body_is_what_the_documented_output_serializer_gives(london_group):
    from stats.views import CareStatsView

    tenant, _, _, (ann, bob, _cat) = london_group
    CareNoteFactory(patient=ann, priority=2, created_at=NOON)
    CareNoteFactory(patient=bob, priority=4, created_at=NOON)
    info = tenant_info_of(tenant)
    stats = care_stats_get(tenant=info, day=DAY, facility_ids=info.facility_ids)

    documented = CareStatsView.OutputSerializer(stats.as_dict()).data

    assert stats.as_json() == documented
    assert list(stats.as_json()) == list(documented)  # same key order, same rendered bytes
    assert stats.as_json()["date"] == DAY.isoformat()


def test_the_default_scopes_statements_are_prepared_and_subsets_are_not(london_group):
    """Every facility: prepared once per connection. A subset: its ids as literals."""
    from django.db import connection

    tenant, north, _, (ann, *_rest) = london_group
    CareNoteFactory(patient=ann, created_at=NOON)
    info = tenant_info_of(tenant)
    for _ in range(3):
        care_stats_get(tenant=info, day=DAY)
        care_stats_get(tenant=info, day=DAY, facility_ids=(north.pk,))
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall() if "carenotes_carenote" in row[0]]
    assert len(prepared) == 2, prepared
    assert all("facility_id = ANY" not in sql for sql in prepared), prepared


def test_the_default_scope_counts_a_facility_the_cached_facts_do_not_list_yet(london_group):
    tenant, north, south, (ann, _bob, cat) = london_group
    CareNoteFactory(patient=ann, created_at=NOON)
    CareNoteFactory(patient=cat, created_at=NOON)
    lagging = TenantInfo(tenant.pk, tenant.name, tenant.timezone, (north.pk,))

    stats = care_stats_get(tenant=lagging, day=DAY)

    assert stats.facility_ids == tuple(sorted((north.pk, south.pk)))
    assert stats.by_facility == {str(north.pk): 1, str(south.pk): 1}
    assert stats.total_notes == 2
