"""Two app nodes behind HAProxy (what `make cluster` runs, tools/cluster.py): nothing a request
needs lives in one node, and a node that dies mid-traffic fails no GET and loses or doubles
no acknowledged note.

Both nodes are real gunicorns serving pytest-django's test database and the test Redis with
one secret key; HAProxy (Debian package ``haproxy``; skipped without it) runs
deploy/haproxy/haproxy.cfg. The tests commit their rows, so the nodes see them.
"""

import http.client
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.utils import timezone

from carenotes.notes.models import CareNote
from stats.tests.factories import CARE_STATS_URL, DAY, care_group_create
from system_tests.scaleout import (
    REQUEST_TIMEOUT,
    executable,
    free_port,
    http_request,
    service_dir,
    started,
    wait_until,
)
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory, UserFactory
from tools.cluster import AppNode, LoadBalancer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
# A low rate for one scope, counted in the shared Redis: the nodes must agree on it.
ME_RATE = 5
WARM_CONNECTIONS = 12  # fresh connections reach every worker of a node (2 here)
READER_THREADS = 3
WRITER_THREADS = 2
ADMIN_PASSWORD = "cluster-test-password"
CSRF_INPUT = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')
# A POST in flight on the node that dies gets HAProxy's 502 (it is never replayed), or, on a
# loaded machine, no answer within REQUEST_TIMEOUT: outcome unknown either way, never a 201.
NO_ANSWER = 0
POST_STATUSES = {HTTPStatus.CREATED, HTTPStatus.BAD_GATEWAY, NO_ANSWER}
BODY_PREFIX = "cluster-test"  # every note body the traffic sends: the prefix and a uuid


@dataclass
class Cluster:
    nodes: tuple[AppNode, AppNode]
    balancer: LoadBalancer


def _test_database_url() -> str:
    """The configured DATABASE_URL with pytest-django's test database name."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker) -> Iterator[Cluster]:
    program = executable("haproxy", package="haproxy")
    run_dir = service_dir("cluster")
    static_root = run_dir / "static"
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    env = {
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),  # one key: sessions, CSRF
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_HSTS_SECONDS": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_STATIC_ROOT": str(static_root),
        "DJANGO_LOG_LEVEL": "WARNING",
        "THROTTLE_RATE_ME": f"{ME_RATE}/d",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "2",
        "GUNICORN_ACCESSLOG": "",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**_parent_env(), **env},
        check=True,
    )
    nodes = tuple(
        AppNode(port=free_port(), env=env, base_env=_parent_env(), log_path=run_dir / name)
        for name in ("node1.log", "node2.log")
    )
    balancer = LoadBalancer(
        program=program,
        port=free_port(),
        status_port=free_port(),
        nodes=(nodes[0].port, nodes[1].port),
    )
    try:
        with started(*nodes, balancer):
            yield Cluster(nodes=nodes, balancer=balancer)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _parent_env() -> dict[str, str]:
    """This process's environment without its gunicorn and Django variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DJANGO_"))}


