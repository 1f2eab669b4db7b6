"""Every write path of care notes makes exactly the stats of the days it touched stale.

The notes domain announces changed days (carenotes.notes.signals.care_notes_changed, after
commit); stats/signals.py turns them into version bumps. These tests drive the real write
paths (service, API, admin, seed_notes) and read the stats counters.
"""

from datetime import date, timedelta
from http import HTTPStatus

import pytest
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.utils import timezone

from carenotes.notes import seeding
from carenotes.notes.services import note_create, note_local_day
from carenotes.notes.tests.factories import (
    NOTE_ADMIN_INLINES,
    CareNoteFactory,
    PatientFactory,
    note_payload,
)
from stats.services import care_stats_generation_key, care_stats_version_key
from tenants.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/api/notes/"
CHANGELIST = "/admin/carenotes/carenote/"
SEED_SMALL = {
    "seed": 11,
    "notes": 2_000,
    "tenants": 3,
    "facilities_per_tenant": 2,
    "patients_per_facility": 4,
    "staff_per_tenant": 5,
    "days": 7,
    "end_date": date(2025, 1, 31),
}


@pytest.fixture
def patient():
    return PatientFactory()


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


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _version_key(patient, created_at) -> str:
    day = note_local_day(created_at=created_at, timezone_name=patient.tenant.timezone)
    return care_stats_version_key(tenant_id=patient.tenant_id, day=day)


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


def test_editing_a_note_in_the_admin_makes_both_days_stale(
    patient, django_capture_on_commit_callbacks
):
    note = CareNoteFactory(patient=patient)  # 2025-03-10, Europe/London
    old_day, new_day = note.created_at.date(), note.created_at.date() + timedelta(days=2)
    client = _client_for(UserFactory(is_superuser=True, is_staff=True))
    new_created_at = note.created_at + timedelta(days=2)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"{CHANGELIST}{note.pk}/change/",
            {
                "tenant": note.tenant_id,
                "facility": note.facility_id,
                "patient": note.patient_id,
                "author": note.author_id,
                "category": note.category,
                "priority": note.priority,
                "body": "Corrected entry.",
                "created_at_0": new_created_at.date().isoformat(),
                "created_at_1": new_created_at.time().isoformat(),
                "repair_reason": "Entered two days early.",
                **NOTE_ADMIN_INLINES,
            },
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    versions = {
        day: cache.get(care_stats_version_key(tenant_id=note.tenant_id, day=day))
        for day in (old_day, old_day + timedelta(days=1), new_day)
    }
    assert versions == {old_day: 1, old_day + timedelta(days=1): None, new_day: 1}


@pytest.mark.django_db(transaction=True)
def test_201_means_committed_and_that_local_day_is_invalidated(token_client):
    # Auckland is 13 hours ahead in (southern) summer, 12 in winter: 20:00 UTC is the
    # next local day either way, so the UTC day and the local day differ.
    patient = PatientFactory(facility__tenant__timezone="Pacific/Auckland")
    user = MembershipFactory(tenant=patient.tenant).user
    created_at = (timezone.now() - timedelta(days=2)).replace(hour=20, minute=0, second=0)
    utc_day = created_at.date()
    local_day = utc_day + timedelta(days=1)
    response = token_client(user).post(
        LIST_URL, note_payload(patient, created_at=created_at.isoformat()), format="json"
    )
    assert response.status_code == HTTPStatus.CREATED
    version = {
        day: cache.get(care_stats_version_key(tenant_id=patient.tenant_id, day=day))
        for day in (utc_day, local_day, local_day + timedelta(days=1))
    }
    assert version == {utc_day: None, local_day: 1, local_day + timedelta(days=1): None}


def test_stats_cache_of_every_seeded_tenant_is_invalidated_after_commit(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = seeding.seed_notes_run(config=seeding.seed_config_build(**SEED_SMALL))
    keys = [care_stats_generation_key(tenant_id=tenant_id) for tenant_id in result.tenant_ids]
    before = [cache.get(key) or 0 for key in keys]
    for callback in callbacks:
        callback()
    after = [cache.get(key) or 0 for key in keys]
    assert all(later > earlier for earlier, later in zip(before, after, strict=True))
