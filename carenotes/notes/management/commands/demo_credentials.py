"""`manage.py demo_credentials`: print the demo users written by seed_notes and a curl line."""

import json

from django.core.management.base import BaseCommand, CommandError

from carenotes.notes import seeding
from carenotes.notes.management.options import add_credentials_option

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


class Command(BaseCommand):
    help = (
        "Print the demo credentials file written by seed_notes (per data set its password, then "
        "users, roles, API tokens) and a ready-to-paste curl line for the stats endpoint."
    )

    def add_arguments(self, parser):
        add_credentials_option(parser, help_text="the JSON written by seed_notes")
        parser.add_argument(
            "--base-url", default=DEFAULT_BASE_URL, help="where the API is served (for curl)"
        )

    def handle(self, *args, **options):
        path = options["credentials"]
        if not path.exists():
            self.stdout.write(
                f"No demo credentials at {path}; `manage.py seed_notes --reset` creates them."
            )
            return
        try:
            credentials = json.loads(path.read_text())
            lines = seeding.credentials_table(credentials)
            curl = seeding.credentials_curl(credentials, base_url=options["base_url"])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise CommandError(f"--credentials: {path} is not a seed_notes file") from exc
        self.stdout.write(f"Demo credentials ({path}):")
        for line in lines:
            self.stdout.write(line)
        if curl:
            self.stdout.write("Try:")
            self.stdout.write(curl)
