"""Monthly partitions of the care notes: made ahead of time, filled from the default partition,
dropped past the retention period (``manage.py notes_partitions``; migration 0010 made the
table partitioned).

A note whose month has no partition lands in the default partition. Creating that month's
partition moves such notes into it, without firing any trigger (the day rollups already
count them, and a move is not a change of the care record). PostgreSQL would refuse to
create a partition whose range the default still holds rows of, so in one transaction that
holds the notes table exclusively: the default partition is detached (PostgreSQL 15 then
removes the row triggers it had cloned from the parent), each month's table is created as
a plain table, filled from it and attached (which clones the parent's triggers, indexes and
foreign keys onto it), the moved rows are deleted from the detached default, which is then
attached again. Nothing is lost or doubled: the rows deleted must be the rows copied, or
the transaction rolls back.

Dropping a month past retention (DETACH, DROP) fires no trigger either: the amendments of
its notes are deleted first (a note's amendments go with it, as the ORM's delete does), the
day rollups of every tenant that had notes in it are recounted from the notes that remain,
in the same transaction, and the tenants' cached stats of those days are made stale after
commit (``care_notes_changed``).

Every statement runs as the database owner (``tenants.rls.rls_owner``), the only role that
may change the schema. A new partition gets no privilege for the application roles: row-level
security is the parent's, so they reach notes through the parent only.
"""

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.db import OperationalError, connection, transaction

from carenotes.notes.models import CareNote, CareNoteAmendment
from carenotes.notes.signals import care_notes_changed
from tenants.models import Tenant
from tenants.rls import APP_ROLE, SYSTEM_ROLE, rls_owner

NOTES_TABLE = CareNote._meta.db_table
AMENDMENTS_TABLE = CareNoteAmendment._meta.db_table
TENANTS_TABLE = Tenant._meta.db_table
APP_ROLES = (APP_ROLE, SYSTEM_ROLE)
# Bounds of the command's options: a typo must not create or keep thousands of tables.
MONTHS_AHEAD_MAX = 120
RETENTION_MONTHS_MAX = 1200
# How long the maintenance waits for a lock (the notes table's, the referenced tables' while
# foreign keys are validated). Waiting longer would stall every request queued behind it;
# the transaction then rolls back whole, and a later run does the work.
LOCK_TIMEOUT = "10s"
# lock_not_available, deadlock_detected: another transaction was in the way; retrying is safe.
LOCK_CONFLICTS = ("55P03", "40P01")
# The day rollups' recount of one tenant (stats migration 0003), called as SQL: the analytics
# sit above this app, and the rollups are kept by the database for whatever writes notes.
ROLLUPS_REBUILD_SQL = "SELECT stats_rollups_rebuild(%s::bigint)"

# Every partition of the notes table with its range, read from its bound expression (PostgreSQL
# writes the bounds with their UTC offset, so the casts do not depend on the session's zone).
PARTITIONS_SQL = f"""
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', b[1]::timestamptz,
       b[2]::timestamptz
FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
LEFT JOIN LATERAL regexp_match(
    pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)'
) AS b ON true
WHERE i.inhparent = '{NOTES_TABLE}'::regclass
ORDER BY 3 NULLS FIRST, 1
"""
COLUMNS_SQL = (
    "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
)


class PartitionLockError(RuntimeError):
    """The notes table (or a table its foreign keys reference) stayed locked past LOCK_TIMEOUT,
    or a deadlock aborted the run; nothing was changed."""


@dataclass(frozen=True)
class Partition:
    """A partition of the notes table: the default one, or one holding [start, end)."""

    name: str
    is_default: bool
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class PartitionCreated:
    """A month partition made, and how many notes moved into it from the default partition."""

    name: str
    month: date
    moved: int


@dataclass(frozen=True)
class PartitionDropped:
    """A month partition dropped, with the notes and amendments that went with it."""

    name: str
    notes: int
    amendments: int
    tenant_ids: tuple[int, ...]


