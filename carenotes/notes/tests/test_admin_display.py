"""What the admin shows: where "View site" leads, notes in their tenant's local time, and
facilities and residents named with their tenant for users who see several tenants."""

from datetime import UTC, datetime
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from carenotes.notes.admin import CREATED_AT_UTC_LABEL
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.models import Role
from tenants.services import membership_grant
from tenants.tests.factories import FacilityFactory, TenantFactory, UserFactory, tenant_admin_create

pytestmark = pytest.mark.django_db

NOTES = "/admin/carenotes/carenote/"
PATIENTS = "/admin/carenotes/patient/"
AUTOCOMPLETE = "/admin/autocomplete/"
# 22:15 UTC on 9 March 2025 is 09:15 the next morning in Sydney (daylight saving, UTC+11).
SYDNEY_AT = datetime(2025, 3, 9, 22, 15, tzinfo=UTC)
SYDNEY_LOCAL = "2025-03-10 09:15 AEDT"
# Noon UTC on 1 July 2025 is 13:00 in London (British Summer Time).
LONDON_AT = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
LONDON_LOCAL = "2025-07-01 13:00 BST"


def _client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def sydney():
    tenant = TenantFactory(name="Sydney Care", timezone="Australia/Sydney")
    facility = FacilityFactory(tenant=tenant, name="Oak House")
    patient = PatientFactory(facility=facility, reference="SYD-1")
    CareNoteFactory(patient=patient, created_at=SYDNEY_AT)
    return tenant


@pytest.fixture
def london():
    tenant = TenantFactory(name="London Care", timezone="Europe/London")
    facility = FacilityFactory(tenant=tenant, name="Oak House")
    patient = PatientFactory(facility=facility, reference="LON-1")
    CareNoteFactory(patient=patient, created_at=LONDON_AT)
    return tenant


@pytest.fixture
def elsewhere():
    """A third tenant nobody in these tests administers."""
    tenant = TenantFactory(name="Elsewhere Care", timezone="UTC")
    PatientFactory(facility=FacilityFactory(tenant=tenant, name="Oak House"), reference="ELS-1")
    return tenant


@pytest.fixture
def superuser_client() -> Client:
    return _client_for(UserFactory(is_superuser=True, is_staff=True))


@pytest.fixture
def sydney_admin_client(sydney) -> Client:
    return _client_for(tenant_admin_create(tenant=sydney))


@pytest.fixture
def two_tenant_admin_client(sydney, london) -> Client:
    user = tenant_admin_create(tenant=sydney)
    membership_grant(user=user, tenant=london, role=Role.ADMIN)
    return _client_for(user)


# --- "View site" and / ---------------------------------------------------------------------


def test_root_redirects_to_the_dashboard(client):
    response = client.get("/")
    assert response.status_code == HTTPStatus.FOUND  # not 301: the target may change
    assert response["Location"] == "/dashboard/"
    # Not signed in: the dashboard sends the caller to its login page.
    assert client.get(response["Location"])["Location"] == "/accounts/login/?next=/dashboard/"


@pytest.mark.parametrize("who", ["tenant admin", "superuser"])
def test_view_site_leads_somewhere_useful(who, sydney_admin_client, superuser_client):
    client = sydney_admin_client if who == "tenant admin" else superuser_client
    page = client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in page
    landing = client.get("/", follow=True)
    assert landing.redirect_chain[0] == ("/dashboard/", HTTPStatus.FOUND)
    assert landing.status_code == HTTPStatus.OK
    # A one-tenant admin lands on their dashboard; a superuser picks among every tenant.
    landed = 'id="dashboard-data"' if who == "tenant admin" else "Choose a care organisation"
    assert landed in landing.content.decode()


# --- Local times ---------------------------------------------------------------------------


def test_notes_show_in_their_tenants_local_time_with_its_zone(superuser_client, sydney, london):
    page = superuser_client.get(NOTES).content.decode()
    assert SYDNEY_LOCAL in page
    assert LONDON_LOCAL in page


def test_a_tenant_admin_sees_only_their_tenants_times(sydney_admin_client, sydney, london):
    page = sydney_admin_client.get(NOTES).content.decode()
    assert SYDNEY_LOCAL in page
    assert LONDON_LOCAL not in page
    assert "LON-1" not in page


