"""Property tests: on random small data sets the optimized stats equal the reference exactly.

Days are counted from the notes, ranges from the rollups the triggers maintain; both are held
to the reference, which assigns notes to local days with zoneinfo, after random writes of
every kind (inserts, moves across days, facilities and residents, deletes, bulk updates,
time-zone changes).
"""

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Category, Patient
from stats.ranges import STATS_RANGE_MAX_DAYS
from stats.reference import care_stats_range_reference, care_stats_reference
from stats.selectors import care_stats_get, care_stats_range_get
from tenants.models import Facility, Tenant
from tenants.principal import TenantInfo

pytestmark = pytest.mark.django_db

PROPERTY_EXAMPLES = 40

# DST zones of both hemispheres, one that switches at midnight (Santiago), one that shifts
# by half an hour (Lord Howe), a fixed offset and UTC.
ZONES = [
    "Europe/London",
    "America/New_York",
    "America/Santiago",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
]
# Days the notes cluster around: ordinary days and the 2025 DST transitions of those zones.
ANCHOR_DAYS = [
    date(2025, 6, 15),
    date(2025, 3, 30),
    date(2025, 10, 26),
    date(2025, 3, 9),
    date(2025, 11, 2),
    date(2025, 4, 6),
    date(2025, 9, 7),
    date(2025, 10, 5),
]
# Seconds from a local midnight: on it or a second either side, within two hours of it, or
# anywhere in three days.
note_offsets = st.one_of(
    st.sampled_from([-1, 0, 1]),
    st.integers(min_value=-120 * 60, max_value=120 * 60),
    st.integers(min_value=-24 * 3600, max_value=48 * 3600),
)


class _Rollback(Exception):
    """Raised to undo one example's rows inside the test's transaction."""


def _local_midnight_utc(day: date, timezone_name: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(timezone_name)).astimezone(UTC)


def _draw_note(data, patients, zones, author) -> CareNote:
    patient = data.draw(st.sampled_from(patients))
    anchor = _local_midnight_utc(data.draw(st.sampled_from(ANCHOR_DAYS)), zones[patient.tenant_id])
    return CareNote(
        tenant_id=patient.tenant_id,
        facility_id=patient.facility_id,
        patient=patient,
        author=author,
        category=data.draw(st.sampled_from(Category.values)),
        priority=data.draw(st.integers(PRIORITY_MIN, PRIORITY_MAX)),
        body="-",
        created_at=anchor + timedelta(seconds=data.draw(note_offsets)),
    )


def _build(data, author) -> list[TenantInfo]:
    """Create random tenants, facilities, patients and notes; return the tenants' facts."""
    tenants = Tenant.objects.bulk_create(
        Tenant(name=f"T{index}", slug=f"prop-{index}", timezone=data.draw(st.sampled_from(ZONES)))
        for index in range(data.draw(st.integers(1, 3), label="tenants"))
    )
    infos, patients = [], []
    for tenant in tenants:
        facilities = Facility.objects.bulk_create(
            Facility(tenant=tenant, name=f"F{index}")
            for index in range(data.draw(st.integers(1, 3), label="facilities"))
        )
        patients += Patient.objects.bulk_create(
            Patient(
                tenant=tenant,
                facility=data.draw(st.sampled_from(facilities)),
                reference=f"P{index}",
                display_name="Resident",
            )
            for index in range(data.draw(st.integers(1, 4), label="patients"))
        )
        facility_ids = tuple(sorted(facility.pk for facility in facilities))
        infos.append(TenantInfo(tenant.pk, tenant.name, tenant.timezone, facility_ids))
    zones = {tenant.pk: tenant.timezone for tenant in tenants}
    count = data.draw(st.integers(0, 30), label="notes")
    CareNote.objects.bulk_create(_draw_note(data, patients, zones, author) for _ in range(count))
    return infos


@settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_optimized_stats_equal_the_reference(data):
    try:
        with transaction.atomic():
            author = get_user_model().objects.create(username="prop-author")
            infos = _build(data, author)
            for _ in range(data.draw(st.integers(1, 3), label="requests")):
                tenant = data.draw(st.sampled_from(infos))
                anchor = data.draw(st.sampled_from(ANCHOR_DAYS))
                day = anchor + timedelta(days=data.draw(st.integers(-1, 1)))
                drawn = data.draw(
                    st.one_of(
                        st.none(),  # every facility, the default scope
                        st.just(tenant.facility_ids),
                        st.sets(st.sampled_from(tenant.facility_ids), min_size=1),
                    ),
                    label="facility scope",
                )
                scope = None if drawn is None else tuple(sorted(drawn))
                expected = care_stats_reference(
                    tenant=tenant, day=day, facility_ids=scope or tenant.facility_ids
                )
                actual = care_stats_get(tenant=tenant, day=day, facility_ids=scope)
                assert actual == expected
            raise _Rollback
    except _Rollback:
        pass