def month_add(month: date, months: int) -> date:
    """Return the first day of the month ``months`` after (or before) ``month``'s."""
    year, index = divmod(month.year * 12 + month.month - 1 + months, 12)
    return date(year, index + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """Return [first instant, first instant of the next month) of ``month``'s month, in UTC."""
    first = month.replace(day=1)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    return start, datetime.combine(month_add(first, 1), time.min, tzinfo=UTC)


def month_partition_name(month: date) -> str:
    """Return the name of the partition holding the notes of ``month``'s month."""
    return f"{NOTES_TABLE}_p{month:%Y_%m}"


def months_ahead(*, today: date, ahead: int) -> list[date]:
    """Return the first days of ``today``'s month and of the ``ahead`` months after it."""
    return [month_add(today.replace(day=1), n) for n in range(ahead + 1)]


def months_spanning(*, start: datetime, end: datetime) -> list[date]:
    """Return the first days of the UTC months that instants in [start, end) fall in."""
    first = start.astimezone(UTC).date().replace(day=1)
    months = [first]
    while month_bounds(months[-1])[1] < end:
        months.append(month_add(months[-1], 1))
    return months


def partitions_get(cursor) -> list[Partition]:
    """Return the notes table's partitions: the default one first, then by range."""
    cursor.execute(PARTITIONS_SQL)
    return [Partition(*row) for row in cursor.fetchall()]


def default_partition(partitions: Iterable[Partition]) -> Partition | None:
    """Return the default partition among ``partitions`` (None if there is none)."""
    return next((p for p in partitions if p.is_default), None)


def default_months(cursor) -> list[date]:
    """Return the first days of the UTC months the default partition holds notes of."""
    default = default_partition(partitions_get(cursor))
    if default is None:
        return []
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date "
        f"FROM {default.name} ORDER BY 1"
    )
    return [month for (month,) in cursor.fetchall()]


def months_missing(*, months: Iterable[date], partitions: Iterable[Partition]) -> list[date]:
    """Return the months (first days, sorted) of ``months`` that no partition starts at."""
    starts = {p.start for p in partitions if p.start is not None}
    return sorted({m.replace(day=1) for m in months if month_bounds(m)[0] not in starts})


@contextlib.contextmanager
def _notes_maintenance() -> Iterator:
    """Yield a cursor in a transaction (or savepoint) run as the owner that holds the notes
    table and its partitions exclusively until it ends.

    ``LOCK_TIMEOUT`` applies to every lock taken inside the block, and the caller's own
    setting is back after it. Deferred foreign key checks of notes this transaction wrote are
    run first: ALTER TABLE refuses a table with pending trigger events.
    """
    with rls_owner(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout')")
        (previous,) = cursor.fetchone()
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
        try:
            cursor.execute(f"LOCK TABLE {NOTES_TABLE} IN ACCESS EXCLUSIVE MODE")
            yield cursor
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) in LOCK_CONFLICTS:
                raise PartitionLockError(
                    f"{NOTES_TABLE} or a table it references stayed locked for more than "
                    f"{LOCK_TIMEOUT} (a long transaction?); nothing was changed, run it again"
                ) from exc
            raise
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def partitions_create(*, months: Iterable[date]) -> list[PartitionCreated]:
    """Create the partitions of ``months`` that do not exist; return them, oldest first.

    Notes of those months waiting in the default partition are moved into them (see the
    module docstring). Idempotent; takes no lock when every partition exists already.
    Runs as the owner, in a transaction of its own (or a savepoint of the caller's).
    """
    months = list(months)
    with rls_owner(), connection.cursor() as cursor:
        if not months_missing(months=months, partitions=partitions_get(cursor)):
            return []
    with _notes_maintenance() as cursor:
        partitions = partitions_get(cursor)
        missing = months_missing(months=months, partitions=partitions)
        default = default_partition(partitions)
        if default is not None:
            cursor.execute(f"ALTER TABLE {NOTES_TABLE} DETACH PARTITION {default.name}")
        cursor.execute(COLUMNS_SQL, [NOTES_TABLE])
        (columns,) = cursor.fetchone()
        created = [
            _month_partition_create(
                cursor, month=month, default=default.name if default else None, columns=columns
            )
            for month in missing
        ]
        if default is not None:
            cursor.execute(f"ALTER TABLE {NOTES_TABLE} ATTACH PARTITION {default.name} DEFAULT")
    return created


# (index of a partition, the parent's index it belongs to) for one partition of the notes.
PARTITION_INDEXES_SQL = """
SELECT child.relname, parent.relname
FROM pg_index parent_index
JOIN pg_class parent ON parent.oid = parent_index.indexrelid
JOIN pg_inherits i ON i.inhparent = parent.oid
JOIN pg_class child ON child.oid = i.inhrelid
JOIN pg_index child_index ON child_index.indexrelid = child.oid
WHERE parent_index.indrelid = %s::regclass AND child_index.indrelid = %s::regclass
"""


def partition_indexes_name(cursor, *, partition: str) -> None:
    """Name a partition's indexes after the parent's (carenote_stats_covering_idx_p2026_12),
    as migration 0010 does: a query plan names the index whichever partition it reads."""
    suffix = partition.removeprefix(f"{NOTES_TABLE}_")
    cursor.execute(PARTITION_INDEXES_SQL, [NOTES_TABLE, partition])
    for index, parent in cursor.fetchall():
        name = f"{parent[: 62 - len(suffix)]}_{suffix}"
        if index != name:
            cursor.execute(f'ALTER INDEX "{index}" RENAME TO "{name}"')


