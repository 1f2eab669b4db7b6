"""A real browser (Debian's chromium via Playwright) uses the managers' dashboard.

A manager of tenant A signs in, chooses "last 30 days" and one facility; the tiles, each
chart's data (read from the Chart.js instances) and the CSV download equal the API's answer
for the same scope; a note posted for a resident of the attention list takes them off it at
the next refresh; a manager of tenant B sees nothing of A. Screenshots at 1280x800 and 768 px
go to reports/, and the load time (navigation start to charts drawn) is reported.

``test_load_time_at_scale`` measures a running server instead (``make run``-style, e.g. with
1M seeded notes): set DASHBOARD_LOAD_URL and DASHBOARD_LOAD_CREDENTIALS (the seed's
credentials file); it is skipped otherwise.
"""

import csv
import io
import json
import os
import shutil
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_django.live_server_helper import LiveServer

from dashboard.tests.factories import PASSWORD, dashboard_group_create
from tenants.services import api_token_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
REPORTS_DIR = Path(__file__).resolve().parents[1] / "reports"
TIMEOUT_MS = 30_000
WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 768, "height": 1024}
LOAD_TARGET_MS = 1000
LOAD_RUNS = 5
CHART_DATA = """() => Object.fromEntries(Object.entries(window.carenotesDashboard.charts).map(
    ([name, chart]) => [name, {
        labels: chart.data.labels,
        series: chart.data.datasets.map((d) => d.data),
        drawn: chart.canvas.width > 0 && window.Chart.getChart(chart.canvas) === chart,
    }]))"""
LOAD_TIME = """() => {
    const mark = performance.getEntriesByName("charts-drawn")[0];
    return mark ? mark.startTime : null;
}"""


@dataclass
class World:
    tenant_id: int
    north_id: int
    north_name: str
    never_noted_id: int
    manager: str
    manager_token: str
    carer_token: str
    other_manager: str
    other_markers: list[str]
    markers: list[str]


@pytest.fixture
def world(transactional_db) -> World:
    """Tenants A and B with staff, residents and notes; all made before the browser starts
    (while Playwright's sync API runs, the ORM refuses to run in this thread)."""
    a = dashboard_group_create(tag="Oakridge")
    b = dashboard_group_create(tag="Zephyr", timezone_name="America/New_York")
    _, manager_token = api_token_create(user=a.manager, name="browser test")
    _, carer_token = api_token_create(user=a.carer, name="browser test")
    return World(
        tenant_id=a.tenant.pk,
        north_id=a.north.pk,
        north_name=a.north.name,
        never_noted_id=a.never_noted.pk,
        manager=a.manager.username,
        manager_token=manager_token,
        carer_token=carer_token,
        other_manager=b.manager.username,
        markers=[a.tenant.name, a.north.name, a.south.name, a.noted_today.reference],
        other_markers=[b.tenant.name, b.north.name, b.south.name, b.noted_today.reference],
    )


@pytest.fixture
def plain_http_live_server(settings, transactional_db):
    """A live server started after the HTTPS-only settings are relaxed (see test_browser)."""
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    server = LiveServer("localhost")
    yield server
    server.stop()


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("no `chromium` binary on PATH: apt-get install chromium (Debian's package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def _new_page(browser, viewport=WIDE):
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.csp_errors = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and page.csp_errors.append(message.text)
        ),
    )
    return page


def _sign_in(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def _wait_for_charts(page, at_least: int = 1) -> None:
    page.wait_for_function(f"() => Number(document.body.dataset.chartsDrawn || 0) >= {at_least}")


def _api(page, base_url: str, token: str, path: str) -> dict:
    response = page.request.get(f"{base_url}{path}", headers={"Authorization": f"Token {token}"})
    assert response.status == 200, response.text()
    return response.json()


def _assert_charts_are_the_api(charts: dict, answer: dict, north_name: str) -> None:
    assert all(chart["drawn"] for chart in charts.values()), charts
    assert charts["trend"]["labels"] == [day["date"] for day in answer["by_day"]]
    assert charts["trend"]["series"] == [
        [day["by_category"][category] for day in answer["by_day"]]
        for category in ("medication", "observation", "treatment")
    ]
    assert charts["priority"]["series"] == [list(answer["by_priority"].values())]
    assert charts["facility"]["labels"] == [north_name]
    assert charts["facility"]["series"] == [list(answer["by_facility"].values())]


def _assert_csv_is_the_api(text: str, answer: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(text)))
    per_day = Counter()
    for row in rows:
        per_day[row["date"], row["category"], row["priority"]] += int(row["notes"])
    for day in answer["by_day"]:
        for category, notes in day["by_category"].items():
            assert (
                sum(n for (d, c, _), n in per_day.items() if (d, c) == (day["date"], category))
                == notes
            )
        for priority, notes in day["by_priority"].items():
            assert (
                sum(n for (d, _, p), n in per_day.items() if (d, p) == (day["date"], priority))
                == notes
            )
    assert sum(per_day.values()) == answer["total_notes"]


