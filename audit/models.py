"""One row per read that returned care notes: when, who, which tenant, what was read."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils import timezone

from carenotes.core.observability import REQUEST_ID_MAX_LENGTH
from tenants.models import Tenant

ROUTE_MAX_LENGTH = 100
USERNAME_MAX_LENGTH = 150
TENANT_RECENT_INDEX_NAME = "audit_read_tenant_recent_idx"
READ_AT_INDEX_NAME = "audit_read_read_at_brin"


class ReadRecord(models.Model):
    """A read of one tenant's care notes by one user; the application only ever appends these.

    The user and tenant are plain ids without a database constraint: the record outlives
    them (retention, not the deletion of a user or tenant, ends it), and a foreign key would
    make such a deletion update or delete audit rows, which no application role may do.
    """

    read_at = models.DateTimeField(default=timezone.now)
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    # The name at the time of the read: users can be renamed or deleted afterwards.
    username = models.CharField(max_length=USERNAME_MAX_LENGTH)
    route = models.CharField(max_length=ROUTE_MAX_LENGTH, help_text="The URL name read.")
    filters = models.JSONField(default=dict, help_text="The query parameters of the read.")
    # None when the read returned more notes than services.AUDIT_NOTE_IDS_MAX (an export).
    note_ids = ArrayField(models.BigIntegerField(), null=True, blank=True)
    note_count = models.PositiveIntegerField()
    request_id = models.CharField(max_length=REQUEST_ID_MAX_LENGTH, blank=True)

    class Meta:
        indexes = [
            # A tenant's records newest first (the admin); ids grow with read_at.
            models.Index(fields=["tenant", "-id"], name=TENANT_RECENT_INDEX_NAME),
            # The purge finds old rows by time; a BRIN index over an append-only, time-ordered
            # table is a few pages and costs an INSERT almost nothing.
            BrinIndex(fields=["read_at"], name=READ_AT_INDEX_NAME),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(note_ids__isnull=True)
                | models.Q(
                    note_count=models.Func(
                        "note_ids", function="cardinality", output_field=models.IntegerField()
                    )
                ),
                name="audit_read_ids_match_count",
            )
        ]

    def __str__(self) -> str:
        return f"{self.username} read {self.note_count} notes ({self.route})"
