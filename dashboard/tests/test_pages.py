"""The dashboard's pages: who may see them, what they show (the API's numbers), bad URLs."""

import json
import re
from http import HTTPStatus

import pytest
from django.test import Client

from dashboard.access import DASHBOARD_ROLES
from dashboard.csp import CSP_HEADER, DASHBOARD_CSP
from dashboard.selectors import HIGH_PRIORITY_KEYS
from dashboard.tests.factories import dashboard_group_create
from dashboard.views import DASHBOARD_REFRESH_SECONDS
from tenants.models import Role
from tenants.services import membership_grant
from tenants.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DATA_ELEMENT = re.compile(
    r'<script id="dashboard-data" type="application/json">(.*?)</script>', re.S
)


def page_data(response) -> dict:
    """Return the JSON the page hands its script (what the charts and tiles are drawn from)."""
    (raw,) = DATA_ELEMENT.findall(response.content.decode())
    return json.loads(raw)


def url(group, path: str = "", query: str = "") -> str:
    return f"/dashboard/{group.tenant.pk}/{path}" + (f"?{query}" if query else "")


def test_the_roles_that_see_the_dashboard():
    assert {Role.ADMIN, Role.MANAGER} == DASHBOARD_ROLES


def test_anonymous_callers_are_sent_to_the_login_page(group):
    response = Client().get(url(group, query="period=last_30_days"))
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"].startswith("/accounts/login/?next=/dashboard/")


def test_a_carer_gets_a_403_page_that_says_why(group, signed_in):
    response = signed_in(group.carer).get(url(group))
    assert response.status_code == HTTPStatus.FORBIDDEN
    body = response.content.decode()
    assert "managers and admins" in body and "carer" in body
    assert "dashboard-data" not in body


def test_a_member_of_another_tenant_gets_404_and_nothing_of_it(group, signed_in):
    other = dashboard_group_create(tag="Zephyr")
    response = signed_in(other.manager).get(url(group))
    assert response.status_code == HTTPStatus.NOT_FOUND
    body = response.content.decode()
    for marker in (group.tenant.name, group.north.name, "Ann"):
        assert marker not in body


@pytest.mark.parametrize("who", ["manager", "superuser"])
@pytest.mark.parametrize("tenant_id", ["999999", "9223372036854775808", "0"])
def test_a_tenant_that_does_not_exist_gets_the_same_404(group, signed_in, who, tenant_id):
    user = group.manager if who == "manager" else UserFactory(is_superuser=True)
    response = signed_in(user).get(f"/dashboard/{tenant_id}/")
    assert response.status_code == HTTPStatus.NOT_FOUND


@pytest.mark.parametrize("who", ["manager", "admin"])
def test_managers_and_admins_see_their_dashboard_in_the_tenant_time_zone(group, signed_in, who):
    response = signed_in(getattr(group, who)).get(url(group))
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert group.tenant.name in body
    assert 'id="tenant-timezone">Europe/London<' in body
    assert page_data(response)["timezone"] == "Europe/London"


def test_the_admin_link_is_for_tenant_admins_only(group, signed_in):
    assert 'id="admin-link"' in signed_in(group.admin).get(url(group)).content.decode()
    assert 'id="admin-link"' not in signed_in(group.manager).get(url(group)).content.decode()


def test_superusers_may_open_any_tenant(group, signed_in):
    root = UserFactory(is_superuser=True, is_staff=True)
    client = signed_in(root)
    assert client.get(url(group)).status_code == HTTPStatus.OK
    picker = client.get("/dashboard/")
    assert picker.status_code == HTTPStatus.OK
    assert group.tenant.name in picker.content.decode()


def test_one_tenant_goes_straight_to_it_several_are_picked(group, signed_in):
    response = signed_in(group.manager).get("/dashboard/")
    assert (response.status_code, response["Location"]) == (HTTPStatus.FOUND, url(group))
    other = dashboard_group_create(tag="Zephyr")
    membership_grant(user=group.manager, tenant=other.tenant, role=Role.MANAGER)
    picker = signed_in(group.manager).get("/dashboard/")
    assert picker.status_code == HTTPStatus.OK
    body = picker.content.decode()
    assert url(group) in body and url(other) in body


def test_the_picker_leaves_out_tenants_where_the_user_is_a_carer(group, signed_in):
    other = dashboard_group_create(tag="Zephyr")
    membership_grant(user=group.manager, tenant=other.tenant, role=Role.CARER)
    response = signed_in(group.manager).get("/dashboard/")
    assert (response.status_code, response["Location"]) == (HTTPStatus.FOUND, url(group))


