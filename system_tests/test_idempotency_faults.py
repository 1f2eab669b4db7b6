"""Exactly-once note writes against real servers: retries with the same Idempotency-Key.

The gunicorn, Redis and traffic helpers are test_faults.py's. To stop a write at a chosen
point without faking any code path, a test creates a gate in PostgreSQL: a deferred
constraint trigger on the idempotency keys that, at COMMIT of the request carrying the
test's key, waits for an advisory lock the test holds. The request's transaction has then
written its key, its note and its answer; the test kills the worker or the backend, or lets
a crowd of duplicates pile up behind it, and opens the gate.
"""

import os
import signal
import threading
import time
import uuid
from http import HTTPStatus

import pytest
from django.db import connection

from carenotes.core.resilience import DATABASE_UNAVAILABLE_DETAIL
from carenotes.notes.idempotency import IDEMPOTENCY_HEADER, REPLAYED_HEADER, REPLAYED_VALUE
from carenotes.notes.models import CareNote, IdempotencyKey

# world: test_faults' fixture (a gunicorn and a Redis of the test's own), used by name below.
from system_tests.test_faults import (  # noqa: F401
    NO_ANSWER,
    NOTES_URL,
    START_TIMEOUT,
    World,
    request,
    wait_until,
    world,
)
from tenants.rls import rls_owner

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The advisory lock of the gate (below 2**31: pg_locks shows it as objid, classid 0).
GATE_LOCK = 0x1DE3_7E57
GATE_FUNCTION = "idempotency_test_gate"
GATE_TIMEOUT = 20.0
CROWD = 50
# gunicorn's worker threads (test_faults: 2 workers x 2 threads) each take one duplicate,
# which waits on the unique index for the gated transaction; the rest queue in gunicorn.
# How many threads are busy depends on which worker accepted the connections: at least one.
CROWD_SETTLE_SECONDS = 0.5


