"""What the stats day rollups cost their writers: POST /api/notes/ and seed_notes, with and without.

Two databases on the same server, prepared alike: ``<database>_bench_rollups_on`` with every
migration, ``<database>_bench_rollups_off`` with the stats migrations unapplied (no rollup
tables, no triggers) — the same code otherwise. The measurements alternate between the two,
the order swapped every round, so that a shared machine's noise falls on both:

- ``post``: two gunicorn servers (gunicorn.conf.py, as `make bench`), one per database, and
  ``--requests`` rounds of one POST /api/notes/ to each (keep-alive; p50, p90 per side);
- ``insert``: the database's share alone: ``--requests`` rounds of one single-note INSERT
  (autocommit, so each is its own transaction with its trigger) into each database;
- ``seed``: ``manage.py seed_notes --reset --notes N`` into each, ``--rounds`` times (wall
  seconds per run, medians).

Prints one JSON object. Run through tools/devenv.py (DATABASE_URL, REDIS_URL, secret), e.g.
``.venv/bin/python tools/devenv.py exec -- .venv/bin/python -m bench.rollups post``.
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

from bench.stats import (
    BENCH_SEED,
    DATA_DIR,
    bench_cache_prefix,
    bench_database_name,
    bench_database_url,
    ensure_database,
    manage,
    server,
)

SIDES = ("off", "on")
# The bounds: a POST's p50 with rollup maintenance within 1.25 x of without, and
# seed_notes with the rollup triggers within 1.5 x of its time without them.
POST_BOUND = 1.25
SEED_BOUND = 1.5
POST_SEED_NOTES = 100_000
PATIENT_SQL = (
    "SELECT id, facility_id FROM carenotes_patient WHERE tenant_id = %s ORDER BY id LIMIT 20"
)


def _say(message: str) -> None:
    print(f"[bench.rollups] {message}", file=sys.stderr, flush=True)


def side_env(side: str, base_env: dict[str, str]) -> dict[str, str]:
    """Return the environment of one side: its database (migrated as the side wants)."""
    database = bench_database_name(base_env["DATABASE_URL"], f"rollups_{side}")
    ensure_database(base_env["DATABASE_URL"], database)
    env = {
        **base_env,
        "DATABASE_URL": bench_database_url(base_env["DATABASE_URL"], database),
        "CACHE_KEY_PREFIX": bench_cache_prefix(base_env, f"rollups-{side}"),
    }
    manage("migrate", "--noinput", "--verbosity", "0", env=env)
    if side == "off":
        manage("migrate", "stats", "zero", "--noinput", "--verbosity", "0", env=env)
    return env


def seed(env: dict[str, str], *, notes: int, credentials: Path) -> float:
    """Run seed_notes --reset for ``notes`` notes; return its wall seconds."""
    started = time.perf_counter()
    manage(
        "seed_notes",
        "--reset",
        "--quiet",
        f"--notes={notes}",
        f"--seed={BENCH_SEED}",
        f"--credentials={credentials}",
        env=env,
    )
    return time.perf_counter() - started


def seed_rounds(base_env: dict[str, str], *, notes: int, rounds: int) -> dict:
    envs = {side: side_env(side, base_env) for side in SIDES}
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    for round_number in range(rounds):
        for side in SIDES if round_number % 2 == 0 else tuple(reversed(SIDES)):
            _say(f"seed round {round_number + 1}/{rounds}: rollups {side}")
            credentials = DATA_DIR / f"rollups-{side}-credentials.json"
            seconds[side].append(seed(envs[side], notes=notes, credentials=credentials))
    medians = {side: round(statistics.median(values), 2) for side, values in seconds.items()}
    return {
        "notes": notes,
        "seconds": {side: [round(v, 2) for v in values] for side, values in seconds.items()},
        "median_seconds": medians,
        **_verdict(medians["on"] / medians["off"], SEED_BOUND),
    }


class NotesClient:
    """A keep-alive client posting notes for one tenant's patients."""

    def __init__(self, base_url: str, *, token: str, tenant_id: int, patients: list[tuple]):
        host, port = base_url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.tenant_id = tenant_id
        self.patients = patients
        self.sent = 0

    def post(self) -> None:
        patient_id, facility_id = self.patients[self.sent % len(self.patients)]
        self.sent += 1
        body = {
            "tenant_id": self.tenant_id,
            "facility_id": facility_id,
            "patient_id": patient_id,
            "category": ("medication", "observation", "treatment")[self.sent % 3],
            "priority": 1 + self.sent % 5,
            "body": "Benchmark note.",
        }
        self.connection.request("POST", "/api/notes/", json.dumps(body), self.headers)
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST /api/notes/ answered {response.status}: {answer[:300]!r}")


