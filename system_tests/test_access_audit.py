"""Every read that returns care notes appends exactly one audit record; a refusal appends none.

The audited routes are the notes API's list and detail, the dashboard page and its
high-priority feed (both show note bodies), both CSV exports, the note admin's change page and
the amendment admin's change and amend-from-a-note pages (audit.admin.AUDITED_ROUTES); each is
visited here as a member of the tenant and its record compared whole.
"""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit.admin import AUDITED_ROUTES
from audit.models import ReadRecord
from audit.services import AUDIT_NOTE_IDS_MAX
from carenotes.notes.models import CareNoteAmendment
from carenotes.notes.services import note_amend
from carenotes.notes.tests.factories import CareNoteFactory
from dashboard.tests.factories import DashboardGroup, dashboard_group_create
from tenants.services import api_token_create
from tenants.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PERIOD = {"period": "last_30_days"}
REQUEST_ID = "audit-test-42"


@pytest.fixture
def group() -> DashboardGroup:
    return dashboard_group_create()


@pytest.fixture
def other() -> DashboardGroup:
    return dashboard_group_create(tag="Elmwood")


def _session(user) -> Client:
    client = Client(headers={"X-Request-ID": REQUEST_ID})
    client.force_login(user)
    return client


def _records() -> list[dict]:
    fields = ["tenant_id", "user_id", "username", "route", "filters", "note_ids", "note_count"]
    return list(ReadRecord.objects.order_by("id").values(*fields, "request_id"))


def _record(group, user, route, filters, note_ids=None, note_count=None) -> dict:
    return {
        "tenant_id": group.tenant.pk,
        "user_id": user.pk,
        "username": user.username,
        "route": route,
        "filters": filters,
        "note_ids": note_ids,
        "note_count": len(note_ids) if note_ids is not None else note_count,
        "request_id": REQUEST_ID,
    }


def _high_priority_ids(group) -> list[int]:
    # The factory's priority 4-5 notes of the last 30 days, newest first.
    return [group.notes[0].pk, group.notes[2].pk]


def _csv_rows(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()  # reads (and closes) the stream
    return list(csv.DictReader(io.StringIO(text)))


@dataclass(frozen=True)
class Read:
    """One audited read: who asks what, and the record it must leave."""

    route: str
    user: Callable[[DashboardGroup], object]
    url: Callable[[DashboardGroup], str]
    params: dict
    expected: Callable[[DashboardGroup, object], dict]


def _note_detail_url(group) -> str:
    return f"/api/notes/{group.notes[1].pk}/"


READS = [
    Read(
        "note-list",
        lambda g: g.carer,
        lambda g: "/api/notes/",
        {"category": "medication"},
        lambda g, user: _record(
            g,
            user,
            "note-list",
            {"tenant_id": str(g.tenant.pk), "category": "medication"},
            [g.notes[0].pk, g.notes[3].pk, g.notes[5].pk],
        ),
    ),
    Read(
        "note-detail",
        lambda g: g.carer,
        _note_detail_url,
        {},
        lambda g, user: _record(g, user, "note-detail", {}, [g.notes[1].pk]),
    ),
    Read(
        "dashboard:tenant",
        lambda g: g.manager,
        lambda g: f"/dashboard/{g.tenant.pk}/",
        PERIOD,
        lambda g, user: _record(g, user, "dashboard:tenant", PERIOD, _high_priority_ids(g)),
    ),
    Read(
        "dashboard:high-priority",
        lambda g: g.manager,
        lambda g: f"/dashboard/{g.tenant.pk}/high-priority/",
        PERIOD,
        lambda g, user: _record(g, user, "dashboard:high-priority", PERIOD, _high_priority_ids(g)),
    ),
    Read(
        "dashboard:export-counts",
        lambda g: g.manager,
        lambda g: f"/dashboard/{g.tenant.pk}/export/counts.csv",
        PERIOD,
        # Counts, no body: the notes of the last 30 days counted, no ids.
        lambda g, user: _record(g, user, "dashboard:export-counts", PERIOD, note_count=5),
    ),
    Read(
        "dashboard:export-high-priority",
        lambda g: g.admin,
        lambda g: f"/dashboard/{g.tenant.pk}/export/high-priority.csv",
        PERIOD,
        lambda g, user: _record(
            g, user, "dashboard:export-high-priority", PERIOD, _high_priority_ids(g)
        ),
    ),
    Read(
        "admin:carenotes_carenote_change",
        lambda g: g.admin,
        lambda g: f"/admin/carenotes/carenote/{g.notes[1].pk}/change/",
        {},
        lambda g, user: _record(g, user, "admin:carenotes_carenote_change", {}, [g.notes[1].pk]),
    ),
    # An amendment's page shows the note's body before and after; the amend form opened from
    # a note shows its body to start from.
    Read(
        "admin:carenotes_carenoteamendment_change",
        lambda g: g.admin,
        lambda g: f"/admin/carenotes/carenoteamendment/{_amendment(g).pk}/change/",
        {},
        lambda g, user: _record(
            g, user, "admin:carenotes_carenoteamendment_change", {}, [g.notes[1].pk]
        ),
    ),
    Read(
        "admin:carenotes_carenoteamendment_add",
        lambda g: g.admin,
        lambda g: f"/admin/carenotes/carenoteamendment/add/?note={g.notes[1].pk}",
        {},
        lambda g, user: _record(
            g,
            user,
            "admin:carenotes_carenoteamendment_add",
            {"note": str(g.notes[1].pk)},
            [g.notes[1].pk],
        ),
    ),
]


def _amendment(group) -> CareNoteAmendment:
    """The amendment of the group's second note (made once, by the tenant's admin)."""
    existing = CareNoteAmendment.objects.filter(note=group.notes[1]).first()
    if existing is not None:
        return existing
    return note_amend(
        tenant=group.tenant,
        author=group.admin,
        note_id=group.notes[1].pk,
        reason="Recorded under the wrong category.",
        category="treatment" if group.notes[1].category != "treatment" else "medication",
    )


def _get(client, read: Read, group, **params):
    response = client.get(read.url(group), {**read.params, **params})
    if response.streaming:
        response.rows = _csv_rows(response)
    return response


def _client_for(read: Read, user):
    """An API client with a token for the notes API, a signed-in session for the pages."""
    if read.route.startswith("note-"):
        _, key = api_token_create(user=user, name="audit test")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}", HTTP_X_REQUEST_ID=REQUEST_ID)
        return client
    return _session(user)


