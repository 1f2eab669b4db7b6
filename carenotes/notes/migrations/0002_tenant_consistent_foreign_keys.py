"""Composite foreign keys: a patient's facility, and a note's facility and patient, must
belong to the row's own tenant. The database refuses anything else."""

from django.db import migrations

FOREIGN_KEYS = [
    ("carenotes_patient", "patient_facility_same_tenant_fk", "facility_id", "tenants_facility"),
    ("carenotes_carenote", "carenote_facility_same_tenant_fk", "facility_id", "tenants_facility"),
    ("carenotes_carenote", "carenote_patient_same_tenant_fk", "patient_id", "carenotes_patient"),
]


def _forward(table, name, column, target):
    return (
        f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY (tenant_id, {column}) "
        f"REFERENCES {target} (tenant_id, id) ON DELETE RESTRICT;"
    )


def _reverse(table, name, column, target):
    return f"ALTER TABLE {table} DROP CONSTRAINT {name};"


class Migration(migrations.Migration):
    dependencies = [
        ("carenotes", "0001_patients_and_care_notes"),
        ("tenants", "0001_tenants_facilities_memberships_tokens"),
    ]

    operations = [
        migrations.RunSQL(sql=_forward(*fk), reverse_sql=_reverse(*fk)) for fk in FOREIGN_KEYS
    ]
