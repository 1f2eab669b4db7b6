"""Seeding benchmark: seed_notes against `psql \\copy` of the same rows, plus an ORM reference.

In one run on one server, repeated ``--repeat`` times (medians reported):

1. ``seed_notes`` (the function the command runs) generates ``--notes`` notes into an
   emptied database, end to end: users, patients, notes, indexes, VACUUM ANALYZE.
2. The same rows are written to a file and loaded with ``psql \\copy`` into a scratch table
   with the same columns, check constraints, indexes and foreign keys, the best way
   PostgreSQL offers: \\copy into the bare table, build the indexes and add the foreign keys
   in one transaction (as seed_notes does), then VACUUM ANALYZE; same maintenance_work_mem.
3. Once: the same \\copy into the scratch table with every index and foreign key already in
   place (the naive load), for context.
4. ``--small`` notes through seed_notes (``--repeat`` times), and once the ORM reference:
   ``bulk_create`` of ``--small`` notes in 5,000-row batches (rolled back).

Run it with ``make bench-seed`` (BENCH_SEED_ARGS="--repeat 1" for a quick look). It leaves the
database holding the last seed_notes data set.
"""

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from carenotes.notes import seeding  # noqa: E402
from carenotes.notes.models import CareNote, Patient  # noqa: E402
from tenants.models import Membership, Role  # noqa: E402
from tenants.rls import rls_owner  # noqa: E402

SCRATCH_TABLE = "bench_seed_copy"
ORM_BATCH_SIZE = 5_000
ORM_REFERENCE_SECONDS = (7.5, 9.5)  # the figure for an ORM generator at 100K
TARGET_COPY_RATIO = 1.5
TARGET_ORM_FRACTION = 0.1
END_DATE = date(2025, 3, 31)  # fixed, so every repeat generates the same rows
REPORT_PATH = ROOT / "reports" / "bench-seed.json"
NOTE_EXPORT_COLUMNS = "id, " + seeding.NOTE_COLUMNS
NOTE_TABLE = CareNote._meta.db_table


class _Rollback(Exception):
    """Raised to undo the ORM reference load."""


def psql_binary() -> str:
    """Return a psql executable: $PSQL, the one on PATH, or the one bundled with pgserver."""
    if os.environ.get("PSQL"):
        return os.environ["PSQL"]
    found = shutil.which("psql")
    if found:
        return found
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    if bundled.exists():
        return str(bundled)
    raise SystemExit("psql not found: install postgresql-client or set PSQL=/path/to/psql")


