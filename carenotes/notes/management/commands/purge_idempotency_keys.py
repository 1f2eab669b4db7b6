"""`manage.py purge_idempotency_keys`: delete the expired Idempotency-Keys of POST /api/notes/."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from carenotes.notes.idempotency import PURGE_BATCH_SIZE, idempotency_keys_purge
from tenants.rls import rls_system

BATCH_SIZE_MAX = 100_000


class Command(BaseCommand):
    help = (
        "Delete the Idempotency-Keys of POST /api/notes/ that have expired "
        "(IDEMPOTENCY_KEY_TTL_HOURS after their note). Safe while the service is writing: each "
        "batch is its own short transaction and skips keys a request holds; run it e.g. hourly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=PURGE_BATCH_SIZE,
            help=f"keys deleted per transaction (default {PURGE_BATCH_SIZE})",
        )

    def handle(self, *args, **options):
        batch_size = options["batch_size"]
        if not 1 <= batch_size <= BATCH_SIZE_MAX:
            raise CommandError(
                f"--batch-size must be between 1 and {BATCH_SIZE_MAX}, got {batch_size}"
            )
        # Trusted cross-tenant maintenance: the system role sees every tenant's keys.
        with rls_system():
            deleted = idempotency_keys_purge(now=timezone.now(), batch_size=batch_size)
        self.stdout.write(f"Deleted {deleted} expired idempotency keys.")
