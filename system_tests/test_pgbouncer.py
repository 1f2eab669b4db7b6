"""Behind PgBouncer in transaction mode, no caller ever runs under another caller's scope.

The tests start a real PgBouncer (Debian package ``pgbouncer``; skipped without it) in front
of the test database with ``pool_mode = transaction`` and ``default_pool_size = 1``: every
client's every transaction runs on the one server connection, so two callers alternating
are interleaved on it by construction, not by chance. Each caller is a thread with its own
Django connection (its own PgBouncer client).
"""

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import psycopg
import pytest
from django.db import ProgrammingError, connection, connections, transaction
from django.test import override_settings
from rest_framework.test import APIClient

from carenotes.notes import services
from carenotes.notes.api.tests import test_notes_api as notes_api
from carenotes.notes.models import CareNote
from stats.tests import conftest as stats_fixtures
from stats.tests import test_views as stats_views
from stats.tests.factories import CARE_STATS_URL, care_group_create, stats_query
from system_tests.scaleout import (
    ROOT,
    PgBouncer,
    PostgresServer,
    database_pointed_at,
    skipped_when_missing,
)
from tenants.models import Facility
from tenants.rls import APP_ROLE, TRANSACTION_POOLER, rls_system, rls_tenants
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory

NOTES_SQL = "SELECT DISTINCT tenant_id FROM carenotes_carenote"
TENANTS_SQL = "SELECT id FROM tenants_tenant"
# What the server connection holds between transactions, read straight from the driver.
IN_FORCE_SQL = (
    "SELECT current_user = session_user, current_setting('carenotes.tenant_ids', true), "
    "current_setting('carenotes.all_tenants', true)"
)
NOTHING_IN_FORCE = [(True, None, None), (True, "", ""), (True, "", None), (True, None, "")]
ROUNDS = 6

# The re-run API tests below (and any test without its own mark) use the test transaction.
pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def pgbouncer(django_db_setup, django_db_blocker) -> Iterator[PgBouncer]:
    """A PgBouncer with one server connection in front of the test database."""
    settings_dict = connection.settings_dict
    host = settings_dict["HOST"] or settings_dict["OPTIONS"].get("host", "")
    if not host or host.startswith("/"):
        # The embedded PostgreSQL of a bare `make test` listens only on a private socket
        # directory that the account PgBouncer runs as cannot reach; .ci/run (the machine's
        # TCP server) runs these tests.
        pytest.skip("PgBouncer tests need a PostgreSQL reached over TCP (set DATABASE_URL)")
    with django_db_blocker.unblock():
        bouncer = PgBouncer.in_front_of(connection.settings_dict, pool_size=1)
    with skipped_when_missing():
        bouncer.start()
    try:
        yield bouncer
    finally:
        bouncer.stop()  # before the test database is dropped


@pytest.fixture(scope="module", autouse=True)
def _through_pgbouncer(pgbouncer) -> Iterator[None]:
    """Every test of this module talks to the test database through PgBouncer, as the app
    does behind a transaction pooler (DATABASE_POOLER=transaction, no prepared statements).

    Module-scoped, so that it is in place before pytest-django opens a test's transaction.
    """
    options = {
        k: v for k, v in connection.settings_dict["OPTIONS"].items() if k != "prepare_threshold"
    }
    with (
        override_settings(DATABASE_POOLER=TRANSACTION_POOLER),
        database_pointed_at(
            "default",
            **pgbouncer.settings_changes(),
            OPTIONS=options,
            DISABLE_SERVER_SIDE_CURSORS=True,
        ),
    ):
        yield


class Caller:
    """A thread with its own Django connection, i.e. its own PgBouncer client."""

    def __init__(self, executor: ThreadPoolExecutor):
        self.executor = executor

    def run(self, call: Callable, *args, **kwargs):
        """Run ``call`` on this caller's thread and return what it returns (or raise)."""
        return self.executor.submit(call, *args, **kwargs).result()


