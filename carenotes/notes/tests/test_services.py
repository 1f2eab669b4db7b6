"""note_create: usable with a Tenant row, and stats go stale only when the note commits."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from carenotes.notes.models import CareNote
from carenotes.notes.services import note_create
from carenotes.notes.tests.factories import PatientFactory
from tenants.tests.factories import FacilityFactory, UserFactory

pytestmark = pytest.mark.django_db


def _create(patient, **overrides):
    fields = {
        "tenant": patient.tenant,
        "author": UserFactory(),
        "facility_id": patient.facility_id,
        "patient_id": patient.pk,
        "category": "observation",
        "priority": 1,
        "body": "Comfortable overnight.",
        "created_at": timezone.now() - timedelta(hours=2),
    }
    fields.update(overrides)
    return note_create(**fields)


def test_note_create_accepts_a_tenant_row():
    patient = PatientFactory()
    note = _create(patient)
    assert CareNote.objects.get().pk == note.pk


def test_note_create_with_a_tenant_row_checks_the_facility():
    patient = PatientFactory()
    with pytest.raises(ValidationError) as excinfo:
        _create(patient, facility_id=FacilityFactory().pk)
    assert excinfo.value.detail == {"facility_id": ["No such facility in this tenant."]}
