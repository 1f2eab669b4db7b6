"""make bench BENCH_ARGS="--citus-url URL": the day and range answers on Citus beside plain
PostgreSQL, measured side by side in one run.

For each size, one database on the plain server (DATABASE_URL's, as `make bench`) and one on
the Citus cluster of URL (a coordinator with its workers), seeded alike and the second
distributed by ``manage.py citus_distribute``; a production server (gunicorn) over each,
Citus's with DATABASE_CITUS=1. bench.measure then times both servers in alternating rounds:
the day and range answers on a true cache miss (cache on, entry absent) and on a warm hit,
a bare Django view, and the day's SQL replayed over a raw connection (the database floor).
Each figure is the median of the rounds' medians. Writes docs/benchmarks/citus.json and the
Citus section of docs/PERFORMANCE.md.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

from bench import stats
from tools.citus_databases import cluster_database_create, cluster_database_exists, database_url

SECTION_START = "<!-- bench:citus:start -->"
SECTION_END = "<!-- bench:citus:end -->"
ROUNDS = 3
# (label, path into bench.measure's JSON)
FIGURES = [
    ("day, true miss", ("ranges", "true_miss_p50_ms", "day")),
    ("range, true miss", ("ranges", "true_miss_p50_ms", "range")),
    ("day, warm hit", ("ranges", "warm_hit_p50_ms", "day")),
    ("range, warm hit", ("ranges", "warm_hit_p50_ms", "range")),
    ("day SQL, raw connection", ("raw_sql_p50_ms",)),
    ("range SQL, raw connection", ("ranges", "raw_sql_p50_ms")),
    ("bare Django view", ("ranges", "bare_django_p50_ms")),
]


def _say(message: str) -> None:
    print(f"[bench:citus] {message}", file=sys.stderr, flush=True)


def _distributed(url: str) -> bool:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'carenotes_carenote'::regclass"
        ).fetchone()
    return found is not None


def prepare_citus(name: str, size: stats.Size, base_env: dict, citus_url: str):
    """Create, seed and distribute the size's database on the cluster (reused when it holds
    the size's notes); return its env and credentials."""
    database = stats.bench_database_name(base_env["DATABASE_URL"], f"{name}_citus")
    url = database_url(citus_url, dbname=database)
    credentials = stats.DATA_DIR / f"{name}-citus-credentials.json"
    env = {
        **base_env,
        "DATABASE_URL": url,
        "CACHE_KEY_PREFIX": stats.bench_cache_prefix(base_env, f"{name}-citus"),
    }
    reusable = (
        cluster_database_exists(citus_url, database)
        and credentials.exists()
        and _distributed(url)
        and stats.note_count(url) == size.notes
    )
    if not reusable:
        _say(f"seeding {size.notes:,} notes into {database} and distributing it")
        cluster_database_create(citus_url, database)
        stats.DATA_DIR.mkdir(parents=True, exist_ok=True)
        stats.manage("migrate", "--noinput", "--verbosity", "0", env=env)
        stats.manage(
            "seed_notes",
            "--quiet",
            f"--notes={size.notes}",
            f"--tenants={size.tenants}",
            f"--days={size.days}",
            f"--seed={stats.BENCH_SEED}",
            f"--credentials={credentials}",
            env=env,
        )
        stats.manage("citus_distribute", env={**env, "DATABASE_CITUS": "1"})
    stats.vacuum_rollups(url)
    return {**env, "DATABASE_CITUS": "1", "DATABASE_PREPARED_STATEMENTS": "0"}, credentials


def _figure(result: dict, path: tuple[str, ...]) -> float:
    value = result
    for key in path:
        value = value[key]
    return value


