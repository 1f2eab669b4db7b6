"""Test data of the dashboard: a care group with notes over recent days, and its staff."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from carenotes.notes.models import CareNote, Category, Patient
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.models import Facility, Role, Tenant
from tenants.services import membership_grant
from tenants.tests.factories import FacilityFactory, TenantFactory, UserFactory

PASSWORD = "correct-horse-battery"  # UserFactory's


@dataclass
class DashboardGroup:
    """One tenant: two homes, residents (one never noted), notes, a carer/manager/admin."""

    tenant: Tenant
    north: Facility
    south: Facility
    noted_today: Patient
    noted_long_ago: Patient
    never_noted: Patient
    south_resident: Patient
    carer: object
    manager: object
    admin: object
    notes: list[CareNote] = field(default_factory=list)


def dashboard_group_create(*, tag: str = "Oakridge", timezone_name: str = "Europe/London"):
    """Return a tenant whose notes fall on today, two days ago and twenty days ago (local).

    Notes are placed hours before now, so they are in the past and inside "last 30 days".
    """
    tenant = TenantFactory(name=f"{tag} Care", slug=tag.lower(), timezone=timezone_name)
    north = FacilityFactory(tenant=tenant, name=f"{tag} North")
    south = FacilityFactory(tenant=tenant, name=f"{tag} South")
    staff = {}
    for role in Role:
        staff[role] = UserFactory(username=f"{tag.lower()}-{role.value}")
        membership_grant(user=staff[role], tenant=tenant, role=role)
    carer = staff[Role.CARER]
    noted_today = PatientFactory(facility=north, reference=f"{tag[:3]}-1", display_name="Ann")
    noted_long_ago = PatientFactory(facility=north, reference=f"{tag[:3]}-2", display_name="Bob")
    never_noted = PatientFactory(facility=north, reference=f"{tag[:3]}-3", display_name="Cy")
    south_resident = PatientFactory(facility=south, reference=f"{tag[:3]}-4", display_name="Di")
    now = timezone.now()
    plan = [
        (noted_today, Category.MEDICATION, 5, now - timedelta(minutes=30)),
        (noted_today, Category.OBSERVATION, 2, now - timedelta(minutes=40)),
        (noted_long_ago, Category.TREATMENT, 4, now - timedelta(days=2)),
        (noted_long_ago, Category.MEDICATION, 1, now - timedelta(days=20)),
        (south_resident, Category.OBSERVATION, 3, now - timedelta(days=3)),
        (south_resident, Category.MEDICATION, 4, now - timedelta(days=45)),
    ]
    notes = [
        CareNoteFactory(
            patient=patient,
            author=carer,
            category=category,
            priority=priority,
            created_at=created_at,
            body=f"{tag} note {index}",
        )
        for index, (patient, category, priority, created_at) in enumerate(plan)
    ]
    return DashboardGroup(
        tenant=tenant,
        north=north,
        south=south,
        noted_today=noted_today,
        noted_long_ago=noted_long_ago,
        never_noted=never_noted,
        south_resident=south_resident,
        carer=carer,
        manager=staff[Role.MANAGER],
        admin=staff[Role.ADMIN],
        notes=notes,
    )
