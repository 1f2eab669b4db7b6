"""Request limits: 413 for oversized bodies, 400 for oversized or too many query parameters."""

import json
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from carenotes.notes.models import CareNote
from carenotes.notes.services import NOTE_BODY_MAX_LENGTH
from carenotes.notes.tests.factories import note_payload
from stats.tests.factories import CARE_STATS_URL

pytestmark = pytest.mark.django_db

NOTES_URL = "/api/notes/"
# One character that JSON escapes into a 12-byte surrogate pair: the costliest note body.
WIDEST_CHARACTER = "\U0001f600"


def _note_json(patient, body: str) -> bytes:
    created_at = (timezone.now() - timedelta(minutes=1)).isoformat()
    return json.dumps(note_payload(patient, body=body, created_at=created_at)).encode()


def test_the_largest_valid_note_fits_under_the_body_limit(carer_client, patient):
    data = _note_json(patient, WIDEST_CHARACTER * NOTE_BODY_MAX_LENGTH)
    assert len(data) < django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    response = carer_client.post(NOTES_URL, data, content_type="application/json")

    assert response.status_code == HTTPStatus.CREATED
    assert CareNote.objects.get().body == WIDEST_CHARACTER * NOTE_BODY_MAX_LENGTH


def test_an_oversized_body_gets_413_and_writes_nothing(carer_client, patient):
    limit = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    data = _note_json(patient, "x" * limit)

    response = carer_client.post(NOTES_URL, data, content_type="application/json")

    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json() == {
        "detail": f"Request body too large: {len(data)} bytes; the limit is {limit} bytes."
    }
    assert not CareNote.objects.exists()


def test_the_body_limit_holds_before_authentication(api_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10
    response = api_client.post(NOTES_URL, b"{" + b" " * 20 + b"}", content_type="application/json")
    assert response.status_code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    assert response.json() == {"detail": "Request body too large: 22 bytes; the limit is 10 bytes."}


def test_a_malformed_content_length_gets_400(carer_client):
    response = carer_client.generic(
        "POST", NOTES_URL, b"{}", content_type="application/json", CONTENT_LENGTH="12abc"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"detail": "Invalid Content-Length header: '12abc'."}


def test_too_many_query_parameters_get_400(carer_client, patient):
    limit = django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    query = f"tenant_id={patient.tenant_id}" + "&x" * limit

    response = carer_client.get(f"{CARE_STATS_URL}?{query}")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {
        "detail": f"Too many query parameters or form fields; the limit is {limit}."
    }


def test_an_overlong_query_string_gets_400(carer_client, patient):
    limit = django_settings.QUERY_STRING_MAX_LENGTH
    query = f"tenant_id={patient.tenant_id}&date=" + "9" * limit

    response = carer_client.get(f"{CARE_STATS_URL}?{query}")

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {
        "detail": f"Query string too long: {len(query)} characters; the limit is {limit}."
    }


def test_a_form_with_too_many_fields_gets_400_not_a_bare_page(api_client):
    limit = django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    form = "&".join(f"f{n}=1" for n in range(limit + 1))

    response = api_client.post(
        "/admin/login/", form, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {
        "detail": f"Too many query parameters or form fields; the limit is {limit}."
    }
