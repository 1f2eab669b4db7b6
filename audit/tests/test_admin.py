"""The audit admin: tenant admins browse their tenants' records, read-only; nobody edits one."""

from http import HTTPStatus

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.admin import READ_LIST_PER_PAGE
from audit.models import ReadRecord
from audit.tests.factories import ReadRecordFactory
from tenants.tests.factories import UserFactory, tenant_admin_create

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/readrecord/"


@pytest.fixture
def records():
    """A record in each of two tenants, read by distinctively named users."""
    return (
        ReadRecordFactory(user=UserFactory(username="reader-of-ours")),
        ReadRecordFactory(user=UserFactory(username="reader-of-theirs")),
    )


@pytest.fixture
def our_admin(records, session_client):
    return session_client(tenant_admin_create(tenant=records[0].tenant))


def test_a_tenant_admin_lists_only_their_tenants_records(records, our_admin):
    response = our_admin.get(CHANGELIST)
    assert response.status_code == HTTPStatus.OK
    assert list(response.context["cl"].result_list) == [records[0]]
    page = response.content.decode()
    assert "reader-of-ours" in page and "reader-of-theirs" not in page


def test_another_tenants_record_is_not_found(records, our_admin):
    ours, theirs = records
    assert our_admin.get(f"{CHANGELIST}{ours.pk}/change/").status_code == HTTPStatus.OK
    for view in ("change", "history", "delete"):
        response = our_admin.get(f"{CHANGELIST}{theirs.pk}/{view}/")
        assert response.status_code == HTTPStatus.NOT_FOUND, view


@pytest.mark.parametrize("who", ["tenant admin", "superuser"])
def test_nobody_adds_changes_or_deletes_a_record_in_the_admin(records, who, session_client):
    ours, _ = records
    user = (
        UserFactory(is_superuser=True, is_staff=True)
        if who == "superuser"
        else tenant_admin_create(tenant=ours.tenant)
    )
    client = session_client(user)
    page = client.get(f"{CHANGELIST}{ours.pk}/change/")
    assert page.status_code == HTTPStatus.OK
    assert 'name="_save"' not in page.content.decode()
    assert client.get(f"{CHANGELIST}add/").status_code == HTTPStatus.FORBIDDEN
    assert client.get(f"{CHANGELIST}{ours.pk}/delete/").status_code == HTTPStatus.FORBIDDEN
    edited = client.post(f"{CHANGELIST}{ours.pk}/change/", {"username": "someone else"})
    assert edited.status_code == HTTPStatus.FORBIDDEN
    deleted = client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": ours.pk})
    assert ReadRecord.objects.filter(pk=ours.pk, username=ours.username).exists()
    assert deleted.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)  # no such action: ignored


def _changelist_queries(client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(CHANGELIST).status_code == HTTPStatus.OK
    assert not [q for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    return len(captured.captured_queries)


def test_the_changelist_costs_the_same_queries_and_no_count_at_any_size(records, our_admin):
    ours, _ = records
    _changelist_queries(our_admin)  # warms the per-process caches (content types)
    one = _changelist_queries(our_admin)
    ReadRecordFactory.create_batch(
        READ_LIST_PER_PAGE + 5, tenant=ours.tenant, user=ours.user, username=ours.username
    )
    assert _changelist_queries(our_admin) == one
