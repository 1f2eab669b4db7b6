"""seed_notes: distributions, reproducibility, tenant consistency, safe re-runs, credentials."""

import io
import json
import stat
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper
from django.db import connection

from audit.models import ReadRecord
from audit.tests.factories import ReadRecordFactory
from carenotes.notes import seeding
from carenotes.notes.management.commands.seed_notes import ProgressBar
from carenotes.notes.models import STATS_INDEX_NAME, CareNote, Category, Patient
from carenotes.notes.tests.factories import CareNoteFactory
from tenants.models import ApiToken, Facility, Membership, Role, Tenant
from tenants.rls import rls_owner
from tenants.selectors import principal_token_cache_key
from tenants.tests.factories import TenantFactory, UserFactory
from tenants.tokens import token_digest

pytestmark = pytest.mark.django_db

END_DATE = date(2025, 1, 31)  # no DST change in any default zone during the week before
SMALL = {
    "seed": 11,
    "notes": 2_000,
    "tenants": 3,
    "facilities_per_tenant": 2,
    "patients_per_facility": 4,
    "staff_per_tenant": 5,
    "days": 7,
    "end_date": END_DATE,
}
DISTRIBUTION_NOTES = 8_000  # at least ~50 expected notes in the quietest hour
# Chi-square critical values at p = 0.001 by degrees of freedom: a correct generator fails
# one of these checks about once in a thousand seeds, a wrong weighting fails always.
CHI2_CRITICAL = {2: 13.82, 4: 18.47, 23: 49.73}
NOTE_COLUMNS = [
    "id",
    "tenant_id",
    "facility_id",
    "patient_id",
    "author_id",
    "category",
    "priority",
    "body",
    "created_at",
]


@pytest.fixture(scope="module", autouse=True)
def _compact_tables_afterwards(django_db_setup, django_db_blocker):
    """Rewrite the tables these tests bloated with rolled-back rows.

    Later planner-sensitive tests (index-only scans) would otherwise see indexes thousands
    of dead pages long and pick other plans.
    """
    yield
    with django_db_blocker.unblock(), rls_owner(), connection.cursor() as cursor:
        for model in (CareNote, Patient, ApiToken, Membership, get_user_model()):
            cursor.execute(f"VACUUM (FULL, ANALYZE) {model._meta.db_table}")


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # PBKDF2 would cost ~0.3 s per seed run; these tests are about rows, not hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _seed(*, mode: str = "refuse", **overrides) -> seeding.SeedResult:
    config = seeding.seed_config_build(**{**SMALL, **overrides})
    return seeding.seed_notes_run(config=config, mode=mode)


def _notes() -> list[tuple]:
    return list(CareNote.objects.order_by("id").values_list(*NOTE_COLUMNS))


def _patients() -> list[tuple]:
    return list(Patient.objects.order_by("id").values_list())


def _chi2(observed: Counter, weights: dict) -> float:
    total = sum(observed.values())
    weight_sum = sum(weights.values())
    return sum(
        (observed.get(key, 0) - total * w / weight_sum) ** 2 / (total * w / weight_sum)
        for key, w in weights.items()
    )


def _row_counts() -> dict:
    return {
        "tenants": Tenant.objects.count(),
        "users": get_user_model().objects.count(),
        "patients": Patient.objects.count(),
        "notes": CareNote.objects.count(),
    }


# --- distributions -------------------------------------------------------------------------------


def test_tenant_note_counts_split_exactly_by_weight():
    counts = seeding.tenant_note_counts(notes=100_001, tenants=5)
    assert counts == [10_000, 15_000, 25_000, 20_000, 30_001]
    assert sum(seeding.tenant_note_counts(notes=7, tenants=12)) == 7


def test_weighted_lookup_repeats_keys_by_reduced_weight():
    assert seeding.weighted_lookup({"a": 40, "b": 40, "c": 20}) == ["a", "a", "b", "b", "c"]


def test_category_priority_and_tenant_shares_follow_the_weights():
    result = _seed(notes=DISTRIBUTION_NOTES, tenants=5)
    categories = Counter(CareNote.objects.values_list("category", flat=True))
    priorities = Counter(CareNote.objects.values_list("priority", flat=True))
    per_tenant = Counter(CareNote.objects.values_list("tenant_id", flat=True))
    assert _chi2(categories, seeding.CATEGORY_WEIGHTS) < CHI2_CRITICAL[2]
    assert _chi2(priorities, seeding.PRIORITY_WEIGHTS) < CHI2_CRITICAL[4]
    assert [per_tenant[t] for t in result.tenant_ids] == seeding.tenant_note_counts(
        notes=DISTRIBUTION_NOTES, tenants=5
    )


