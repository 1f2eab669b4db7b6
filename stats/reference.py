"""The slow, obviously-correct stats of a day or a range: the benchmark baseline, the oracle.

It does what the challenge's original version did — load every note of the day as model
instances and count in separate Python passes — minus that version's artificial 30 ms sleep.
It is never routed: the API serves ``stats.selectors.care_stats_get`` (days, from the notes)
and ``care_stats_range_get`` (ranges, from the rollups).

To be a useful oracle it decides which notes belong to a day independently of
``local_day_bounds`` and of the rollups' SQL: it fetches a window with
REFERENCE_WINDOW_MARGIN to spare on each side and keeps the notes whose local date
(``created_at`` converted to the tenant's zone by ``zoneinfo``) is in the days asked for.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Category
from stats.selectors import (
    CareDayCounts,
    CareRangeStats,
    CareStats,
    avg_notes_per_patient,
    range_days,
)
from tenants.principal import TenantInfo

# Wider than any DST shift (at most 2 h, historically), so the window surely holds the day.
REFERENCE_WINDOW_MARGIN = timedelta(hours=3)


def _notes_of(
    *, tenant: TenantInfo, date_from: date, date_to: date, facility_ids: tuple[int, ...]
) -> list[CareNote]:
    """Return the tenant's notes in scope whose local date is in date_from..date_to."""
    zone = ZoneInfo(tenant.timezone)
    candidates = CareNote.objects.filter(
        tenant_id=tenant.id,
        created_at__gte=datetime.combine(date_from, time.min, tzinfo=zone)
        - REFERENCE_WINDOW_MARGIN,
        created_at__lt=datetime.combine(date_to, time.min, tzinfo=zone)
        + timedelta(days=1)
        + REFERENCE_WINDOW_MARGIN,
    )
    scope = set(facility_ids)
    return [
        note
        for note in candidates
        if date_from <= note.created_at.astimezone(zone).date() <= date_to
        and note.facility_id in scope
    ]


def care_stats_reference(
    *, tenant: TenantInfo, day: date, facility_ids: tuple[int, ...]
) -> CareStats:
    """Return the same CareStats as ``care_stats_get``, computed naively from model instances."""
    notes = _notes_of(tenant=tenant, date_from=day, date_to=day, facility_ids=facility_ids)
    return care_stats_from_notes(tenant=tenant, day=day, facility_ids=facility_ids, notes=notes)


def care_stats_from_notes(
    *, tenant: TenantInfo, day: date, facility_ids: tuple[int, ...], notes: list[CareNote]
) -> CareStats:
    """Return CareStats counting ``notes`` in separate Python passes (labelled ``day``)."""
    by_category = {category: 0 for category in Category.values}
    for note in notes:
        by_category[note.category] += 1

    by_priority = {str(priority): 0 for priority in range(PRIORITY_MIN, PRIORITY_MAX + 1)}
    for note in notes:
        by_priority[str(note.priority)] += 1

    by_facility = {str(facility_id): 0 for facility_id in facility_ids}
    for note in notes:
        by_facility[str(note.facility_id)] += 1

    patients = set()
    for note in notes:
        patients.add(note.patient_id)

    return CareStats(
        tenant_id=tenant.id,
        date=day,
        timezone=tenant.timezone,
        facility_ids=tuple(facility_ids),
        total_notes=len(notes),
        by_category=by_category,
        by_priority=by_priority,
        by_facility=by_facility,
        patients=len(patients),
        avg_notes_per_patient=avg_notes_per_patient(total_notes=len(notes), patients=len(patients)),
    )


def care_stats_range_reference(
    *, tenant: TenantInfo, date_from: date, date_to: date, facility_ids: tuple[int, ...]
) -> CareRangeStats:
    """Return the same CareRangeStats as ``care_stats_range_get``, from model instances."""
    zone = ZoneInfo(tenant.timezone)
    notes = _notes_of(
        tenant=tenant, date_from=date_from, date_to=date_to, facility_ids=facility_ids
    )
    by_day = []
    for day in range_days(date_from=date_from, date_to=date_to):
        stats = care_stats_from_notes(
            tenant=tenant,
            day=day,
            facility_ids=facility_ids,
            notes=[note for note in notes if note.created_at.astimezone(zone).date() == day],
        )
        by_day.append(
            CareDayCounts(
                date=day,
                total_notes=stats.total_notes,
                by_category=stats.by_category,
                by_priority=stats.by_priority,
            )
        )
    whole = care_stats_from_notes(
        tenant=tenant, day=date_from, facility_ids=facility_ids, notes=notes
    )
    return CareRangeStats(
        tenant_id=tenant.id,
        date_from=date_from,
        date_to=date_to,
        timezone=tenant.timezone,
        facility_ids=tuple(facility_ids),
        total_notes=whole.total_notes,
        by_category=whole.by_category,
        by_priority=whole.by_priority,
        by_facility=whole.by_facility,
        patients=whole.patients,
        avg_notes_per_patient=whole.avg_notes_per_patient,
        by_day=tuple(by_day),
    )
