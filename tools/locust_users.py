"""locust load runs against carenotes, acting as the seed's real tenant members.

Profiles (environment variable ``LOAD_PROFILE``; ``make load PROFILE=...``):

- ``seed``: the classic challenge's test. Every user is a manager reading
  ``GET /api/care-stats/`` and waits 10-100 ms between requests.
- ``mixed``: managers read stats, carers record notes (``POST /api/notes/``) and then check
  that the day's stats include the new note, staff list notes. Each note POST carries a fresh
  ``Idempotency-Key``; one whose outcome is unknown (no answer, a timeout, 502/503/504) is
  sent again with the same key, and every 201 must name the one note id of its key.

Credentials come from ``.data/demo-credentials.json`` (``LOAD_CREDENTIALS``), written by
``manage.py seed_notes``. The run's exit code is set when locust quits: 1 when any request
failed, p95 exceeded ``LOAD_MAX_P95_MS``, or (seed profile) throughput fell below
``LOAD_MIN_THROUGHPUT_RATIO`` of the offered ceiling (defaults per profile in
tools/load_profile.py; empty means the default). A JSON summary with every target checked and
the load generator's own CPU share is written beside the CSV (``LOAD_REPORT_PREFIX``).
"""

import dataclasses
import json
import logging
import os
import random
import time
from pathlib import Path

import psutil
from locust import FastHttpUser, between, events, task
from locust.exception import StopUser
from locust.runners import WorkerRunner

