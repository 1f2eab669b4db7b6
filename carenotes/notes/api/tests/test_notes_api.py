"""The notes API: recording, listing and reading notes, tenant isolation and bad input."""

from datetime import UTC, timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone

from carenotes.core.params import (
    BLANK_PARAM_ERROR,
    REPEATED_PARAM_ERROR,
    unknown_param_error,
)
from carenotes.notes.api.views import NoteListCreateView
from carenotes.notes.models import CareNote
from carenotes.notes.selectors import NOTE_PAGE_SIZE_DEFAULT, NOTE_PAGE_SIZE_MAX
from carenotes.notes.services import NOTE_BODY_MAX_LENGTH, NOTE_FUTURE_TOLERANCE
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.tests.factories import FacilityFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/api/notes/"


def detail_url(note_id) -> str:
    return f"/api/notes/{note_id}/"


@pytest.fixture
def patient():
    return PatientFactory()


@pytest.fixture
def carer(patient):
    return MembershipFactory(tenant=patient.tenant, role="carer").user


@pytest.fixture
def client(token_client, carer):
    return token_client(carer)


def _payload(patient, **overrides) -> dict:
    payload = {
        "tenant_id": patient.tenant_id,
        "facility_id": patient.facility_id,
        "patient_id": patient.pk,
        "category": "medication",
        "priority": 2,
        "body": "Gave 500mg paracetamol with water.",
        "created_at": (timezone.now() - timedelta(hours=1)).isoformat(),
    }
    payload.update(overrides)
    return payload


def _as_json(note) -> dict:
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
        "created_at": note.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "amendment_count": 0,
    }


def _recent_note(patient, minutes_ago: int, **fields):
    return CareNoteFactory(
        patient=patient, created_at=timezone.now() - timedelta(minutes=minutes_ago), **fields
    )


# --- POST ------------------------------------------------------------------------------------


def test_member_records_a_note_and_gets_it_back(client, patient, carer):
    payload = _payload(patient)
    response = client.post(LIST_URL, payload, format="json")
    assert response.status_code == HTTPStatus.CREATED, response.json()
    note = CareNote.objects.get()
    assert response.json() == _as_json(note)
    assert (note.author_id, note.body, note.category) == (carer.pk, payload["body"], "medication")


def test_created_note_is_located_at_its_detail_url(client, patient):
    response = client.post(LIST_URL, _payload(patient), format="json")
    note = CareNote.objects.get()
    assert response.status_code == HTTPStatus.CREATED
    assert response["Location"] == f"http://testserver{detail_url(note.pk)}"
    assert client.get(response["Location"]).json() == {**response.json(), "amendments": []}


@pytest.mark.parametrize("role", ["carer", "manager", "admin"])
def test_every_role_may_record(token_client, patient, role):
    user = MembershipFactory(tenant=patient.tenant, role=role).user
    response = token_client(user).post(LIST_URL, _payload(patient), format="json")
    assert response.status_code == HTTPStatus.CREATED


def test_created_at_defaults_to_now(client, patient):
    payload = _payload(patient)
    del payload["created_at"]
    before = timezone.now()
    response = client.post(LIST_URL, payload, format="json")
    assert response.status_code == HTTPStatus.CREATED
    assert before <= CareNote.objects.get().created_at <= timezone.now()


def test_body_of_exactly_the_maximum_length_is_accepted(client, patient):
    payload = _payload(patient, body="x" * NOTE_BODY_MAX_LENGTH)
    assert client.post(LIST_URL, payload, format="json").status_code == HTTPStatus.CREATED


@pytest.mark.parametrize(
    ("offset", "field_message"),
    [
        (NOTE_FUTURE_TOLERANCE + timedelta(minutes=1), "Must not be in the future."),
        (-timedelta(days=7, minutes=1), "Must not be more than 7 days in the past."),
    ],
)
def test_created_at_outside_the_window_is_400(client, patient, offset, field_message):
    payload = _payload(patient, created_at=(timezone.now() + offset).isoformat())
    response = client.post(LIST_URL, payload, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"created_at": [field_message]}
    assert not CareNote.objects.exists()


def test_small_clock_skew_into_the_future_is_accepted(client, patient):
    created_at = timezone.now() + NOTE_FUTURE_TOLERANCE - timedelta(seconds=30)
    payload = _payload(patient, created_at=created_at.isoformat())
    assert client.post(LIST_URL, payload, format="json").status_code == HTTPStatus.CREATED


