"""Who and why of the care records' change history: pghistory's context, put in front of each
write inside the row-level-security scope wrapper's reach, so it also works behind PgBouncer.

pghistory sends its context (``set_config('pghistory.context_metadata', ..., true)``) in
front of each write of a ``pghistory.context`` block, from an execute wrapper it appends
(innermost) when the block is entered, and it skips statements that start with ``SELECT``.
Behind a transaction pooler the scope wrapper (tenants/rls.py) writes the caller's scope in
front of every statement as a ``SELECT set_config(...)``, so pghistory's own wrapper saw
every write as a read and the history rows got no context (or a stale one from an earlier
statement of the transaction): system_tests/test_pgbouncer_records.py found it. This
wrapper runs pghistory's injection just outside the scope wrapper, where the statement is
still as the code wrote it, and inside the replica write observer, which must see the write
as written too. pghistory's own inner wrapper then sees a ``SELECT`` and adds nothing.
"""

import json

import psycopg
from django.conf import settings
from django.db import transaction
from pghistory import config, runtime

from tenants.rls import ROW_STATEMENT, db_scope_wrapper, sql_literal


def history_context_wrapper(execute, sql, params, many, context):
    """Execute wrapper: send the active ``pghistory.context`` ahead of the statement."""
    # executemany and a server-side binding (prepared) statement cannot carry a second
    # statement; pghistory has no context outside a block. The only prepared writes are the
    # access audit's inserts (audit.services), which fire no history trigger; their cursor is
    # named (carenotes.core.db), so pghistory's own inner wrapper passes over them too.
    raw = context["cursor"].cursor
    if many or not isinstance(raw, psycopg.ClientCursor) or not hasattr(runtime._tracker, "value"):
        return execute(sql, params, many, context)
    if settings.DATABASE_CITUS:
        return _citus_history_context(execute, sql, params, many, context)
    return runtime._inject_history_context(execute, sql, params, many, context)


def _citus_history_context(execute, sql, params, many, context):
    """On Citus, where the history triggers run on the workers: the context as SET LOCAL
    commands in a message of their own (the form the coordinator forwards, tenants/rls.py)."""
    if (
        not isinstance(sql, str)
        or not ROW_STATEMENT.match(sql)
        or sql.lstrip()[:6].upper() == "SELECT"
    ):
        return execute(sql, params, many, context)
    db = context["connection"]
    value = runtime._tracker.value
    metadata = json.dumps(value.metadata, cls=config.json_encoder())
    commands = (
        f"SET LOCAL pghistory.context_id = {sql_literal(str(value.id))}; "
        f"SET LOCAL pghistory.context_metadata = {sql_literal(metadata)}"
    )
    with transaction.atomic(using=db.alias, savepoint=False):
        with db.wrap_database_errors:
            db.connection.cursor().execute(commands.encode())
        return execute(sql, params, many, context)


def history_context_install(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: put the wrapper right outside the scope wrapper."""
    wrappers = connection.execute_wrappers
    if history_context_wrapper in wrappers or db_scope_wrapper not in wrappers:
        return
    wrappers.insert(wrappers.index(db_scope_wrapper), history_context_wrapper)
