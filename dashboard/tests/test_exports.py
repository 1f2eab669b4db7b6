"""The CSV exports: streamed, named after the tenant and range, and the API's numbers."""

import csv
import io
from collections import Counter
from http import HTTPStatus

import pytest
from django.http import StreamingHttpResponse

from dashboard.views import COUNTS_HEADER, HIGH_PRIORITY_HEADER
from tenants.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _rows(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def _api(token_client, group, query: str) -> dict:
    response = token_client(group.manager).get(
        f"/api/care-stats/?tenant_id={group.tenant.pk}&{query}"
    )
    assert response.status_code == HTTPStatus.OK
    return response.json()


@pytest.mark.parametrize("facilities", ["all", "north"])
def test_the_counts_export_adds_up_to_the_api_answer(group, signed_in, token_client, facilities):
    query = "period=last_30_days"
    if facilities == "north":
        query += f"&facility_ids={group.north.pk}"
    response = signed_in(group.manager).get(
        f"/dashboard/{group.tenant.pk}/export/counts.csv?{query}"
    )
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    answer = _api(token_client, group, query)
    filename = f"oakridge-care-{answer['date_from']}-to-{answer['date_to']}-counts.csv"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    rows = _rows(response)
    assert tuple(rows[0]) == COUNTS_HEADER
    per_day_category, per_day_priority, per_facility = Counter(), Counter(), Counter()
    for row in rows:
        notes = int(row["notes"])
        per_day_category[row["date"], row["category"]] += notes
        per_day_priority[row["date"], row["priority"]] += notes
        per_facility[row["facility_id"]] += notes
    for day in answer["by_day"]:
        for category, notes in day["by_category"].items():
            assert per_day_category[day["date"], category] == notes
        for priority, notes in day["by_priority"].items():
            assert per_day_priority[day["date"], priority] == notes
    assert {key: n for key, n in per_facility.items() if n} == {
        key: n for key, n in answer["by_facility"].items() if n
    }
    assert sum(int(row["notes"]) for row in rows) == answer["total_notes"] > 0


def test_the_high_priority_export_lists_the_feed_newest_first(group, signed_in, token_client):
    response = signed_in(group.manager).get(
        f"/dashboard/{group.tenant.pk}/export/high-priority.csv?period=last_30_days"
    )
    assert response["Content-Disposition"].endswith('-high-priority.csv"')
    rows = _rows(response)
    assert tuple(rows[0]) == HIGH_PRIORITY_HEADER
    assert [int(row["note_id"]) for row in rows] == [group.notes[0].pk, group.notes[2].pk]
    assert rows[0]["patient_reference"] == group.noted_today.reference
    assert rows[0]["author"] == group.carer.username
    assert rows[0]["created_at"].endswith("+00:00")  # London in winter, local offset shown
    answer = _api(token_client, group, "period=last_30_days")
    assert len(rows) == answer["by_priority"]["4"] + answer["by_priority"]["5"]


def test_the_high_priority_export_pages_through_every_note(group, signed_in, settings):
    from carenotes.notes.tests.factories import CareNoteFactory
    from dashboard import selectors

    CareNoteFactory.create_batch(
        7, patient=group.noted_today, priority=5, created_at=group.notes[0].created_at
    )
    original = selectors.EXPORT_BATCH_SIZE
    selectors.EXPORT_BATCH_SIZE = 3
    try:
        response = signed_in(group.manager).get(
            f"/dashboard/{group.tenant.pk}/export/high-priority.csv?period=last_30_days"
        )
        ids = [int(row["note_id"]) for row in _rows(response)]
    finally:
        selectors.EXPORT_BATCH_SIZE = original
    assert len(ids) == len(set(ids)) == 9


def test_cells_that_a_spreadsheet_would_run_are_neutralised(group, signed_in):
    from carenotes.notes.tests.factories import CareNoteFactory

    CareNoteFactory(
        patient=group.noted_today,
        priority=5,
        body='=HYPERLINK("http://example.invalid","x")',
        created_at=group.notes[0].created_at,
    )
    response = signed_in(group.manager).get(
        f"/dashboard/{group.tenant.pk}/export/high-priority.csv?period=last_7_days"
    )
    bodies = [row["body"] for row in _rows(response)]
    assert '\'=HYPERLINK("http://example.invalid","x")' in bodies


def test_exports_refuse_bad_parameters_with_a_400_page(group, signed_in):
    response = signed_in(group.manager).get(
        f"/dashboard/{group.tenant.pk}/export/counts.csv?period=forever"
    )
    assert response.status_code == HTTPStatus.BAD_REQUEST
    assert '<code class="param">period</code>' in response.content.decode()


def test_a_superuser_outside_the_tenant_exports_it_too(group, signed_in):
    root = UserFactory(is_superuser=True, is_staff=True)
    response = signed_in(root).get(
        f"/dashboard/{group.tenant.pk}/export/high-priority.csv?period=last_30_days"
    )
    assert len(_rows(response)) == 2