def test_backdating_window_comes_from_settings(client, patient, settings):
    settings.NOTE_BACKDATE_DAYS = 1
    payload = _payload(patient, created_at=(timezone.now() - timedelta(days=2)).isoformat())
    response = client.post(LIST_URL, payload, format="json")
    assert response.json() == {"created_at": ["Must not be more than 1 days in the past."]}


def test_facility_of_another_tenant_is_400_naming_it(client, patient):
    foreign = FacilityFactory()
    response = client.post(LIST_URL, _payload(patient, facility_id=foreign.pk), format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"facility_id": ["No such facility in this tenant."]}


def test_patient_of_another_tenant_is_400_naming_it(client, patient):
    foreign = PatientFactory()
    response = client.post(LIST_URL, _payload(patient, patient_id=foreign.pk), format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"patient_id": ["No such patient in this tenant."]}


def test_patient_of_another_facility_of_the_same_tenant_is_400(client, patient):
    other_facility = FacilityFactory(tenant=patient.tenant)
    elsewhere = PatientFactory(facility=other_facility)
    response = client.post(LIST_URL, _payload(patient, patient_id=elsewhere.pk), format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"patient_id": ["This patient does not live in that facility."]}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"tenant_id": "abc"}, "tenant_id"),
        ({"tenant_id": 2**63}, "tenant_id"),
        ({"facility_id": 10**30}, "facility_id"),
        ({"facility_id": -1}, "facility_id"),
        ({"patient_id": None}, "patient_id"),
        ({"patient_id": [1]}, "patient_id"),
        ({"category": "gossip"}, "category"),
        ({"category": 7}, "category"),
        ({"priority": 0}, "priority"),
        ({"priority": 6}, "priority"),
        ({"priority": 10**20}, "priority"),
        ({"priority": 2.5}, "priority"),
        ({"priority": True}, "priority"),
        ({"body": ""}, "body"),
        ({"body": "   "}, "body"),
        ({"body": "x" * (NOTE_BODY_MAX_LENGTH + 1)}, "body"),
        ({"body": "nul \x00 byte"}, "body"),
        ({"body": {"text": "x"}}, "body"),
        ({"created_at": "yesterday"}, "created_at"),
        ({"created_at": "2025-13-45T99:00:00Z"}, "created_at"),
        ({"created_at": 12345}, "created_at"),
    ],
)
def test_bad_field_is_400_naming_it(client, patient, overrides, field):
    response = client.post(LIST_URL, _payload(patient, **overrides), format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert list(response.json()) == [field]
    assert not CareNote.objects.exists()


@pytest.mark.parametrize(
    "field", ["tenant_id", "facility_id", "patient_id", "category", "priority", "body"]
)
def test_missing_field_is_400_naming_it(client, patient, field):
    payload = _payload(patient)
    del payload[field]
    response = client.post(LIST_URL, payload, format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {field: ["This field is required."]}


def test_invalid_json_is_400(client):
    response = client.generic("POST", LIST_URL, '{"tenant_id": 1,', "application/json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json()["detail"].startswith("JSON parse error")


def test_json_that_is_not_an_object_is_400(client):
    response = client.post(LIST_URL, [1, 2], format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
    }


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(client, patient, content_type):
    response = client.generic("POST", LIST_URL, "tenant_id=1", content_type)
    assert response.status_code == HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    assert response.json() == {"detail": f'Unsupported media type "{content_type}" in request.'}


def test_non_member_gets_404_and_nothing_is_written(token_client, patient):
    outsider = MembershipFactory(role="admin").user
    response = token_client(outsider).post(LIST_URL, _payload(patient), format="json")
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert not CareNote.objects.exists()


def test_unknown_tenant_gets_the_same_404_as_a_foreign_one(client, patient):
    foreign = PatientFactory()
    to_foreign = client.post(LIST_URL, _payload(foreign), format="json")
    to_missing = client.post(LIST_URL, _payload(patient, tenant_id=2**62), format="json")
    assert to_foreign.status_code == to_missing.status_code == HTTPStatus.NOT_FOUND
    assert to_foreign.json() == to_missing.json()


def test_superuser_who_is_not_a_member_may_not_author_notes(token_client, patient):
    root = UserFactory(is_superuser=True, is_staff=True)
    response = token_client(root).post(LIST_URL, _payload(patient), format="json")
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert not CareNote.objects.exists()


def test_unauthenticated_is_401(api_client, patient):
    assert api_client.post(LIST_URL, _payload(patient), format="json").status_code == 401


# --- PUT / PATCH / DELETE ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_notes_are_not_edited_or_deleted_through_the_api(client, patient, method):
    note = _recent_note(patient, 5)
    for url in (LIST_URL, detail_url(note.pk)):
        response = getattr(client, method)(url, {"body": "changed"}, format="json")
        assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
    note.refresh_from_db()
    assert note.body != "changed"


# --- GET list ----------------------------------------------------------------------------------


def test_list_returns_the_tenants_notes_newest_first(client, patient):
    older = _recent_note(patient, 30)
    newer = _recent_note(patient, 10)
    CareNoteFactory(created_at=timezone.now())  # another tenant's note
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {"next": None, "results": [_as_json(newer), _as_json(older)]}


def test_list_filters(client, patient):
    tenant = patient.tenant
    other_patient = PatientFactory(facility=patient.facility)
    other_facility_patient = PatientFactory(facility=FacilityFactory(tenant=tenant))
    author = MembershipFactory(tenant=tenant).user
    base = _recent_note(patient, 60)
    by_patient = _recent_note(other_patient, 50)
    by_facility = _recent_note(other_facility_patient, 40)
    by_category = _recent_note(patient, 30, category="treatment")
    by_priority = _recent_note(patient, 20, priority=5)
    by_author = _recent_note(patient, 10, author=author)
    cases = {
        "patient_id": (other_patient.pk, by_patient),
        "facility_id": (other_facility_patient.facility_id, by_facility),
        "category": ("treatment", by_category),
        "priority": (5, by_priority),
        "author": (author.pk, by_author),
    }
    for name, (value, expected) in cases.items():
        response = client.get(LIST_URL, {"tenant_id": tenant.pk, name: value})
        assert [row["id"] for row in response.json()["results"]] == [expected.pk], name
    window = {
        "tenant_id": tenant.pk,
        "created_after": base.created_at.isoformat(),
        "created_before": by_facility.created_at.isoformat(),
    }
    response = client.get(LIST_URL, window)
    assert [row["id"] for row in response.json()["results"]] == [by_patient.pk, base.pk]


def test_cursor_pages_are_stable_under_concurrent_inserts(client, patient):
    notes = [_recent_note(patient, minutes) for minutes in range(10, 0, -1)]  # oldest first
    # Two notes share a timestamp: the id breaks the tie, so neither is lost or repeated.
    notes.append(CareNoteFactory(patient=patient, created_at=notes[-1].created_at))
    expected = sorted(notes, key=lambda n: (n.created_at, n.pk), reverse=True)
    first = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "page_size": 4}).json()
    _recent_note(patient, 0)  # a new note arrives between page requests
    seen = [row["id"] for row in first["results"]]
    next_url = first["next"]
    while next_url:
        page = client.get(next_url).json()
        seen += [row["id"] for row in page["results"]]
        next_url = page["next"]
    assert seen == [note.pk for note in expected]


def test_page_size_defaults_and_is_capped(client, patient, carer):
    CareNoteFactory.create_batch(NOTE_PAGE_SIZE_DEFAULT + 1, patient=patient, author=carer)
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert len(response.json()["results"]) == NOTE_PAGE_SIZE_DEFAULT
    assert response.json()["next"] is not None
    too_big = client.get(
        LIST_URL, {"tenant_id": patient.tenant_id, "page_size": NOTE_PAGE_SIZE_MAX + 1}
    )
    assert too_big.status_code == HTTPStatus.BAD_REQUEST
    assert too_big.json() == {
        "page_size": [f"Ensure this value is less than or equal to {NOTE_PAGE_SIZE_MAX}."]
    }


@pytest.mark.parametrize("rows", [1, 50])
def test_list_query_count_does_not_grow_with_rows(client, patient, rows, django_assert_num_queries):
    authors = UserFactory.create_batch(3)
    patients = [patient, *PatientFactory.create_batch(2, facility=patient.facility)]
    for i in range(rows):
        CareNoteFactory(patient=patients[i % 3], author=authors[i % 3])
    params = {"tenant_id": patient.tenant_id}
    client.get(LIST_URL, params)  # warms the principal and tenant caches
    with django_assert_num_queries(2):  # the page, then its access audit record (one INSERT)
        response = client.get(LIST_URL, params)
    assert len(response.json()["results"]) == rows


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tenant_id": ""}, "tenant_id"),
        ({"tenant_id": "x"}, "tenant_id"),
        ({"tenant_id": "99999999999999999999999"}, "tenant_id"),
        ({"facility_id": "1.5"}, "facility_id"),
        ({"patient_id": "-3"}, "patient_id"),
        ({"category": "gossip"}, "category"),
        ({"priority": "9"}, "priority"),
        ({"created_after": "last tuesday"}, "created_after"),
        ({"created_before": "2025-02-30T00:00:00Z"}, "created_before"),
        ({"author": "me"}, "author"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "bm90fGE"}, "cursor"),
        ({"page_size": "0"}, "page_size"),
    ],
)
def test_bad_list_parameter_is_400_naming_it(client, patient, params, field):
    query = {"tenant_id": patient.tenant_id, **params}
    response = client.get(LIST_URL, query)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert list(response.json()) == [field]