def test_local_hours_follow_the_shift_pattern_and_days_stay_in_the_window():
    result = _seed(notes=DISTRIBUTION_NOTES)
    hours, days = Counter(), Counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT extract(hour FROM n.created_at AT TIME ZONE t.timezone)::int,
                   (n.created_at AT TIME ZONE t.timezone)::date
            FROM carenotes_carenote n JOIN tenants_tenant t ON t.id = n.tenant_id
            """
        )
        for hour, day in cursor.fetchall():
            hours[hour] += 1
            days[day] += 1
    assert _chi2(hours, dict(enumerate(seeding.HOUR_WEIGHTS))) < CHI2_CRITICAL[23]
    day_shift = sum(hours[h] for h in range(8, 20))
    night_shift = sum(hours[h] for h in (*range(20, 24), *range(8)))
    assert day_shift > 2 * night_shift
    assert sorted(days) == [END_DATE - timedelta(days=n) for n in range(SMALL["days"])][::-1]
    assert len(result.tenant_ids) == SMALL["tenants"]


def test_tenants_get_distinct_time_zones_not_all_utc():
    _seed()
    zones = list(Tenant.objects.order_by("id").values_list("timezone", flat=True))
    assert zones == list(seeding.DEFAULT_TIMEZONES[: SMALL["tenants"]])
    assert len(set(zones)) == len(zones)
    assert set(zones) - {"UTC"}


def test_bodies_are_short_plausible_sentences_of_the_notes_category():
    _seed()
    for category, body in CareNote.objects.values_list("category", "body")[:200]:
        sentence = next(s for s in seeding.BODY_SENTENCES[Category(category)] if body.startswith(s))
        assert body.removeprefix(sentence).strip() in seeding.BODY_REMARKS


# --- reproducibility and consistency -------------------------------------------------------------


def test_same_seed_gives_identical_rows_and_ids_another_seed_does_not():
    _seed()
    first_notes, first_patients = _notes(), _patients()
    first_tokens = sorted(ApiToken.objects.values_list("key_digest", flat=True))
    _seed(mode="reset")
    assert _notes() == first_notes
    assert _patients() == first_patients
    assert sorted(ApiToken.objects.values_list("key_digest", flat=True)) == first_tokens
    _seed(mode="reset", seed=12)
    assert [row[1:] for row in _notes()] != [row[1:] for row in first_notes]


def test_rows_are_identical_whichever_index_strategy_loads_them():
    _seed(mode="reset")
    kept = _notes()
    config = seeding.seed_config_build(**SMALL)
    seeding.seed_notes_run(config=config, mode="reset", index_strategy="rebuild")
    assert _notes() == kept


def test_every_note_is_consistent_with_its_tenant():
    _seed()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM carenotes_carenote n
            JOIN carenotes_patient p ON p.id = n.patient_id
            JOIN tenants_facility f ON f.id = n.facility_id
            LEFT JOIN tenants_membership m
                ON m.user_id = n.author_id AND m.tenant_id = n.tenant_id AND m.role = 'carer'
            WHERE p.tenant_id <> n.tenant_id OR f.tenant_id <> n.tenant_id
               OR p.facility_id <> n.facility_id OR m.id IS NULL
            """
        )
        assert cursor.fetchone()[0] == 0
    assert CareNote.objects.count() == SMALL["notes"]
    assert Patient.objects.count() == 3 * 2 * 4
    assert Facility.objects.count() == 3 * 2


def test_staff_are_one_admin_one_manager_and_carers_per_tenant():
    result = _seed()
    for tenant_id in result.tenant_ids:
        roles = Counter(
            Membership.objects.filter(tenant_id=tenant_id).values_list("role", flat=True)
        )
        assert roles == {Role.ADMIN: 1, Role.MANAGER: 1, Role.CARER: SMALL["staff_per_tenant"] - 2}


def test_rebuild_restores_the_same_indexes_and_foreign_keys():
    with connection.cursor() as cursor:
        before = seeding.note_table_secondary_definitions(cursor)
        config = seeding.seed_config_build(**SMALL)
        seeding.seed_notes_run(config=config, index_strategy="rebuild")
        assert seeding.note_table_secondary_definitions(cursor) == before
    assert len(before[0]) >= 4 and len(before[1]) >= 4


