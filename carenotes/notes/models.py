"""The care-note domain: patients (residents) and the notes carers write about them."""

import pghistory
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from tenants.models import Facility, Tenant

PRIORITY_MIN = 1
PRIORITY_MAX = 5
STATS_INDEX_NAME = "carenote_stats_covering_idx"
FACILITY_INDEX_NAME = "carenote_facility_recent_idx"
AMENDMENT_REASON_MAX_LENGTH = 1000
# Labels of the change-history rows the triggers write (CareNoteEvent, CareNoteAmendmentEvent):
# an UPDATE writes the row as it was and as it became, a DELETE the row as it was.
HISTORY_BEFORE = "before_change"
HISTORY_AFTER = "after_change"
HISTORY_DELETED = "deleted"


class Category(models.TextChoices):
    MEDICATION = "medication", "Medication"
    OBSERVATION = "observation", "Observation"
    TREATMENT = "treatment", "Treatment"


class Patient(models.Model):
    """A resident of one facility of one tenant."""

    # Indexes that lead with tenant_id (below) serve tenant lookups; no lone tenant_id index.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="patients", db_index=False
    )
    # db_constraint=False: the composite (tenant_id, facility_id) foreign key added in the
    # migration is the real constraint; it also proves the facility is the tenant's.
    facility = models.ForeignKey(
        Facility,
        on_delete=models.PROTECT,
        related_name="patients",
        db_constraint=False,
        db_index=False,
    )
    reference = models.CharField(max_length=32, help_text="Tenant-unique reference code.")
    display_name = models.CharField(max_length=200)

    class Meta:
        ordering = ["tenant_id", "reference"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "reference"], name="patient_tenant_ref_uniq"),
            models.UniqueConstraint(fields=["tenant", "id"], name="patient_tenant_id_uniq"),
        ]
        indexes = [
            models.Index(fields=["tenant", "facility"], name="patient_tenant_facility_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.display_name}"

    def clean(self) -> None:
        """Refuse a facility of another tenant (the composite foreign key would too, as a 500)."""
        if self.tenant_id and self.facility_id and self.facility.tenant_id != self.tenant_id:
            raise ValidationError({"facility": "This facility belongs to another tenant."})


def _history(model_name: str, index_name: str):
    """Track UPDATEs (before and after) and DELETEs of a tenant's rows in an append-only table.

    Written by row-level triggers (django-pghistory), whatever writes: the services, the admin,
    raw SQL. Who and why (the request's user and path, an amendment's or repair's reason) come
    from the transaction's ``pghistory.context`` into the row's ``pgh_context`` (JSON, kept in
    the row itself so that it is tenant data under row-level security like the rest).
    Inserts are not tracked: a new row is its own record, and bulk loads stay fast.
    """
    return pghistory.track(
        # PostgreSQL fires a table's triggers in name order: "before" rows come first.
        pghistory.UpdateEvent(HISTORY_BEFORE, row=pghistory.Old, trigger_name="update_1_before"),
        pghistory.UpdateEvent(HISTORY_AFTER, row=pghistory.New, trigger_name="update_2_after"),
        pghistory.DeleteEvent(HISTORY_DELETED, trigger_name="delete_record"),
        model_name=model_name,
        context_field=pghistory.ContextJSONField(),
        append_only=True,
        meta={"indexes": [models.Index(fields=["tenant", "pgh_obj"], name=index_name)]},
    )


@_history("CareNoteEvent", "carenoteevent_tenant_idx")
class CareNote(models.Model):
    """One recorded act of care; ``created_at`` is when the care happened.

    Tenant staff never change a recorded note in place: a correction of its category,
    priority or body is a ``CareNoteAmendment``, which keeps the previous values, and the
    note row carries the current ones (so the analytics count what is now true).
    """

    # Every index on this (large) table leads with tenant_id; single-column FK indexes would
    # only slow bulk loads. The composite foreign keys are added in the migration.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="care_notes", db_index=False
    )
    facility = models.ForeignKey(
        Facility,
        on_delete=models.PROTECT,
        related_name="care_notes",
        db_constraint=False,
        db_index=False,
    )
    patient = models.ForeignKey(
        Patient,
        on_delete=models.PROTECT,
        related_name="care_notes",
        db_constraint=False,
        db_index=False,
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="care_notes",
        db_index=False,
    )
    category = models.CharField(max_length=16, choices=Category.choices)
    priority = models.PositiveSmallIntegerField()
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX),
                name="carenote_priority_range",
            ),
            models.CheckConstraint(
                condition=models.Q(category__in=Category.values), name="carenote_category_valid"
            ),
        ]
        indexes = [
            # Serves the daily stats query (one tenant, one local-day created_at range,
            # optionally some facilities) as an index-only scan.
            models.Index(
                fields=["tenant", "created_at"],
                include=["facility", "patient", "category", "priority"],
                name=STATS_INDEX_NAME,
            ),
            # Note lists: newest first within a tenant / a patient.
            models.Index(
                fields=["tenant", "-created_at", "-id"], name="carenote_tenant_recent_idx"
            ),
            models.Index(
                fields=["tenant", "patient", "-created_at"], name="carenote_patient_recent_idx"
            ),
            models.Index(
                fields=["tenant", "author", "-created_at"], name="carenote_author_recent_idx"
            ),
            # Note lists and the admin changelist filtered by facility, newest first.
            models.Index(
                fields=["tenant", "facility", "-created_at", "-id"],
                name=FACILITY_INDEX_NAME,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.category} note {self.pk}"

    def clean(self) -> None:
        """Refuse a facility or patient of another tenant, or a patient of another facility."""
        errors = {}
        if self.tenant_id and self.facility_id and self.facility.tenant_id != self.tenant_id:
            errors["facility"] = "This facility belongs to another tenant."
        if self.tenant_id and self.patient_id:
            if self.patient.tenant_id != self.tenant_id:
                errors["patient"] = "This patient belongs to another tenant."
            elif self.facility_id and self.patient.facility_id != self.facility_id:
                errors["patient"] = "This patient does not live in that facility."
        if errors:
            raise ValidationError(errors)


IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_EXPIRY_INDEX_NAME = "idempotencykey_expires_idx"


class IdempotencyKey(models.Model):
    """A caller's ``Idempotency-Key`` for ``POST /api/notes/`` and the answer it was given.

    Written in the transaction that records the note (carenotes/notes/idempotency.py), so a
    committed key always has its note and its answer; a rolled-back request leaves neither.
    """

    # Tenant data: the answer holds the note's body. Row-level security as on every tenant
    # table (migration 0005). No lone tenant_id index: only a tenant's deletion looks it up.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="idempotency_keys", db_index=False
    )
    # The unique (tenant, user, key) constraint serves the lookups of a key.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="idempotency_keys",
        db_index=False,
    )
    key = models.CharField(max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request body.")
    # Null and empty only inside the claiming transaction, before the note is written.
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.TextField(blank=True, help_text="The answer's JSON, as sent.")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            # A key is the caller's within one tenant (unique constraints include the tenant:
            # the Citus distribution column).
            models.UniqueConstraint(
                fields=["tenant", "user", "key"], name="idempotencykey_tenant_user_key_uniq"
            ),
        ]
        indexes = [
            # The purge command's batches: the oldest expired keys first.
            models.Index(fields=["expires_at"], name=IDEMPOTENCY_EXPIRY_INDEX_NAME),
        ]

    def __str__(self) -> str:
        return f"idempotency key {self.key!r} of user {self.user_id}"


