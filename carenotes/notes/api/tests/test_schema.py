"""The OpenAPI document of the notes and residents API: names, the Authorize box, examples,
and real responses (bodies and headers) that match it."""

import re
from http import HTTPStatus

import jsonschema
import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

from carenotes.notes.idempotency import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    IDEMPOTENCY_KEY_REUSED_ERROR,
    REPLAYED_HEADER,
    REPLAYED_VALUE,
)
from carenotes.notes.tests.factories import PatientFactory, note_payload
from tenants.schema import TOKEN_SCHEME_NAME
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

SCHEMA_URL = "/api/schema/"
ME_URL = "/api/me/"
# What drf-spectacular calls a nested InputSerializer / OutputSerializer / PageSerializer.
GENERIC_COMPONENT_NAMES = {"Input", "Output", "Page", "Filter"}
COLLISION_WARNING = "components with identical names"


@pytest.fixture
def openapi(api_client) -> dict:
    response = api_client.get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == HTTPStatus.OK
    return response.json()


@pytest.fixture
def member(patient):
    user = MembershipFactory(tenant=patient.tenant, role="carer").user
    _, key = api_token_create(user=user, name="schema")
    return key


@pytest.fixture
def patient():
    return PatientFactory(reference="OAK-0042")


def test_every_component_has_a_meaningful_unique_name():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        document = SchemaGenerator().get_schema(request=None, public=True)
    names = set(document["components"]["schemas"])
    assert names & GENERIC_COMPONENT_NAMES == set()
    # Two serializers given one name are merged into one component (drf-spectacular warns).
    collisions = [
        message for message in GENERATOR_STATS._warn_cache if COLLISION_WARNING in message
    ]
    assert collisions == []
    assert {"Note", "NoteCreate", "NotePage", "Resident", "ResidentPage", "Me"} <= names


def test_the_authorize_box_says_what_to_type_and_that_works(openapi, api_client, member):
    scheme = openapi["components"]["securitySchemes"][TOKEN_SCHEME_NAME]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    # Swagger UI sends the typed value as the whole header: follow the description literally.
    typed = re.search(r"type `([^`]*<key>[^`]*)`", scheme["description"]).group(1)
    assert typed == "Token <key>"

    api_client.credentials(HTTP_AUTHORIZATION=typed.replace("<key>", member))
    assert api_client.get(ME_URL).status_code == HTTPStatus.OK
    # The mistake the description warns about: the bare key is no credential.
    api_client.credentials(HTTP_AUTHORIZATION=member)
    response = api_client.get(ME_URL)
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert "Token <key>" in response.json()["detail"]
    assert "401" in scheme["description"]


def test_residents_are_documented_with_examples(openapi):
    listing = openapi["paths"]["/api/residents/"]["get"]
    detail = openapi["paths"]["/api/residents/{patient_id}/"]["get"]
    parameters = {parameter["name"]: parameter for parameter in listing["parameters"]}
    assert set(parameters) == {"tenant_id", "facility_id", "reference", "cursor", "page_size"}
    assert parameters["tenant_id"]["required"] is True
    assert set(listing["responses"]) == {"200", "400", "401", "404", "429"}
    assert set(detail["responses"]) == {"200", "400", "401", "404", "429"}
    assert listing["responses"]["200"]["content"]["application/json"]["examples"]
    assert detail["responses"]["200"]["content"]["application/json"]["examples"]


def test_note_creation_documents_its_location_header(openapi):
    created = openapi["paths"]["/api/notes/"]["post"]["responses"]["201"]
    assert created["headers"]["Location"]["schema"] == {"type": "string", "format": "uri"}
    assert created["headers"]["Location"]["required"] is True


def test_note_creation_documents_the_idempotency_key_its_replays_and_the_422(openapi):
    operation = openapi["paths"]["/api/notes/"]["post"]
    (parameter,) = [p for p in operation["parameters"] if p["name"] == IDEMPOTENCY_HEADER]
    assert (parameter["in"], parameter.get("required", False)) == ("header", False)
    assert parameter["schema"] == {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN}
    assert "Idempotency-Key" in operation["description"]
    replayed = operation["responses"]["201"]["headers"][REPLAYED_HEADER]
    assert (replayed["schema"], replayed.get("required", False)) == (
        {"type": "string", "enum": [REPLAYED_VALUE]},
        False,
    )
    reused = operation["responses"]["422"]["content"]["application/json"]["examples"]
    assert [example["value"] for example in reused.values()] == [
        {IDEMPOTENCY_HEADER: [IDEMPOTENCY_KEY_REUSED_ERROR]}
    ]


def _json_schema(schema):
    """Return an OpenAPI 3.0 schema as JSON Schema (``nullable: true`` also allows null)."""
    if isinstance(schema, list):
        return [_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _json_schema(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def _assert_matches_schema(openapi: dict, path: str, method: str, response) -> None:
    documented = openapi["paths"][path][method]["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: {response.status_code} is not documented"
    body_schema = documented["content"]["application/json"]["schema"]
    jsonschema.validate(
        response.json(), _json_schema({**body_schema, "components": openapi["components"]})
    )
    for name, header in documented.get("headers", {}).items():
        assert name in response or not header.get("required"), f"required header {name} missing"
        if name in response:
            jsonschema.validate(response[name], header["schema"])


def test_real_responses_match_the_schema(openapi, api_client, member, patient):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {member}")
    PatientFactory(facility=patient.facility)
    tenant_id = patient.tenant_id
    visits = [
        ("/api/residents/", "get", api_client.get("/api/residents/", {"tenant_id": tenant_id})),
        (
            "/api/residents/",
            "get",
            api_client.get("/api/residents/", {"tenant_id": tenant_id, "page_size": 1}),
        ),
        (
            "/api/residents/{patient_id}/",
            "get",
            api_client.get(f"/api/residents/{patient.pk}/"),
        ),
        ("/api/notes/", "post", api_client.post("/api/notes/", note_payload(patient), "json")),
        ("/api/notes/", "get", api_client.get("/api/notes/", {"tenant_id": tenant_id})),
    ]
    keyed = {IDEMPOTENCY_HEADER: "schema-test"}
    for body in ("first", "first", "other"):  # new, replayed, reused: 201, 201, 422
        response = api_client.post(
            "/api/notes/", note_payload(patient, body=body), "json", headers=keyed
        )
        visits.append(("/api/notes/", "post", response))
    assert [response.status_code for *_, response in visits] == [
        *(200, 200, 200, 201, 200),
        *(201, 201, 422),
    ]
    assert visits[-2][2][REPLAYED_HEADER] == REPLAYED_VALUE
    for path, method, response in visits:
        _assert_matches_schema(openapi, path, method, response)
