"""audit_record_read appends one row per read, keeping ids up to a bound and always the count."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import ReadRecord
from audit.services import (
    AUDIT_NOTE_IDS_MAX,
    NoteTally,
    audit_record_read,
    audit_retention_cutoff,
)
from tenants.tests.factories import TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def who():
    return TenantFactory(), UserFactory(username="reader")


def _read(who, **kwargs) -> ReadRecord:
    tenant, user = who
    return audit_record_read(
        tenant_id=tenant.pk, user=user, route="note-list", filters={"page_size": "2"}, **kwargs
    )


def test_a_read_is_one_insert_of_who_what_and_which_notes(who, django_assert_num_queries):
    tenant, user = who
    with django_assert_num_queries(1):
        _read(who, note_ids=[7, 5], request_id="abc")
    record = ReadRecord.objects.values().get()
    assert record == {
        "id": record["id"],
        "read_at": record["read_at"],
        "tenant_id": tenant.pk,
        "user_id": user.pk,
        "username": "reader",
        "route": "note-list",
        "filters": {"page_size": "2"},
        "note_ids": [7, 5],
        "note_count": 2,
        "request_id": "abc",
    }


def test_above_the_bound_only_the_count_is_kept(who):
    assert _read(who, note_ids=range(AUDIT_NOTE_IDS_MAX)).note_ids is not None
    record = _read(who, note_ids=range(AUDIT_NOTE_IDS_MAX + 1))
    record.refresh_from_db()
    assert (record.note_ids, record.note_count) == (None, AUDIT_NOTE_IDS_MAX + 1)


def test_a_count_alone_is_recorded_and_a_read_needs_one_or_the_other(who):
    assert (_read(who, note_count=12).note_ids, _read(who, note_count=12).note_count) == (None, 12)
    with pytest.raises(ValueError, match="needs note_ids or note_count"):
        _read(who)


def test_the_database_refuses_ids_that_disagree_with_the_count(who):
    tenant, user = who
    with pytest.raises(IntegrityError, match="audit_read_ids_match_count"), transaction.atomic():
        ReadRecord.objects.create(
            tenant_id=tenant.pk, user=user, username="x", route="r", note_ids=[1], note_count=2
        )


def test_a_tally_keeps_ids_while_few_then_only_counts():
    tally = NoteTally()
    for note_id in range(AUDIT_NOTE_IDS_MAX):
        tally.add(note_id)
    assert (tally.count, tally.ids) == (AUDIT_NOTE_IDS_MAX, list(range(AUDIT_NOTE_IDS_MAX)))
    tally.add(AUDIT_NOTE_IDS_MAX)
    tally.add(AUDIT_NOTE_IDS_MAX + 1)
    assert (tally.count, tally.ids) == (AUDIT_NOTE_IDS_MAX + 2, None)


def test_the_retention_cutoff_is_that_many_days_back():
    now = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
    assert audit_retention_cutoff(days=9, now=now) == now - timedelta(days=9)
    with pytest.raises(ValueError, match="at least 1 day, got 0"):
        audit_retention_cutoff(days=0, now=now)


def _inserts(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if q["sql"].startswith("INSERT")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("synchronous", [False, True])
def test_only_a_record_that_is_its_own_transaction_skips_the_flush_wait(who, settings, synchronous):
    settings.AUDIT_SYNCHRONOUS_COMMIT = synchronous
    with CaptureQueriesContext(connection) as captured:
        _read(who, note_ids=[1])
        with transaction.atomic():  # e.g. a caller's writes: they keep their durable commit
            _read(who, note_ids=[2])
            assert _setting("synchronous_commit") == "on"
    alone, in_a_transaction = _inserts(captured)
    assert ("'synchronous_commit', 'off'" in alone) is not synchronous
    assert "synchronous_commit" not in in_a_transaction
    # Transaction-local: nothing is left on the session for the next statement.
    assert _setting("synchronous_commit") == "on"
    assert ReadRecord.objects.count() == 2


def _setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]
