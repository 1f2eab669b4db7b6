"""Read replicas against a real streaming replica: reads are served there, read-your-writes
holds exactly, and a replica that stops, refuses or lags costs no failed request.

The module starts a throwaway primary (initdb) and a streaming replica of it (pg_basebackup
-R), each on a free port. The machine's own cluster is not used: it holds every checkout's
databases (gigabytes to copy) and need not accept replication connections. For the module,
Django's ``default`` database is the test database migrated on that primary, and
``replica1`` the replica, routed by ``carenotes.core.routers.ReplicaRouter`` exactly as
``DATABASE_REPLICA_URLS`` configures it.
"""

import contextlib
import copy
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from zoneinfo import ZoneInfo

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection, connections, router, transaction
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from carenotes.core import replicas, routers
from carenotes.core.db import read_connection
from carenotes.core.replicas import EVERY_TENANT, PRIMARY, replica_reads
from carenotes.notes.models import CareNote
from stats.selectors import ROLLUP_COUNTS_TABLE
from stats.tests.factories import CARE_STATS_URL, CareGroup, care_group_create
from system_tests.scaleout import (
    PostgresServer,
    database_pointed_at,
    free_port,
    skipped_when_missing,
    wait_for_replay,
    wait_until,
)
from tenants.rls import APP_ROLE, NO_TENANTS, db_scope, rls_system, rls_tenants
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.slow

REPLICA = "replica1"
DEAD_REPLICA = "replica_dead"
REPLICATED = pytest.mark.django_db(transaction=True, databases=[PRIMARY, REPLICA, DEAD_REPLICA])
NOTES_SQL = "SELECT DISTINCT tenant_id FROM carenotes_carenote"
STATS_SQL_MARK = "COUNT(DISTINCT patient_id)"
TRAFFIC_THREADS = 4


@dataclass
class Topology:
    primary: PostgresServer
    replica: PostgresServer
    database: str

    def wait_for_replay(self) -> None:
        wait_for_replay(self.primary, self.replica, self.database)

    def on_replica(self, sql: str, params=()) -> list[tuple]:
        return self.replica.execute(sql, params, database=self.database)


def _alias_settings(base: dict, *, port: int) -> dict:
    """Return a complete Django settings dict for a replica alias at ``port``."""
    settings_dict = copy.deepcopy(base)
    settings_dict.update(HOST="127.0.0.1", PORT=str(port), CONN_HEALTH_CHECKS=False)
    settings_dict["OPTIONS"]["connect_timeout"] = 1
    settings_dict["TEST"] = {**settings_dict["TEST"], "MIRROR": PRIMARY}
    return settings_dict


@contextlib.contextmanager
def aliases_added(**aliases: dict) -> Iterator[None]:
    for alias, settings_dict in aliases.items():
        connections.settings[alias] = settings_dict
    try:
        yield
    finally:
        for alias in aliases:
            connections[alias].close()
            del connections[alias]
            del connections.settings[alias]


@pytest.fixture(scope="module")
def topology(django_db_setup, django_db_blocker) -> Iterator[Topology]:
    """A primary with the migrated test database and a streaming replica, as `default` and
    `replica1`; a third alias names a port nothing listens on."""
    with skipped_when_missing():
        primary = PostgresServer.primary()
    primary.start()
    database = connection.settings_dict["NAME"]
    try:
        primary.execute(f'CREATE DATABASE "{database}"')
        with (
            django_db_blocker.unblock(),
            database_pointed_at(
                PRIMARY, HOST="127.0.0.1", PORT=str(primary.port), USER="postgres", PASSWORD=""
            ),
        ):
            ContentType.objects.clear_cache()
            call_command("migrate", verbosity=0)
            replica = primary.replica()
            replica.start()
            base = connection.settings_dict
            with (
                aliases_added(
                    **{
                        REPLICA: _alias_settings(base, port=replica.port),
                        DEAD_REPLICA: _alias_settings(base, port=free_port()),
                    }
                ),
                override_settings(
                    DATABASE_REPLICAS=(REPLICA,),
                    DATABASE_ROUTERS=["carenotes.core.routers.ReplicaRouter"],
                ),
            ):
                yield Topology(primary=primary, replica=replica, database=database)
            replica.stop()
            ContentType.objects.clear_cache()
    finally:
        primary.stop()
        shutil.rmtree(primary.data_dir.parent, ignore_errors=True)


@pytest.fixture(autouse=True)
def _fresh_bookkeeping(topology, monkeypatch) -> Iterator[None]:
    """Each test starts with the replica known caught up and healthy in this process."""
    monkeypatch.setattr(replicas, "REPLICA_RETRY_SECONDS", 0.5)
    replicas.replica_states_reset()
    # The per-test Redis cleanup dropped the recorded positions: record the floor again.
    with replica_reads():
        replicas.wal_position_needed(EVERY_TENANT)
    topology.wait_for_replay()
    yield
    replicas.replica_states_reset()


