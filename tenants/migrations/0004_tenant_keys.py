"""Primary keys that include the tenant: ``(tenant_id, id)`` on facilities and memberships.

Citus shards every tenant table on ``tenant_id`` and accepts only keys that include it; the
plain-PostgreSQL schema has the same keys so that both stay one design (carenotes 0010 does
the same for the care-record tables). Django keeps ``id`` as the models' ``pk``.
``tenants_tenant`` and ``tenants_apitoken`` keep theirs: on Citus they are reference tables
(copied to every node), whose keys need no tenant.
"""

from django.db import migrations

TENANT_KEYS = [("tenants_facility", "(tenant_id, id)"), ("tenants_membership", "(tenant_id, id)")]


def _primary_key_sql(table: str, columns: str) -> str:
    return (
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
        f"ADD CONSTRAINT {table}_pkey PRIMARY KEY {columns};\n"
    )


def _id_key_sql(table: str, columns: str) -> str:
    return (
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
        f"ADD CONSTRAINT {table}_pkey PRIMARY KEY (id);\n"
    )


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_row_level_security")]

    operations = [
        migrations.RunSQL(
            "".join(_primary_key_sql(*key) for key in TENANT_KEYS),
            "".join(_id_key_sql(*key) for key in TENANT_KEYS),
        )
    ]
