"""The options of a seeding run: defaults, bounds, validation (SeedConfig) and each note window."""

import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from carenotes.core.days import local_day_bounds, local_today
from tenants.models import validate_timezone

DEFAULT_NOTES = 100_000
DEFAULT_TENANTS = 5
DEFAULT_FACILITIES_PER_TENANT = 3
DEFAULT_PATIENTS_PER_FACILITY = 50
DEFAULT_STAFF_PER_TENANT = 20
DEFAULT_DAYS = 30
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


class SeedArgumentError(ValueError):
    """An argument is out of range; ``argument`` names the command-line option."""

    def __init__(self, argument: str, message: str):
        super().__init__(f"{argument}: {message}")
        self.argument = argument


@dataclass(frozen=True)
class SeedConfig:
    """Validated seeding parameters.

    ``end_date`` None means today in each tenant's zone. ``now`` is the moment the run
    starts: no note is dated later, so it is part of what the rows depend on whenever a
    tenant's window reaches the present (see ``note_window``).
    """

    seed: int
    notes: int = DEFAULT_NOTES
    tenants: int = DEFAULT_TENANTS
    facilities_per_tenant: int = DEFAULT_FACILITIES_PER_TENANT
    patients_per_facility: int = DEFAULT_PATIENTS_PER_FACILITY
    staff_per_tenant: int = DEFAULT_STAFF_PER_TENANT
    days: int = DEFAULT_DAYS
    end_date: date | None = None
    timezones: tuple[str, ...] = DEFAULT_TIMEZONES
    now: datetime = field(default_factory=timezone.now)

    def tenant_timezone(self, index: int) -> str:
        """Return the time zone of the tenant at 0-based ``index`` (the zones are cycled)."""
        return self.timezones[index % len(self.timezones)]


@dataclass(frozen=True)
class NoteWindow:
    """The span a tenant's notes fall in: [start, end) in UTC, ending on local ``end_date``."""

    end_date: date
    start: datetime
    end: datetime


def note_window(*, config: SeedConfig, timezone_name: str) -> NoteWindow:
    """Return the window of ``config.days`` local days ending on the end date, cut at ``now``.

    With an end date in the past the window is whole days and ``now`` does not matter; when
    it reaches the present (the default end date, today), it ends at ``config.now``.
    """
    end_date = config.end_date or local_today(timezone_name=timezone_name, now=config.now)
    first_day = end_date - timedelta(days=config.days - 1)
    start, _ = local_day_bounds(day=first_day, timezone_name=timezone_name)
    _, after_last_day = local_day_bounds(day=end_date, timezone_name=timezone_name)
    return NoteWindow(end_date=end_date, start=start, end=min(after_last_day, config.now))


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


def _windows_check(config: SeedConfig) -> None:
    """Refuse an end date whose window holds no second before now in some tenant's zone."""
    for timezone_name in {config.tenant_timezone(i) for i in range(config.tenants)}:
        try:
            window = note_window(config=config, timezone_name=timezone_name)
        except OverflowError:
            raise SeedArgumentError(
                "--end-date", f"{config.end_date} with --days {config.days} is outside the calendar"
            ) from None
        if (window.end - window.start).total_seconds() < 1:
            raise SeedArgumentError(
                "--end-date",
                f"{window.end_date} with --days {config.days} has not begun yet in "
                f"{timezone_name}, and notes are never dated in the future; give today or "
                "an earlier date",
            )


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
    now: datetime | None = None,
) -> SeedConfig:
    """Return a validated config, or raise SeedArgumentError naming the bad option.

    ``now`` (aware; default: this moment) is the latest instant a note may be dated.
    """
    if seed is None:
        # A fresh random seed per run: demo tokens are derived from it, so they must not be
        # guessable unless the caller chose the seed.
        seed = secrets.randbelow(10**9)
    if now is not None and timezone.is_naive(now):
        raise ValueError(f"now must be an aware datetime, got {now!r}")
    config = SeedConfig(
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
        now=now or timezone.now(),
    )
    _windows_check(config)
    return config
