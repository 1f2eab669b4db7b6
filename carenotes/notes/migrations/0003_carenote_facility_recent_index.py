"""Index for note lists filtered by facility (API and admin changelist), newest first.

Built CONCURRENTLY so adding it to a table of millions of notes does not block writes.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("carenotes", "0002_tenant_consistent_foreign_keys"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="carenote",
            index=models.Index(
                fields=["tenant", "facility", "-created_at", "-id"],
                name="carenote_facility_recent_idx",
            ),
        ),
    ]
