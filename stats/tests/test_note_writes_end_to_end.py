"""End to end: recording a note changes the next stats answer for its day, and only that day."""

from datetime import timedelta
from http import HTTPStatus

import pytest
from django.utils import timezone

from carenotes.core.days import local_today
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory, note_payload
from tenants.tests.factories import MembershipFactory

# on_commit invalidation only runs when the request's transaction really commits.
pytestmark = pytest.mark.django_db(transaction=True)


def _stats(client, patient, day):
    response = client.get(
        "/api/care-stats/", {"tenant_id": patient.tenant_id, "date": day.isoformat()}
    )
    assert response.status_code == HTTPStatus.OK
    return response


def test_posting_a_note_changes_the_next_stats_answer_and_keeps_other_days_cached(token_client):
    patient = PatientFactory(facility__tenant__timezone="America/New_York")
    client = token_client(MembershipFactory(tenant=patient.tenant, role="carer").user)
    today = local_today(timezone_name="America/New_York")
    yesterday = today - timedelta(days=1)
    CareNoteFactory(patient=patient, created_at=timezone.now() - timedelta(days=1))

    before_today = _stats(client, patient, today)
    before_yesterday = _stats(client, patient, yesterday)
    assert _stats(client, patient, today)["X-Cache"] == "HIT"

    posted = client.post(
        "/api/notes/",
        note_payload(patient, category="treatment", priority=4, body="Dressing changed."),
        format="json",
    )
    assert posted.status_code == HTTPStatus.CREATED

    after_today = _stats(client, patient, today)
    assert after_today["X-Cache"] == "MISS"
    assert after_today.json()["total_notes"] == before_today.json()["total_notes"] + 1
    assert after_today.json()["by_category"]["treatment"] == (
        before_today.json()["by_category"]["treatment"] + 1
    )
    after_yesterday = _stats(client, patient, yesterday)
    assert after_yesterday["X-Cache"] == "HIT"
    assert after_yesterday.json() == before_yesterday.json()
