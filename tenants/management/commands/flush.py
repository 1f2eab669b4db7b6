"""`manage.py flush`, run as the database owner: TRUNCATE ignores row-level security, so the
app role is never granted it (transactional tests flush through this command)."""

from django.core.management.commands import flush

from tenants.rls import rls_owner


class Command(flush.Command):
    help = flush.Command.help + " Runs as the connecting (owner) user, not carenotes_app."

    def handle(self, *args, **options):
        with rls_owner():
            return super().handle(*args, **options)