def _get(port: int, path: str, token: str | None = None, cookies: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Token {token}"} if token else {}
    if cookies:
        headers["Cookie"] = cookies
    status, _, body = http_request("GET", port, path, headers=headers)
    return status, body


class Browser:
    """A cookie jar over fresh connections to one node (enough for the admin's forms)."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": self.cookie_header()} if self.cookies else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    self.cookies[name] = morsel.value
            return response.status, response.read()
        finally:
            conn.close()

    def csrf_token(self, path: str) -> str:
        status, body = self.request("GET", path)
        assert status == HTTPStatus.OK, body[:500]
        return CSRF_INPUT.search(body).group(1).decode()

    def admin_login(self, username: str) -> None:
        token = self.csrf_token("/admin/login/")
        form = {"username": username, "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token}
        status, body = self.request("POST", "/admin/login/?next=/admin/", form)
        assert status == HTTPStatus.FOUND, body[:1000]


def _superuser():
    user = UserFactory(is_superuser=True, is_staff=True)
    # The nodes run production's hashers (the test settings' MD5 is not among them).
    user.password = PBKDF2PasswordHasher().encode(ADMIN_PASSWORD, PBKDF2PasswordHasher().salt())
    user.save()
    return user


def test_a_token_revoked_through_node_one_is_refused_by_node_two_at_once(cluster):
    node1, node2 = cluster.nodes
    group = care_group_create()
    token, key = api_token_create(user=MembershipFactory(tenant=group.tenant).user, name="phone")
    stats = f"{CARE_STATS_URL}?{urlencode({'tenant_id': group.tenant.pk, 'date': DAY})}"
    # Node 2's workers authenticate the key and cache the answer: the next ones are warm
    # hits, answered from the per-process memo of the key's user and Redis, before DRF.
    warm = [_get(node2.port, stats, key)[0] for _ in range(WARM_CONNECTIONS)]
    assert warm == [HTTPStatus.OK] * WARM_CONNECTIONS

    admin = Browser(node1.port)
    admin.admin_login(_superuser().username)
    change = f"/admin/tenants/apitoken/{token.pk}/change/"
    now = timezone.localtime()
    status, body = admin.request(
        "POST",
        change,
        {
            "csrfmiddlewaretoken": admin.csrf_token(change),
            "user": token.user_id,
            "name": "phone",
            "expires_at_0": "",
            "expires_at_1": "",
            "revoked_at_0": now.date().isoformat(),
            "revoked_at_1": now.time().strftime("%H:%M:%S"),
        },
    )
    assert status == HTTPStatus.FOUND, body[:1000]

    refused = [_get(node2.port, stats, key)[0] for _ in range(WARM_CONNECTIONS)]
    assert refused == [HTTPStatus.UNAUTHORIZED] * WARM_CONNECTIONS
    assert _get(node2.port, "/api/me/", key)[0] == HTTPStatus.UNAUTHORIZED
    # The admin session made on node 1 is valid on node 2: sessions live in PostgreSQL.
    assert _get(node2.port, "/admin/", cookies=admin.cookie_header())[0] == HTTPStatus.OK


def test_the_nodes_share_one_throttle_count(cluster):
    node1, node2 = cluster.nodes
    _, key = api_token_create(user=UserFactory())
    ports = [node1.port, node2.port] * ME_RATE
    statuses = [_get(port, "/api/me/", key)[0] for port in ports[: ME_RATE + 2]]
    assert statuses == [HTTPStatus.OK] * ME_RATE + [HTTPStatus.TOO_MANY_REQUESTS] * 2


@dataclass
class Ledger:
    """Every request sent through the balancer during the fault, and what came back."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    gets: Counter = field(default_factory=Counter)
    posts: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def acknowledged(self) -> dict[str, int]:
        with self.lock:
            return {b: nid for b, (s, nid) in self.posts.items() if s == HTTPStatus.CREATED}


class Traffic:
    """Reader and writer threads sending requests through the balancer until stopped."""

    def __init__(self, port: int, group, manager: str, carer: str):
        self.port, self.group, self.manager, self.carer = port, group, manager, carer
        self.ledger = Ledger()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._read) for _ in range(READER_THREADS)]
        self.threads += [threading.Thread(target=self._write) for _ in range(WRITER_THREADS)]

    def _read(self) -> None:
        tenant = self.group.tenant.pk
        paths = [f"{CARE_STATS_URL}?tenant_id={tenant}", f"/api/notes/?tenant_id={tenant}"]
        while not self.stopping.is_set():
            for path in paths:
                try:
                    status = _get(self.port, path, self.manager)[0]
                except (OSError, http.client.HTTPException):
                    status = NO_ANSWER
                with self.ledger.lock:
                    self.ledger.gets[status] += 1

    def _write(self) -> None:
        patient = self.group.patients[0]
        while not self.stopping.is_set():
            body = f"{BODY_PREFIX} {uuid.uuid4()}"
            payload = {
                "tenant_id": self.group.tenant.pk,
                "facility_id": patient.facility_id,
                "patient_id": patient.pk,
                "category": "observation",
                "priority": 3,
                "body": body,
            }
            headers = {"Authorization": f"Token {self.carer}"}
            try:
                status, _, raw = http_request(
                    "POST", self.port, "/api/notes/", body=payload, headers=headers
                )
                note_id = int(re.search(rb'"id":(\d+)', raw).group(1)) if status == 201 else None
            except (OSError, http.client.HTTPException):
                status, note_id = NO_ANSWER, None
            with self.ledger.lock:
                self.ledger.posts[body] = (status, note_id)

    def gets_done(self) -> int:
        with self.ledger.lock:
            return sum(self.ledger.gets.values())

    def __enter__(self) -> "Traffic":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT * 3)


def test_a_node_killed_mid_traffic_fails_no_get_and_loses_or_doubles_no_acknowledged_note(
    cluster,
):
    group = care_group_create()
    _, manager = api_token_create(user=MembershipFactory(tenant=group.tenant).user)
    _, carer = api_token_create(user=MembershipFactory(tenant=group.tenant, role="carer").user)
    victim = cluster.nodes[0]
    try:
        with Traffic(cluster.balancer.port, group, manager, carer) as traffic:
            wait_until(lambda: traffic.gets_done() >= 40, timeout=60, message="no traffic")
            wait_until(
                lambda: len(traffic.ledger.acknowledged()) >= 10, timeout=60, message="no writes"
            )
            victim.kill()
            killed_at = (traffic.gets_done(), len(traffic.ledger.acknowledged()))
            wait_until(
                lambda: cluster.balancer.nodes_up() == 1,
                timeout=30,
                message="HAProxy did not mark the killed node down",
            )
            wait_until(
                lambda: (
                    traffic.gets_done() >= killed_at[0] + 60
                    and len(traffic.ledger.acknowledged()) >= killed_at[1] + 20
                ),
                timeout=60,
                message="traffic stopped after the node died",
            )
    finally:
        victim.start()  # for the module's other tests
        wait_until(lambda: cluster.balancer.nodes_up() == 2, timeout=30, message="not back")

    # HAProxy replays a GET the dying node left unanswered; one whose answer the node had
    # begun to send when it died cannot be replayed and reaches the client cut off (seen in
    # about 1 run in 8 on 2026-12-07). At most the GETs in flight at the kill, never an error.
    gets = traffic.ledger.gets
    assert set(gets) <= {HTTPStatus.OK, NO_ANSWER}, gets
    assert gets[NO_ANSWER] <= READER_THREADS, gets
    assert gets[HTTPStatus.OK] >= killed_at[0] + 60 - READER_THREADS, gets
    acknowledged = traffic.ledger.acknowledged()
    rows = list(
        CareNote.objects.filter(tenant=group.tenant, body__startswith=BODY_PREFIX).values_list(
            "id", "body"
        )
    )
    stored = Counter(body for _, body in rows)
    ids = {body: note_id for note_id, body in rows}
    for body, note_id in acknowledged.items():
        assert stored[body] == 1, f"acknowledged note {note_id} stored {stored[body]} times"
        assert ids[body] == note_id
    assert all(count == 1 for count in stored.values()), "a note was stored twice"
    # A POST a dying node left unanswered may or may not be stored; nothing else is.
    assert set(stored) <= set(traffic.ledger.posts)
    assert set(status for status, _ in traffic.ledger.posts.values()) <= POST_STATUSES
