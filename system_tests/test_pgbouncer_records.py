"""Amendments and their trigger-written history behind PgBouncer in transaction mode.

pghistory puts who and why in front of each write (``set_config(..., true)``), as row-level
security puts the caller's scope behind a transaction pooler (tenants/rls.py): both ride in
the statement's own message, and the history must still name the caller. The amendment API
tests run again here, through test_pgbouncer's PgBouncer (one server connection).
"""

import pytest

from carenotes.notes.api.tests import test_amendments_api as amendments_api
from system_tests.test_pgbouncer import _through_pgbouncer, pgbouncer  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db

note, carer, client = amendments_api.note, amendments_api.carer, amendments_api.client

test_amend_through_pooler = (
    amendments_api.test_a_member_amends_a_note_and_gets_it_back_with_the_original_kept
)
test_history_names_the_caller_through_pooler = (
    amendments_api.test_the_change_history_names_the_api_caller
)
test_amendment_counts_through_pooler = (
    amendments_api.test_the_list_counts_amendments_without_more_queries
)
test_bad_amendment_through_pooler = (
    amendments_api.test_bad_input_is_a_400_naming_the_field_and_changes_nothing
)
test_foreign_amendment_through_pooler = (
    amendments_api.test_another_tenants_note_is_the_same_404_as_a_missing_one
)