def test_a_user_who_is_only_a_carer_gets_a_403_picker(group, signed_in):
    response = signed_in(group.carer).get("/dashboard/")
    assert response.status_code == HTTPStatus.FORBIDDEN


def test_the_page_numbers_are_the_api_answer_for_the_same_scope(group, signed_in, token_client):
    query = f"period=last_30_days&facility_ids={group.north.pk}"
    data = page_data(signed_in(group.manager).get(url(group, query=query)))
    api = token_client(group.manager).get(f"/api/care-stats/?tenant_id={group.tenant.pk}&{query}")
    assert api.status_code == HTTPStatus.OK
    assert data["api"] == api.json()
    tiles = {tile["key"]: tile["value"] for tile in data["tiles"]}
    answer = api.json()
    assert tiles == {
        "total_notes": answer["total_notes"],
        "patients": answer["patients"],
        "avg_notes_per_patient": answer["avg_notes_per_patient"],
        "high_priority": sum(answer["by_priority"][key] for key in HIGH_PRIORITY_KEYS),
    }
    # North in the last 30 days: Ann's two notes today, Bob's two (2 and 20 days ago).
    assert (answer["total_notes"], answer["patients"]) == (4, 2)
    trend = data["charts"]["trend"]
    assert trend["labels"] == [day["date"] for day in answer["by_day"]]
    assert data["charts"]["priority"]["data"] == list(answer["by_priority"].values())
    assert data["charts"]["facility"]["labels"] == [group.north.name]


def test_tiles_compare_with_the_previous_period_of_the_same_length(group, signed_in, token_client):
    data = page_data(signed_in(group.manager).get(url(group, query="period=last_30_days")))
    previous = token_client(group.manager).get(
        f"/api/care-stats/?tenant_id={group.tenant.pk}"
        f"&date_from={data['previous']['date_from']}&date_to={data['previous']['date_to']}"
    )
    assert data["previous"] == previous.json()
    tiles = {tile["key"]: tile for tile in data["tiles"]}
    # Five notes in the last 30 days; one (45 days ago, priority 4) in the 30 before.
    assert tiles["total_notes"] | {"label": None} == {
        "key": "total_notes",
        "label": None,
        "value": 5,
        "previous": 1,
        "change": 4,
        "change_percent": 400.0,
    }
    assert (tiles["high_priority"]["value"], tiles["high_priority"]["previous"]) == (2, 1)


def test_the_choice_lives_in_the_url(group, signed_in):
    query = f"period=custom&date_from=2025-01-01&date_to=2025-01-31&facility_ids={group.south.pk}"
    response = signed_in(group.manager).get(url(group, query=query + "&hours=48"))
    data = page_data(response)
    assert (data["date_from"], data["date_to"], data["facility_ids"]) == (
        "2025-01-01",
        "2025-01-31",
        [group.south.pk],
    )
    body = response.content.decode()
    assert f'<option value="{group.south.pk}" selected>' in body
    assert 'value="48"' in body
    # Export links carry the same scope.
    assert "export/counts.csv?period=custom&amp;date_from=2025-01-01" in body


def test_a_select_multiple_sends_facilities_one_by_one(group, signed_in):
    query = f"facility_ids={group.north.pk}&facility_ids={group.south.pk}"
    data = page_data(signed_in(group.manager).get(url(group, query=query)))
    assert data["facility_ids"] == sorted([group.north.pk, group.south.pk])


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("period=fortnight", "period"),
        ("period=custom&date_from=2025-01-01", "date_to"),
        ("period=custom&date_from=2025-02-30&date_to=2025-03-01", "date_from"),
        ("period=custom&date_from=2025-03-02&date_to=2025-03-01", "date_to"),
        ("period=custom&date_from=2025-01-01&date_to=2025-04-15", "date_to"),  # 105 days
        ("period=custom&date_from=1999-12-31&date_to=2000-01-02", "date_from"),
        ("facility_ids=abc", "facility_ids"),
        ("facility_ids=99999999", "facility_ids"),
        ("hours=0", "hours"),
        ("hours=169", "hours"),
        ("hours=%EF%BC%91%EF%BC%92", "hours"),  # full-width digits
        ("period=today&period=yesterday", "period"),
        ("colour=blue", "colour"),
    ],
)
def test_bad_parameters_are_a_400_page_naming_them(group, signed_in, query, param):
    response = signed_in(group.manager).get(url(group, query=query))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert f'<code class="param">{param}</code>' in response.content.decode()


def test_another_tenants_facility_is_refused_without_saying_whose(group, signed_in):
    other = dashboard_group_create(tag="Zephyr")
    response = signed_in(group.manager).get(url(group, query=f"facility_ids={other.north.pk}"))
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert other.north.name not in response.content.decode()


