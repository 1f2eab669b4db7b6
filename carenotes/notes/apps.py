"""App config for the care-note domain: patients and care notes."""

from django.apps import AppConfig


class NotesConfig(AppConfig):
    # The label stays "carenotes": table names, permissions and migration history predate
    # the move of the domain into carenotes/notes/.
    name = "carenotes.notes"
    label = "carenotes"
    verbose_name = "Care notes"
