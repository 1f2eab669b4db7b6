"""note_amend keeps the original (who, when, why) and the trigger-written history records every
change of a note, by whatever path; the database refuses tenant staff's rewrites."""

from datetime import timedelta

import pghistory
import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError

from carenotes.notes.models import (
    AMENDMENT_REASON_MAX_LENGTH,
    HISTORY_AFTER,
    HISTORY_BEFORE,
    HISTORY_DELETED,
    CareNote,
    CareNoteAmendment,
    CareNoteEvent,
)
from carenotes.notes.services import NOTE_BODY_MAX_LENGTH, note_amend
from carenotes.notes.tests.factories import CareNoteFactory
from tenants.rls import rls_owner, rls_tenants
from tenants.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def note():
    return CareNoteFactory(created_at=timezone.now() - timedelta(days=30), priority=3)


def _amend(note, **fields):
    return note_amend(
        tenant=note.tenant,
        author=fields.pop("author", note.author),
        note_id=note.pk,
        **{"reason": "Wrong category.", **fields},
    )


def test_an_amendment_keeps_the_previous_values_and_the_note_takes_the_new_ones(note):
    author = UserFactory()
    before = (note.category, note.priority, note.body)
    amendment = _amend(note, author=author, category="medication", priority=5)
    note.refresh_from_db()
    assert (note.category, note.priority, note.body) == ("medication", 5, before[2])
    stored = CareNoteAmendment.objects.get()
    assert (stored.pk, stored.tenant_id, stored.note_id, stored.author_id, stored.reason) == (
        amendment.pk,
        note.tenant_id,
        note.pk,
        author.pk,
        "Wrong category.",
    )
    assert (stored.previous_category, stored.previous_priority, stored.previous_body) == before
    assert (stored.category, stored.priority, stored.body) == ("medication", 5, before[2])
    # Amendments are not bound by the backdating window: the note is a month old.
    assert timezone.now() - stored.created_at < timedelta(minutes=1)


def test_each_amendment_starts_from_the_values_the_last_one_left(note):
    _amend(note, priority=4)
    second = _amend(note, body="Corrected text.", reason="Typo.")
    assert (second.previous_priority, second.priority) == (4, 4)
    assert (second.previous_body, second.body) == (note.body, "Corrected text.")


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"reason": "  "}, {"reason": ["Say why the note is amended."]}),
        (
            {"reason": "x" * (AMENDMENT_REASON_MAX_LENGTH + 1)},
            {"reason": [f"Must be at most {AMENDMENT_REASON_MAX_LENGTH} characters."]},
        ),
        (
            {"category": "gossip"},
            {"category": ["Must be one of medication, observation, treatment."]},
        ),
        ({"priority": 9}, {"priority": ["Must be between 1 and 5."]}),
        ({"body": " "}, {"body": ["Must not be empty."]}),
        (
            {"body": "x" * (NOTE_BODY_MAX_LENGTH + 1)},
            {"body": [f"Must be at most {NOTE_BODY_MAX_LENGTH} characters."]},
        ),
        (
            {"priority": 3},
            {
                "non_field_errors": [
                    "The amendment changes nothing: give a new category, priority or body."
                ]
            },
        ),
    ],
)
def test_a_bad_amendment_names_the_field_and_changes_nothing(note, fields, errors):
    with pytest.raises(ValidationError) as excinfo:
        _amend(note, **{"category": None, **fields})
    assert excinfo.value.detail == errors
    assert not CareNoteAmendment.objects.exists()
    assert CareNote.objects.get().priority == 3


def test_a_note_of_another_tenant_is_not_found(note):
    other = CareNoteFactory()
    with pytest.raises(NotFound):
        note_amend(
            tenant=other.tenant, author=other.author, note_id=note.pk, reason="x", priority=1
        )
    assert CareNote.objects.get(pk=note.pk).priority == 3


def _history(note) -> list[tuple]:
    return list(
        CareNoteEvent.objects.filter(tenant_id=note.tenant_id, pgh_obj_id=note.pk)
        .order_by("pgh_id")
        .values_list("pgh_label", "category", "priority", "tenant_id")
    )


