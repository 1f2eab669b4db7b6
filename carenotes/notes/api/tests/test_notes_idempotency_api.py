"""POST /api/notes/ with an Idempotency-Key: replays, reused keys, bad keys, scope and expiry."""

import json
from datetime import timedelta
from http import HTTPStatus

import pytest
from prometheus_client import REGISTRY

from carenotes.notes.idempotency import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_ERROR,
    IDEMPOTENCY_KEY_REUSED_ERROR,
    REPLAYED_HEADER,
    REPLAYED_VALUE,
)
from carenotes.notes.models import IDEMPOTENCY_KEY_MAX_LENGTH, CareNote, IdempotencyKey
from carenotes.notes.tests.factories import PatientFactory, note_payload
from tenants.services import membership_grant, membership_revoke
from tenants.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/api/notes/"
KEY = "3f1c9a52-7d4e-4b7a-9c1e-2a6f0b8d5e41"
REPLAYS = "carenotes_idempotent_replays_total"


def _post(client, payload: dict, key: str | None = KEY):
    headers = {} if key is None else {IDEMPOTENCY_HEADER: key}
    return client.post(LIST_URL, payload, format="json", headers=headers)


def _replays() -> float:
    return REGISTRY.get_sample_value(REPLAYS) or 0.0


def test_a_repeated_key_and_body_replays_the_first_answer_and_records_one_note(
    carer_client, patient
):
    payload = note_payload(patient)
    replays_before = _replays()
    first = _post(carer_client, payload)
    assert first.status_code == HTTPStatus.CREATED, first.json()
    assert REPLAYED_HEADER not in first
    assert _replays() == replays_before

    again = _post(carer_client, payload)
    assert again.status_code == HTTPStatus.CREATED
    assert again.content == first.content  # byte for byte: the same note id, the same JSON
    assert (again[REPLAYED_HEADER], again["Location"]) == (REPLAYED_VALUE, first["Location"])
    assert _replays() == replays_before + 1
    assert CareNote.objects.get().pk == first.json()["id"]


def test_the_stored_answer_is_the_response_sent(carer_client, patient):
    response = _post(carer_client, note_payload(patient))
    stored = IdempotencyKey.objects.get()
    assert (stored.key, stored.tenant_id, stored.response_status) == (
        KEY,
        patient.tenant_id,
        HTTPStatus.CREATED,
    )
    assert json.loads(stored.response_body) == response.json()
    assert stored.expires_at - stored.created_at == timedelta(hours=24)


def test_the_same_json_with_other_key_order_and_spacing_is_the_same_request(carer_client, patient):
    payload = note_payload(patient)
    first = _post(carer_client, payload)
    reordered = json.dumps(dict(reversed(payload.items())), indent=2)
    again = carer_client.post(
        LIST_URL, reordered, content_type="application/json", headers={IDEMPOTENCY_HEADER: KEY}
    )
    assert (again.status_code, again[REPLAYED_HEADER]) == (HTTPStatus.CREATED, REPLAYED_VALUE)
    assert again.json() == first.json()


def test_the_same_key_with_another_body_is_422_naming_the_header(carer_client, patient):
    assert _post(carer_client, note_payload(patient)).status_code == HTTPStatus.CREATED
    response = _post(carer_client, note_payload(patient, body="Another note."))
    assert response.status_code == HTTPStatus.UNPROCESSABLE_ENTITY
    assert response.json() == {IDEMPOTENCY_HEADER: [IDEMPOTENCY_KEY_REUSED_ERROR]}
    assert CareNote.objects.count() == 1


@pytest.mark.parametrize(
    "key",
    [
        "",
        "x" * (IDEMPOTENCY_KEY_MAX_LENGTH + 1),
        "tab\there",
        "line\nbreak",
        "trailing-newline\n",
        "nul\x00",
        "del\x7f",
        "café",
    ],
    ids=["empty", "too-long", "tab", "newline", "trailing-newline", "nul", "del", "non-ascii"],
)
def test_a_malformed_key_is_400_naming_the_header_and_records_nothing(carer_client, patient, key):
    response = _post(carer_client, note_payload(patient), key=key)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {IDEMPOTENCY_HEADER: [IDEMPOTENCY_KEY_ERROR]}
    assert not CareNote.objects.exists()
    assert not IdempotencyKey.objects.exists()


@pytest.mark.parametrize("key", ["k", "x" * IDEMPOTENCY_KEY_MAX_LENGTH, " ~!\"#$%&'()*+,-./:;"])
def test_keys_of_1_to_255_printable_characters_are_accepted(carer_client, patient, key):
    response = _post(carer_client, note_payload(patient), key=key)
    assert response.status_code == HTTPStatus.CREATED
    assert IdempotencyKey.objects.get().key == key


