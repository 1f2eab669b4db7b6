"""Bulk demo data: tenants, staff with API tokens, patients and care notes generated in SQL.

The small, structural rows (tenants, facilities, users, memberships, tokens) go through the
ordinary services; patients and care notes are generated inside PostgreSQL with
``INSERT ... SELECT ... FROM generate_series`` so no row ever travels through Python and
memory stays flat at any ``notes`` count. ``setseed()`` plus a serial plan makes the rows a
pure function of the seed and the arguments.
"""

import hashlib
import json
import math
import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from carenotes.core.cache import cache_delete_many
from carenotes.core.days import local_today
from carenotes.notes.models import CareNote, Category, Patient
from tenants.models import ApiToken, Facility, Membership, Role, Tenant, validate_timezone
from tenants.rls import rls_owner
from tenants.selectors import principal_token_cache_key
from tenants.services import api_token_create, facility_create, membership_grant, tenant_create

DEFAULT_NOTES = 100_000
DEFAULT_TENANTS = 5
DEFAULT_FACILITIES_PER_TENANT = 3
DEFAULT_PATIENTS_PER_FACILITY = 50
DEFAULT_STAFF_PER_TENANT = 20
DEFAULT_DAYS = 30
DEFAULT_CREDENTIALS_PATH = Path(settings.BASE_DIR) / ".data" / "demo-credentials.json"

# Upper bounds keep a typo from running for days; they are far above any demo or benchmark.
MAX_NOTES = 1_000_000_000
MAX_TENANTS = 1_000
MAX_FACILITIES_PER_TENANT = 1_000
MAX_PATIENTS_PER_FACILITY = 100_000
MAX_STAFF_PER_TENANT = 1_000
MAX_DAYS = 3_660
MAX_SEED = 2**62
# An admin, a manager and at least one carer to author notes.
MIN_STAFF_PER_TENANT = 3

# Share of the notes per tenant, cycled when there are more than five tenants.
TENANT_WEIGHTS = (10, 15, 25, 20, 30)
CATEGORY_WEIGHTS = {Category.MEDICATION: 40, Category.OBSERVATION: 40, Category.TREATMENT: 20}
PRIORITY_WEIGHTS = {1: 10, 2: 20, 3: 40, 4: 20, 5: 10}
# Relative number of notes per local hour 00..23: medication rounds in the morning and
# evening, a busy day shift, a thin night shift.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 4, 9, 12, 10, 8, 7, 9, 7, 6, 6, 7, 9, 10, 8, 6, 5, 4, 3)
# Distinct IANA zones, most not UTC, so local-day logic is exercised; cycled beyond five.
DEFAULT_TIMEZONES = (
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
    "America/Los_Angeles",
    "Europe/Berlin",
    "Asia/Tokyo",
)

# Generated rows are recognised by these names; --reset deletes exactly these.
SEED_TAG = "demo-{seed}"
SEED_TENANT_SLUG_RE = r"^demo-[0-9]+-t[0-9]+$"
SEED_USERNAME_RE = r"^demo-[0-9]+-"
# Carers after the first few have no API token (they only author notes).
CARERS_WITH_TOKENS = 2
# Rows per INSERT statement: small enough for a lively progress bar, large enough that
# per-statement overhead is invisible.
NOTE_CHUNK_ROWS = 250_000
# Dropping secondary indexes and foreign keys and rebuilding them after the load pays off
# when the load is at least this many rows and at least as large as the table already is.
REBUILD_MIN_ROWS = 50_000
INDEX_STRATEGIES = ("auto", "rebuild", "keep")
MAINTENANCE_WORK_MEM = "256MB"