@contextlib.contextmanager
def two_callers() -> Iterator[tuple[Caller, Caller]]:
    with ThreadPoolExecutor(1) as first, ThreadPoolExecutor(1) as second:
        callers = Caller(first), Caller(second)
        try:
            yield callers
        finally:
            for caller in callers:
                caller.run(connections.close_all)


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def _scoped_rows(tenant_id: int, sql: str) -> list[tuple]:
    with rls_tenants([tenant_id]):
        return _rows(sql)


def _scoped_rows_in_transaction(tenant_id: int, sql: str) -> list[tuple]:
    with rls_tenants([tenant_id]), transaction.atomic():
        _rows("SELECT 1")  # an earlier statement of the same transaction
        return _rows(sql)


def _raw(sql: str) -> tuple:
    # Straight on the driver: what the server connection holds, bypassing the scoping.
    connection.ensure_connection()
    return connection.connection.execute(sql).fetchone()


def _discard_session_state() -> None:
    connection.ensure_connection()
    connection.connection.execute("DISCARD ALL")


def _server_pid() -> int:
    return _raw("SELECT pg_backend_pid()")[0]


def _in_force() -> tuple:
    return _raw(IN_FORCE_SQL)


def _members(*groups):
    """Return an API client per care group, authenticated as a carer of it."""
    clients = []
    for group in groups:
        _, key = api_token_create(user=MembershipFactory(tenant=group.tenant).user)
        client = APIClient(raise_request_exception=False)
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        clients.append(client)
    return clients


def _notes_seen(client: APIClient, tenant_id: int) -> set[int]:
    response = client.get("/api/notes/", {"tenant_id": tenant_id, "page_size": 200})
    assert response.status_code == HTTPStatus.OK, response.content
    return {note["tenant_id"] for note in response.json()["results"]}


def _stats_total(client: APIClient, group) -> int:
    response = client.get(CARE_STATS_URL, stats_query(group))
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()["total_notes"]


@pytest.mark.django_db(transaction=True)
def test_interleaved_callers_of_two_tenants_never_see_each_others_rows():
    ours, theirs = care_group_create(), care_group_create()
    a, b = ours.tenant.pk, theirs.tenant.pk
    with two_callers() as (first, second):
        # One server connection serves both clients: the interleaving is forced.
        assert first.run(_server_pid) == second.run(_server_pid)
        for _ in range(ROUNDS):
            assert first.run(_scoped_rows, a, NOTES_SQL) == [(a,)]
            assert second.run(_scoped_rows, b, NOTES_SQL) == [(b,)]
            assert first.run(_scoped_rows, a, TENANTS_SQL) == [(a,)]
            assert second.run(_scoped_rows_in_transaction, b, TENANTS_SQL) == [(b,)]
            assert first.run(_scoped_rows_in_transaction, a, NOTES_SQL) == [(a,)]
            # Between transactions the server connection holds no scope at all.
            assert first.run(_in_force) in NOTHING_IN_FORCE
            assert second.run(_in_force) in NOTHING_IN_FORCE


@pytest.mark.django_db(transaction=True)
def test_interleaved_requests_of_two_tenants_answer_each_caller_with_its_own_rows(settings):
    settings.STATS_CACHE_ENABLED = False  # every stats request reads PostgreSQL
    ours, theirs = care_group_create(), care_group_create()
    CareNote.objects.filter(tenant=theirs.tenant).first().delete()  # distinct totals: 4 and 3
    our_client, their_client = _members(ours, theirs)
    with two_callers() as (first, second):
        for _ in range(ROUNDS):
            assert first.run(_stats_total, our_client, ours) == 4
            assert second.run(_stats_total, their_client, theirs) == 3
            assert first.run(_notes_seen, our_client, ours.tenant.pk) == {ours.tenant.pk}
            assert second.run(_notes_seen, their_client, theirs.tenant.pk) == {theirs.tenant.pk}
        assert first.run(_in_force) in NOTHING_IN_FORCE