def _month_partition_create(
    cursor, *, month: date, default: str | None, columns: str
) -> PartitionCreated:
    """Create, fill from ``default`` (detached), attach and lock down ``month``'s partition."""
    name = month_partition_name(month)
    start, end = (bound.isoformat() for bound in month_bounds(month))
    in_month = f"created_at >= '{start}' AND created_at < '{end}'"
    # The CHECK spares ATTACH a scan proving the rows are the month's; dropped after it.
    cursor.execute(
        f"CREATE TABLE {name} (LIKE {NOTES_TABLE} INCLUDING CONSTRAINTS INCLUDING STORAGE, "
        f"CONSTRAINT {name}_month CHECK ({in_month}))"
    )
    moved = 0
    if default is not None:
        cursor.execute(
            f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {default} WHERE {in_month}"
        )
        moved = cursor.rowcount
    cursor.execute(
        f"ALTER TABLE {NOTES_TABLE} ATTACH PARTITION {name} "
        f"FOR VALUES FROM ('{start}') TO ('{end}')"
    )
    cursor.execute(f"ALTER TABLE {name} DROP CONSTRAINT {name}_month")
    partition_indexes_name(cursor, partition=name)
    # The owner's default privileges granted the application roles DML on the new table.
    cursor.execute(f"REVOKE ALL ON {name} FROM {', '.join(APP_ROLES)}")
    if moved:
        cursor.execute(f"DELETE FROM {default} WHERE {in_month}")
        if cursor.rowcount != moved:
            raise RuntimeError(
                f"moved {moved} notes into {name} but deleted {cursor.rowcount} from {default}"
            )
        cursor.execute(f"ANALYZE {name}")
    return PartitionCreated(name=name, month=month.replace(day=1), moved=moved)


def partitions_expired(
    *, partitions: Iterable[Partition], today: date, keep_months: int
) -> list[Partition]:
    """Return the month partitions wholly before the ``keep_months`` months before
    ``today``'s month (none when ``keep_months`` is 0: kept forever)."""
    if keep_months <= 0:
        return []
    cutoff, _ = month_bounds(month_add(today.replace(day=1), -keep_months))
    return [p for p in partitions if p.end is not None and p.end <= cutoff]


def partition_note_count(cursor, *, name: str) -> int:
    """Return how many notes partition ``name`` holds."""
    cursor.execute(f"SELECT count(*) FROM {name}")
    return cursor.fetchone()[0]


def default_notes_before(cursor, *, before: datetime) -> int:
    """Return how many notes the default partition holds that are older than ``before``."""
    default = default_partition(partitions_get(cursor))
    if default is None:
        return 0
    cursor.execute(f"SELECT count(*) FROM {default.name} WHERE created_at < %s", [before])
    return cursor.fetchone()[0]


def partitions_drop(*, names: Iterable[str]) -> list[PartitionDropped]:
    """Detach and drop the month partitions ``names`` with their notes' amendments; recount
    the day rollups of the tenants whose notes went. One transaction; returns what went."""
    names = list(names)
    if not names:
        return []
    changed: dict[int, set[date]] = {}
    with _notes_maintenance() as cursor:
        present = {p.name for p in partitions_get(cursor) if not p.is_default}
        dropped = [
            _month_partition_drop(cursor, name=name, changed=changed)
            for name in names
            if name in present
        ]
        for tenant_id in sorted(changed):
            cursor.execute(ROLLUPS_REBUILD_SQL, [tenant_id])
        for tenant_id, days in changed.items():
            transaction.on_commit(
                lambda tenant_id=tenant_id, days=frozenset(days): care_notes_changed.send(
                    sender=CareNote, tenant_id=tenant_id, days=days
                )
            )
    return dropped


def _month_partition_drop(cursor, *, name: str, changed: dict[int, set[date]]) -> PartitionDropped:
    """Drop one partition; add its tenants' local days of notes to ``changed``."""
    cursor.execute(
        f"SELECT n.tenant_id, count(*), array_agg(DISTINCT (n.created_at AT TIME ZONE t.timezone)"
        f"::date) FROM {name} AS n JOIN {TENANTS_TABLE} AS t ON t.id = n.tenant_id GROUP BY 1"
    )
    rows = cursor.fetchall()
    for tenant_id, _, days in rows:
        changed.setdefault(tenant_id, set()).update(days)
    # Row by row, as any deletion of an amendment: its change history records it.
    cursor.execute(
        f"DELETE FROM {AMENDMENTS_TABLE} AS a USING {name} AS n "
        "WHERE a.tenant_id = n.tenant_id AND a.note_id = n.id"
    )
    amendments = cursor.rowcount
    cursor.execute(f"ALTER TABLE {NOTES_TABLE} DETACH PARTITION {name}")
    cursor.execute(f"DROP TABLE {name}")
    return PartitionDropped(
        name=name,
        notes=sum(count for _, count, _ in rows),
        amendments=amendments,
        tenant_ids=tuple(sorted(tenant_id for tenant_id, _, _ in rows)),
    )
