"""Row-level security: the database itself hides other tenants' rows from the app role."""

import contextlib
import importlib
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.core.management import get_commands
from django.db import IntegrityError, ProgrammingError, connection, transaction
from django.utils import timezone

from carenotes.notes.models import IdempotencyKey
from carenotes.notes.tests.factories import CareNoteFactory
from stats.tests.factories import care_group_create
from tenants import rls
from tenants.rls import (
    APP_ROLE,
    NO_TENANTS,
    RLS_TABLES,
    SYSTEM_ROLE,
    db_scope,
    rls_owner,
    rls_system,
    rls_tenants,
)
from tenants.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

NOTES_SQL = "SELECT DISTINCT tenant_id FROM carenotes_carenote"
MIGRATION = importlib.import_module("tenants.migrations.0003_row_level_security")


@pytest.fixture
def two_tenants():
    """One note in each of two tenants."""
    return CareNoteFactory(), CareNoteFactory()


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_the_migration_freezes_the_roles_and_tables_of_tenants_rls():
    frozen = (MIGRATION.APP_ROLE, MIGRATION.SYSTEM_ROLE, MIGRATION.RLS_TABLES)
    assert frozen == (APP_ROLE, SYSTEM_ROLE, RLS_TABLES)


def test_every_tenant_table_forces_its_policy():
    rows = _rows(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relname = ANY(%s) ORDER BY relname",
        [list(RLS_TABLES)],
    )
    assert rows == [(table, True, True) for table in sorted(RLS_TABLES)]
    policies = _rows(
        "SELECT tablename, policyname, roles[1] FROM pg_policies "
        "WHERE policyname = ANY(%s) AND tablename = ANY(%s) ORDER BY 1, 2",
        [[MIGRATION.POLICY_NAME, MIGRATION.ALL_TENANTS_POLICY_NAME], list(RLS_TABLES)],
    )
    assert policies == [
        row
        for table in sorted(RLS_TABLES)
        for row in (
            (table, MIGRATION.ALL_TENANTS_POLICY_NAME, SYSTEM_ROLE),
            (table, MIGRATION.POLICY_NAME, APP_ROLE),
        )
    ]


@pytest.mark.parametrize("role", [APP_ROLE, SYSTEM_ROLE])
def test_the_application_roles_cannot_bypass_row_level_security(role):
    attributes = _rows(
        "SELECT rolsuper, rolbypassrls, rolcanlogin, rolcreaterole, rolcreatedb "
        "FROM pg_roles WHERE rolname = %s",
        [role],
    )
    assert attributes == [(False, False, False, False, False)]
    owners = _rows(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relname = ANY(%s)",
        [list(RLS_TABLES)],
    )
    assert (role,) not in owners
    # TRUNCATE ignores row-level security: the role must not hold it on any tenant table.
    truncatable = _rows(
        "SELECT relname FROM pg_class WHERE relname = ANY(%s) "
        "AND has_table_privilege(%s, oid, 'TRUNCATE')",
        [list(RLS_TABLES), role],
    )
    assert truncatable == []


def test_statements_run_as_the_app_role_and_schema_work_as_the_owner():
    with rls_tenants([1]):
        assert _rows("SELECT current_user") == [(APP_ROLE,)]
    with rls_system():
        assert _rows("SELECT current_user") == [(SYSTEM_ROLE,)]
    with rls_owner():
        assert _rows("SELECT current_user = session_user") == [(True,)]


def test_raw_sql_with_the_wrong_tenant_set_returns_no_rows(two_tenants):
    ours, theirs = two_tenants
    with rls_tenants([theirs.tenant_id]):
        assert (
            _rows("SELECT id FROM carenotes_carenote WHERE tenant_id = %s", [ours.tenant_id]) == []
        )
        assert _rows("SELECT id FROM tenants_tenant WHERE id = %s", [ours.tenant_id]) == []
        assert _rows(NOTES_SQL) == [(theirs.tenant_id,)]
    with rls_tenants([ours.tenant_id]):
        assert _rows(NOTES_SQL) == [(ours.tenant_id,)]


def test_no_scope_sees_no_tenant_rows(two_tenants):
    with db_scope(NO_TENANTS):
        assert [_rows(f"SELECT count(*) FROM {table}") for table in RLS_TABLES] == [[(0,)]] * len(
            RLS_TABLES
        )
    with rls_system():
        assert len(_rows(NOTES_SQL)) == 2


