"""What a run finds before it starts: existing data, deleting a previous data set, sequences."""

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction

from audit.services import audit_records_delete_for_tenants
from carenotes.notes.models import (
    CareNote,
    CareNoteAmendment,
    CareNoteAmendmentEvent,
    CareNoteEvent,
    Patient,
)
from carenotes.notes.seeding.names import SEED_TENANT_SLUG_RE, SEED_USERNAME_RE
from tenants.models import ApiToken, Facility, Membership, Tenant

NOTE_TABLE = CareNote._meta.db_table
PATIENT_TABLE = Patient._meta.db_table
AMENDMENT_TABLE = CareNoteAmendment._meta.db_table
# Amendments reference notes (TRUNCATE of notes alone is refused); the history of generated
# data goes with it (TRUNCATE fires no row trigger, so the append-only guard does not apply).
GENERATED_TABLES = (
    NOTE_TABLE,
    PATIENT_TABLE,
    AMENDMENT_TABLE,
    CareNoteEvent._meta.db_table,
    CareNoteAmendmentEvent._meta.db_table,
)


def database_has_data() -> bool:
    """Return True when any tenant, patient or care note exists."""
    return Tenant.objects.exists() or Patient.objects.exists() or CareNote.objects.exists()


def seed_data_delete() -> list[int]:
    """Delete every generated tenant (with its notes, patients, facilities, access audit
    records) and demo user.

    Only rows named by a seed run (SEED_TENANT_SLUG_RE, SEED_USERNAME_RE) are touched: a
    superuser or tenant created by hand survives. Returns the deleted tenant ids. The ORM
    deletes send the signals that drop cached principals and tenant facts, deleted tokens'
    entries included (tenants/signals.py), now and after commit.
    """
    tenant_ids = list(
        Tenant.objects.filter(slug__regex=SEED_TENANT_SLUG_RE).values_list("id", flat=True)
    )
    _notes_and_patients_delete(tenant_ids=tenant_ids)
    audit_records_delete_for_tenants(tenant_ids=tenant_ids)
    Tenant.objects.filter(id__in=tenant_ids).delete()
    get_user_model().objects.filter(username__regex=SEED_USERNAME_RE).delete()
    return tenant_ids


def _notes_and_patients_delete(*, tenant_ids: list[int]) -> None:
    only_generated = not (
        CareNote.objects.exclude(tenant_id__in=tenant_ids).exists()
        or Patient.objects.exclude(tenant_id__in=tenant_ids).exists()
    )
    with connection.cursor() as cursor:
        if only_generated:
            try:
                # TRUNCATE is instant where DELETE of millions of rows takes seconds; it fails
                # if some other table references these, and DELETE then does the job.
                with transaction.atomic():
                    cursor.execute(f"TRUNCATE {', '.join(GENERATED_TABLES)}")
                return
            except DatabaseError:
                pass
        # Row by row the notes' deletes are written to the change history, as any delete is.
        cursor.execute(f"DELETE FROM {AMENDMENT_TABLE} WHERE tenant_id = ANY(%s)", [tenant_ids])
        cursor.execute(f"DELETE FROM {NOTE_TABLE} WHERE tenant_id = ANY(%s)", [tenant_ids])
        cursor.execute(f"DELETE FROM {PATIENT_TABLE} WHERE tenant_id = ANY(%s)", [tenant_ids])


def sequences_restart_if_empty() -> None:
    """Restart the id sequence of every table a run fills that is empty now.

    Same seed on an emptied database then gives the same ids, not only the same values.
    """
    models = (get_user_model(), Tenant, Facility, Membership, ApiToken, Patient, CareNote)
    with connection.cursor() as cursor:
        for table in (model._meta.db_table for model in models):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), 1, false) "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table})",
                [table],
            )
