"""`manage.py notes_partitions`: month partitions of the care notes made ahead, filled from the
default partition, and dropped past the retention period."""

from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from carenotes.notes.partitions import (
    MONTHS_AHEAD_MAX,
    RETENTION_MONTHS_MAX,
    Partition,
    PartitionLockError,
    default_months,
    default_notes_before,
    month_add,
    month_bounds,
    month_partition_name,
    months_ahead,
    months_missing,
    partition_note_count,
    partitions_create,
    partitions_drop,
    partitions_expired,
    partitions_get,
)
from tenants.rls import rls_owner


@dataclass(frozen=True)
class PartitionsPlan:
    """What a run would do: months to create, partitions to drop, old notes left in default."""

    create: list[date]
    drop: list[Partition]
    cutoff: date | None
    default_expired: int


def partitions_plan(
    *, today: date, ahead: int, from_default: bool, keep_months: int
) -> PartitionsPlan:
    """Return the months to create (``today``'s, ``ahead`` after it, and with ``from_default``
    every month the default partition holds notes of) and the partitions past retention."""
    with connection.cursor() as cursor:
        partitions = partitions_get(cursor)
        months = months_ahead(today=today, ahead=ahead)
        if from_default:
            months += default_months(cursor)
        cutoff = month_add(today.replace(day=1), -keep_months) if keep_months else None
        expired = default_notes_before(cursor, before=month_bounds(cutoff)[0]) if cutoff else 0
    return PartitionsPlan(
        create=months_missing(months=months, partitions=partitions),
        drop=partitions_expired(partitions=partitions, today=today, keep_months=keep_months),
        cutoff=cutoff,
        default_expired=expired,
    )


def _bounded(option: str, value: int, maximum: int) -> int:
    if not 0 <= value <= maximum:
        raise CommandError(f"{option} must be between 0 and {maximum}, got {value}")
    return value


class Command(BaseCommand):
    help = (
        "Create the care notes' month partitions (UTC months) for the current month and the "
        "--ahead months after it, moving notes of those months out of the default partition; "
        "with --from-default also every month the default partition holds notes of; and drop "
        "the month partitions wholly older than --drop-older-than months before the current "
        "one (their notes and amendments; the day rollups are recounted). Idempotent. Run it "
        "daily with the owner's database URL; it holds the notes table for a moment only "
        "when it has something to do."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ahead",
            type=int,
            default=None,
            help="months after the current one that must have a partition (default: "
            "NOTES_PARTITIONS_AHEAD, 3)",
        )
        parser.add_argument(
            "--from-default",
            action="store_true",
            help="also create a partition for every month the default partition holds notes "
            "of, so that it ends up empty",
        )
        parser.add_argument(
            "--drop-older-than",
            type=int,
            default=None,
            metavar="MONTHS",
            help="drop the month partitions that end before the first day of the month MONTHS "
            "months before the current one (default: NOTES_RETENTION_MONTHS; 0 keeps every note)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print what would be created and dropped; change nothing",
        )

    def handle(self, *args, **options):
        ahead = options["ahead"]
        ahead = settings.NOTES_PARTITIONS_AHEAD if ahead is None else ahead
        ahead = _bounded("--ahead", ahead, MONTHS_AHEAD_MAX)
        keep = options["drop_older_than"]
        keep = settings.NOTES_RETENTION_MONTHS if keep is None else keep
        keep = _bounded("--drop-older-than", keep, RETENTION_MONTHS_MAX)
        # The owner: only it may create, attach, detach and drop tables (tenants/rls.py).
        with rls_owner():
            plan = partitions_plan(
                today=timezone.now().date(),
                ahead=ahead,
                from_default=options["from_default"],
                keep_months=keep,
            )
            if options["dry_run"]:
                self._dry_run(plan)
                return
            try:
                created = partitions_create(months=plan.create)
                dropped = partitions_drop(names=[p.name for p in plan.drop])
            except PartitionLockError as exc:
                raise CommandError(str(exc)) from exc
        for partition in created:
            self.stdout.write(
                f"Created {partition.name} and moved {partition.moved} notes into it "
                "from the default partition."
            )
        for partition in dropped:
            tenants = ", ".join(map(str, partition.tenant_ids)) or "none"
            self.stdout.write(
                f"Dropped {partition.name}: {partition.notes} notes, {partition.amendments} "
                f"amendments; day rollups recounted for tenants: {tenants}."
            )
        if not created and not dropped:
            self.stdout.write(f"Nothing to do: the current month and {ahead} after it exist.")
        self._default_warning(plan)

    def _dry_run(self, plan: PartitionsPlan) -> None:
        for month in plan.create:
            self.stdout.write(f"Would create {month_partition_name(month)}.")
        with connection.cursor() as cursor:
            for partition in plan.drop:
                notes = partition_note_count(cursor, name=partition.name)
                self.stdout.write(f"Would drop {partition.name} ({notes} notes).")
        if not plan.create and not plan.drop:
            self.stdout.write("Would do nothing.")
        self._default_warning(plan)

    def _default_warning(self, plan: PartitionsPlan) -> None:
        if plan.default_expired:
            self.stdout.write(
                self.style.WARNING(
                    f"The default partition holds {plan.default_expired} notes older than "
                    f"{plan.cutoff}: retention drops whole month partitions only. Run "
                    "notes_partitions --from-default, then this again, to drop them."
                )
            )
