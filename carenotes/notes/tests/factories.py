"""factory-boy factories for patients and care notes; related rows share one tenant."""

from datetime import UTC, datetime

import factory

from carenotes.notes.models import CareNote, Category, Patient
from tenants.tests.factories import FacilityFactory, UserFactory


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    facility = factory.SubFactory(FacilityFactory)
    tenant = factory.SelfAttribute("facility.tenant")
    reference = factory.Sequence(lambda n: f"P{n:05d}")
    display_name = factory.Faker("name")


class CareNoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CareNote

    patient = factory.SubFactory(PatientFactory)
    facility = factory.SelfAttribute("patient.facility")
    tenant = factory.SelfAttribute("patient.tenant")
    author = factory.SubFactory(UserFactory)
    category = Category.OBSERVATION
    priority = 3
    body = "Resident settled, ate well, no concerns."
    created_at = factory.LazyFunction(lambda: datetime(2025, 3, 10, 12, 0, tzinfo=UTC))


def note_payload(patient: Patient, **overrides) -> dict:
    """Return a valid POST /api/notes/ body for ``patient`` (an observation, priority 3)."""
    return {
        "tenant_id": patient.tenant_id,
        "facility_id": patient.facility_id,
        "patient_id": patient.pk,
        "category": Category.OBSERVATION.value,
        "priority": 3,
        "body": "Settled.",
        **overrides,
    }


# The care-note change form's read-only inlines (amendments, history) post their management
# forms, as a browser does; an empty formset changes nothing.
NOTE_ADMIN_INLINES = {
    f"{prefix}-{field}": 0
    for prefix in ("amendments", "events")
    for field in ("TOTAL_FORMS", "INITIAL_FORMS")
}
