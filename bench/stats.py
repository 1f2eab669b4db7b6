"""make bench: the stats endpoint against the reference implementation and physical floors.

For each data size it prepares a database (seeded once, reused while the row count
matches), starts the production server (gunicorn with gunicorn.conf.py, as `make run`),
and measures in one run: the challenge's four measurements (reference vs served), the
floors (raw SQL, a trivial authenticated DRF endpoint, a bare Django JSON view), latency
percentiles and throughput with wrk, and EXPLAIN (ANALYZE, BUFFERS). It writes the raw
numbers to docs/benchmarks/, a chart, and the stats section of docs/PERFORMANCE.md.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from bench import report
from bench.wrk import median_of, run_wrk, wrk_available
from tools.topology import free_port

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / ".data" / "bench"
OUT_DIR = ROOT / "docs" / "benchmarks"
BENCH_SEED = 42
BENCH_THROTTLE_RATE = "100000000/h"
BENCH_THROTTLED_SCOPES = ("STATS", "ME", "NOTES_READ", "NOTES_WRITE")
SERVER_START_TIMEOUT = 60.0
LOAD_CONNECTIONS = 16
LATENCY_CONNECTIONS = 1
BUCKETS = {"latency": LATENCY_CONNECTIONS, "load": LOAD_CONNECTIONS}
DEFAULT_ROUNDS = 3


@dataclass(frozen=True)
class Size:
    """A data set: how many notes over how many tenants and local days."""

    notes: int
    tenants: int
    days: int = 30  # seed_notes' default


SIZES = {
    "tiny": Size(notes=2_000, tenants=5),
    "100k": Size(notes=100_000, tenants=5),
    "1m": Size(notes=1_000_000, tenants=5),
    # The same notes over the longest range, so a range answer has notes on each of its days.
    "1m-92d": Size(notes=1_000_000, tenants=5, days=92),
    "10m": Size(notes=10_000_000, tenants=500),
}
DEFAULT_SIZES = ("100k", "1m")


def _say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_database_url(base_url: str, name: str) -> str:
    """Return ``base_url`` pointing at database ``name`` on the same server."""
    parts = urlsplit(base_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def bench_database_name(base_url: str, purpose: str) -> str:
    """Return the name of a benchmark database beside ``base_url``'s own, e.g. carenotes_bench_1m.

    Named after the configured database, so two checkouts sharing one server (CI and a
    developer, two developers) never seed or measure each other's benchmark data.
    """
    base = urlsplit(base_url).path.lstrip("/") or "carenotes"
    return f"{base}_bench_{purpose.replace('-', '_')}"


def ensure_database(base_url: str, name: str) -> None:
    with psycopg.connect(base_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def note_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM carenotes_carenote").fetchone()[0]


# The cache key prefix when CACHE_KEY_PREFIX is unset (settings' default).
DEFAULT_CACHE_PREFIX = "cn"


def bench_cache_prefix(base_env: dict[str, str], suffix: str) -> str:
    """Return the cache key prefix of a benchmark server: the configured one + ``suffix``."""
    return f"{base_env.get('CACHE_KEY_PREFIX') or DEFAULT_CACHE_PREFIX}-bench-{suffix}"


def prepare(name: str, size: Size, base_env: dict[str, str]) -> tuple[dict[str, str], Path]:
    """Migrate and (if needed) seed the size's database; return its env and credentials."""
    database = bench_database_name(base_env["DATABASE_URL"], name)
    ensure_database(base_env["DATABASE_URL"], database)
    env = {**base_env, "DATABASE_URL": bench_database_url(base_env["DATABASE_URL"], database)}
    # Each size has its own cache namespace so sizes never read each other's answers.
    env["CACHE_KEY_PREFIX"] = bench_cache_prefix(base_env, name)
    credentials = DATA_DIR / f"{name}-credentials.json"
    manage("migrate", "--noinput", "--verbosity", "0", env=env)
    if note_count(env["DATABASE_URL"]) != size.notes or not credentials.exists():
        _say(f"seeding {size.notes:,} notes over {size.tenants} tenants into {database}")
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        manage(
            "seed_notes",
            "--reset",
            "--quiet",
            f"--notes={size.notes}",
            f"--tenants={size.tenants}",
            f"--days={size.days}",
            f"--seed={BENCH_SEED}",
            f"--credentials={credentials}",
            env=env,
        )
    vacuum_rollups(env["DATABASE_URL"])
    return env, credentials


# What a range answer reads (stats migrations): seed_notes vacuums the notes it loads, not the
# rollups its triggers fill (nor the patients, which it only analyzes); without it their
# index-only scans fetch from the heap until autovacuum (which may be off on a development
# server) sets the visibility map.
RANGE_TABLES = ("stats_day_counts", "stats_day_residents", "carenotes_patient")


