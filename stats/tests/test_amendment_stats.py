"""Amended notes are counted as corrected, once: the day and range answers, the cache and the
rollups (`stats_rollups --check`) all follow an amendment."""

from http import HTTPStatus
from io import StringIO

import pytest
from django.core.management import call_command

from carenotes.notes.models import CareNote, Category
from stats.tests.factories import DAY, care_group_create, expected_body, rollup_rows
from tenants.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _check() -> str:
    out = StringIO()
    call_command("stats_rollups", "--check", stdout=out)  # raises when any row differs
    return out.getvalue().splitlines()[-1]


def test_an_amendment_moves_the_day_and_range_counts_and_the_rollups_stay_exact(
    token_client, django_capture_on_commit_callbacks
):
    group = care_group_create()
    client = token_client(MembershipFactory(tenant=group.tenant, role="carer").user)
    day_url = f"/api/care-stats/?tenant_id={group.tenant.pk}&date={DAY}"
    range_url = f"/api/care-stats/?tenant_id={group.tenant.pk}&date_from={DAY}&date_to={DAY}"
    assert client.get(day_url).json() == expected_body(group)  # cached now
    range_before = client.get(range_url).json()
    # The observation (priority 2) in the south was a treatment of priority 4.
    note = CareNote.objects.get(tenant=group.tenant, category=Category.OBSERVATION)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/notes/{note.pk}/amendments/",
            {"reason": "Wrong category and priority.", "category": "treatment", "priority": 4},
            format="json",
        )
    assert response.status_code == HTTPStatus.CREATED, response.json()
    answer = client.get(day_url)
    assert answer["X-Cache"] == "MISS"  # the cached answer was made stale
    assert answer.json() == {
        **expected_body(group),
        "by_category": {"medication": 2, "observation": 0, "treatment": 2},
        "by_priority": {"1": 1, "2": 0, "3": 0, "4": 1, "5": 2},
    }
    range_after = client.get(range_url).json()
    assert range_after["total_notes"] == range_before["total_notes"] == 4
    assert range_after["by_category"] == {"medication": 2, "observation": 0, "treatment": 2}
    counts = rollup_rows(group.tenant.pk).counts
    assert counts[(DAY, group.south.pk, "treatment", 4)] == 1
    assert (DAY, group.south.pk, "observation", 2) not in counts
    assert _check() == "0 differences"
