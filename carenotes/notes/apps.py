"""App config for the care-note domain: patients and care notes."""

from django.apps import AppConfig
from django.db.backends.signals import connection_created


class NotesConfig(AppConfig):
    # The label stays "carenotes": table names, permissions and migration history predate
    # the move of the domain into carenotes/notes/.
    name = "carenotes.notes"
    label = "carenotes"
    verbose_name = "Care notes"

    def ready(self) -> None:
        from carenotes.notes.history import history_context_install

        # After tenants' receiver (INSTALLED_APPS order), which installs the scope wrapper.
        connection_created.connect(history_context_install, dispatch_uid="history_context")