TENANT_NAMES = (
    "Oakwood Care",
    "Riverside Homes",
    "Meadowbank Living",
    "Harbour View Care",
    "Willow Lodge Group",
    "Beacon Hill Care",
    "Silver Birch Homes",
    "Heather Grange",
)
FACILITY_NAMES = ("House", "Court", "Lodge", "Gardens", "Manor", "View", "Place", "Hall")
FIRST_NAMES = (
    "Margaret", "Arthur", "Joan", "Harold", "Dorothy", "Kenneth", "Elsie", "Frank",
    "Irene", "Albert", "Edna", "Walter", "Mabel", "Ernest", "Gladys", "Stanley",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
    "Patel", "Wright", "Green", "Walker", "Hughes", "Edwards", "Khan", "Clarke",
)  # fmt: skip
# Body = one category-specific sentence + one general remark. Every category has the same
# number of sentences so a flat array indexed by (category, n) works in SQL.
BODY_SENTENCES = {
    Category.MEDICATION: (
        "Morning medication given as prescribed.",
        "Evening medication administered with water.",
        "PRN paracetamol given for mild pain.",
        "Inhaler used with support, good technique.",
    ),
    Category.OBSERVATION: (
        "Observations taken: BP and pulse within normal range.",
        "Resident settled, ate well at lunch.",
        "Fluid intake encouraged and recorded.",
        "Slept well, checked hourly overnight.",
    ),
    Category.TREATMENT: (
        "Dressing on left leg changed, wound healing.",
        "Repositioned to relieve pressure areas.",
        "Physiotherapy exercises completed with support.",
        "Catheter care carried out.",
    ),
}
BODY_REMARKS = (
    "No concerns.",
    "Family informed.",
    "Will monitor.",
    "Resident in good spirits.",
    "Handed over to next shift.",
)


class SeedArgumentError(ValueError):
    """An argument is out of range; ``argument`` names the command-line option."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class SeedRefusedError(RuntimeError):
    """The database already holds data and neither reset nor append was asked for."""


@dataclass(frozen=True)
class SeedConfig:
    """Validated seeding parameters; ``end_date`` None means today in each tenant's zone."""

    seed: int
    notes: int = DEFAULT_NOTES
    tenants: int = DEFAULT_TENANTS
    facilities_per_tenant: int = DEFAULT_FACILITIES_PER_TENANT
    patients_per_facility: int = DEFAULT_PATIENTS_PER_FACILITY
    staff_per_tenant: int = DEFAULT_STAFF_PER_TENANT
    days: int = DEFAULT_DAYS
    end_date: date | None = None
    timezones: tuple[str, ...] = DEFAULT_TIMEZONES


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


