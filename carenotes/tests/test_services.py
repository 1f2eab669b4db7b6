"""note_create: usable with a Tenant row, and stats go stale only when the note commits."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from carenotes.models import CareNote
from carenotes.services import note_create, note_local_day
from carenotes.tests.factories import PatientFactory
from stats.services import care_stats_version_key
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


def _version_key(patient, created_at) -> str:
    day = note_local_day(created_at=created_at, timezone_name=patient.tenant.timezone)
    return care_stats_version_key(tenant_id=patient.tenant_id, day=day)


def test_note_create_accepts_a_tenant_row():
    patient = PatientFactory()
    note = _create(patient)
    assert CareNote.objects.get().pk == note.pk


def test_note_create_with_a_tenant_row_checks_the_facility():
    patient = PatientFactory()
    with pytest.raises(ValidationError) as excinfo:
        _create(patient, facility_id=FacilityFactory().pk)
    assert excinfo.value.detail == {"facility_id": ["No such facility in this tenant."]}


def test_stats_go_stale_only_after_commit(django_capture_on_commit_callbacks):
    patient = PatientFactory()
    created_at = timezone.now() - timedelta(hours=2)
    key = _version_key(patient, created_at)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _create(patient, created_at=created_at)
    assert cache.get(key) is None  # not yet committed: nothing invalidated
    for callback in callbacks:
        callback()
    assert cache.get(key) == 1


def test_a_rolled_back_note_invalidates_nothing(django_capture_on_commit_callbacks):
    patient = PatientFactory()
    created_at = timezone.now() - timedelta(hours=2)
    key = _version_key(patient, created_at)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        _create(patient, created_at=created_at)
        raise RuntimeError("roll back")
    assert callbacks == []
    assert cache.get(key) is None