def test_insert_into_a_foreign_tenant_is_refused_by_the_policy(two_tenants):
    ours, theirs = two_tenants
    refused = pytest.raises(ProgrammingError, match="row-level security")
    with rls_tenants([ours.tenant_id]), refused, transaction.atomic():
        _rows(
            "INSERT INTO tenants_facility (tenant_id, name) VALUES (%s, 'smuggled') RETURNING id",
            [theirs.tenant_id],
        )


def test_a_rolled_back_scope_change_never_leaves_a_wider_scope_in_force(two_tenants):
    ours, _ = two_tenants
    with rls_system():
        assert len(_rows(NOTES_SQL)) == 2  # all tenants in force
        rolled_back = pytest.raises(ZeroDivisionError)
        with rolled_back, transaction.atomic(), rls_tenants([ours.tenant_id]):
            _rows(NOTES_SQL)
            raise ZeroDivisionError  # the savepoint rollback restores "all tenants"
    with rls_tenants([ours.tenant_id]):
        assert _rows(NOTES_SQL) == [(ours.tenant_id,)]


def _in_force() -> tuple:
    # Straight on the driver's connection: what the server holds, whatever Django believes.
    return connection.connection.execute(
        "SELECT current_user, current_setting('carenotes.tenant_ids', true), "
        "current_setting('carenotes.all_tenants', true)"
    ).fetchone()


@contextlib.contextmanager
def _scopes_sent():
    """Yield the list of scopes actually sent to PostgreSQL (not merely found in force)."""
    sent = []
    original = rls.scope_apply

    def spy(db, scope, raw_cursor):
        before = getattr(db, rls._APPLIED_ATTR, None)
        original(db, scope, raw_cursor)
        if getattr(db, rls._APPLIED_ATTR, None) is not before:
            sent.append(scope)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rls, "scope_apply", spy)
        yield sent


@pytest.mark.django_db(transaction=True)  # scopes are remembered only outside a transaction
def test_a_request_scopes_to_the_callers_tenants_and_whatever_runs_next_gets_its_own(
    token_client,
):
    ours, theirs = care_group_create(), care_group_create()
    our_client = token_client(MembershipFactory(tenant=ours.tenant).user)
    their_client = token_client(MembershipFactory(tenant=theirs.tenant).user)
    with _scopes_sent() as sent:
        response = our_client.get(f"/api/notes/?tenant_id={ours.tenant.pk}")
        assert response.status_code == HTTPStatus.OK
        # The scope stays on the idle connection (no reset round trip)...
        assert _in_force() == (APP_ROLE, str(ours.tenant.pk), "off")
        # ...and the next caller's first statement replaces it: they see only their notes.
        response = their_client.get(f"/api/notes/?tenant_id={theirs.tenant.pk}&page_size=200")
        assert response.status_code == HTTPStatus.OK
        assert {note["tenant_id"] for note in response.json()["results"]} == {theirs.tenant.pk}
        assert _in_force() == (APP_ROLE, str(theirs.tenant.pk), "off")
        # Code outside requests (NO_TENANTS by default) sees nothing the last request could.
        with db_scope(NO_TENANTS), connection.cursor() as cursor:
            cursor.execute(NOTES_SQL)
            assert cursor.fetchall() == []
    ours_scope, theirs_scope = (rls.tenants_scope([g.tenant.pk]) for g in (ours, theirs))
    assert sent.index(ours_scope) < sent.index(theirs_scope)
    assert sent[-1] == NO_TENANTS


@pytest.mark.django_db(transaction=True)
def test_a_callers_next_request_sends_no_scope_statement(token_client):
    group = care_group_create()
    client = token_client(MembershipFactory(tenant=group.tenant).user)
    url = f"/api/notes/?tenant_id={group.tenant.pk}"
    assert client.get(url).status_code == HTTPStatus.OK
    with _scopes_sent() as sent:
        response = client.get(url)
    assert response.status_code == HTTPStatus.OK
    assert sent == []


