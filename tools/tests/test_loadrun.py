"""make load's driver: probing, the locust command line, seeding and the loopback-only rule."""

import json
import socket
from pathlib import Path

import pytest

from tools import load_profile, loadrun


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _args(**overrides) -> list[str]:
    overrides.setdefault("report_prefix", "reports/x")
    argv = ["--host", "http://127.0.0.1:1"]
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
    # The profile's own bounds, explicitly (mixed: p95 guard 1000 ms, no throughput target).
    assert (parsed["env"]["LOAD_MAX_P95_MS"], parsed["env"]["LOAD_MIN_THROUGHPUT_RATIO"]) == (
        "1000.0",
        "0.0",
    )


def test_the_last_lines_are_the_verdict_with_each_missed_target(tmp_path, monkeypatch, capsys):
    prefix = tmp_path / "load-seed"
    monkeypatch.setattr(loadrun, "answers", lambda url: True)
    monkeypatch.setattr(loadrun, "credentials_ensure", lambda path: None)

    def fake_locust(command, **kwargs):
        assert kwargs["env"]["LOAD_MAX_P95_MS"] == "40.0"
        verdict = load_profile.load_verdict(
            num_requests=100,
            num_failures=0,
            p95_ms=79,
            rps=900,
            bounds=load_profile.load_bounds("seed", kwargs["env"]),
            ceiling_rps=909,
        )
        checks = [{"met": check.met, "line": check.line()} for check in verdict.checks]
        Path(f"{prefix}-summary.json").write_text(json.dumps({"checks": checks}))
        return type("Result", (), {"returncode": verdict.exit_code})()

    monkeypatch.setattr(loadrun.subprocess, "run", fake_locust)
    code = loadrun.main(_args(report_prefix=prefix, max_p95_ms=40))
    assert code == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[-2:] == [
        "[loadrun]   MISSED p95 latency: 79 ms, bound <= 40 ms (LOAD_MAX_P95_MS)",
        f"[loadrun] reports: {tmp_path}/ (locust exit 1)",
    ]
    assert lines[-6].startswith("[loadrun] FAILED: 1 of 4 targets missed")


def test_a_run_that_wrote_no_summary_says_so_and_an_old_summary_is_not_reused(
    tmp_path, monkeypatch
):
    prefix = tmp_path / "load-seed"
    Path(f"{prefix}-summary.json").write_text('{"checks": []}')  # an earlier run's
    monkeypatch.setattr(loadrun, "answers", lambda url: True)
    monkeypatch.setattr(loadrun, "credentials_ensure", lambda path: None)
    monkeypatch.setattr(
        loadrun.subprocess, "run", lambda command, **kwargs: type("R", (), {"returncode": 2})()
    )
    assert loadrun.main(_args(report_prefix=prefix)) == 2
    assert loadrun.verdict_report(Path(f"{prefix}-summary.json"), returncode=2)[0].startswith(
        "FAILED: locust exited 2 without writing"
    )


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
