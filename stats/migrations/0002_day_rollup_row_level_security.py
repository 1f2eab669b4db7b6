"""Row-level security on the day rollups, as on every tenant-scoped table (tenants 0003).

The application roles read the rollups and, through the triggers on care notes that run as
the writing role (stats 0003), write them: DML only, never TRUNCATE (which ignores
row-level security). ``carenotes_app`` sees and writes the rows of the tenants listed in
``carenotes.tenant_ids``; ``carenotes_system`` and the owner every row while
``carenotes.all_tenants`` is on. FORCE binds the owner too.

Frozen values (migrations must not import app code); system_tests/test_rls.py checks them
against tenants.rls and stats.rollups.
"""

from django.db import migrations

APP_ROLE = "carenotes_app"
SYSTEM_ROLE = "carenotes_system"
ROLES = (APP_ROLE, SYSTEM_ROLE)
RLS_TABLES = {"stats_day_counts": "tenant_id", "stats_day_residents": "tenant_id"}
POLICY_NAME = "carenotes_tenant_isolation"
ALL_TENANTS_POLICY_NAME = "carenotes_all_tenants"


def _policy_sql(table: str, column: str) -> str:
    tenant = f"{column} = ANY ((SELECT carenotes_rls_tenant_ids())::bigint[])"
    everything = "(SELECT carenotes_rls_all_tenants())"
    grants = "".join(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role};\n" for role in ROLES
    )
    return (
        grants + f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY {POLICY_NAME} ON {table} TO {APP_ROLE} "
        f"USING ({tenant}) WITH CHECK ({tenant});\n"
        f"CREATE POLICY {ALL_TENANTS_POLICY_NAME} ON {table} TO {SYSTEM_ROLE}, CURRENT_USER "
        f"USING ({everything}) WITH CHECK ({everything});\n"
    )


def _drop_policy_sql(table: str) -> str:
    revokes = "".join(f"REVOKE ALL ON {table} FROM {role};\n" for role in ROLES)
    return (
        f"DROP POLICY {ALL_TENANTS_POLICY_NAME} ON {table};\n"
        f"DROP POLICY {POLICY_NAME} ON {table};\n"
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;\n" + revokes
    )


class Migration(migrations.Migration):
    dependencies = [("stats", "0001_day_rollup_tables")]

    operations = [
        migrations.RunSQL(
            "".join(_policy_sql(table, column) for table, column in RLS_TABLES.items()),
            "".join(_drop_policy_sql(table) for table in reversed(RLS_TABLES)),
        ),
    ]
