"""patient_attention_list: who has gone without a note, in what order, a page at a time, fast."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from carenotes.notes.selectors import (
    AttentionCursor,
    attention_cutoff,
    patient_attention_list,
)
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from tenants.rls import rls_owner
from tenants.selectors import tenant_info_get
from tenants.tests.factories import FacilityFactory

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
PATIENT_RECENT_INDEX = "carenote_patient_recent_idx"


def tenant_info_of(tenant):
    return tenant_info_get(tenant_id=tenant.pk)


def _ids(rows) -> list[int]:
    return [row.patient_id for row in rows]


@pytest.fixture
def ward(db):
    """Five residents of one home and one of a second home, last noted at distinct times."""
    home = FacilityFactory()
    other_home = FacilityFactory(tenant=home.tenant)
    never_a, never_b = PatientFactory(facility=home), PatientFactory(facility=home)
    stale, staler, fresh = (PatientFactory(facility=home) for _ in range(3))
    elsewhere = PatientFactory(facility=other_home)
    CareNoteFactory(patient=stale, created_at=NOW - timedelta(hours=30))
    CareNoteFactory(patient=staler, created_at=NOW - timedelta(hours=50))
    CareNoteFactory(patient=staler, created_at=NOW - timedelta(hours=90))
    CareNoteFactory(patient=fresh, created_at=NOW - timedelta(hours=30))
    CareNoteFactory(patient=fresh, created_at=NOW - timedelta(hours=2))
    CareNoteFactory(patient=elsewhere, created_at=NOW - timedelta(hours=100))
    # Another tenant's resident without notes is never listed.
    PatientFactory()
    return {
        "tenant": tenant_info_of(home.tenant),
        "home": home,
        "other_home": other_home,
        "never": sorted([never_a.pk, never_b.pk]),
        "stale": stale,
        "staler": staler,
        "fresh": fresh,
        "elsewhere": elsewhere,
    }


def test_never_noted_first_then_oldest_last_note_first(ward):
    rows, cursor = patient_attention_list(
        tenant=ward["tenant"], facility_ids=None, hours=24, now=NOW
    )
    assert _ids(rows) == [
        *ward["never"],
        ward["elsewhere"].pk,
        ward["staler"].pk,
        ward["stale"].pk,
    ]
    assert cursor is None
    by_id = {row.patient_id: row for row in rows}
    assert by_id[ward["never"][0]].last_note_at is None
    assert by_id[ward["staler"].pk].last_note_at == NOW - timedelta(hours=50)
    assert by_id[ward["elsewhere"].pk].facility_name == ward["other_home"].name


def test_the_window_decides_who_is_listed(ward):
    rows, _ = patient_attention_list(tenant=ward["tenant"], facility_ids=None, hours=60, now=NOW)
    assert _ids(rows) == [*ward["never"], ward["elsewhere"].pk]
    rows, _ = patient_attention_list(tenant=ward["tenant"], facility_ids=None, hours=1, now=NOW)
    assert ward["fresh"].pk in _ids(rows)


def test_a_note_at_the_cutoff_counts_as_recent(ward):
    cutoff = attention_cutoff(now=NOW, hours=30)
    rows, _ = patient_attention_list(tenant=ward["tenant"], facility_ids=None, hours=30, now=NOW)
    assert cutoff == NOW - timedelta(hours=30)
    assert ward["stale"].pk not in _ids(rows)  # its last note is exactly at the cutoff


def test_facilities_narrow_the_list(ward):
    rows, _ = patient_attention_list(
        tenant=ward["tenant"], facility_ids=(ward["other_home"].pk,), hours=24, now=NOW
    )
    assert _ids(rows) == [ward["elsewhere"].pk]


def test_pages_follow_each_other_without_gaps_or_repeats(ward):
    expected, _ = patient_attention_list(
        tenant=ward["tenant"], facility_ids=None, hours=24, now=NOW
    )
    seen, cursor, pages = [], None, 0
    while True:
        rows, cursor = patient_attention_list(
            tenant=ward["tenant"], facility_ids=None, hours=24, now=NOW, cursor=cursor, page_size=1
        )
        seen += _ids(rows)
        pages += 1
        if cursor is None:
            break
        # The cursor survives its text form, as in a `next` link.
        cursor = AttentionCursor.decode(cursor.encode())
    assert seen == _ids(expected)
    assert pages == len(expected)


@pytest.mark.parametrize("value", ["", "bm90LWEtY3Vyc29y", "!!", "bmV2ZXJ8MA"])
def test_a_cursor_that_was_not_made_by_encode_is_refused(value):
    with pytest.raises(ValueError):
        AttentionCursor.decode(value)


@pytest.mark.parametrize("residents", [1, 30])
def test_one_query_whatever_the_number_of_residents(db, django_assert_num_queries, residents):
    home = FacilityFactory()
    for patient in PatientFactory.create_batch(residents, facility=home):
        CareNoteFactory.create_batch(2, patient=patient, created_at=NOW - timedelta(days=3))
    tenant = tenant_info_of(home.tenant)
    with django_assert_num_queries(1):
        rows, _ = patient_attention_list(tenant=tenant, facility_ids=None, hours=24, now=NOW)
    assert len(rows) == residents


@pytest.mark.django_db(transaction=True)
def test_the_last_note_is_one_index_only_probe_per_resident():
    home = FacilityFactory()
    patients = PatientFactory.create_batch(5, facility=home)
    for patient in patients:
        for days_before in range(1, 41):
            CareNoteFactory(patient=patient, created_at=NOW - timedelta(days=days_before))
    with rls_owner(), connection.cursor() as cursor:  # VACUUM is the owner's
        cursor.execute("VACUUM ANALYZE carenotes_carenote")
    tenant = tenant_info_of(home.tenant)
    with CaptureQueriesContext(connection) as captured:
        patient_attention_list(tenant=tenant, facility_ids=(home.pk,), hours=24, now=NOW)
    (query,) = captured.captured_queries
    with transaction.atomic(), connection.cursor() as cursor:
        # Tiny tables would be read sequentially; forbidding that asks the planner whether
        # the index can answer the statement without reading every note of the tenant.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN {query['sql']}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Only Scan using {PATIENT_RECENT_INDEX}" in plan, plan
    probe = plan.split("Limit")[-1]
    assert "patient_id = p.id" in probe, plan
    # The index order gives the newest note first: no Sort node (the monthly partitions' newest
    # notes are merged in that order, "Merge Append ... Sort Key").
    assert not re.search(r"->\s+Sort\s", probe), plan