def test_a_missing_tenant_filter_still_leaks_nothing(token_client, monkeypatch):
    """Defence in depth: a selector that forgot its tenant filter returns only the caller's."""
    ours, theirs = care_group_create(), care_group_create()
    client = token_client(MembershipFactory(tenant=ours.tenant).user)
    from carenotes.notes import selectors
    from carenotes.notes.models import CareNote

    def unfiltered_note_list(*, tenant, filters):
        notes = CareNote.objects.select_related(*selectors.NOTE_OUTPUT_RELATED).order_by("-id")
        return selectors.notes_with_amendment_count(notes, tenant_ids=None)

    monkeypatch.setattr("carenotes.notes.api.views.note_list", unfiltered_note_list)
    response = client.get(f"/api/notes/?tenant_id={ours.tenant.pk}&page_size=200")
    assert response.status_code == HTTPStatus.OK
    tenants_seen = {note["tenant_id"] for note in response.json()["results"]}
    assert tenants_seen == {ours.tenant.pk}
    assert CareNote.objects.filter(tenant=theirs.tenant).exists()  # there was something to leak


def test_a_warm_stats_hit_sends_no_scope_statement(token_client, monkeypatch):
    group = care_group_create()
    client = token_client(MembershipFactory(tenant=group.tenant).user)
    url = f"/api/care-stats/?tenant_id={group.tenant.pk}&date=2025-03-10"
    assert client.get(url)["X-Cache"] == "MISS"
    calls = []
    monkeypatch.setattr(rls, "scope_apply", lambda *args: calls.append(args))
    response = client.get(url)
    assert (response["X-Cache"], calls) == ("HIT", [])


def test_schema_commands_run_as_the_owner():
    commands = get_commands()
    assert (commands["migrate"], commands["flush"]) == ("tenants", "tenants")


def test_the_system_role_sees_nothing_without_the_switch(two_tenants):
    switched_off = rls.DbScope(role=SYSTEM_ROLE, tenant_ids="", all_tenants=False)
    with db_scope(switched_off):
        assert _rows(NOTES_SQL) == []