def compare_size(name: str, size: stats.Size, *, base_env: dict, citus_url: str, repeat: int):
    """Return the size's figures on both engines: label -> (plain ms, citus ms)."""
    plain_env, plain_credentials = stats.prepare(name, size, base_env)
    citus_env, citus_credentials = prepare_citus(name, size, base_env, citus_url)
    samples: dict[str, dict[str, list[float]]] = {"plain": {}, "citus": {}}
    with (
        stats.server(plain_env, stats_cache=True) as plain_url,
        stats.server(citus_env, stats_cache=True) as citus_url_served,
    ):
        sides = [
            ("plain", plain_env, plain_url, plain_credentials),
            ("citus", citus_env, citus_url_served, citus_credentials),
        ]
        for round_number in range(ROUNDS):
            # Alternate which engine goes first: a shared machine's noise falls on both.
            for side, env, url, credentials in sides[:: 1 if round_number % 2 == 0 else -1]:
                _say(f"{name}: round {round_number + 1}/{ROUNDS}, {side}")
                result = stats.measure_in_process(env, url, credentials, repeat)
                for label, path in FIGURES:
                    samples[side].setdefault(label, []).append(_figure(result, path))
    return {
        label: (
            round(statistics.median(samples["plain"][label]), 2),
            round(statistics.median(samples["citus"][label]), 2),
        )
        for label, _ in FIGURES
    }


def table(runs: dict[str, dict]) -> str:
    """Return the figures as a Markdown table, a row per figure and size."""
    lines = [
        "| size | figure | plain PostgreSQL (ms) | Citus, 2 workers (ms) | Citus / plain |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, figures in runs.items():
        for label, (plain, citus) in figures.items():
            ratio = f"{citus / plain:.2f}" if plain else "n/a"
            lines.append(f"| {name} | {label} | {plain:.2f} | {citus:.2f} | {ratio} |")
    return "\n".join(lines)


def write_outputs(runs: dict, *, out_dir: Path, performance_md: Path | None, meta: dict) -> None:
    """Write the JSON and replace the Citus section of PERFORMANCE.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "citus.json").write_text(json.dumps({**meta, "sizes": runs}, indent=2) + "\n")
    if performance_md is None:
        return
    text = performance_md.read_text()
    section = (
        f"{SECTION_START}\n"
        f"Measured {meta['date']} by `{meta['command']}` ({ROUNDS} alternating rounds, "
        f"medians; bench.measure's {meta['repeat']} samples per figure per round).\n\n"
        f"{table(runs)}\n{SECTION_END}"
    )
    if SECTION_START in text:
        head, rest = text.split(SECTION_START, 1)
        text = head + section + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    performance_md.write_text(text)


def run(*, names: list[str], base_env: dict, citus_url: str, repeat: int, out_dir: Path,
        performance_md: Path | None) -> int:  # fmt: skip
    """Compare every size in ``names``; print and write the table."""
    runs = {
        name: compare_size(
            name, stats.SIZES[name], base_env=base_env, citus_url=citus_url, repeat=repeat
        )
        for name in names
    }
    print(table(runs))
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": f'make bench BENCH_ARGS="--citus-url <coordinator> --sizes {",".join(names)}"',
        "repeat": repeat,
    }
    write_outputs(runs, out_dir=out_dir, performance_md=performance_md, meta=meta)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citus-url", required=True, help="the Citus coordinator's URL")
    parser.add_argument("--sizes", default="100k", help="comma-separated sizes (default 100k)")
    parser.add_argument("--repeat", type=int, default=15, help="samples per figure per round")
    parser.add_argument("--out", type=Path, default=stats.OUT_DIR)
    parser.add_argument(
        "--performance-md", type=Path, default=stats.ROOT / "docs" / "PERFORMANCE.md"
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.sizes.split(",") if name.strip()]
    unknown = [name for name in names if name not in stats.SIZES]
    if unknown:
        parser.error(f"--sizes: unknown size(s) {unknown}; choose from {sorted(stats.SIZES)}")
    for variable in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"):
        if not os.environ.get(variable):
            parser.error(f"{variable} is not set; run through `make bench`")
    performance_md = None if str(args.performance_md) == "-" else args.performance_md
    return run(
        names=names,
        base_env=dict(os.environ),
        citus_url=args.citus_url,
        repeat=args.repeat,
        out_dir=args.out,
        performance_md=performance_md,
    )


if __name__ == "__main__":
    sys.exit(main())
