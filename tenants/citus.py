"""Distributing the schema on Citus: every tenant table sharded on ``tenant_id``, colocated.

What goes where (docs/ARCHITECTURE.md, "Scale out on Citus"):

- **Distributed**, hash-sharded on ``tenant_id`` and colocated with each other: every table
  of the current schema with a ``tenant_id`` column (facilities, memberships, residents,
  care notes and their monthly partitions, amendments, change history, idempotency keys,
  the day rollups, the access audit). One tenant's rows of every table live in the shards
  of one worker, so a statement that names one tenant runs on that worker alone, and
  foreign keys and triggers between them stay on one node.
- **Reference**, copied to every node: ``REFERENCE_TABLES`` (users, groups, permissions,
  content types, API tokens, the tenants themselves and memberships). Every distributed
  table refers to its tenant and many to a user, and Citus accepts foreign keys from
  distributed tables only to reference tables (or colocated ones). ``Tenant`` is a reference
  table rather than a distributed one: a few thousand small rows read by nearly every
  request, whose unique ``slug`` stays unique across the cluster, and whose time zone the
  rollup triggers read on the worker. ``Membership`` too, although it carries a
  ``tenant_id``: authentication reads a user's memberships in every tenant before any
  tenant is chosen, which on a distributed table would ask every shard.
- **Local** to the coordinator: the rest (sessions, the admin log, sign-in lockouts,
  migrations); Citus makes those that refer to a reference table "Citus local tables".

Citus refuses to convert a table that carries row-level security policies the way they are
written here (a sub-select in the policy), and refuses foreign keys between tables that are
not converted yet: both are dropped and re-created around the conversion, in one
transaction. The policies are re-created with the function calls themselves in place of the
sub-selects (Citus forwards them to every shard). Grants go with the tables.

Apps adapt what Citus runs differently through the ``citus_distributing`` and
``citus_distributed`` signals (the stats app drops two rollup triggers before the tables
are converted, and replaces the others after), sent inside the same transaction.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.dispatch import Signal

from tenants.rls import APP_ROLE, SYSTEM_ROLE

DISTRIBUTION_COLUMN = "tenant_id"
# The first distributed table; every other is colocated with it.
COLOCATION_ANCHOR = "tenants_facility"
# In foreign-key order: a table comes after those it refers to.
REFERENCE_TABLES = (
    "django_content_type",
    "auth_permission",
    "auth_group",
    "auth_group_permissions",
    "auth_user",
    "auth_user_groups",
    "auth_user_user_permissions",
    "tenants_tenant",
    "tenants_apitoken",
    "tenants_membership",
)
# Sent inside the distributing transaction with ``cursor``, before and after the tables are
# converted: receivers drop what must not run during the conversion, and adapt the rest.
citus_distributing = Signal()
citus_distributed = Signal()

# A policy's "(SELECT f() AS f)" as PostgreSQL prints it; Citus forwards "f()" instead.
_POLICY_SUBSELECT = re.compile(r"\(\s*SELECT (carenotes_rls_\w+)\(\) AS \w+\)")
_CALL = r"\1()"


class CitusMissing(RuntimeError):
    """The database is not a Citus coordinator, or has no worker."""


@dataclass
class Distribution:
    """What one run of citus_distribute converted (empty lists when nothing was left)."""

    reference: list[str] = field(default_factory=list)
    distributed: list[str] = field(default_factory=list)
    workers: int = 0


def _rows(cursor, sql: str, params=()) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def citus_installed(cursor) -> bool:
    """Return True when the ``citus`` extension is created in the connected database."""
    return bool(_rows(cursor, "SELECT 1 FROM pg_extension WHERE extname = 'citus'"))


def citus_tables(cursor) -> dict[str, str]:
    """Return the Citus tables of the database: name -> 'distributed', 'reference' or 'local'."""
    return dict(
        _rows(
            cursor,
            "SELECT logicalrelid::regclass::text, CASE WHEN partmethod = 'h' THEN 'distributed' "
            "WHEN repmodel = 't' THEN 'reference' ELSE 'local' END FROM pg_dist_partition",
        )
    )


def tenant_tables(cursor) -> list[str]:
    """Return the tables of the current schema that carry ``tenant_id`` (not partitions),
    but for the reference tables."""
    return [
        name
        for (name,) in _rows(
            cursor,
            "SELECT c.relname FROM pg_class c "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND NOT a.attisdropped "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') "
            "AND NOT c.relispartition ORDER BY c.relname <> %s, c.relname",
            [DISTRIBUTION_COLUMN, COLOCATION_ANCHOR],
        )
        if name not in REFERENCE_TABLES
    ]


def _foreign_keys(cursor, tables: list[str]) -> list[tuple[str, str, str]]:
    """Return (table, name, definition) of every foreign key from or to ``tables``."""
    return _rows(
        cursor,
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conparentid = 0 "
        "AND (conrelid::regclass::text = ANY(%s) OR confrelid::regclass::text = ANY(%s)) "
        "ORDER BY conrelid::regclass::text, conname",
        [tables, tables],
    )


def _policies(cursor, tables: list[str]) -> list[tuple]:
    return _rows(
        cursor,
        "SELECT tablename, policyname, permissive, cmd, "
        "array_to_string(ARRAY(SELECT quote_ident(r) FROM unnest(roles) r), ', '), qual, "
        "with_check FROM pg_policies WHERE schemaname = current_schema() "
        "AND tablename = ANY(%s) ORDER BY tablename, policyname",
        [tables],
    )


def citus_policy_sql(table, name, permissive, command, roles, using, check) -> str:
    """Return CREATE POLICY for a policy read from pg_policies, in the form Citus forwards."""
    sql = f"CREATE POLICY {name} ON {table} AS {permissive} FOR {command} TO {roles}"
    if using is not None:
        sql += f" USING ({_POLICY_SUBSELECT.sub(_CALL, using)})"
    if check is not None:
        sql += f" WITH CHECK ({_POLICY_SUBSELECT.sub(_CALL, check)})"
    return sql


def _grants(cursor, tables: list[str]) -> list[tuple[str, str, str]]:
    """Return (table, privilege, role) of the grants on ``tables``, columns' included."""
    return _rows(
        cursor,
        "SELECT c.relname, a.privilege_type, r.rolname FROM pg_class c, aclexplode(c.relacl) a "
        "JOIN pg_roles r ON r.oid = a.grantee "
        "WHERE c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace "
        "AND a.grantee <> c.relowner "
        "UNION ALL SELECT c.relname, x.privilege_type || ' (' || quote_ident(t.attname) || ')', "
        "r.rolname FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid, "
        "aclexplode(t.attacl) x JOIN pg_roles r ON r.oid = x.grantee "
        "WHERE c.relname = ANY(%s) AND c.relnamespace = current_schema()::regnamespace "
        "AND t.attacl IS NOT NULL ORDER BY 1, 3, 2",
        [tables, tables],
    )