def _client(base_url: str, env: dict[str, str], credentials: Path) -> NotesClient:
    tenant = json.loads(credentials.read_text())["tenants"][0]
    token = next(user["token"] for user in tenant["users"] if user["role"] == "manager")
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        patients = conn.execute(PATIENT_SQL, [tenant["tenant_id"]]).fetchall()
    return NotesClient(base_url, token=token, tenant_id=tenant["tenant_id"], patients=patients)


def _verdict(on_over_off: float, bound: float) -> dict:
    """Return the with/without ratio, its bound and whether it is met."""
    ratio = round(on_over_off, 3)
    return {"on_over_off": ratio, "bound": bound, "met": ratio <= bound}


def _percentile_ms(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000, 3)


def post_rounds(base_env: dict[str, str], *, requests: int) -> dict:
    envs, credentials = {}, {}
    for side in SIDES:
        envs[side] = side_env(side, base_env)
        credentials[side] = DATA_DIR / f"rollups-{side}-credentials.json"
        _say(f"seeding {POST_SEED_NOTES:,} notes (rollups {side})")
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        seed(envs[side], notes=POST_SEED_NOTES, credentials=credentials[side])
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    with (
        server(envs["off"], stats_cache=True) as off_url,
        server(envs["on"], stats_cache=True) as on_url,
    ):
        clients = {
            "off": _client(off_url, envs["off"], credentials["off"]),
            "on": _client(on_url, envs["on"], credentials["on"]),
        }
        for client in clients.values():  # warm the workers and their connections
            for _ in range(20):
                client.post()
        for round_number in range(requests):
            for side in SIDES if round_number % 2 == 0 else tuple(reversed(SIDES)):
                started = time.perf_counter()
                clients[side].post()
                samples[side].append(time.perf_counter() - started)
    p50 = {side: _percentile_ms(values, 0.5) for side, values in samples.items()}
    return {
        "requests_per_side": requests,
        "p50_ms": p50,
        "p90_ms": {side: _percentile_ms(values, 0.9) for side, values in samples.items()},
        **_verdict(p50["on"] / p50["off"], POST_BOUND),
    }


INSERT_NOTE_SQL = (
    "INSERT INTO carenotes_carenote "
    "(tenant_id, facility_id, patient_id, author_id, category, priority, body, created_at) "
    "SELECT p.tenant_id, p.facility_id, p.id, m.user_id, 'observation', 3, 'Benchmark.', now() "
    "FROM carenotes_patient p JOIN tenants_membership m ON m.tenant_id = p.tenant_id "
    "WHERE p.id = %s LIMIT 1"
)


def insert_rounds(base_env: dict[str, str], *, requests: int) -> dict:
    envs = {side: side_env(side, base_env) for side in SIDES}
    connections, patients = {}, {}
    for side in SIDES:
        connections[side] = psycopg.connect(envs[side]["DATABASE_URL"], autocommit=True)
        patients[side] = [row[0] for row in connections[side].execute(PATIENT_SQL, [1])]
        if not patients[side]:
            raise RuntimeError("no patients: run `python -m bench.rollups post` first")
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    try:
        for round_number in range(requests + 50):
            for side in SIDES if round_number % 2 == 0 else tuple(reversed(SIDES)):
                patient = patients[side][round_number % len(patients[side])]
                started = time.perf_counter()
                connections[side].execute(INSERT_NOTE_SQL, [patient], prepare=True)
                if round_number >= 50:  # the first ones warm the plans
                    samples[side].append(time.perf_counter() - started)
    finally:
        for conn in connections.values():
            conn.close()
    p50 = {side: _percentile_ms(values, 0.5) for side, values in samples.items()}
    return {
        "inserts_per_side": requests,
        "p50_ms": p50,
        "p90_ms": {side: _percentile_ms(values, 0.9) for side, values in samples.items()},
        "on_minus_off_p50_ms": round(p50["on"] - p50["off"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "what", choices=["post", "insert", "seed"], help="the write path to measure"
    )
    parser.add_argument("--requests", type=int, default=500, help="POSTs per side (post)")
    parser.add_argument("--notes", type=int, default=1_000_000, help="notes per seed (seed)")
    parser.add_argument("--rounds", type=int, default=3, help="seeds per side (seed)")
    args = parser.parse_args(argv)
    for variable in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"):
        if not os.environ.get(variable):
            parser.error(f"{variable} is not set; run through tools/devenv.py exec")
    base_env = dict(os.environ)
    if args.what == "post":
        result = post_rounds(base_env, requests=args.requests)
    elif args.what == "insert":
        result = insert_rounds(base_env, requests=args.requests)
    else:
        result = seed_rounds(base_env, notes=args.notes, rounds=args.rounds)
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
