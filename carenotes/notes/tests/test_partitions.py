"""Monthly note partitions: made ahead, filled from the default partition without firing a
trigger, closed to the application roles (carenotes/notes/partitions.py, notes_partitions)."""

from datetime import UTC, date, datetime, time, timedelta
from http import HTTPStatus
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection, transaction
from django.utils import timezone

from carenotes.notes import partitions
from carenotes.notes.models import CareNote, CareNoteAmendmentEvent, CareNoteEvent
from carenotes.notes.partitions import (
    MONTHS_AHEAD_MAX,
    NOTES_TABLE,
    PartitionCreated,
    month_add,
    month_bounds,
    month_partition_name,
    months_ahead,
    months_spanning,
    partitions_create,
    partitions_get,
)
from carenotes.notes.tests.factories import CareNoteFactory
from tenants.rls import rls_owner, rls_system, rls_tenants

pytestmark = pytest.mark.django_db

DEFAULT_PARTITION = f"{NOTES_TABLE}_default"


def this_month() -> date:
    return timezone.now().date().replace(day=1)


def partition_ranges() -> dict[str, tuple[datetime | None, datetime | None]]:
    """Return every partition of the notes table by name, with its range."""
    with rls_owner(), connection.cursor() as cursor:
        return {p.name: (p.start, p.end) for p in partitions_get(cursor)}


def where(note: CareNote) -> list[str]:
    """Return the partition each row with the note's id is stored in (owner's view)."""
    with rls_owner(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {NOTES_TABLE} WHERE id = %s", [note.pk]
        )
        return [name for (name,) in cursor.fetchall()]


def rollups_and_history(tenant_id: int) -> tuple:
    """Return the tenant's day rollup rows and the number of change-history rows."""
    with rls_owner(), connection.cursor() as cursor:
        rows = []
        for table in ("stats_day_counts", "stats_day_residents"):
            cursor.execute(
                f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY 1, 2, 3, 4", [tenant_id]
            )
            rows.append(cursor.fetchall())
    return rows, CareNoteEvent.objects.count(), CareNoteAmendmentEvent.objects.count()


def run(*args: str) -> str:
    out = StringIO()
    call_command("notes_partitions", *args, stdout=out)
    return out.getvalue()


def noon(month: date, day: int = 10) -> datetime:
    return datetime.combine(month.replace(day=day), time(12), tzinfo=UTC)


def test_month_arithmetic_and_names():
    assert month_add(date(2026, 12, 1), 1) == date(2027, 1, 1)
    assert month_add(date(2027, 1, 31), -13) == date(2025, 12, 1)
    assert month_bounds(date(2024, 2, 29)) == (
        datetime(2024, 2, 1, tzinfo=UTC),
        datetime(2024, 3, 1, tzinfo=UTC),
    )
    assert month_partition_name(date(2027, 3, 5)) == "carenotes_carenote_p2027_03"
    assert months_ahead(today=date(2026, 11, 30), ahead=2) == [
        date(2026, 11, 1),
        date(2026, 12, 1),
        date(2027, 1, 1),
    ]
    # A window ending at a month's first instant does not reach into that month.
    assert months_spanning(
        start=datetime(2026, 10, 31, 23, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC)
    ) == [date(2026, 10, 1), date(2026, 11, 1)]


def test_the_partitions_the_migration_made_are_found_with_their_ranges():
    found = partition_ranges()
    assert found[DEFAULT_PARTITION] == (None, None)
    for month in months_ahead(today=this_month(), ahead=3):
        assert found[month_partition_name(month)] == month_bounds(month)


def test_a_note_of_a_month_without_partition_waits_in_the_default_then_moves_once(
    carer_client, patient
):
    month = month_add(this_month(), -6)
    assert month_partition_name(month) not in partition_ranges()
    note = CareNoteFactory(patient=patient, created_at=noon(month))
    earlier = CareNoteFactory(patient=patient, created_at=noon(month_add(month, -1)))
    assert where(note) == where(earlier) == [DEFAULT_PARTITION]
    read = carer_client.get(f"/api/notes/{note.pk}/")
    assert read.status_code == HTTPStatus.OK and read.json()["id"] == note.pk
    before = rollups_and_history(patient.tenant_id)
    assert before[0][0], "the day rollups count the note"

    created = partitions_create(months=[month])

    name = month_partition_name(month)
    assert created == [PartitionCreated(name=name, month=month, moved=1)]
    assert where(note) == [name]
    assert where(earlier) == [DEFAULT_PARTITION]
    assert rollups_and_history(patient.tenant_id) == before
    assert carer_client.get(f"/api/notes/{note.pk}/").json() == read.json()


