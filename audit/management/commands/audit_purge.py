"""`manage.py audit_purge`: delete the audit records older than the retention, in batches."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from audit.services import AUDIT_PURGE_BATCH_DEFAULT, audit_purge, audit_retention_cutoff
from tenants.rls import rls_owner


class Command(BaseCommand):
    help = (
        "Delete the access audit records read more than AUDIT_RETENTION_DAYS days ago (or "
        "--days), a batch per statement, as the table's owner: the application roles may "
        "only append and read them. Safe while the service is running; run it daily."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="keep the records of the last N days (default: the AUDIT_RETENTION_DAYS setting)",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=AUDIT_PURGE_BATCH_DEFAULT,
            help=f"rows deleted per statement (default {AUDIT_PURGE_BATCH_DEFAULT})",
        )

    def handle(self, *args, **options):
        days = options["days"] if options["days"] is not None else settings.AUDIT_RETENTION_DAYS
        batch_size = options["batch_size"]
        if days < 1:
            raise CommandError(f"--days must be a positive integer, got {days}")
        if batch_size < 1:
            raise CommandError(f"--batch-size must be a positive integer, got {batch_size}")
        before = audit_retention_cutoff(days=days)
        # The owner: neither carenotes_app nor carenotes_system may delete audit records.
        with rls_owner():
            deleted = audit_purge(before=before, batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted} audit records read before {before.isoformat()}")
