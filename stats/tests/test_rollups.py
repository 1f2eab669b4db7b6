"""The day rollups follow every change of care notes, in the writing transaction, exactly."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction

from carenotes.notes.models import CareNote, Category
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.selectors import care_rollups_differences
from stats.tests.factories import RollupRows, rollup_rows
from tenants.models import Tenant
from tenants.rls import rls_owner, rls_system, rls_tenants
from tenants.tests.factories import FacilityFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

# 23:30 UTC on 1 July is 00:30 on 2 July in London (BST, UTC+1): the rollups bucket by the
# tenant's local day, not by UTC's.
LATE_UTC = datetime(2025, 7, 1, 23, 30, tzinfo=UTC)
LOCAL_DAY = date(2025, 7, 2)


@pytest.fixture
def patient():
    return PatientFactory(facility__tenant__timezone="Europe/London")


def _note(patient, **fields):
    return CareNoteFactory(
        patient=patient,
        category=fields.pop("category", Category.MEDICATION),
        priority=fields.pop("priority", 2),
        created_at=fields.pop("created_at", LATE_UTC),
        **fields,
    )


def _xmins() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xmin::text::bigint FROM stats_day_counts UNION ALL "
            "SELECT xmin::text::bigint FROM stats_day_residents ORDER BY 1"
        )
        return [row[0] for row in cursor.fetchall()]


def test_a_new_note_counts_in_its_tenants_local_day(patient):
    _note(patient)

    assert rollup_rows(patient.tenant_id) == RollupRows(
        counts={(LOCAL_DAY, patient.facility_id, "medication", 2): 1},
        residents={(LOCAL_DAY, patient.facility_id, patient.pk): 1},
    )


def test_notes_of_one_key_add_up_and_residents_count_their_notes(patient):
    other = PatientFactory(facility=patient.facility)
    for resident in (patient, patient, other):
        _note(resident)

    rows = rollup_rows(patient.tenant_id)

    assert rows.counts == {(LOCAL_DAY, patient.facility_id, "medication", 2): 3}
    assert rows.residents == {
        (LOCAL_DAY, patient.facility_id, patient.pk): 2,
        (LOCAL_DAY, patient.facility_id, other.pk): 1,
    }


def test_moving_a_note_to_another_day_facility_category_or_priority_moves_its_count(patient):
    stays = _note(patient)
    moved = _note(patient)
    elsewhere = PatientFactory(facility=FacilityFactory(tenant=patient.tenant))

    moved.created_at = LATE_UTC + timedelta(days=3)
    moved.facility, moved.patient = elsewhere.facility, elsewhere
    moved.category, moved.priority = Category.TREATMENT, 5
    moved.save()

    later = LOCAL_DAY + timedelta(days=3)
    assert rollup_rows(patient.tenant_id) == RollupRows(
        counts={
            (LOCAL_DAY, stays.facility_id, "medication", 2): 1,
            (later, elsewhere.facility_id, "treatment", 5): 1,
        },
        residents={
            (LOCAL_DAY, stays.facility_id, patient.pk): 1,
            (later, elsewhere.facility_id, elsewhere.pk): 1,
        },
    )


def test_an_edit_that_moves_nothing_writes_no_rollup_row(patient):
    note = _note(patient)
    before = (rollup_rows(patient.tenant_id), _xmins())

    note.body = "Corrected spelling."
    note.save()

    assert (rollup_rows(patient.tenant_id), _xmins()) == before


def test_deleting_the_last_note_of_a_key_removes_its_rows(patient):
    first, second = _note(patient), _note(patient, priority=4)

    second.delete()
    assert rollup_rows(patient.tenant_id) == RollupRows(
        counts={(LOCAL_DAY, patient.facility_id, "medication", 2): 1},
        residents={(LOCAL_DAY, patient.facility_id, patient.pk): 1},
    )
    first.delete()
    assert rollup_rows(patient.tenant_id) == RollupRows(counts={}, residents={})


def test_bulk_statements_are_counted_per_statement_exactly(patient):
    other_tenant = PatientFactory(facility__tenant__timezone="Asia/Tokyo")
    notes = [
        CareNote(
            tenant_id=resident.tenant_id,
            facility_id=resident.facility_id,
            patient=resident,
            author=_note(patient).author,
            category=Category.values[index % 3],
            priority=1 + index % 5,
            body="-",
            created_at=LATE_UTC + timedelta(hours=7 * index),
        )
        for index, resident in enumerate([patient, other_tenant] * 30)
    ]
    CareNote.objects.bulk_create(notes)
    assert care_rollups_differences(tenant_id=None).total == 0

    CareNote.objects.filter(pk__in=[note.pk for note in notes[::3]]).update(priority=5)
    assert care_rollups_differences(tenant_id=None).total == 0
    CareNote.objects.filter(tenant_id=other_tenant.tenant_id).delete()
    assert rollup_rows(other_tenant.tenant_id) == RollupRows(counts={}, residents={})
    assert care_rollups_differences(tenant_id=None).total == 0


def test_raw_sql_writes_are_counted_too(patient):
    author = _note(patient).author
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO carenotes_carenote "
            "(tenant_id, facility_id, patient_id, author_id, category, priority, body, created_at)"
            " SELECT %s, %s, %s, %s, 'observation', 3, 'raw', %s FROM generate_series(1, 5)",
            [patient.tenant_id, patient.facility_id, patient.pk, author.pk, LATE_UTC],
        )

    assert (
        rollup_rows(patient.tenant_id).counts[(LOCAL_DAY, patient.facility_id, "observation", 3)]
        == 5
    )


def test_a_time_zone_change_rebuckets_that_tenant_only(patient):
    _note(patient)
    bystander = PatientFactory(facility__tenant__timezone="Europe/London")
    _note(bystander)
    untouched = rollup_rows(bystander.tenant_id)

    Tenant.objects.filter(pk=patient.tenant_id).update(timezone="America/New_York")

    # 23:30 UTC on 1 July is 19:30 on 1 July in New York.
    assert rollup_rows(patient.tenant_id) == RollupRows(
        counts={(date(2025, 7, 1), patient.facility_id, "medication", 2): 1},
        residents={(date(2025, 7, 1), patient.facility_id, patient.pk): 1},
    )
    assert rollup_rows(bystander.tenant_id) == untouched


def test_saving_a_tenant_without_changing_its_zone_rebuilds_nothing(patient):
    _note(patient)
    before = _xmins()
    tenant = Tenant.objects.get(pk=patient.tenant_id)
    tenant.name = "Renamed"
    tenant.save()
    assert _xmins() == before


def test_truncating_the_notes_empties_the_rollups(patient):
    _note(patient)
    with rls_owner(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred key check may be pending
        # Amendments reference notes: TRUNCATE names them too (seed resets do the same).
        cursor.execute("TRUNCATE carenotes_carenote, carenotes_carenoteamendment")
    assert rollup_rows(patient.tenant_id) == RollupRows(counts={}, residents={})


def test_the_app_role_keeps_the_rollups_of_its_own_tenant(patient):
    with rls_tenants([patient.tenant_id]):
        _note(patient)
        own = rollup_rows(patient.tenant_id)
    with rls_tenants([TenantFactory().pk]):
        foreign = rollup_rows(patient.tenant_id)

    assert own.counts == {(LOCAL_DAY, patient.facility_id, "medication", 2): 1}
    assert foreign == RollupRows(counts={}, residents={})


def test_a_drifted_count_never_blocks_a_note_and_the_check_sees_the_drift(patient):
    note = _note(patient)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM stats_day_counts WHERE tenant_id = %s", [patient.tenant_id])
    assert care_rollups_differences(tenant_id=patient.tenant_id).total == 1
    warnings = []
    connection.connection.add_notice_handler(lambda notice: warnings.append(notice.message_primary))

    note.delete()  # its count would go below zero: dropped, with a warning

    assert rollup_rows(patient.tenant_id) == RollupRows(counts={}, residents={})
    assert [message for message in warnings if "drifted" in message] != []
    assert care_rollups_differences(tenant_id=patient.tenant_id).total == 0


# --- concurrent writers ---------------------------------------------------------------------


def _in_thread(target, *args) -> threading.Thread:
    """Start ``target`` in a thread with its own connection, as the system role."""

    def run():
        try:
            with rls_system():
                target(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_the_same_keys_lose_no_count():
    patient = PatientFactory(facility__tenant__timezone="Europe/London")
    author = UserFactory()
    writers, notes_each = 6, 15
    start = threading.Barrier(writers)

    def create() -> CareNote:
        return CareNote.objects.create(
            tenant_id=patient.tenant_id,
            facility_id=patient.facility_id,
            patient=patient,
            author=author,
            category=Category.MEDICATION,
            priority=2,
            body="-",
            created_at=LATE_UTC,
        )

    def write():
        start.wait()
        for _ in range(notes_each):
            with transaction.atomic():
                create()
                create().delete()
            create().delete()

    threads = [_in_thread(write) for _ in range(writers)]
    for thread in threads:
        thread.join()

    assert rollup_rows(patient.tenant_id).counts == {
        (LOCAL_DAY, patient.facility_id, "medication", 2): writers * notes_each
    }
    assert care_rollups_differences(tenant_id=None).total == 0


@pytest.mark.django_db(transaction=True)
def test_a_time_zone_change_waits_for_open_writers_and_later_writers_see_the_new_zone():
    patient = PatientFactory(facility__tenant__timezone="Europe/London")
    author = UserFactory()
    inserted, release = threading.Event(), threading.Event()

    def note_fields():
        return {
            "tenant_id": patient.tenant_id,
            "facility_id": patient.facility_id,
            "patient": patient,
            "author": author,
            "category": Category.TREATMENT,
            "priority": 1,
            "body": "-",
            "created_at": LATE_UTC,
        }

    def slow_writer():
        with transaction.atomic():
            CareNote.objects.create(**note_fields())  # bucketed under London
            inserted.set()
            release.wait(timeout=30)

    def rezone(zone: str):
        Tenant.objects.filter(pk=patient.tenant_id).update(timezone=zone)

    writer = _in_thread(slow_writer)
    assert inserted.wait(timeout=30)
    rezoning = _in_thread(rezone, "America/New_York")
    rezoning.join(timeout=1)
    assert rezoning.is_alive(), "the rebuild did not wait for the open writer"
    release.set()
    writer.join()
    rezoning.join()
    assert care_rollups_differences(tenant_id=None).total == 0

    # A writer that starts while a rebuild holds the lock waits, then reads the new zone.
    holding, done = threading.Event(), threading.Event()

    def rezone_and_hold():
        with transaction.atomic():
            rezone("Asia/Tokyo")
            holding.set()
            done.wait(timeout=30)

    rebuild = _in_thread(rezone_and_hold)
    assert holding.wait(timeout=30)
    late_writer = _in_thread(lambda: CareNote.objects.create(**note_fields()))
    late_writer.join(timeout=1)
    assert late_writer.is_alive(), "the writer did not wait for the rebuild"
    done.set()
    rebuild.join()
    late_writer.join()

    # 23:30 UTC on 1 July is 08:30 on 2 July in Tokyo.
    assert rollup_rows(patient.tenant_id).counts == {
        (date(2025, 7, 2), patient.facility_id, "treatment", 1): 2
    }
    assert care_rollups_differences(tenant_id=None).total == 0