def test_from_default_empties_the_default_partition_and_says_what_moved(patient):
    months = [month_add(this_month(), -9), month_add(this_month(), -7)]
    notes = [
        CareNoteFactory(patient=patient, created_at=noon(m, day)) for m in months for day in (1, 28)
    ]
    # The last instant of a month and the first of the next belong to different partitions.
    edge = CareNoteFactory(
        patient=patient, created_at=month_bounds(months[0])[1] - timedelta(microseconds=1)
    )
    before = rollups_and_history(patient.tenant_id)

    out = run("--from-default", "--ahead", "0")

    assert out.splitlines() == [
        f"Created {month_partition_name(months[0])} and moved 3 notes into it from the default "
        "partition.",
        f"Created {month_partition_name(months[1])} and moved 2 notes into it from the default "
        "partition.",
    ]
    assert [where(n) for n in [*notes, edge]] == [
        [month_partition_name(months[0])],
        [month_partition_name(months[0])],
        [month_partition_name(months[1])],
        [month_partition_name(months[1])],
        [month_partition_name(months[0])],
    ]
    with rls_owner(), connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {DEFAULT_PARTITION}")
        assert cursor.fetchone() == (0,)
    assert CareNote.objects.count() == 5
    assert rollups_and_history(patient.tenant_id) == before


def test_a_detached_default_partition_has_no_trigger_left_to_fire():
    """What the move relies on (PostgreSQL 15): DETACH removes the cloned row triggers."""

    def triggers() -> list[str]:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [DEFAULT_PARTITION],
        )
        return sorted(name for (name,) in cursor.fetchall())

    with rls_owner(), transaction.atomic(), connection.cursor() as cursor:
        attached = triggers()
        cursor.execute(f"ALTER TABLE {NOTES_TABLE} DETACH PARTITION {DEFAULT_PARTITION}")
        assert triggers() == []
        cursor.execute(f"ALTER TABLE {NOTES_TABLE} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")
        assert triggers() == attached
        transaction.set_rollback(True)
    assert "carenote_amendments_restrict" in attached
    assert any(name.startswith("pgtrigger_delete_record") for name in attached)


def test_ahead_creates_exactly_the_missing_months_and_is_idempotent():
    existing = partition_ranges()
    wanted = months_ahead(today=this_month(), ahead=6)
    missing = [m for m in wanted if month_partition_name(m) not in existing]
    assert missing, "the migration made only the current month and three after it"

    out = run("--ahead", "6")

    assert out.splitlines() == [
        f"Created {month_partition_name(m)} and moved 0 notes into it from the default partition."
        for m in missing
    ]
    after = partition_ranges()
    assert {name: after[name] for name in set(after) - set(existing)} == {
        month_partition_name(m): month_bounds(m) for m in missing
    }
    assert run("--ahead", "6") == "Nothing to do: the current month and 6 after it exist.\n"
    assert partition_ranges() == after


def test_ahead_defaults_to_the_setting(settings):
    settings.NOTES_PARTITIONS_AHEAD = 5
    run()
    assert month_partition_name(month_add(this_month(), 5)) in partition_ranges()
    assert month_partition_name(month_add(this_month(), 6)) not in partition_ranges()


def test_dry_run_creates_nothing():
    before = partition_ranges()
    out = run("--ahead", "4", "--dry-run")
    assert out == f"Would create {month_partition_name(month_add(this_month(), 4))}.\n"
    assert partition_ranges() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ahead", "-1"], "--ahead must be between 0 and 120, got -1"),
        (["--ahead", str(MONTHS_AHEAD_MAX + 1)], "--ahead must be between 0 and 120, got 121"),
        (["--drop-older-than", "-3"], "--drop-older-than must be between 0 and 1200, got -3"),
    ],
)
def test_out_of_range_options_are_refused_naming_them(args, message):
    before = partition_ranges()
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert partition_ranges() == before


def test_a_held_lock_times_out_and_changes_nothing(monkeypatch):
    """A long transaction on the notes: the command gives up, whole, instead of stalling."""
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "100ms")
    before = partition_ranges()
    # A second session of the test database (Django's own parameters: a socket directory of
    # the embedded server included); it holds its lock until it closes.
    with connection.get_new_connection(connection.get_connection_params()) as other:
        other.execute(f"LOCK TABLE {NOTES_TABLE} IN ACCESS SHARE MODE")
        with pytest.raises(CommandError, match="stayed locked for more than 100ms"):
            run("--ahead", "5")
    assert partition_ranges() == before


def test_the_application_roles_have_no_privilege_on_any_partition(patient):
    created = partitions_create(months=[month_add(this_month(), -4), month_add(this_month(), 5)])
    assert len(created) == 2
    note = CareNoteFactory(patient=patient, created_at=noon(this_month()))
    names = sorted(partition_ranges())
    assert {c.name for c in created} | {DEFAULT_PARTITION} <= set(names)
    for scope in (rls_tenants([patient.tenant_id]), rls_system()):
        with scope:
            for name in names:
                refused = pytest.raises(
                    ProgrammingError, match=f"permission denied for table {name}"
                )
                with refused, transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(f"SELECT 1 FROM {name} LIMIT 1")
    # Through the parent, under its row-level security, the note is there.
    with rls_tenants([patient.tenant_id]):
        assert list(CareNote.objects.values_list("pk", flat=True)) == [note.pk]