@contextlib.contextmanager
def statements_by_alias() -> Iterator[list[tuple[str, str]]]:
    """Yield the (alias, sql) of every statement this thread runs on either server."""
    seen: list[tuple[str, str]] = []

    def spy(alias):
        def wrapper(execute, sql, params, many, context):
            seen.append((alias, sql))
            return execute(sql, params, many, context)

        return wrapper

    with (
        connections[PRIMARY].execute_wrapper(spy(PRIMARY)),
        connections[REPLICA].execute_wrapper(spy(REPLICA)),
    ):
        yield seen


def _member_key(group: CareGroup, role: str = "manager") -> str:
    return api_token_create(user=MembershipFactory(tenant=group.tenant, role=role).user)[1]


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _member_client(group: CareGroup, role: str = "manager") -> APIClient:
    return _client(_member_key(group, role))


def _today_stats(client: APIClient, group: CareGroup) -> tuple[int, str]:
    response = client.get(CARE_STATS_URL, {"tenant_id": group.tenant.pk})
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()["total_notes"], response["X-Cache"]


def _post_note(client: APIClient, group: CareGroup) -> int:
    patient = group.patients[0]
    response = client.post(
        "/api/notes/",
        {
            "tenant_id": group.tenant.pk,
            "facility_id": patient.facility_id,
            "patient_id": patient.pk,
            "category": "observation",
            "priority": 3,
            "body": "seen on the replica only after replay",
        },
        format="json",
    )
    assert response.status_code == HTTPStatus.CREATED, response.content
    return response.json()["id"]


def _answered_by(seen: list[tuple[str, str]], mark: str) -> set[str]:
    return {alias for alias, sql in seen if mark in sql}


def _today_group() -> CareGroup:
    """A care group whose four notes are a minute old (today's stats count them)."""
    group = care_group_create()
    CareNote.objects.filter(tenant=group.tenant).update(
        created_at=timezone.now() - timedelta(minutes=1)
    )
    return group


@REPLICATED
def test_reads_of_listed_views_are_served_by_the_replica_and_writes_by_the_primary(topology):
    group = _today_group()
    client = _member_client(group)
    note_id = CareNote.objects.filter(tenant=group.tenant).values_list("id", flat=True).first()
    topology.wait_for_replay()

    with statements_by_alias() as seen:
        response = client.get(CARE_STATS_URL, {"tenant_id": group.tenant.pk})
    assert (response.json()["total_notes"], response["X-Cache"]) == (4, "MISS")
    assert _answered_by(seen, STATS_SQL_MARK) == {REPLICA}
    # The time spent on the replica is in the answer's Server-Timing.
    assert not response["Server-Timing"].startswith("db;dur=0.00")
    with connections[REPLICA].cursor() as cursor:  # the connection that answered
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone() == (True,)

    with statements_by_alias() as seen:
        listed = client.get("/api/notes/", {"tenant_id": group.tenant.pk})
        detail = client.get(f"/api/notes/{note_id}/")
    assert (listed.status_code, detail.status_code) == (HTTPStatus.OK, HTTPStatus.OK)
    assert len(listed.json()["results"]) == 4
    assert _answered_by(seen, '"carenotes_carenote"') == {REPLICA}

    carer = _member_client(group, role="carer")
    with statements_by_alias() as seen:
        _post_note(carer, group)
        me = carer.get("/api/me/")  # not a listed view
    assert me.status_code == HTTPStatus.OK
    assert {alias for alias, _ in seen} == {PRIMARY}


@REPLICATED
def test_the_notes_admin_changelist_is_served_by_the_replica(topology):
    group = _today_group()
    admin = Client()
    admin.force_login(UserFactory(is_superuser=True, is_staff=True))  # the session: primary
    topology.wait_for_replay()
    with statements_by_alias() as seen:
        response = admin.get("/admin/carenotes/carenote/")
    assert response.status_code == HTTPStatus.OK
    for note_id in CareNote.objects.filter(tenant=group.tenant).values_list("id", flat=True):
        assert f"/admin/carenotes/carenote/{note_id}/change/" in response.text
    assert _answered_by(seen, 'FROM "carenotes_carenote"') == {REPLICA}
    assert _answered_by(seen, 'FROM "django_session"') == {REPLICA}


