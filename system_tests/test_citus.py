"""carenotes on a real Citus cluster (CITUS_URL: a coordinator with two workers).

A seeded database is distributed with ``manage.py citus_distribute`` and compared with a
plain-PostgreSQL twin seeded alike: the same API answers, row-level security enforced on
the workers, every hot statement routed to one worker. Skipped without CITUS_URL
(tools/citus_cluster.py starts a cluster; .ci/run does when the extension is installed).
"""

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from system_tests.citus import (
    SEED_ARGS,
    manage,
    plain_database_create,
    plain_database_drop,
    probe,
    shard_placements,
)
from tenants.citus import REFERENCE_TABLES
from tools.citus_databases import (
    cluster_database_create,
    cluster_database_drop,
    cluster_nodes,
    database_url,
)

pytestmark = [pytest.mark.citus, pytest.mark.slow]

TENANT_TABLES = {
    "tenants_facility",
    "carenotes_patient",
    "carenotes_carenote",
    "carenotes_carenoteamendment",
    "carenotes_carenoteevent",
    "carenotes_carenoteamendmentevent",
    "carenotes_idempotencykey",
    "stats_day_counts",
    "stats_day_residents",
    "audit_readrecord",
}


@dataclass(frozen=True)
class Seeded:
    url: str
    credentials: Path
    distributed: str  # citus_distribute's output
    prefix: str


def _seeded(url: str, credentials: Path, *, prefix: str) -> None:
    manage(url, "migrate", "--noinput", citus=False, prefix=prefix)
    manage(url, "seed_notes", *SEED_ARGS, "--credentials", str(credentials), citus=False,
           prefix=prefix)  # fmt: skip


@pytest.fixture(scope="module")
def cluster(citus_url, tmp_path_factory):
    name = f"carenotes_citus_{os.getpid()}"
    url = cluster_database_create(citus_url, name)
    credentials = tmp_path_factory.mktemp("citus") / "credentials.json"
    prefix = f"citus{os.getpid()}"
    _seeded(url, credentials, prefix=prefix)
    distributed = manage(url, "citus_distribute", citus=True, prefix=prefix)
    yield Seeded(url, credentials, distributed, prefix)
    cluster_database_drop(citus_url, name)


@pytest.fixture(scope="module")
def plain(citus_url, tmp_path_factory):
    """The same seed on the suite's plain PostgreSQL server."""
    name = f"carenotes_plain_{os.getpid()}"
    url = plain_database_create(os.environ["DATABASE_URL"], name)
    credentials = tmp_path_factory.mktemp("plain") / "credentials.json"
    prefix = f"plain{os.getpid()}"
    _seeded(url, credentials, prefix=prefix)
    yield Seeded(url, credentials, "", prefix)
    plain_database_drop(os.environ["DATABASE_URL"], name)


def _kinds(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute("SELECT table_name::text, citus_table_type FROM citus_tables").fetchall()
        )


def _count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


def test_a_seeded_database_is_distributed_by_tenant_with_shards_on_both_workers(
    cluster, plain, citus_url
):
    assert "Distributed 10 tables by tenant and made 10 reference tables" in cluster.distributed
    kinds = _kinds(cluster.url)
    assert {t: kinds.get(t) for t in TENANT_TABLES} == dict.fromkeys(TENANT_TABLES, "distributed")
    assert {t: kinds.get(t) for t in REFERENCE_TABLES} == dict.fromkeys(
        REFERENCE_TABLES, "reference"
    )
    workers = {port for _, port in cluster_nodes(citus_url)[1:]}
    assert len(workers) == 2
    placements = shard_placements(cluster.url)
    assert {t: placements.get(t) for t in TENANT_TABLES} == dict.fromkeys(TENANT_TABLES, workers)
    # Nothing lost or doubled by the conversion, the rollups included.
    for sql in (
        "SELECT count(*) FROM carenotes_carenote",
        "SELECT sum(notes) FROM stats_day_counts",
        "SELECT count(*) FROM stats_day_residents",
        "SELECT count(*) FROM carenotes_patient",
    ):
        assert _count(cluster.url, sql) == _count(plain.url, sql), sql