def test_change_view_shows_the_local_time_and_labels_the_utc_field(
    sydney_admin_client, superuser_client, sydney
):
    note = sydney.care_notes.get()
    response = sydney_admin_client.get(f"{NOTES}{note.pk}/change/")
    assert response.status_code == HTTPStatus.OK
    assert SYDNEY_LOCAL in response.content.decode()
    # Only a superuser's data repair edits the time; the value is the UTC one (22:15, not
    # 09:15), as its label says.
    page = superuser_client.get(f"{NOTES}{note.pk}/change/").content.decode()
    assert CREATED_AT_UTC_LABEL in page
    assert 'value="22:15:00"' in page


def test_add_view_has_no_local_time_yet(sydney_admin_client):
    response = sydney_admin_client.get(f"{NOTES}add/")
    assert response.status_code == HTTPStatus.OK
    assert CREATED_AT_UTC_LABEL in response.content.decode()


# --- Facilities and residents named with their tenant --------------------------------------


def _filter_choices(response, title: str) -> list[str]:
    spec = next(spec for spec in response.context["cl"].filter_specs if spec.title == title)
    return [label for _, label in spec.lookup_choices]


def test_superuser_filters_name_each_facilitys_tenant(superuser_client, sydney, london, elsewhere):
    for url in (NOTES, PATIENTS):
        assert sorted(_filter_choices(superuser_client.get(url), "facility")) == [
            "Oak House (Elsewhere Care)",
            "Oak House (London Care)",
            "Oak House (Sydney Care)",
        ], url


def test_admin_of_two_tenants_gets_labels_for_those_two_only(
    two_tenant_admin_client, sydney, london, elsewhere
):
    response = two_tenant_admin_client.get(NOTES)
    assert sorted(_filter_choices(response, "facility")) == [
        "Oak House (London Care)",
        "Oak House (Sydney Care)",
    ]
    assert "Elsewhere Care" not in response.content.decode()


def test_admin_of_one_tenant_gets_plain_names(sydney_admin_client, sydney, london):
    response = sydney_admin_client.get(NOTES)
    assert _filter_choices(response, "facility") == ["Oak House"]
    assert "London Care" not in response.content.decode()


def test_form_choices_name_the_tenant_of_facilities_and_residents(superuser_client, sydney):
    form = superuser_client.get(f"{NOTES}add/").context["adminform"].form
    patient = sydney.patients.get()
    assert form.fields["patient"].label_from_instance(patient) == f"{patient} (Sydney Care)"
    assert (
        form.fields["facility"].label_from_instance(patient.facility) == "Oak House (Sydney Care)"
    )
    # The tenant field itself, and users (who have no single tenant), stay plain.
    assert form.fields["tenant"].label_from_instance(sydney) == "Sydney Care"


def test_the_selected_resident_of_a_change_form_names_the_tenant(superuser_client, sydney):
    note = sydney.care_notes.get()
    page = superuser_client.get(f"{NOTES}{note.pk}/change/").content.decode()
    assert f"{note.patient} (Sydney Care)</option>" in page


def _autocomplete(client, model: str, field: str, term: str = "") -> list[str]:
    params = {"app_label": "carenotes", "model_name": model, "field_name": field, "term": term}
    response = client.get(AUTOCOMPLETE, params)
    assert response.status_code == HTTPStatus.OK
    return sorted(row["text"] for row in response.json()["results"])


def test_autocomplete_names_the_tenant_for_users_who_see_several(
    superuser_client, two_tenant_admin_client, sydney_admin_client, sydney, london, elsewhere
):
    everyone = ["Oak House (Elsewhere Care)", "Oak House (London Care)", "Oak House (Sydney Care)"]
    assert _autocomplete(superuser_client, "carenote", "facility") == everyone
    assert _autocomplete(two_tenant_admin_client, "carenote", "facility") == everyone[1:]
    assert _autocomplete(sydney_admin_client, "carenote", "facility") == ["Oak House"]
    patients = _autocomplete(two_tenant_admin_client, "carenote", "patient", term="1")
    assert [text.rsplit(" (", 1)[1] for text in patients] == ["London Care)", "Sydney Care)"]


def test_labelled_autocomplete_costs_the_same_queries_at_any_size(superuser_client, sydney):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            _autocomplete(superuser_client, "carenote", "facility")
        return len(captured.captured_queries)

    queries()  # the session and permissions settle
    one = queries()
    FacilityFactory.create_batch(5, tenant=TenantFactory())
    assert queries() == one


def test_times_without_a_tenant_zone_are_labelled_utc(sydney_admin_client, sydney):
    membership = sydney.memberships.get()
    page = sydney_admin_client.get("/admin/tenants/membership/").content.decode()
    assert membership.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") in page
