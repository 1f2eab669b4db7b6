"""PostgreSQL row-level security: which tenants the current statement may see, and as whom.

Migration tenants/0003 forces policies on every tenant-scoped table. Statements of the
application run as ``carenotes_app``, which sees and writes a row only when its tenant is
listed in the session setting ``carenotes.tenant_ids``; trusted cross-tenant work runs as
``carenotes_system``, which sees every row but only while ``carenotes.all_tenants`` is
``on``. Neither role is superuser, has BYPASSRLS or owns a table, so neither can escape the
policies.

Every statement Django sends goes through ``db_scope_wrapper`` (installed on each new
connection). How it puts the scope the code wants (``db_scope_current``) in force depends on
what sits between Django and PostgreSQL (``settings.DATABASE_POOLER``):

- a direct connection (or a session pooler): the scope is a session setting. The wrapper
  compares it with the one last applied to that physical connection and, only when they
  differ, first sends one ``set_config`` statement (role and both settings).
- a transaction pooler (PgBouncer ``pool_mode = transaction``): consecutive transactions of
  one client may run on different server connections, and a server connection serves other
  clients in between, so nothing session-level may be set or relied on. Every statement
  carries its own scope, transaction-local (``set_config(..., true)``), in the same round
  trip and the same transaction: written in front of the statement (one simple-protocol
  message, which PostgreSQL runs as one implicit transaction when autocommit is on), or
  pipelined ahead of it where that is impossible (server-side binding, executemany).
- a Citus coordinator (``settings.DATABASE_CITUS``): the workers that run a statement's
  shard queries see none of the coordinator session's settings; the coordinator forwards
  ``SET LOCAL`` commands of a transaction block to them. Every statement runs in a
  transaction (the caller's, or one opened for it) whose scope is set by ``SET LOCAL``
  commands sent in a message of their own just before it (``scoped_execute_citus``).

Code that sends no SQL costs nothing: a warm stats cache hit still makes zero PostgreSQL
round trips.

Scopes, in order of trust:

- ``NO_TENANTS``: the default everywhere, including management commands and the shell; the
  app role sees no tenant-scoped row.
- a request's scope (``tenants.middleware``): the tenants the authenticated principal
  belongs to, or all tenants for a superuser; no tenants before authentication. It stays on
  the connection after the request until a statement wants another scope.
- ``SYSTEM`` (``rls_system()``): ``carenotes_system`` with every tenant, for trusted work
  that precedes or spans tenants (building a principal from its memberships, a superuser's
  requests, the test suite's setup code).
- ``OWNER`` (``rls_owner()``): back to the connecting (owner) user, for schema work only:
  ``migrate``, ``flush``, ``seed_notes`` (TRUNCATE, index rebuilds, VACUUM), benchmarks.
"""

import contextlib
import contextvars
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import psycopg
from django.conf import settings
from django.db import transaction
from django.db.backends.base.base import NO_DB_ALIAS

from carenotes.core.replicas import EVERY_TENANT, Reach, Tenancy, replica_bookkeeping_install
from tenants.principal import Principal

