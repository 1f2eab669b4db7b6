"""Every statement of the stats selectors is an index-only scan: the covering index for a
day, the rollups' primary keys for a range."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from carenotes.notes.models import STATS_INDEX_NAME
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.selectors import care_stats_get, care_stats_range_get
from stats.tests.factories import tenant_info_of
from tenants.rls import rls_owner
from tenants.tests.factories import FacilityFactory

# VACUUM cannot run inside the per-test transaction; it sets the visibility map that
# index-only scans rely on.
pytestmark = pytest.mark.django_db(transaction=True)


def _explain(sql: str) -> str:
    with transaction.atomic(), connection.cursor() as cursor:
        # A tiny table (bloated by earlier tests' rolled-back rows) would be read
        # sequentially or through a bitmap of a smaller index; forbidding both asks the
        # planner whether an index can answer the statement without visiting the table.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_stats_statements_are_index_only_scans():
    facility = FacilityFactory()
    patient = PatientFactory(facility=facility)
    other_facility = FacilityFactory(tenant=facility.tenant)
    start = datetime(2025, 3, 10, 6, tzinfo=UTC)
    CareNoteFactory.create_batch(5, patient=patient, created_at=start + timedelta(hours=1))
    CareNoteFactory(patient=PatientFactory(facility=other_facility), created_at=start)
    # Other days of the same tenant, as a real tenant has: with only the day's notes in the
    # table every index of the tenant is as cheap, and the planner may take any of them.
    for days_before in range(1, 61):
        CareNoteFactory.create_batch(
            4, patient=patient, created_at=start - timedelta(days=days_before)
        )
    with rls_owner(), connection.cursor() as cursor:  # VACUUM is the owner's
        cursor.execute("VACUUM ANALYZE carenotes_carenote")
    info = tenant_info_of(facility.tenant)

    with CaptureQueriesContext(connection) as captured:
        subset = care_stats_get(tenant=info, day=date(2025, 3, 10), facility_ids=(facility.pk,))
        every = care_stats_get(tenant=info, day=date(2025, 3, 10))

    assert (subset.total_notes, every.total_notes) == (5, 6)
    assert len(captured.captured_queries) == 4
    for query in captured.captured_queries:
        plan = _explain(query["sql"])
        assert f"Index Only Scan using {STATS_INDEX_NAME}" in plan, plan


def test_range_statements_are_index_only_scans_of_the_rollups():
    facility = FacilityFactory()
    residents = [PatientFactory(facility=facility) for _ in range(3)]
    other_facility = FacilityFactory(tenant=facility.tenant)
    start = datetime(2025, 3, 1, 9, tzinfo=UTC)
    for day in range(40):
        for index, patient in enumerate(residents):
            CareNoteFactory(
                patient=patient, priority=1 + index, created_at=start + timedelta(days=day)
            )
    CareNoteFactory(patient=PatientFactory(facility=other_facility), created_at=start)
    with rls_owner(), connection.cursor() as cursor:
        for table in ("stats_day_counts", "stats_day_residents", "carenotes_patient"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    info = tenant_info_of(facility.tenant)

    with CaptureQueriesContext(connection) as captured:
        every = care_stats_range_get(
            tenant=info, date_from=date(2025, 3, 5), date_to=date(2025, 3, 25)
        )
        subset = care_stats_range_get(
            tenant=info,
            date_from=date(2025, 3, 1),
            date_to=date(2025, 3, 1),
            facility_ids=(other_facility.pk,),
        )

    assert (every.total_notes, every.patients) == (21 * 3, 3)
    assert (subset.total_notes, subset.patients) == (1, 1)
    counts_plans = [_explain(q["sql"]) for q in captured.captured_queries[0::2]]
    patients_plans = [_explain(q["sql"]) for q in captured.captured_queries[1::2]]
    assert len(captured.captured_queries) == 4
    for plan in counts_plans:
        assert "Index Only Scan using stats_day_counts_pkey" in plan, plan
    for plan in patients_plans:
        assert "Index Only Scan using stats_day_residents_pkey" in plan, plan
        assert "Nested Loop" in plan and "Limit" in plan, plan  # one probe per resident
