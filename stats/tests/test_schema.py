"""Real responses of GET /api/care-stats/ match the OpenAPI schema; the docs need no CDN."""

import re
from http import HTTPStatus

import jsonschema
import pytest
from django.contrib.staticfiles import finders

from stats.ranges import Period
from stats.tests.factories import CARE_STATS_URL, range_query, stats_query
from tenants.tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db

SCHEMA_URL = "/api/schema/"
DOCS_URL = "/api/docs/"


@pytest.fixture
def openapi(api_client) -> dict:
    response = api_client.get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == HTTPStatus.OK
    return response.json()


def _assert_matches_schema(openapi: dict, response) -> None:
    """Validate the body and the documented headers of ``response`` against ``openapi``."""
    operation = openapi["paths"][CARE_STATS_URL]["get"]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"status {response.status_code} is not documented"
    body_schema = documented["content"]["application/json"]["schema"]
    # Local $refs (#/components/...) resolve against the components carried along.
    jsonschema.validate(response.json(), {**body_schema, "components": openapi["components"]})
    for name, header in documented.get("headers", {}).items():
        assert name in response, f"documented header {name} missing"
        jsonschema.validate(response[name], header["schema"])


def test_the_operation_documents_its_parameters_and_errors(openapi):
    operation = openapi["paths"][CARE_STATS_URL]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}

    assert set(parameters) == {
        "tenant_id",
        "facility_ids",
        "date",
        "date_from",
        "date_to",
        "period",
    }
    assert sorted(parameters["period"]["schema"]["enum"]) == sorted(p.value for p in Period)
    assert parameters["tenant_id"]["required"] is True
    assert set(operation["responses"]) == {"200", "400", "401", "404", "429"}
    assert set(operation["responses"]["200"]["headers"]) == {"X-Cache", "Server-Timing"}


def test_real_responses_match_the_schema(
    openapi, care_group, member_client, api_client, token_client
):
    outsider = token_client(MembershipFactory(tenant=TenantFactory()).user)
    responses = [
        member_client.get(CARE_STATS_URL, stats_query(care_group)),  # MISS
        member_client.get(CARE_STATS_URL, stats_query(care_group)),  # HIT
        member_client.get(CARE_STATS_URL, stats_query(care_group, date="2025-02-30", x="1")),
        api_client.get(CARE_STATS_URL, stats_query(care_group)),
        outsider.get(CARE_STATS_URL, stats_query(care_group)),
    ]

    assert [response.status_code for response in responses] == [200, 200, 400, 401, 404]
    for response in responses:
        _assert_matches_schema(openapi, response)


def test_schema_rejects_a_body_missing_a_documented_field(openapi, care_group, member_client):
    response = member_client.get(CARE_STATS_URL, stats_query(care_group))
    body = response.json()
    del body["by_priority"]["3"]
    schema = openapi["paths"][CARE_STATS_URL]["get"]["responses"]["200"]["content"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            body, {**schema["application/json"]["schema"], "components": openapi["components"]}
        )


def test_swagger_ui_is_served_from_our_own_static_files(client):
    response = client.get(DOCS_URL)

    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert not re.search(r'(src|href)="(https?:)?//', page), "an asset is loaded from elsewhere"
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def test_range_and_period_responses_match_the_schema(openapi, care_group, member_client):
    responses = [
        member_client.get(CARE_STATS_URL, range_query(care_group)),  # MISS
        member_client.get(CARE_STATS_URL, range_query(care_group)),  # HIT (fast path)
        member_client.get(CARE_STATS_URL, {"tenant_id": care_group.tenant.pk, "period": "today"}),
        member_client.get(CARE_STATS_URL, range_query(care_group, period="today")),  # 400
        member_client.get(CARE_STATS_URL, range_query(care_group, date_to="2025-03-08")),  # 400
    ]

    assert [response.status_code for response in responses] == [200, 200, 200, 400, 400]
    for response in responses:
        _assert_matches_schema(openapi, response)


def _answer_schema(openapi: dict) -> dict:
    content = openapi["paths"][CARE_STATS_URL]["get"]["responses"]["200"]["content"]
    return {**content["application/json"]["schema"], "components": openapi["components"]}


def test_the_answer_is_exactly_one_of_a_day_and_a_range(openapi, care_group, member_client):
    day = member_client.get(CARE_STATS_URL, stats_query(care_group)).json()
    ranged = member_client.get(CARE_STATS_URL, range_query(care_group)).json()
    schema = _answer_schema(openapi)
    answer = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    assert [branch["$ref"] for branch in answer["oneOf"]] == [
        "#/components/schemas/CareStats",
        "#/components/schemas/CareRangeStats",
    ]
    for broken in (
        {**day, "date_from": "2025-03-10"} | {"by_day": ranged["by_day"], "date_to": "x"},
        {key: value for key, value in ranged.items() if key != "patients"},
        {**ranged, "by_day": [{**ranged["by_day"][0], "by_priority": {}}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)


def test_the_documented_examples_are_valid_answers(openapi):
    content = openapi["paths"][CARE_STATS_URL]["get"]["responses"]["200"]["content"]
    examples = content["application/json"]["examples"]
    assert set(examples) == {"OneDay", "ARangeOfDays"}
    for example in examples.values():
        jsonschema.validate(example["value"], _answer_schema(openapi))
