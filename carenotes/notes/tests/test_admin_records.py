"""The admin keeps the API's rules: tenant staff see a recorded note read-only and amend it;
a superuser's data repair needs a reason and lands in the change history."""

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from carenotes.notes.admin_records import AMEND_LINK_TEXT, amend_url
from carenotes.notes.models import (
    HISTORY_AFTER,
    HISTORY_BEFORE,
    CareNote,
    CareNoteAmendment,
    CareNoteEvent,
)
from carenotes.notes.tests.factories import NOTE_ADMIN_INLINES, CareNoteFactory
from tenants.tests.factories import MembershipFactory, UserFactory, tenant_admin_create

pytestmark = pytest.mark.django_db

NOTES = "/admin/carenotes/carenote/"
AMENDMENTS = "/admin/carenotes/carenoteamendment/"
NOTE_TIME = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def note():
    return CareNoteFactory(created_at=NOTE_TIME, priority=3)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def tenant_admin(note) -> Client:
    return _client(tenant_admin_create(tenant=note.tenant, username="home-admin"))


@pytest.fixture
def superuser() -> Client:
    return _client(UserFactory(is_superuser=True, is_staff=True))


def _change_form(note, **changes) -> dict:
    fields = {
        "tenant": note.tenant_id,
        "facility": note.facility_id,
        "patient": note.patient_id,
        "author": note.author_id,
        "category": note.category,
        "priority": note.priority,
        "body": note.body,
        "created_at_0": "2025-03-10",
        "created_at_1": "12:00:00",
        **NOTE_ADMIN_INLINES,
    }
    return {**fields, **changes}


