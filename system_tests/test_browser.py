"""A real browser (Debian's chromium via Playwright) uses the admin as a tenant admin and
opens the Swagger UI."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.utils import timezone
from pytest_django.live_server_helper import LiveServer

from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.tests.factories import FacilityFactory, tenant_admin_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
REPORTS_DIR = Path(__file__).resolve().parents[1] / "reports"
SCREENSHOT = REPORTS_DIR / "admin-notes-changelist.png"
PASSWORD = "correct-horse-battery"  # UserFactory's password
TIMEOUT_MS = 30_000
ADMIN_CSS_LOADED = """[...document.styleSheets].some(
    (sheet) => (sheet.href || "").endsWith("admin/css/base.css") && sheet.cssRules.length > 0
)"""


@dataclass
class World:
    admin_username: str


@pytest.fixture
def world(transactional_db) -> World:
    """Two homes of our tenant and one of another tenant, each with a patient and a note."""
    ours = PatientFactory(reference="OURS-P1", facility__name="Oak House")
    second_home = FacilityFactory(tenant=ours.tenant, name="Elm House")
    elsewhere = PatientFactory(reference="OURS-P2", facility=second_home)
    theirs = PatientFactory(reference="THEIRS-P1", facility__name="Pine House")
    now = timezone.now()
    for patient in (ours, elsewhere, theirs):
        CareNoteFactory(patient=patient, created_at=now)
    admin = tenant_admin_create(tenant=ours.tenant, username="oak-admin")
    return World(admin_username=admin.username)


@pytest.fixture
def browser_page(world):
    """A chromium page. Depends on ``world``: while Playwright's sync API runs, this thread
    counts as async and the ORM refuses to run, so all data exists before it starts."""
    if CHROMIUM is None:
        pytest.skip("no `chromium` binary on PATH (CI installs Debian's chromium in .ci/run)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        yield page
        browser.close()


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


def test_tenant_admin_filters_notes_in_the_admin_and_swagger_ui_renders(
    plain_http_live_server, world, browser_page
):
    base_url = plain_http_live_server.url
    page = browser_page

    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", world.admin_username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "Site administration" in page.title()

    page.goto(f"{base_url}/admin/carenotes/carenote/")
    assert page.locator("#result_list").is_visible()
    assert page.evaluate(ADMIN_CSS_LOADED), "the admin stylesheet did not load"
    listed = page.locator("#result_list").inner_text()
    assert "OURS-P1" in listed and "OURS-P2" in listed
    assert "THEIRS-P1" not in page.content()
    assert "Pine House" not in page.content()

    page.locator("#changelist-filter a", has_text="Oak House").click()
    page.wait_for_url("**facility__id__exact=*")
    listed = page.locator("#result_list").inner_text()
    assert "OURS-P1" in listed
    assert "OURS-P2" not in listed
    assert "THEIRS-P1" not in page.content()
    REPORTS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 0

    page.goto(f"{base_url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock")
    operations = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/notes/" in operations
    assert "/api/notes/{note_id}/" in operations
    assert "/api/care-stats/" in operations