@REPLICATED
def test_a_note_posted_while_replay_is_paused_is_in_the_next_answer_and_never_cached_stale(
    topology, settings
):
    settings.DATABASE_REPLICA_MAX_LAG = 60  # the pause must not make the replica "lagging"
    ours, theirs = _today_group(), _today_group()
    manager, carer, their_manager = (
        _member_client(ours),
        _member_client(ours, role="carer"),
        _member_client(theirs),
    )
    topology.wait_for_replay()
    assert _today_stats(manager, ours) == (4, "MISS")
    assert _today_stats(manager, ours) == (4, "HIT")

    topology.on_replica("SELECT pg_wal_replay_pause()")
    try:
        _post_note(carer, ours)
        # The replica really is behind: it still counts the old notes.
        stale = topology.on_replica(
            "SELECT count(*) FROM carenotes_carenote WHERE tenant_id = %s", [ours.tenant.pk]
        )
        assert stale == [(4,)]
        with statements_by_alias() as seen:
            assert _today_stats(manager, ours) == (5, "MISS")
        assert _answered_by(seen, STATS_SQL_MARK) == {PRIMARY}
        # The refill after the write's invalidation read the primary: cached fresh.
        assert _today_stats(manager, ours) == (5, "HIT")
        # A tenant that did not write is still served by the paused replica.
        with statements_by_alias() as seen:
            assert _today_stats(their_manager, theirs) == (4, "MISS")
        assert _answered_by(seen, STATS_SQL_MARK) == {REPLICA}
    finally:
        topology.on_replica("SELECT pg_wal_replay_resume()")
    topology.wait_for_replay()
    assert _today_stats(manager, ours) == (5, "HIT")


@REPLICATED
def test_range_reads_are_served_by_the_replica_and_see_a_write_it_has_not_replayed(
    topology, settings
):
    settings.DATABASE_REPLICA_MAX_LAG = 60
    group = _today_group()
    manager, carer = _member_client(group), _member_client(group, role="carer")
    today = timezone.localdate(timezone=ZoneInfo(group.tenant.timezone))
    query = {
        "tenant_id": group.tenant.pk,
        "date_from": (today - timedelta(days=6)).isoformat(),
        "date_to": today.isoformat(),
    }
    topology.wait_for_replay()
    with statements_by_alias() as seen:
        response = manager.get(CARE_STATS_URL, query)
    assert (response.status_code, response.json()["total_notes"]) == (HTTPStatus.OK, 4)
    assert _answered_by(seen, ROLLUP_COUNTS_TABLE) == {REPLICA}

    topology.on_replica("SELECT pg_wal_replay_pause()")
    try:
        _post_note(carer, group)
        with statements_by_alias() as seen:
            response = manager.get(CARE_STATS_URL, query)
        assert (response.json()["total_notes"], response["X-Cache"]) == (5, "MISS")
        assert _answered_by(seen, ROLLUP_COUNTS_TABLE) == {PRIMARY}
    finally:
        topology.on_replica("SELECT pg_wal_replay_resume()")


class Traffic:
    """Reader threads (own clients and connections) reading stats and notes until stopped."""

    def __init__(self, group: CareGroup, key: str):
        self.group, self.key = group, key
        self.statuses: Counter = Counter()
        self.totals: Counter = Counter()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run) for _ in range(TRAFFIC_THREADS)]

    def _run(self) -> None:
        client = _client(self.key)
        try:
            while not self.stopping.is_set():
                stats = client.get(CARE_STATS_URL, {"tenant_id": self.group.tenant.pk})
                notes = client.get("/api/notes/", {"tenant_id": self.group.tenant.pk})
                self.statuses.update([stats.status_code, notes.status_code])
                if stats.status_code == HTTPStatus.OK:
                    self.totals[stats.json()["total_notes"]] += 1
        finally:
            connections.close_all()

    def __enter__(self) -> "Traffic":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)


@contextlib.contextmanager
def read_aliases_counted() -> Iterator[Counter]:
    """Count the databases the router hands to reads, in every thread."""
    counted: Counter = Counter()
    original = routers.read_alias

    def counting() -> str:
        alias = original()
        counted[alias] += 1
        return alias

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(routers, "read_alias", counting)
        yield counted


@REPLICATED
def test_a_replica_stopped_mid_traffic_costs_no_failed_read_and_is_used_again(topology, settings):
    settings.STATS_CACHE_ENABLED = False  # every stats request reads PostgreSQL
    group = _today_group()
    key = _member_key(group)
    topology.wait_for_replay()
    with read_aliases_counted() as before, Traffic(group, key) as traffic:
        wait_until(lambda: before[REPLICA] >= 20, timeout=30, message="no replica reads")
    assert set(traffic.statuses) == {HTTPStatus.OK}

    with read_aliases_counted() as during, Traffic(group, key) as traffic:
        wait_until(lambda: during[REPLICA] >= 10, timeout=30, message="no replica reads")
        topology.replica.stop(mode="immediate")
        wait_until(lambda: during[PRIMARY] >= 40, timeout=30, message="reads stopped")
    assert set(traffic.statuses) == {HTTPStatus.OK}, traffic.statuses
    assert set(traffic.totals) == {4}

    topology.replica.start()
    topology.wait_for_replay()
    with read_aliases_counted() as after, Traffic(group, key) as traffic:
        wait_until(lambda: after[REPLICA] >= 10, timeout=30, message="replica not used again")
    assert set(traffic.statuses) == {HTTPStatus.OK}