def test_an_interrupted_load_leaves_nothing_behind(monkeypatch):
    monkeypatch.setattr(seeding.bulk, "NOTE_CHUNK_ROWS", 500)
    with connection.cursor() as cursor:
        definitions = seeding.note_table_secondary_definitions(cursor)

    def interrupt(done, total):
        raise KeyboardInterrupt  # a Ctrl-C after the first chunk reached the table

    config = seeding.seed_config_build(**SMALL)
    with pytest.raises(KeyboardInterrupt):
        seeding.seed_notes_run(config=config, index_strategy="rebuild", progress=interrupt)
    assert _row_counts() == {"tenants": 0, "users": 0, "patients": 0, "notes": 0}
    with connection.cursor() as cursor:
        assert seeding.note_table_secondary_definitions(cursor) == definitions


# --- re-runs -------------------------------------------------------------------------------------


def _call(*args, **options) -> str:
    stdout = io.StringIO()
    call_command("seed_notes", *args, stdout=stdout, **options)
    return stdout.getvalue()


def _small_args(**overrides) -> list[str]:
    options = {**SMALL, "end_date": END_DATE.isoformat(), **overrides}
    return [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]


def test_rerun_without_flags_refuses_and_changes_nothing(tmp_path):
    _call(*_small_args(), credentials=tmp_path / "c.json", quiet=True)
    before = _row_counts()
    with pytest.raises(CommandError, match="--reset"):
        _call(*_small_args(seed=99), credentials=tmp_path / "c.json", quiet=True)
    assert _row_counts() == before


def test_reset_replaces_generated_data_but_keeps_hand_made_rows(tmp_path, api_client):
    credentials = tmp_path / "c.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    old_key = json.loads(credentials.read_text())["tenants"][0]["users"][0]["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {old_key}")
    assert api_client.get("/api/me/").status_code == HTTPStatus.OK  # now cached
    own_note = CareNoteFactory()
    own_superuser = UserFactory(username="ops", is_superuser=True)

    _call(*_small_args(seed=12), reset=True, credentials=credentials, quiet=True)

    assert api_client.get("/api/me/").status_code == HTTPStatus.UNAUTHORIZED
    assert CareNote.objects.filter(pk=own_note.pk).exists()
    assert get_user_model().objects.filter(pk=own_superuser.pk).exists()
    slugs = set(Tenant.objects.values_list("slug", flat=True))
    assert slugs == {own_note.tenant.slug, "demo-12-t1", "demo-12-t2", "demo-12-t3"}
    assert CareNote.objects.count() == SMALL["notes"] + 1


def test_append_adds_a_data_set_and_refuses_a_loaded_seed(tmp_path):
    credentials = tmp_path / "c.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    _call(*_small_args(seed=12), append=True, credentials=credentials, quiet=True)
    assert CareNote.objects.count() == 2 * SMALL["notes"]
    assert len(json.loads(credentials.read_text())["tenants"]) == 2 * SMALL["tenants"]
    with pytest.raises(CommandError, match="--seed 12 is already loaded"):
        _call(*_small_args(seed=12), append=True, credentials=credentials, quiet=True)
    assert CareNote.objects.count() == 2 * SMALL["notes"]


def test_if_empty_seeds_an_empty_database_and_skips_one_with_data(tmp_path):
    output = _call(*_small_args(), if_empty=True, credentials=tmp_path / "c.json", quiet=True)
    assert f"Seeded {SMALL['notes']:,} notes" in output
    output = _call(*_small_args(seed=12), if_empty=True, credentials=tmp_path / "d.json")
    assert output == "The database already holds data; not seeding.\n"
    assert not (tmp_path / "d.json").exists()
    assert CareNote.objects.count() == SMALL["notes"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("notes", "0"),
        ("notes", "-5"),
        ("tenants", "0"),
        ("facilities_per_tenant", "0"),
        ("patients_per_facility", "-1"),
        ("staff_per_tenant", "2"),
        ("days", "0"),
        ("seed", "-1"),
        ("end_date", "2025-02-30"),
        ("end_date", "yesterday"),
        ("timezones", "Europe/London,Mars/Olympus"),
        ("notes", "many"),
    ],
)
def test_bad_arguments_name_the_option_and_write_nothing(tmp_path, option, value):
    credentials = tmp_path / "c.json"
    with pytest.raises(CommandError, match=f"--{option.replace('_', '-')}"):
        _call(*_small_args(**{option: value}), credentials=credentials, quiet=True)
    assert _row_counts() == {"tenants": 0, "users": 0, "patients": 0, "notes": 0}
    assert not credentials.exists()


