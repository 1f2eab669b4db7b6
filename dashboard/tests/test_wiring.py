"""The dashboard's wiring: its vendored library, secure session cookies, the admin's link."""

import json
from http import HTTPStatus
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client

from tenants.tests.factories import UserFactory

pytestmark = pytest.mark.django_db
CHART_JS = "vendor/chart.js/chart.umd.min.js"


def test_chart_js_comes_from_the_npm_lock_and_is_served_by_the_app():
    root = Path(settings.BASE_DIR)
    package = json.loads((root / "package.json").read_text())
    lock = json.loads((root / "package-lock.json").read_text())
    version = package["dependencies"]["chart.js"]
    assert lock["packages"]["node_modules/chart.js"]["version"] == version
    found = finders.find(CHART_JS)
    assert found is not None, "run `make install` (npm ci) to fetch the dashboard's libraries"
    assert Path(found).read_text().startswith("/*!\n * Chart.js v" + version)


def test_the_dashboard_page_loads_chart_js_from_static(group, signed_in):
    body = signed_in(group.manager).get(f"/dashboard/{group.tenant.pk}/").content.decode()
    assert f'<script src="/static/{CHART_JS}" defer></script>' in body


def test_the_session_cookie_is_secure_unless_make_run_turns_it_off(group):
    # make run exports DJANGO_SECURE_COOKIES=0 (plain HTTP on loopback); nothing else does.
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE
    response = Client().post(
        "/accounts/login/",
        {"username": group.manager.username, "password": "correct-horse-battery"},
    )
    assert response.status_code == HTTPStatus.FOUND
    assert response.cookies[settings.SESSION_COOKIE_NAME]["secure"] is True
    assert response.cookies[settings.SESSION_COOKIE_NAME]["httponly"] is True


def test_the_admin_links_to_the_dashboard_for_those_who_may_see_it(group, signed_in):
    assert '<a href="/">View site</a>' in signed_in(group.admin).get("/admin/").content.decode()
    root = UserFactory(is_superuser=True, is_staff=True)
    assert '<a href="/">View site</a>' in signed_in(root).get("/admin/").content.decode()
    # Staff without a manager or admin membership get no link to a page that would refuse.
    staff = UserFactory(is_staff=True)
    index = signed_in(staff).get("/admin/")
    assert index.status_code == HTTPStatus.OK
    assert "View site" not in index.content.decode()
