"""Reads for the care-note domain: notes and residents (patients), as keyset-paginated lists
and single rows, and the residents who have gone without a note."""

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from rest_framework.exceptions import NotFound, ValidationError

from carenotes.core.colocation import colocated
from carenotes.core.params import BIGINT_MAX
from carenotes.notes.models import CareNote, CareNoteAmendment, Patient
from tenants.principal import Principal, TenantInfo

NOTE_PAGE_SIZE_DEFAULT = 50
NOTE_PAGE_SIZE_MAX = 200
# Columns the API shows; the joins fetch the author's name and patient's reference at once.
NOTE_OUTPUT_RELATED = ("author", "patient")
PATIENT_PAGE_SIZE_DEFAULT = 50
PATIENT_PAGE_SIZE_MAX = 200
# Patient.reference's max_length: a longer cursor or filter value can name no resident.
PATIENT_REFERENCE_MAX_LENGTH = Patient._meta.get_field("reference").max_length


def _b64_encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _b64_decode(value: str) -> str:
    """Return the text of a ``_b64_encode`` value; raise ValueError on anything else."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc


@dataclass(frozen=True)
class NoteFilters:
    """Optional narrowing of a tenant's notes; None means "any"."""

    facility_id: int | None = None
    patient_id: int | None = None
    category: str | None = None
    priority: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    author_id: int | None = None


@dataclass(frozen=True)
class NoteCursor:
    """Position after the last note of a page: its (created_at, id), the list's sort key."""

    created_at: datetime
    id: int

    def encode(self) -> str:
        return _b64_encode(f"{self.created_at.isoformat()}|{self.id}")

    @classmethod
    def decode(cls, value: str) -> "NoteCursor":
        """Parse a cursor made by ``encode``; raise ValueError on anything else."""
        try:
            created_at_text, id_text = _b64_decode(value).split("|")
            created_at, note_id = datetime.fromisoformat(created_at_text), int(id_text)
        except ValueError as exc:
            raise ValueError("invalid cursor") from exc
        if created_at.tzinfo is None or not 0 < note_id <= BIGINT_MAX:
            raise ValueError("invalid cursor")
        return cls(created_at=created_at, id=note_id)


def notes_with_amendment_count(
    queryset: QuerySet[CareNote], *, tenant_ids: Iterable[int] | None
) -> QuerySet[CareNote]:
    """Return ``queryset`` with each note's ``amendment_count`` (the API shows it): one probe
    of carenoteamendment_note_idx per note, in the same statement.

    ``tenant_ids``, the tenants the notes can be of (None: any), are named in the subquery
    too: Citus routes a correlated subquery to one worker only when it names its tenant.
    """
    counts = CareNoteAmendment.objects.filter(
        tenant_id=OuterRef("tenant_id"), note_id=OuterRef("pk")
    )
    if tenant_ids is not None:
        counts = counts.filter(tenant_id__in=list(tenant_ids))
    counts = counts.order_by().values("note_id").annotate(count=Count("*")).values("count")
    return queryset.annotate(
        amendment_count=Coalesce(Subquery(counts, output_field=IntegerField()), Value(0))
    )


def note_list(*, tenant: TenantInfo, filters: NoteFilters) -> QuerySet[CareNote]:
    """Return the tenant's notes matching ``filters``, newest first (ties by id).

    A facility or patient of another tenant is a ValidationError naming the filter, not
    an empty list: the caller asked about something that is not theirs.
    """
    if filters.facility_id is not None and filters.facility_id not in tenant.facility_ids:
        raise ValidationError({"facility_id": ["No such facility in this tenant."]})
    if filters.patient_id is not None and not patient_exists(
        tenant_id=tenant.id, patient_id=filters.patient_id
    ):
        raise ValidationError({"patient_id": ["No such patient in this tenant."]})
    conditions = {
        "facility_id": filters.facility_id,
        "patient_id": filters.patient_id,
        "category": filters.category,
        "priority": filters.priority,
        "author_id": filters.author_id,
        "created_at__gte": filters.created_after,
        "created_at__lt": filters.created_before,
    }
    return notes_with_amendment_count(
        colocated(CareNote.objects.filter(tenant_id=tenant.id), "patient")
        .filter(**{key: value for key, value in conditions.items() if value is not None})
        .select_related(*NOTE_OUTPUT_RELATED)
        .order_by("-created_at", "-id"),
        tenant_ids=[tenant.id],
    )


