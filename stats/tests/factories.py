"""Test data for the analytics: a small care group, its expected stats, tenant facts."""

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection
from django_redis import get_redis_connection

from carenotes.notes.models import Category, Patient
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.models import Facility, Tenant
from tenants.principal import TenantInfo
from tenants.tests.factories import FacilityFactory, TenantFactory

CARE_STATS_URL = "/api/care-stats/"
DAY = date(2025, 3, 10)  # an ordinary day: London is on GMT (UTC+0)
NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@dataclass
class CareGroup:
    tenant: Tenant
    north: Facility
    south: Facility
    patients: list[Patient]


def care_group_create(*, with_notes: bool = True) -> CareGroup:
    """Create a London tenant with two facilities, three patients and (optionally) four notes.

    The notes, all at NOON on DAY: two medication notes (priorities 1 and 5) and a treatment
    note (5) in north, an observation note (2) in south; three distinct patients.
    """
    tenant = TenantFactory(timezone="Europe/London")
    north, south = FacilityFactory(tenant=tenant), FacilityFactory(tenant=tenant)
    ann, bob = PatientFactory(facility=north), PatientFactory(facility=north)
    cat = PatientFactory(facility=south)
    if with_notes:
        CareNoteFactory(patient=ann, category=Category.MEDICATION, priority=1, created_at=NOON)
        CareNoteFactory(patient=ann, category=Category.MEDICATION, priority=5, created_at=NOON)
        CareNoteFactory(patient=bob, category=Category.TREATMENT, priority=5, created_at=NOON)
        CareNoteFactory(patient=cat, category=Category.OBSERVATION, priority=2, created_at=NOON)
    return CareGroup(tenant=tenant, north=north, south=south, patients=[ann, bob, cat])


def expected_body(group: CareGroup) -> dict:
    """Return the documented 200 body for a care group created with notes, on DAY."""
    return {
        "tenant_id": group.tenant.pk,
        "date": DAY.isoformat(),
        "timezone": "Europe/London",
        "facility_ids": [group.north.pk, group.south.pk],
        "total_notes": 4,
        "by_category": {"medication": 2, "observation": 1, "treatment": 1},
        "by_priority": {"1": 1, "2": 1, "3": 0, "4": 0, "5": 2},
        "by_facility": {str(group.north.pk): 3, str(group.south.pk): 1},
        "patients": 3,
        "avg_notes_per_patient": 1.33,
    }


RANGE_FROM, RANGE_TO = date(2025, 3, 9), date(2025, 3, 11)  # DAY in the middle


def _counts(medication=0, observation=0, treatment=0, p1=0, p2=0, p3=0, p4=0, p5=0) -> dict:
    return {
        "by_category": {
            "medication": medication,
            "observation": observation,
            "treatment": treatment,
        },
        "by_priority": {"1": p1, "2": p2, "3": p3, "4": p4, "5": p5},
    }


def expected_range_body(group: CareGroup) -> dict:
    """Return the documented 200 body for the care group over RANGE_FROM..RANGE_TO."""
    day = expected_body(group)
    return {
        "tenant_id": group.tenant.pk,
        "date_from": RANGE_FROM.isoformat(),
        "date_to": RANGE_TO.isoformat(),
        "timezone": "Europe/London",
        "facility_ids": day["facility_ids"],
        "total_notes": 4,
        "by_category": day["by_category"],
        "by_priority": day["by_priority"],
        "by_facility": day["by_facility"],
        "patients": 3,
        "avg_notes_per_patient": 1.33,
        "by_day": [
            {"date": "2025-03-09", "total_notes": 0, **_counts()},
            {"date": "2025-03-10", "total_notes": 4, **_counts(2, 1, 1, 1, 1, 0, 0, 2)},
            {"date": "2025-03-11", "total_notes": 0, **_counts()},
        ],
    }


def range_query(group: CareGroup, **params) -> dict:
    """Return query parameters asking for the group's stats over RANGE_FROM..RANGE_TO."""
    return {
        "tenant_id": group.tenant.pk,
        "date_from": RANGE_FROM.isoformat(),
        "date_to": RANGE_TO.isoformat(),
        **params,
    }


def stats_query(group: CareGroup, **params) -> dict:
    """Return query parameters asking for the group's stats on DAY, overridable."""
    return {"tenant_id": group.tenant.pk, "date": DAY.isoformat(), **params}


def tenant_info_of(tenant: Tenant) -> TenantInfo:
    """Return the TenantInfo the API would build for ``tenant`` (read fresh, not cached)."""
    facility_ids = tuple(
        Facility.objects.filter(tenant=tenant).order_by("id").values_list("id", flat=True)
    )
    return TenantInfo(
        id=tenant.pk, name=tenant.name, timezone=tenant.timezone, facility_ids=facility_ids
    )


@dataclass(frozen=True)
class RollupRows:
    """One tenant's rollup rows: notes per (day, facility, category, priority) and per
    (day, facility, patient)."""

    counts: dict[tuple[date, int, str, int], int]
    residents: dict[tuple[date, int, int], int]


def rollup_rows(tenant_id: int) -> RollupRows:
    """Return what the day rollups hold for ``tenant_id``, read straight from the tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT day, facility_id, category, priority, notes FROM stats_day_counts "
            "WHERE tenant_id = %s",
            [tenant_id],
        )
        counts = {tuple(row[:4]): row[4] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT day, facility_id, patient_id, notes FROM stats_day_residents "
            "WHERE tenant_id = %s",
            [tenant_id],
        )
        residents = {tuple(row[:3]): row[3] for row in cursor.fetchall()}
    return RollupRows(counts=counts, residents=residents)


def redis_commands_recorded(monkeypatch) -> list[str]:
    """Return a list that records the name of every Redis command sent from now on."""
    commands = []
    redis_class = type(get_redis_connection("default"))
    real_execute = redis_class.execute_command

    def counting(self, *args, **kwargs):
        commands.append(args[0])
        return real_execute(self, *args, **kwargs)

    monkeypatch.setattr(redis_class, "execute_command", counting)
    return commands