def test_distributing_again_changes_nothing(cluster):
    again = manage(cluster.url, "citus_distribute", citus=True, prefix=cluster.prefix)
    assert again.strip() == "Already distributed over 2 workers."


def test_an_empty_database_is_distributed_too(citus_url):
    name = f"carenotes_citus_empty_{os.getpid()}"
    url = cluster_database_create(citus_url, name)
    try:
        manage(url, "migrate", "--noinput", citus=False, prefix="citusempty")
        out = manage(url, "citus_distribute", citus=True, prefix="citusempty")
        assert "Distributed 10 tables" in out
        assert {_kinds(url).get(t) for t in TENANT_TABLES} == {"distributed"}
    finally:
        cluster_database_drop(citus_url, name)


def test_the_api_answers_on_citus_as_on_plain_postgresql(cluster, plain):
    on_citus = probe(cluster.url, "answers", cluster.credentials, citus=True,
                     prefix=cluster.prefix)  # fmt: skip
    on_plain = probe(plain.url, "answers", plain.credentials, citus=False, prefix=plain.prefix)
    assert on_citus.keys() == on_plain.keys()
    for name in on_plain:
        assert on_citus[name] == on_plain[name], name
    own = {name: answer for name, answer in on_citus.items() if not name.startswith("foreign")}
    assert all(status == 200 for status, _ in own.values()), own
    # The isolation matrix's row for another tenant's data: refused, naming nothing of it.
    foreign = {name: answer for name, answer in on_citus.items() if name.startswith("foreign")}
    assert len(foreign) == 7
    assert all(status in {403, 404} for status, _ in foreign.values()), foreign
    assert on_citus["stats day"][1]["total_notes"] > 0
    assert len(on_citus["notes list"][1]["results"]) > 0


def test_row_level_security_holds_on_the_workers_through_the_app(cluster):
    seen = probe(cluster.url, "scope", cluster.credentials, citus=True, prefix=cluster.prefix)
    ours = 1
    assert seen["system: every tenant"] == [1, 2, 3]
    assert seen["ours: multi-shard tenants"] == [ours]
    assert seen["ours: in a transaction, multi-shard tenants"] == [ours]
    assert seen["ours: routed to theirs"] == 0
    assert seen["ours: routed to ours > 0"] is True
    assert "row-level security" in seen["ours: foreign insert"]
    assert seen["no tenants: notes"] == 0
    # An amendment through the API: the history rows the triggers wrote on the worker name
    # the caller (pghistory's context, forwarded as SET LOCAL like the scope).
    assert seen["amend: status"] == 201
    history = seen["amend: history"]
    assert [row["pgh_label"] for row in history] == ["before_change", "after_change"]
    assert all(row["pgh_context"]["url"].endswith("/amendments/") for row in history)


def _worker_shard_with_notes(url: str, worker: str, port: int) -> tuple[str, int]:
    """Return a shard of the notes on the worker at ``port`` that holds notes, and a tenant."""
    with psycopg.connect(url) as conn:
        shards = [
            name
            for (name,) in conn.execute(
                "SELECT shard_name FROM citus_shards "
                "WHERE table_name = 'carenotes_carenote'::regclass AND nodeport = %s",
                [port],
            )
        ]
    with psycopg.connect(worker) as owner:
        for shard in shards:
            row = owner.execute(f"SELECT tenant_id FROM {shard} LIMIT 1").fetchone()
            if row is not None:
                return shard, row[0]
    raise AssertionError(f"no notes on the worker at port {port}")