def test_list_without_tenant_id_is_400(client):
    response = client.get(LIST_URL)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"tenant_id": ["This field is required."]}


def test_filter_by_another_tenants_facility_or_patient_is_400(client, patient):
    foreign = PatientFactory()
    tenant_id = patient.tenant_id
    by_facility = client.get(LIST_URL, {"tenant_id": tenant_id, "facility_id": foreign.facility_id})
    by_patient = client.get(LIST_URL, {"tenant_id": tenant_id, "patient_id": foreign.pk})
    assert by_facility.json() == {"facility_id": ["No such facility in this tenant."]}
    assert by_patient.json() == {"patient_id": ["No such patient in this tenant."]}


def test_member_of_another_tenant_gets_404_and_no_data(token_client, patient):
    _recent_note(patient, 5)
    outsider = MembershipFactory(role="admin").user
    response = token_client(outsider).get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"detail": "Not found."}


def test_superuser_lists_any_tenant_by_id(token_client, patient):
    note = _recent_note(patient, 5)
    root = UserFactory(is_superuser=True, is_staff=True)
    response = token_client(root).get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert response.json() == {"next": None, "results": [_as_json(note)]}


# --- GET detail --------------------------------------------------------------------------------


def test_detail_returns_the_note(client, patient):
    note = _recent_note(patient, 5)
    response = client.get(detail_url(note.pk))
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {**_as_json(note), "amendments": []}