@pytest.mark.parametrize("path", ["", "attention/", "high-priority/"])
def test_pages_send_the_csp_and_have_no_inline_script_or_style(group, signed_in, path):
    response = signed_in(group.admin).get(url(group, path))
    assert response.status_code == HTTPStatus.OK
    assert response[CSP_HEADER] == DASHBOARD_CSP
    assert "'unsafe-inline'" not in DASHBOARD_CSP
    body = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", body):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert "<style" not in body
    assert not re.search(r"\sstyle=", body)
    assert not re.search(r"\son[a-z]+=", body)


@pytest.mark.parametrize("path", ["/accounts/login/", "/dashboard/999/"])
def test_sign_in_and_error_pages_send_the_csp_too(signed_in, group, path):
    response = signed_in(group.manager).get(path)
    assert response[CSP_HEADER] == DASHBOARD_CSP


def test_every_form_carries_a_csrf_token(group, signed_in):
    client = Client(enforce_csrf_checks=True)
    login = client.get("/accounts/login/").content.decode()
    assert 'name="csrfmiddlewaretoken"' in login
    refused = client.post("/accounts/login/", {"username": "x", "password": "y"})
    assert refused.status_code == HTTPStatus.FORBIDDEN
    page = signed_in(group.manager).get(url(group)).content.decode()
    for form in re.findall(r"<form\b[^>]*method=\"post\".*?</form>", page, re.S):
        assert 'name="csrfmiddlewaretoken"' in form


def test_sign_in_sign_out_and_password_change(group):
    client = Client()
    signed = client.post(
        "/accounts/login/",
        {"username": group.manager.username, "password": "correct-horse-battery"},
    )
    assert (signed.status_code, signed["Location"]) == (HTTPStatus.FOUND, "/dashboard/")
    assert client.get("/accounts/password_change/").status_code == HTTPStatus.OK
    changed = client.post(
        "/accounts/password_change/",
        {
            "old_password": "correct-horse-battery",
            "new_password1": "a-new-long-passphrase-42",
            "new_password2": "a-new-long-passphrase-42",
        },
    )
    assert changed["Location"] == "/accounts/password_change/done/"
    out = client.post("/accounts/logout/")
    assert out["Location"] == "/accounts/login/"
    assert client.get(url(group)).status_code == HTTPStatus.FOUND


def test_the_attention_list_and_feed_on_the_page(group, signed_in):
    response = signed_in(group.admin).get(url(group, query="period=last_30_days"))
    data = page_data(response)
    assert data["attention_patient_ids"] == [
        group.never_noted.pk,  # never noted: first
        group.south_resident.pk,  # last note 3 days ago
        group.noted_long_ago.pk,  # last note 2 days ago
    ]
    body = response.content.decode()
    assert "never" in body
    # Priority 4 and 5 notes of the range, newest first, linked to the admin for an admin.
    feed = re.findall(r'data-note-id="(\d+)"', body)
    assert feed == [str(group.notes[0].pk), str(group.notes[2].pk)]
    assert f"/admin/carenotes/carenote/{group.notes[0].pk}/change/" in body


def test_managers_get_no_admin_links_in_the_feed(group, signed_in):
    body = signed_in(group.manager).get(url(group, query="period=last_30_days")).content.decode()
    assert "/admin/carenotes/carenote/" not in body


def test_times_are_shown_in_the_tenant_time_zone(db, signed_in):
    from zoneinfo import ZoneInfo

    group = dashboard_group_create(tag="Hudson", timezone_name="America/New_York")
    response = signed_in(group.admin).get(url(group, query="period=last_7_days"))
    local = group.notes[0].created_at.astimezone(ZoneInfo("America/New_York"))
    body = response.content.decode()
    assert 'id="tenant-timezone">America/New_York<' in body
    assert f'<time datetime="{local.isoformat(timespec="microseconds")}">' in body
    assert local.strftime("%Y-%m-%d %H:%M") in body


def test_a_refresh_is_answered_from_the_stats_cache(group, signed_in, monkeypatch):
    from stats import cache

    computed = []
    real = cache.care_stats_range_get

    def counting(**kwargs):
        computed.append((kwargs["date_from"], kwargs["date_to"]))
        return real(**kwargs)

    monkeypatch.setattr(cache, "care_stats_range_get", counting)
    client = signed_in(group.manager)
    first = page_data(client.get(url(group, query="period=last_30_days")))
    assert len(computed) == 2  # the period and the one before it
    again = page_data(client.get(url(group, query="period=last_30_days")))
    assert len(computed) == 2  # the page's refresh computed nothing
    assert again["api"] == first["api"]
    assert first["refresh_seconds"] == DASHBOARD_REFRESH_SECONDS == 60