def test_without_the_header_every_post_records_a_note(carer_client, patient):
    payload = note_payload(patient)
    statuses = [_post(carer_client, payload, key=None).status_code for _ in range(2)]
    assert statuses == [HTTPStatus.CREATED] * 2
    assert CareNote.objects.count() == 2
    assert not IdempotencyKey.objects.exists()


def test_a_failed_request_stores_no_key_so_the_corrected_retry_records_the_note(
    carer_client, patient
):
    bad = _post(carer_client, note_payload(patient, patient_id=patient.pk + 1000))
    assert bad.status_code == HTTPStatus.BAD_REQUEST
    assert not IdempotencyKey.objects.exists()
    good = _post(carer_client, note_payload(patient))
    assert good.status_code == HTTPStatus.CREATED
    assert REPLAYED_HEADER not in good
    assert CareNote.objects.count() == 1


def test_keys_are_scoped_to_the_caller_another_users_same_key_records_a_new_note(
    token_client, carer_client, patient
):
    colleague = MembershipFactory(tenant=patient.tenant, role="carer").user
    payload = note_payload(patient)
    mine = _post(carer_client, payload)
    theirs = _post(token_client(colleague), payload)
    assert (mine.status_code, theirs.status_code) == (HTTPStatus.CREATED, HTTPStatus.CREATED)
    assert REPLAYED_HEADER not in theirs
    assert theirs.json()["id"] != mine.json()["id"]
    assert theirs.json()["author_id"] == colleague.pk
    assert CareNote.objects.count() == 2


def test_an_expired_key_is_new_again(carer_client, patient, settings):
    settings.IDEMPOTENCY_KEY_TTL_HOURS = 2
    payload = note_payload(patient)
    first = _post(carer_client, payload)
    IdempotencyKey.objects.update(expires_at=IdempotencyKey.objects.get().created_at)
    again = _post(carer_client, payload)
    assert again.status_code == HTTPStatus.CREATED
    assert REPLAYED_HEADER not in again
    assert again.json()["id"] != first.json()["id"]
    stored = IdempotencyKey.objects.get()  # taken over by the new request, not a second row
    assert json.loads(stored.response_body)["id"] == again.json()["id"]
    assert stored.expires_at - stored.created_at == timedelta(hours=2)
    assert _post(carer_client, payload).json()["id"] == again.json()["id"]  # replays the new one


def test_another_tenants_member_can_neither_replay_nor_see_an_answer(token_client, patient):
    ours = MembershipFactory(tenant=patient.tenant, role="carer").user
    outsider_patient = PatientFactory()
    outsider = MembershipFactory(tenant=outsider_patient.tenant, role="carer").user
    payload = note_payload(patient)
    first = _post(token_client(ours), payload)
    assert first.status_code == HTTPStatus.CREATED

    # Our tenant's body: the outsider is not a member (404), whatever the key.
    intruding = _post(token_client(outsider), payload)
    assert intruding.status_code == HTTPStatus.NOT_FOUND
    assert payload["body"] not in intruding.content.decode()
    # The same key for their own tenant is their own new note, not our answer.
    own = _post(token_client(outsider), note_payload(outsider_patient))
    assert own.status_code == HTTPStatus.CREATED
    assert REPLAYED_HEADER not in own
    assert own.json()["tenant_id"] == outsider_patient.tenant_id
    assert CareNote.objects.filter(tenant=patient.tenant).count() == 1


def test_a_key_is_the_callers_within_one_tenant_never_another_tenants_answer(token_client, patient):
    other_patient = PatientFactory()
    user = UserFactory()
    membership_grant(user=user, tenant=patient.tenant, role="carer")
    membership_grant(user=user, tenant=other_patient.tenant, role="carer")
    carer_client = token_client(user)
    first = _post(carer_client, note_payload(patient))
    assert first.status_code == HTTPStatus.CREATED
    membership_revoke(user=user, tenant=patient.tenant)

    # The same key in the caller's other tenant is a new note there, not the left tenant's
    # answer (which row-level security hides from this caller anyway).
    response = _post(carer_client, note_payload(other_patient))
    assert response.status_code == HTTPStatus.CREATED
    assert REPLAYED_HEADER not in response
    assert response.json()["tenant_id"] == other_patient.tenant_id
    assert response.json()["id"] != first.json()["id"]
    assert CareNote.objects.filter(tenant=other_patient.tenant).count() == 1
    assert CareNote.objects.filter(tenant=patient.tenant).count() == 1


def test_a_replay_costs_a_fixed_number_of_queries(carer_client, patient, django_assert_num_queries):
    payload = note_payload(patient)
    _post(carer_client, payload)
    # The claim (a conflict) and the stored answer, in a transaction (a savepoint here).
    with django_assert_num_queries(4):
        assert _post(carer_client, payload)[REPLAYED_HEADER] == REPLAYED_VALUE