def test_bad_arguments_exit_non_zero_from_the_command_line(tmp_path):
    # Argument checks run before the database is touched, so the real command is safe here.
    completed = subprocess.run(
        [sys.executable, "manage.py", "seed_notes", "--days", "0", "--quiet"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 1
    assert completed.stderr == "CommandError: --days: must be between 1 and 3660, got 0\n"


# --- credentials, tokens, cache, output ----------------------------------------------------------


def test_credentials_file_matches_the_database_and_its_tokens_authenticate(tmp_path, api_client):
    credentials = tmp_path / "demo.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    data = json.loads(credentials.read_text())
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    superuser = get_user_model().objects.get(username=data["superuser"]["username"])
    assert superuser.is_superuser and superuser.check_password(data["superuser"]["password"])
    assert data["superuser"]["admin_login"] is True
    assert [t["tenant_id"] for t in data["tenants"]] == list(
        Tenant.objects.order_by("id").values_list("id", flat=True)
    )
    for tenant in data["tenants"]:
        row = Tenant.objects.get(pk=tenant["tenant_id"])
        assert (row.name, row.timezone) == (tenant["name"], tenant["timezone"])
        assert tenant["facility_ids"] == sorted(row.facilities.values_list("id", flat=True))
        assert [u["role"] for u in tenant["users"]] == ["admin", "manager", "carer", "carer"]
        for user in tenant["users"]:
            assert user.get("admin_login", False) is (user["role"] == Role.ADMIN)
            api_client.credentials(HTTP_AUTHORIZATION=f"Token {user['token']}")
            response = api_client.get("/api/me/")
            assert response.status_code == HTTPStatus.OK
            me = get_user_model().objects.get(username=user["username"])
            assert response.json() == {
                "user_id": me.pk,
                "username": user["username"],
                "is_superuser": False,
                "memberships": [{"tenant_id": tenant["tenant_id"], "role": user["role"]}],
            }


def test_tenant_admins_can_log_in_with_the_demo_password(tmp_path, client):
    credentials = tmp_path / "demo.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    admin = json.loads(credentials.read_text())["tenants"][0]["users"][0]
    assert client.login(username=admin["username"], password=admin["password"])


def test_command_prints_a_summary_and_the_credentials_table(tmp_path):
    output = _call(*_small_args(), credentials=tmp_path / "c.json")
    lines = output.splitlines()
    assert lines[0].startswith(f"Seeded {SMALL['notes']:,} notes in 3 tenants in ")
    assert "rows/s; seed 11)" in lines[0]
    assert "demo-11-superuser" in output
    assert "demo-11-t3-carer02" in output
    assert "demo-11-t3-carer03" not in output  # carers beyond the first two have no token
    assert "\r" not in output  # no progress bar when stdout is not a terminal


def test_progress_bar_shows_rows_per_second():
    stream = io.StringIO()
    bar = ProgressBar(OutputWrapper(stream))
    bar(500, 1_000)
    bar(1_000, 1_000)
    assert stream.getvalue().startswith("\r[###############...............] 500/1,000 notes")
    assert "1,000/1,000 notes" in stream.getvalue()
    assert "rows/s" in stream.getvalue()


def test_demo_credentials_prints_the_table_and_a_curl_line(tmp_path):
    credentials = tmp_path / "demo.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    data = json.loads(credentials.read_text())
    stdout = io.StringIO()
    call_command("demo_credentials", credentials=credentials, base_url="http://h:1", stdout=stdout)
    tenant = data["tenants"][0]
    manager = tenant["users"][1]
    facilities = ",".join(map(str, tenant["facility_ids"]))
    assert stdout.getvalue().splitlines()[-1] == (
        f'curl -H "Authorization: Token {manager["token"]}" "http://h:1/api/care-stats/'
        f'?tenant_id={tenant["tenant_id"]}&facility_ids={facilities}&date=2025-01-31"'
    )
    assert data["superuser"]["password"] in stdout.getvalue()


def test_demo_credentials_without_a_file_says_how_to_create_one(tmp_path):
    stdout = io.StringIO()
    call_command("demo_credentials", credentials=tmp_path / "none.json", stdout=stdout)
    assert "seed_notes --reset" in stdout.getvalue()


def test_existing_hand_made_tenant_blocks_a_plain_seed_and_if_empty_skips(tmp_path):
    TenantFactory()
    with pytest.raises(seeding.SeedRefusedError):
        _seed()
    output = _call(*_small_args(), if_empty=True, credentials=tmp_path / "c.json")
    assert output == "The database already holds data; not seeding.\n"
    assert CareNote.objects.count() == 0


def test_generation_constants_encode_the_classic_scenario():
    # The scenario, spelled out once: the tests above compare against the constants.
    assert seeding.TENANT_WEIGHTS == (10, 15, 25, 20, 30)
    assert seeding.CATEGORY_WEIGHTS == {"medication": 40, "observation": 40, "treatment": 20}
    assert seeding.PRIORITY_WEIGHTS == {1: 10, 2: 20, 3: 40, 4: 20, 5: 10}
    night, day = seeding.HOUR_WEIGHTS[:6], seeding.HOUR_WEIGHTS[8:20]
    assert max(night) < min(day)


def test_reset_drops_cached_principals_of_deleted_tokens_after_commit(
    tmp_path, api_client, django_capture_on_commit_callbacks
):
    credentials = tmp_path / "c.json"
    _call(*_small_args(), credentials=credentials, quiet=True)
    key = json.loads(credentials.read_text())["tenants"][0]["users"][0]["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api_client.get("/api/me/").status_code == HTTPStatus.OK
    cache_key = principal_token_cache_key(token_digest(key))
    cached = cache.get(cache_key)
    with django_capture_on_commit_callbacks() as callbacks:
        seeding.seed_data_delete()
    # A request running concurrently with the reset re-caches the old principal...
    cache.set(cache_key, cached)
    for callback in callbacks:
        callback()
    # ...and the after-commit drop still makes the deleted token stop working.
    assert api_client.get("/api/me/").status_code == HTTPStatus.UNAUTHORIZED


def test_reset_deletes_the_demo_tenants_audit_records_and_keeps_the_others():
    result = _seed()
    hand_made = ReadRecordFactory()
    ReadRecordFactory.create_batch(2, tenant=Tenant.objects.get(pk=result.tenant_ids[0]))
    seeding.seed_data_delete()
    # A new demo tenant may get the old one's id: it must not inherit its records.
    assert list(ReadRecord.objects.values_list("id", flat=True)) == [hand_made.pk]


@pytest.mark.django_db(transaction=True)
def test_after_seeding_the_stats_query_is_an_index_only_scan_without_heap_fetches():
    result = _seed()
    tenant = Tenant.objects.get(pk=result.tenant_ids[0])
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a tiny table would be read whole
        cursor.execute(
            """
            EXPLAIN (ANALYZE, COSTS off)
            SELECT facility_id, category, priority, count(patient_id) FROM carenotes_carenote
            WHERE tenant_id = %s AND created_at >= %s AND created_at < %s
            GROUP BY 1, 2, 3
            """,
            [tenant.pk, END_DATE, END_DATE + timedelta(days=1)],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert f"Index Only Scan using {STATS_INDEX_NAME}" in plan, plan
    assert "Heap Fetches: 0" in plan, plan


def test_a_reset_truncates_amended_generated_notes_with_their_records():
    from django.test.utils import CaptureQueriesContext

    from carenotes.notes.models import CareNoteAmendment, CareNoteEvent
    from carenotes.notes.services import note_amend

    _seed()
    note = CareNote.objects.order_by("id").first()
    note_amend(tenant=note.tenant, author=note.author, note_id=note.pk, reason="r", priority=5)
    with rls_owner(), CaptureQueriesContext(connection) as queries:  # as seed_notes runs it
        seeding.seed_data_delete()
    statements = [query["sql"] for query in queries.captured_queries]
    # One TRUNCATE, not a row-by-row DELETE that would write a history row per note.
    assert [sql for sql in statements if sql.startswith(("TRUNCATE", "DELETE FROM carenotes"))] == [
        "TRUNCATE " + ", ".join(seeding.reset.GENERATED_TABLES)
    ]
    assert not CareNoteAmendment.objects.exists()
    assert not CareNoteEvent.objects.exists()
