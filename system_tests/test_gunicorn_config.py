"""gunicorn.conf.py: defaults, GUNICORN_* overrides, fork hygiene, and a real served request."""

import http.client
import json
import os
import runpy
import secrets
import signal
import socket
import subprocess
import sys
import time
from http import HTTPStatus
from pathlib import Path

import pytest
from django.db import connection
from gunicorn.config import Config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "gunicorn.conf.py"
START_TIMEOUT_SECONDS = 30


def _config(monkeypatch, **env: str) -> dict:
    for name in list(os.environ):
        if name.startswith("GUNICORN_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONFIG))


def test_defaults_are_the_measured_choice(monkeypatch):
    config = _config(monkeypatch)
    assert (config["worker_class"], config["workers"], config["threads"]) == (
        config["DEFAULT_WORKER_CLASS"],
        config["DEFAULT_WORKERS"],
        config["DEFAULT_THREADS"],
    )
    assert (config["worker_class"], config["threads"]) == ("gthread", 1)
    assert config["max_requests"] > 0
    assert 0 < config["max_requests_jitter"] < config["max_requests"]
    assert config["accesslog"] is None
    assert "%(M)s" in config["access_log_format"]
    assert config["control_socket_disable"] is True


def test_every_setting_follows_its_environment_variable(monkeypatch):
    config = _config(
        monkeypatch,
        GUNICORN_WORKERS="7",
        GUNICORN_WORKER_CLASS="gthread",
        GUNICORN_THREADS="4",
        GUNICORN_TIMEOUT="9",
        GUNICORN_MAX_REQUESTS="100",
        GUNICORN_MAX_REQUESTS_JITTER="10",
        GUNICORN_ACCESSLOG="-",
    )
    assert (config["workers"], config["worker_class"], config["threads"]) == (7, "gthread", 4)
    assert (config["timeout"], config["max_requests"], config["max_requests_jitter"]) == (
        9,
        100,
        10,
    )
    assert config["accesslog"] == "-"


def test_empty_variables_take_the_defaults(monkeypatch):
    # What docker compose passes for `GUNICORN_WORKER_CLASS: ${GUNICORN_WORKER_CLASS:-}`.
    config = _config(
        monkeypatch, GUNICORN_WORKER_CLASS="", GUNICORN_WORKERS="", GUNICORN_THREADS=""
    )
    assert (config["worker_class"], config["workers"], config["threads"]) == (
        config["DEFAULT_WORKER_CLASS"],
        config["DEFAULT_WORKERS"],
        config["DEFAULT_THREADS"],
    )


@pytest.mark.parametrize(("accesslog", "built"), [("", False), ("-", True)])
def test_access_records_are_built_only_when_an_access_log_is_configured(
    monkeypatch, accesslog, built
):
    config = _config(monkeypatch, GUNICORN_ACCESSLOG=accesslog)
    gunicorn_config = Config()
    for name in ("accesslog", "logconfig_dict"):
        gunicorn_config.set(name, config[name])
    logger = config["logger_class"](gunicorn_config)
    atoms_built = []
    monkeypatch.setattr(logger, "atoms", lambda *args: atoms_built.append(args) or {})

    logger.access(resp=None, req=None, environ={}, request_time=None)

    assert (logger.access_log_enabled, bool(atoms_built)) == (built, built)


def test_a_malformed_variable_stops_gunicorn_with_one_line_naming_it():
    result = subprocess.run(
        [Path(sys.executable).parent / "gunicorn", "--config", str(CONFIG), "--check-config"],
        cwd=ROOT,
        env={**os.environ, "GUNICORN_WORKERS": "many"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "gunicorn.conf.py: GUNICORN_WORKERS must be an integer, got 'many'"
    ]


@pytest.mark.django_db(transaction=True)
def test_post_fork_closes_inherited_database_connections(monkeypatch):
    connection.ensure_connection()
    assert connection.connection is not None
    _config(monkeypatch)["post_fork"](server=None, worker=None)
    assert connection.connection is None


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path):
        super().__init__("localhost", timeout=10)
        self.socket_path = str(path)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


def _get(socket_path: Path, url: str, headers: dict) -> http.client.HTTPResponse:
    conn = _UnixHTTPConnection(socket_path)
    conn.request("GET", url, headers=headers)
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


@pytest.mark.slow
def test_gunicorn_serves_readyz_with_request_ids_in_both_logs(tmp_path):
    # A unix socket: no TCP port to collide with anything else on the machine.
    socket_path = tmp_path / "gunicorn.sock"
    log_path = tmp_path / "gunicorn.log"
    static_root = tmp_path / "static"
    static_root.mkdir()
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("GUNICORN_")},
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_ALLOWED_HOSTS": "localhost",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_ACCESSLOG": "-",
        # An existing static root: whitenoise warns on stderr (not JSON) when it is missing.
        "DJANGO_STATIC_ROOT": str(static_root),
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                Path(sys.executable).parent / "gunicorn",
                *("--config", str(CONFIG), "--bind", f"unix:{socket_path}", "carenotes.wsgi"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not socket_path.exists():
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        response = _get(socket_path, "/readyz", {"X-Request-ID": "probe-1"})
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert response.status == HTTPStatus.OK, response.body
    assert response.getheader("X-Request-ID") == "probe-1"
    # Every line gunicorn and the app wrote is one JSON object.
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    requests = [line for line in lines if line["logger"] == "carenotes.request"]
    assert [(line["request_id"], line["route"], line["status"]) for line in requests] == [
        ("probe-1", "readyz", 200)
    ]
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    assert [(line["request_id"], line["path"], line["status"]) for line in access] == [
        ("probe-1", "/readyz", 200)
    ]