# The roles statements run as; created (NOLOGIN, no superuser, no BYPASSRLS) by migration
# tenants/0003, which also grants them DML on the tables.
APP_ROLE = "carenotes_app"
SYSTEM_ROLE = "carenotes_system"
# ``SET ROLE NONE``: the connecting user again (the owner, in development and CI).
SESSION_ROLE = "none"
TENANT_IDS_SETTING = "carenotes.tenant_ids"
ALL_TENANTS_SETTING = "carenotes.all_tenants"
ALL_TENANTS_ON = "on"
ALL_TENANTS_OFF = "off"
# Tables whose rows belong to one tenant, and the column naming it (the policies' subject).
RLS_TABLES = {
    "tenants_tenant": "id",
    "tenants_facility": "tenant_id",
    "tenants_membership": "tenant_id",
    "carenotes_patient": "tenant_id",
    "carenotes_carenote": "tenant_id",
}
# Tenant tables whose policies later migrations add, written by statements that name them
# (carenotes/0006: amendments). The change-history and rollup tables are written only by
# triggers, so no statement names them.
LATER_RLS_TABLES = {"carenotes_carenoteamendment": "tenant_id"}
# One round trip sets all three; session-level (is_local false) so that autocommit
# statements keep it, see db_scope_wrapper for how transactions are handled.
SCOPE_SQL = (
    f"SELECT set_config('role', %s, false), set_config('{TENANT_IDS_SETTING}', %s, false), "
    f"set_config('{ALL_TENANTS_SETTING}', %s, false)"
)
# Behind a transaction pooler: the same, undone when the statement's transaction ends.
LOCAL_SCOPE_SQL = SCOPE_SQL.replace(", false)", ", true)")
# settings.DATABASE_POOLER value for a pooler that hands out server connections per
# transaction (PgBouncer pool_mode = transaction).
TRANSACTION_POOLER = "transaction"

