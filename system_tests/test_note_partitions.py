"""Monthly note partitions seen from the product: retention keeps the analytics equal to the
notes that remain, and the reads the product sends scan only the partitions of their dates.

The plans are those of the real statements: each request runs through the test client, its
SQL is captured (CaptureQueriesContext) and EXPLAINed as the application role under that
tenant's scope, as the product runs it. A range inside existing month partitions does not
scan the default partition: PostgreSQL prunes it when the range holds no value the other
partitions leave to it (docs/OPERATIONS.md, "Monthly partitions and retention").
"""

import re
from datetime import UTC, date, datetime, time, timedelta
from http import HTTPStatus
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from carenotes.notes.models import CareNote, CareNoteAmendment, CareNoteEvent, Category
from carenotes.notes.partitions import (
    NOTES_TABLE,
    month_add,
    month_bounds,
    month_partition_name,
    partitions_create,
    partitions_get,
)
from carenotes.notes.services import note_amend
from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.selectors import care_rollups_differences
from tenants.rls import rls_owner, rls_tenants
from tenants.tests.factories import FacilityFactory, MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db

DEFAULT_PARTITION = f"{NOTES_TABLE}_default"
# A statement that reads the notes table (not the amendments or history tables).
READS_NOTES = re.compile(rf'\bFROM "?{NOTES_TABLE}"?(?![a-z_])')
FEBRUARY, MARCH = date(2025, 2, 1), date(2025, 3, 1)
SYDNEY = "Australia/Sydney"  # UTC+11 in March 2025: its 1 March began on 28 February in UTC


def run(*args: str) -> str:
    out = StringIO()
    call_command("notes_partitions", *args, stdout=out)
    return out.getvalue()


def partition_names() -> list[str]:
    with rls_owner(), connection.cursor() as cursor:
        return [p.name for p in partitions_get(cursor)]


def resident(timezone_name: str):
    tenant = TenantFactory(timezone=timezone_name)
    return PatientFactory(facility=FacilityFactory(tenant=tenant))


def range_answer(client, tenant_id: int, date_from: date, date_to: date) -> dict:
    response = client.get(
        "/api/care-stats/",
        {"tenant_id": tenant_id, "date_from": date_from, "date_to": date_to},
    )
    assert response.status_code == HTTPStatus.OK, response.content
    return response.json()


# --- retention -------------------------------------------------------------------------------