@pytest.mark.django_db(transaction=True)
def test_session_scopes_behind_a_transaction_pooler_answer_for_the_wrong_caller(settings):
    """Why DATABASE_POOLER exists: the direct-connection scoping, behind this PgBouncer,
    runs a caller's statement under the other caller's scope (the reported bug)."""
    settings.DATABASE_POOLER = ""
    ours, theirs = care_group_create(), care_group_create()
    a, b = ours.tenant.pk, theirs.tenant.pk
    with two_callers() as (first, second):
        try:
            assert first.run(_scoped_rows, a, NOTES_SQL) == [(a,)]
            assert second.run(_scoped_rows, b, NOTES_SQL) == [(b,)]
            # The first caller believes its scope is still in force and sends none.
            assert first.run(_scoped_rows, a, NOTES_SQL) == [(b,)]
            assert first.run(_in_force) == (False, str(b), "off")
        finally:
            # Nothing resets a server connection in transaction mode: clean up for the next.
            first.run(_discard_session_state)


def _post_note(client: APIClient, group) -> int:
    patient = group.patients[0]
    response = client.post(
        "/api/notes/",
        {
            "tenant_id": group.tenant.pk,
            "facility_id": patient.facility_id,
            "patient_id": patient.pk,
            "category": "observation",
            "priority": 3,
            "body": "never stored",
        },
        format="json",
    )
    return response.status_code


@pytest.mark.django_db(transaction=True)
def test_a_request_that_fails_mid_transaction_leaves_nothing_behind(monkeypatch):
    ours, theirs = care_group_create(), care_group_create()
    our_client, their_client = _members(ours, theirs)

    def fail_after_the_insert(**kwargs):
        raise RuntimeError("the request fails after its INSERT, inside its transaction")

    with two_callers() as (first, second):
        assert first.run(_server_pid) == second.run(_server_pid)
        with monkeypatch.context() as patch:
            patch.setattr(services, "note_changed_on_commit", fail_after_the_insert)
            status = first.run(_post_note, our_client, ours)
        assert status == HTTPStatus.INTERNAL_SERVER_ERROR
        # The next client on the same server connection finds no scope, no role, no row.
        assert second.run(_in_force) in NOTHING_IN_FORCE
        assert second.run(_notes_seen, their_client, theirs.tenant.pk) == {theirs.tenant.pk}
        assert second.run(
            _scoped_rows, ours.tenant.pk, "SELECT count(*) FROM carenotes_carenote"
        ) == [(4,)]
        with rls_system():
            assert not CareNote.objects.filter(body="never stored").exists()
        assert first.run(_post_note, our_client, ours) == HTTPStatus.CREATED


@pytest.mark.django_db(transaction=True)
def test_statements_run_as_the_app_role_and_vacuum_runs_unscoped():
    group = care_group_create()
    with rls_tenants([group.tenant.pk]):
        assert _rows("SELECT current_user") == [(APP_ROLE,)]
    # VACUUM cannot run in a transaction block: it is sent as is, and works.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM carenotes_carenote")
    assert _in_force() in NOTHING_IN_FORCE


def _server_binding_rows(tenant_id: int, sql: str) -> list[tuple]:
    # Server-side binding (what prepared_cursor uses where prepared statements are on).
    connection.ensure_connection()
    with (
        rls_tenants([tenant_id]),
        connection._prepare_cursor(psycopg.Cursor(connection.connection)) as cursor,
    ):
        cursor.execute(sql + " WHERE %s", [True])
        return cursor.fetchall()


def _insert_facilities(tenant_id: int, rows: list[tuple[int, str]]) -> None:
    with rls_tenants([tenant_id]), connection.cursor() as cursor:
        cursor.executemany("INSERT INTO tenants_facility (tenant_id, name) VALUES (%s, %s)", rows)


