"""What the locust load runs send and how they are judged, free of locust so tests can use it.

The locustfile (repository root) turns these choices into HTTP requests; this module only
reads the demo credentials, picks members and query parameters, and decides pass or fail.
"""

import json
import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS_PATH = ROOT / ".data" / "demo-credentials.json"

PROFILE_SEED = "seed"
PROFILE_MIXED = "mixed"
PROFILES = (PROFILE_SEED, PROFILE_MIXED)

# The classic challenge's load test: each user waits 10-100 ms between requests.
SEED_WAIT_SECONDS = (0.010, 0.100)
# Mixed profile: people, not scripts: 200 users offer about 133 req/s of reads and writes.
MIXED_WAIT_SECONDS = (0.500, 2.500)

FACILITY_FILTER_SHARE = 0.5  # half the stats reads name some of the tenant's facilities
FACILITY_FILTER_MAX = 3  # ... between 1 and 3 of them
PAST_DATE_SHARE = 0.3  # 30 % ask for a past day, the rest for today (no date parameter)
PAST_DAYS_MAX = 30
FACILITY_IDS_SEPARATOR = ","

# Keys the stats answer may carry its total number of notes under (first found wins).
STATS_TOTAL_FIELDS = ("total_notes", "total", "count")

NOTE_CATEGORIES = ("medication", "observation", "treatment")
NOTE_PRIORITIES = (1, 2, 3, 4, 5)
NOTE_BODY = "Load test note: resident settled, fluids taken, no concerns."

SEED_COMMAND_HINT = "python manage.py seed_notes --reset"

# Every note POST carries a fresh key; a POST whose outcome is unknown (no answer, a timeout,
# a proxy's or the app's "retry" status) is sent again with the same key and body, so the
# note is recorded once however often it is sent (carenotes/notes/idempotency.py).
IDEMPOTENCY_HEADER = "Idempotency-Key"
NOTE_POST_ATTEMPTS = 3
# Status 0: the load generator got no HTTP answer (connection error or timeout).
OUTCOME_UNKNOWN_STATUSES = frozenset({0, 502, 503, 504})


class CredentialsError(Exception):
    """The demo credentials file is missing or not in the expected shape."""


@dataclass(frozen=True)
class Member:
    """One real member of one tenant, as the load generator acts as them."""

    tenant_id: int
    timezone: str
    facility_ids: tuple[int, ...]
    username: str
    role: str
    token: str


def credentials_load(path: Path = CREDENTIALS_PATH) -> list[Member]:
    """Return every tenant member in the seed's credentials file; raise CredentialsError."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise CredentialsError(
            f"{path} does not exist: the load runs act as the demo users the seed creates. "
            f"Run `{SEED_COMMAND_HINT}` first, or set LOAD_CREDENTIALS to the file."
        ) from exc
    except (OSError, ValueError) as exc:
        raise CredentialsError(f"{path} is not readable JSON: {exc}") from exc
    try:
        members = [
            Member(
                tenant_id=int(tenant["tenant_id"]),
                timezone=str(tenant["timezone"]),
                facility_ids=tuple(int(pk) for pk in tenant["facility_ids"]),
                username=str(user["username"]),
                role=str(user["role"]),
                token=str(user["token"]),
            )
            for tenant in data["tenants"]
            for user in tenant["users"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise CredentialsError(
            f"{path} is not in the seed's format ({exc!r}); expected "
            '{"tenants": [{"tenant_id", "timezone", "facility_ids", '
            '"users": [{"username", "role", "token"}]}]}. Re-run the seed.'
        ) from exc
    if not members:
        raise CredentialsError(f"{path} lists no tenant users; re-run the seed.")
    return members


def member_pick(members: list[Member], *, roles: tuple[str, ...], rng: random.Random) -> Member:
    """Return a random member holding one of ``roles``, or any member when none does."""
    matching = [member for member in members if member.role in roles]
    return rng.choice(matching or members)


def tenant_reader(members: list[Member], *, member: Member) -> Member:
    """Return a manager or admin of ``member``'s tenant to read its stats, else ``member``."""
    for candidate in members:
        if candidate.tenant_id == member.tenant_id and candidate.role in ("manager", "admin"):
            return candidate
    return member