@REPLICATED
def test_a_replica_that_refuses_connections_is_skipped(topology, settings):
    settings.DATABASE_REPLICAS = (DEAD_REPLICA, REPLICA)
    group = _today_group()
    client = _member_client(group)
    topology.wait_for_replay()
    with read_aliases_counted() as counted:
        answers = [_today_stats(client, group)[0] for _ in range(3)]
    assert answers == [4, 4, 4]
    assert counted[DEAD_REPLICA] == 0
    assert counted[REPLICA] > 0
    assert replicas._states[DEAD_REPLICA].usable is False  # tried, found down, skipped


@REPLICATED
def test_a_replica_lagging_beyond_the_limit_is_skipped_until_it_catches_up(
    topology, settings, monkeypatch
):
    settings.DATABASE_REPLICA_MAX_LAG = 1
    monkeypatch.setattr(replicas, "REPLICA_POSITION_MAX_AGE", 0.2)
    ours, theirs = _today_group(), _today_group()
    carer, their_manager = _member_client(ours, role="carer"), _member_client(theirs)
    topology.wait_for_replay()
    topology.on_replica("SELECT pg_wal_replay_pause()")
    try:
        _post_note(carer, ours)  # WAL the replica receives and does not replay
        time.sleep(settings.DATABASE_REPLICA_MAX_LAG + 0.5)
        with statements_by_alias() as seen:
            assert _today_stats(their_manager, theirs) == (4, "MISS")
        # Nothing of theirs is unreplayed, but the replica is too far behind to be trusted.
        assert _answered_by(seen, STATS_SQL_MARK) == {PRIMARY}
    finally:
        topology.on_replica("SELECT pg_wal_replay_resume()")
    topology.wait_for_replay()
    time.sleep(replicas.REPLICA_POSITION_MAX_AGE)
    with replica_reads():
        assert router.db_for_read(CareNote) == REPLICA


@REPLICATED
def test_lost_positions_send_reads_to_the_primary_until_a_floor_is_recorded(topology):
    group = _today_group()
    topology.wait_for_replay()
    replicas.get_redis_connection("default").delete(replicas._wal_key())  # a restarted Redis
    with replica_reads(), rls_tenants([group.tenant.pk]):
        assert router.db_for_read(CareNote) == PRIMARY  # and records the floor
        topology.wait_for_replay()
        time.sleep(replicas.REPLICA_RECHECK_SECONDS)
        assert router.db_for_read(CareNote) == REPLICA


@REPLICATED
def test_row_level_security_holds_on_the_replica(topology):
    ours, theirs = _today_group(), _today_group()
    topology.wait_for_replay()
    replica = connections[REPLICA]

    def rows(sql: str) -> list[tuple]:
        with replica.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()

    with rls_tenants([ours.tenant.pk]):
        assert rows(NOTES_SQL) == [(ours.tenant.pk,)]
        assert rows("SELECT current_user, pg_is_in_recovery()") == [(APP_ROLE, True)]
    with rls_tenants([theirs.tenant.pk]):
        assert rows(NOTES_SQL) == [(theirs.tenant.pk,)]
    with db_scope(NO_TENANTS):
        assert rows(NOTES_SQL) == []
    with rls_system():
        assert len(rows(NOTES_SQL)) == 2


@REPLICATED
def test_writes_migrations_and_reads_inside_a_transaction_use_the_primary(topology):
    group = _today_group()
    topology.wait_for_replay()
    with replica_reads(), rls_tenants([group.tenant.pk]):
        time.sleep(replicas.REPLICA_RECHECK_SECONDS)
        assert router.db_for_read(CareNote) == REPLICA
        assert read_connection().alias == REPLICA
        assert router.db_for_write(CareNote) == PRIMARY
        with transaction.atomic():
            assert router.db_for_read(CareNote) == PRIMARY
    # Outside a listed view or a replica_reads() block: the primary.
    assert router.db_for_read(CareNote) == PRIMARY
    assert router.allow_migrate(REPLICA, "carenotes") is False
    assert router.allow_migrate(PRIMARY, "carenotes") is True