def note_page(
    *, queryset: QuerySet[CareNote], cursor: NoteCursor | None, page_size: int
) -> tuple[list[CareNote], NoteCursor | None]:
    """Return one page of a ``note_list`` queryset and the cursor of the next page (or None).

    Keyset pagination: the page starts strictly after the cursor's (created_at, id), so
    notes inserted meanwhile never shift or repeat rows, and deep pages cost what the
    first page costs.
    """
    if cursor is not None:
        # The redundant created_at <= bound lets the index range scan start at the cursor.
        queryset = queryset.filter(created_at__lte=cursor.created_at).filter(
            Q(created_at__lt=cursor.created_at) | Q(id__lt=cursor.id)
        )
    rows = list(queryset[: page_size + 1])
    if len(rows) <= page_size:
        return rows, None
    last = rows[page_size - 1]
    return rows[:page_size], NoteCursor(created_at=last.created_at, id=last.pk)


def note_get(*, principal: Principal, note_id: int) -> CareNote:
    """Return a note of one of the caller's tenants; 404 for any other id, existing or not."""
    tenant_ids = None if principal.is_superuser else list(principal.roles)
    queryset = notes_with_amendment_count(
        colocated(CareNote.objects.select_related(*NOTE_OUTPUT_RELATED), "patient"),
        tenant_ids=tenant_ids,
    )
    if tenant_ids is not None:
        queryset = queryset.filter(tenant_id__in=tenant_ids)
    note = queryset.filter(pk=note_id).first()
    if note is None:
        raise NotFound()
    return note


