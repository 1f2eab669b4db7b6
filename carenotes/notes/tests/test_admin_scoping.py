"""The Django admin is tenant-scoped for tenant admins, for every model; superusers see all."""

from dataclasses import dataclass
from http import HTTPStatus

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from carenotes.notes.models import CareNote, Patient
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.models import ApiToken, Facility, Membership, Tenant
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory, UserFactory, tenant_admin_create

pytestmark = pytest.mark.django_db

User = get_user_model()


@dataclass
class Side:
    """One tenant's rows, as seen from the admin."""

    tenant: Tenant
    facility: Facility
    patient: Patient
    note: CareNote
    carer: User
    membership: Membership
    admin: User


def _side(name: str) -> Side:
    note = CareNoteFactory(
        patient__reference=f"{name}-REF", patient__facility__tenant__name=f"{name} Care"
    )
    membership = MembershipFactory(tenant=note.tenant, role="carer", user=note.author)
    return Side(
        tenant=note.tenant,
        facility=note.facility,
        patient=note.patient,
        note=note,
        carer=note.author,
        membership=membership,
        admin=tenant_admin_create(tenant=note.tenant, username=f"{name.lower()}-admin"),
    )


@pytest.fixture
def ours() -> Side:
    return _side("Ours")


@pytest.fixture
def theirs() -> Side:
    return _side("Theirs")


@pytest.fixture
def tenant_admin_client(ours) -> Client:
    client = Client()
    client.force_login(ours.admin)
    return client


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    return client


# (admin URL part, Side attribute holding that model's row)
SCOPED_MODELS = [
    ("tenants/tenant", "tenant"),
    ("tenants/facility", "facility"),
    ("tenants/membership", "membership"),
    ("carenotes/patient", "patient"),
    ("carenotes/carenote", "note"),
    ("auth/user", "carer"),
]


def _listed_ids(response) -> set[int]:
    assert response.status_code == HTTPStatus.OK
    return {obj.pk for obj in response.context["cl"].result_list}


@pytest.mark.parametrize(("url", "attr"), SCOPED_MODELS)
def test_tenant_admin_lists_only_their_tenants_rows(tenant_admin_client, ours, theirs, url, attr):
    listed = _listed_ids(tenant_admin_client.get(f"/admin/{url}/"))
    assert getattr(ours, attr).pk in listed
    assert getattr(theirs, attr).pk not in listed


@pytest.mark.parametrize(("url", "attr"), SCOPED_MODELS)
def test_superuser_lists_every_tenants_rows(superuser_client, ours, theirs, url, attr):
    listed = _listed_ids(superuser_client.get(f"/admin/{url}/"))
    assert {getattr(ours, attr).pk, getattr(theirs, attr).pk} <= listed


@pytest.mark.parametrize(("url", "attr"), SCOPED_MODELS)
@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_crafted_url_to_another_tenants_object_is_404(
    tenant_admin_client, ours, theirs, url, attr, view
):
    response = tenant_admin_client.get(f"/admin/{url}/{getattr(theirs, attr).pk}/{view}/")
    assert response.status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize(("url", "attr"), SCOPED_MODELS)
def test_tenant_admin_opens_their_own_objects(tenant_admin_client, ours, url, attr):
    response = tenant_admin_client.get(f"/admin/{url}/{getattr(ours, attr).pk}/change/")
    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize(("url", "attr"), SCOPED_MODELS)
def test_superuser_opens_any_tenants_objects(superuser_client, theirs, url, attr):
    response = superuser_client.get(f"/admin/{url}/{getattr(theirs, attr).pk}/change/")
    assert response.status_code == HTTPStatus.OK


@pytest.mark.parametrize(
    ("url", "fields"),
    [
        ("tenants/facility", {"tenant": "tenant"}),
        ("tenants/membership", {"tenant": "tenant", "user": "carer"}),
        ("carenotes/patient", {"tenant": "tenant", "facility": "facility"}),
        (
            "carenotes/carenote",
            {"tenant": "tenant", "facility": "facility", "patient": "patient", "author": "carer"},
        ),
    ],
)
def test_foreign_key_choices_are_scoped(tenant_admin_client, ours, theirs, url, fields):
    form = tenant_admin_client.get(f"/admin/{url}/add/").context["adminform"].form
    for field, attr in fields.items():
        choices = set(form.fields[field].queryset.values_list("pk", flat=True))
        assert getattr(ours, attr).pk in choices, field
        assert getattr(theirs, attr).pk not in choices, field


@pytest.mark.parametrize(
    ("app_model", "field", "attr"),
    [
        ("carenotes/carenote", "patient", "patient"),
        ("carenotes/carenote", "facility", "facility"),
        ("carenotes/carenote", "author", "carer"),
        ("carenotes/patient", "tenant", "tenant"),
        ("tenants/membership", "user", "carer"),
    ],
)
def test_autocomplete_results_are_scoped(tenant_admin_client, ours, theirs, app_model, field, attr):
    app_label, model_name = app_model.split("/")
    params = {"app_label": app_label, "model_name": model_name, "field_name": field, "term": ""}
    response = tenant_admin_client.get("/admin/autocomplete/", params)
    assert response.status_code == HTTPStatus.OK
    ids = {int(row["id"]) for row in response.json()["results"]}
    assert str(getattr(ours, attr).pk) in {str(i) for i in ids}
    assert getattr(theirs, attr).pk not in ids