def tenant_today(timezone: str, *, now: datetime | None = None) -> date:
    """Return the current date in the tenant's time zone (UTC when the zone is unknown)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return (now or datetime.now(tz=zone)).astimezone(zone).date()


def stats_params(member: Member, *, rng: random.Random, today: date) -> dict[str, str | int]:
    """Return the query of one stats read: the tenant, maybe facilities, maybe a past day."""
    params: dict[str, str | int] = {"tenant_id": member.tenant_id}
    if member.facility_ids and rng.random() < FACILITY_FILTER_SHARE:
        count = rng.randint(1, min(FACILITY_FILTER_MAX, len(member.facility_ids)))
        chosen = rng.sample(member.facility_ids, count)
        params["facility_ids"] = FACILITY_IDS_SEPARATOR.join(str(pk) for pk in chosen)
    if rng.random() < PAST_DATE_SHARE:
        params["date"] = (today - timedelta(days=rng.randint(1, PAST_DAYS_MAX))).isoformat()
    return params


def note_payload(
    member: Member, *, patient: tuple[int, int], rng: random.Random
) -> dict[str, str | int]:
    """Return the body of one POST /api/notes/ for ``patient`` = (patient_id, facility_id)."""
    patient_id, facility_id = patient
    return {
        "tenant_id": member.tenant_id,
        "facility_id": facility_id,
        "patient_id": patient_id,
        "category": rng.choice(NOTE_CATEGORIES),
        "priority": rng.choice(NOTE_PRIORITIES),
        "body": NOTE_BODY,
    }


def idempotency_key() -> str:
    """Return a fresh Idempotency-Key for one new note (a random UUID)."""
    return str(uuid.uuid4())


def outcome_unknown(status: int) -> bool:
    """Return True when a POST answered ``status`` may or may not have recorded its note."""
    return status in OUTCOME_UNKNOWN_STATUSES


class NoteAcks:
    """The note id acknowledged for each Idempotency-Key: one key, one note, however retried."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def record(self, key: str, note_id: int) -> str | None:
        """Remember a 201 for ``key``; return why it breaks exactly-once, or None if it holds."""
        first = self._ids.setdefault(key, note_id)
        if first != note_id:
            return f"key {key} acknowledged note {first} and then note {note_id}"
        return None

    def __len__(self) -> int:
        return len(self._ids)


def patients_from_notes(payload: dict) -> list[tuple[int, int]]:
    """Return the distinct (patient_id, facility_id) pairs of a notes list page."""
    pairs = {(int(row["patient_id"]), int(row["facility_id"])) for row in payload["results"]}
    return sorted(pairs)


def stats_total(payload: dict) -> int | None:
    """Return the total number of notes of a stats answer, or None if it names none."""
    for field in STATS_TOTAL_FIELDS:
        value = payload.get(field)
        if isinstance(value, int):
            return value
    return None


def offered_ceiling(users: int, wait: tuple[float, float]) -> float:
    """Return the most requests per second ``users`` can offer: users / mean wait."""
    return users / ((wait[0] + wait[1]) / 2)


# The targets a run is held to, per profile; each is changed by the variable named beside it
# (`make load LOAD_MAX_P95_MS=40`, or the locust service's .env). The mixed run's target is
# correctness (no failure, stats include each POSTed note): its p95 bound is only a guard,
# and its carers make three requests per wait, so it has no throughput ceiling.
MAX_P95_MS_VARIABLE = "LOAD_MAX_P95_MS"
MIN_THROUGHPUT_RATIO_VARIABLE = "LOAD_MIN_THROUGHPUT_RATIO"
DEFAULT_MAX_P95_MS = {PROFILE_SEED: 25.0, PROFILE_MIXED: 1000.0}
DEFAULT_MIN_THROUGHPUT_RATIO = {PROFILE_SEED: 0.85, PROFILE_MIXED: 0.0}
BOUNDS_HELP = 'bounds and how to change them: README.md, "Load runs"'


