"""Writes for the care-note domain: recording notes, amending them, announcing which days
changed."""

from datetime import datetime, timedelta

import pghistory
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from carenotes.core.days import local_date
from carenotes.notes.models import (
    AMENDMENT_REASON_MAX_LENGTH,
    PRIORITY_MAX,
    PRIORITY_MIN,
    CareNote,
    CareNoteAmendment,
    Category,
    Patient,
)
from carenotes.notes.signals import care_notes_changed
from tenants.models import Facility, Tenant
from tenants.principal import TenantInfo

NOTE_BODY_MAX_LENGTH = 10_000
# Clocks of handheld devices drift; a little future is tolerated, a lot is a typo.
NOTE_FUTURE_TOLERANCE = timedelta(minutes=5)


def note_backdate_window() -> timedelta:
    """Return how far in the past a note may be dated (settings.NOTE_BACKDATE_DAYS)."""
    return timedelta(days=settings.NOTE_BACKDATE_DAYS)


def note_local_day(*, created_at: datetime, timezone_name: str):
    """Return the tenant-local calendar day a note belongs to (the stats bucket)."""
    return local_date(instant=created_at, timezone_name=timezone_name)


def note_changed_on_commit(*, tenant_id: int, timezone_name: str, created_at) -> None:
    """After the current transaction commits, announce that the note's local day changed."""
    days = frozenset({note_local_day(created_at=created_at, timezone_name=timezone_name)})
    # Before commit a concurrent stats request could re-cache the old answer under the
    # new version; after commit the recount sees the row.
    transaction.on_commit(
        lambda: care_notes_changed.send(sender=CareNote, tenant_id=tenant_id, days=days)
    )


def _tenant_facts(tenant: TenantInfo | Tenant) -> tuple[int, str, tuple[int, ...]]:
    if isinstance(tenant, TenantInfo):
        return tenant.id, tenant.timezone, tenant.facility_ids
    facility_ids = tuple(Facility.objects.filter(tenant_id=tenant.pk).values_list("id", flat=True))
    return tenant.pk, tenant.timezone, facility_ids


def _content_errors(*, category: str, priority: int, body: str) -> dict[str, list[str]]:
    """Return the errors of a note's amendable content (category, priority, body), by field."""
    errors: dict[str, list[str]] = {}
    if category not in Category.values:
        errors["category"] = [f"Must be one of {', '.join(Category.values)}."]
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        errors["priority"] = [f"Must be between {PRIORITY_MIN} and {PRIORITY_MAX}."]
    if not body.strip():
        errors["body"] = ["Must not be empty."]
    elif len(body) > NOTE_BODY_MAX_LENGTH:
        errors["body"] = [f"Must be at most {NOTE_BODY_MAX_LENGTH} characters."]
    return errors


def _validate_fields(*, category: str, priority: int, body: str, created_at: datetime) -> None:
    errors = _content_errors(category=category, priority=priority, body=body)
    now = timezone.now()
    if created_at > now + NOTE_FUTURE_TOLERANCE:
        errors["created_at"] = ["Must not be in the future."]
    elif created_at < now - note_backdate_window():
        errors["created_at"] = [
            f"Must not be more than {settings.NOTE_BACKDATE_DAYS} days in the past."
        ]
    if errors:
        raise ValidationError(errors)


def _validate_placement(
    *, tenant_id: int, facility_ids: tuple[int, ...], facility_id: int, patient_id: int
) -> None:
    if facility_id not in facility_ids:
        raise ValidationError({"facility_id": ["No such facility in this tenant."]})
    patient_facility_id = (
        Patient.objects.filter(tenant_id=tenant_id, pk=patient_id)
        .values_list("facility_id", flat=True)
        .first()
    )
    if patient_facility_id is None:
        raise ValidationError({"patient_id": ["No such patient in this tenant."]})
    if patient_facility_id != facility_id:
        raise ValidationError({"patient_id": ["This patient does not live in that facility."]})


def _validate_note(
    *,
    tenant_id: int,
    facility_ids: tuple[int, ...],
    facility_id: int,
    patient_id: int,
    category: str,
    priority: int,
    body: str,
    created_at: datetime,
) -> None:
    _validate_fields(category=category, priority=priority, body=body, created_at=created_at)
    _validate_placement(
        tenant_id=tenant_id,
        facility_ids=facility_ids,
        facility_id=facility_id,
        patient_id=patient_id,
    )


