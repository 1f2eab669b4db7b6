"""`manage.py seed_notes`: fill the database with realistic multi-tenant demo data, fast."""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from carenotes.notes import seeding
from carenotes.notes.management.options import add_credentials_option
from tenants.rls import rls_owner

PROGRESS_MIN_INTERVAL = 0.2  # seconds between progress bar redraws
PROGRESS_BAR_WIDTH = 30
# (option, default, help) of the integer options; their values go to seed_config_build.
COUNT_OPTIONS = (
    ("--notes", seeding.DEFAULT_NOTES, "care notes to generate"),
    ("--tenants", seeding.DEFAULT_TENANTS, "tenants (notes split 10/15/25/20/30 %%, cycled)"),
    (
        "--facilities-per-tenant",
        seeding.DEFAULT_FACILITIES_PER_TENANT,
        "facilities (care homes) per tenant",
    ),
    (
        "--patients-per-facility",
        seeding.DEFAULT_PATIENTS_PER_FACILITY,
        "patients (residents) per facility",
    ),
    (
        "--staff-per-tenant",
        seeding.DEFAULT_STAFF_PER_TENANT,
        "members per tenant: one admin, one manager, the rest carers (at least 3)",
    ),
    ("--days", seeding.DEFAULT_DAYS, "local days the notes are spread over, ending at --end-date"),
)
CONFIG_OPTIONS = (
    *(option[2:].replace("-", "_") for option, _, _ in COUNT_OPTIONS),
    "end_date",
    "timezones",
    "seed",
)


class Command(BaseCommand):
    help = (
        "Generate tenants, facilities, patients, staff with API tokens and care notes inside "
        "PostgreSQL (INSERT ... SELECT generate_series), in one transaction, reproducibly per "
        "--seed, never dated after the moment it starts. Writes the demo credentials to a JSON "
        "file and prints them with each data set's password."
    )

    def add_arguments(self, parser):
        for option, default, help_text in COUNT_OPTIONS:
            parser.add_argument(option, type=int, default=default, help=help_text)
        parser.add_argument(
            "--end-date",
            default=None,
            help="last day of notes, YYYY-MM-DD (default: today in each tenant's time zone); "
            "no note is dated after the moment the command starts",
        )
        parser.add_argument(
            "--timezones",
            default=None,
            help="comma-separated IANA time zones given to the tenants in turn "
            f"(default: {','.join(seeding.DEFAULT_TIMEZONES[:5])},...)",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=None,
            help="random seed: the same seed and arguments, --end-date included, give the same "
            "rows; an --end-date of today (the default) ends at the start time, so its last day "
            "differs from run to run (default: random)",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--reset",
            action="store_true",
            help="delete previously generated demo data (tenants demo-N-tM, users demo-N-*) first",
        )
        mode.add_argument(
            "--append", action="store_true", help="add a new data set next to existing data"
        )
        mode.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing (exit 0) when the database already holds tenants, patients or notes",
        )
        add_credentials_option(parser, help_text="where to write the demo credentials JSON")
        parser.add_argument(
            "--index-strategy",
            choices=seeding.INDEX_STRATEGIES,
            default="auto",
            help="rebuild: drop secondary indexes/foreign keys and rebuild them after the load; "
            "keep: maintain them row by row; auto: rebuild for big loads into small tables",
        )
        parser.add_argument(
            "--quiet", action="store_true", help="no progress bar and no credentials table"
        )

    def handle(self, *args, **options):
        # The owner: seeding truncates, rebuilds indexes and vacuums (tenants/rls.py).
        with rls_owner():
            self._handle(**options)

    def _handle(self, **options):
        if options["if_empty"] and seeding.database_has_data():
            self.stdout.write("The database already holds data; not seeding.")
            return
        try:
            config = seeding.seed_config_build(**{name: options[name] for name in CONFIG_OPTIONS})
        except seeding.SeedArgumentError as exc:
            raise CommandError(str(exc)) from exc
        mode = "reset" if options["reset"] else "append" if options["append"] else "refuse"
        show = not options["quiet"]
        progress = ProgressBar(self.stdout) if show and _is_terminal(self.stdout) else None
        try:
            result = seeding.seed_notes_run(
                config=config,
                mode=mode,
                index_strategy=options["index_strategy"],
                progress=progress,
            )
        except seeding.SeedRefusedError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if progress is not None:
                progress.close()
        path = options["credentials"]
        credentials = seeding.credentials_write(
            credentials=result.credentials, path=path, append=mode == "append"
        )
        self._summary(result=result, path=path)
        if show:
            for line in seeding.credentials_table(credentials):
                self.stdout.write(line)

    def _summary(self, *, result: seeding.SeedResult, path: Path) -> None:
        seconds = result.seconds
        phases = ", ".join(f"{name} {value:.2f}s" for name, value in result.timings.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {result.notes:,} notes in {len(result.tenant_ids)} tenants in "
                f"{seconds:.2f}s ({result.notes / seconds:,.0f} rows/s; seed {result.seed})"
            )
        )
        self.stdout.write(f"  phases: {phases}")
        self.stdout.write(f"  credentials: {path}")


def _is_terminal(stream) -> bool:
    target = getattr(stream, "_out", stream)
    return hasattr(target, "isatty") and target.isatty()


class ProgressBar:
    """A one-line progress bar with rows/s, redrawn in place at most every 0.2 s."""

    def __init__(self, stdout):
        self.stdout = stdout
        self.started = time.perf_counter()
        self.drawn_at = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.drawn_at < PROGRESS_MIN_INTERVAL:
            return
        self.drawn_at = now
        filled = PROGRESS_BAR_WIDTH * done // total
        rate = done / max(now - self.started, 1e-9)
        bar = "#" * filled + "." * (PROGRESS_BAR_WIDTH - filled)
        self.stdout.write(f"\r[{bar}] {done:,}/{total:,} notes  {rate:,.0f} rows/s", ending="")
        self.stdout.flush()

    def close(self) -> None:
        if self.drawn_at:
            self.stdout.write("")
