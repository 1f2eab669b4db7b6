"""make load's driver: probing, the locust command line, seeding and the loopback-only rule."""

import socket

import pytest

from tools import loadrun


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _args(**overrides) -> list[str]:
    argv = ["--host", "http://127.0.0.1:1", "--report-prefix", "reports/x"]
    for name, value in overrides.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def test_a_closed_port_does_not_answer():
    assert loadrun.answers(f"http://127.0.0.1:{_closed_port()}/healthz") is False


def test_the_locust_command_is_headless_and_writes_csv_and_html(monkeypatch):
    parsed = {}
    monkeypatch.setattr(loadrun, "answers", lambda url: True)
    monkeypatch.setattr(loadrun, "credentials_ensure", lambda path: None)

    def fake_run(command, **kwargs):
        parsed["command"], parsed["env"] = command, kwargs["env"]
        return type("Result", (), {"returncode": 3})()

    monkeypatch.setattr(loadrun.subprocess, "run", fake_run)
    code = loadrun.main(_args(users=7, spawn_rate=2, run_time="5s", processes=2, profile="mixed"))
    assert code == 3  # locust's exit code is make's
    command = parsed["command"]
    assert command[1:] == [
        "-f",
        str(loadrun.ROOT / "locustfile.py"),
        "--headless",
        "--host",
        "http://127.0.0.1:1",
        "--users",
        "7",
        "--spawn-rate",
        "2.0",
        "--run-time",
        "5s",
        "--csv",
        "reports/x",
        "--html",
        "reports/x.html",
        "--only-summary",
        "--processes",
        "2",
    ]
    assert parsed["env"]["LOAD_PROFILE"] == "mixed"
    assert parsed["env"]["LOAD_REPORT_PREFIX"] == "reports/x"


def test_only_a_loopback_server_is_started(tmp_path):
    with pytest.raises(SystemExit, match="only a loopback server can be started"):
        loadrun.server_start(host="http://example.org:8000", log_path=tmp_path / "log")


def test_existing_credentials_are_not_reseeded(tmp_path, monkeypatch):
    path = tmp_path / "creds.json"
    path.write_text("{}")
    monkeypatch.setattr(loadrun.subprocess, "run", pytest.fail)
    loadrun.credentials_ensure(path)


def test_a_seed_that_writes_no_credentials_is_reported(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(loadrun.subprocess, "run", lambda command, **kwargs: ran.append(command))
    with pytest.raises(SystemExit, match="already holds data"):
        loadrun.credentials_ensure(tmp_path / "absent.json")
    assert ran and ran[0][1:] == loadrun.SEED_COMMAND
