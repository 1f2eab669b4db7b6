"""Row-level security on the tenant-scoped tables, and the roles the application runs as.

Two NOLOGIN roles, neither superuser nor BYPASSRLS nor owner of anything, get DML on the
tables. ``carenotes_app`` (every request) is bound by one policy: a row is visible and
writable only when its tenant is listed in the session setting ``carenotes.tenant_ids``.
``carenotes_system`` (trusted cross-tenant work, tenants/rls.py ``rls_system``) and the
owner see every row, but only while ``carenotes.all_tenants`` is ``on``. FORCE makes the
policies bind the owner too (a superuser bypasses them: migrations and maintenance).

Why two roles rather than one policy with ``all_tenants OR tenant_id = ANY(...)``: an OR
cannot be an index condition, so it would be checked row by row (+20 % on the daily stats
query, measured); ``tenant_id = ANY((SELECT ...))`` alone joins the index condition, and the
scalar subquery makes PostgreSQL read the setting once per statement (an InitPlan).

Frozen values (migrations must not import app code); a test checks them against
tenants.rls. Roles are cluster-wide and may serve other databases, so the reverse revokes
this database's grants and leaves the roles themselves.
"""

from django.db import migrations

APP_ROLE = "carenotes_app"
SYSTEM_ROLE = "carenotes_system"
ROLES = (APP_ROLE, SYSTEM_ROLE)
RLS_TABLES = {
    "tenants_tenant": "id",
    "tenants_facility": "tenant_id",
    "tenants_membership": "tenant_id",
    "carenotes_patient": "tenant_id",
    "carenotes_carenote": "tenant_id",
}
POLICY_NAME = "carenotes_tenant_isolation"
ALL_TENANTS_POLICY_NAME = "carenotes_all_tenants"


def _create_role_sql(role: str) -> str:
    return f"""
DO $$
BEGIN
    CREATE ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made by another database of this cluster (or a concurrent run)
END
$$;
-- A non-superuser owner must be a member to SET ROLE to it; a superuser needs nothing.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, '{role}', 'MEMBER') THEN
        EXECUTE format('GRANT {role} TO %I', current_user);
    END IF;
END
$$;
"""


# (grant, its reverse) per role, in the current schema ("%I" is filled with its name).
PRIVILEGES = [
    ("GRANT USAGE ON SCHEMA %I TO {role}", "REVOKE USAGE ON SCHEMA %I FROM {role}"),
    (
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO {role}",
        "REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM {role}",
    ),
    (
        "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO {role}",
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM {role}",
    ),
    # Tables and sequences later migrations create (as this same owner).
    (
        "ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM {role}",
    ),
    (
        "ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM {role}",
    ),
]


def _in_current_schema(statements) -> str:
    executes = "".join(
        f"    EXECUTE format('{statement}', current_schema());\n" for statement in statements
    )
    return f"DO $$\nBEGIN\n{executes}END\n$$;\n"


GRANTS = _in_current_schema(grant.format(role=role) for role in ROLES for grant, _ in PRIVILEGES)
REVOKE_GRANTS = _in_current_schema(
    revoke.format(role=role) for role in ROLES for _, revoke in reversed(PRIVILEGES)
)


FUNCTIONS = """
CREATE FUNCTION carenotes_rls_all_tenants() RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(current_setting('carenotes.all_tenants', true), '') = 'on' $$;
CREATE FUNCTION carenotes_rls_tenant_ids() RETURNS bigint[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT coalesce(
        string_to_array(nullif(current_setting('carenotes.tenant_ids', true), ''), ',')::bigint[],
        '{}') $$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION carenotes_rls_tenant_ids();
DROP FUNCTION carenotes_rls_all_tenants();
"""


def _policy_sql(table: str, column: str) -> str:
    tenant = f"{column} = ANY ((SELECT carenotes_rls_tenant_ids())::bigint[])"
    everything = "(SELECT carenotes_rls_all_tenants())"
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY {POLICY_NAME} ON {table} TO {APP_ROLE} "
        f"USING ({tenant}) WITH CHECK ({tenant});\n"
        f"CREATE POLICY {ALL_TENANTS_POLICY_NAME} ON {table} TO {SYSTEM_ROLE}, CURRENT_USER "
        f"USING ({everything}) WITH CHECK ({everything});\n"
    )


def _drop_policy_sql(table: str) -> str:
    return (
        f"DROP POLICY {ALL_TENANTS_POLICY_NAME} ON {table};\n"
        f"DROP POLICY {POLICY_NAME} ON {table};\n"
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;\n"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_tenant_admin_group"),
        ("carenotes", "0003_carenote_facility_recent_index"),
    ]

    operations = [
        migrations.RunSQL("".join(map(_create_role_sql, ROLES)), migrations.RunSQL.noop),
        migrations.RunSQL(GRANTS, REVOKE_GRANTS),
        migrations.RunSQL(FUNCTIONS, DROP_FUNCTIONS),
        migrations.RunSQL(
            "".join(_policy_sql(table, column) for table, column in RLS_TABLES.items()),
            "".join(_drop_policy_sql(table) for table in RLS_TABLES),
        ),
    ]
