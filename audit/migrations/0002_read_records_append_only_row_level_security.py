"""Audit records are append-only for the application, and each tenant sees only its own.

The application roles may SELECT and INSERT, never UPDATE, DELETE or TRUNCATE: the table
was created with the default privileges of tenants 0003 (DML for both roles), so UPDATE and
DELETE are revoked here. Row-level security is forced as on every tenant table, but the
policies name their commands: ``carenotes_app`` reads and appends the rows of the tenants
in ``carenotes.tenant_ids``; ``carenotes_system`` reads and appends any while
``carenotes.all_tenants`` is on. Neither has an UPDATE or DELETE policy, so a later blanket
GRANT (e.g. tenants 0003's ``ON ALL TABLES``, run again) would still change no row. The
owner (``CURRENT_USER``) may do everything while ``carenotes.all_tenants`` is on: it is the
role ``manage.py audit_purge`` deletes expired records as.

Frozen values (migrations must not import app code); system_tests/test_rls.py checks them
against tenants.rls and the model.
"""

from django.db import migrations

APP_ROLE = "carenotes_app"
SYSTEM_ROLE = "carenotes_system"
ROLES = (APP_ROLE, SYSTEM_ROLE)
TABLE = "audit_readrecord"
TENANT = "tenant_id = ANY ((SELECT carenotes_rls_tenant_ids())::bigint[])"
EVERYTHING = "(SELECT carenotes_rls_all_tenants())"
# (name, command, role, USING, WITH CHECK); INSERT policies have no USING.
POLICIES = [
    ("carenotes_tenant_read", "SELECT", APP_ROLE, TENANT, None),
    ("carenotes_tenant_append", "INSERT", APP_ROLE, None, TENANT),
    ("carenotes_all_tenants_read", "SELECT", SYSTEM_ROLE, EVERYTHING, None),
    ("carenotes_all_tenants_append", "INSERT", SYSTEM_ROLE, None, EVERYTHING),
    ("carenotes_owner_all", "ALL", "CURRENT_USER", EVERYTHING, EVERYTHING),
]


def _policy_sql(name, command, role, using, check) -> str:
    clauses = (f" USING ({using})" if using else "") + (f" WITH CHECK ({check})" if check else "")
    return f"CREATE POLICY {name} ON {TABLE} FOR {command} TO {role}{clauses};\n"


PRIVILEGES = "".join(
    f"REVOKE UPDATE, DELETE, TRUNCATE ON {TABLE} FROM {role};\n"
    f"GRANT SELECT, INSERT ON {TABLE} TO {role};\n"
    for role in ROLES
)
# Back to what the default privileges gave the table.
RESTORE_PRIVILEGES = "".join(
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO {role};\n" for role in ROLES
)
ROW_LEVEL_SECURITY = (
    f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY;\n"
    f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY;\n"
    + "".join(_policy_sql(*policy) for policy in POLICIES)
)
DROP_ROW_LEVEL_SECURITY = "".join(
    f"DROP POLICY {name} ON {TABLE};\n" for name, *_ in reversed(POLICIES)
) + (
    f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY;\n"
    f"ALTER TABLE {TABLE} DISABLE ROW LEVEL SECURITY;\n"
)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_read_records")]

    operations = [
        migrations.RunSQL(PRIVILEGES, RESTORE_PRIVILEGES),
        migrations.RunSQL(ROW_LEVEL_SECURITY, DROP_ROW_LEVEL_SECURITY),
    ]
