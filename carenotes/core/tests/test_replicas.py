"""Replica bookkeeping without a replica: which statements count as writes, for which tenants,
and that with no replica configured nothing is routed or recorded. The real streaming replica
is in system_tests/test_replica.py."""

import pytest
from django.db import connection, router
from django_redis import get_redis_connection

from carenotes.core import replicas
from carenotes.core.replicas import (
    ALL_FIELD,
    ANY_FIELD,
    EVERY_TENANT,
    FLOOR_FIELD,
    PRIMARY,
    Reach,
    Tenancy,
    replica_read_view,
    replica_reads,
    write_reach,
)

OURS = Reach(tenant_ids=(3, 5))


@pytest.fixture
def tenancy(monkeypatch):
    """A tenancy whose only tenant table is "notes" and whose scope reaches tenants 3 and 5."""
    monkeypatch.setattr(replicas, "_tenancy", Tenancy(tenant_tables={"notes"}, reach=lambda: OURS))


@pytest.mark.parametrize(
    "sql",
    [
        'SELECT "notes"."id" FROM "notes"',
        "  select 1",
        "(SELECT 1) UNION (SELECT 2)",
        "SHOW work_mem",
        "SET LOCAL statement_timeout = 5",
        "EXPLAIN SELECT 1",
        "WITH recent AS (SELECT 1) SELECT * FROM recent",
    ],
)
def test_reads_write_nothing(tenancy, sql):
    assert write_reach(sql) is None


@pytest.mark.parametrize(
    "sql",
    [
        'INSERT INTO "notes" ("body") VALUES (%s) RETURNING "notes"."id"',
        'UPDATE "notes" SET "body" = %s WHERE "notes"."id" = %s',
        'DELETE FROM "notes" WHERE "notes"."id" IN (%s)',
        "insert into notes select * from generate_series(1, 3)",
    ],
)
def test_a_write_to_a_tenant_table_reaches_the_scopes_tenants(tenancy, sql):
    assert write_reach(sql) == OURS


@pytest.mark.parametrize(
    "sql",
    [
        'UPDATE "django_session" SET "session_data" = %s',
        'INSERT INTO "auth_user" ("username") VALUES (%s)',
        "TRUNCATE notes",
        "ALTER TABLE notes ADD COLUMN x int",
        "WITH gone AS (DELETE FROM notes RETURNING id) SELECT count(*) FROM gone",
        "EXPLAIN ANALYZE DELETE FROM notes",
        "COPY notes FROM STDIN",
    ],
)
def test_any_other_write_reaches_every_tenant(tenancy, sql):
    assert write_reach(sql) == EVERY_TENANT


def test_an_access_audit_record_is_no_write_a_reader_waits_for(tenancy, settings):
    """The INSERT each audited note read makes must not send the reader to the primary."""
    sql = 'INSERT INTO "audit_readrecord" ("route") VALUES (%s) RETURNING "id"'
    assert "audit_readrecord" in settings.DATABASE_REPLICA_UNTRACKED_TABLES
    assert write_reach(sql) is None
    settings.DATABASE_REPLICA_UNTRACKED_TABLES = frozenset()
    assert write_reach(sql) == EVERY_TENANT


def test_a_reader_waits_for_its_tenants_and_for_writes_that_reach_everyone():
    assert replicas._fields_read(OURS) == [FLOOR_FIELD, ALL_FIELD, "t:3", "t:5"]
    assert replicas._fields_read(EVERY_TENANT) == [FLOOR_FIELD, ANY_FIELD]
    assert replicas._fields_read(Reach()) == [FLOOR_FIELD, ALL_FIELD]
    assert replicas._fields_written(OURS) == ["t:3", "t:5", ANY_FIELD]
    assert replicas._fields_written(EVERY_TENANT) == [ALL_FIELD, ANY_FIELD]
    assert replicas._fields_written(Reach()) == [ALL_FIELD, ANY_FIELD]


def test_positions_only_ever_rise():
    replicas.wal_positions_record(fields={"t:3", ANY_FIELD}, position=200)
    replicas.wal_positions_record(fields={"t:3"}, position=100)
    replicas.wal_positions_record(fields={"t:5"}, position=150)
    stored = get_redis_connection("default").hgetall(replicas._wal_key())
    assert stored == {b"t:3": b"200", b"t:5": b"150", ANY_FIELD.encode(): b"200"}


@pytest.mark.parametrize(
    ("view_name", "allowed"),
    [
        ("care-stats", True),
        ("note-list", True),
        ("note-detail", True),
        ("resident-list", True),
        ("resident-detail", True),
        ("admin:carenotes_carenote_changelist", True),
        ("admin:carenotes_carenote_change", False),
        ("me", False),
    ],
)
def test_the_listed_views_may_read_from_a_replica(view_name, allowed):
    assert replica_read_view(view_name) is allowed


@pytest.mark.django_db(transaction=True)
def test_without_replicas_nothing_is_routed_or_recorded(settings):
    assert settings.DATABASE_REPLICAS == ()
    assert settings.DATABASE_ROUTERS == []
    with replica_reads():
        assert replicas.read_alias() == PRIMARY
        assert router.db_for_read(None) == PRIMARY
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE scratch (id int)")
        cursor.execute("INSERT INTO scratch VALUES (1)")
    assert get_redis_connection("default").exists(replicas._wal_key()) == 0
