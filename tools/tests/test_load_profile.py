"""The load runs' choices: credentials, members, stats queries, note bodies and the verdict."""

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from tools import load_profile
from tools.load_profile import (
    FACILITY_FILTER_MAX,
    FACILITY_FILTER_SHARE,
    FACILITY_IDS_SEPARATOR,
    PAST_DATE_SHARE,
    PAST_DAYS_MAX,
    SEED_WAIT_SECONDS,
    CredentialsError,
    Member,
    credentials_load,
    load_verdict,
    member_pick,
    note_payload,
    offered_ceiling,
    patients_from_notes,
    stats_params,
    stats_total,
    tenant_reader,
    tenant_today,
)

CREDENTIALS = {
    "superuser": {"username": "admin", "password": "secret"},
    "tenants": [
        {
            "tenant_id": 1,
            "name": "Acme Care",
            "timezone": "Europe/London",
            "facility_ids": [11, 12, 13, 14],
            "users": [
                {"username": "m1", "role": "manager", "token": "tok-m1"},
                {"username": "c1", "role": "carer", "token": "tok-c1"},
            ],
        },
        {
            "tenant_id": 2,
            "name": "Birch Homes",
            "timezone": "Pacific/Auckland",
            "facility_ids": [21],
            "users": [{"username": "c2", "role": "carer", "token": "tok-c2"}],
        },
    ],
}
MANAGER = Member(1, "Europe/London", (11, 12, 13, 14), "m1", "manager", "tok-m1")
CARER = Member(1, "Europe/London", (11, 12, 13, 14), "c1", "carer", "tok-c1")
LONE_CARER = Member(2, "Pacific/Auckland", (21,), "c2", "carer", "tok-c2")
SAMPLES = 4000


def test_credentials_load_flattens_every_tenant_member(tmp_path):
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(CREDENTIALS))
    assert credentials_load(path) == [MANAGER, CARER, LONE_CARER]


def test_a_missing_credentials_file_says_how_to_seed(tmp_path):
    with pytest.raises(CredentialsError, match="does not exist") as error:
        credentials_load(tmp_path / "absent.json")
    assert load_profile.SEED_COMMAND_HINT in str(error.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not readable JSON"),
        ('{"tenants": [{"tenant_id": 1}]}', "not in the seed's format"),
        ('{"tenants": []}', "lists no tenant users"),
    ],
)
def test_a_malformed_credentials_file_is_refused_with_a_reason(tmp_path, content, message):
    path = tmp_path / "creds.json"
    path.write_text(content)
    with pytest.raises(CredentialsError, match=message):
        credentials_load(path)


def test_member_pick_keeps_to_the_role_and_falls_back_to_anyone():
    rng = random.Random(1)
    members = [MANAGER, CARER, LONE_CARER]
    assert {member_pick(members, roles=("carer",), rng=rng) for _ in range(50)} == {
        CARER,
        LONE_CARER,
    }
    assert {member_pick(members, roles=("admin",), rng=rng) for _ in range(50)} == set(members)


def test_tenant_reader_is_a_manager_of_the_same_tenant_or_the_member():
    members = [MANAGER, CARER, LONE_CARER]
    assert tenant_reader(members, member=CARER) == MANAGER
    assert tenant_reader(members, member=LONE_CARER) == LONE_CARER


def test_tenant_today_is_the_local_date():
    now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)  # 01:30 next day in Auckland (NZDT)
    assert tenant_today("Pacific/Auckland", now=now) == date(2026, 3, 2)
    assert tenant_today("Europe/London", now=now) == date(2026, 3, 1)
    assert tenant_today("Not/AZone", now=now) == date(2026, 3, 1)


def test_stats_params_mix_facilities_and_past_days_in_the_stated_shares():
    rng = random.Random(7)
    today = date(2026, 6, 15)
    queries = [stats_params(MANAGER, rng=rng, today=today) for _ in range(SAMPLES)]
    assert all(query["tenant_id"] == MANAGER.tenant_id for query in queries)
    filtered = [query["facility_ids"] for query in queries if "facility_ids" in query]
    past = [date.fromisoformat(query["date"]) for query in queries if "date" in query]
    assert len(filtered) / SAMPLES == pytest.approx(FACILITY_FILTER_SHARE, abs=0.03)
    assert len(past) / SAMPLES == pytest.approx(PAST_DATE_SHARE, abs=0.03)
    sizes = Counter(len(value.split(FACILITY_IDS_SEPARATOR)) for value in filtered)
    assert set(sizes) == set(range(1, FACILITY_FILTER_MAX + 1))
    chosen = {int(pk) for value in filtered for pk in value.split(FACILITY_IDS_SEPARATOR)}
    assert chosen == set(MANAGER.facility_ids)
    assert min(past) == today - timedelta(days=PAST_DAYS_MAX)
    assert max(past) == today - timedelta(days=1)


def test_a_tenant_with_one_facility_is_filtered_by_that_one():
    rng = random.Random(3)
    values = {
        stats_params(LONE_CARER, rng=rng, today=date(2026, 1, 1)).get("facility_ids")
        for _ in range(100)
    }
    assert values == {None, "21"}


def test_note_payload_names_the_tenant_patient_and_facility():
    payload = note_payload(CARER, patient=(501, 12), rng=random.Random(0))
    assert payload == {
        "tenant_id": 1,
        "facility_id": 12,
        "patient_id": 501,
        "category": payload["category"],
        "priority": payload["priority"],
        "body": load_profile.NOTE_BODY,
    }
    assert payload["category"] in load_profile.NOTE_CATEGORIES
    assert payload["priority"] in load_profile.NOTE_PRIORITIES


def test_patients_come_from_the_notes_list_without_repeats():
    page = {
        "next": None,
        "results": [
            {"patient_id": 5, "facility_id": 11},
            {"patient_id": 3, "facility_id": 12},
            {"patient_id": 5, "facility_id": 11},
        ],
    }
    assert patients_from_notes(page) == [(3, 12), (5, 11)]


def test_stats_total_reads_the_first_known_field():
    assert stats_total({"tenant_id": 1, "total_notes": 9}) == 9
    assert stats_total({"total": 4}) == 4
    assert stats_total({"by_category": {}}) is None


def test_the_seed_profile_offers_about_900_requests_per_second_with_50_users():
    assert offered_ceiling(50, SEED_WAIT_SECONDS) == pytest.approx(909.1, abs=0.1)


def test_a_clean_fast_run_passes():
    verdict = load_verdict(
        num_requests=1000, num_failures=0, p95_ms=12, rps=850, max_p95_ms=25, min_rps=800
    )
    assert verdict == load_profile.Verdict(exit_code=0, reasons=())


def test_failures_slowness_and_low_throughput_each_fail_the_run():
    verdict = load_verdict(
        num_requests=1000, num_failures=2, p95_ms=40, rps=500, max_p95_ms=25, min_rps=800
    )
    assert verdict == load_profile.Verdict(
        exit_code=1,
        reasons=(
            "2 of 1000 requests failed",
            "p95 40 ms > 25 ms",
            "throughput 500 req/s < 800 req/s",
        ),
    )


def test_a_run_without_requests_fails():
    verdict = load_verdict(num_requests=0, num_failures=0, p95_ms=0, rps=0, max_p95_ms=25)
    assert verdict.exit_code == 1
    assert verdict.reasons == ("no request was made",)