@pytest.mark.django_db(transaction=True)
def test_pipelined_statements_carry_their_scope_too():
    ours, theirs = care_group_create(), care_group_create()
    a, b = ours.tenant.pk, theirs.tenant.pk
    with two_callers() as (first, second):
        assert first.run(_server_binding_rows, a, NOTES_SQL) == [(a,)]
        assert second.run(_server_binding_rows, b, NOTES_SQL) == [(b,)]
        first.run(_insert_facilities, a, [(a, "east"), (a, "west")])
        with pytest.raises(ProgrammingError, match="row-level security"):
            second.run(_insert_facilities, b, [(b, "east"), (a, "smuggled")])
        assert second.run(_in_force) in NOTHING_IN_FORCE
    with rls_system():
        assert sorted(
            Facility.objects.filter(name__in=["east", "west", "smuggled"]).values_list(
                "tenant_id", "name"
            )
        ) == [(a, "east"), (a, "west")]


@pytest.mark.slow
def test_migrate_and_seed_notes_work_through_the_pooler(tmp_path):
    """docker compose's migrate and seed share web's environment, pooler included."""
    with skipped_when_missing():
        primary = PostgresServer.primary()
    primary.start()
    bouncer = PgBouncer(
        target={
            "host": "127.0.0.1",
            "port": str(primary.port),
            "name": "carenotes",
            "user": "postgres",
            "password": "",
        },
        pool_size=2,
    )
    try:
        primary.execute("CREATE DATABASE carenotes")
        bouncer.start()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "DATABASE_URL": bouncer.url(),
            "DATABASE_POOLER": TRANSACTION_POOLER,
            "DJANGO_DEBUG": "1",
        }
        credentials = str(tmp_path / "credentials.json")
        for command in (
            ("migrate", "--noinput", "--verbosity", "0"),
            (
                "seed_notes",
                "--notes",
                "2000",
                "--seed",
                "3",
                "--quiet",
                "--credentials",
                credentials,
            ),
        ):
            result = subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stdout + result.stderr
        notes = primary.execute("SELECT count(*) FROM carenotes_carenote", database="carenotes")
        assert notes == [(2000,)]
    finally:
        bouncer.stop()
        primary.stop()
        shutil.rmtree(primary.data_dir.parent, ignore_errors=True)


# --- the stats endpoint and notes API, again through PgBouncer ---------------------------------
# These tests are collected here a second time, so they run under this module's autouse
# fixture: the app talking to PostgreSQL through the pooler, transaction-local scopes.

care_group = stats_fixtures.care_group
member_client = stats_fixtures.member_client
patient, carer, client = notes_api.patient, notes_api.carer, notes_api.client

test_stats_documented_body = stats_views.test_returns_the_documented_body
test_stats_warm_hit = stats_views.test_a_warm_request_is_a_hit_without_any_database_query
test_stats_facility_scope = (
    stats_views.test_facility_ids_are_deduplicated_sorted_and_limit_the_scope
)
test_stats_isolation = stats_views.test_member_of_another_tenant_gets_404_and_no_data
test_stats_revoked_membership = stats_views.test_revoked_membership_is_404_on_the_next_request
test_stats_superuser = stats_views.test_superuser_sees_any_tenant_but_not_a_missing_one
test_notes_record = notes_api.test_member_records_a_note_and_gets_it_back
test_notes_non_member_writes_nothing = notes_api.test_non_member_gets_404_and_nothing_is_written
test_notes_list = notes_api.test_list_returns_the_tenants_notes_newest_first
test_notes_filters = notes_api.test_list_filters
test_notes_cursor = notes_api.test_cursor_pages_are_stable_under_concurrent_inserts
test_notes_query_count = notes_api.test_list_query_count_does_not_grow_with_rows
test_notes_isolation = notes_api.test_member_of_another_tenant_gets_404_and_no_data
test_notes_superuser = notes_api.test_superuser_lists_any_tenant_by_id
test_notes_detail = notes_api.test_detail_returns_the_note
test_notes_foreign_detail = (
    notes_api.test_detail_of_another_tenants_note_is_the_same_404_as_a_missing_one
)