def test_the_stats_query_keeps_the_tenant_check_in_the_index_condition(two_tenants):
    ours, _ = two_tenants
    sql = (
        "EXPLAIN (COSTS off) SELECT count(*) FROM carenotes_carenote "
        "WHERE tenant_id = %s AND created_at >= %s AND created_at < %s"
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would be read whole
    with rls_tenants([ours.tenant_id]):
        plan = "\n".join(row[0] for row in _rows(sql, [ours.tenant_id, "2025-03-10", "2025-03-11"]))
    # Checked row by row (a Filter), the policy cost the daily stats query 20 %.
    assert "Index Cond: ((tenant_id = ANY (" in plan, plan
    assert "Filter" not in plan, plan


# --- the stats day rollups (stats migrations 0001-0003) --------------------------------------

ROLLUP_MIGRATION = importlib.import_module("stats.migrations.0002_day_rollup_row_level_security")
IDEMPOTENCY_MIGRATION = importlib.import_module("carenotes.notes.migrations.0005_idempotency_keys")
ROLLUPS_SQL = (
    "SELECT tenant_id FROM stats_day_counts UNION SELECT tenant_id FROM stats_day_residents"
)


def test_the_rollup_migration_freezes_the_roles_and_tables_of_the_code():
    from stats.selectors import ROLLUP_TABLES

    frozen = (ROLLUP_MIGRATION.APP_ROLE, ROLLUP_MIGRATION.SYSTEM_ROLE)
    assert frozen == (APP_ROLE, SYSTEM_ROLE)
    assert tuple(ROLLUP_MIGRATION.RLS_TABLES) == ROLLUP_TABLES
    assert (ROLLUP_MIGRATION.POLICY_NAME, ROLLUP_MIGRATION.ALL_TENANTS_POLICY_NAME) == (
        MIGRATION.POLICY_NAME,
        MIGRATION.ALL_TENANTS_POLICY_NAME,
    )


def _forced_with_both_policies(tables: list[str]) -> tuple[list, list]:
    """Return (table, enabled, forced) and (table, policy, role) rows of ``tables``, sorted."""
    forced = _rows(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
        "WHERE relname = ANY(%s) ORDER BY relname",
        [tables],
    )
    policies = _rows(
        "SELECT tablename, policyname, roles[1] FROM pg_policies "
        "WHERE tablename = ANY(%s) ORDER BY 1, 2",
        [tables],
    )
    return forced, policies


def _both_policies_expected(tables: list[str]) -> tuple[list, list]:
    policies = [
        row
        for table in tables
        for row in (
            (table, MIGRATION.ALL_TENANTS_POLICY_NAME, SYSTEM_ROLE),
            (table, MIGRATION.POLICY_NAME, APP_ROLE),
        )
    ]
    return [(table, True, True) for table in tables], policies


@pytest.mark.parametrize(
    "migration", [ROLLUP_MIGRATION, IDEMPOTENCY_MIGRATION], ids=["rollups", "idempotency-keys"]
)
def test_every_later_tenant_table_forces_both_policies_and_no_role_may_truncate_it(migration):
    tables = sorted(migration.RLS_TABLES)
    assert _forced_with_both_policies(tables) == _both_policies_expected(tables)
    for role in (APP_ROLE, SYSTEM_ROLE):
        granted = _rows(
            "SELECT relname, has_table_privilege(%s, oid, 'SELECT, INSERT, UPDATE, DELETE'), "
            "has_table_privilege(%s, oid, 'TRUNCATE') FROM pg_class "
            "WHERE relname = ANY(%s) ORDER BY relname",
            [role, role, tables],
        )
        assert granted == [(table, True, False) for table in tables]


def test_the_app_role_sees_and_writes_only_its_tenants_rollups(two_tenants):
    ours, theirs = two_tenants
    with rls_tenants([ours.tenant_id]):
        assert _rows(ROLLUPS_SQL) == [(ours.tenant_id,)]
    with db_scope(NO_TENANTS):
        assert _rows(ROLLUPS_SQL) == []
    with rls_system():
        assert sorted(_rows(ROLLUPS_SQL)) == sorted([(ours.tenant_id,), (theirs.tenant_id,)])
    refused = pytest.raises(ProgrammingError, match="row-level security")
    with rls_tenants([ours.tenant_id]), refused, transaction.atomic():
        _rows(
            "INSERT INTO stats_day_counts VALUES (%s, '2025-03-10', %s, 'treatment', 1, 99)",
            [theirs.tenant_id, theirs.facility_id],
        )


def test_a_range_answer_for_a_foreign_tenant_is_empty_even_if_asked_directly(two_tenants):
    from stats.selectors import care_stats_range_get
    from tenants.principal import TenantInfo

    ours, theirs = two_tenants
    theirs_info = TenantInfo(theirs.tenant_id, "x", "UTC", (theirs.facility_id,))
    day = theirs.created_at.date()
    with rls_tenants([ours.tenant_id]):
        stats = care_stats_range_get(tenant=theirs_info, date_from=day, date_to=day)
    assert (stats.total_notes, stats.patients) == (0, 0)
    with rls_tenants([theirs.tenant_id]):
        stats = care_stats_range_get(tenant=theirs_info, date_from=day, date_to=day)
    assert (stats.total_notes, stats.patients) == (1, 1)


def test_the_range_statements_keep_the_tenant_check_in_the_index_condition(two_tenants):
    from stats.selectors import STATS_RANGE_COUNTS_SQL

    ours, _ = two_tenants
    params = {"tenant_id": ours.tenant_id, "date_from": "2025-03-01", "date_to": "2025-05-31"}
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    with rls_tenants([ours.tenant_id]):
        plan = "\n".join(
            row[0] for row in _rows(f"EXPLAIN (COSTS off) {STATS_RANGE_COUNTS_SQL}", params)
        )
    assert "Index Only Scan using stats_day_counts_pkey" in plan, plan
    assert "Index Cond: ((tenant_id = ANY (" in plan, plan
    assert "Filter" not in plan, plan


# --- the idempotency keys of POST /api/notes/ (carenotes migration 0005) ----------------------

KEYS_SQL = "SELECT DISTINCT tenant_id FROM carenotes_idempotencykey"


def test_the_idempotency_key_migration_freezes_the_roles_and_table_of_the_code():
    assert IDEMPOTENCY_MIGRATION.ROLES == (APP_ROLE, SYSTEM_ROLE)
    frozen = IDEMPOTENCY_MIGRATION.RLS_TABLES
    assert frozen == {IdempotencyKey._meta.db_table: "tenant_id"}


def _key_create(note, key: str) -> IdempotencyKey:
    now = timezone.now()
    return IdempotencyKey.objects.create(
        tenant_id=note.tenant_id,
        user_id=note.author_id,
        key=key,
        fingerprint="0" * 64,
        response_status=HTTPStatus.CREATED,
        response_body=f'{{"id": {note.pk}}}',
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )


def test_the_app_role_sees_and_writes_only_its_tenants_idempotency_keys(two_tenants):
    ours, theirs = two_tenants
    _key_create(ours, "ours")
    _key_create(theirs, "theirs")
    with rls_tenants([ours.tenant_id]):
        assert _rows(KEYS_SQL) == [(ours.tenant_id,)]
        # Not even a replay's exact lookup finds another tenant's answer.
        assert (
            _rows(
                "SELECT response_body FROM carenotes_idempotencykey "
                "WHERE user_id = %s AND key = %s",
                [theirs.author_id, "theirs"],
            )
            == []
        )
    with db_scope(NO_TENANTS):
        assert _rows(KEYS_SQL) == []
    with rls_system():
        assert sorted(_rows(KEYS_SQL)) == sorted([(ours.tenant_id,), (theirs.tenant_id,)])
    refused = pytest.raises(ProgrammingError, match="row-level security")
    with rls_tenants([ours.tenant_id]), refused, transaction.atomic():
        _rows(
            "INSERT INTO carenotes_idempotencykey (tenant_id, user_id, key, fingerprint, "
            "response_body, created_at, expires_at) VALUES (%s, %s, 'smuggled', '', '', now(), "
            "now())",
            [theirs.tenant_id, ours.author_id],
        )


# --- the access audit (audit migration 0002): append-only, tenant-scoped ----------------------
# UPDATE and DELETE by each application role failing: audit/tests/test_append_only.py.

AUDIT_MIGRATION = importlib.import_module(
    "audit.migrations.0002_read_records_append_only_row_level_security"
)


def test_the_audit_migration_freezes_the_roles_and_table_of_the_code():
    from audit.models import ReadRecord

    frozen = (AUDIT_MIGRATION.APP_ROLE, AUDIT_MIGRATION.SYSTEM_ROLE, AUDIT_MIGRATION.TABLE)
    assert frozen == (APP_ROLE, SYSTEM_ROLE, ReadRecord._meta.db_table)


def test_the_audit_table_forces_read_and_append_policies_and_grants_nothing_more():
    table = AUDIT_MIGRATION.TABLE
    assert _rows(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = %s", [table]
    ) == [(True, True)]
    policies = _rows(
        "SELECT policyname, cmd, roles[1] FROM pg_policies WHERE tablename = %s ORDER BY 1",
        [table],
    )
    assert policies == [
        ("carenotes_all_tenants_append", "INSERT", SYSTEM_ROLE),
        ("carenotes_all_tenants_read", "SELECT", SYSTEM_ROLE),
        ("carenotes_owner_all", "ALL", _rows("SELECT session_user")[0][0]),
        ("carenotes_tenant_append", "INSERT", APP_ROLE),
        ("carenotes_tenant_read", "SELECT", APP_ROLE),
    ]
    privileges = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
    for role in (APP_ROLE, SYSTEM_ROLE):
        granted = [
            _rows("SELECT has_table_privilege(%s, %s, %s)", [role, table, privilege])[0][0]
            for privilege in privileges
        ]
        assert granted == [True, True, False, False, False], role


def test_the_app_role_sees_only_its_tenants_audit_records(two_tenants):
    from audit.tests.factories import ReadRecordFactory

    ours, theirs = (ReadRecordFactory(tenant=note.tenant) for note in two_tenants)
    sql = f"SELECT tenant_id FROM {AUDIT_MIGRATION.TABLE}"
    with rls_tenants([ours.tenant_id]):
        assert _rows(sql) == [(ours.tenant_id,)]
    with db_scope(NO_TENANTS):
        assert _rows(sql) == []
    with rls_system():
        assert sorted(_rows(sql)) == sorted([(ours.tenant_id,), (theirs.tenant_id,)])


# --- care records: amendments and the change history (carenotes migrations 0006-0007) ---------

AMENDMENTS_MIGRATION = importlib.import_module(
    "carenotes.notes.migrations.0006_care_note_amendments"
)
HISTORY_MIGRATION = importlib.import_module("carenotes.notes.migrations.0007_care_record_history")
AMENDMENTS_TABLE = AMENDMENTS_MIGRATION.AMENDMENTS_TABLE
RECORD_TABLES = sorted([AMENDMENTS_TABLE, *HISTORY_MIGRATION.HISTORY_TABLES])
PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")


def test_the_record_migrations_freeze_the_roles_policies_and_tables_of_the_code():
    from carenotes.notes.models import CareNoteAmendment, CareNoteAmendmentEvent, CareNoteEvent

    frozen = (AMENDMENTS_MIGRATION.APP_ROLE, AMENDMENTS_MIGRATION.SYSTEM_ROLE)
    assert frozen == (APP_ROLE, SYSTEM_ROLE)
    assert (AMENDMENTS_MIGRATION.POLICY_NAME, AMENDMENTS_MIGRATION.ALL_TENANTS_POLICY_NAME) == (
        MIGRATION.POLICY_NAME,
        MIGRATION.ALL_TENANTS_POLICY_NAME,
    )
    assert (
        sorted(
            model._meta.db_table
            for model in (CareNoteAmendment, CareNoteEvent, CareNoteAmendmentEvent)
        )
        == RECORD_TABLES
    )
    assert set(rls.LATER_RLS_TABLES) == {AMENDMENTS_TABLE}


def test_every_record_table_forces_both_policies():
    assert _forced_with_both_policies(RECORD_TABLES) == _both_policies_expected(RECORD_TABLES)


def _privileges(role: str, table: str) -> tuple[str, ...]:
    held = _rows(
        "SELECT p FROM unnest(%s::text[]) AS p WHERE has_table_privilege(%s, %s, p)",
        [list(PRIVILEGES), role, table],
    )
    return tuple(row[0] for row in held)


def test_records_are_append_only_for_the_app_role_and_history_for_both_roles():
    granted = {
        (role, table): _privileges(role, table)
        for role in (APP_ROLE, SYSTEM_ROLE)
        for table in [*RECORD_TABLES, "carenotes_carenote", HISTORY_MIGRATION.CONTEXT_TABLE]
    }
    read_insert = ("SELECT", "INSERT")
    dml = ("SELECT", "INSERT", "UPDATE", "DELETE")
    assert granted == {
        (APP_ROLE, AMENDMENTS_TABLE): read_insert,
        (SYSTEM_ROLE, AMENDMENTS_TABLE): dml,
        **{
            (role, table): read_insert
            for role in (APP_ROLE, SYSTEM_ROLE)
            for table in HISTORY_MIGRATION.HISTORY_TABLES
        },
        # Notes: the app role may UPDATE only the amendable columns (below) and not DELETE.
        (APP_ROLE, "carenotes_carenote"): read_insert,
        (SYSTEM_ROLE, "carenotes_carenote"): dml,
        # pghistory's shared context table would hold every tenant's users: unused, closed.
        (APP_ROLE, HISTORY_MIGRATION.CONTEXT_TABLE): (),
        (SYSTEM_ROLE, HISTORY_MIGRATION.CONTEXT_TABLE): (),
    }
    updatable = _rows(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'carenotes_carenote'::regclass "
        "AND attnum > 0 AND NOT attisdropped "
        "AND has_column_privilege(%s, attrelid, attnum, 'UPDATE') ORDER BY attname",
        [APP_ROLE],
    )
    assert updatable == [("body",), ("category",), ("priority",)]


def test_the_app_role_sees_and_writes_only_its_tenants_records(two_tenants):
    from carenotes.notes.services import note_amend

    ours, theirs = two_tenants
    for note in (ours, theirs):
        note_amend(tenant=note.tenant, author=note.author, note_id=note.pk, reason="r", priority=1)
    sql = " UNION ALL ".join(f"SELECT '{t}', tenant_id FROM {t}" for t in RECORD_TABLES)
    with rls_tenants([ours.tenant_id]):
        seen = _rows(sql)
    # Amendments and the notes' history (the amendments were never changed: no history).
    assert set(seen) == {
        (AMENDMENTS_TABLE, ours.tenant_id),
        ("carenotes_carenoteevent", ours.tenant_id),
    }
    with db_scope(NO_TENANTS):
        assert _rows(sql) == []
    # Another tenant's note does not exist for the app role: the same-tenant trigger refuses
    # before the policy's WITH CHECK would.
    refused = pytest.raises(IntegrityError, match="is not a note of tenant")
    with rls_tenants([ours.tenant_id]), refused, transaction.atomic():
        _rows(
            f"INSERT INTO {AMENDMENTS_TABLE} (tenant_id, note_id, author_id, created_at, reason, "
            "previous_category, previous_priority, previous_body, category, priority, body) "
            "VALUES (%s, %s, %s, now(), 'smuggled', 'observation', 3, 'a', 'observation', 2, 'a')",
            [theirs.tenant_id, theirs.pk, theirs.author_id],
        )
