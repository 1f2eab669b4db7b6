"""Bulk demo data for ``manage.py seed_notes``: one run, its phases, and the public API.

The structural rows (tenants, facilities, users, memberships, tokens) are built in bulk
(``structure``); patients and care notes are generated inside PostgreSQL with
``INSERT ... SELECT ... FROM generate_series`` (``sql``, loaded by ``bulk``) so no row ever
travels through Python and memory stays flat at any ``notes`` count. ``setseed()`` plus a
serial plan makes the rows a pure function of the seed, the arguments and the window of
note times, which ends at the moment the run starts when it reaches the present
(``config.note_window``). ``reset`` handles earlier data, ``credentials`` what is printed.
"""

import random
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.contrib.auth.hashers import make_password
from django.db import connection, transaction

from carenotes.notes.partitions import months_spanning, partitions_create
from carenotes.notes.seeding.bulk import (
    INDEX_STRATEGIES,
    MAINTENANCE_WORK_MEM,
    NOTE_CHUNK_ROWS,
    REBUILD_MIN_ROWS,
    ProgressCallback,
    load_session_set,
    note_table_secondary_definitions,
    notes_insert,
    rebuild_wanted,
    secondary_drop,
    secondary_restore,
    vacuum_analyze,
)
from carenotes.notes.seeding.config import (
    DEFAULT_DAYS,
    DEFAULT_FACILITIES_PER_TENANT,
    DEFAULT_NOTES,
    DEFAULT_PATIENTS_PER_FACILITY,
    DEFAULT_STAFF_PER_TENANT,
    DEFAULT_TENANTS,
    DEFAULT_TIMEZONES,
    NoteWindow,
    SeedArgumentError,
    SeedConfig,
    note_window,
    seed_config_build,
)
from carenotes.notes.seeding.credentials import (
    DEFAULT_CREDENTIALS_PATH,
    credentials_build,
    credentials_curl,
    credentials_data_sets,
    credentials_table,
    credentials_write,
)
from carenotes.notes.seeding.names import demo_password, demo_token_key, seed_tag
from carenotes.notes.seeding.reset import (
    database_has_data,
    seed_data_delete,
    sequences_restart_if_empty,
)
from carenotes.notes.seeding.sql import (
    BODY_REMARKS,
    BODY_SENTENCES,
    CATEGORY_WEIGHTS,
    HOUR_WEIGHTS,
    NOTE_COLUMNS,
    PRIORITY_WEIGHTS,
    TENANT_WEIGHTS,
    generation_session_set,
    note_params,
    patients_create,
    tenant_note_counts,
    weighted_lookup,
)
from carenotes.notes.seeding.structure import (
    CARERS_WITH_TOKENS,
    TenantPlan,
    passwords_set,
    structure_create,
)
from tenants.models import Tenant
from tenants.rls import rls_owner

__all__ = [
    "BODY_REMARKS",
    "BODY_SENTENCES",
    "CARERS_WITH_TOKENS",
    "CATEGORY_WEIGHTS",
    "DEFAULT_CREDENTIALS_PATH",
    "DEFAULT_DAYS",
    "DEFAULT_FACILITIES_PER_TENANT",
    "DEFAULT_NOTES",
    "DEFAULT_PATIENTS_PER_FACILITY",
    "DEFAULT_STAFF_PER_TENANT",
    "DEFAULT_TENANTS",
    "DEFAULT_TIMEZONES",
    "HOUR_WEIGHTS",
    "INDEX_STRATEGIES",
    "MAINTENANCE_WORK_MEM",
    "NOTE_CHUNK_ROWS",
    "NOTE_COLUMNS",
    "PRIORITY_WEIGHTS",
    "REBUILD_MIN_ROWS",
    "TENANT_WEIGHTS",
    "NoteWindow",
    "ProgressCallback",
    "SeedArgumentError",
    "SeedConfig",
    "SeedRefusedError",
    "SeedResult",
    "Stopwatch",
    "credentials_curl",
    "credentials_data_sets",
    "credentials_table",
    "credentials_write",
    "database_has_data",
    "demo_password",
    "demo_token_key",
    "note_table_secondary_definitions",
    "note_window",
    "seed_config_build",
    "seed_data_delete",
    "seed_notes_run",
    "seed_tag",
    "tenant_note_counts",
    "weighted_lookup",
]


class SeedRefusedError(RuntimeError):
    """The database already holds data and neither reset nor append was asked for."""


@dataclass
class SeedResult:
    """What a seeding run wrote, and how long its phases took (seconds)."""

    seed: int
    notes: int
    tenant_ids: list[int]
    credentials: dict
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())


class Stopwatch:
    """Collects named phase durations: ``with stopwatch("notes"): ...``."""

    def __init__(self):
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - started


def seed_notes_run(
    *,
    config: SeedConfig,
    mode: str = "refuse",
    index_strategy: str = "auto",
    progress: ProgressCallback | None = None,
    vacuum: bool = True,
) -> SeedResult:
    """Generate the data set of ``config`` in one transaction and return what was written.

    ``mode`` is "refuse" (raise SeedRefusedError if any data exists), "reset" (delete
    generated data first) or "append". Nothing is left behind when anything fails. The
    phases in ``timings``: reset, users (tenants, facilities, users, memberships, tokens,
    passwords), patients, partitions (those of the notes' months), notes, indexes, commit
    (with the after-commit cache work), vacuum.

    Runs as the database owner: it truncates, rebuilds indexes and vacuums (tenants/rls.py).
    """
    if index_strategy not in INDEX_STRATEGIES:
        raise SeedArgumentError("--index-strategy", f"must be one of {INDEX_STRATEGIES}")
    with rls_owner():
        return _seed_notes_run(
            config=config,
            mode=mode,
            index_strategy=index_strategy,
            progress=progress,
            vacuum=vacuum,
        )