def _rolled_up_categories(note) -> dict[str, int]:
    """The day rollups' note counts per category (stats 0003 triggers keep them), read raw."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT category, sum(notes) FROM stats_day_counts WHERE tenant_id = %s "
            "GROUP BY category",
            [note.tenant_id],
        )
        return dict(cursor.fetchall())


def _stored(note) -> tuple:
    note = CareNote.objects.get(pk=note.pk)
    return note.category, note.priority, note.created_at


def test_a_tenant_admin_sees_the_note_read_only_with_an_amend_link(tenant_admin, note):
    page = tenant_admin.get(f"{NOTES}{note.pk}/change/").content.decode()
    assert 'name="category"' not in page and 'name="created_at_0"' not in page
    assert AMEND_LINK_TEXT in page and amend_url(note).replace("&", "&amp;") in page
    assert 'value="Save"' not in page and "/delete/" not in page


@pytest.mark.parametrize(
    "changes",
    [{"category": "medication"}, {"created_at_0": "2020-01-01"}, {"priority": 1}],
)
def test_a_tenant_admins_edit_is_refused_and_changes_nothing(tenant_admin, note, changes):
    response = tenant_admin.post(f"{NOTES}{note.pk}/change/", _change_form(note, **changes))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert _stored(note) == ("observation", 3, NOTE_TIME)
    assert not CareNoteEvent.objects.exists()


def test_a_tenant_admin_cannot_delete_a_note_singly_or_in_bulk(tenant_admin, note):
    assert tenant_admin.get(f"{NOTES}{note.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
    deleted = tenant_admin.post(f"{NOTES}{note.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == HTTPStatus.FORBIDDEN
    changelist = tenant_admin.get(NOTES)
    assert "delete_selected" not in changelist.content.decode()
    bulk = tenant_admin.post(
        NOTES, {"action": "delete_selected", "_selected_action": [note.pk], "post": "yes"}
    )
    assert bulk.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
    assert CareNote.objects.filter(pk=note.pk).exists()


def test_the_amend_form_starts_from_the_notes_values(tenant_admin, note):
    page = tenant_admin.get(amend_url(note)).content.decode()
    assert f'value="{note.pk}"' in page
    assert '<option value="observation" selected>' in page


def test_a_tenant_admin_amends_through_the_service(tenant_admin, note):
    assert _rolled_up_categories(note) == {"observation": 1}
    form = {
        "note": note.pk,
        "reason": "Wrong category.",
        "category": "medication",
        "priority": 3,
        "body": note.body,
    }
    response = tenant_admin.post(f"{AMENDMENTS}add/", form)
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == f"{NOTES}{note.pk}/change/"
    assert _stored(note) == ("medication", 3, NOTE_TIME)
    assert _rolled_up_categories(note) == {"medication": 1}
    amendment = CareNoteAmendment.objects.get()
    assert (amendment.previous_category, amendment.reason) == ("observation", "Wrong category.")
    # The note page lists the amendment and the history beside the note.
    page = tenant_admin.get(f"{NOTES}{note.pk}/change/").content.decode()
    assert "Wrong category." in page and "amendment reason: Wrong category." in page
    assert "home-admin" in page


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"reason": "", "category": "medication"}, "reason", "This field is required."),
        ({"reason": "r"}, None, "The amendment changes nothing"),
    ],
)
def test_a_bad_amendment_is_shown_on_the_form(tenant_admin, note, form, field, message):
    post = {"note": note.pk, "category": "observation", "priority": 3, "body": note.body, **form}
    response = tenant_admin.post(f"{AMENDMENTS}add/", post)
    assert response.status_code == HTTPStatus.OK
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field or "__all__", []))
    assert not CareNoteAmendment.objects.exists()


def test_another_tenants_note_cannot_be_amended_or_seen(tenant_admin, note):
    foreign = CareNoteFactory()
    response = tenant_admin.post(
        f"{AMENDMENTS}add/",
        {"note": foreign.pk, "reason": "r", "category": "medication", "priority": 3, "body": "x"},
    )
    assert response.status_code == HTTPStatus.OK
    assert "note" in response.context["adminform"].form.errors
    assert tenant_admin.get(f"{NOTES}{foreign.pk}/change/").status_code == HTTPStatus.NOT_FOUND
    assert not CareNoteAmendment.objects.exists()


def test_amendments_are_never_changed_or_deleted_in_the_admin(tenant_admin, superuser, note):
    from carenotes.notes.services import note_amend

    amendment = note_amend(
        tenant=note.tenant, author=note.author, note_id=note.pk, reason="r", priority=1
    )
    for client in (tenant_admin, superuser):
        url = f"{AMENDMENTS}{amendment.pk}/"
        assert client.post(f"{url}change/", {"reason": "rewritten"}).status_code == 403
        assert client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    assert CareNoteAmendment.objects.get().reason == "r"


def test_a_superuser_repair_needs_a_reason(superuser, note):
    response = superuser.post(f"{NOTES}{note.pk}/change/", _change_form(note, priority=1))
    assert response.status_code == HTTPStatus.OK
    assert "repair_reason" in response.context["adminform"].form.errors
    assert _stored(note) == ("observation", 3, NOTE_TIME)


def test_a_superuser_repair_is_recorded_in_the_history(superuser, note):
    form = _change_form(note, created_at_0="2025-03-09", repair_reason="Entered a day late.")
    response = superuser.post(f"{NOTES}{note.pk}/change/", form)
    assert response.status_code == HTTPStatus.FOUND
    assert _stored(note)[2] == NOTE_TIME - timedelta(days=1)
    events = list(CareNoteEvent.objects.order_by("pgh_id"))
    assert [(e.pgh_label, e.created_at) for e in events] == [
        (HISTORY_BEFORE, NOTE_TIME),
        (HISTORY_AFTER, NOTE_TIME - timedelta(days=1)),
    ]
    superuser_id = response.wsgi_request.user.pk
    assert {(e.pgh_context["user"], e.pgh_context["repair_reason"]) for e in events} == {
        (superuser_id, "Entered a day late.")
    }


def test_a_superusers_delete_is_recorded_in_the_history(superuser, note):
    response = superuser.post(f"{NOTES}{note.pk}/delete/", {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    event = CareNoteEvent.objects.get()
    assert (event.pgh_label, event.pgh_obj_id, event.pgh_context["user"]) == (
        "deleted",
        note.pk,
        response.wsgi_request.user.pk,
    )


def test_a_tenant_admins_new_note_keeps_the_apis_backdating_rule(tenant_admin, note):
    MembershipFactory(tenant=note.tenant, user=note.author, role="carer")  # a choosable author
    form = _change_form(note, created_at_0="2020-01-01")
    for key in NOTE_ADMIN_INLINES:
        form.pop(key)
    response = tenant_admin.post(f"{NOTES}add/", form)
    assert response.status_code == HTTPStatus.OK
    assert "days in the past" in " ".join(response.context["adminform"].form.errors["created_at"])
    recent = timezone.localtime(timezone.now() - timedelta(hours=1))
    form.update(created_at_0=recent.date().isoformat(), created_at_1=recent.strftime("%H:%M:%S"))
    assert tenant_admin.post(f"{NOTES}add/", form).status_code == HTTPStatus.FOUND
    assert CareNote.objects.count() == 2


def test_an_amended_note_is_not_deleted_even_by_a_superuser(superuser, note):
    from carenotes.notes.services import note_amend

    note_amend(tenant=note.tenant, author=note.author, note_id=note.pk, reason="r", priority=1)
    response = superuser.post(f"{NOTES}{note.pk}/delete/", {"post": "yes"})
    # Deleting it would delete its amendments, which nobody may delete in the admin.
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert CareNote.objects.filter(pk=note.pk).exists()
    assert CareNoteAmendment.objects.count() == 1