def test_a_wrong_scope_sees_nothing_and_writes_nothing_on_a_worker(cluster, citus_url):
    for host, port in cluster_nodes(citus_url)[1:]:
        worker = database_url(cluster.url, host=host, port=port)
        shard, tenant = _worker_shard_with_notes(cluster.url, worker, port)
        wrong = tenant % 3 + 1
        with psycopg.connect(database_url(worker, user="carenotes_app"), autocommit=True) as conn:
            assert conn.execute(f"SELECT count(*) FROM {shard}").fetchone()[0] == 0  # no scope
            scope = "SELECT set_config('carenotes.tenant_ids', %s, false)"
            conn.execute(scope, [str(wrong)])
            assert conn.execute(f"SELECT count(*) FROM {shard}").fetchone()[0] == 0
            conn.execute(scope, [str(tenant)])
            assert conn.execute(f"SELECT count(*) FROM {shard}").fetchone()[0] > 0
            conn.execute(scope, [str(wrong)])
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                conn.execute(
                    f"INSERT INTO {shard} (tenant_id, facility_id, patient_id, author_id, "
                    "category, priority, body, created_at) "
                    "VALUES (%s, 1, 1, 1, 'observation', 1, 'x', now())",
                    [tenant],
                )


def test_every_hot_statement_runs_on_one_worker(cluster):
    plans = probe(cluster.url, "explain", cluster.credentials, citus=True, prefix=cluster.prefix)
    for name, plan in plans.items():
        assert plan["status"] in {200, 201}, (name, plan)
        assert plan["statements"], name
        for statement in plan["statements"]:
            assert statement["tasks"] == [1], (name, statement)


def test_maintenance_commands_run_on_the_cluster(cluster, citus_url):
    def run(*args: str) -> str:
        return manage(cluster.url, *args, citus=True, prefix=cluster.prefix)

    # Months ahead: each new partition is distributed like its parent, shards on both workers.
    run("notes_partitions", "--ahead", "8")
    placements = shard_placements(cluster.url)
    months = [t for t in placements if t.startswith("carenotes_carenote_p")]
    assert len(months) >= 9
    workers = {port for _, port in cluster_nodes(citus_url)[1:]}
    assert all(placements[month] == workers for month in months)
    # Cross-tenant maintenance: the purges go tenant by tenant (one shard per statement), the
    # rollups' check asks every shard. Expired rows of two tenants, and one that must stay.
    with psycopg.connect(cluster.url, autocommit=True) as owner:
        owner.execute(
            "INSERT INTO carenotes_idempotencykey (tenant_id, user_id, key, fingerprint, "
            "response_body, created_at, expires_at) SELECT m.tenant_id, m.user_id, k.key, '', "
            "'', now() - interval '2 days', now() + k.expires "
            "FROM (SELECT DISTINCT ON (tenant_id) tenant_id, user_id FROM tenants_membership "
            "WHERE tenant_id IN (1, 2) ORDER BY tenant_id, user_id) AS m, "
            "(VALUES ('expired', interval '-1 day'), ('current', interval '1 day')) "
            "AS k (key, expires)"
        )
        owner.execute(
            "INSERT INTO audit_readrecord (read_at, tenant_id, user_id, username, route, "
            "filters, note_count, request_id) SELECT now() - interval '20 years', t, 1, 'x', "
            "'note-list', '{}', 0, '' FROM unnest(ARRAY[1, 2]) AS t"
        )
    assert run("purge_idempotency_keys").strip() == "Deleted 2 expired idempotency keys."
    assert run("audit_purge").startswith("Deleted 2 audit records")
    with psycopg.connect(cluster.url) as owner:
        keys = owner.execute("SELECT key FROM carenotes_idempotencykey ORDER BY 1").fetchall()
    assert keys == [("current",), ("current",)]
    assert run("stats_rollups", "--check").strip().endswith("0 differences")
    # Bulk seeding needs the tables local (it reads multi-row INSERTs' ids in row order).
    with pytest.raises(AssertionError, match="distributed on Citus"):
        run("seed_notes", "--notes", "10", "--append", "--seed", "99")