def note_amendment_list(*, note: CareNote) -> list[CareNoteAmendment]:
    """Return the note's amendments, oldest first, with their authors (one query)."""
    return list(
        CareNoteAmendment.objects.filter(tenant_id=note.tenant_id, note_id=note.pk)
        .select_related("author")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class PatientFilters:
    """Optional narrowing of a tenant's residents; None means "any"."""

    facility_id: int | None = None
    reference: str | None = None


@dataclass(frozen=True)
class PatientCursor:
    """Position after the last resident of a page: its reference (unique in the tenant)."""

    reference: str

    def encode(self) -> str:
        return _b64_encode(self.reference)

    @classmethod
    def decode(cls, value: str) -> "PatientCursor":
        """Parse a cursor made by ``encode``; raise ValueError on anything else."""
        reference = _b64_decode(value)
        # NUL cannot reach PostgreSQL text; longer references do not exist.
        if not reference or "\x00" in reference or len(reference) > PATIENT_REFERENCE_MAX_LENGTH:
            raise ValueError("invalid cursor")
        return cls(reference=reference)


def patient_list(*, tenant: TenantInfo, filters: PatientFilters) -> QuerySet[Patient]:
    """Return the tenant's residents matching ``filters``, ordered by reference.

    A facility of another tenant is a ValidationError naming the filter, as in ``note_list``.
    """
    if filters.facility_id is not None and filters.facility_id not in tenant.facility_ids:
        raise ValidationError({"facility_id": ["No such facility in this tenant."]})
    conditions = {"facility_id": filters.facility_id, "reference": filters.reference}
    return (
        Patient.objects.filter(tenant_id=tenant.id)
        .filter(**{key: value for key, value in conditions.items() if value is not None})
        .order_by("reference")
    )


def patient_page(
    *, queryset: QuerySet[Patient], cursor: PatientCursor | None, page_size: int
) -> tuple[list[Patient], PatientCursor | None]:
    """Return one page of a ``patient_list`` queryset and the cursor of the next page (or None).

    Keyset pagination on the reference (served by patient_tenant_ref_uniq): residents
    added meanwhile never shift or repeat rows.
    """
    if cursor is not None:
        queryset = queryset.filter(reference__gt=cursor.reference)
    rows = list(queryset[: page_size + 1])
    if len(rows) <= page_size:
        return rows, None
    return rows[:page_size], PatientCursor(reference=rows[page_size - 1].reference)


def patient_get(*, principal: Principal, patient_id: int) -> Patient:
    """Return a resident of one of the caller's tenants; 404 for any other id, existing or not."""
    queryset = Patient.objects.filter(pk=patient_id)
    if not principal.is_superuser:
        queryset = queryset.filter(tenant_id__in=list(principal.roles))
    patient = queryset.first()
    if patient is None:
        raise NotFound()
    return patient


def patient_exists(*, tenant_id: int, patient_id: int) -> bool:
    """Return True when ``patient_id`` is a patient of the tenant."""
    return Patient.objects.filter(tenant_id=tenant_id, pk=patient_id).exists()


# --- residents needing attention ---------------------------------------------------------------

ATTENTION_HOURS_DEFAULT = 24
ATTENTION_HOURS_MIN = 1
ATTENTION_HOURS_MAX = 168  # a week
ATTENTION_PAGE_SIZE_DEFAULT = 50
ATTENTION_PAGE_SIZE_MAX = 200
_NEVER = "never"

# One probe of carenote_patient_recent_idx (tenant_id, patient_id, created_at DESC) per
# resident of the scope: the newest note's time, an index-only read whatever the number of
# notes (carenotes/notes/tests/test_attention.py holds the plan to it). The residents are read
# through patient_tenant_facility_idx; ordering and the keyset work on at most their number.
_ATTENTION_SQL = (
    "SELECT p.id, p.reference, p.display_name, p.facility_id, f.name, last_note.created_at "
    f"FROM {Patient._meta.db_table} AS p "
    "JOIN tenants_facility AS f ON f.tenant_id = p.tenant_id AND f.id = p.facility_id "
    "LEFT JOIN LATERAL ("
    f"SELECT n.created_at FROM {CareNote._meta.db_table} AS n "
    "WHERE n.tenant_id = %(tenant_id)s::bigint AND n.patient_id = p.id "
    "ORDER BY n.created_at DESC LIMIT 1"
    ") AS last_note ON TRUE "
    "WHERE p.tenant_id = %(tenant_id)s::bigint{facilities} "
    "AND (last_note.created_at IS NULL OR last_note.created_at < %(cutoff)s){after} "
    "ORDER BY last_note.created_at ASC NULLS FIRST, p.id ASC "
    "LIMIT %(limit)s"
)
_ATTENTION_IN_FACILITIES = " AND p.facility_id = ANY(%(facility_ids)s::bigint[])"
# After a resident with no note: the other never-noted ones of higher id, then every noted one.
_ATTENTION_AFTER_NEVER = " AND (last_note.created_at IS NOT NULL OR p.id > %(after_id)s::bigint)"
_ATTENTION_AFTER_NOTED = " AND (last_note.created_at, p.id) > (%(after_at)s, %(after_id)s::bigint)"


def attention_cutoff(*, now: datetime, hours: int) -> datetime:
    """Return the instant since which a resident listed as needing attention has no note."""
    return now - timedelta(hours=hours)


@dataclass(frozen=True)
class ResidentAttention:
    """A resident with no care note since the cutoff, and when their last note was (or None)."""

    patient_id: int
    reference: str
    display_name: str
    facility_id: int
    facility_name: str
    last_note_at: datetime | None


@dataclass(frozen=True)
class AttentionCursor:
    """Position after the last resident of a page: (last note time or never, patient id)."""

    last_note_at: datetime | None
    patient_id: int

    def encode(self) -> str:
        when = self.last_note_at.isoformat() if self.last_note_at else _NEVER
        raw = f"{when}|{self.patient_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "AttentionCursor":
        """Parse a cursor made by ``encode``; raise ValueError on anything else."""
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            when_text, id_text = raw.split("|")
            when = None if when_text == _NEVER else datetime.fromisoformat(when_text)
            patient_id = int(id_text)
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError("invalid cursor") from exc
        if (when is not None and when.tzinfo is None) or not 0 < patient_id <= BIGINT_MAX:
            raise ValueError("invalid cursor")
        return cls(last_note_at=when, patient_id=patient_id)


def patient_attention_list(
    *,
    tenant: TenantInfo,
    facility_ids: tuple[int, ...] | None,
    hours: int,
    now: datetime,
    cursor: AttentionCursor | None = None,
    page_size: int = ATTENTION_PAGE_SIZE_DEFAULT,
) -> tuple[list[ResidentAttention], AttentionCursor | None]:
    """Return one page of the residents with no note in the ``hours`` before ``now``.

    Residents who never had a note come first, then the others by their last note, oldest
    first (ties by id); the second value is the cursor of the next page, or None.
    ``facility_ids``: None for every facility, else a validated subset of the tenant's.
    """
    params = {
        "tenant_id": tenant.id,
        "cutoff": attention_cutoff(now=now, hours=hours),
        "limit": page_size + 1,
    }
    facilities = ""
    if facility_ids is not None:
        facilities = _ATTENTION_IN_FACILITIES
        params["facility_ids"] = list(facility_ids)
    after = ""
    if cursor is not None:
        params["after_id"] = cursor.patient_id
        if cursor.last_note_at is None:
            after = _ATTENTION_AFTER_NEVER
        else:
            after = _ATTENTION_AFTER_NOTED
            params["after_at"] = cursor.last_note_at
    with connection.cursor() as db_cursor:
        db_cursor.execute(_ATTENTION_SQL.format(facilities=facilities, after=after), params)
        rows = [ResidentAttention(*row) for row in db_cursor.fetchall()]
    if len(rows) <= page_size:
        return rows, None
    last = rows[page_size - 1]
    return rows[:page_size], AttentionCursor(
        last_note_at=last.last_note_at, patient_id=last.patient_id
    )