class BoundError(ValueError):
    """A bound's variable does not hold a number."""


@dataclass(frozen=True)
class LoadBounds:
    """What a run of one profile must meet."""

    max_p95_ms: float
    min_throughput_ratio: float


def _bound(environ: dict[str, str], name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise BoundError(f"{name} must be a number, got {value!r}") from None


def load_bounds(profile: str, environ: dict[str, str]) -> LoadBounds:
    """Return the profile's bounds, each overridden by its variable when set and not empty."""
    return LoadBounds(
        max_p95_ms=_bound(environ, MAX_P95_MS_VARIABLE, DEFAULT_MAX_P95_MS[profile]),
        min_throughput_ratio=_bound(
            environ, MIN_THROUGHPUT_RATIO_VARIABLE, DEFAULT_MIN_THROUGHPUT_RATIO[profile]
        ),
    )


@dataclass(frozen=True)
class TargetCheck:
    """One target of a run: what was measured, the bound, and how to change the bound."""

    name: str
    measured: float
    bound: float
    unit: str
    at_most: bool  # the bound is a maximum (else a minimum)
    how: str  # the variable that sets the bound, or why it is fixed

    @property
    def met(self) -> bool:
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    def line(self) -> str:
        """Return e.g. ``MISSED p95 latency: 79 ms, bound <= 25 ms (LOAD_MAX_P95_MS)``."""
        status = "met   " if self.met else "MISSED"
        sign = "<=" if self.at_most else ">="
        measured, bound = (
            f"{value:.0f} {self.unit}".rstrip() for value in (self.measured, self.bound)
        )
        return f"{status} {self.name}: {measured}, bound {sign} {bound} ({self.how})"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a load run: the process exit code and every target checked."""

    exit_code: int
    checks: tuple[TargetCheck, ...]

    @property
    def missed(self) -> tuple[TargetCheck, ...]:
        return tuple(check for check in self.checks if not check.met)


def load_verdict(
    *,
    num_requests: int,
    num_failures: int,
    p95_ms: float,
    rps: float,
    bounds: LoadBounds,
    ceiling_rps: float,
) -> Verdict:
    """Return exit code 1 when any target was missed, else 0, with every check made.

    ``ceiling_rps`` is the most the users can offer (offered_ceiling); 0 means no
    throughput target.
    """
    checks = [
        TargetCheck("requests made", num_requests, 1, "", at_most=False, how="always"),
        TargetCheck("failed requests", num_failures, 0, "", at_most=True, how="always"),
        TargetCheck(
            "p95 latency", p95_ms, bounds.max_p95_ms, "ms", at_most=True, how=MAX_P95_MS_VARIABLE
        ),
    ]
    min_rps = bounds.min_throughput_ratio * ceiling_rps
    if min_rps > 0:
        checks.append(
            TargetCheck(
                "throughput",
                rps,
                min_rps,
                "req/s",
                at_most=False,
                how=f"{MIN_THROUGHPUT_RATIO_VARIABLE}={bounds.min_throughput_ratio:g} of the "
                f"{ceiling_rps:.0f} req/s the users offer",
            )
        )
    missed = any(not check.met for check in checks)
    return Verdict(exit_code=1 if missed else 0, checks=tuple(checks))


def verdict_lines(summary: dict) -> list[str]:
    """Return the closing lines of a run from its summary JSON: the verdict, then each target."""
    checks = summary["checks"]
    missed = [check for check in checks if not check["met"]]
    head = (
        f"FAILED: {len(missed)} of {len(checks)} targets missed ({BOUNDS_HELP})"
        if missed
        else f"PASSED: all {len(checks)} targets met"
    )
    # Met targets first, so the missed ones are the very last lines.
    ordered = [check for check in checks if check["met"]] + missed
    return [head, *(f"  {check['line']}" for check in ordered)]
