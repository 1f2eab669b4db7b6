"""The residents API: listing a tenant's residents and reading one, isolation and bad input."""

from http import HTTPStatus

import pytest

from carenotes.core.params import (
    BLANK_PARAM_ERROR,
    REPEATED_PARAM_ERROR,
    unknown_param_error,
)
from carenotes.notes.api.residents import ResidentListView
from carenotes.notes.selectors import (
    PATIENT_PAGE_SIZE_DEFAULT,
    PATIENT_PAGE_SIZE_MAX,
    PATIENT_REFERENCE_MAX_LENGTH,
    PatientCursor,
)
from carenotes.notes.tests.factories import PatientFactory
from tenants.tests.factories import FacilityFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_URL = "/api/residents/"


def detail_url(patient_id) -> str:
    return f"/api/residents/{patient_id}/"


@pytest.fixture
def patient():
    return PatientFactory(reference="OAK-0002")


@pytest.fixture
def client(token_client, patient):
    return token_client(MembershipFactory(tenant=patient.tenant, role="carer").user)


def _as_json(patient) -> dict:
    return {
        "id": patient.pk,
        "tenant_id": patient.tenant_id,
        "facility_id": patient.facility_id,
        "reference": patient.reference,
        "display_name": patient.display_name,
    }


# --- GET list ----------------------------------------------------------------------------------


def test_list_returns_the_tenants_residents_by_reference(client, patient):
    first = PatientFactory(facility=patient.facility, reference="OAK-0001")
    elsewhere = PatientFactory(facility=FacilityFactory(tenant=patient.tenant), reference="ELM-9")
    PatientFactory(reference="AAA-0000")  # another tenant's resident
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert response.status_code == HTTPStatus.OK
    assert response.json() == {
        "next": None,
        "results": [_as_json(elsewhere), _as_json(first), _as_json(patient)],
    }


def test_filter_by_facility(client, patient):
    PatientFactory(facility=FacilityFactory(tenant=patient.tenant))
    params = {"tenant_id": patient.tenant_id, "facility_id": patient.facility_id}
    response = client.get(LIST_URL, params)
    assert response.json() == {"next": None, "results": [_as_json(patient)]}


def test_filter_by_exact_reference(client, patient):
    PatientFactory(facility=patient.facility, reference="OAK-00021")
    by_reference = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "reference": "OAK-0002"})
    by_prefix = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "reference": "OAK"})
    assert by_reference.json() == {"next": None, "results": [_as_json(patient)]}
    assert by_prefix.json() == {"next": None, "results": []}


def test_reference_of_another_tenant_finds_nothing(client, patient):
    foreign = PatientFactory(reference="THEIRS-1")
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "reference": "THEIRS-1"})
    assert response.json() == {"next": None, "results": []}
    assert foreign.display_name not in response.content.decode()


def test_cursor_pages_are_stable_under_concurrent_inserts(client, patient):
    for number in (1, 3, 4, 5, 6):
        PatientFactory(facility=patient.facility, reference=f"OAK-000{number}")
    first = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "page_size": 2}).json()
    assert [row["reference"] for row in first["results"]] == ["OAK-0001", "OAK-0002"]
    # Residents admitted between page requests, before and after the cursor.
    PatientFactory(facility=patient.facility, reference="OAK-0000")
    PatientFactory(facility=patient.facility, reference="OAK-0007")
    seen = [row["reference"] for row in first["results"]]
    next_url = first["next"]
    while next_url:
        page = client.get(next_url).json()
        seen += [row["reference"] for row in page["results"]]
        next_url = page["next"]
    assert seen == [f"OAK-000{number}" for number in range(1, 8)]


def test_next_link_keeps_the_filters(client, patient):
    PatientFactory(facility=patient.facility, reference="OAK-0003")
    PatientFactory(facility=FacilityFactory(tenant=patient.tenant), reference="OAK-0004")
    params = {"tenant_id": patient.tenant_id, "facility_id": patient.facility_id, "page_size": 1}
    first = client.get(LIST_URL, params).json()
    second = client.get(first["next"]).json()
    assert [row["reference"] for row in second["results"]] == ["OAK-0003"]
    assert second["next"] is None


def test_page_size_defaults_and_is_capped(client, patient):
    PatientFactory.create_batch(PATIENT_PAGE_SIZE_DEFAULT, facility=patient.facility)
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert len(response.json()["results"]) == PATIENT_PAGE_SIZE_DEFAULT
    assert response.json()["next"] is not None
    too_big = client.get(
        LIST_URL, {"tenant_id": patient.tenant_id, "page_size": PATIENT_PAGE_SIZE_MAX + 1}
    )
    assert too_big.status_code == HTTPStatus.BAD_REQUEST
    assert too_big.json() == {
        "page_size": [f"Ensure this value is less than or equal to {PATIENT_PAGE_SIZE_MAX}."]
    }


@pytest.mark.parametrize("rows", [1, 60])
def test_list_query_count_does_not_grow_with_rows(client, patient, rows, django_assert_num_queries):
    PatientFactory.create_batch(rows - 1, facility=patient.facility)
    params = {"tenant_id": patient.tenant_id, "page_size": PATIENT_PAGE_SIZE_MAX}
    client.get(LIST_URL, params)  # warms the principal and tenant caches
    with django_assert_num_queries(1):
        response = client.get(LIST_URL, params)
    assert len(response.json()["results"]) == rows


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"tenant_id": ""}, "tenant_id"),
        ({"tenant_id": "x"}, "tenant_id"),
        ({"tenant_id": "1.0"}, "tenant_id"),
        ({"tenant_id": "0"}, "tenant_id"),
        ({"tenant_id": "99999999999999999999999"}, "tenant_id"),
        ({"facility_id": "-3"}, "facility_id"),
        ({"facility_id": ""}, "facility_id"),
        ({"reference": ""}, "reference"),
        ({"reference": "x" * (PATIENT_REFERENCE_MAX_LENGTH + 1)}, "reference"),
        ({"reference": "nul\x00"}, "reference"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"cursor": PatientCursor(reference="x" * 33).encode()}, "cursor"),
        ({"cursor": "AA"}, "cursor"),  # decodes to a NUL byte
        ({"page_size": "0"}, "page_size"),
    ],
)
def test_bad_list_parameter_is_400_naming_it(client, patient, params, field):
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id, **params})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert list(response.json()) == [field]