@_history("CareNoteAmendmentEvent", "amendmentevent_tenant_idx")
class CareNoteAmendment(models.Model):
    """A correction of a note's category, priority or body: who, when, why, before and after.

    Rows are never changed by the application (its role may only insert them); the note keeps
    its author and ``created_at``, and carries the amended values.
    """

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="care_note_amendments", db_index=False
    )
    # Triggers, not a foreign key (notes are partitioned by month, migration 0010): one
    # refuses an amendment whose note is not of its tenant (0006), one the deletion of a
    # note that still has amendments (0010).
    note = models.ForeignKey(
        CareNote,
        on_delete=models.CASCADE,
        related_name="amendments",
        db_constraint=False,
        db_index=False,
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="care_note_amendments",
        db_index=False,
    )
    created_at = models.DateTimeField()
    reason = models.TextField(max_length=AMENDMENT_REASON_MAX_LENGTH)
    previous_category = models.CharField(max_length=16, choices=Category.choices)
    previous_priority = models.PositiveSmallIntegerField()
    previous_body = models.TextField()
    category = models.CharField(max_length=16, choices=Category.choices)
    priority = models.PositiveSmallIntegerField()
    body = models.TextField()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(reason__regex=r"\S"), name="carenoteamendment_reason_given"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    category__in=Category.values, previous_category__in=Category.values
                ),
                name="carenoteamendment_category_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    priority__gte=PRIORITY_MIN,
                    priority__lte=PRIORITY_MAX,
                    previous_priority__gte=PRIORITY_MIN,
                    previous_priority__lte=PRIORITY_MAX,
                ),
                name="carenoteamendment_priority_range",
            ),
            models.CheckConstraint(
                condition=~models.Q(
                    category=models.F("previous_category"),
                    priority=models.F("previous_priority"),
                    body=models.F("previous_body"),
                ),
                name="carenoteamendment_changes_something",
            ),
        ]
        indexes = [
            # A note's amendments, oldest first; the list's per-note counts.
            models.Index(
                fields=["tenant", "note", "created_at"], name="carenoteamendment_note_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Amendment {self.pk} of note {self.note_id}"
