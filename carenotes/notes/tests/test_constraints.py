"""The database itself refuses inconsistent care data: proven with raw INSERTs."""

import pytest
from django.db import IntegrityError, connection, transaction

from carenotes.notes.tests.factories import PatientFactory
from tenants.tests.factories import FacilityFactory, UserFactory

pytestmark = pytest.mark.django_db

NOTE_INSERT = """
    INSERT INTO carenotes_carenote
        (tenant_id, facility_id, patient_id, author_id, category, priority, body, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, 'x', now())
"""


def _insert_note(*, tenant_id, facility_id, patient_id, author_id, category, priority):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            NOTE_INSERT, [tenant_id, facility_id, patient_id, author_id, category, priority]
        )


def _constraint_of(excinfo) -> str:
    return excinfo.value.__cause__.diag.constraint_name


@pytest.fixture
def patient():
    return PatientFactory()


@pytest.fixture
def author():
    return UserFactory()


def _valid(patient, author, **overrides):
    values = {
        "tenant_id": patient.tenant_id,
        "facility_id": patient.facility_id,
        "patient_id": patient.pk,
        "author_id": author.pk,
        "category": "medication",
        "priority": 3,
    }
    values.update(overrides)
    return values


def test_valid_note_is_accepted(patient, author):
    _insert_note(**_valid(patient, author))


@pytest.mark.parametrize("priority", [0, 6, -1])
def test_priority_outside_1_to_5_is_refused(patient, author, priority):
    with pytest.raises(IntegrityError) as excinfo:
        _insert_note(**_valid(patient, author, priority=priority))
    assert _constraint_of(excinfo) == "carenote_priority_range"


def test_unknown_category_is_refused(patient, author):
    with pytest.raises(IntegrityError) as excinfo:
        _insert_note(**_valid(patient, author, category="gossip"))
    assert _constraint_of(excinfo) == "carenote_category_valid"


def test_note_with_another_tenants_facility_is_refused(patient, author):
    foreign_facility = FacilityFactory()
    with pytest.raises(IntegrityError) as excinfo:
        _insert_note(**_valid(patient, author, facility_id=foreign_facility.pk))
    assert _constraint_of(excinfo) == "carenote_facility_same_tenant_fk"


def test_note_with_another_tenants_patient_is_refused(patient, author):
    foreign_patient = PatientFactory()
    with pytest.raises(IntegrityError) as excinfo:
        _insert_note(**_valid(patient, author, patient_id=foreign_patient.pk))
    assert _constraint_of(excinfo) == "carenote_patient_same_tenant_fk"


def test_patient_with_another_tenants_facility_is_refused(patient):
    foreign_facility = FacilityFactory()
    with (
        pytest.raises(IntegrityError) as excinfo,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO carenotes_patient (tenant_id, facility_id, reference, display_name)"
            " VALUES (%s, %s, 'X1', 'Someone')",
            [patient.tenant_id, foreign_facility.pk],
        )
    assert _constraint_of(excinfo) == "patient_facility_same_tenant_fk"


def test_duplicate_patient_reference_within_tenant_is_refused(patient):
    with pytest.raises(IntegrityError) as excinfo:
        PatientFactory(facility=patient.facility, reference=patient.reference)
    assert _constraint_of(excinfo) == "patient_tenant_ref_uniq"


def test_invalid_membership_role_is_refused(patient, author):
    with (
        pytest.raises(IntegrityError) as excinfo,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO tenants_membership (user_id, tenant_id, role, created_at)"
            " VALUES (%s, %s, 'owner', now())",
            [author.pk, patient.tenant_id],
        )
    assert _constraint_of(excinfo) == "membership_role_valid"