def _bounded_int(argument: str, value: int, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SeedArgumentError(argument, f"must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise SeedArgumentError(argument, f"must be between {minimum} and {maximum}, got {value}")
    return value


def _parse_date(value: str | date | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SeedArgumentError(
            "--end-date", f"must be a real calendar date YYYY-MM-DD, got {value!r}"
        ) from None


def _parse_timezones(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_TIMEZONES
    names = tuple(name.strip() for name in value.split(",")) if isinstance(value, str) else value
    if not names or not all(names):
        raise SeedArgumentError("--timezones", "must be a comma-separated list of IANA zones")
    for name in set(names):
        try:
            validate_timezone(name)  # the rule Tenant.timezone is validated with
        except ValidationError as exc:
            raise SeedArgumentError("--timezones", exc.messages[0]) from None
    return names


def seed_config_build(
    *,
    seed: int | None = None,
    notes: int = DEFAULT_NOTES,
    tenants: int = DEFAULT_TENANTS,
    facilities_per_tenant: int = DEFAULT_FACILITIES_PER_TENANT,
    patients_per_facility: int = DEFAULT_PATIENTS_PER_FACILITY,
    staff_per_tenant: int = DEFAULT_STAFF_PER_TENANT,
    days: int = DEFAULT_DAYS,
    end_date: str | date | None = None,
    timezones: str | tuple[str, ...] | None = None,
) -> SeedConfig:
    """Return a validated config, or raise SeedArgumentError naming the bad option."""
    if seed is None:
        # A fresh random seed per run: demo tokens are derived from it, so they must not be
        # guessable unless the caller chose the seed.
        seed = secrets.randbelow(10**9)
    return SeedConfig(
        seed=_bounded_int("--seed", seed, 0, MAX_SEED),
        notes=_bounded_int("--notes", notes, 1, MAX_NOTES),
        tenants=_bounded_int("--tenants", tenants, 1, MAX_TENANTS),
        facilities_per_tenant=_bounded_int(
            "--facilities-per-tenant", facilities_per_tenant, 1, MAX_FACILITIES_PER_TENANT
        ),
        patients_per_facility=_bounded_int(
            "--patients-per-facility", patients_per_facility, 1, MAX_PATIENTS_PER_FACILITY
        ),
        staff_per_tenant=_bounded_int(
            "--staff-per-tenant", staff_per_tenant, MIN_STAFF_PER_TENANT, MAX_STAFF_PER_TENANT
        ),
        days=_bounded_int("--days", days, 1, MAX_DAYS),
        end_date=_parse_date(end_date),
        timezones=_parse_timezones(timezones),
    )


def tenant_note_counts(*, notes: int, tenants: int) -> list[int]:
    """Split ``notes`` over ``tenants`` by TENANT_WEIGHTS exactly (largest remainder)."""
    weights = [TENANT_WEIGHTS[i % len(TENANT_WEIGHTS)] for i in range(tenants)]
    total = sum(weights)
    shares = [notes * w / total for w in weights]
    counts = [math.floor(s) for s in shares]
    by_remainder = sorted(range(tenants), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: notes - sum(counts)]:
        counts[i] += 1
    return counts


def weighted_lookup(weights: dict) -> list:
    """Return a lookup table where each key appears weight/gcd times (uniform pick = weighted)."""
    divisor = math.gcd(*weights.values())
    return [key for key, weight in weights.items() for _ in range(weight // divisor)]


def seed_tag(seed: int) -> str:
    """Return the prefix of every slug and username a run with ``seed`` creates."""
    return SEED_TAG.format(seed=seed)


def demo_token_key(*, seed: int, username: str) -> str:
    """Return the reproducible API key of a demo user (40 hex characters)."""
    return hashlib.sha256(f"carenotes-seed:{seed}:{username}".encode()).hexdigest()[:40]


def demo_password(seed: int) -> str:
    """Return the demo password of a run (derived from its seed)."""
    return "demo-" + hashlib.sha256(f"carenotes-password:{seed}".encode()).hexdigest()[:12]


def database_has_data() -> bool:
    """Return True when any tenant, patient or care note exists."""
    return Tenant.objects.exists() or Patient.objects.exists() or CareNote.objects.exists()


# --- reset -----------------------------------------------------------------------------------


def seed_data_delete() -> list[int]:
    """Delete every generated tenant (with its notes, patients, facilities) and demo user.

    Only rows named by a seed run (SEED_TENANT_SLUG_RE, SEED_USERNAME_RE) are touched: a
    superuser or tenant created by hand survives. Returns the deleted tenant ids.
    """
    user_model = get_user_model()
    tenant_ids = list(
        Tenant.objects.filter(slug__regex=SEED_TENANT_SLUG_RE).values_list("id", flat=True)
    )
    demo_users = user_model.objects.filter(username__regex=SEED_USERNAME_RE)
    # Deleting a token does not drop its cached principal; do it here so a reset token
    # stops authenticating at once rather than after PRINCIPAL_CACHE_TTL.
    digests = list(
        ApiToken.objects.filter(user__in=demo_users).values_list("key_digest", flat=True)
    )
    _notes_and_patients_delete(tenant_ids=tenant_ids)
    Tenant.objects.filter(id__in=tenant_ids).delete()
    demo_users.delete()
    token_keys = [principal_token_cache_key(digest) for digest in digests]
    transaction.on_commit(lambda: cache_delete_many(token_keys))
    return tenant_ids


def _notes_and_patients_delete(*, tenant_ids: list[int]) -> None:
    only_generated = not (
        CareNote.objects.exclude(tenant_id__in=tenant_ids).exists()
        or Patient.objects.exclude(tenant_id__in=tenant_ids).exists()
    )
    with connection.cursor() as cursor:
        if only_generated:
            try:
                # TRUNCATE is instant where DELETE of millions of rows takes seconds; it fails
                # if some other table references these, and DELETE then does the job.
                with transaction.atomic():
                    cursor.execute("TRUNCATE carenotes_carenote, carenotes_patient")
                return
            except DatabaseError:
                pass
        cursor.execute("DELETE FROM carenotes_carenote WHERE tenant_id = ANY(%s)", [tenant_ids])
        cursor.execute("DELETE FROM carenotes_patient WHERE tenant_id = ANY(%s)", [tenant_ids])


def _sequences_restart_if_empty() -> None:
    # Same seed on an emptied database then gives the same ids, not only the same values.
    models = (get_user_model(), Tenant, Facility, Membership, ApiToken, Patient, CareNote)
    with connection.cursor() as cursor:
        for table in (model._meta.db_table for model in models):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), 1, false) "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table})",
                [table],
            )


# --- structure: tenants, facilities, users, memberships, tokens ---------------------------------


@dataclass
class _TenantPlan:
    tenant: Tenant
    end_date: date
    facility_ids: list[int]
    author_ids: list[int]
    users: list[dict]


def _staff_roles(staff: int) -> list[tuple[str, str]]:
    """Return (role, username suffix) for each staff member of a tenant."""
    carers = staff - 2
    width = max(2, len(str(carers)))
    roles = [(Role.ADMIN.value, "admin"), (Role.MANAGER.value, "manager")]
    return roles + [(Role.CARER.value, f"carer{n:0{width}d}") for n in range(1, carers + 1)]


def _structure_create(*, config: SeedConfig, rng: random.Random) -> tuple[dict, list[_TenantPlan]]:
    user_model = get_user_model()
    tag = seed_tag(config.seed)
    superuser = user_model.objects.create(
        username=f"{tag}-superuser",
        password=make_password(None),  # replaced by _passwords_set before commit
        is_superuser=True,
        is_staff=True,
    )
    plans = []
    for index in range(config.tenants):
        number = index + 1
        timezone_name = config.timezones[index % len(config.timezones)]
        base_name = TENANT_NAMES[index % len(TENANT_NAMES)]
        suffix = "" if index < len(TENANT_NAMES) else f" {number}"
        tenant = tenant_create(
            name=f"{base_name}{suffix}", slug=f"{tag}-t{number}", timezone_name=timezone_name
        )
        facility_ids = [
            facility_create(
                tenant=tenant, name=f"{base_name.split()[0]} {rng.choice(FACILITY_NAMES)} {n}"
            ).pk
            for n in range(1, config.facilities_per_tenant + 1)
        ]
        plans.append(
            _TenantPlan(
                tenant=tenant,
                end_date=config.end_date or local_today(timezone_name=timezone_name),
                facility_ids=facility_ids,
                author_ids=[],
                users=[],
            )
        )
    _staff_create(config=config, plans=plans)
    superuser_entry = {"username": superuser.username, "password": demo_password(config.seed)}
    return superuser_entry, plans


def _staff_create(*, config: SeedConfig, plans: list[_TenantPlan]) -> None:
    user_model = get_user_model()
    tag = seed_tag(config.seed)
    roles = _staff_roles(config.staff_per_tenant)
    unusable = make_password(None)
    rows = [
        user_model(username=f"{tag}-t{number}-{suffix}", password=unusable)
        for number in range(1, len(plans) + 1)
        for _, suffix in roles
    ]
    # New users have no cached principal yet, so skipping the save signals loses nothing.
    users = iter(user_model.objects.bulk_create(rows))
    for plan in plans:
        carers_with_token = 0
        for role, _ in roles:
            user = next(users)
            membership_grant(user=user, tenant=plan.tenant, role=role)
            if role == Role.CARER:
                plan.author_ids.append(user.pk)
                carers_with_token += 1
                if carers_with_token > CARERS_WITH_TOKENS:
                    continue
            key = demo_token_key(seed=config.seed, username=user.username)
            api_token_create(user=user, name="demo seed", key=key)
            entry = {"username": user.username, "role": role, "token": key}
            if role == Role.ADMIN:
                entry.update(admin_login=True, password=demo_password(config.seed))
            plan.users.append(entry)


def _passwords_set(*, seed: int, encoded: str) -> None:
    """Give every user of this run the demo password (one PBKDF2 hash, shared)."""
    get_user_model().objects.filter(username__startswith=f"{seed_tag(seed)}-").update(
        password=encoded
    )


# --- rows generated in SQL -----------------------------------------------------------------------

PATIENT_INSERT = """
INSERT INTO carenotes_patient (tenant_id, facility_id, reference, display_name)
SELECT %(tenant_id)s,
       (%(facility_ids)s::bigint[])[(n - 1) / %(per_facility)s + 1],
       'P' || lpad(n::text, 5, '0'),
       (%(first_names)s::text[])[floor(random() * %(n_first)s)::int + 1] || ' ' ||
       (%(last_names)s::text[])[floor(random() * %(n_last)s)::int + 1]
FROM generate_series(1, %(count)s) AS n
ORDER BY n
"""

NOTE_COLUMNS = "tenant_id, facility_id, patient_id, author_id, category, priority, body, created_at"
# The inner query draws every random number once per row, in a fixed order (a subquery
# with volatile outputs is never flattened); the outer one maps them to values through
# constant arrays: every body text, and the UTC start of every local hour of the window
# (converted once per statement, not once per row). Measured: streaming the same SELECT
# through COPY TO / COPY FROM on two connections was no faster.
NOTE_INSERT = f"""
INSERT INTO carenotes_carenote ({NOTE_COLUMNS})
SELECT %(tenant_id)s,
       (%(patient_facility_ids)s::bigint[])[p],
       (%(patient_ids)s::bigint[])[p],
       (%(author_ids)s::bigint[])[a],
       (%(categories)s::text[])[c],
       r,
       (%(bodies)s::text[])[((c - 1) * %(n_sentences)s + s - 1) * %(n_remarks)s + m],
       (SELECT array_agg(
                   (%(first_day)s::timestamp + make_interval(hours => hour)) AT TIME ZONE
                   %(timezone)s ORDER BY hour)
        FROM generate_series(0, %(days)s * 24 - 1) AS hour)[d * 24 + h + 1]
           + sec * interval '1 second'
FROM (
    SELECT floor(random() * %(n_patients)s)::int + 1 AS p,
           floor(random() * %(n_authors)s)::int + 1 AS a,
           (%(category_lookup)s::int[])[floor(random() * %(n_category_lookup)s)::int + 1] AS c,
           (%(priority_lookup)s::int[])[floor(random() * %(n_priority_lookup)s)::int + 1] AS r,
           floor(random() * %(n_sentences)s)::int + 1 AS s,
           floor(random() * %(n_remarks)s)::int + 1 AS m,
           floor(random() * %(days)s)::int AS d,
           (%(hour_lookup)s::int[])[floor(random() * %(n_hour_lookup)s)::int + 1] AS h,
           floor(random() * 3600)::int AS sec
    -- generate_series in the select list streams; in FROM it is materialised first.
    FROM (SELECT generate_series(1, %(count)s)) AS series
) AS draw
"""


def _note_params(*, config: SeedConfig, plan: _TenantPlan, patients: list[tuple]) -> dict:
    categories = list(BODY_SENTENCES)
    category_lookup = weighted_lookup(
        {categories.index(cat) + 1: weight for cat, weight in CATEGORY_WEIGHTS.items()}
    )
    hour_lookup = weighted_lookup(dict(enumerate(HOUR_WEIGHTS)))
    priority_lookup = weighted_lookup(PRIORITY_WEIGHTS)
    return {
        "tenant_id": plan.tenant.pk,
        "patient_ids": [p[0] for p in patients],
        "patient_facility_ids": [p[1] for p in patients],
        "n_patients": len(patients),
        "author_ids": plan.author_ids,
        "n_authors": len(plan.author_ids),
        "categories": [str(c) for c in categories],
        "category_lookup": category_lookup,
        "n_category_lookup": len(category_lookup),
        "priority_lookup": priority_lookup,
        "n_priority_lookup": len(priority_lookup),
        # Index ((category - 1) * sentences + sentence - 1) * remarks + remark, all 1-based.
        "bodies": [
            f"{sentence} {remark}"
            for c in categories
            for sentence in BODY_SENTENCES[c]
            for remark in BODY_REMARKS
        ],
        "n_sentences": len(BODY_SENTENCES[categories[0]]),
        "n_remarks": len(BODY_REMARKS),
        "days": config.days,
        "first_day": plan.end_date - timedelta(days=config.days - 1),
        "hour_lookup": hour_lookup,
        "n_hour_lookup": len(hour_lookup),
        "timezone": plan.tenant.timezone,
    }


def _patients_create(*, config: SeedConfig, plan: _TenantPlan, cursor) -> list[tuple]:
    count = config.facilities_per_tenant * config.patients_per_facility
    cursor.execute(
        PATIENT_INSERT,
        {
            "tenant_id": plan.tenant.pk,
            "facility_ids": plan.facility_ids,
            "per_facility": config.patients_per_facility,
            "first_names": list(FIRST_NAMES),
            "n_first": len(FIRST_NAMES),
            "last_names": list(LAST_NAMES),
            "n_last": len(LAST_NAMES),
            "count": count,
        },
    )
    cursor.execute(
        "SELECT id, facility_id FROM carenotes_patient WHERE tenant_id = %s ORDER BY id",
        [plan.tenant.pk],
    )
    return cursor.fetchall()


def _seed_to_setseed(seed: int) -> float:
    # setseed() takes a double in [-1, 1]; spread integer seeds over it reproducibly.
    return random.Random(seed).uniform(-1.0, 1.0)


# --- secondary indexes and foreign keys during big loads ----------------------------------------

INDEX_DEFS_SQL = """
SELECT c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'carenotes_carenote'::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname
"""
FOREIGN_KEY_DEFS_SQL = """
SELECT conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE conrelid = 'carenotes_carenote'::regclass AND contype = 'f'
ORDER BY conname
"""


def note_table_secondary_definitions(cursor) -> tuple[list[tuple], list[tuple]]:
    """Return (name, definition) of the note table's secondary indexes and foreign keys."""
    cursor.execute(INDEX_DEFS_SQL)
    indexes = cursor.fetchall()
    cursor.execute(FOREIGN_KEY_DEFS_SQL)
    return indexes, cursor.fetchall()


def _secondary_drop(cursor, indexes: list[tuple], foreign_keys: list[tuple]) -> None:
    for name, _ in foreign_keys:
        cursor.execute(f'ALTER TABLE carenotes_carenote DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f'DROP INDEX "{name}"')


def _secondary_restore(cursor, indexes: list[tuple], foreign_keys: list[tuple]) -> None:
    # Building an index in one sorted pass, and validating a foreign key with one join,
    # is several times cheaper than maintaining them row by row during the load.
    cursor.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
    for _, definition in indexes:
        cursor.execute(definition)
    for name, definition in foreign_keys:
        cursor.execute(f'ALTER TABLE carenotes_carenote ADD CONSTRAINT "{name}" {definition}')


def _rebuild_wanted(*, strategy: str, notes: int, cursor) -> bool:
    if strategy != "auto":
        return strategy == "rebuild"
    if notes < REBUILD_MIN_ROWS:
        return False
    cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'carenotes_carenote'::regclass")
    existing = max(cursor.fetchone()[0], 0)
    return notes >= existing


# --- the run -----------------------------------------------------------------------------------

ProgressCallback = Callable[[int, int], None]


class _Stopwatch:
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
    generated data first) or "append". Nothing is left behind when anything fails.

    Runs as the database owner: it truncates, rebuilds indexes and vacuums (tenants/rls.py).
    """
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
    if index_strategy not in INDEX_STRATEGIES:
        raise SeedArgumentError("--index-strategy", f"must be one of {INDEX_STRATEGIES}")
    stopwatch = _Stopwatch()
    # PBKDF2 takes ~0.3 s here and releases the GIL: hash the one shared demo password in a
    # thread while PostgreSQL does the loading.
    with ThreadPoolExecutor(max_workers=1) as hasher:
        encoded = hasher.submit(make_password, demo_password(config.seed))
        started = time.perf_counter()
        with transaction.atomic():
            with stopwatch("reset"):
                _prepare(config=config, mode=mode)
            with stopwatch("users"):
                superuser, plans = _structure_create(config=config, rng=random.Random(config.seed))
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
                _passwords_set(seed=config.seed, encoded=encoded.result())
    # The rest of the transaction's time: COMMIT and the after-commit cache invalidations.
    stopwatch.timings["commit"] = time.perf_counter() - started - sum(stopwatch.timings.values())
    if vacuum and not connection.in_atomic_block:
        with stopwatch("vacuum"):
            _vacuum_analyze()
    return SeedResult(
        seed=config.seed,
        notes=config.notes,
        tenant_ids=[plan.tenant.pk for plan in plans],
        credentials=_credentials(superuser=superuser, plans=plans, seed=config.seed),
        timings=stopwatch.timings,
    )


def _prepare(*, config: SeedConfig, mode: str) -> list[int]:
    deleted = seed_data_delete() if mode == "reset" else []
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
    _sequences_restart_if_empty()
    return deleted


def _notes_load(
    *,
    config: SeedConfig,
    plans: list[_TenantPlan],
    cursor,
    index_strategy: str,
    progress: ProgressCallback | None,
    stopwatch: _Stopwatch,
) -> None:
    # A serial plan keeps the order of random() calls, and so the rows, a function of the
    # seed; JIT compilation would cost more than it saves on these simple statements.
    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    cursor.execute("SET LOCAL jit = off")
    # Deferred foreign keys would queue one trigger event per row until commit.
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute("SELECT setseed(%s)", [_seed_to_setseed(config.seed)])
    with stopwatch("patients"):
        patients = {
            plan.tenant.pk: _patients_create(config=config, plan=plan, cursor=cursor)
            for plan in plans
        }
    with stopwatch("notes"):
        rebuild = _rebuild_wanted(strategy=index_strategy, notes=config.notes, cursor=cursor)
        indexes, foreign_keys = note_table_secondary_definitions(cursor) if rebuild else ([], [])
        _secondary_drop(cursor, indexes, foreign_keys)
        counts = tenant_note_counts(notes=config.notes, tenants=config.tenants)
        done = 0
        for plan, count in zip(plans, counts, strict=True):
            params = _note_params(config=config, plan=plan, patients=patients[plan.tenant.pk])
            for start in range(0, count, NOTE_CHUNK_ROWS):
                rows = min(NOTE_CHUNK_ROWS, count - start)
                cursor.execute(NOTE_INSERT, {**params, "count": rows})
                done += rows
                if progress is not None:
                    progress(done, config.notes)
    with stopwatch("indexes"):
        _secondary_restore(cursor, indexes, foreign_keys)


def _vacuum_analyze() -> None:
    # VACUUM sets the visibility map, so the stats query's index-only scans make no heap
    # fetches; ANALYZE gives the planner the new sizes. Neither may run in a transaction.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) carenotes_carenote")
        cursor.execute("ANALYZE carenotes_patient")
        cursor.execute("ANALYZE tenants_facility")


# --- credentials ---------------------------------------------------------------------------------


def _credentials(*, superuser: dict, plans: list[_TenantPlan], seed: int) -> dict:
    return {
        "seed": seed,
        "superuser": {**superuser, "admin_login": True},
        "tenants": [
            {
                "tenant_id": plan.tenant.pk,
                "name": plan.tenant.name,
                "timezone": plan.tenant.timezone,
                "facility_ids": plan.facility_ids,
                "end_date": plan.end_date.isoformat(),
                "users": plan.users,
            }
            for plan in plans
        ],
    }


def credentials_write(*, credentials: dict, path: Path, append: bool = False) -> dict:
    """Write the demo credentials (owner-only, they hold API keys); on append keep old tenants."""
    data = credentials
    if append and path.exists():
        try:
            previous = json.loads(path.read_text())
            data = {**credentials, "tenants": previous["tenants"] + credentials["tenants"]}
        except (ValueError, KeyError, TypeError):
            pass  # an unreadable old file is replaced by this run's data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def credentials_table(credentials: dict) -> list[str]:
    """Return the demo credentials as aligned text lines for a terminal."""
    superuser = credentials.get("superuser") or {}
    lines = [
        f"superuser  {superuser.get('username', '-')}  password {superuser.get('password', '-')}"
        "  (/admin/)",
        f"{'tenant':>6}  {'time zone':<20} {'username':<26} {'role':<8} token",
    ]
    for tenant in credentials.get("tenants", []):
        for user in tenant["users"]:
            admin = "  (/admin/ too)" if user.get("admin_login") else ""
            lines.append(
                f"{tenant['tenant_id']:>6}  {tenant['timezone']:<20} {user['username']:<26} "
                f"{user['role']:<8} {user['token']}{admin}"
            )
    return lines


def credentials_curl(credentials: dict, *, base_url: str) -> str | None:
    """Return a ready-to-paste curl line for the stats endpoint of the first tenant."""
    for tenant in credentials.get("tenants", []):
        manager = next((u for u in tenant["users"] if u["role"] == Role.MANAGER), None)
        if manager is None:
            continue
        facilities = ",".join(str(f) for f in tenant["facility_ids"])
        return (
            f'curl -H "Authorization: Token {manager["token"]}" '
            f'"{base_url.rstrip("/")}/api/care-stats/?tenant_id={tenant["tenant_id"]}'
            f'&facility_ids={facilities}&date={tenant["end_date"]}"'
        )
    return None
