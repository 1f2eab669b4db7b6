"""Database helpers the ORM does not offer: raw reads routed like ORM reads (to a fresh
replica when one may answer), prepared statements for hot, fixed SQL."""

import contextlib

import psycopg
from django.db import connection, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper


class _LoggedStatement:
    """What Django's query log reads from a cursor (``cursor._query.query``), built on demand.

    psycopg keeps no client-side text of a prepared statement; the log (``connection.queries``,
    ``CaptureQueriesContext``, debug tools) gets the statement with its parameters interpolated,
    composed only when something reads it.
    """

    def __init__(self, db: BaseDatabaseWrapper, sql: str, params) -> None:
        self._db = db
        self._sql = sql
        self._params = params

    @property
    def query(self) -> bytes:
        return self._db.ops.compose_sql(self._sql, self._params).encode()


class _PreparingCursor(psycopg.Cursor):
    """A server-side binding cursor that asks for every statement to be prepared."""

    db: BaseDatabaseWrapper
    # A prepared statement is one statement: nothing may be written in front of it. Execute
    # wrappers that prefix statements (pghistory's history context) pass over named cursors.
    name = "prepared"

    def execute(self, query, params=None, *, prepare=None, binary=None):
        result = super().execute(query, params, prepare=True, binary=binary)
        self._query = _LoggedStatement(self.db, query, params)
        return result


def read_connection() -> BaseDatabaseWrapper:
    """Return the connection a raw read should use: what the router picks for a read.

    With replicas configured that is a replica which has replayed the reader's tenants' last
    writes, when the request may read from one (carenotes.core.replicas), else the primary.
    Decided at each call: call it when the read is about to run, after any cache lookup whose
    answer the read will be stored under.
    """
    return connections[router.db_for_read(None)]


def read_cursor() -> CursorWrapper:
    """Return a Django cursor for a raw read on ``read_connection()``."""
    return read_connection().cursor()


def write_connection() -> BaseDatabaseWrapper:
    """Return the connection a raw write should use: the primary, as the router says."""
    return connections[router.db_for_write(None)]


def prepared_cursor(*, write: bool = False) -> CursorWrapper:
    """Return a Django cursor on ``read_connection()`` (``write_connection()`` for a write)
    whose statements PostgreSQL prepares.

    Django's psycopg connections bind parameters on the client and disable prepared
    statements (for transaction-mode poolers), so every statement is parsed and planned anew.
    A statement sent through this cursor is prepared on its first run on the connection
    (psycopg keeps a per-connection cache of them) and only executed after that. It is still
    a Django cursor: execute wrappers (row-level security, timing), query logging and error
    wrapping apply as to any other. Behind PgBouncer in transaction mode this needs
    ``max_prepared_statements`` (PgBouncer 1.21+).
    """
    db = write_connection() if write else read_connection()
    db.ensure_connection()
    if db.connection.prepare_threshold is None:
        # Prepared statements are off (DATABASE_PREPARED_STATEMENTS=0, the default behind a
        # transaction pooler): Django's own cursor, bound on the client like every other.
        return db.cursor()
    with db.wrap_database_errors:
        raw = _PreparingCursor(db.connection)
    raw.db = db
    return db._prepare_cursor(raw)


def delete_in_batches(sql: str, params: list, *, batch_size: int, atomic: bool = False) -> int:
    """Run the batch DELETE ``sql`` until a batch deletes fewer than ``batch_size`` rows;
    return how many it deleted. Each batch is its own transaction (``atomic``: Django's)."""
    deleted = 0
    while True:
        batch = transaction.atomic() if atomic else contextlib.nullcontext()
        with batch, connection.cursor() as cursor:
            cursor.execute(sql, params)
            count = cursor.rowcount
        deleted += count
        if count < batch_size:
            return deleted
