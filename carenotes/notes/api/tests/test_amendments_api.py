"""POST /api/notes/{id}/amendments/: a correction that keeps the original, shown with the note."""

from datetime import UTC, timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone

from carenotes.notes.api.amendments import NoteAmendmentCreateView
from carenotes.notes.api.views import SCOPE_NOTES_WRITE
from carenotes.notes.models import CareNote, CareNoteAmendment
from carenotes.notes.services import note_amend
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

REASON = "Recorded as an observation; it was a medication round."


def amend_url(note_id) -> str:
    return f"/api/notes/{note_id}/amendments/"


def _iso(instant) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def note():
    # Older than the backdating window: amending is not recording, the window does not apply.
    return CareNoteFactory(created_at=timezone.now() - timedelta(days=30), priority=3)


@pytest.fixture
def carer(note):
    return MembershipFactory(tenant=note.tenant, role="carer").user


@pytest.fixture
def client(token_client, carer):
    return token_client(carer)


def _note_json(note, **current) -> dict:
    return {
        "id": note.pk,
        "tenant_id": note.tenant_id,
        "facility_id": note.facility_id,
        "patient_id": note.patient_id,
        "patient_reference": note.patient.reference,
        "author_id": note.author_id,
        "author_username": note.author.username,
        "category": note.category,
        "priority": note.priority,
        "body": note.body,
        "created_at": _iso(note.created_at),
        "amendment_count": 0,
        **current,
    }


def test_a_member_amends_a_note_and_gets_it_back_with_the_original_kept(client, note, carer):
    response = client.post(
        amend_url(note.pk), {"reason": REASON, "category": "medication"}, format="json"
    )
    assert response.status_code == HTTPStatus.CREATED, response.json()
    amendment = CareNoteAmendment.objects.get()
    assert response.json() == _note_json(
        note,
        category="medication",
        amendment_count=1,
        amendments=[
            {
                "id": amendment.pk,
                "author_id": carer.pk,
                "author_username": carer.username,
                "created_at": _iso(amendment.created_at),
                "reason": REASON,
                "previous_category": "observation",
                "previous_priority": 3,
                "previous_body": note.body,
                "category": "medication",
                "priority": 3,
                "body": note.body,
            }
        ],
    )
    assert response["Location"] == f"http://testserver/api/notes/{note.pk}/"
    # The note's author and time are untouched; the detail shows the same thing.
    stored = CareNote.objects.get()
    assert (stored.author_id, stored.created_at, stored.category) == (
        note.author_id,
        note.created_at,
        "medication",
    )
    assert client.get(response["Location"]).json() == response.json()


def test_the_list_counts_amendments_without_more_queries(
    client, note, carer, django_assert_num_queries
):
    others = CareNoteFactory.create_batch(3, patient=note.patient)
    note_amend(tenant=note.tenant, author=carer, note_id=note.pk, reason="x", priority=1)
    note_amend(tenant=note.tenant, author=carer, note_id=note.pk, reason="y", priority=2)
    params = {"tenant_id": note.tenant_id}
    client.get("/api/notes/", params)  # warms the principal and tenant caches
    with django_assert_num_queries(2):  # the page, then its access audit record (one INSERT)
        results = client.get("/api/notes/", params).json()["results"]
    counts = {row["id"]: row["amendment_count"] for row in results}
    assert counts == {note.pk: 2, **{other.pk: 0 for other in others}}