def _seed_notes_run(
    *,
    config: SeedConfig,
    mode: str,
    index_strategy: str,
    progress: ProgressCallback | None,
    vacuum: bool,
) -> SeedResult:
    stopwatch = Stopwatch()
    # PBKDF2 takes ~0.3 s here and releases the GIL: hash the one shared demo password in a
    # thread while PostgreSQL does the loading.
    with ThreadPoolExecutor(max_workers=1) as hasher:
        encoded = hasher.submit(make_password, demo_password(config.seed))
        started = time.perf_counter()
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Every phase then pays for its own foreign key checks.
                load_session_set(cursor)
            with stopwatch("reset"):
                _prepare(config=config, mode=mode)
            with stopwatch("users"):
                superuser, plans = structure_create(config=config, rng=random.Random(config.seed))
            with connection.cursor() as cursor:
                _notes_load(
                    config=config,
                    plans=plans,
                    cursor=cursor,
                    index_strategy=index_strategy,
                    progress=progress,
                    stopwatch=stopwatch,
                )
            with stopwatch("users"):
                passwords_set(seed=config.seed, encoded=encoded.result())
    # The rest of the transaction's time: COMMIT and the after-commit cache invalidations.
    stopwatch.timings["commit"] = time.perf_counter() - started - sum(stopwatch.timings.values())
    if vacuum and not connection.in_atomic_block:
        with stopwatch("vacuum"):
            vacuum_analyze()
    return SeedResult(
        seed=config.seed,
        notes=config.notes,
        tenant_ids=[plan.tenant.pk for plan in plans],
        credentials=credentials_build(seed=config.seed, superuser=superuser, plans=plans),
        timings=stopwatch.timings,
    )


# A notes table Citus has distributed (manage.py citus_distribute).
DISTRIBUTED_SQL = (
    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') "
    "AND to_regclass('pg_dist_partition') IS NOT NULL"
)
DISTRIBUTED_NOTES_SQL = (
    "SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'carenotes_carenote'::regclass"
)


def database_is_distributed() -> bool:
    """Return True when the notes table is distributed on Citus."""
    with connection.cursor() as cursor:
        cursor.execute(DISTRIBUTED_SQL)
        if not cursor.fetchone()[0]:
            return False
        cursor.execute(DISTRIBUTED_NOTES_SQL)
        return cursor.fetchone() is not None


def _prepare(*, config: SeedConfig, mode: str) -> None:
    # The bulk load takes the ids of its multi-row INSERTs in the order of their rows, which
    # Citus does not keep across shards.
    if database_is_distributed():
        raise SeedRefusedError(
            "The database is distributed on Citus (citus_distribute ran): seed a database "
            'before distributing it (README, "Scale out on Citus").'
        )
    if mode == "reset":
        seed_data_delete()
    if mode == "refuse" and database_has_data():
        raise SeedRefusedError(
            "The database already holds tenants, patients or care notes. Pass --reset to "
            "delete the generated demo data first, or --append to add to it."
        )
    if Tenant.objects.filter(slug__startswith=f"{seed_tag(config.seed)}-t").exists():
        raise SeedRefusedError(
            f"Data for --seed {config.seed} is already loaded; --append needs another --seed "
            f"(or use --reset)."
        )
    sequences_restart_if_empty()


def _notes_load(
    *,
    config: SeedConfig,
    plans: list[TenantPlan],
    cursor,
    index_strategy: str,
    progress: ProgressCallback | None,
    stopwatch: Stopwatch,
) -> None:
    generation_session_set(cursor=cursor, seed=config.seed)
    with stopwatch("patients"):
        patients = patients_create(
            cursor=cursor,
            facility_ids={plan.tenant.pk: plan.facility_ids for plan in plans},
            per_facility=config.patients_per_facility,
        )
    with stopwatch("partitions"):
        # Every month the notes fall in gets its partition first: none lands in the default.
        partitions_create(
            months=[
                month
                for plan in plans
                for month in months_spanning(start=plan.window.start, end=plan.window.end)
            ]
        )
    with stopwatch("notes"):
        rebuild = rebuild_wanted(strategy=index_strategy, notes=config.notes, cursor=cursor)
        indexes, foreign_keys = note_table_secondary_definitions(cursor) if rebuild else ([], [])
        secondary_drop(cursor, indexes, foreign_keys)
        counts = tenant_note_counts(notes=config.notes, tenants=config.tenants)
        tenant_params = [
            (
                note_params(
                    tenant_id=plan.tenant.pk,
                    timezone_name=plan.tenant.timezone,
                    window=plan.window,
                    patients=patients[plan.tenant.pk],
                    author_ids=plan.author_ids,
                ),
                count,
            )
            for plan, count in zip(plans, counts, strict=True)
        ]
        notes_insert(cursor=cursor, tenant_params=tenant_params, progress=progress)
    with stopwatch("indexes"):
        secondary_restore(cursor, indexes, foreign_keys)
