"""Writes for the care-note domain: recording notes and announcing which days changed."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from carenotes.core.days import local_date
from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Category, Patient
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


def _validate_fields(*, category: str, priority: int, body: str, created_at: datetime) -> None:
    errors: dict[str, list[str]] = {}
    if category not in Category.values:
        errors["category"] = [f"Must be one of {', '.join(Category.values)}."]
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        errors["priority"] = [f"Must be between {PRIORITY_MIN} and {PRIORITY_MAX}."]
    if not body.strip():
        errors["body"] = ["Must not be empty."]
    elif len(body) > NOTE_BODY_MAX_LENGTH:
        errors["body"] = [f"Must be at most {NOTE_BODY_MAX_LENGTH} characters."]
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
    _validate_fields(category=category, priority=priority, body=body, created_at=created_at)
    _validate_placement(
        tenant_id=tenant_id,
        facility_ids=facility_ids,
        facility_id=facility_id,
        patient_id=patient_id,
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
