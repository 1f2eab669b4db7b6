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
    NoteAcks,
    credentials_load,
    idempotency_key,
    load_verdict,
    member_pick,
    note_payload,
    offered_ceiling,
    outcome_unknown,
    patients_from_notes,
    stats_params,
    stats_total,
    tenant_reader,
    tenant_today,
    verdict_lines,
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


SEED_BOUNDS = load_profile.LoadBounds(max_p95_ms=25, min_throughput_ratio=0.85)


def _summary(verdict: load_profile.Verdict) -> dict:
    """The summary JSON's "checks" as the locustfile writes them."""
    return {"checks": [{"met": check.met, "line": check.line()} for check in verdict.checks]}


def test_a_clean_fast_run_passes():
    verdict = load_verdict(
        num_requests=1000, num_failures=0, p95_ms=12, rps=850, bounds=SEED_BOUNDS, ceiling_rps=909
    )
    assert (verdict.exit_code, verdict.missed) == (0, ())
    assert verdict_lines(_summary(verdict))[0] == "PASSED: all 4 targets met"


def test_the_issue_run_names_each_missed_target_with_value_and_bound_last():
    # 12,097 requests, 0 failures, 613 req/s, p95 79 ms (issue 18's 20 s run).
    verdict = load_verdict(
        num_requests=12097,
        num_failures=0,
        p95_ms=79,
        rps=613,
        bounds=SEED_BOUNDS,
        ceiling_rps=909.1,
    )
    assert verdict.exit_code == 1
    assert verdict_lines(_summary(verdict)) == [
        'FAILED: 2 of 4 targets missed (bounds and how to change them: README.md, "Load runs")',
        "  met    requests made: 12097, bound >= 1 (always)",
        "  met    failed requests: 0, bound <= 0 (always)",
        "  MISSED p95 latency: 79 ms, bound <= 25 ms (LOAD_MAX_P95_MS)",
        "  MISSED throughput: 613 req/s, bound >= 773 req/s "
        "(LOAD_MIN_THROUGHPUT_RATIO=0.85 of the 909 req/s the users offer)",
    ]


def test_a_failed_request_fails_the_run_whatever_the_speed():
    verdict = load_verdict(
        num_requests=1000, num_failures=2, p95_ms=5, rps=900, bounds=SEED_BOUNDS, ceiling_rps=909
    )
    assert [check.line() for check in verdict.missed] == [
        "MISSED failed requests: 2, bound <= 0 (always)"
    ]


def test_a_run_without_requests_fails():
    verdict = load_verdict(
        num_requests=0, num_failures=0, p95_ms=0, rps=0, bounds=SEED_BOUNDS, ceiling_rps=0
    )
    assert verdict.exit_code == 1
    assert [check.name for check in verdict.missed] == ["requests made"]


def test_no_ceiling_means_no_throughput_target():
    verdict = load_verdict(
        num_requests=10, num_failures=0, p95_ms=5, rps=1, bounds=SEED_BOUNDS, ceiling_rps=0
    )
    assert "throughput" not in [check.name for check in verdict.checks]


@pytest.mark.parametrize(
    ("profile", "environ", "expected"),
    [
        ("seed", {}, load_profile.LoadBounds(max_p95_ms=25, min_throughput_ratio=0.85)),
        ("mixed", {}, load_profile.LoadBounds(max_p95_ms=1000, min_throughput_ratio=0)),
        # Empty is unset: the compose locust service passes .env's empty values.
        ("seed", {"LOAD_MAX_P95_MS": "", "LOAD_MIN_THROUGHPUT_RATIO": " "}, SEED_BOUNDS),
        (
            "seed",
            {"LOAD_MAX_P95_MS": "80", "LOAD_MIN_THROUGHPUT_RATIO": "0.5"},
            load_profile.LoadBounds(max_p95_ms=80, min_throughput_ratio=0.5),
        ),
    ],
)
def test_bounds_are_the_profile_defaults_unless_their_variable_is_set(profile, environ, expected):
    assert load_profile.load_bounds(profile, environ) == expected


def test_a_bound_that_is_not_a_number_is_refused_naming_its_variable():
    with pytest.raises(load_profile.BoundError, match="LOAD_MAX_P95_MS must be a number, got 'x'"):
        load_profile.load_bounds("seed", {"LOAD_MAX_P95_MS": "x"})


def test_each_note_post_gets_a_fresh_key_of_printable_characters():
    keys = {idempotency_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(1 <= len(key) <= 255 and key.isprintable() and key.isascii() for key in keys)


@pytest.mark.parametrize(
    ("status", "unknown"),
    [(0, True), (502, True), (503, True), (504, True), (201, False), (400, False), (422, False)],
)
def test_only_an_unknown_outcome_is_sent_again(status, unknown):
    assert outcome_unknown(status) is unknown


def test_a_key_acknowledged_twice_must_name_the_same_note():
    acks = NoteAcks()
    assert acks.record("k1", 10) is None
    assert acks.record("k1", 10) is None  # a replay of the same note
    assert acks.record("k2", 11) is None
    assert acks.record("k1", 12) == "key k1 acknowledged note 10 and then note 12"
    assert len(acks) == 2