def note_validate(*, tenant: TenantInfo | Tenant, **fields) -> None:
    """Check a note before it is recorded, as ``note_create`` does (its keyword arguments but
    the author, ``created_at`` required); raise DRF ValidationError naming the field."""
    tenant_id, _, facility_ids = _tenant_facts(tenant)
    _validate_note(tenant_id=tenant_id, facility_ids=facility_ids, **fields)


def note_create(
    *,
    tenant: TenantInfo | Tenant,
    author,
    facility_id: int,
    patient_id: int,
    category: str,
    priority: int,
    body: str,
    created_at: datetime | None = None,
) -> CareNote:
    """Record a care note (committed when this returns) and make that day's stats stale.

    Raises DRF ValidationError naming the offending field.
    """
    tenant_id, timezone_name, facility_ids = _tenant_facts(tenant)
    created_at = created_at or timezone.now()
    _validate_note(
        tenant_id=tenant_id,
        facility_ids=facility_ids,
        facility_id=facility_id,
        patient_id=patient_id,
        category=category,
        priority=priority,
        body=body,
        created_at=created_at,
    )
    try:
        with transaction.atomic():
            note = CareNote.objects.create(
                tenant_id=tenant_id,
                facility_id=facility_id,
                patient_id=patient_id,
                author_id=author.pk,
                category=category,
                priority=priority,
                body=body,
                created_at=created_at,
            )
            note_changed_on_commit(
                tenant_id=tenant_id, timezone_name=timezone_name, created_at=created_at
            )
    except IntegrityError as exc:
        # The composite foreign keys catch a patient or facility deleted since the check above.
        raise ValidationError({"patient_id": ["This patient no longer exists."]}) from exc
    return note


def note_amendment_errors(
    *, note: CareNote, reason: str, category: str, priority: int, body: str
) -> dict[str, list[str]]:
    """Return what is wrong with amending ``note`` to these values, by field (empty: nothing)."""
    errors = _content_errors(category=category, priority=priority, body=body)
    if not reason.strip():
        errors["reason"] = ["Say why the note is amended."]
    elif len(reason) > AMENDMENT_REASON_MAX_LENGTH:
        errors["reason"] = [f"Must be at most {AMENDMENT_REASON_MAX_LENGTH} characters."]
    if not errors and (category, priority, body) == (note.category, note.priority, note.body):
        errors["non_field_errors"] = [
            "The amendment changes nothing: give a new category, priority or body."
        ]
    return errors


def note_amend(
    *,
    tenant: TenantInfo | Tenant,
    author,
    note_id: int,
    reason: str,
    category: str | None = None,
    priority: int | None = None,
    body: str | None = None,
) -> CareNoteAmendment:
    """Correct a note's category, priority or body (None keeps it); committed when this returns.

    The amendment keeps the previous values, the author and the reason; the note row takes
    the new values, so the day rollups (triggers) count the corrected note, and the change
    history (triggers) records the note before and after with the author and reason. The
    note's day of stats is made stale after commit. The note is locked for the check and the
    write, so concurrent amendments apply one after the other, each to the values it saw.
    Raises NotFound for a note of another tenant, ValidationError naming the field.
    """
    tenant_id, timezone_name, _ = _tenant_facts(tenant)
    with transaction.atomic(), pghistory.context(user=author.pk, amendment_reason=reason):
        note = (
            CareNote.objects.select_for_update()
            .filter(tenant_id=tenant_id, pk=note_id)
            .only("id", "tenant_id", "category", "priority", "body", "created_at")
            .first()
        )
        if note is None:
            raise NotFound()
        new = {
            "category": note.category if category is None else category,
            "priority": note.priority if priority is None else priority,
            "body": note.body if body is None else body,
        }
        errors = note_amendment_errors(note=note, reason=reason, **new)
        if errors:
            raise ValidationError(errors)
        amendment = CareNoteAmendment.objects.create(
            tenant_id=tenant_id,
            note_id=note.pk,
            author_id=author.pk,
            created_at=timezone.now(),
            reason=reason,
            previous_category=note.category,
            previous_priority=note.priority,
            previous_body=note.body,
            **new,
        )
        CareNote.objects.filter(tenant_id=tenant_id, pk=note.pk).update(**new)
        note_changed_on_commit(
            tenant_id=tenant_id, timezone_name=timezone_name, created_at=note.created_at
        )
    return amendment