def _sql(sql: str, params=()) -> list[tuple]:
    # The owner (superuser here): DDL, other sessions' waits, signalling backends.
    with rls_owner(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


class Gate:
    """A PostgreSQL gate holding the COMMIT of requests with one Idempotency-Key."""

    def __init__(self, key: str):
        self.key = key
        self.closed = False

    def install(self) -> None:
        _sql(
            f"CREATE FUNCTION {GATE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN PERFORM pg_advisory_xact_lock({GATE_LOCK}); RETURN NULL; END $$"
        )
        _sql(
            f"CREATE CONSTRAINT TRIGGER {GATE_FUNCTION} AFTER INSERT OR UPDATE ON "
            f"{IdempotencyKey._meta.db_table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
            f"WHEN (NEW.key = '{self.key}') EXECUTE FUNCTION {GATE_FUNCTION}()"
        )

    def uninstall(self) -> None:
        self.open()
        _sql(f"DROP TRIGGER IF EXISTS {GATE_FUNCTION} ON {IdempotencyKey._meta.db_table}")
        _sql(f"DROP FUNCTION IF EXISTS {GATE_FUNCTION}()")

    def close(self) -> None:
        _sql("SELECT pg_advisory_lock(%s)", [GATE_LOCK])
        self.closed = True

    def open(self) -> None:
        if self.closed:
            _sql("SELECT pg_advisory_unlock(%s)", [GATE_LOCK])
            self.closed = False

    def waiting(self) -> list[int]:
        """Return the pids of the backends committing at the gate."""
        rows = _sql(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND NOT granted",
            [GATE_LOCK],
        )
        return [pid for (pid,) in rows]


def _blocked_on_a_transaction() -> int:
    """Return how many backends of the test database wait for another's transaction to end."""
    return _sql(
        "SELECT count(*) FROM pg_locks JOIN pg_stat_activity USING (pid) "
        "WHERE locktype = 'transactionid' AND NOT granted AND datname = %s",
        [connection.settings_dict["NAME"]],
    )[0][0]


@pytest.fixture
def gate():
    key = f"gate-{uuid.uuid4()}"
    gate = Gate(key)
    gate.install()
    try:
        yield gate
    finally:
        gate.uninstall()


def _payload(served: World, body: str) -> dict:
    return {
        "tenant_id": served.tenant_id,
        "facility_id": served.facility_id,
        "patient_id": served.patient_id,
        "category": "observation",
        "priority": 3,
        "body": body,
    }


def _post(served: World, key: str, body: str) -> tuple[int, dict]:
    """POST the note ``body`` with ``key``; return (status, JSON with "_headers"), 0: no answer."""
    try:
        return request(
            "POST",
            served.server.port,
            NOTES_URL,
            body=_payload(served, body),
            token=served.carer_token,
            headers={IDEMPOTENCY_HEADER: key},
        )
    except OSError as exc:  # the connection reset or closed by a dying worker
        return NO_ANSWER, {"error": repr(exc)}


class Sender(threading.Thread):
    """One POST in the background; ``answer`` holds its outcome when it ends."""

    def __init__(self, served: World, key: str, body: str):
        super().__init__(daemon=True)
        self.args_ = (served, key, body)
        self.answer: tuple[int, dict] | None = None

    def run(self) -> None:
        self.answer = _post(*self.args_)


def _stored_ids(body: str) -> list[int]:
    return list(CareNote.objects.filter(body=body).values_list("id", flat=True))


def _send_to_the_closed_gate(served: World, gate: Gate, bodies: list[str]) -> list[Sender]:
    """Close the gate, POST each body with its key; return once one request is at the gate."""
    gate.close()
    senders = [Sender(served, gate.key, body) for body in bodies]
    for sender in senders:
        sender.start()
    wait_until(lambda: gate.waiting(), timeout=GATE_TIMEOUT, message="no request at the gate")
    return senders


def _without_headers(data: dict) -> dict:
    return {name: value for name, value in data.items() if name != "_headers"}


def test_a_worker_killed_after_the_commit_and_before_the_answer_retry_replays_the_note(
    world,  # noqa: F811 (the fixture imported above)
    gate,
):
    body = f"killed-worker {uuid.uuid4()}"
    first = _send_to_the_closed_gate(world, gate, [body])[0]
    # The request's transaction holds its key, note and answer; its COMMIT is at the gate.
    victims = world.server.worker_pids()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    first.join(GATE_TIMEOUT)
    assert first.answer[0] == NO_ANSWER, first.answer
    # PostgreSQL finishes the dead client's COMMIT once the gate opens.
    gate.open()
    wait_until(lambda: _stored_ids(body), timeout=GATE_TIMEOUT, message="the commit was lost")
    wait_until(
        lambda: len(set(world.server.worker_pids()) - set(victims)) == world.server.workers,
        timeout=START_TIMEOUT,
        message="the master did not replace the killed workers",
    )

    status, retry = _post(world, gate.key, body)
    assert status == HTTPStatus.CREATED, retry
    assert retry["_headers"][REPLAYED_HEADER.lower()] == REPLAYED_VALUE
    assert _stored_ids(body) == [retry["id"]]  # exactly one note, the one the retry names


def test_a_backend_terminated_mid_request_the_waiting_retry_records_the_note_once(
    world,  # noqa: F811 (the fixture imported above)
    gate,
):
    body = f"terminated-backend {uuid.uuid4()}"
    first = _send_to_the_closed_gate(world, gate, [body])[0]
    (backend,) = gate.waiting()
    # The client gives up and retries while the first request is still running: the retry
    # waits on the unique index for the first request's transaction.
    retry = Sender(world, gate.key, body)
    retry.start()
    wait_until(
        lambda: _blocked_on_a_transaction() >= 1,
        timeout=GATE_TIMEOUT,
        message="the retry did not wait for the first request",
    )
    _sql("SELECT pg_terminate_backend(%s)", [backend])
    wait_until(lambda: backend not in gate.waiting(), timeout=GATE_TIMEOUT, message="backend lives")
    first.join(GATE_TIMEOUT)
    gate.open()  # the retry's own COMMIT passes the gate
    retry.join(GATE_TIMEOUT)

    status, data = first.answer
    assert (status, data["detail"]) == (HTTPStatus.SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE_DETAIL)
    status, created = retry.answer
    assert status == HTTPStatus.CREATED, created
    assert REPLAYED_HEADER.lower() not in created["_headers"]  # the first rolled back: new note
    assert _stored_ids(body) == [created["id"]]
    status, again = _post(world, gate.key, body)
    assert (status, again["_headers"][REPLAYED_HEADER.lower()]) == (
        HTTPStatus.CREATED,
        REPLAYED_VALUE,
    )
    assert _without_headers(again) == _without_headers(created)
    assert _stored_ids(body) == [created["id"]]


def test_fifty_concurrent_identical_requests_record_one_note_and_get_one_answer(
    world,  # noqa: F811 (the fixture imported above)
    gate,
):
    body = f"crowd {uuid.uuid4()}"
    crowd = _send_to_the_closed_gate(world, gate, [body] * CROWD)
    wait_until(
        lambda: _blocked_on_a_transaction() >= 1,
        timeout=GATE_TIMEOUT,
        message="the duplicates did not wait on the unique index",
    )
    time.sleep(CROWD_SETTLE_SECONDS)  # let every free worker thread take a duplicate
    gate.open()
    for sender in crowd:
        sender.join(GATE_TIMEOUT)

    answers = [sender.answer for sender in crowd]
    assert {status for status, _ in answers} == {HTTPStatus.CREATED}, answers
    bodies = [_without_headers(data) for _, data in answers]
    assert all(answer == bodies[0] for answer in bodies)
    replayed = [REPLAYED_HEADER.lower() in data["_headers"] for _, data in answers]
    assert replayed.count(False) == 1  # the first; every other answer is its replay
    assert _stored_ids(body) == [bodies[0]["id"]]
