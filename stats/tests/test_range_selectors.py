"""The range selector: exact numbers per range and per day from the rollups, two statements."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection

from carenotes.notes.models import Category
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.reference import care_stats_range_reference
from stats.selectors import (
    PRIORITY_KEYS,
    CareDayCounts,
    CareRangeStats,
    care_stats_get,
    care_stats_range_get,
    range_days,
)
from stats.tests.factories import care_group_create, tenant_info_of
from tenants.principal import TenantInfo
from tenants.tests.factories import FacilityFactory

pytestmark = pytest.mark.django_db

FIRST, LAST = date(2025, 3, 9), date(2025, 3, 11)


def _zeros(keys) -> dict[str, int]:
    return dict.fromkeys(keys, 0)


def _at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)  # London is on GMT


@pytest.fixture
def group():
    return care_group_create(with_notes=False)


def test_counts_a_range_per_day_and_in_total_with_distinct_residents(group):
    ann, bob, cat = group.patients
    CareNoteFactory(patient=ann, category=Category.MEDICATION, priority=1, created_at=_at(FIRST))
    CareNoteFactory(patient=ann, category=Category.MEDICATION, priority=5, created_at=_at(LAST))
    CareNoteFactory(patient=cat, category=Category.TREATMENT, priority=5, created_at=_at(LAST))
    # Outside the range or the tenant: never counted.
    CareNoteFactory(patient=bob, created_at=_at(FIRST - timedelta(days=1), hour=23))
    CareNoteFactory(patient=bob, created_at=_at(LAST + timedelta(days=1), hour=0))
    CareNoteFactory(patient=PatientFactory(facility=FacilityFactory()), created_at=_at(FIRST))
    info = tenant_info_of(group.tenant)

    stats = care_stats_range_get(tenant=info, date_from=FIRST, date_to=LAST)

    def day(on, total, categories, priorities):
        return CareDayCounts(
            date=on,
            total_notes=total,
            by_category={**_zeros(Category.values), **categories},
            by_priority={**_zeros(PRIORITY_KEYS), **priorities},
        )

    assert stats == CareRangeStats(
        tenant_id=group.tenant.pk,
        date_from=FIRST,
        date_to=LAST,
        timezone="Europe/London",
        facility_ids=(group.north.pk, group.south.pk),
        total_notes=3,
        by_category={"medication": 2, "observation": 0, "treatment": 1},
        by_priority={"1": 1, "2": 0, "3": 0, "4": 0, "5": 2},
        by_facility={str(group.north.pk): 2, str(group.south.pk): 1},
        patients=2,  # ann on two days counts once
        avg_notes_per_patient=1.5,
        by_day=(
            day(FIRST, 1, {"medication": 1}, {"1": 1}),
            day(date(2025, 3, 10), 0, {}, {}),
            day(LAST, 2, {"medication": 1, "treatment": 1}, {"5": 2}),
        ),
    )


def test_a_facility_scope_counts_only_its_notes_and_residents(group):
    ann, _, cat = group.patients
    CareNoteFactory(patient=ann, created_at=_at(FIRST))
    CareNoteFactory(patient=cat, created_at=_at(FIRST))
    # cat moved to north later: her note there counts for north, not south.
    cat.facility = group.north
    cat.save()
    CareNoteFactory(patient=cat, facility=group.north, created_at=_at(LAST))
    empty = FacilityFactory(tenant=group.tenant)
    info = tenant_info_of(group.tenant)

    south = care_stats_range_get(
        tenant=info, date_from=FIRST, date_to=LAST, facility_ids=(group.south.pk, empty.pk)
    )
    north = care_stats_range_get(
        tenant=info, date_from=FIRST, date_to=LAST, facility_ids=(group.north.pk,)
    )

    assert (south.total_notes, south.patients) == (1, 1)
    assert south.by_facility == {str(group.south.pk): 1, str(empty.pk): 0}
    assert (north.total_notes, north.patients) == (2, 2)


def test_a_range_without_notes_lists_every_day_with_zeros(group):
    info = tenant_info_of(group.tenant)
    stats = care_stats_range_get(tenant=info, date_from=FIRST, date_to=LAST)

    assert [entry.date for entry in stats.by_day] == range_days(date_from=FIRST, date_to=LAST)
    assert all(entry.total_notes == 0 for entry in stats.by_day)
    assert stats.by_facility == {str(group.north.pk): 0, str(group.south.pk): 0}
    assert (stats.total_notes, stats.patients, stats.avg_notes_per_patient) == (0, 0, 0.0)


@pytest.mark.parametrize("days", [1, 92])
@pytest.mark.parametrize("notes", [1, 200])
def test_two_statements_whatever_the_range_and_the_notes(
    group, django_assert_num_queries, days, notes
):
    for index in range(notes):
        CareNoteFactory(
            patient=group.patients[index % 3],
            priority=1 + index % 5,
            created_at=_at(FIRST) + timedelta(days=index % days, minutes=index),
        )
    info = tenant_info_of(group.tenant)
    last = FIRST + timedelta(days=days - 1)

    with django_assert_num_queries(2):
        stats = care_stats_range_get(tenant=info, date_from=FIRST, date_to=last)
    with django_assert_num_queries(2):
        care_stats_range_get(
            tenant=info, date_from=FIRST, date_to=last, facility_ids=(group.north.pk,)
        )

    assert (stats.total_notes, len(stats.by_day)) == (notes, days)


def test_an_empty_range_costs_one_statement(group, django_assert_num_queries):
    info = tenant_info_of(group.tenant)
    with django_assert_num_queries(1):
        care_stats_range_get(tenant=info, date_from=FIRST, date_to=LAST)


def test_each_day_of_a_range_is_that_days_answer(group):
    ann, bob, cat = group.patients
    for index, patient in enumerate([ann, bob, cat, ann, bob]):
        CareNoteFactory(patient=patient, priority=1 + index, created_at=_at(FIRST, hour=index))
        CareNoteFactory(patient=patient, created_at=_at(LAST, hour=23 - index))
    info = tenant_info_of(group.tenant)

    stats = care_stats_range_get(tenant=info, date_from=FIRST, date_to=LAST)

    for entry in stats.by_day:
        day = care_stats_get(tenant=info, day=entry.date)
        assert (entry.total_notes, entry.by_category, entry.by_priority) == (
            day.total_notes,
            day.by_category,
            day.by_priority,
        )
    assert stats == care_stats_range_reference(
        tenant=info, date_from=FIRST, date_to=LAST, facility_ids=info.facility_ids
    )


def test_the_default_scope_counts_a_facility_the_cached_facts_do_not_list_yet(group):
    ann, _, cat = group.patients
    CareNoteFactory(patient=ann, created_at=_at(FIRST))
    CareNoteFactory(patient=cat, created_at=_at(LAST))
    lagging = TenantInfo(group.tenant.pk, group.tenant.name, "Europe/London", (group.north.pk,))

    stats = care_stats_range_get(tenant=lagging, date_from=FIRST, date_to=LAST)

    assert stats.facility_ids == (group.north.pk, group.south.pk)
    assert stats.by_facility == {str(group.north.pk): 1, str(group.south.pk): 1}


def test_the_default_scopes_statements_are_prepared_and_subsets_are_not(group):
    CareNoteFactory(patient=group.patients[0], created_at=_at(FIRST))
    info = tenant_info_of(group.tenant)
    for _ in range(3):
        care_stats_range_get(tenant=info, date_from=FIRST, date_to=LAST)
        care_stats_range_get(
            tenant=info, date_from=FIRST, date_to=LAST, facility_ids=(group.north.pk,)
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall() if "stats_day_" in row[0]]
    assert len(prepared) == 2, prepared
    assert all("facility_id = ANY" not in sql for sql in prepared), prepared


def test_the_range_reads_only_its_tenants_rollups():
    ours, _theirs = care_group_create(), care_group_create()  # both: 4 notes on 10 March
    info = tenant_info_of(ours.tenant)
    stats = care_stats_range_get(tenant=info, date_from=FIRST, date_to=LAST)
    assert (stats.total_notes, stats.patients) == (4, 3)