def _report(name: str, data: dict) -> None:
    REPORTS_DIR.mkdir(exist_ok=True)
    (REPORTS_DIR / name).write_text(json.dumps(data, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(data)}")


def test_a_manager_reads_the_dashboard_and_it_is_the_api(plain_http_live_server, world, browser):
    base_url = plain_http_live_server.url
    page = _new_page(browser)
    _sign_in(page, base_url, world.manager)
    assert page.url.endswith(f"/dashboard/{world.tenant_id}/")
    _wait_for_charts(page)

    # A preset fixes the dates; "Custom range" lets the reader type them.
    assert page.is_disabled("#date_from") and page.is_disabled("#date_to")
    page.select_option("#period", "custom")
    assert page.is_enabled("#date_from") and page.is_enabled("#date_to")
    page.select_option("#period", "last_30_days")
    page.select_option("#facility_ids", [str(world.north_id)])
    page.click("#controls button[type=submit]")
    page.wait_for_url(f"**/dashboard/{world.tenant_id}/?period=last_30_days*")
    assert f"facility_ids={world.north_id}" in page.url
    _wait_for_charts(page)
    load_ms = page.evaluate(LOAD_TIME)

    query = f"tenant_id={world.tenant_id}&period=last_30_days&facility_ids={world.north_id}"
    answer = _api(page, base_url, world.manager_token, f"/api/care-stats/?{query}")
    data = json.loads(page.text_content("#dashboard-data"))
    assert data["api"] == answer
    tiles = {
        key: page.get_attribute(f'.tile[data-tile="{key}"] .value', "data-value")
        for key in ("total_notes", "patients", "avg_notes_per_patient", "high_priority")
    }
    assert tiles == {
        "total_notes": str(answer["total_notes"]),
        "patients": str(answer["patients"]),
        "avg_notes_per_patient": str(answer["avg_notes_per_patient"]),
        "high_priority": str(answer["by_priority"]["4"] + answer["by_priority"]["5"]),
    }
    assert answer["total_notes"] > 0
    _assert_charts_are_the_api(page.evaluate(CHART_DATA), answer, world.north_name)
    assert page.text_content("#tenant-timezone") == "Europe/London"

    with page.expect_download() as download:
        page.click("#export-counts")
    _assert_csv_is_the_api(Path(download.value.path()).read_text(), answer)
    assert download.value.suggested_filename.startswith("oakridge-care-")

    listed = page.locator("#attention-table tr[data-patient-id]").evaluate_all(
        "(rows) => rows.map((row) => Number(row.dataset.patientId))"
    )
    assert world.never_noted_id in listed
    posted = page.request.post(
        f"{base_url}/api/notes/",
        headers={"Authorization": f"Token {world.carer_token}"},
        data={
            "tenant_id": world.tenant_id,
            "facility_id": world.north_id,
            "patient_id": world.never_noted_id,
            "category": "observation",
            "priority": 2,
            "body": "Checked in; settled and comfortable.",
        },
    )
    assert posted.status == 201, posted.text()
    page.evaluate("() => window.carenotesDashboard.refresh()")
    _wait_for_charts(page, at_least=2)
    listed_after = page.locator("#attention-table tr[data-patient-id]").evaluate_all(
        "(rows) => rows.map((row) => Number(row.dataset.patientId))"
    )
    assert world.never_noted_id not in listed_after
    assert set(listed_after) == set(listed) - {world.never_noted_id}
    # The refreshed numbers are the API's again (the new note is today's).
    answer = _api(page, base_url, world.manager_token, f"/api/care-stats/?{query}")
    assert json.loads(page.text_content("#dashboard-data"))["api"] == answer
    _assert_charts_are_the_api(page.evaluate(CHART_DATA), answer, world.north_name)

    REPORTS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(REPORTS_DIR / "dashboard-1280.png"), full_page=True)
    page.set_viewport_size(NARROW)
    page.wait_for_timeout(200)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= NARROW["width"]
    page.screenshot(path=str(REPORTS_DIR / "dashboard-768.png"), full_page=True)
    assert page.csp_errors == []
    for marker in world.other_markers:
        assert marker not in page.content()
    _report("dashboard-load.json", {"notes": "test data", "charts_drawn_ms": load_ms})
    assert load_ms is not None and load_ms > 0


