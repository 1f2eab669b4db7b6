"""Appends audit records of care-note reads, and purges those past their retention."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.models import ReadRecord
from carenotes.core.db import delete_in_batches, prepared_cursor, write_connection
from carenotes.core.request_state import request_state
from tenants.rls import rls_owner

# Up to this many note ids are stored with a record; a larger read (an export) stores only
# its count. The notes API pages at most 200, the admin shows one note.
AUDIT_NOTE_IDS_MAX = 1000
TABLE = ReadRecord._meta.db_table
INSERT_COLUMNS = (
    "read_at",
    "tenant_id",
    "user_id",
    "username",
    "route",
    "filters",
    "note_ids",
    "note_count",
    "request_id",
)
_INSERT = f"INSERT INTO {TABLE} ({', '.join(INSERT_COLUMNS)}) "
_VALUES = "%s, %s, %s, %s, %s, %s::jsonb, %s::bigint[], %s, %s"
# VALUES: Citus routes it to the tenant's shard (an INSERT ... SELECT goes through the
# coordinator).
INSERT_SQL = f"{_INSERT}VALUES ({_VALUES}) RETURNING id"
# The same INSERT whose own (autocommit) transaction commits without waiting for the WAL
# flush, the one cost of a record that is a disk's, not the server's (settings:
# AUDIT_SYNCHRONOUS_COMMIT, docs/SECURITY.md "Access audit trail"). set_config(..., true)
# lasts until that transaction ends.
INSERT_ASYNC_COMMIT_SQL = (
    f"{_INSERT}SELECT {_VALUES} "
    "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit RETURNING id"
)
# Rows one purge statement deletes: short transactions, short locks, bounded WAL bursts.
AUDIT_PURGE_BATCH_DEFAULT = 10_000
# One batch of expired rows (any order); ctid makes the outer DELETE a TID scan.
PURGE_BATCH_SQL = f"""
    DELETE FROM {TABLE} WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM {TABLE} WHERE read_at < %s LIMIT %s
    ))
"""
# On Citus a batch names its tenant, so that the statement runs on that tenant's shard alone
# (a ctid names a row of one shard only).
PURGE_TENANTS_SQL = f"SELECT DISTINCT tenant_id FROM {TABLE} WHERE read_at < %s ORDER BY 1"
PURGE_TENANT_BATCH_SQL = f"""
    DELETE FROM {TABLE} WHERE tenant_id = %s AND ctid = ANY(ARRAY(
        SELECT ctid FROM {TABLE} WHERE tenant_id = %s AND read_at < %s LIMIT %s
    ))
"""


@dataclass
class NoteTally:
    """The notes a streamed read has sent so far: their ids while few enough, and their count."""

    count: int = 0
    ids: list[int] | None = field(default_factory=list)

    def add(self, note_id: int) -> None:
        """Count one more note sent; past AUDIT_NOTE_IDS_MAX its ids are dropped (count only)."""
        self.count += 1
        if self.ids is not None and self.count > AUDIT_NOTE_IDS_MAX:
            self.ids = None
        elif self.ids is not None:
            self.ids.append(note_id)


def audit_record_read(
    *,
    tenant_id: int,
    user,
    route: str,
    filters: dict,
    note_ids: Sequence[int] | None = None,
    note_count: int | None = None,
    request_id: str = "",
) -> ReadRecord:
    """Append the record of one read of ``tenant_id``'s notes by ``user``: one INSERT.

    One round trip on the caller's connection, in the caller's transaction when there is one.

    Give the ids of the notes the read returned (only their count is kept above
    AUDIT_NOTE_IDS_MAX), or ``note_count`` alone for a read that counted notes.
    """
    if note_ids is not None:
        note_count = len(note_ids)
        note_ids = None if note_count > AUDIT_NOTE_IDS_MAX else list(note_ids)
    if note_count is None:
        raise ValueError("audit_record_read needs note_ids or note_count")
    record = ReadRecord(
        read_at=timezone.now(),
        tenant_id=tenant_id,
        user_id=user.pk,
        username=user.get_username(),
        route=route,
        filters=filters,
        note_ids=note_ids,
        note_count=note_count,
        request_id=request_id,
    )
    values = [getattr(record, column) for column in INSERT_COLUMNS]
    values[INSERT_COLUMNS.index("filters")] = json.dumps(filters)
    # Prepared once per connection: the INSERT is parsed and planned once, not per read.
    with prepared_cursor(write=True) as cursor:
        cursor.execute(_insert_sql(), values)
        record.pk = cursor.fetchone()[0]
    return record


def _insert_sql() -> str:
    # Only a statement that is its own transaction (autocommit) commits asynchronously: one
    # inside a caller's transaction must not change how the caller's writes commit.
    # On Citus every statement runs in a transaction of its own (tenants/rls.py), committed
    # on the workers: the records commit as configured there.
    db = write_connection()
    if (
        settings.AUDIT_SYNCHRONOUS_COMMIT
        or settings.DATABASE_CITUS
        or db.in_atomic_block
        or not db.get_autocommit()
    ):
        return INSERT_SQL
    return INSERT_ASYNC_COMMIT_SQL


def audit_request_read(
    request,
    *,
    tenant_id: int,
    note_ids: Sequence[int] | None = None,
    note_count: int | None = None,
) -> ReadRecord:
    """Append the record of a read ``request`` (Django's or DRF's) made and is answering 200."""
    return audit_record_read(
        tenant_id=tenant_id,
        user=request.user,
        route=request.resolver_match.view_name,
        filters=request.GET.dict(),
        note_ids=note_ids,
        note_count=note_count,
        request_id=request_state(request).request_id or "",
    )


def audit_retention_cutoff(*, days: int, now: datetime | None = None) -> datetime:
    """Return the instant before which records are past a retention of ``days`` days."""
    if days < 1:
        raise ValueError(f"the retention must be at least 1 day, got {days}")
    return (now or timezone.now()) - timedelta(days=days)


def audit_purge(*, before: datetime, batch_size: int = AUDIT_PURGE_BATCH_DEFAULT) -> int:
    """Delete the records read before ``before``, ``batch_size`` rows per statement.

    Must run as the table's owner (``tenants.rls.rls_owner``): the application roles may
    not delete audit records. Each batch commits on its own (autocommit), so a long purge
    holds no lock for long and an interrupted one keeps what it deleted. Returns the count.
    """
    if batch_size < 1:
        raise ValueError(f"the batch size must be at least 1, got {batch_size}")
    if not settings.DATABASE_CITUS:
        return delete_in_batches(PURGE_BATCH_SQL, [before, batch_size], batch_size=batch_size)
    with connection.cursor() as cursor:
        cursor.execute(PURGE_TENANTS_SQL, [before])
        tenant_ids = [tenant_id for (tenant_id,) in cursor.fetchall()]
    return sum(
        delete_in_batches(PURGE_TENANT_BATCH_SQL, [t, t, before, batch_size], batch_size=batch_size)
        for t in tenant_ids
    )


def audit_records_delete_for_tenants(*, tenant_ids: Sequence[int]) -> int:
    """Delete every record of ``tenant_ids``, tenants being deleted outright (a demo reset).

    Their ids may be handed out again (``seed_notes --reset`` restarts the sequences), and a
    new tenant must not inherit an old one's records. As the owner, like the purge: the
    application roles may not delete records. Returns the count.
    """
    with rls_owner():
        deleted, _ = ReadRecord.objects.filter(tenant_id__in=tenant_ids).delete()
    return deleted