def test_retention_drops_whole_old_months_and_the_analytics_follow(
    token_client, django_capture_on_commit_callbacks
):
    cutoff = month_add(timezone.now().date().replace(day=1), -12)
    old, kept = month_add(cutoff, -1), cutoff
    partitions_create(months=[month_add(cutoff, -2), old, kept])
    patient = resident(SYDNEY)
    tenant_id = patient.tenant_id
    first_kept_day = kept  # Sydney's first day of the kept month began in the old month (UTC)
    dropped_notes = [
        CareNoteFactory(
            patient=patient, created_at=datetime.combine(old.replace(day=25), time(9), tzinfo=UTC)
        ),
        CareNoteFactory(patient=patient, created_at=month_bounds(kept)[0] - timedelta(hours=3)),
        CareNoteFactory(
            patient=patient, created_at=datetime.combine(month_add(cutoff, -2), time(9), tzinfo=UTC)
        ),
    ]
    kept_note = CareNoteFactory(
        patient=patient, created_at=month_bounds(kept)[0] + timedelta(hours=3)
    )
    note_amend(
        tenant=patient.tenant,
        author=kept_note.author,
        note_id=dropped_notes[0].pk,
        reason="Typo.",
        priority=1,
    )
    note_amend(
        tenant=patient.tenant,
        author=kept_note.author,
        note_id=kept_note.pk,
        reason="Typo.",
        priority=2,
    )
    client = token_client(MembershipFactory(tenant=patient.tenant, role="carer").user)
    span = (old.replace(day=20), kept.replace(day=5))
    assert range_answer(client, tenant_id, *span)["total_notes"] == 3  # cached now
    history = CareNoteEvent.objects.count()

    dry = run("--drop-older-than", "12", "--dry-run", "--ahead", "0")

    assert dry.splitlines() == [
        f"Would drop {month_partition_name(month_add(cutoff, -2))} (1 notes).",
        f"Would drop {month_partition_name(old)} (2 notes).",
    ]
    assert CareNote.objects.count() == 4
    assert month_partition_name(old) in partition_names()

    with django_capture_on_commit_callbacks(execute=True):
        out = run("--drop-older-than", "12", "--ahead", "0")

    assert out.splitlines() == [
        f"Dropped {month_partition_name(month_add(cutoff, -2))}: 1 notes, 0 amendments; "
        f"day rollups recounted for tenants: {tenant_id}.",
        f"Dropped {month_partition_name(old)}: 2 notes, 1 amendments; "
        f"day rollups recounted for tenants: {tenant_id}.",
    ]
    assert list(CareNote.objects.values_list("pk", flat=True)) == [kept_note.pk]
    assert list(CareNoteAmendment.objects.values_list("note_id", flat=True)) == [kept_note.pk]
    assert month_partition_name(old) not in partition_names()
    assert month_partition_name(kept) in partition_names()
    assert CareNoteEvent.objects.count() == history
    assert care_rollups_differences(tenant_id=None).total == 0
    answer = range_answer(client, tenant_id, *span)
    assert answer["total_notes"] == 1
    assert [
        d["total_notes"] for d in answer["by_day"] if d["date"] == first_kept_day.isoformat()
    ] == [1]
    assert run("--drop-older-than", "12", "--ahead", "0").startswith("Nothing to do")


def test_retention_follows_the_setting_and_zero_keeps_everything(settings):
    cutoff = month_add(timezone.now().date().replace(day=1), -3)
    partitions_create(months=[month_add(cutoff, -1)])
    CareNoteFactory(created_at=datetime.combine(month_add(cutoff, -1), time(9), tzinfo=UTC))
    settings.NOTES_RETENTION_MONTHS = 3
    assert "Would drop" in run("--dry-run")
    run("--drop-older-than", "0")
    assert CareNote.objects.count() == 1
    run()
    assert CareNote.objects.count() == 0
    assert month_partition_name(month_add(cutoff, -1)) not in partition_names()


def test_notes_left_in_the_default_partition_past_retention_are_named(settings):
    old = month_add(timezone.now().date().replace(day=1), -30)
    CareNoteFactory(created_at=datetime.combine(old, time(9), tzinfo=UTC))
    out = run("--drop-older-than", "12", "--ahead", "0")
    assert "The default partition holds 1 notes older than" in out
    assert "--from-default" in out
    assert CareNote.objects.count() == 1


# --- partition pruning -----------------------------------------------------------------------


def _scanned(node: dict) -> set[str]:
    names = set()
    relation = node.get("Relation Name", "")
    if relation == NOTES_TABLE or relation.startswith(f"{NOTES_TABLE}_"):
        names.add(relation)
    for child in node.get("Plans", []):
        names |= _scanned(child)
    return names


def scanned_partitions(sql: str, *, tenant_id: int, params=None) -> list[str]:
    """Return the notes partitions the plan of ``sql`` reads, as the app role of the tenant."""
    with rls_tenants([tenant_id]), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        (plan,) = cursor.fetchone()
    return sorted(_scanned(plan[0]["Plan"]))


def note_reads(request) -> list[str]:
    """Run ``request`` (a callable) and return the SQL it sent that reads the notes table."""
    with CaptureQueriesContext(connection) as captured:
        response = request()
    assert response.status_code == HTTPStatus.OK, response.content
    reads = [q["sql"] for q in captured.captured_queries if READS_NOTES.search(q["sql"])]
    assert reads, "the request read no note"
    return reads


