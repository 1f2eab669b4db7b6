"""Property tests: on random small data sets the optimized stats equal the reference exactly."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carenotes.notes.models import PRIORITY_MAX, PRIORITY_MIN, CareNote, Category, Patient
from stats.reference import care_stats_reference
from stats.selectors import care_stats_get
from tenants.models import Facility, Tenant
from tenants.principal import TenantInfo

pytestmark = pytest.mark.django_db

PROPERTY_EXAMPLES = 40

# Two DST zones, one that switches at midnight (Santiago), a fixed offset and UTC.
ZONES = ["Europe/London", "America/New_York", "America/Santiago", "Asia/Kolkata", "UTC"]
# Days the notes cluster around: ordinary days and the 2025 DST transitions of those zones.
ANCHOR_DAYS = [
    date(2025, 6, 15),
    date(2025, 3, 30),
    date(2025, 10, 26),
    date(2025, 3, 9),
    date(2025, 11, 2),
    date(2025, 4, 6),
    date(2025, 9, 7),
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
    notes = []
    for _ in range(data.draw(st.integers(0, 30), label="notes")):
        patient = data.draw(st.sampled_from(patients))
        anchor = _local_midnight_utc(
            data.draw(st.sampled_from(ANCHOR_DAYS)), zones[patient.tenant_id]
        )
        notes.append(
            CareNote(
                tenant_id=patient.tenant_id,
                facility_id=patient.facility_id,
                patient=patient,
                author=author,
                category=data.draw(st.sampled_from(Category.values)),
                priority=data.draw(st.integers(PRIORITY_MIN, PRIORITY_MAX)),
                body="-",
                created_at=anchor + timedelta(seconds=data.draw(note_offsets)),
            )
        )
    CareNote.objects.bulk_create(notes)
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
