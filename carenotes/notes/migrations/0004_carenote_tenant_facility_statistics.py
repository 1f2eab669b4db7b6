"""Extended statistics: a note's facility determines its tenant.

Without them the planner multiplies the selectivities of ``tenant_id = T`` and
``facility_id IN (T's facilities)`` as if independent, estimates ~1 row for a tenant-day at
10M notes / 500 tenants, and picks carenote_facility_recent_idx (heap fetches) over the
covering index's index-only scan. With the dependency known it estimates hundreds of rows
and takes the index-only scan (docs/PERFORMANCE.md, 10M run).
"""

from django.db import migrations

STATISTICS_NAME = "carenote_tenant_facility_stats"


class Migration(migrations.Migration):
    dependencies = [("carenotes", "0003_carenote_facility_recent_index")]

    operations = [
        migrations.RunSQL(
            sql=(
                f"CREATE STATISTICS {STATISTICS_NAME} (dependencies, ndistinct) "
                "ON tenant_id, facility_id FROM carenotes_carenote; "
                # Populate them now rather than at the next autovacuum (a sample: quick).
                "ANALYZE carenotes_carenote;"
            ),
            reverse_sql=f"DROP STATISTICS {STATISTICS_NAME};",
        ),
    ]
