"""A real browser (Debian's chromium via Playwright) uses the admin as a tenant admin and as
a superuser, follows "View site", and opens the Swagger UI."""

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.tests.factories import FacilityFactory, TenantFactory, UserFactory, tenant_admin_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
REPORTS_DIR = Path(__file__).resolve().parents[1] / "reports"
SCREENSHOT = REPORTS_DIR / "admin-notes-changelist.png"
SUPERUSER_SCREENSHOT = REPORTS_DIR / "admin-notes-changelist-superuser.png"
PASSWORD = "correct-horse-battery"  # UserFactory's password
TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1400, "height": 1000}
ADMIN_CSS_LOADED = """[...document.styleSheets].some(
    (sheet) => (sheet.href || "").endsWith("admin/css/base.css") && sheet.cssRules.length > 0
)"""
# How far the result table sticks out of its box (it scrolls sideways when it does).
TABLE_OVERFLOW_PX = """() => {
    const box = document.querySelector("#changelist-form .results");
    return box.scrollWidth - box.clientWidth;
}"""
# 09:15 in Sydney on 10 March 2025 (daylight saving time: AEDT, UTC+11).
SYDNEY_NOTE_AT = datetime(2025, 3, 9, 22, 15, tzinfo=UTC)
SYDNEY_NOTE_LOCAL = "2025-03-10 09:15 AEDT"


@dataclass
class World:
    admin_username: str
    superuser_username: str
    tenant_name: str
    other_tenant_name: str


@pytest.fixture
def world(transactional_db) -> World:
    """Two homes of a Sydney tenant and one of another tenant, each with a patient and a
    note; names as long as the demo data's (seed_notes), so the columns are realistic."""
    sydney = TenantFactory(name="Harbour View Care", timezone="Australia/Sydney")
    ours = PatientFactory(
        reference="OURS-P1",
        display_name="Dorothy Williams",
        facility=FacilityFactory(tenant=sydney, name="Harbour Gardens 1"),
    )
    second_home = FacilityFactory(tenant=sydney, name="Harbour Manor 2")
    elsewhere = PatientFactory(
        reference="OURS-P2", display_name="Kenneth Edwards", facility=second_home
    )
    theirs = PatientFactory(
        reference="THEIRS-P1",
        facility=FacilityFactory(
            tenant=TenantFactory(name="Meadowbank Living"), name="Harbour Gardens 1"
        ),
    )
    for patient in (ours, elsewhere, theirs):
        author = UserFactory(username=f"s1-t{patient.tenant_id}-carer{patient.pk:02d}")
        CareNoteFactory(patient=patient, author=author, created_at=SYDNEY_NOTE_AT)
    admin = tenant_admin_create(tenant=sydney, username="harbour-admin")
    root = UserFactory(username="s1-superuser", is_superuser=True, is_staff=True)
    return World(
        admin_username=admin.username,
        superuser_username=root.username,
        tenant_name=sydney.name,
        other_tenant_name=theirs.tenant.name,
    )


@pytest.fixture
def browser(world):
    """A chromium browser. Depends on ``world``: while Playwright's sync API runs, this
    thread counts as async and the ORM refuses to run, so all data exists before it starts."""
    if CHROMIUM is None:
        pytest.skip("no `chromium` binary on PATH (CI installs Debian's chromium in .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def _signed_in_page(browser, base_url: str, username: str):
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Site administration" in page.title()
    return page


@pytest.fixture
def plain_http_live_server(settings, transactional_db):
    """A live server (pytest-django's) started after the HTTPS-only settings are relaxed.

    It speaks plain HTTP: secure-only cookies would never be sent back, and the session
    ``live_server`` fixture starts before per-test settings apply, so its SecurityMiddleware
    would already have read SECURE_SSL_REDIRECT and answer with redirects to https.
    """
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    server = LiveServer("localhost")
    yield server
    server.stop()


def _assert_every_column_fits(page) -> None:
    assert page.evaluate(TABLE_OVERFLOW_PX) <= 0, "the result table scrolls sideways"
    author = page.locator("#result_list thead th", has_text="Author")
    box = author.bounding_box()
    assert box is not None and box["x"] + box["width"] <= VIEWPORT["width"]


def test_tenant_admin_filters_notes_in_the_admin_and_swagger_ui_renders(
    plain_http_live_server, world, browser
):
    base_url = plain_http_live_server.url
    page = _signed_in_page(browser, base_url, world.admin_username)

    page.goto(f"{base_url}/admin/carenotes/carenote/")
    assert page.locator("#result_list").is_visible()
    assert page.evaluate(ADMIN_CSS_LOADED), "the admin stylesheet did not load"
    listed = page.locator("#result_list").inner_text()
    assert "OURS-P1" in listed and "OURS-P2" in listed
    assert "THEIRS-P1" not in page.content()
    assert world.other_tenant_name not in page.content()
    # The tenant's local time, with its zone, not unlabelled UTC.
    assert SYDNEY_NOTE_LOCAL in listed
    _assert_every_column_fits(page)

    page.locator("#changelist-filter a", has_text="Harbour Gardens 1").click()
    page.wait_for_url("**facility__id__exact=*")
    listed = page.locator("#result_list").inner_text()
    assert "OURS-P1" in listed
    assert "OURS-P2" not in listed
    assert "THEIRS-P1" not in page.content()
    REPORTS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 0

    # "View site" leads to the tenant's dashboard (the admin's session signs in there too).
    page.click("#user-tools a:has-text('View site')")
    page.wait_for_selector("#dashboard-data", state="attached")
    assert "/dashboard/" in page.url
    assert world.tenant_name in page.content()
    assert world.other_tenant_name not in page.content()

    page.goto(f"{base_url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock")
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/notes/" in operations
    assert "/api/notes/{note_id}/" in operations
    assert "/api/residents/" in operations
    assert "/api/residents/{patient_id}/" in operations
    assert "/api/care-stats/" in operations
    assert "/api/residents/attention/" in operations


def test_superuser_sees_facilities_named_with_their_tenant_and_every_column(
    plain_http_live_server, world, browser
):
    base_url = plain_http_live_server.url
    page = _signed_in_page(browser, base_url, world.superuser_username)

    page.goto(f"{base_url}/admin/carenotes/carenote/")
    filters = page.locator("#changelist-filter").inner_text()
    # Two tenants each have a "Harbour Gardens 1": the filter says whose is whose.
    assert f"Harbour Gardens 1 ({world.tenant_name})" in filters
    assert f"Harbour Gardens 1 ({world.other_tenant_name})" in filters
    _assert_every_column_fits(page)
    REPORTS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(SUPERUSER_SCREENSHOT), full_page=True)
