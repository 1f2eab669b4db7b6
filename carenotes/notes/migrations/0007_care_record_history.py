"""Change history of care notes and amendments, written by triggers (django-pghistory).

Every UPDATE of a note or an amendment writes two rows (``before_change``: the row as it
was, ``after_change``: as it became) and every DELETE one (``deleted``), whatever wrote:
the services, the admin, raw SQL. ``pgh_context`` holds who and why (the request's user and
path, an amendment's or a repair's reason), read from the transaction's
``pghistory.context_metadata`` setting.

The history is tenant data: row-level security as on every tenant table, and both
application roles may only read and insert (the triggers run as the writer); an
``append_only`` trigger refuses UPDATE and DELETE even to the owner. pghistory's own
``pghistory_context`` table would hold every tenant's users and paths in one place: the
event tables keep their context in the row instead, and the application roles get no
privilege on it.
"""

import importlib

import django.db.models.deletion
import pghistory.utils
import pgtrigger.compiler
import pgtrigger.migrations
from django.conf import settings
from django.db import migrations, models

AMENDMENTS = importlib.import_module("carenotes.notes.migrations.0006_care_note_amendments")
APP_ROLE = AMENDMENTS.APP_ROLE
SYSTEM_ROLE = AMENDMENTS.SYSTEM_ROLE
HISTORY_TABLES = ("carenotes_carenoteevent", "carenotes_carenoteamendmentevent")
CONTEXT_TABLE = "pghistory_context"

GRANTS = (
    "".join(
        f"REVOKE ALL ON {table} FROM {APP_ROLE}, {SYSTEM_ROLE};\n"
        f"GRANT SELECT, INSERT ON {table} TO {APP_ROLE}, {SYSTEM_ROLE};\n"
        for table in HISTORY_TABLES
    )
    + f"REVOKE ALL ON {CONTEXT_TABLE} FROM {APP_ROLE}, {SYSTEM_ROLE};\n"
)
REVOKE_GRANTS = "".join(
    f"REVOKE ALL ON {table} FROM {APP_ROLE}, {SYSTEM_ROLE};\n" for table in HISTORY_TABLES
)