def psql(script: str) -> list[float]:
    """Run a psql script in one transaction; return each command's time in seconds, in order."""
    env = dict(os.environ, PGOPTIONS=f"-c maintenance_work_mem={seeding.MAINTENANCE_WORK_MEM}")
    completed = subprocess.run(
        [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", settings.DATABASE_URL],
        input=f"\\timing on\nBEGIN;\n{script}\nCOMMIT;\n",
        capture_output=True,
        check=True,
        env=env,
        text=True,
    )
    return [float(ms) / 1000 for ms in re.findall(r"^Time: ([0-9.]+) ms", completed.stdout, re.M)]


def execute(*statements: str) -> float:
    """Run SQL statements in autocommit on the Django connection; return seconds taken."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return time.perf_counter() - started


def empty_database() -> None:
    """Remove generated data (and the scratch table) so the next seed starts from nothing."""
    with transaction.atomic():
        seeding.seed_data_delete()
    if seeding.database_has_data():
        raise SystemExit("the database holds data that seed_notes did not create; use an empty one")
    execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}", f"VACUUM {NOTE_TABLE}")


def seed(notes: int) -> dict:
    """Time one seed_notes run into an empty database; return its phases and total."""
    empty_database()
    config = seeding.seed_config_build(seed=1, notes=notes, end_date=END_DATE)
    started = time.perf_counter()
    result = seeding.seed_notes_run(config=config, mode="refuse")
    return {"total": time.perf_counter() - started, **result.timings}


def scratch_statements() -> tuple[list[str], list[str]]:
    """Return (create table statements, index + foreign key statements) for the scratch copy."""
    with connection.cursor() as cursor:
        indexes, foreign_keys = seeding.note_table_secondary_definitions(cursor)
    create = [
        f"DROP TABLE IF EXISTS {SCRATCH_TABLE}",
        # Columns, defaults, identity, check constraints and the primary key, not the rest.
        f"CREATE TABLE {SCRATCH_TABLE} (LIKE {NOTE_TABLE} INCLUDING ALL EXCLUDING INDEXES)",
        f"ALTER TABLE {SCRATCH_TABLE} ADD PRIMARY KEY (id)",
    ]
    secondary = [
        re.sub(
            rf"^CREATE INDEX (\S+) ON (\S+)\.{NOTE_TABLE} ",
            rf"CREATE INDEX {SCRATCH_TABLE}_\1 ON \2.{SCRATCH_TABLE} ",
            definition,
        )
        for _, definition in indexes
    ] + [
        f"ALTER TABLE {SCRATCH_TABLE} ADD CONSTRAINT {SCRATCH_TABLE}_{name} {definition}"
        for name, definition in foreign_keys
    ]
    if any(SCRATCH_TABLE not in statement for statement in secondary):
        raise SystemExit(f"could not rewrite an index definition for {SCRATCH_TABLE}")
    return create, secondary


def copy_load(path: Path, *, indexes_first: bool) -> dict:
    """Time \\copy of the exported rows into the scratch table; return its phases and total.

    Like seed_notes, the load and the index builds run in one transaction (so neither side
    pays for setting hint bits on rows another transaction wrote).
    """
    create, secondary = scratch_statements()
    execute(*create)
    if indexes_first:
        execute(*secondary)
    copy = f"\\copy {SCRATCH_TABLE} ({NOTE_EXPORT_COLUMNS}) FROM '{path}'\n"
    builds = "" if indexes_first else "".join(f"{statement};\n" for statement in secondary)
    started = time.perf_counter()
    times = psql(copy + builds)[1:-1]  # without BEGIN and COMMIT
    timings = {"copy": times[0], "indexes": sum(times[1:])}
    # The rest of the psql run: process start, connection, BEGIN, COMMIT.
    timings["psql"] = time.perf_counter() - started - sum(times)
    timings["vacuum"] = execute(f"VACUUM (ANALYZE) {SCRATCH_TABLE}")
    timings["total"] = sum(timings.values())
    execute(f"DROP TABLE {SCRATCH_TABLE}")
    return timings


def orm_reference(notes: int) -> float:
    """Time an ORM generator: build CareNote objects in Python, bulk_create in batches."""
    rng = random.Random(1)
    patients = list(Patient.objects.values_list("tenant_id", "facility_id", "id"))
    authors: dict[int, list[int]] = {}
    for tenant_id, user_id in Membership.objects.filter(role=Role.CARER).values_list(
        "tenant_id", "user_id"
    ):
        authors.setdefault(tenant_id, []).append(user_id)
    categories = list(seeding.CATEGORY_WEIGHTS)
    category_weights = list(seeding.CATEGORY_WEIGHTS.values())
    priorities = list(seeding.PRIORITY_WEIGHTS)
    priority_weights = list(seeding.PRIORITY_WEIGHTS.values())
    start = datetime(2025, 3, 1, tzinfo=UTC)
    started = time.perf_counter()
    try:
        with transaction.atomic():
            batch = []
            for _ in range(notes):
                tenant_id, facility_id, patient_id = rng.choice(patients)
                batch.append(
                    CareNote(
                        tenant_id=tenant_id,
                        facility_id=facility_id,
                        patient_id=patient_id,
                        author_id=rng.choice(authors[tenant_id]),
                        category=rng.choices(categories, category_weights)[0],
                        priority=rng.choices(priorities, priority_weights)[0],
                        body=rng.choice(seeding.BODY_REMARKS),
                        created_at=start + timedelta(seconds=rng.randrange(30 * 86400)),
                    )
                )
                if len(batch) == ORM_BATCH_SIZE:
                    CareNote.objects.bulk_create(batch)
                    batch = []
            CareNote.objects.bulk_create(batch)
            elapsed = time.perf_counter() - started
            raise _Rollback
    except _Rollback:
        return elapsed


def export_rows(path: Path) -> None:
    """Write the seeded notes, ids included, to ``path`` in COPY text format."""
    psql(f"\\copy (SELECT {NOTE_EXPORT_COLUMNS} FROM {NOTE_TABLE} ORDER BY id) TO '{path}'")


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _fmt(timings: dict) -> str:
    return ", ".join(f"{key} {value:.2f}s" for key, value in timings.items())


def main(argv: list[str] | None = None) -> int:
    """Run the seeding benchmark as the database owner (it creates and vacuums tables)."""
    with rls_owner():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1_000_000, help="notes in the big run")
    parser.add_argument("--small", type=int, default=100_000, help="notes in the small run")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the big comparison")
    parser.add_argument("--no-naive", action="store_true", help="skip \\copy with indexes in place")
    parser.add_argument("--no-orm", action="store_true", help="skip the ORM bulk_create reference")
    args = parser.parse_args(argv)
    print(f"psql: {psql_binary()}; notes {args.notes:,}, repeats {args.repeat}", flush=True)

    load_before = os.getloadavg()[0]
    smalls = []
    for repeat in range(args.repeat):
        smalls.append(seed(args.small))
        print(f"[{repeat + 1}] seed_notes {args.small:,}: {_fmt(smalls[-1])}", flush=True)
    small = median_of(smalls)
    orm = None if args.no_orm else orm_reference(args.small)
    if orm is not None:
        print(f"ORM bulk_create {args.small:,} (batches of {ORM_BATCH_SIZE:,}): {orm:.2f}s")

    seeds, copies, naive = [], [], None
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "notes.copy"
        for repeat in range(args.repeat):
            seeds.append(seed(args.notes))
            print(f"[{repeat + 1}] seed_notes {args.notes:,}: {_fmt(seeds[-1])}", flush=True)
            export_rows(path)
            copies.append(copy_load(path, indexes_first=False))
            print(f"[{repeat + 1}] \\copy then build: {_fmt(copies[-1])}", flush=True)
        if not args.no_naive:
            naive = copy_load(path, indexes_first=True)
            print(f"\\copy into indexed table: {_fmt(naive)}", flush=True)

    seed_big, copy_big = median_of(seeds), median_of(copies)
    ratio = seed_big["total"] / copy_big["total"]
    report = {
        "notes": args.notes,
        "small": args.small,
        "repeats": args.repeat,
        "seed_notes": seed_big,
        "copy_then_build": copy_big,
        "copy_indexed": naive,
        "seed_notes_small": small,
        "orm_small": orm,
        "ratio_seed_to_copy": ratio,
        # Other work on this shared machine skews every figure; record how busy it was.
        "load_average_1min": [load_before, os.getloadavg()[0]],
    }
    print()
    print(f"load average (1 min) before/after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print(f"{args.notes:,} notes, medians of {args.repeat}:")
    print(f"  seed_notes            {seed_big['total']:6.2f}s  ({_fmt(seed_big)})")
    print(f"  \\copy + build         {copy_big['total']:6.2f}s  ({_fmt(copy_big)})")
    if naive:
        print(f"  \\copy, indexes ready  {naive['total']:6.2f}s")
    verdict = "meets" if ratio <= TARGET_COPY_RATIO else "MISSES"
    print(f"  ratio seed/copy       {ratio:6.2f}x  ({verdict} target {TARGET_COPY_RATIO}x)")
    print(f"{args.small:,} notes, median of {args.repeat}:")
    print(f"  seed_notes            {small['total']:6.2f}s")
    for label, reference in (("ORM measured", orm), ("ORM issue (low)", ORM_REFERENCE_SECONDS[0])):
        if reference:
            fraction = small["total"] / reference
            verdict = "meets" if fraction <= TARGET_ORM_FRACTION else "MISSES"
            print(
                f"  vs {label:<16} {reference:6.2f}s -> {fraction:.3f} "
                f"({verdict} target {TARGET_ORM_FRACTION})"
            )
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {REPORT_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
