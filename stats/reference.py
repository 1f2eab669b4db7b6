"""The slow, obviously-correct daily stats: the benchmark baseline and the tests' oracle.

It does what the challenge's original version did — load every note of the day as model
instances and count in separate Python passes — minus that version's artificial 30 ms sleep.
It is never routed: the API serves ``stats.selectors.care_stats_get``.

To be a useful oracle it decides which notes belong to the day independently of
``local_day_bounds``: it fetches a window with REFERENCE_WINDOW_MARGIN to spare on each side
and keeps the notes whose local date (``created_at`` converted to the tenant's zone) is the day.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Category
from stats.selectors import CareStats, avg_notes_per_patient
from tenants.principal import TenantInfo

# Wider than any DST shift (at most 2 h, historically), so the window surely holds the day.
REFERENCE_WINDOW_MARGIN = timedelta(hours=3)


def care_stats_reference(
    *, tenant: TenantInfo, day: date, facility_ids: tuple[int, ...]
) -> CareStats:
    """Return the same CareStats as ``care_stats_get``, computed naively from model instances."""
    zone = ZoneInfo(tenant.timezone)
    local_midnight = datetime.combine(day, time.min, tzinfo=zone)
    candidates = CareNote.objects.filter(
        tenant_id=tenant.id,
        created_at__gte=local_midnight - REFERENCE_WINDOW_MARGIN,
        created_at__lt=local_midnight + timedelta(days=1) + REFERENCE_WINDOW_MARGIN,
    )
    scope = set(facility_ids)
    notes = [
        note
        for note in candidates
        if note.created_at.astimezone(zone).date() == day and note.facility_id in scope
    ]

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
        avg_notes_per_patient=avg_notes_per_patient(total_notes=len(notes), patients=len(patients)),
    )
