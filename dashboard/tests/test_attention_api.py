"""GET /api/residents/attention/: the API of the dashboard's attention list."""

from http import HTTPStatus

import pytest
from rest_framework.test import APIClient

from carenotes.notes.tests.factories import CareNoteFactory
from dashboard.tests.factories import dashboard_group_create

pytestmark = pytest.mark.django_db
URL = "/api/residents/attention/"


def test_lists_the_residents_without_a_recent_note_oldest_first(group, token_client):
    response = token_client(group.manager).get(URL, {"tenant_id": group.tenant.pk})
    assert response.status_code == HTTPStatus.OK
    body = response.json()
    assert (body["tenant_id"], body["hours"], body["next"]) == (group.tenant.pk, 24, None)
    assert [row["patient_id"] for row in body["results"]] == [
        group.never_noted.pk,
        group.south_resident.pk,
        group.noted_long_ago.pk,
    ]
    assert body["results"][0] == {
        "patient_id": group.never_noted.pk,
        "patient_reference": group.never_noted.reference,
        "display_name": group.never_noted.display_name,
        "facility_id": group.north.pk,
        "facility_name": group.north.name,
        "last_note_at": None,
    }


def test_hours_and_facilities_narrow_it(group, token_client):
    client = token_client(group.admin)
    response = client.get(
        URL, {"tenant_id": group.tenant.pk, "facility_ids": str(group.north.pk), "hours": 60}
    )
    assert [row["patient_id"] for row in response.json()["results"]] == [group.never_noted.pk]


def test_a_new_note_takes_the_resident_off_the_list(group, token_client):
    client = token_client(group.manager)
    CareNoteFactory(patient=group.never_noted, created_at=group.notes[0].created_at)
    ids = [
        row["patient_id"]
        for row in client.get(URL, {"tenant_id": group.tenant.pk}).json()["results"]
    ]
    assert group.never_noted.pk not in ids


def test_pages_are_linked_by_next(group, token_client):
    client = token_client(group.manager)
    first = client.get(URL, {"tenant_id": group.tenant.pk, "page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"]).json()
    assert [row["patient_id"] for row in second["results"]] == [group.noted_long_ago.pk]
    assert second["next"] is None


def test_carers_are_refused_with_403(group, token_client):
    response = token_client(group.carer).get(URL, {"tenant_id": group.tenant.pk})
    assert response.status_code == HTTPStatus.FORBIDDEN


def test_members_of_another_tenant_get_404_before_any_parameter_is_checked(group, token_client):
    other = dashboard_group_create(tag="Zephyr")
    response = token_client(other.manager).get(URL, {"tenant_id": group.tenant.pk, "hours": 0})
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"detail": "Not found."}


def test_anonymous_callers_get_401():
    assert APIClient().get(URL, {"tenant_id": 1}).status_code == HTTPStatus.UNAUTHORIZED


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"hours": 0}, "hours"),
        ({"hours": 169}, "hours"),
        ({"facility_ids": "x"}, "facility_ids"),
        ({"facility_ids": "99999999"}, "facility_ids"),
        ({"cursor": "nope"}, "cursor"),
        ({"page_size": 201}, "page_size"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_parameters_are_400_naming_them(group, token_client, params, field):
    response = token_client(group.manager).get(URL, {"tenant_id": group.tenant.pk, **params})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert list(response.json()) == [field]


def test_a_missing_tenant_id_is_400_naming_it(group, token_client):
    response = token_client(group.manager).get(URL)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert list(response.json()) == ["tenant_id"]


def test_it_is_documented_in_the_openapi_schema(group, token_client):
    schema = token_client(group.manager).get("/api/schema/?format=json").json()
    operation = schema["paths"][URL]["get"]
    assert operation["operationId"] == "residents_attention"
    assert {p["name"] for p in operation["parameters"]} >= {"tenant_id", "facility_ids", "hours"}
    assert {"200", "400", "401", "403", "404"} <= set(operation["responses"])