def test_detail_of_another_tenants_note_is_the_same_404_as_a_missing_one(client):
    foreign = CareNoteFactory()
    missing_id = foreign.pk + 1000
    to_foreign = client.get(detail_url(foreign.pk))
    to_missing = client.get(detail_url(missing_id))
    to_huge = client.get(detail_url(10**30))
    assert to_foreign.status_code == to_missing.status_code == HTTPStatus.NOT_FOUND
    assert to_huge.status_code == HTTPStatus.NOT_FOUND
    assert to_foreign.json() == to_missing.json() == {"detail": "Not found."}
    assert foreign.body not in to_foreign.content.decode()


def test_list_refuses_empty_query_values_instead_of_ignoring_them(client, patient):
    # Found by the schema fuzzing: `?cursor=` used to be read as "no cursor" (page one).
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "cursor": "", "priority": ""})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"cursor": [BLANK_PARAM_ERROR], "priority": [BLANK_PARAM_ERROR]}


def test_unknown_list_parameter_is_400_naming_it(client, patient):
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "limit": "5"})
    known = set(NoteListCreateView.FilterSerializer().fields)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"limit": [unknown_param_error(known)]}


def test_drf_format_switch_is_not_an_unknown_parameter(client, patient):
    note = _recent_note(patient, 5)
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "format": "json"})
    assert response.json() == {"next": None, "results": [_as_json(note)]}


@pytest.mark.parametrize("order", ["ours first", "theirs first", "ours twice"])
def test_repeated_tenant_id_is_400_whatever_the_values(client, patient, order):
    ours, theirs = patient.tenant_id, PatientFactory().tenant_id
    values = {
        "ours first": [ours, theirs],
        "theirs first": [theirs, ours],
        "ours twice": [ours, ours],
    }[order]
    query = "&".join(f"tenant_id={value}" for value in values)
    response = client.get(f"{LIST_URL}?{query}")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"tenant_id": [REPEATED_PARAM_ERROR]}


def test_repeated_filter_is_400_naming_it(client, patient):
    response = client.get(f"{LIST_URL}?tenant_id={patient.tenant_id}&priority=1&priority=1")
    assert response.json() == {"priority": [REPEATED_PARAM_ERROR]}


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({"body": 12345}, {"body": ["Must be a string."]}),
        ({"body": True}, {"body": ["Must be a string."]}),
        ({"priority": "3"}, {"priority": ["A valid integer is required."]}),
        ({"priority": 2.5}, {"priority": ["A valid integer is required."]}),
        ({"patient_id": "1"}, {"patient_id": ["A valid integer is required."]}),
    ],
)
def test_json_types_are_not_coerced(client, patient, overrides, errors):
    # The schema says string / integer; a number as the body or a string as an id is a
    # client's mistake to name, not a note to record (found by schemathesis).
    response = client.post(LIST_URL, _payload(patient, **overrides), format="json")
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == errors
    assert not CareNote.objects.exists()