@pytest.fixture
def march():
    """A London and a Sydney resident with notes around 1 March 2025, February and March
    partitions (the default partition keeps everything else)."""
    partitions_create(months=[FEBRUARY, MARCH])
    london, sydney = resident("Europe/London"), resident(SYDNEY)
    for patient in (london, sydney):
        for instant in (
            "2025-02-27T12:00",
            "2025-02-28T20:00",
            "2025-03-01T06:00",
            "2025-03-10T12:00",
        ):
            CareNoteFactory(
                patient=patient,
                priority=5,
                category=Category.OBSERVATION,
                created_at=datetime.fromisoformat(instant).replace(tzinfo=UTC),
            )
    return london, sydney


@pytest.mark.parametrize(
    ("created_after", "created_before", "expected"),
    [
        ("2025-03-03T00:00:00Z", "2025-03-11T00:00:00Z", [month_partition_name(MARCH)]),
        (
            "2025-02-27T00:00:00Z",
            "2025-03-02T00:00:00Z",
            [month_partition_name(FEBRUARY), month_partition_name(MARCH)],
        ),
        ("2025-05-01T00:00:00Z", "2025-05-02T00:00:00Z", [DEFAULT_PARTITION]),
    ],
)
def test_the_notes_list_scans_the_partitions_of_its_dates(
    march, token_client, created_after, created_before, expected
):
    london, _ = march
    client = token_client(MembershipFactory(tenant=london.tenant, role="carer").user)
    query = {
        "tenant_id": london.tenant_id,
        "created_after": created_after,
        "created_before": created_before,
    }
    (sql,) = note_reads(lambda: client.get("/api/notes/", query))
    assert scanned_partitions(sql, tenant_id=london.tenant_id) == expected


@pytest.mark.parametrize(
    ("which", "day", "expected"),
    [
        ("london", "2025-03-10", [month_partition_name(MARCH)]),
        # Sydney's 1 March: 28 February 13:00 UTC to 1 March 13:00 UTC.
        ("sydney", "2025-03-01", [month_partition_name(FEBRUARY), month_partition_name(MARCH)]),
    ],
)
def test_the_high_priority_feed_scans_the_partitions_of_its_local_days(
    march, session_client, which, day, expected
):
    patient = dict(zip(("london", "sydney"), march, strict=True))[which]
    manager = MembershipFactory(tenant=patient.tenant, role="manager").user
    client = session_client(manager)
    url = f"/dashboard/{patient.tenant_id}/high-priority/"
    query = {"period": "custom", "date_from": day, "date_to": day}
    (sql,) = note_reads(lambda: client.get(url, query))
    assert scanned_partitions(sql, tenant_id=patient.tenant_id) == expected


def test_the_day_stats_scan_the_partitions_of_the_local_day_also_as_a_generic_plan(
    march, token_client
):
    _, sydney = march
    client = token_client(MembershipFactory(tenant=sydney.tenant, role="carer").user)
    expected = [month_partition_name(FEBRUARY), month_partition_name(MARCH)]
    query = {"tenant_id": sydney.tenant_id, "date": "2025-03-01"}
    reads = note_reads(lambda: client.get("/api/care-stats/", query))
    assert len(reads) == 2  # the counts and the distinct residents
    for sql in reads:
        assert scanned_partitions(sql, tenant_id=sydney.tenant_id) == expected
    # The statements are prepared: after a few runs PostgreSQL may plan them once for any
    # day; the partitions are then pruned when the plan starts (Subplans Removed).
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements")
        prepared = [name for name, sql in cursor.fetchall() if READS_NOTES.search(sql)]
    assert len(prepared) == 2
    start = datetime(2025, 2, 28, 13, tzinfo=UTC)
    for name in prepared:
        with rls_tenants([sydney.tenant_id]), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cursor.execute(
                f"EXPLAIN (FORMAT JSON) EXECUTE {name}(%s, %s, %s)",
                [sydney.tenant_id, start, start + timedelta(days=1)],
            )
            (plan,) = cursor.fetchone()
        assert sorted(_scanned(plan[0]["Plan"])) == expected
