"""Row-level security on the tenant-scoped tables, and the role the application runs as.

The role ``carenotes_app`` (NOLOGIN, no superuser, no BYPASSRLS, owns nothing) gets DML on
the tables; the policies admit a row only when its tenant is listed in the session setting
``carenotes.tenant_ids`` or ``carenotes.all_tenants`` is ``on``. FORCE makes the policies
bind the owner too (a superuser still bypasses them: migrations and maintenance run as the
owner on purpose). tenants/rls.py sets the role and the settings per statement scope.

The setting lookups are wrapped in scalar subqueries so PostgreSQL evaluates them once per
statement (an InitPlan), not once per row: the daily stats query stays an index-only scan
whose only extra cost is comparing tenant_id, already in the index, to a tiny array.

Frozen values (migrations must not import app code); a test checks them against
tenants.rls. The role is cluster-wide and may serve other databases, so the reverse revokes
this database's grants and leaves the role itself.
"""

from django.db import migrations

APP_ROLE = "carenotes_app"
RLS_TABLES = {
    "tenants_tenant": "id",
    "tenants_facility": "tenant_id",
    "tenants_membership": "tenant_id",
    "carenotes_patient": "tenant_id",
    "carenotes_carenote": "tenant_id",
}
POLICY_NAME = "carenotes_tenant_isolation"

CREATE_ROLE = f"""
DO $$
BEGIN
    CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- made by another database of this cluster (or a concurrent run)
END
$$;
-- A non-superuser owner must be a member to SET ROLE to it; a superuser needs nothing.
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, '{APP_ROLE}', 'MEMBER') THEN
        EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
    END IF;
END
$$;
"""

GRANTS = f"""
DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {APP_ROLE}', current_schema());
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO {APP_ROLE}', current_schema());
    EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO {APP_ROLE}', current_schema());
    -- Tables and sequences later migrations create (as this same owner).
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {APP_ROLE}', current_schema());
END
$$;
"""

REVOKE_GRANTS = f"""
DO $$
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM {APP_ROLE}', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM {APP_ROLE}', current_schema());
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM {APP_ROLE}', current_schema());
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM {APP_ROLE}', current_schema());
    EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {APP_ROLE}', current_schema());
END
$$;
"""

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
    condition = f"(SELECT carenotes_rls_all_tenants()) OR {column} = ANY ((SELECT carenotes_rls_tenant_ids())::bigint[])"
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY {POLICY_NAME} ON {table} USING ({condition}) WITH CHECK ({condition});\n"
    )


def _drop_policy_sql(table: str) -> str:
    return (
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
        migrations.RunSQL(CREATE_ROLE, migrations.RunSQL.noop),
        migrations.RunSQL(GRANTS, REVOKE_GRANTS),
        migrations.RunSQL(FUNCTIONS, DROP_FUNCTIONS),
        migrations.RunSQL(
            "".join(_policy_sql(table, column) for table, column in RLS_TABLES.items()),
            "".join(_drop_policy_sql(table) for table in RLS_TABLES),
        ),
    ]
