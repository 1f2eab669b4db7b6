"""Amendments of care notes: a correction keeps who, when, why and the previous values.

Tenant staff never rewrite a recorded note: the app role may insert amendments but never
update or delete them, and on notes it may update only the amendable columns (category,
priority, body; never created_at, facility, patient, author or tenant) and delete nothing.
The system role (superusers' data repairs, trusted work) keeps full DML; its changes are
written to the change history (0007).

``carenote_tenant_id_uniq`` (tenant_id, id) is the target of the composite foreign key
that keeps an amendment in its note's tenant, as 0002 does for notes and patients.
Row-level security as on every tenant table (tenants 0003); frozen values, which
system_tests/test_rls.py checks against tenants.rls.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

APP_ROLE = "carenotes_app"
SYSTEM_ROLE = "carenotes_system"
POLICY_NAME = "carenotes_tenant_isolation"
ALL_TENANTS_POLICY_NAME = "carenotes_all_tenants"
NOTES_TABLE = "carenotes_carenote"
AMENDMENTS_TABLE = "carenotes_carenoteamendment"
AMENDABLE_COLUMNS = "category, priority, body"

COMPOSITE_FK = (
    f"ALTER TABLE {AMENDMENTS_TABLE} ADD CONSTRAINT carenoteamendment_note_same_tenant_fk "
    f"FOREIGN KEY (tenant_id, note_id) REFERENCES {NOTES_TABLE} (tenant_id, id) "
    "ON DELETE CASCADE;"
)
DROP_COMPOSITE_FK = (
    f"ALTER TABLE {AMENDMENTS_TABLE} DROP CONSTRAINT carenoteamendment_note_same_tenant_fk;"
)


def policy_sql(table: str) -> str:
    """Enable and force row-level security on ``table`` with the two policies of tenants 0003."""
    tenant = "tenant_id = ANY ((SELECT carenotes_rls_tenant_ids())::bigint[])"
    everything = "(SELECT carenotes_rls_all_tenants())"
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;\n"
        f"CREATE POLICY {POLICY_NAME} ON {table} TO {APP_ROLE} "
        f"USING ({tenant}) WITH CHECK ({tenant});\n"
        f"CREATE POLICY {ALL_TENANTS_POLICY_NAME} ON {table} TO {SYSTEM_ROLE}, CURRENT_USER "
        f"USING ({everything}) WITH CHECK ({everything});\n"
    )


def drop_policy_sql(table: str) -> str:
    return (
        f"DROP POLICY {ALL_TENANTS_POLICY_NAME} ON {table};\n"
        f"DROP POLICY {POLICY_NAME} ON {table};\n"
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY;\n"
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;\n"
    )


# The schema's default privileges (tenants 0003) gave both roles full DML on the new table.
GRANTS = (
    f"REVOKE ALL ON {AMENDMENTS_TABLE} FROM {APP_ROLE}, {SYSTEM_ROLE};\n"
    f"GRANT SELECT, INSERT ON {AMENDMENTS_TABLE} TO {APP_ROLE};\n"
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {AMENDMENTS_TABLE} TO {SYSTEM_ROLE};\n"
    f"REVOKE UPDATE, DELETE ON {NOTES_TABLE} FROM {APP_ROLE};\n"
    f"GRANT UPDATE ({AMENDABLE_COLUMNS}) ON {NOTES_TABLE} TO {APP_ROLE};\n"
)
REVOKE_GRANTS = (
    f"REVOKE UPDATE ({AMENDABLE_COLUMNS}) ON {NOTES_TABLE} FROM {APP_ROLE};\n"
    f"GRANT UPDATE, DELETE ON {NOTES_TABLE} TO {APP_ROLE};\n"
    f"REVOKE ALL ON {AMENDMENTS_TABLE} FROM {APP_ROLE}, {SYSTEM_ROLE};\n"
)


class Migration(migrations.Migration):
    dependencies = [
        ("carenotes", "0004_carenote_tenant_facility_statistics"),
        ("tenants", "0003_row_level_security"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CareNoteAmendment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created_at", models.DateTimeField()),
                ("reason", models.TextField(max_length=1000)),
                (
                    "previous_category",
                    models.CharField(
                        choices=[
                            ("medication", "Medication"),
                            ("observation", "Observation"),
                            ("treatment", "Treatment"),
                        ],
                        max_length=16,
                    ),
                ),
                ("previous_priority", models.PositiveSmallIntegerField()),
                ("previous_body", models.TextField()),
                (
                    "category",
                    models.CharField(
                        choices=[
                            ("medication", "Medication"),
                            ("observation", "Observation"),
                            ("treatment", "Treatment"),
                        ],
                        max_length=16,
                    ),
                ),
                ("priority", models.PositiveSmallIntegerField()),
                ("body", models.TextField()),
            ],
            options={
                "ordering": ["created_at", "id"],
            },
        ),
        migrations.AddConstraint(
            model_name="carenote",
            constraint=models.UniqueConstraint(
                fields=("tenant", "id"), name="carenote_tenant_id_uniq"
            ),
        ),
        migrations.AddField(
            model_name="carenoteamendment",
            name="author",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="care_note_amendments",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="carenoteamendment",
            name="note",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="amendments",
                to="carenotes.carenote",
            ),
        ),
        migrations.AddField(
            model_name="carenoteamendment",
            name="tenant",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="care_note_amendments",
                to="tenants.tenant",
            ),
        ),
        migrations.AddIndex(
            model_name="carenoteamendment",
            index=models.Index(
                fields=["tenant", "note", "created_at"], name="carenoteamendment_note_idx"
            ),
        ),
        migrations.AddConstraint(
            model_name="carenoteamendment",
            constraint=models.CheckConstraint(
                condition=models.Q(("reason__regex", "\\S")), name="carenoteamendment_reason_given"
            ),
        ),
        migrations.AddConstraint(
            model_name="carenoteamendment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("category__in", ["medication", "observation", "treatment"]),
                    ("previous_category__in", ["medication", "observation", "treatment"]),
                ),
                name="carenoteamendment_category_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="carenoteamendment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("previous_priority__gte", 1),
                    ("previous_priority__lte", 5),
                    ("priority__gte", 1),
                    ("priority__lte", 5),
                ),
                name="carenoteamendment_priority_range",
            ),
        ),
        migrations.AddConstraint(
            model_name="carenoteamendment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("body", models.F("previous_body")),
                    ("category", models.F("previous_category")),
                    ("priority", models.F("previous_priority")),
                    _negated=True,
                ),
                name="carenoteamendment_changes_something",
            ),
        ),
        migrations.RunSQL(COMPOSITE_FK, DROP_COMPOSITE_FK),
        migrations.RunSQL(policy_sql(AMENDMENTS_TABLE), drop_policy_sql(AMENDMENTS_TABLE)),
        migrations.RunSQL(GRANTS, REVOKE_GRANTS),
    ]
