"""Every statement of the stats selector is an index-only scan of the covering index."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from carenotes.notes.models import STATS_INDEX_NAME
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.selectors import care_stats_get
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
