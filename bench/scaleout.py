"""make bench-scaleout: the uncached stats read and the notes list, direct, behind PgBouncer
and from a streaming replica, measured side by side in one run.

It starts its own topology on free loopback ports (tools/topology.py): a throwaway primary
(initdb) seeded with ``--notes`` notes, a streaming replica of it, and PgBouncer 1.18
(``pool_mode = transaction``) in front of the primary; then one gunicorn node per setup:

- ``direct``: the app's default (session-level RLS scope, prepared stats statements);
- ``direct, prepared statements off``: what the pooler mode turns off, alone;
- ``direct, transaction-local``: DATABASE_POOLER=transaction on the same direct connection
  (prepared statements off, every statement carries its scope): the pooler mode's own cost;
- ``PgBouncer``: through the pooler (DATABASE_POOLER=transaction, prepared statements off);
- ``replica``: DATABASE_REPLICA_URLS=the replica, reads served there with read-your-writes.

wrk runs are interleaved round by round (every setup and endpoint once per round), so the
noise of a shared machine falls on all alike; each figure is the median over the rounds.
Prints a markdown table (docs/PERFORMANCE.md, "Scale-out topologies") and the raw JSON.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.wrk import WrkResult, median_of, run_wrk, wrk_available
from tools.cluster import AppNode
from tools.topology import PgBouncer, PostgresServer, free_port, wait_for_replay

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "carenotes_bench_scaleout"
SEED = 7
THROTTLE_RATE = "100000000/h"  # wrk drives one token far past a person's rate: never refuse
THROTTLED_SCOPES = ("STATS", "ME", "NOTES_READ", "NOTES_WRITE")
POOL_SIZE = 10


@dataclass(frozen=True)
class Setup:
    name: str
    env: dict[str, str]


def _say(message: str) -> None:
    print(f"[bench-scaleout] {message}", file=sys.stderr, flush=True)


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def _busiest_day(primary: PostgresServer, tenant_id: int) -> str:
    rows = primary.execute(
        "SELECT (n.created_at AT TIME ZONE t.timezone)::date, count(*) "
        "FROM carenotes_carenote n JOIN tenants_tenant t ON t.id = n.tenant_id "
        "WHERE n.tenant_id = %s GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
        [tenant_id],
        database=DATABASE,
    )
    return rows[0][0].isoformat()


def _manager(credentials: Path) -> tuple[int, str]:
    tenant = json.loads(credentials.read_text())["tenants"][0]
    return tenant["tenant_id"], next(u["token"] for u in tenant["users"] if u["role"] == "manager")


STATEMENT_SQL = "SELECT count(*) FROM carenotes_carenote WHERE tenant_id = %s AND id < 0"
STATEMENT_CALLS = 400


def statement_costs(url: str, *, tenant_id: int, rounds: int) -> dict[str, float]:
    """Return the median µs per scoped statement, four ways, over ``rounds`` rounds.

    - ``scope in force``: the direct fast path when the scope is already on the connection;
    - ``scope in front``: transaction-local, written in front of the statement (one message);
    - ``scope pipelined``: transaction-local, pipelined ahead of a server-bound statement;
    - ``scope, then statement``: two round trips (the direct path when the scope changes).
    """
    from tenants.rls import LOCAL_SCOPE_SQL, SCOPE_SQL, local_scope_prefix, tenants_scope

    scope = tenants_scope([tenant_id])
    with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
        cursor = conn.cursor()
        server_bound = psycopg.Cursor(conn)

        def in_force() -> None:
            cursor.execute(STATEMENT_SQL, [tenant_id])

        def in_front() -> None:
            cursor.execute(local_scope_prefix(scope) + STATEMENT_SQL, [tenant_id])
            cursor.nextset()

        def pipelined() -> None:
            with conn.pipeline():
                conn.cursor().execute(LOCAL_SCOPE_SQL, scope.as_params())
                server_bound.execute(STATEMENT_SQL, [tenant_id])
            server_bound.fetchall()

        def two_trips() -> None:
            cursor.execute(SCOPE_SQL, scope.as_params())
            cursor.execute(STATEMENT_SQL, [tenant_id])

        cursor.execute(SCOPE_SQL, scope.as_params())
        ways = {"scope in force": in_force, "scope in front": in_front}
        ways.update({"scope pipelined": pipelined, "scope, then statement": two_trips})
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, call in ways.items():
                if name == "scope in force":
                    cursor.execute(SCOPE_SQL, scope.as_params())
                started = time.perf_counter()
                for _ in range(STATEMENT_CALLS):
                    call()
                samples[name].append((time.perf_counter() - started) / STATEMENT_CALLS * 1e6)
    return {name: round(statistics.median(values), 1) for name, values in samples.items()}


def run(*, notes: int, rounds: int, seconds: float, connections: int) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DJANGO_"))}
    base.update(
        {
            "DJANGO_SECRET_KEY": os.environ["DJANGO_SECRET_KEY"],
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_LOG_LEVEL": "WARNING",
            "CACHE_KEY_PREFIX": "bench-scaleout",
            "STATS_CACHE_ENABLED": "0",  # every stats request reads PostgreSQL
            "GUNICORN_WORKERS": "3",
            **{f"THROTTLE_RATE_{scope}": THROTTLE_RATE for scope in THROTTLED_SCOPES},
        }
    )
    primary = PostgresServer.primary()
    servers: list = []
    scratch: Path | None = None
    try:
        primary.start()
        servers.append(primary)
        primary.execute(f'CREATE DATABASE "{DATABASE}"')
        direct_url = primary.url(DATABASE)
        scratch = Path(tempfile.mkdtemp(prefix="carenotes-bench-scaleout-"))
        credentials = scratch / "credentials.json"
        _say(f"migrating and seeding {notes:,} notes into a throwaway primary")
        seed_env = {**base, "DATABASE_URL": direct_url}
        _manage("migrate", "--noinput", "--verbosity", "0", env=seed_env)
        _manage(
            *("seed_notes", "--quiet", f"--notes={notes}", f"--seed={SEED}"),
            f"--credentials={credentials}",
            env=seed_env,
        )
        replica = primary.replica()
        replica.start()
        servers.append(replica)
        wait_for_replay(primary, replica, DATABASE)
        bouncer = PgBouncer(
            target={
                "host": "127.0.0.1",
                "port": str(primary.port),
                "name": DATABASE,
                "user": "postgres",
                "password": "",
            },
            pool_size=POOL_SIZE,
        )
        bouncer.start()
        servers.append(bouncer)

        setups = [
            Setup("direct", {"DATABASE_URL": direct_url}),
            Setup(
                "direct, prepared statements off",
                {"DATABASE_URL": direct_url, "DATABASE_PREPARED_STATEMENTS": "0"},
            ),
            Setup(
                "direct, transaction-local scopes",
                {"DATABASE_URL": direct_url, "DATABASE_POOLER": "transaction"},
            ),
            Setup(
                "PgBouncer (transaction pooling)",
                {
                    "DATABASE_URL": f"postgres://pooler@127.0.0.1:{bouncer.port}/{DATABASE}",
                    "DATABASE_POOLER": "transaction",
                },
            ),
            Setup(
                "replica (read-your-writes)",
                {"DATABASE_URL": direct_url, "DATABASE_REPLICA_URLS": replica.url(DATABASE)},
            ),
        ]
        nodes = {}
        for setup in setups:
            node = AppNode(
                port=free_port(),
                env=setup.env,
                base_env=base,
                log_path=scratch / f"node-{len(nodes)}.log",
            )
            node.start()
            servers.append(node)
            nodes[setup.name] = node

        tenant_id, token = _manager(credentials)
        day = _busiest_day(primary, tenant_id)
        paths = {
            "stats, uncached": f"/api/care-stats/?tenant_id={tenant_id}&date={day}",
            "notes list, 50": f"/api/notes/?tenant_id={tenant_id}&page_size=50",
        }
        headers = {"Authorization": f"Token {token}"}
        runs: dict[tuple[str, str], list[WrkResult]] = {}
        _say("warming up every setup (not counted)")
        for setup in setups:
            for path in paths.values():
                run_wrk(
                    url=f"http://127.0.0.1:{nodes[setup.name].port}{path}",
                    connections=connections,
                    seconds=1,
                    headers=headers,
                    script_dir=scratch,
                )
        for number in range(1, rounds + 1):
            _say(f"round {number}/{rounds}")
            for setup in setups:
                for endpoint, path in paths.items():
                    url = f"http://127.0.0.1:{nodes[setup.name].port}{path}"
                    result = run_wrk(
                        url=url,
                        connections=connections,
                        seconds=seconds,
                        headers=headers,
                        script_dir=scratch,
                    )
                    runs.setdefault((setup.name, endpoint), []).append(result)
        _say("statement costs")
        statements = {
            "direct": statement_costs(direct_url, tenant_id=tenant_id, rounds=rounds * 3),
            "PgBouncer": statement_costs(
                f"postgres://pooler@127.0.0.1:{bouncer.port}/{DATABASE}",
                tenant_id=tenant_id,
                rounds=rounds * 3,
            ),
        }
        served_by_replica = replica.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
            [DATABASE],
            database=DATABASE,
        )[0][0]
        return {
            "notes": notes,
            "tenant_id": tenant_id,
            "day": day,
            "rounds": rounds,
            "seconds": seconds,
            "connections": connections,
            "replica_transactions": served_by_replica,
            "statement_us": statements,
            "results": {
                f"{setup} | {endpoint}": median_of(results).as_dict()
                for (setup, endpoint), results in runs.items()
            },
            "setups": [setup.name for setup in setups],
            "endpoints": list(paths),
        }
    finally:
        for server in reversed(servers):
            try:
                server.stop()
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                _say(f"stopping {type(server).__name__} failed: {exc}")
        shutil.rmtree(primary.data_dir.parent, ignore_errors=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def statements_table(report: dict) -> str:
    """Return the per-statement costs as a markdown table."""
    ways = list(next(iter(report["statement_us"].values())))
    lines = ["| connection | " + " | ".join(ways) + " |", "| --- |" + " --- |" * len(ways)]
    for where, costs in report["statement_us"].items():
        lines.append(f"| {where} | " + " | ".join(f"{costs[w]:.0f} µs" for w in ways) + " |")
    return "\n".join(lines)


def table(report: dict) -> str:
    """Return the medians as a markdown table, each setup beside the direct figure."""
    lines = [
        "| setup | endpoint | req/s | vs direct | p50 ms | p95 ms | errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    direct = report["setups"][0]
    for endpoint in report["endpoints"]:
        base = report["results"][f"{direct} | {endpoint}"]["rps"]
        for setup in report["setups"]:
            r = report["results"][f"{setup} | {endpoint}"]
            ratio = "—" if setup == direct else f"{r['rps'] / base:.2f}x"
            lines.append(
                f"| {setup} | {endpoint} | {r['rps']:.0f} | {ratio} | {r['p50_ms']:.2f} | "
                f"{r['p95_ms']:.2f} | {r['errors']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000, help="notes to seed (default 100K)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument(
        "--connections", type=int, default=8, help="wrk keep-alive connections (default 8)"
    )
    args = parser.parse_args(argv)
    if not wrk_available():
        parser.error("wrk is not installed: install the Debian package 'wrk' (make wrk)")
    report = run(
        notes=args.notes, rounds=args.rounds, seconds=args.seconds, connections=args.connections
    )
    print(table(report))
    print()
    print(statements_table(report))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
