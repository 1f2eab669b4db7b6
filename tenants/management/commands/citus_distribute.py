"""`manage.py citus_distribute`: shard the schema of a Citus coordinator by tenant."""

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from tenants.citus import CitusMissing, citus_distribute
from tenants.rls import rls_owner


class Command(BaseCommand):
    help = (
        "Distribute the database DATABASE_URL names, a Citus coordinator with its workers "
        "added: reference tables for users, groups, permissions, API tokens and tenants; every "
        "table with a tenant_id sharded on it and colocated; foreign keys, row-level security "
        "policies and grants kept. Run after migrate (and seed_notes, if wanted), and again "
        "after a migration adds a table: it converts what is not converted yet, in one "
        "transaction. Serve the app with DATABASE_CITUS=1 afterwards."
    )

    def handle(self, *args, **options):
        self.verbosity = options["verbosity"]
        # Schema work: the connecting (owner) user, as for migrate.
        try:
            with rls_owner(), transaction.atomic(), connection.cursor() as cursor:
                result = citus_distribute(cursor, say=self._say)
        except CitusMissing as error:
            raise CommandError(str(error)) from error
        converted = len(result.reference) + len(result.distributed)
        if converted == 0:
            self.stdout.write(f"Already distributed over {result.workers} workers.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Distributed {len(result.distributed)} tables by tenant and made "
                f"{len(result.reference)} reference tables, over {result.workers} workers."
            )
        )

    def _say(self, line: str) -> None:
        if self.verbosity >= 2:
            self.stdout.write(f"  {line}")
