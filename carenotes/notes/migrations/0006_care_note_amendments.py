"""Amendments of care notes: a correction keeps who, when, why and the previous values.

Tenant staff never rewrite a recorded note: the app role may insert amendments but never
update or delete them, and on notes it may update only the amendable columns (category,
priority, body; never created_at, facility, patient, author or tenant) and delete nothing.
The system role (superusers' data repairs, trusted work) keeps full DML; its changes are
written to the change history (0007).

An amendment's note is of its own tenant: a trigger checks it on insert, rather than a
composite foreign key as in 0002, which would need a unique (tenant_id, id) index on the
notes table, the largest: one more index written by every note (and bulk load) for rows that
are rare, and the planner took it, filtering on created_at, for the daily stats query of a
small tenant (system_tests/test_rls.py's plan test failed with it).
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

SAME_TENANT_FUNCTION = "carenotes_amendment_same_tenant"
SAME_TENANT_TRIGGER = "carenoteamendment_same_tenant"
# An amendment names a note of its own tenant. Under row-level security the app role's
# lookup sees only its tenants' notes, so another tenant's note is refused like a missing one.
SAME_TENANT = f"""
CREATE FUNCTION {SAME_TENANT_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM {NOTES_TABLE} WHERE id = NEW.note_id AND tenant_id = NEW.tenant_id
    ) THEN
        RAISE EXCEPTION 'care note % is not a note of tenant %', NEW.note_id, NEW.tenant_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER {SAME_TENANT_TRIGGER} BEFORE INSERT OR UPDATE OF tenant_id, note_id
    ON {AMENDMENTS_TABLE} FOR EACH ROW EXECUTE FUNCTION {SAME_TENANT_FUNCTION}();
"""
DROP_SAME_TENANT = (
    f"DROP TRIGGER {SAME_TENANT_TRIGGER} ON {AMENDMENTS_TABLE};\n"
    f"DROP FUNCTION {SAME_TENANT_FUNCTION}();\n"
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
        migrations.RunSQL(SAME_TENANT, DROP_SAME_TENANT),
        migrations.RunSQL(policy_sql(AMENDMENTS_TABLE), drop_policy_sql(AMENDMENTS_TABLE)),
        migrations.RunSQL(GRANTS, REVOKE_GRANTS),
    ]
