"""seed_notes makes the month partitions of its notes first: no seeded note waits in the
default partition."""

from datetime import date

import pytest
from django.db import connection

from carenotes.notes import seeding
from carenotes.notes.models import CareNote
from carenotes.notes.partitions import NOTES_TABLE, month_partition_name
from carenotes.notes.tests.test_seed_notes import (
    SMALL,
    _compact_tables_afterwards,  # noqa: F401 (autouse: compacts what these tests bloat)
)
from tenants.rls import rls_owner

pytestmark = pytest.mark.django_db

# Sydney's window starts on 31 December 2024 in UTC; Los Angeles' ends on 1 March in UTC.
WINDOW = {
    "days": 60,
    "end_date": date(2025, 2, 28),
    "timezones": "Australia/Sydney,America/Los_Angeles,UTC",
}
MONTHS = [date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)]


def notes_per_partition() -> dict[str, int]:
    with rls_owner(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text, count(*) FROM {NOTES_TABLE} GROUP BY 1 ORDER BY 1"
        )
        return dict(cursor.fetchall())


def test_every_seeded_note_lands_in_its_month_partition():
    config = seeding.seed_config_build(**{**SMALL, **WINDOW})
    result = seeding.seed_notes_run(config=config)

    counts = notes_per_partition()
    assert sorted(counts) == [month_partition_name(month) for month in MONTHS]
    assert sum(counts.values()) == CareNote.objects.count() == SMALL["notes"]
    assert "partitions" in result.timings


PARENT_INDEXES_SQL = f"""
SELECT c.relname, i.indisvalid,
       (SELECT count(*) FROM pg_inherits h WHERE h.inhparent = i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = '{NOTES_TABLE}'::regclass ORDER BY 1
"""


def test_a_seed_that_rebuilds_the_indexes_builds_them_on_every_partition():
    # Dropped and built again after the load ("ON ONLY" in their definitions would leave the
    # parent's indexes invalid and every partition without them: plans fall to heap scans).
    config = seeding.seed_config_build(**{**SMALL, **WINDOW})
    seeding.seed_notes_run(config=config, index_strategy="rebuild")
    with rls_owner(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", [NOTES_TABLE]
        )
        (partitions,) = cursor.fetchone()
        cursor.execute(PARENT_INDEXES_SQL)
        indexes = cursor.fetchall()
        cursor.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE h.inhparent = %s::regclass AND c.relname LIKE 'carenote_stats_covering_idx_%%'",
            [NOTES_TABLE],
        )
        (named,) = cursor.fetchone()
    assert len(indexes) == 6  # the primary key and the five of CareNote.Meta.indexes
    assert all(valid and children == partitions for _, valid, children in indexes), indexes
    assert named == partitions  # each partition's index named after the parent's