def test_changelist_filter_choices_name_no_other_tenant(tenant_admin_client, ours, theirs):
    response = tenant_admin_client.get("/admin/carenotes/carenote/")
    page = response.content.decode()
    assert ours.facility.name in page
    assert theirs.facility.name not in page
    assert theirs.tenant.name not in page


def test_filtering_by_another_tenants_facility_shows_nothing(tenant_admin_client, ours, theirs):
    response = tenant_admin_client.get(
        "/admin/carenotes/carenote/", {"facility__id__exact": theirs.facility.pk}
    )
    assert _listed_ids(response) == set()


def test_tenant_admin_cannot_grant_membership_in_another_tenant(tenant_admin_client, ours, theirs):
    response = tenant_admin_client.post(
        "/admin/tenants/membership/add/",
        {"user": ours.admin.pk, "tenant": theirs.tenant.pk, "role": "admin"},
    )
    assert response.status_code == HTTPStatus.OK  # the form again, with an error
    assert "tenant" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=ours.admin, tenant=theirs.tenant).exists()


def test_tenant_admin_cannot_add_an_outsider_to_their_tenant(tenant_admin_client, ours, theirs):
    response = tenant_admin_client.post(
        "/admin/tenants/membership/add/",
        {"user": theirs.carer.pk, "tenant": ours.tenant.pk, "role": "carer"},
    )
    assert "user" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=theirs.carer, tenant=ours.tenant).exists()


def test_granting_admin_in_the_admin_makes_the_user_staff(tenant_admin_client, ours):
    membership = ours.membership
    response = tenant_admin_client.post(
        f"/admin/tenants/membership/{membership.pk}/change/", {"role": "admin"}
    )
    assert response.status_code == HTTPStatus.FOUND
    ours.carer.refresh_from_db()
    assert ours.carer.is_staff


def test_revoking_a_membership_in_the_admin_removes_staff(superuser_client, ours):
    admin_membership = Membership.objects.get(user=ours.admin, tenant=ours.tenant)
    response = superuser_client.post(
        f"/admin/tenants/membership/{admin_membership.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == HTTPStatus.FOUND
    ours.admin.refresh_from_db()
    assert not ours.admin.is_staff


def test_tenant_admin_cannot_create_tenants_or_see_api_tokens(tenant_admin_client, ours):
    api_token_create(user=ours.carer)
    assert tenant_admin_client.get("/admin/tenants/tenant/add/").status_code == 403
    assert tenant_admin_client.get("/admin/tenants/apitoken/").status_code == 403
    token = ApiToken.objects.get()
    assert tenant_admin_client.get(f"/admin/tenants/apitoken/{token.pk}/change/").status_code == 403


def test_tenant_admin_sees_users_read_only(tenant_admin_client, ours):
    url = f"/admin/auth/user/{ours.carer.pk}/"
    response = tenant_admin_client.post(f"{url}change/", {"username": "renamed"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert tenant_admin_client.get(f"{url}password/").status_code == HTTPStatus.FORBIDDEN
    ours.carer.refresh_from_db()
    assert ours.carer.username != "renamed"


def test_tenant_admin_edits_their_facility(tenant_admin_client, ours):
    response = tenant_admin_client.post(
        f"/admin/tenants/facility/{ours.facility.pk}/change/",
        {"tenant": ours.tenant.pk, "name": "Renamed Home"},
    )
    assert response.status_code == HTTPStatus.FOUND
    ours.facility.refresh_from_db()
    assert ours.facility.name == "Renamed Home"


def test_patient_moved_to_another_tenants_facility_is_form_error(superuser_client, ours, theirs):
    response = superuser_client.post(
        f"/admin/carenotes/patient/{ours.patient.pk}/change/",
        {
            "tenant": ours.tenant.pk,
            "facility": theirs.facility.pk,
            "reference": ours.patient.reference,
            "display_name": "Someone",
        },
    )
    assert response.status_code == HTTPStatus.OK
    assert response.context["adminform"].form.errors == {
        "facility": ["This facility belongs to another tenant."]
    }


def test_members_who_are_not_admins_cannot_log_in_to_the_admin(ours):
    client = Client()
    client.force_login(ours.carer)
    response = client.get("/admin/")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/admin/login/")


def test_patients_of_a_second_facility_stay_visible(tenant_admin_client, ours):
    second = PatientFactory(facility__tenant=ours.tenant)
    listed = _listed_ids(tenant_admin_client.get("/admin/carenotes/patient/"))
    assert {ours.patient.pk, second.pk} <= listed
