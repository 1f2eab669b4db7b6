"""Database helpers the ORM does not offer: prepared statements for hot, fixed SQL."""

import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper


class _LoggedStatement:
    """What Django's query log reads from a cursor (``cursor._query.query``), built on demand.

    psycopg keeps no client-side text of a prepared statement; the log (``connection.queries``,
    ``CaptureQueriesContext``, debug tools) gets the statement with its parameters interpolated,
    composed only when something reads it.
    """

    def __init__(self, sql: str, params) -> None:
        self._sql = sql
        self._params = params

    @property
    def query(self) -> bytes:
        return connection.ops.compose_sql(self._sql, self._params).encode()


class _PreparingCursor(psycopg.Cursor):
    """A server-side binding cursor that asks for every statement to be prepared."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        result = super().execute(query, params, prepare=True, binary=binary)
        self._query = _LoggedStatement(query, params)
        return result


def prepared_cursor() -> CursorWrapper:
    """Return a Django cursor whose statements PostgreSQL prepares (server-side binding).

    Django's psycopg connections bind parameters on the client and disable prepared
    statements (for transaction-mode poolers), so every statement is parsed and planned anew.
    A statement sent through this cursor is prepared on its first run on the connection
    (psycopg keeps a per-connection cache of them) and only executed after that. It is still
    a Django cursor: execute wrappers (row-level security, timing), query logging and error
    wrapping apply as to any other. Behind PgBouncer in transaction mode this needs
    ``max_prepared_statements`` (PgBouncer 1.21+).
    """
    connection.ensure_connection()
    with connection.wrap_database_errors:
        raw = _PreparingCursor(connection.connection)
    return connection._prepare_cursor(raw)
