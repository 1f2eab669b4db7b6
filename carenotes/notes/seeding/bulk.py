"""Loading the note table fast: chunked inserts, indexes and foreign keys rebuilt after, VACUUM."""

from collections.abc import Callable

from django.db import connection

from carenotes.notes.models import CareNote, Patient
from carenotes.notes.partitions import partition_indexes_name, partitions_get
from carenotes.notes.seeding.sql import NOTE_INSERT
from tenants.models import Facility

# Rows per INSERT statement: small enough for a lively progress bar, large enough that
# per-statement overhead is invisible.
NOTE_CHUNK_ROWS = 250_000
# Dropping secondary indexes and foreign keys and rebuilding them after the load pays off
# when the load is at least this many rows and at least as large as the table already is.
REBUILD_MIN_ROWS = 50_000
INDEX_STRATEGIES = ("auto", "rebuild", "keep")
MAINTENANCE_WORK_MEM = "256MB"

NOTE_TABLE = CareNote._meta.db_table
INDEX_DEFS_SQL = """
SELECT c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %s::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname
"""
FOREIGN_KEY_DEFS_SQL = """
SELECT conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE conrelid = %s::regclass AND contype = 'f'
ORDER BY conname
"""

ProgressCallback = Callable[[int, int], None]


def note_table_secondary_definitions(cursor) -> tuple[list[tuple], list[tuple]]:
    """Return (name, definition) of the note table's secondary indexes and foreign keys."""
    cursor.execute(INDEX_DEFS_SQL, [NOTE_TABLE])
    indexes = cursor.fetchall()
    cursor.execute(FOREIGN_KEY_DEFS_SQL, [NOTE_TABLE])
    return indexes, cursor.fetchall()


def rebuild_wanted(*, strategy: str, notes: int, cursor) -> bool:
    """Return whether to drop and rebuild the note table's indexes and foreign keys."""
    if strategy != "auto":
        return strategy == "rebuild"
    if notes < REBUILD_MIN_ROWS:
        return False
    cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [NOTE_TABLE])
    existing = max(cursor.fetchone()[0], 0)
    return notes >= existing


def secondary_drop(cursor, indexes: list[tuple], foreign_keys: list[tuple]) -> None:
    """Drop the given secondary indexes and foreign keys of the note table."""
    for name, _ in foreign_keys:
        cursor.execute(f'ALTER TABLE {NOTE_TABLE} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')


def secondary_restore(cursor, indexes: list[tuple], foreign_keys: list[tuple]) -> None:
    """Recreate what ``secondary_drop`` dropped, from the saved definitions."""
    # Building an index in one sorted pass, and validating a foreign key with one join,
    # is several times cheaper than maintaining them row by row during the load.
    cursor.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
    for _, definition in indexes:
        # The notes table is partitioned: its indexes' definitions say "ON ONLY", which
        # would leave each one invalid and the partitions without it. Without ONLY, the
        # index is built on every partition.
        cursor.execute(definition.replace(" ON ONLY ", " ON ", 1))
    for partition in partitions_get(cursor):
        partition_indexes_name(cursor, partition=partition.name)
    for name, definition in foreign_keys:
        cursor.execute(f'ALTER TABLE {NOTE_TABLE} ADD CONSTRAINT "{name}" {definition}')


def load_session_set(cursor) -> None:
    """Check foreign keys per statement for the rest of the transaction."""
    # Deferred foreign keys would queue one trigger event per row until commit, and the
    # checks would be paid for there rather than by the statement that needs them.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def notes_insert(
    *,
    cursor,
    tenant_params: list[tuple[dict, int]],
    progress: ProgressCallback | None,
) -> None:
    """Insert each tenant's notes (NOTE_INSERT parameters, row count) in NOTE_CHUNK_ROWS chunks."""
    total = sum(count for _, count in tenant_params)
    done = 0
    for params, count in tenant_params:
        for start in range(0, count, NOTE_CHUNK_ROWS):
            rows = min(NOTE_CHUNK_ROWS, count - start)
            cursor.execute(NOTE_INSERT, {**params, "count": rows})
            done += rows
            if progress is not None:
                progress(done, total)


def vacuum_analyze() -> None:
    """VACUUM and ANALYZE the loaded tables; must run outside a transaction."""
    # VACUUM sets the visibility map, so the stats query's index-only scans make no heap
    # fetches; ANALYZE gives the planner the new sizes.
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {NOTE_TABLE}")
        cursor.execute(f"ANALYZE {Patient._meta.db_table}")
        cursor.execute(f"ANALYZE {Facility._meta.db_table}")
