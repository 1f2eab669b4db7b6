"""Idempotency keys of POST /api/notes/, under row-level security like every tenant table.

The table stores answers, which hold note bodies: tenant data. As for the day rollups (stats
0002): DML for both application roles, never TRUNCATE (which ignores row-level security);
``carenotes_app`` sees and writes the rows of the tenants listed in ``carenotes.tenant_ids``,
``carenotes_system`` and the owner every row while ``carenotes.all_tenants`` is on; FORCE
binds the owner too.

Frozen values (migrations must not import app code: the roles and policies come from the
frozen tenants 0003); system_tests/test_rls.py checks the table against the model.
"""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The policies themselves are written as tenants 0003 wrote them for the first tables.
TENANT_RLS = importlib.import_module("tenants.migrations.0003_row_level_security")
ROLES = TENANT_RLS.ROLES
RLS_TABLES = {"carenotes_idempotencykey": "tenant_id"}


def _grant_sql(table: str) -> str:
    return "".join(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {role};\n" for role in ROLES
    )


def _revoke_sql(table: str) -> str:
    return "".join(f"REVOKE ALL ON {table} FROM {role};\n" for role in ROLES)


class Migration(migrations.Migration):
    dependencies = [
        ("carenotes", "0004_carenote_tenant_facility_statistics"),
        ("tenants", "0003_row_level_security"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="IdempotencyKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=255)),
                (
                    "fingerprint",
                    models.CharField(help_text="SHA-256 of the request body.", max_length=64),
                ),
                ("response_status", models.PositiveSmallIntegerField(null=True)),
                (
                    "response_body",
                    models.TextField(blank=True, help_text="The answer's JSON, as sent."),
                ),
                ("created_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="idempotency_keys",
                        to="tenants.tenant",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="idempotency_keys",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["expires_at"], name="idempotencykey_expires_idx")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("user", "key"), name="idempotencykey_user_key_uniq"
                    )
                ],
            },
        ),
        migrations.RunSQL(
            "".join(
                _grant_sql(table) + TENANT_RLS._policy_sql(table, column)
                for table, column in RLS_TABLES.items()
            ),
            "".join(
                TENANT_RLS._drop_policy_sql(table) + _revoke_sql(table)
                for table in reversed(RLS_TABLES)
            ),
        ),
    ]