def test_the_history_records_the_note_before_and_after_with_who_and_why(note):
    author = UserFactory()
    _amend(note, author=author, category="treatment", reason="Was a dressing change.")
    assert _history(note) == [
        (HISTORY_BEFORE, "observation", 3, note.tenant_id),
        (HISTORY_AFTER, "treatment", 3, note.tenant_id),
    ]
    contexts = {event.pgh_context["amendment_reason"] for event in CareNoteEvent.objects.all()}
    users = {event.pgh_context["user"] for event in CareNoteEvent.objects.all()}
    assert (contexts, users) == ({"Was a dressing change."}, {author.pk})


def test_raw_sql_changes_and_deletes_are_recorded_too(note):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE carenotes_carenote SET priority = 1 WHERE id = %s", [note.pk])
        cursor.execute("DELETE FROM carenotes_carenote WHERE id = %s", [note.pk])
    assert _history(note) == [
        (HISTORY_BEFORE, "observation", 3, note.tenant_id),
        (HISTORY_AFTER, "observation", 1, note.tenant_id),
        (HISTORY_DELETED, "observation", 1, note.tenant_id),
    ]
    # No application context: the row says so rather than naming anyone.
    assert {event.pgh_context for event in CareNoteEvent.objects.all()} == {None}


def test_a_save_that_changes_nothing_writes_no_history(note):
    note.save()
    assert _history(note) == []


def test_the_history_is_append_only_even_for_the_owner(note):
    with pghistory.context(user=note.author_id):
        _amend(note, priority=1)
    refused = pytest.raises(Exception, match="Cannot update or delete rows")
    with rls_owner(), refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE carenotes_carenoteevent SET priority = 5")


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE carenotes_carenote SET created_at = '2020-01-01' WHERE id = %s",
        "UPDATE carenotes_carenote SET facility_id = facility_id WHERE id = %s",
        "UPDATE carenotes_carenote SET author_id = author_id WHERE id = %s",
        "DELETE FROM carenotes_carenote WHERE id = %s",
        "UPDATE carenotes_carenoteamendment SET reason = 'rewritten' WHERE note_id = %s",
        "DELETE FROM carenotes_carenoteamendment WHERE note_id = %s",
        "UPDATE carenotes_carenoteevent SET body = 'rewritten' WHERE pgh_obj_id = %s",
        "DELETE FROM carenotes_carenoteevent WHERE pgh_obj_id = %s",
    ],
)
def test_the_app_role_cannot_rewrite_a_note_its_amendments_or_its_history(note, sql):
    _amend(note, priority=1)
    refused = pytest.raises(ProgrammingError, match="permission denied")
    with rls_tenants([note.tenant_id]), refused, transaction.atomic(), connection.cursor() as c:
        c.execute(sql, [note.pk])
    note.refresh_from_db()
    assert (note.priority, CareNoteAmendment.objects.get().reason) == (1, "Wrong category.")


def test_the_app_role_amends_within_its_tenant(note):
    with rls_tenants([note.tenant_id]):
        _amend(note, priority=2)
    assert CareNote.objects.get().priority == 2
    assert [label for label, *_ in _history(note)] == [HISTORY_BEFORE, HISTORY_AFTER]


def test_the_database_refuses_an_amendment_of_another_tenants_note(note):
    other = CareNoteFactory()
    fields = {
        "note_id": other.pk,
        "tenant_id": note.tenant_id,
        "author_id": note.author_id,
        "created_at": timezone.now(),
        "reason": "r",
        "previous_category": "observation",
        "previous_priority": 3,
        "previous_body": "a",
        "category": "observation",
        "priority": 1,
        "body": "a",
    }
    with pytest.raises(IntegrityError, match="is not a note of tenant"), transaction.atomic():
        CareNoteAmendment.objects.create(**fields)
    CareNoteAmendment.objects.create(**{**fields, "tenant_id": other.tenant_id})


def test_the_history_context_is_sent_inside_the_replica_observer_and_outside_the_scope():
    # Behind a transaction pooler the scope wrapper writes a SELECT in front of every
    # statement; pghistory skips SELECTs, so its context must be added before that.
    connection.ensure_connection()
    names = [wrapper.__name__ for wrapper in connection.execute_wrappers]
    assert names[:3] == ["_write_observer", "history_context_wrapper", "db_scope_wrapper"]
