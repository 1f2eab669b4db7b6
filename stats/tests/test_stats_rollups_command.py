"""`manage.py stats_rollups`: --check counts the rows that differ from the notes, --rebuild
repairs exactly the tenants that need it."""

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import connection

from carenotes.notes.tests.factories import CareNoteFactory, PatientFactory
from stats.management.commands.stats_rollups import rollups_rebuild
from stats.selectors import care_rollups_differences
from stats.services import care_stats_generation_key
from stats.tests.factories import rollup_rows

pytestmark = pytest.mark.django_db

NOON = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def two_tenants():
    """Two tenants with notes of two residents each, on two days."""
    patients = []
    for _ in range(2):
        first = PatientFactory()
        second = PatientFactory(facility=first.facility)
        for resident in (first, second):
            CareNoteFactory(patient=resident, created_at=NOON)
            CareNoteFactory(patient=resident, priority=5, created_at=NOON.replace(day=11))
        patients.append(first)
    return patients


def _run(*args) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("stats_rollups", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def _drift(tenant_id: int) -> None:
    """Make three rows of ``tenant_id`` differ: one miscounted, one missing, one extra."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE stats_day_counts SET notes = notes + 1 WHERE tenant_id = %s AND priority = 5",
            [tenant_id],
        )
        cursor.execute(
            "DELETE FROM stats_day_residents WHERE tenant_id = %s AND day = '2025-03-10' "
            "AND patient_id = (SELECT min(patient_id) FROM stats_day_residents "
            "WHERE tenant_id = %s)",
            [tenant_id, tenant_id],
        )
        cursor.execute(
            "INSERT INTO stats_day_counts VALUES (%s, '2025-03-12', 1, 'treatment', 1, 4)",
            [tenant_id],
        )


def test_a_clean_check_prints_0_differences_and_succeeds(two_tenants):
    out, error = _run("--check")

    assert error is None
    assert out.splitlines() == [
        "stats_day_counts: 0 rows differ",
        "stats_day_residents: 0 rows differ",
        "0 differences",
    ]


def test_a_check_counts_missing_extra_and_miscounted_rows_and_fails(two_tenants):
    drifted = two_tenants[1].tenant_id
    _drift(drifted)

    out, error = _run("--check")

    assert out.splitlines() == [
        f"stats_day_counts: 2 rows differ (tenant {drifted}: 2)",
        f"stats_day_residents: 1 rows differ (tenant {drifted}: 1)",
        "3 differences",
    ]
    assert error is not None and "--rebuild" in str(error)


def test_a_check_of_one_tenant_looks_at_that_tenant_only(two_tenants):
    healthy, drifted = (patient.tenant_id for patient in two_tenants)
    _drift(drifted)

    assert _run("--check", "--tenant", str(healthy))[1] is None
    assert _run("--check", "--tenant", str(drifted))[1] is not None


def test_rebuild_repairs_the_tenants_that_differ_and_leaves_the_others(two_tenants):
    healthy, drifted = (patient.tenant_id for patient in two_tenants)
    expected = rollup_rows(drifted)
    _drift(drifted)
    with connection.cursor() as cursor:
        cursor.execute("SELECT xmin::text FROM stats_day_counts WHERE tenant_id = %s", [healthy])
        untouched = cursor.fetchall()

    out, error = _run("--rebuild")

    assert error is None
    assert out.splitlines()[0] == f"Rebuilt the rollups of tenants: {drifted}"
    assert out.splitlines()[-1] == "0 differences"
    assert rollup_rows(drifted) == expected
    with connection.cursor() as cursor:
        cursor.execute("SELECT xmin::text FROM stats_day_counts WHERE tenant_id = %s", [healthy])
        assert cursor.fetchall() == untouched


def test_rebuild_of_a_named_tenant_always_recounts_it(two_tenants):
    tenant_id = two_tenants[0].tenant_id
    rebuilt, differences = rollups_rebuild(tenant_id=tenant_id)
    assert (rebuilt, differences.total) == ((tenant_id,), 0)


def test_a_rebuild_makes_the_tenants_cached_answers_stale_after_commit(
    two_tenants, django_capture_on_commit_callbacks
):
    tenant_id = two_tenants[0].tenant_id
    key = care_stats_generation_key(tenant_id=tenant_id)
    before = cache.get(key) or 0
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _run("--rebuild", "--tenant", str(tenant_id))
    assert (cache.get(key) or 0) == before  # not before commit
    for callback in callbacks:
        callback()
    assert cache.get(key) == before + 1


def test_an_unknown_tenant_is_named(two_tenants):
    missing = max(patient.tenant_id for patient in two_tenants) + 100
    with pytest.raises(CommandError, match=f"--tenant: no tenant has id {missing}"):
        call_command("stats_rollups", "--check", "--tenant", str(missing), stdout=StringIO())


def test_the_command_needs_check_or_rebuild():
    with pytest.raises(CommandError, match="one of the arguments --check --rebuild is required"):
        call_command("stats_rollups", stdout=StringIO())


def test_differences_of_every_tenant_and_of_one_agree(two_tenants):
    drifted = two_tenants[0].tenant_id
    _drift(drifted)
    everyone = care_rollups_differences(tenant_id=None)
    one = care_rollups_differences(tenant_id=drifted)
    assert everyone == one
    assert everyone.tenant_ids == (drifted,)