@pytest.mark.parametrize("amendments", [0, 3])
def test_the_detail_costs_three_queries_at_any_number_of_amendments(
    client, note, carer, amendments, django_assert_num_queries
):
    for priority in range(1, amendments + 1):
        note_amend(tenant=note.tenant, author=carer, note_id=note.pk, reason="r", priority=priority)
    client.get(f"/api/notes/{note.pk}/")
    # The note, its amendments, then the access audit record (one INSERT).
    with django_assert_num_queries(3):
        response = client.get(f"/api/notes/{note.pk}/")
    assert len(response.json()["amendments"]) == amendments


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"reason": ["This field is required."]}),
        ({"reason": "", "priority": 1}, {"reason": ["This field may not be blank."]}),
        ({"reason": "   ", "priority": 1}, {"reason": ["This field may not be blank."]}),
        ({"reason": 5, "priority": 1}, {"reason": ["Must be a string."]}),
        ({"reason": "r", "priority": "1"}, {"priority": ["A valid integer is required."]}),
        (
            {"reason": "r", "priority": 6},
            {"priority": ["Ensure this value is less than or equal to 5."]},
        ),
        ({"reason": "r", "category": "gossip"}, {"category": ['"gossip" is not a valid choice.']}),
        ({"reason": "r", "body": ""}, {"body": ["This field may not be blank."]}),
        (
            {"reason": "r"},
            {
                "non_field_errors": [
                    "The amendment changes nothing: give a new category, priority or body."
                ]
            },
        ),
        (
            {"reason": "r", "priority": 3},
            {
                "non_field_errors": [
                    "The amendment changes nothing: give a new category, priority or body."
                ]
            },
        ),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(client, note, body, errors):
    response = client.post(amend_url(note.pk), body, format="json")
    assert (response.status_code, response.json()) == (HTTPStatus.BAD_REQUEST, errors)
    assert not CareNoteAmendment.objects.exists()
    assert CareNote.objects.get().priority == 3


def test_the_time_resident_and_author_cannot_be_amended(client, note):
    other = PatientFactory(facility=note.facility)
    body = {
        "reason": "r",
        "priority": 1,
        "created_at": "2020-01-01T00:00:00Z",
        "patient_id": other.pk,
        "author_id": UserFactory().pk,
    }
    response = client.post(amend_url(note.pk), body, format="json")
    assert response.status_code == HTTPStatus.CREATED  # unknown fields are ignored, as in DRF
    stored = CareNote.objects.get()
    assert (stored.created_at, stored.patient_id, stored.author_id, stored.priority) == (
        note.created_at,
        note.patient_id,
        note.author_id,
        1,
    )


def test_another_tenants_note_is_the_same_404_as_a_missing_one(client, note):
    foreign = CareNoteFactory()
    body = {"reason": "r", "priority": 1}
    to_foreign = client.post(amend_url(foreign.pk), body, format="json")
    to_missing = client.post(amend_url(foreign.pk + 1000), body, format="json")
    assert to_foreign.status_code == to_missing.status_code == HTTPStatus.NOT_FOUND
    assert to_foreign.json() == to_missing.json() == {"detail": "Not found."}
    assert CareNote.objects.get(pk=foreign.pk).priority == 3


def test_unauthenticated_is_401_and_a_superuser_outside_the_tenant_403(
    api_client, token_client, note
):
    body = {"reason": "r", "priority": 1}
    assert api_client.post(amend_url(note.pk), body, format="json").status_code == 401
    superuser = token_client(UserFactory(is_superuser=True, is_staff=True))
    assert superuser.post(amend_url(note.pk), body, format="json").status_code == 403
    assert not CareNoteAmendment.objects.exists()


def test_a_form_body_is_415(client, note):
    response = client.post(amend_url(note.pk), {"reason": "r", "priority": 1})
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE


def test_amendments_count_against_the_note_writes_budget():
    assert NoteAmendmentCreateView.throttle_scope == SCOPE_NOTES_WRITE


def test_the_note_itself_still_cannot_be_edited_or_deleted(client, note):
    for method in (client.put, client.patch, client.delete):
        response = method(f"/api/notes/{note.pk}/", {"priority": 1}, format="json")
        assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert client.get(amend_url(note.pk)).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert CareNote.objects.get().priority == 3


def test_the_change_history_names_the_api_caller(client, note, carer):
    from carenotes.notes.models import CareNoteEvent

    client.post(amend_url(note.pk), {"reason": REASON, "priority": 1}, format="json")
    contexts = [event.pgh_context for event in CareNoteEvent.objects.order_by("pgh_id")]
    assert [(c["user"], c["amendment_reason"], c["url"]) for c in contexts] == [
        (carer.pk, REASON, amend_url(note.pk))
    ] * 2
