"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

from carenotes.env import exit_on_misconfiguration

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")

# gunicorn's arbiter stops, instead of respawning the worker forever, when a worker exits
# with this code ("App failed to load", gunicorn.arbiter.Arbiter.APP_LOAD_ERROR).
GUNICORN_APP_LOAD_ERROR = 4

# A missing or malformed setting: one line naming the variable, then gunicorn stops.
with exit_on_misconfiguration("carenotes.wsgi", exit_code=GUNICORN_APP_LOAD_ERROR):
    application = get_wsgi_application()
