"""The day rollups: per tenant-local day, note counts and the residents noted, per facility.

``stats_day_counts`` holds one row per (tenant, local day, facility, category, priority) with
the number of notes; counts of any range add up from it. Distinct residents do not add up
across days, so ``stats_day_residents`` holds one row per (tenant, local day, facility,
resident) that has notes (with their number, so that removing the last one removes the row):
whether a resident has a note in a range is one probe of its key, which leads with
(tenant, resident, day): the distinct residents of a range are the tenant's residents with
such a row, counted exactly in as many index probes as the tenant has residents.

Every key leads with tenant_id (the Citus distribution column). The counts' primary key
INCLUDEs ``notes`` so range statements are index-only scans. A row exists only while its
count is positive: the triggers (stats 0003) delete the rows a write empties, found through
the partial ``*_emptied_idx`` indexes that hold no entry at rest.

No foreign keys: the rows are derived from care notes, whose composite foreign keys already
keep facility and resident inside the tenant, and a key to patients or facilities would
make TRUNCATE of those tables (seed_notes --reset, test flushes) refuse.

Frozen values (migrations must not import app code); stats.selectors.ROLLUP_TABLES names
the same tables.
"""

from django.db import migrations

COUNTS_TABLE = "stats_day_counts"
RESIDENTS_TABLE = "stats_day_residents"

TABLES = f"""
CREATE TABLE {COUNTS_TABLE} (
    tenant_id bigint NOT NULL,
    day date NOT NULL,
    facility_id bigint NOT NULL,
    category varchar(16) NOT NULL,
    priority smallint NOT NULL,
    notes integer NOT NULL,
    CONSTRAINT {COUNTS_TABLE}_pkey
        PRIMARY KEY (tenant_id, day, facility_id, category, priority) INCLUDE (notes)
);
CREATE INDEX {COUNTS_TABLE}_emptied_idx ON {COUNTS_TABLE} (tenant_id) WHERE notes <= 0;

CREATE TABLE {RESIDENTS_TABLE} (
    tenant_id bigint NOT NULL,
    day date NOT NULL,
    facility_id bigint NOT NULL,
    patient_id bigint NOT NULL,
    notes integer NOT NULL,
    CONSTRAINT {RESIDENTS_TABLE}_pkey PRIMARY KEY (tenant_id, patient_id, day, facility_id)
);
CREATE INDEX {RESIDENTS_TABLE}_emptied_idx ON {RESIDENTS_TABLE} (tenant_id) WHERE notes <= 0;
"""

DROP_TABLES = f"DROP TABLE {RESIDENTS_TABLE};\nDROP TABLE {COUNTS_TABLE};\n"


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("carenotes", "0004_carenote_tenant_facility_statistics"),
        ("tenants", "0003_row_level_security"),
    ]

    operations = [migrations.RunSQL(TABLES, DROP_TABLES)]
