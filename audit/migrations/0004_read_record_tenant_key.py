"""The read records' primary key includes the tenant: ``(tenant_id, id)``.

On Citus the table is distributed on ``tenant_id`` like every tenant table, and a key must
include that column; plain PostgreSQL gets the same key (carenotes 0010, tenants 0004).
"""

from django.db import migrations

TABLE = "audit_readrecord"


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_tenant_admins_view_read_records")]

    operations = [
        migrations.RunSQL(
            f"ALTER TABLE {TABLE} DROP CONSTRAINT {TABLE}_pkey, "
            f"ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (tenant_id, id);",
            f"ALTER TABLE {TABLE} DROP CONSTRAINT {TABLE}_pkey, "
            f"ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id);",
        )
    ]