def _write(data, infos: list[TenantInfo], author) -> list[TenantInfo]:
    """Apply one random write of any kind; return the tenants' facts after it."""
    patients = list(Patient.objects.filter(tenant_id__in=[i.id for i in infos]))
    zones = {info.id: info.timezone for info in infos}
    notes = list(CareNote.objects.filter(tenant_id__in=zones).order_by("id"))
    kinds = ["add", "add_many", "rezone"] + (["move", "replace", "delete", "shift_many"] * 2) * (
        len(notes) > 0
    )
    kind = data.draw(st.sampled_from(kinds), label="write")
    if kind == "add":
        _draw_note(data, patients, zones, author).save()
    elif kind == "add_many":
        count = data.draw(st.integers(2, 10))
        CareNote.objects.bulk_create(
            _draw_note(data, patients, zones, author) for _ in range(count)
        )
    elif kind == "move":  # another time (maybe another day), resident and facility
        note = data.draw(st.sampled_from(notes))
        resident = data.draw(
            st.sampled_from([p for p in patients if p.tenant_id == note.tenant_id])
        )
        note.created_at += timedelta(seconds=data.draw(note_offsets))
        note.patient, note.facility_id = resident, resident.facility_id
        note.save()
    elif kind == "replace":  # category and priority only
        note = data.draw(st.sampled_from(notes))
        note.category = data.draw(st.sampled_from(Category.values))
        note.priority = data.draw(st.integers(PRIORITY_MIN, PRIORITY_MAX))
        note.save()
    elif kind == "delete":
        ids = data.draw(st.sets(st.sampled_from([note.pk for note in notes]), min_size=1))
        CareNote.objects.filter(pk__in=ids).delete()
    elif kind == "shift_many":  # one UPDATE statement over many rows
        ids = data.draw(st.sets(st.sampled_from([note.pk for note in notes]), min_size=1))
        shift = timedelta(seconds=data.draw(note_offsets))
        CareNote.objects.filter(pk__in=ids).update(created_at=F("created_at") + shift)
    else:
        info = data.draw(st.sampled_from(infos))
        zone = data.draw(st.sampled_from(ZONES))
        tenant = Tenant.objects.get(pk=info.id)
        tenant.timezone = zone
        tenant.save()
        infos = [replace(i, timezone=zone) if i.id == info.id else i for i in infos]
    return infos


def _draw_range(data) -> tuple[date, date]:
    """Return a range with one end on or beside an anchor day, where the notes cluster."""
    edge = data.draw(st.sampled_from(ANCHOR_DAYS)) + timedelta(days=data.draw(st.integers(-1, 1)))
    days = data.draw(
        st.one_of(st.integers(1, 4), st.integers(5, STATS_RANGE_MAX_DAYS)), label="days"
    )
    if data.draw(st.booleans(), label="anchored at the start"):
        return edge, edge + timedelta(days=days - 1)
    return edge - timedelta(days=days - 1), edge


def _draw_scope(data, tenant: TenantInfo) -> tuple[int, ...] | None:
    drawn = data.draw(
        st.one_of(
            st.none(),  # every facility, the default scope
            st.just(tenant.facility_ids),
            st.sets(st.sampled_from(tenant.facility_ids), min_size=1),
        ),
        label="facility scope",
    )
    return None if drawn is None else tuple(sorted(drawn))


@settings(
    max_examples=PROPERTY_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_range_stats_from_the_rollups_equal_the_reference_after_any_writes(data):
    try:
        with transaction.atomic():
            author = get_user_model().objects.create(username="prop-author")
            infos = _build(data, author)
            for _ in range(data.draw(st.integers(1, 4), label="rounds")):
                for _ in range(data.draw(st.integers(0, 3), label="writes")):
                    infos = _write(data, infos, author)
                tenant = data.draw(st.sampled_from(infos))
                date_from, date_to = _draw_range(data)
                scope = _draw_scope(data, tenant)
                expected = care_stats_range_reference(
                    tenant=tenant,
                    date_from=date_from,
                    date_to=date_to,
                    facility_ids=scope or tenant.facility_ids,
                )
                actual = care_stats_range_get(
                    tenant=tenant, date_from=date_from, date_to=date_to, facility_ids=scope
                )
                assert actual == expected
                day = data.draw(st.sampled_from([entry.date for entry in expected.by_day]))
                assert care_stats_get(tenant=tenant, day=day, facility_ids=scope) == (
                    care_stats_reference(
                        tenant=tenant, day=day, facility_ids=scope or tenant.facility_ids
                    )
                )
            raise _Rollback
    except _Rollback:
        pass
