#!/usr/bin/env python
"""Django's command-line utility for carenotes."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")
    from django.conf import settings
    from django.core.management import execute_from_command_line

    from carenotes.env import exit_on_misconfiguration

    # Load the settings here: a missing variable is one line naming it (exit 2), where
    # Django would print a traceback or hide the app's commands.
    with exit_on_misconfiguration("manage.py"):
        settings.INSTALLED_APPS  # noqa: B018
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