def citus_distribute(cursor, *, say: Callable[[str], None] = lambda line: None) -> Distribution:
    """Make the connected coordinator's schema distributed; idempotent. Run in a transaction.

    Raises CitusMissing when the extension is not installed or no worker is active.
    """
    if not citus_installed(cursor):
        raise CitusMissing(
            "The citus extension is not installed in this database: run CREATE EXTENSION citus "
            "on the coordinator and on every worker, and add the workers with citus_add_node "
            '(README, "Scale out on Citus").'
        )
    (workers,) = _rows(cursor, "SELECT count(*) FROM citus_get_active_worker_nodes()")[0]
    if workers == 0:
        raise CitusMissing(
            "The coordinator has no active worker: add them with "
            "SELECT citus_add_node('<host>', <port>)."
        )
    # Triggers on distributed tables (history, rollups, the amendment checks) run on the
    # shards; Citus asks for this switch. Nested statements only reach colocated shards.
    cursor.execute("SET LOCAL client_min_messages = warning")
    cursor.execute("SET LOCAL citus.enable_unsafe_triggers = on")
    cursor.execute("SET LOCAL citus.multi_shard_modify_mode = 'sequential'")
    done = citus_tables(cursor)
    result = Distribution(workers=workers)
    result.reference = [t for t in REFERENCE_TABLES if t not in done]
    result.distributed = [t for t in tenant_tables(cursor) if t not in done]
    pending = result.reference + result.distributed
    citus_distributing.send(sender=Distribution, cursor=cursor, distribution=result)
    if pending:
        _convert(cursor, result, pending, say)
    _cluster_settings(cursor)
    citus_distributed.send(sender=Distribution, cursor=cursor, distribution=result)
    return result


def _convert(cursor, result: Distribution, pending: list[str], say) -> None:
    foreign_keys = _foreign_keys(cursor, pending)
    policies = _policies(cursor, pending)
    grants = _grants(cursor, pending)
    for table, name, _ in foreign_keys:
        cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for table, name, *_ in policies:
        cursor.execute(f"DROP POLICY {name} ON {table}")
    for table in result.reference:
        say(f"reference table {table}")
        cursor.execute("SELECT create_reference_table(%s)", [table])
        cursor.execute("SELECT truncate_local_data_after_distributing_table(%s)", [table])
    for table in result.distributed:
        say(f"distributed table {table} (on {DISTRIBUTION_COLUMN})")
        colocate = "default" if table == COLOCATION_ANCHOR else COLOCATION_ANCHOR
        cursor.execute(
            "SELECT create_distributed_table(%s, %s, colocate_with => %s)",
            [table, DISTRIBUTION_COLUMN, colocate],
        )
        cursor.execute("SELECT truncate_local_data_after_distributing_table(%s)", [table])
    for table, name, definition in foreign_keys:
        cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for policy in policies:
        cursor.execute(citus_policy_sql(*policy))
    for table, privilege, role in grants:
        cursor.execute(f"GRANT {privilege} ON {table} TO {role}")


def _cluster_settings(cursor) -> None:
    # Citus opens the workers' connections as the statement's current role.
    for role in (APP_ROLE, SYSTEM_ROLE):
        cursor.execute(f"ALTER ROLE {role} LOGIN")
    (database,) = _rows(cursor, "SELECT current_database()")[0]
    for name, value in (
        # Forward the row-level-security scope's SET LOCAL commands (tenants/rls.py).
        ("citus.propagate_set_commands", "local"),
        # New partitions and trigger changes on distributed tables.
        ("citus.enable_unsafe_triggers", "on"),
    ):
        cursor.execute(f"ALTER DATABASE \"{database}\" SET {name} = '{value}'")
