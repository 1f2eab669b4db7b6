"""App config for the care-note domain: patients and care notes."""

from django.apps import AppConfig


class CarenotesConfig(AppConfig):
    name = "carenotes"
    verbose_name = "Care notes"