# What Django sends for savepoints (DatabaseOperations.savepoint_*_sql).
TRANSACTION_CONTROL_PREFIXES = ("SAVEPOINT ", "RELEASE SAVEPOINT ", "ROLLBACK TO SAVEPOINT ")
# Statements PostgreSQL refuses inside a transaction block, an implicit one included. None of
# them reads or writes rows under a policy, so behind a transaction pooler they run unscoped.
NO_TRANSACTION_BLOCK = re.compile(
    r"\s*(VACUUM\b|(CREATE|DROP)\s+DATABASE\b|ALTER\s+SYSTEM\b"
    r"|(CREATE\s+(UNIQUE\s+)?INDEX|DROP\s+INDEX|REINDEX\b[^;]*?)\s+CONCURRENTLY\b)",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class DbScope:
    """What the database lets a statement see: a role, a tenant list, an all-tenants switch."""

    role: str
    tenant_ids: str
    all_tenants: bool

    def as_params(self) -> list[str]:
        """Return the parameters of SCOPE_SQL for this scope."""
        switch = ALL_TENANTS_ON if self.all_tenants else ALL_TENANTS_OFF
        return [self.role, self.tenant_ids, switch]

    def reach(self) -> Reach:
        """Return the tenants whose rows a statement under this scope can see or change."""
        if self.all_tenants:
            return EVERY_TENANT
        return Reach(tenant_ids=tuple(int(i) for i in self.tenant_ids.split(",") if i))


NO_TENANTS = DbScope(role=APP_ROLE, tenant_ids="", all_tenants=False)
SYSTEM = DbScope(role=SYSTEM_ROLE, tenant_ids="", all_tenants=True)
OWNER = DbScope(role=SESSION_ROLE, tenant_ids="", all_tenants=True)


def tenants_scope(tenant_ids: Iterable[int]) -> DbScope:
    """Return the app-role scope that sees exactly ``tenant_ids``."""
    ids = sorted({int(tenant_id) for tenant_id in tenant_ids})
    return DbScope(role=APP_ROLE, tenant_ids=",".join(map(str, ids)), all_tenants=False)


def principal_scope(principal: Principal) -> DbScope:
    """Return the scope of an authenticated caller: their tenants, or all for a superuser."""
    if principal.is_superuser:
        return SYSTEM
    return tenants_scope(principal.roles)


class LazyScope(Protocol):
    """A scope decided at each statement (a request's follows its authenticated user)."""

    def resolve(self) -> DbScope: ...


_scope: contextvars.ContextVar[DbScope | LazyScope] = contextvars.ContextVar(
    "carenotes_db_scope", default=NO_TENANTS
)


def db_scope_current() -> DbScope:
    """Return the scope the next statement must run under."""
    value = _scope.get()
    return value if isinstance(value, DbScope) else value.resolve()


@contextlib.contextmanager
def db_scope(scope: DbScope | LazyScope) -> Iterator[None]:
    """Run the block's statements under ``scope`` (restored afterwards, also on error)."""
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def rls_system() -> contextlib.AbstractContextManager[None]:
    """Run the block as the system role seeing every tenant (trusted, cross-tenant work)."""
    return db_scope(SYSTEM)


def rls_owner() -> contextlib.AbstractContextManager[None]:
    """Run the block as the connecting (owner) user: schema changes and maintenance only."""
    return db_scope(OWNER)


def rls_tenants(tenant_ids: Iterable[int]) -> contextlib.AbstractContextManager[None]:
    """Run the block as the app role seeing only ``tenant_ids``."""
    return db_scope(tenants_scope(tenant_ids))


@dataclass(frozen=True)
class _Applied:
    raw: object  # the psycopg connection the scope was sent on
    scope: DbScope
    # False when sent inside a transaction: a rollback may have undone it since.
    durable: bool


_APPLIED_ATTR = "_carenotes_db_scope"


def _in_transaction(db) -> bool:
    return db.in_atomic_block or not db.get_autocommit()


def scope_apply(db, scope: DbScope, raw_cursor) -> None:
    """Send ``scope`` on ``db`` unless it is known to be in force already."""
    applied: _Applied | None = getattr(db, _APPLIED_ATTR, None)
    if (
        applied is not None
        and applied.raw is db.connection
        and applied.scope == scope
        and applied.durable
    ):
        return
    # The scope statement is infrastructure, not a query of the code being measured: it
    # goes to the driver's cursor directly, so query counts and logs do not include it.
    setattr(db, _APPLIED_ATTR, None)
    with db.wrap_database_errors:
        raw_cursor.execute(SCOPE_SQL, scope.as_params())
    # Applied inside a transaction, a later ROLLBACK (TO SAVEPOINT) could silently restore
    # the previous scope; until the scope is next sent outside a transaction it is re-sent
    # before every statement, so a statement never runs under a scope it did not ask for.
    setattr(db, _APPLIED_ATTR, _Applied(db.connection, scope, not _in_transaction(db)))


def scope_is_transaction_local() -> bool:
    """Return True behind a transaction pooler or on Citus: scopes live in transactions only."""
    return settings.DATABASE_POOLER == TRANSACTION_POOLER or settings.DATABASE_CITUS


def sql_literal(value: str) -> str:
    """Return ``value`` as a quoted SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


@functools.lru_cache(maxsize=4096)
def local_scope_prefix(scope: DbScope) -> str:
    """Return LOCAL_SCOPE_SQL with the scope's values written in, as a statement prefix."""
    # The values are role names, digits and commas, and on/off; quoted all the same.
    return LOCAL_SCOPE_SQL.replace("%s", "{}").format(*map(sql_literal, scope.as_params())) + "; "


def scoped_execute_local(scope: DbScope, execute, sql, params, many, context):
    """Run ``sql`` with ``scope`` in force for its own transaction only, in one round trip.

    Django's default (client-side binding) cursors send the scope in front of the statement
    in one simple-protocol message: one implicit transaction in autocommit mode, or part of
    the open transaction otherwise. The cursor then moves on to the statement's result.
    Other cursors (server-side binding: prepared statements) and executemany pipeline the
    scope ahead of the statement: before the pipeline's Sync, both share one transaction.
    """
    db = context["connection"]
    # Nothing session-level is in force, or relied on, on a pooled connection.
    setattr(db, _APPLIED_ATTR, None)
    raw = context["cursor"].cursor
    if not many and isinstance(sql, str) and isinstance(raw, psycopg.ClientCursor):
        result = execute(local_scope_prefix(scope) + sql, params, many, context)
        raw.nextset()
        return result
    # Errors of a pipelined statement surface when the pipeline syncs, outside Django's
    # own error wrapping of execute: wrap them the same way.
    with db.wrap_database_errors, db.connection.pipeline():
        db.connection.cursor().execute(LOCAL_SCOPE_SQL, scope.as_params())
        return execute(sql, params, many, context)


@functools.lru_cache(maxsize=4096)
def citus_scope_sql(scope: DbScope) -> str:
    """Return the scope as SET LOCAL commands, the form Citus forwards to the workers.

    A Citus coordinator forwards ``SET LOCAL`` (not ``set_config``) of a transaction block to
    every worker the transaction uses, before its first statement there
    (``citus.propagate_set_commands = local``, set by citus_distribute). It forwards the
    whole query string the command came in: the commands go alone, never with a statement.
    """
    role, tenant_ids, all_tenants = map(sql_literal, scope.as_params())
    return (
        f"SET LOCAL ROLE {role}; SET LOCAL {TENANT_IDS_SETTING} = {tenant_ids}; "
        f"SET LOCAL {ALL_TENANTS_SETTING} = {all_tenants}"
    )


# Statements that read or write rows under the policies. Other commands (DDL: migrate,
# citus_distribute) go alone, as the connecting user: on Citus the session's own role is
# never changed, only the transactions' (and the coordinator forwards a utility command's
# text to the workers as is).
ROW_STATEMENT = re.compile(
    r"[\s(]*(SELECT|INSERT|UPDATE|DELETE|WITH|EXPLAIN|VALUES|TABLE|MERGE|COPY)\b", re.IGNORECASE
)


def scoped_execute_citus(scope: DbScope, execute, sql, params, many, context):
    """Run ``sql`` on a Citus coordinator with ``scope`` in force there and on the workers.

    The SET LOCAL commands go in a message of their own, in the open transaction, or in one
    opened for the statement (Citus forwards SET LOCAL only inside a transaction block).
    """
    db = context["connection"]
    setattr(db, _APPLIED_ATTR, None)
    if isinstance(sql, str) and not ROW_STATEMENT.match(sql):
        return execute(sql, params, many, context)
    with contextlib.ExitStack() as stack:
        if not _in_transaction(db):
            stack.enter_context(transaction.atomic(using=db.alias))
        with db.wrap_database_errors:
            db.connection.cursor().execute(citus_scope_sql(scope).encode())
        return execute(sql, params, many, context)


def db_scope_wrapper(execute, sql, params, many, context):
    """Execute wrapper: run ``sql`` with the wanted scope in force on this connection."""
    # Savepoint statements touch no rows, and ROLLBACK TO SAVEPOINT must be the next
    # statement of an aborted transaction: nothing may be sent before it.
    if isinstance(sql, str) and sql.startswith(TRANSACTION_CONTROL_PREFIXES):
        return execute(sql, params, many, context)
    if scope_is_transaction_local():
        if isinstance(sql, str) and NO_TRANSACTION_BLOCK.match(sql):
            return execute(sql, params, many, context)
        scoped = scoped_execute_citus if settings.DATABASE_CITUS else scoped_execute_local
        return scoped(db_scope_current(), execute, sql, params, many, context)
    scope_apply(context["connection"], db_scope_current(), context["cursor"].cursor)
    return execute(sql, params, many, context)


# What the replica bookkeeping (carenotes.core.replicas) needs to know of tenancy: which
# tables hold tenants' rows, and which tenants the statement about to run can reach.
TENANCY = Tenancy(
    tenant_tables=frozenset(RLS_TABLES) | frozenset(LATER_RLS_TABLES),
    reach=lambda: db_scope_current().reach(),
)


def db_scope_install(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: route the connection's statements through the wrapper."""
    if connection.alias == NO_DB_ALIAS or connection.vendor != "postgresql":
        return
    if db_scope_wrapper not in connection.execute_wrappers:
        # First, so that it runs before any timing or logging wrapper of the request.
        connection.execute_wrappers.insert(0, db_scope_wrapper)
    # Outside the scope wrapper: a write is seen as the code sent it, and a replica that
    # fails, even while its scope is being set, is replaced by the primary.
    replica_bookkeeping_install(connection, tenancy=TENANCY)
