"""`manage.py migrate`, run as the database owner: schema changes are not the app role's to make."""

from django.core.management.commands import migrate

from tenants.rls import rls_owner


class Command(migrate.Command):
    help = migrate.Command.help + " Runs as the connecting (owner) user, not carenotes_app."

    def handle(self, *args, **options):
        with rls_owner():
            return super().handle(*args, **options)