from tools.load_profile import (
    CREDENTIALS_PATH,
    IDEMPOTENCY_HEADER,
    MIXED_WAIT_SECONDS,
    NOTE_POST_ATTEMPTS,
    PROFILE_MIXED,
    PROFILE_SEED,
    PROFILES,
    SEED_WAIT_SECONDS,
    BoundError,
    CredentialsError,
    NoteAcks,
    credentials_load,
    idempotency_key,
    load_bounds,
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

# Empty means unset, as for the app's settings (the compose locust service passes .env's).
PROFILE = os.environ.get("LOAD_PROFILE", "").strip() or PROFILE_SEED
if PROFILE not in PROFILES:
    raise SystemExit(f"LOAD_PROFILE must be one of {', '.join(PROFILES)}, got {PROFILE!r}")
try:
    BOUNDS = load_bounds(PROFILE, dict(os.environ))
except BoundError as exc:
    raise SystemExit(f"locustfile: {exc}") from exc
REPORT_PREFIX = os.environ.get("LOAD_REPORT_PREFIX", "").strip() or f"reports/load-{PROFILE}"

STATS_URL = "/api/care-stats/"
NOTES_URL = "/api/notes/"
# Requests are named by endpoint so statistics group by operation, not by query string.
NAME_STATS = "GET /api/care-stats/"
NAME_STATS_AFTER_POST = "GET /api/care-stats/ (after POST)"
NAME_NOTES_LIST = "GET /api/notes/"
NAME_NOTES_CREATE = "POST /api/notes/"
NAME_NOTES_CREATE_RETRY = "POST /api/notes/ (retry, same Idempotency-Key)"
# This process's acknowledged notes (a locust worker process checks its own users' keys).
NOTE_ACKS = NoteAcks()

logger = logging.getLogger("carenotes.load")


def _members():
    try:
        path = os.environ.get("LOAD_CREDENTIALS", "").strip() or CREDENTIALS_PATH
        return credentials_load(Path(path))
    except CredentialsError as exc:
        raise SystemExit(f"locustfile: {exc}") from exc


MEMBERS = _members()


class MemberUser(FastHttpUser):
    """A simulated user acting as one real member of one tenant, with its API token."""

    abstract = True
    roles: tuple[str, ...] = ()

    def on_start(self) -> None:
        self.rng = random.Random()
        self.member = member_pick(MEMBERS, roles=self.roles, rng=self.rng)
        self.headers = {"Authorization": f"Token {self.member.token}"}


class StatsReaderUser(MemberUser):
    """A manager reading the daily stats (tenant, maybe facilities, maybe a past day)."""

    abstract = True
    roles = ("manager",)

    @task
    def stats(self) -> None:
        today = tenant_today(self.member.timezone)
        params = stats_params(self.member, rng=self.rng, today=today)
        self.client.get(STATS_URL, params=params, headers=self.headers, name=NAME_STATS)


class SeedStatsUser(StatsReaderUser):
    """Seed profile: a manager reading the stats as fast as the challenge's test did."""

    abstract = PROFILE != PROFILE_SEED
    wait_time = between(*SEED_WAIT_SECONDS)


class ManagerUser(StatsReaderUser):
    """Mixed profile: a manager reading the daily stats."""

    abstract = PROFILE != PROFILE_MIXED
    weight = 3
    wait_time = between(*MIXED_WAIT_SECONDS)


class StaffUser(MemberUser):
    """Mixed profile: staff (admins) listing a tenant's notes."""

    abstract = PROFILE != PROFILE_MIXED
    weight = 2
    roles = ("admin",)
    wait_time = between(*MIXED_WAIT_SECONDS)

    @task
    def notes(self) -> None:
        self.client.get(
            NOTES_URL,
            params={"tenant_id": self.member.tenant_id},
            headers=self.headers,
            name=NAME_NOTES_LIST,
        )


class CarerUser(MemberUser):
    """Mixed profile: a carer recording notes, each checked to show up in the day's stats."""

    abstract = PROFILE != PROFILE_MIXED
    weight = 5
    roles = ("carer",)
    wait_time = between(*MIXED_WAIT_SECONDS)

    def on_start(self) -> None:
        super().on_start()
        # Stats may be for managers only; a manager of the same tenant does the check.
        reader = tenant_reader(MEMBERS, member=self.member)
        self.reader_headers = {"Authorization": f"Token {reader.token}"}
        # The credentials name no patients: the tenant's recent notes do.
        with self.client.get(
            NOTES_URL,
            params={"tenant_id": self.member.tenant_id},
            headers=self.headers,
            name=NAME_NOTES_LIST,
            catch_response=True,
        ) as response:
            try:
                self.patients = patients_from_notes(response.json())
            except (ValueError, KeyError, TypeError) as exc:
                response.failure(f"cannot read patients from the notes list: {exc!r}")
                raise StopUser() from exc
            if not self.patients:
                response.failure(f"tenant {self.member.tenant_id} has no notes to find patients")
                raise StopUser()

    def _stats_total(self, *, at_least: int | None = None) -> int | None:
        """Read today's stats of the carer's tenant; fail the read if the total is short."""
        with self.client.get(
            STATS_URL,
            params={"tenant_id": self.member.tenant_id},
            headers=self.reader_headers,
            name=NAME_STATS_AFTER_POST if at_least is not None else NAME_STATS,
            catch_response=True,
        ) as response:
            try:
                total = stats_total(response.json()) if response.status_code == 200 else None
            except ValueError:
                total = None
            if total is None:
                response.failure(f"stats answered {response.status_code} without a total")
            elif at_least is not None and total < at_least:
                response.failure(f"stats total {total} after a POST, expected >= {at_least}")
            return total

    def _post_note(self, payload: dict) -> int:
        """POST one note, again with the same key while the outcome is unknown; return the status.

        Every 201 is checked against the run's acknowledgements: one key, one note id.
        """
        headers = {**self.headers, IDEMPOTENCY_HEADER: idempotency_key()}
        status = 0
        for attempt in range(NOTE_POST_ATTEMPTS):
            name = NAME_NOTES_CREATE if attempt == 0 else NAME_NOTES_CREATE_RETRY
            with self.client.post(
                NOTES_URL, json=payload, headers=headers, name=name, catch_response=True
            ) as response:
                status = response.status_code
                if status == 201:
                    problem = self._acknowledge(headers[IDEMPOTENCY_HEADER], response)
                    if problem:
                        response.failure(problem)
                if not outcome_unknown(status):
                    return status
        return status

    @staticmethod
    def _acknowledge(key: str, response) -> str | None:
        try:
            note_id = int(response.json()["id"])
        except (ValueError, KeyError, TypeError):
            return "a 201 without a note id"
        return NOTE_ACKS.record(key, note_id)

    @task
    def record_note(self) -> None:
        before = self._stats_total()
        if before is None:
            return
        payload = note_payload(self.member, patient=self.rng.choice(self.patients), rng=self.rng)
        if self._post_note(payload) == 201:
            # Totals only grow (other carers add notes too), so ">= before + 1" holds exactly
            # when this note's POST made the cached stats stale.
            self._stats_total(at_least=before + 1)


# --- the run's verdict and the load generator's CPU share ------------------------------------

_cpu = {}


def _locust_cpu_seconds() -> float:
    process = psutil.Process()
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


@events.test_start.add_listener
def _cpu_start(environment, **kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    _cpu.update(wall=time.monotonic(), locust=_locust_cpu_seconds(), machine=psutil.cpu_times())


def _cpu_summary() -> dict:
    if not _cpu:
        return {}
    wall = time.monotonic() - _cpu["wall"]
    cores = psutil.cpu_count() or 1
    before, after = _cpu["machine"], psutil.cpu_times()
    busy = (sum(after) - after.idle - after.iowait) - (sum(before) - before.idle - before.iowait)
    return {
        "wall_seconds": round(wall, 1),
        "cores": cores,
        "locust_core_share": round((_locust_cpu_seconds() - _cpu["locust"]) / wall, 3),
        "machine_busy_share": round(busy / wall / cores, 3),
    }


@events.quitting.add_listener
def _verdict(environment, **kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    total = environment.stats.total
    users = environment.parsed_options.num_users if environment.parsed_options else 0
    # Seed users make one request per wait; mixed carers make three, so only the seed
    # profile has a request ceiling to hold throughput against.
    ceiling = offered_ceiling(users or 0, SEED_WAIT_SECONDS) if PROFILE == PROFILE_SEED else 0.0
    p95 = total.get_response_time_percentile(0.95) or 0.0
    verdict = load_verdict(
        num_requests=total.num_requests,
        num_failures=total.num_failures,
        p95_ms=p95,
        rps=total.total_rps,
        bounds=BOUNDS,
        ceiling_rps=ceiling,
    )
    summary = {
        "profile": PROFILE,
        "users": users,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rps": round(total.total_rps, 1),
        "offered_ceiling_rps": round(ceiling, 1) or None,
        "p50_ms": total.get_response_time_percentile(0.5),
        "p95_ms": p95,
        "p99_ms": total.get_response_time_percentile(0.99),
        "max_p95_ms": BOUNDS.max_p95_ms,
        "min_throughput_ratio": BOUNDS.min_throughput_ratio,
        "cpu": _cpu_summary(),
        "exit_code": verdict.exit_code,
        "checks": [
            {**dataclasses.asdict(check), "met": check.met, "line": check.line()}
            for check in verdict.checks
        ],
        "reasons": [check.line() for check in verdict.missed],
    }
    path = Path(f"{REPORT_PREFIX}-summary.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("load summary: %s", json.dumps(summary))
    for line in verdict_lines(summary):
        logger.info("%s", line)
    environment.process_exit_code = verdict.exit_code