def test_every_audited_route_is_visited_here():
    assert sorted(read.route for read in READS) == sorted(AUDITED_ROUTES)


@pytest.mark.parametrize("read", READS, ids=lambda read: read.route)
def test_an_answered_read_appends_exactly_one_record(group, other, read):
    user = read.user(group)
    client = _client_for(read, user)
    params = {"tenant_id": group.tenant.pk} if read.route == "note-list" else {}
    response = _get(client, read, group, **params)
    assert response.status_code == HTTPStatus.OK
    assert _records() == [read.expected(group, user)]


def test_a_superuser_outside_the_tenant_is_recorded_too(group):
    root = UserFactory(is_superuser=True, is_staff=True)
    read = READS[0]
    response = _get(_client_for(read, root), read, group, tenant_id=group.tenant.pk)
    assert response.status_code == HTTPStatus.OK
    assert _records() == [read.expected(group, root)]


@pytest.mark.parametrize(
    ("read", "user", "params", "status"),
    [
        (READS[0], "other_carer", {}, HTTPStatus.NOT_FOUND),  # not a member
        (READS[0], "carer", {"priority": "9"}, HTTPStatus.BAD_REQUEST),
        (READS[1], "other_carer", {}, HTTPStatus.NOT_FOUND),  # another tenant's note
        (READS[2], "carer", {}, HTTPStatus.FORBIDDEN),  # carers have no dashboard
        (READS[3], "other_manager", {}, HTTPStatus.NOT_FOUND),
        (READS[3], "manager", {"period": "someday"}, HTTPStatus.BAD_REQUEST),
        (READS[4], "other_manager", {}, HTTPStatus.NOT_FOUND),
        (READS[5], "manager", {"period": "custom", "date_from": "x"}, HTTPStatus.BAD_REQUEST),
        (READS[6], "other_admin", {}, HTTPStatus.NOT_FOUND),  # another tenant's note
    ],
    ids=lambda value: getattr(value, "route", str(value)),
)
def test_a_refused_read_appends_no_record(group, other, read, user, params, status):
    people = {
        "carer": group.carer,
        "manager": group.manager,
        "other_carer": other.carer,
        "other_manager": other.manager,
        "other_admin": other.admin,
    }
    client = _client_for(read, people[user])
    if read.route == "note-list":
        params = {"tenant_id": group.tenant.pk, **params}
    response = client.get(read.url(group), {**read.params, **params})
    assert response.status_code == status
    assert _records() == []


# Committed: closing a response ends the request, which closes a connection left in a
# transaction (Django's close_old_connections), as the test's own would be.
@pytest.mark.django_db(transaction=True)
def test_an_export_stopped_early_records_what_was_sent(group):
    read = READS[5]
    response = _session(group.admin).get(read.url(group), read.params)
    lines = iter(response.streaming_content)
    next(lines), next(lines)  # the header and the newest note, then the client goes away
    response.close()  # what the server does when the client is gone
    assert _records() == [
        _record(group, group.admin, read.route, PERIOD, _high_priority_ids(group)[:1])
    ]


def test_a_large_export_records_the_count_without_the_ids(group, settings, monkeypatch):
    monkeypatch.setattr("audit.services.AUDIT_NOTE_IDS_MAX", 2)
    note = group.notes[0]
    CareNoteFactory(
        patient=note.patient, author=note.author, priority=5, created_at=note.created_at
    )
    read = READS[5]
    response = _get(_session(group.admin), read, group)
    assert len(response.rows) == 3
    assert _records() == [_record(group, group.admin, read.route, PERIOD, note_count=3)]
    assert AUDIT_NOTE_IDS_MAX >= 200  # the largest API page keeps its ids


def test_the_note_changelist_shows_no_body_and_records_nothing(group):
    response = _session(group.admin).get("/admin/carenotes/carenote/")
    assert response.status_code == HTTPStatus.OK
    assert group.notes[0].body not in response.content.decode()
    assert _records() == []
