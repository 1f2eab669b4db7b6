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