def vacuum_rollups(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for table in RANGE_TABLES:
            conn.execute(f"VACUUM (ANALYZE) {table}")


@contextmanager
def server(env: dict[str, str], *, stats_cache: bool):
    """Run gunicorn with the production config on a free loopback port; yield its base URL.

    The port is the kernel's choice, so a benchmark never measures another program's server
    that happens to listen on a fixed port (two runs on one machine, a developer's make run).
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server_env = {
        **env,
        "STATS_CACHE_ENABLED": "1" if stats_cache else "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_LOG_LEVEL": "WARNING",
        # wrk drives one token far past a person's rate: the throttle runs (its cost is part
        # of what is measured) but never refuses.
        **{f"THROTTLE_RATE_{scope}": BENCH_THROTTLE_RATE for scope in BENCH_THROTTLED_SCOPES},
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "carenotes.wsgi",
        ],
        cwd=ROOT,
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/healthz", timeout=1).read()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start; run `make run` to see why") from exc
                time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure_in_process(env: dict[str, str], base_url: str, credentials: Path, repeat: int):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.measure",
            f"--base-url={base_url}",
            f"--credentials={credentials}",
            f"--repeat={repeat}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.measure failed:\n{completed.stderr}")
    return json.loads(completed.stdout)


def manager_token(credentials: Path, tenant_id: int) -> str:
    creds = json.loads(credentials.read_text())
    tenant = next(t for t in creds["tenants"] if t["tenant_id"] == tenant_id)
    return next(u["token"] for u in tenant["users"] if u["role"] == "manager")


def run_size(
    name: str, size: Size, *, base_env: dict, seconds: float, repeat: int, rounds: int
) -> dict:
    """Return every number for one data size.

    Two servers run side by side (stats cache on, and off for the uncached path) and the wrk
    runs are interleaved round by round, so that noise from a shared machine falls on every
    endpoint alike; each figure is the median over the rounds.
    """
    env, credentials = prepare(name, size, base_env)
    result: dict = {"size": name, "notes": size.notes, "tenants": size.tenants}
    with (
        tempfile.TemporaryDirectory() as scratch,
        server(env, stats_cache=True) as cached_url,
        server(env, stats_cache=False) as uncached_url,
    ):
        _say(f"{name}: in-process measurements")
        result.update(measure_in_process(env, cached_url, credentials, repeat))
        busiest = result["busiest_tenant_day"]
        auth = {"Authorization": f"Token {manager_token(credentials, busiest['tenant_id'])}"}
        stats_path = f"/api/care-stats/?tenant_id={busiest['tenant_id']}&date={busiest['date']}"
        longest = result["ranges"]["range"]
        range_path = (
            f"/api/care-stats/?tenant_id={busiest['tenant_id']}"
            f"&date_from={longest['date_from']}&date_to={longest['date_to']}"
        )
        targets = {
            "bare_django": (f"{cached_url}/healthz", {}),
            "drf_auth": (f"{cached_url}/api/me/", auth),
            "stats_cached": (f"{cached_url}{stats_path}", auth),
            "stats_uncached": (f"{uncached_url}{stats_path}", auth),
            # The longest range's warm hit (its entry is warm after the in-process measurements).
            "range_cached": (f"{cached_url}{range_path}", auth),
        }
        runs: dict[tuple[str, str], list] = {}
        for round_number in range(1, rounds + 1):
            _say(f"{name}: wrk round {round_number}/{rounds}")
            for bucket, connections in BUCKETS.items():
                for label, (url, headers) in targets.items():
                    runs.setdefault((bucket, label), []).append(
                        run_wrk(
                            url=url,
                            connections=connections,
                            seconds=seconds / rounds,
                            headers=headers,
                            script_dir=Path(scratch),
                        )
                    )
    for bucket in BUCKETS:
        result[bucket] = {label: median_of(runs[(bucket, label)]).as_dict() for label in targets}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default=",".join(DEFAULT_SIZES),
        help=f"comma-separated data sizes from {sorted(SIZES)} (default: %(default)s)",
    )
    parser.add_argument(
        "--scale", choices=["10m"], help="also run 10M notes over 500 tenants (slow to seed)"
    )
    parser.add_argument(
        "--seconds", type=float, default=9, help="wrk seconds per endpoint, split over rounds"
    )
    parser.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help="interleaved wrk rounds (medians)"
    )
    parser.add_argument("--repeat", type=int, default=15, help="samples per in-process timing")
    parser.add_argument(
        "--out", type=Path, default=OUT_DIR, help="folder for the JSON and the chart"
    )
    parser.add_argument(
        "--performance-md",
        type=Path,
        default=ROOT / "docs" / "PERFORMANCE.md",
        help="the document whose stats section is rewritten ('-' to skip)",
    )
    parser.add_argument(
        "--citus-url",
        help="a Citus coordinator: measure the day and range answers there beside plain "
        "PostgreSQL instead (bench/citus.py; --sizes defaults to 100k)",
    )
    args = parser.parse_args(argv)
    if args.citus_url:
        sizes = args.sizes if "--sizes" in " ".join(argv or sys.argv) else "100k"
        citus_args = ["--citus-url", args.citus_url, "--sizes", sizes, "--repeat", str(args.repeat)]
        citus_args += ["--out", str(args.out), "--performance-md", str(args.performance_md)]
        return subprocess.run(
            [sys.executable, "-m", "bench.citus", *citus_args], cwd=ROOT
        ).returncode
    names = [name.strip() for name in args.sizes.split(",") if name.strip()]
    if args.scale:
        names.append(args.scale)
    unknown = [name for name in names if name not in SIZES]
    if unknown:
        parser.error(f"--sizes: unknown size(s) {unknown}; choose from {sorted(SIZES)}")
    if not wrk_available():
        parser.error("wrk is not installed: `apt-get install wrk` (Debian) or see README")
    for variable in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"):
        if not os.environ.get(variable):
            parser.error(f"{variable} is not set; run through `make bench`")

    base_env = dict(os.environ)
    started = time.monotonic()
    sizes = [
        run_size(
            name,
            SIZES[name],
            base_env=base_env,
            seconds=args.seconds,
            repeat=args.repeat,
            rounds=args.rounds,
        )
        for name in names
    ]
    run = report.build_run(sizes=sizes, seconds=round(time.monotonic() - started, 1))
    print(report.table(run))
    report.write_outputs(run, out_dir=args.out, performance_md=args.performance_md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