def test_empty_values_are_refused_not_ignored(client, patient):
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "cursor": "", "page_size": ""})
    assert response.json() == {"cursor": [BLANK_PARAM_ERROR], "page_size": [BLANK_PARAM_ERROR]}


def test_list_without_tenant_id_is_400(client):
    response = client.get(LIST_URL)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"tenant_id": ["This field is required."]}


def test_unknown_parameter_is_400_naming_it(client, patient):
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "name": "Ellis"})
    known = set(ResidentListView.FilterSerializer().fields)
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"name": [unknown_param_error(known)]}


@pytest.mark.parametrize("second", ["own", "foreign"])
def test_repeated_parameter_is_400_whatever_the_values(client, patient, second):
    other = patient.tenant_id if second == "own" else PatientFactory().tenant_id
    for query in (
        f"tenant_id={patient.tenant_id}&tenant_id={other}",
        f"tenant_id={other}&tenant_id={patient.tenant_id}",
    ):
        response = client.get(f"{LIST_URL}?{query}")
        assert response.status_code == HTTPStatus.BAD_REQUEST, query
        assert response.json() == {"tenant_id": [REPEATED_PARAM_ERROR]}, query


def test_facility_of_another_tenant_is_400_naming_it(client, patient):
    foreign = FacilityFactory()
    response = client.get(LIST_URL, {"tenant_id": patient.tenant_id, "facility_id": foreign.pk})
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert response.json() == {"facility_id": ["No such facility in this tenant."]}


def test_unauthenticated_is_401(api_client, patient):
    response = api_client.get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert response.status_code == HTTPStatus.UNAUTHORIZED
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_member_of_another_tenant_gets_404_and_no_data(token_client, patient):
    outsider = MembershipFactory(role="admin").user
    response = token_client(outsider).get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert response.status_code == HTTPStatus.NOT_FOUND
    assert response.json() == {"detail": "Not found."}


def test_unknown_tenant_gets_the_same_404_as_a_foreign_one(client, patient):
    foreign = PatientFactory()
    to_foreign = client.get(LIST_URL, {"tenant_id": foreign.tenant_id})
    to_missing = client.get(LIST_URL, {"tenant_id": 2**62})
    assert to_foreign.status_code == to_missing.status_code == HTTPStatus.NOT_FOUND
    assert to_foreign.json() == to_missing.json()


def test_superuser_lists_any_tenant_by_id(token_client, patient):
    root = UserFactory(is_superuser=True, is_staff=True)
    response = token_client(root).get(LIST_URL, {"tenant_id": patient.tenant_id})
    assert response.json() == {"next": None, "results": [_as_json(patient)]}


def test_listed_ids_are_what_a_note_needs(client, patient):
    resident = client.get(LIST_URL, {"tenant_id": patient.tenant_id}).json()["results"][0]
    body = {
        "tenant_id": resident["tenant_id"],
        "facility_id": resident["facility_id"],
        "patient_id": resident["id"],
        "category": "observation",
        "priority": 3,
        "body": "Settled after lunch.",
    }
    response = client.post("/api/notes/", body, format="json")
    assert response.status_code == HTTPStatus.CREATED, response.json()
    assert response.json()["patient_reference"] == patient.reference


# --- GET detail --------------------------------------------------------------------------------


def test_detail_returns_the_resident(client, patient):
    response = client.get(detail_url(patient.pk))
    assert response.status_code == HTTPStatus.OK
    assert response.json() == _as_json(patient)


def test_detail_query_count(client, patient, django_assert_num_queries):
    client.get(detail_url(patient.pk))  # warms the principal cache
    with django_assert_num_queries(1):
        client.get(detail_url(patient.pk))


def test_detail_of_another_tenants_resident_is_the_same_404_as_a_missing_one(client):
    foreign = PatientFactory()
    to_foreign = client.get(detail_url(foreign.pk))
    to_missing = client.get(detail_url(foreign.pk + 1000))
    to_huge = client.get(detail_url(10**30))
    assert to_foreign.status_code == to_missing.status_code == HTTPStatus.NOT_FOUND
    assert to_huge.status_code == HTTPStatus.NOT_FOUND
    assert to_foreign.json() == to_missing.json() == {"detail": "Not found."}
    assert foreign.display_name not in to_foreign.content.decode()


def test_superuser_reads_any_resident(token_client, patient):
    root = UserFactory(is_superuser=True, is_staff=True)
    assert token_client(root).get(detail_url(patient.pk)).json() == _as_json(patient)


def test_detail_unauthenticated_is_401(api_client, patient):
    assert api_client.get(detail_url(patient.pk)).status_code == HTTPStatus.UNAUTHORIZED


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_residents_are_read_only_here(client, patient, method):
    for url in (LIST_URL, detail_url(patient.pk)):
        response = getattr(client, method)(url, {"reference": "X"}, format="json")
        assert response.status_code == HTTPStatus.METHOD_NOT_ALLOWED