class Migration(migrations.Migration):
    dependencies = [
        ("carenotes", "0006_care_note_amendments"),
        ("pghistory", "0007_auto_20250421_0444"),
        ("tenants", "0003_row_level_security"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CareNoteAmendmentEvent",
            fields=[
                ("pgh_id", models.AutoField(primary_key=True, serialize=False)),
                ("pgh_created_at", models.DateTimeField(auto_now_add=True)),
                ("pgh_label", models.TextField(help_text="The event label.")),
                ("pgh_context", pghistory.utils.JSONField(null=True)),
                ("pgh_context_id", models.UUIDField(null=True)),
                ("id", models.BigIntegerField()),
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
                "abstract": False,
            },
        ),
        migrations.CreateModel(
            name="CareNoteEvent",
            fields=[
                ("pgh_id", models.AutoField(primary_key=True, serialize=False)),
                ("pgh_created_at", models.DateTimeField(auto_now_add=True)),
                ("pgh_label", models.TextField(help_text="The event label.")),
                ("pgh_context", pghistory.utils.JSONField(null=True)),
                ("pgh_context_id", models.UUIDField(null=True)),
                ("id", models.BigIntegerField()),
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
                ("created_at", models.DateTimeField()),
            ],
            options={
                "abstract": False,
            },
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="carenote",
            trigger=pgtrigger.compiler.Trigger(
                name="update_1_before",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (OLD.* IS DISTINCT FROM NEW.*)",
                    func='INSERT INTO "carenotes_carenoteevent" ("author_id", "body", "category", "created_at", "facility_id", "id", "patient_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "priority", "tenant_id") VALUES (OLD."author_id", OLD."body", OLD."category", OLD."created_at", OLD."facility_id", OLD."id", OLD."patient_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'before_change\', OLD."id", OLD."priority", OLD."tenant_id"); RETURN NULL;',
                    hash="5858a27a2a3664181a01e81b22d8d5d3fc1d9323",
                    operation="UPDATE",
                    pgid="pgtrigger_update_1_before_bde81",
                    table="carenotes_carenote",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="carenote",
            trigger=pgtrigger.compiler.Trigger(
                name="update_2_after",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (OLD.* IS DISTINCT FROM NEW.*)",
                    func='INSERT INTO "carenotes_carenoteevent" ("author_id", "body", "category", "created_at", "facility_id", "id", "patient_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "priority", "tenant_id") VALUES (NEW."author_id", NEW."body", NEW."category", NEW."created_at", NEW."facility_id", NEW."id", NEW."patient_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'after_change\', NEW."id", NEW."priority", NEW."tenant_id"); RETURN NULL;',
                    hash="92dd654d19c93cb8f3406c43e14990f70915597b",
                    operation="UPDATE",
                    pgid="pgtrigger_update_2_after_eeb72",
                    table="carenotes_carenote",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="carenote",
            trigger=pgtrigger.compiler.Trigger(
                name="delete_record",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func='INSERT INTO "carenotes_carenoteevent" ("author_id", "body", "category", "created_at", "facility_id", "id", "patient_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "priority", "tenant_id") VALUES (OLD."author_id", OLD."body", OLD."category", OLD."created_at", OLD."facility_id", OLD."id", OLD."patient_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'deleted\', OLD."id", OLD."priority", OLD."tenant_id"); RETURN NULL;',
                    hash="e06bdc340f88981888a4e4906f27be8f150b2539",
                    operation="DELETE",
                    pgid="pgtrigger_delete_record_79242",
                    table="carenotes_carenote",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="carenoteamendment",
            trigger=pgtrigger.compiler.Trigger(
                name="update_1_before",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (OLD.* IS DISTINCT FROM NEW.*)",
                    func='INSERT INTO "carenotes_carenoteamendmentevent" ("author_id", "body", "category", "created_at", "id", "note_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "previous_body", "previous_category", "previous_priority", "priority", "reason", "tenant_id") VALUES (OLD."author_id", OLD."body", OLD."category", OLD."created_at", OLD."id", OLD."note_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'before_change\', OLD."id", OLD."previous_body", OLD."previous_category", OLD."previous_priority", OLD."priority", OLD."reason", OLD."tenant_id"); RETURN NULL;',
                    hash="788bd4fc56ce8fc500c890cfd985967a32861ba4",
                    operation="UPDATE",
                    pgid="pgtrigger_update_1_before_67946",
                    table="carenotes_carenoteamendment",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="carenoteamendment",
            trigger=pgtrigger.compiler.Trigger(
                name="update_2_after",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition="WHEN (OLD.* IS DISTINCT FROM NEW.*)",
                    func='INSERT INTO "carenotes_carenoteamendmentevent" ("author_id", "body", "category", "created_at", "id", "note_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "previous_body", "previous_category", "previous_priority", "priority", "reason", "tenant_id") VALUES (NEW."author_id", NEW."body", NEW."category", NEW."created_at", NEW."id", NEW."note_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'after_change\', NEW."id", NEW."previous_body", NEW."previous_category", NEW."previous_priority", NEW."priority", NEW."reason", NEW."tenant_id"); RETURN NULL;',
                    hash="e2a5bbc2d358567d7d0520170ffaf7101953195e",
                    operation="UPDATE",
                    pgid="pgtrigger_update_2_after_116ea",
                    table="carenotes_carenoteamendment",
                    when="AFTER",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="carenoteamendment",
            trigger=pgtrigger.compiler.Trigger(
                name="delete_record",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func='INSERT INTO "carenotes_carenoteamendmentevent" ("author_id", "body", "category", "created_at", "id", "note_id", "pgh_context", "pgh_context_id", "pgh_created_at", "pgh_label", "pgh_obj_id", "previous_body", "previous_category", "previous_priority", "priority", "reason", "tenant_id") VALUES (OLD."author_id", OLD."body", OLD."category", OLD."created_at", OLD."id", OLD."note_id", COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_metadata\', TRUE), \'\'), NULL)::JSONB, COALESCE(NULLIF(CURRENT_SETTING(\'pghistory.context_id\', TRUE), \'\'), NULL)::UUID, NOW(), \'deleted\', OLD."id", OLD."previous_body", OLD."previous_category", OLD."previous_priority", OLD."priority", OLD."reason", OLD."tenant_id"); RETURN NULL;',
                    hash="90f993b34bdb79c0497494ec92b11de07468c628",
                    operation="DELETE",
                    pgid="pgtrigger_delete_record_5e40b",
                    table="carenotes_carenoteamendment",
                    when="AFTER",
                ),
            ),
        ),
        migrations.AddField(
            model_name="carenoteamendmentevent",
            name="author",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                related_query_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="carenoteamendmentevent",
            name="note",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                related_query_name="+",
                to="carenotes.carenote",
            ),
        ),
        migrations.AddField(
            model_name="carenoteamendmentevent",
            name="pgh_obj",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="events",
                to="carenotes.carenoteamendment",
            ),
        ),
        migrations.AddField(
            model_name="carenoteamendmentevent",
            name="tenant",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                related_query_name="+",
                to="tenants.tenant",
            ),
        ),
        migrations.AddField(
            model_name="carenoteevent",
            name="author",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                related_query_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="carenoteevent",
            name="facility",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                related_query_name="+",
                to="tenants.facility",
            ),
        ),
        migrations.AddField(
            model_name="carenoteevent",
            name="patient",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                related_query_name="+",
                to="carenotes.patient",
            ),
        ),
        migrations.AddField(
            model_name="carenoteevent",
            name="pgh_obj",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="events",
                to="carenotes.carenote",
            ),
        ),
        migrations.AddField(
            model_name="carenoteevent",
            name="tenant",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                related_query_name="+",
                to="tenants.tenant",
            ),
        ),
        migrations.AddIndex(
            model_name="carenoteamendmentevent",
            index=models.Index(fields=["tenant", "pgh_obj"], name="amendmentevent_tenant_idx"),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="carenoteamendmentevent",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'pgtrigger: Cannot update or delete rows from % table', TG_TABLE_NAME;",
                    hash="aaca4dea4c097a575838678d33ecc7d54fab63a8",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_bf26d",
                    table="carenotes_carenoteamendmentevent",
                    when="BEFORE",
                ),
            ),
        ),
        migrations.AddIndex(
            model_name="carenoteevent",
            index=models.Index(fields=["tenant", "pgh_obj"], name="carenoteevent_tenant_idx"),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="carenoteevent",
            trigger=pgtrigger.compiler.Trigger(
                name="append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION 'pgtrigger: Cannot update or delete rows from % table', TG_TABLE_NAME;",
                    hash="9cb1d3815c0acd9456a92d3e6ab60c29f43f5616",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_append_only_37206",
                    table="carenotes_carenoteevent",
                    when="BEFORE",
                ),
            ),
        ),
        migrations.RunSQL(
            "".join(map(AMENDMENTS.policy_sql, HISTORY_TABLES)),
            "".join(map(AMENDMENTS.drop_policy_sql, HISTORY_TABLES)),
        ),
        migrations.RunSQL(GRANTS, REVOKE_GRANTS),
    ]
