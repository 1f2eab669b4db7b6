"""The application roles append and read audit records of their scope; none changes or deletes one.

Proved against PostgreSQL itself (grants and row-level security of migration audit 0002), with
raw SQL, so no application code stands between the role and the table.
"""

import pytest
from django.db import ProgrammingError, connection, transaction

from audit.models import ReadRecord
from audit.tests.factories import ReadRecordFactory
from tenants.rls import SYSTEM, db_scope, rls_owner, rls_system, rls_tenants

pytestmark = pytest.mark.django_db

TABLE = ReadRecord._meta.db_table
INSERT_SQL = (
    f"INSERT INTO {TABLE} (read_at, tenant_id, user_id, username, route, filters, note_count, "
    "request_id) VALUES (now(), %s, %s, 'smuggler', 'note-list', '{}', 0, '')"
)
# What an application role must never be able to do to a record.
CHANGES = {
    "update": f"UPDATE {TABLE} SET username = 'someone else', note_ids = NULL, note_count = 0",
    "delete": f"DELETE FROM {TABLE}",
    "truncate": f"TRUNCATE {TABLE}",
}


@pytest.fixture
def records():
    """One record in each of two tenants."""
    return ReadRecordFactory(), ReadRecordFactory()


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _scope(role: str, record):
    return rls_tenants([record.tenant_id]) if role == "app" else db_scope(SYSTEM)


@pytest.mark.parametrize("role", ["app", "system"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_no_application_role_may_change_or_delete_a_record(records, role, change):
    ours, _ = records
    refused = pytest.raises(ProgrammingError, match="permission denied for table")
    with _scope(role, ours), refused, transaction.atomic():
        _rows(CHANGES[change])
    with rls_system():
        unchanged = ReadRecord.objects.order_by("id").values_list("username", "note_count")
        assert list(unchanged) == [(record.username, 3) for record in records]


def test_the_app_role_reads_and_appends_only_its_tenants_records(records):
    ours, theirs = records
    with rls_tenants([ours.tenant_id]):
        assert _rows(f"SELECT id FROM {TABLE}") == [(ours.pk,)]
        _rows(INSERT_SQL, [ours.tenant_id, ours.user_id])
        refused = pytest.raises(ProgrammingError, match="row-level security")
        with refused, transaction.atomic():
            _rows(INSERT_SQL, [theirs.tenant_id, ours.user_id])
    with rls_system():
        assert ReadRecord.objects.filter(tenant_id=theirs.tenant_id).count() == 1
        assert ReadRecord.objects.filter(tenant_id=ours.tenant_id).count() == 2


def test_even_a_blanket_grant_would_change_no_record(records):
    """No policy allows UPDATE or DELETE: a grant given by mistake still changes nothing."""
    ours, _ = records
    with rls_owner():
        _rows(f"GRANT UPDATE, DELETE ON {TABLE} TO carenotes_app, carenotes_system")
    for scope in (rls_tenants([ours.tenant_id]), rls_system()):
        with scope, connection.cursor() as cursor:
            cursor.execute(CHANGES["update"])
            updated = cursor.rowcount
            cursor.execute(CHANGES["delete"])
            assert (updated, cursor.rowcount) == (0, 0)


def test_the_owner_may_delete_records(records):
    with rls_owner():
        _rows(CHANGES["delete"])
        assert _rows(f"SELECT count(*) FROM {TABLE}") == [(0,)]