def test_a_manager_of_tenant_b_sees_nothing_of_tenant_a(plain_http_live_server, world, browser):
    base_url = plain_http_live_server.url
    page = _new_page(browser)
    _sign_in(page, base_url, world.other_manager)
    _wait_for_charts(page)
    assert f"/dashboard/{world.tenant_id}/" not in page.url
    for marker in world.markers:
        assert marker not in page.content()
    for path in ("", "attention/", "high-priority/", "export/counts.csv"):
        response = page.request.get(f"{base_url}/dashboard/{world.tenant_id}/{path}")
        assert response.status == 404, path
        for marker in world.markers:
            assert marker not in response.text()
    page.goto(f"{base_url}/dashboard/{world.tenant_id}/")
    assert "404" in page.title()


def test_load_time_at_scale(browser):
    """Navigation start to charts drawn on a running server (e.g. 1M seeded notes)."""
    base_url = os.environ.get("DASHBOARD_LOAD_URL")
    credentials_path = os.environ.get("DASHBOARD_LOAD_CREDENTIALS")
    if not base_url or not credentials_path:
        pytest.skip("set DASHBOARD_LOAD_URL and DASHBOARD_LOAD_CREDENTIALS to measure a server")
    credentials = json.loads(Path(credentials_path).read_text())
    page = _new_page(browser)
    # The tenant with the most notes in the range, as the API counts them.
    candidates = []
    for tenant in credentials["tenants"]:
        manager = next(u for u in tenant["users"] if u["role"] == "manager")
        path = f"/api/care-stats/?tenant_id={tenant['tenant_id']}&period=last_30_days"
        total = _api(page, base_url, manager["token"], path)["total_notes"]
        candidates.append((total, tenant, manager))
    _, tenant, manager = max(candidates, key=lambda candidate: candidate[0])
    # Every user of a seed run shares the run's demo password (printed for the superuser).
    _sign_in(page, base_url, manager["username"], credentials["superuser"]["password"])
    # Cold: a scope (one facility) whose range answers this run has not asked for yet.
    cold_url = (
        f"{base_url}/dashboard/{tenant['tenant_id']}/?period=last_30_days"
        f"&facility_ids={tenant['facility_ids'][0]}"
    )
    page.goto(cold_url)
    _wait_for_charts(page)
    cold_ms = page.evaluate(LOAD_TIME)
    url = f"{base_url}/dashboard/{tenant['tenant_id']}/?period=last_30_days"
    timings = []
    for _ in range(LOAD_RUNS):
        page.goto(url)
        _wait_for_charts(page)
        timings.append(page.evaluate(LOAD_TIME))
    answer = _api(
        page,
        base_url,
        manager["token"],
        f"/api/care-stats/?tenant_id={tenant['tenant_id']}&period=last_30_days",
    )
    assert json.loads(page.text_content("#dashboard-data"))["api"] == answer
    result = {
        "url": url.replace(base_url, ""),
        "tenant_notes_in_range": answer["total_notes"],
        "runs_ms": [round(t, 1) for t in timings],
        "cold_scope_ms": round(cold_ms, 1),
        "median_ms": round(statistics.median(timings), 1),
        "target_ms": LOAD_TARGET_MS,
    }
    _report("dashboard-load-scale.json", result)
    assert max(result["median_ms"], result["cold_scope_ms"]) <= LOAD_TARGET_MS, result
