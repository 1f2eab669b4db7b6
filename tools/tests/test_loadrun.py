"""make load's driver: probing, the locust command line, seeding and the loopback-only rule."""

import json
import os
import socket
import subprocess
import sys
import time
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


class _FakeServer:
    """Stands for gunicorn: this test process, so its CPU time is real and readable."""

    pid = os.getpid()

    def poll(self):
        return 0


def test_pin_serves_on_cpu_0_runs_locust_on_cpu_1_and_reports_the_server_cost(
    tmp_path, monkeypatch, capsys
):
    prefix = tmp_path / "load-seed"
    started = {}
    monkeypatch.setattr(loadrun, "answers", lambda url: url.endswith("/readyz"))
    monkeypatch.setattr(loadrun, "credentials_ensure", lambda path: None)

    def fake_popen(command, **kwargs):
        started["server"] = command
        return _FakeServer()

    def fake_locust(command, **kwargs):
        started["locust"] = command
        deadline = time.process_time() + 0.2  # the "server" works while locust runs
        while time.process_time() < deadline:
            pass
        Path(f"{prefix}-summary.json").write_text(json.dumps({"checks": [], "requests": 100}))
        return type("Result", (), {"returncode": 0})()

    monkeypatch.setattr(loadrun.subprocess, "Popen", fake_popen)
    monkeypatch.setattr(loadrun.subprocess, "run", fake_locust)
    assert loadrun.main([*_args(report_prefix=prefix, host="http://127.0.0.1:8999"), "--pin"]) == 0

    assert started["server"][:3] == ["taskset", "--cpu-list", "0"]
    assert started["server"][3:] == [
        str(loadrun.BIN / "gunicorn"),
        "--config",
        "gunicorn.conf.py",
        "--bind",
        "127.0.0.1:8999",
        "carenotes.wsgi",
    ]
    assert started["locust"][:4] == ["taskset", "--cpu-list", "1", str(loadrun.BIN / "locust")]
    server = json.loads(Path(f"{prefix}-summary.json").read_text())["server"]
    assert server["pinned_cpu"] == 0
    assert server["cpu_seconds"] >= 0.15  # the busy loop above, read from /proc
    assert server["cpu_ms_per_request"] == pytest.approx(server["cpu_seconds"] * 10, abs=0.1)
    lines = capsys.readouterr().err.splitlines()
    assert lines[-2].startswith("[loadrun] server (CPU 0 only): ")
    assert "ms of CPU per request" in lines[-2]


def test_pin_refuses_a_server_it_did_not_start(monkeypatch):
    monkeypatch.setattr(loadrun, "answers", lambda url: True)
    monkeypatch.setattr(loadrun, "credentials_ensure", lambda path: None)
    monkeypatch.setattr(loadrun.subprocess, "run", pytest.fail)
    with pytest.raises(SystemExit, match="--pin: a server already answers"):
        loadrun.main([*_args(), "--pin"])


def test_without_pin_nothing_is_pinned(monkeypatch):
    args = loadrun.argparse.Namespace(
        host="http://h",
        users=1,
        spawn_rate=1,
        run_time="1s",
        report_prefix="r",
        processes=1,
        pin=False,
    )
    assert loadrun.locust_command(args)[0] == str(loadrun.BIN / "locust")


def test_server_cpu_counts_live_and_reaped_children():
    busy = "import time\nt = time.process_time() + 0.3\nwhile time.process_time() < t: pass\n"
    before = loadrun.server_cpu_seconds(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", busy + "time.sleep(30)"])
    try:
        time.sleep(1.5)
        live = loadrun.server_cpu_seconds(os.getpid())
    finally:
        child.kill()
        child.wait()
    reaped = loadrun.server_cpu_seconds(os.getpid())
    assert live - before >= 0.25
    assert reaped >= live - 0.01  # a reaped worker's time stays counted (the master's cutime)
