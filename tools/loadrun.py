"""Run a locust load test against carenotes, serving it with gunicorn first if nothing answers.

`make load` calls this under tools/devenv.py, after `migrate` and `collectstatic`:

    python tools/loadrun.py --host http://127.0.0.1:8000 --profile seed --users 50 ...

When ``--host`` answers ``/healthz`` that server is used as it is. Otherwise a loopback host
gets a gunicorn started here with gunicorn.conf.py (the `make run` configuration), logging
to ``<report prefix>-server.log``, stopped again afterwards. ``--pin`` runs that gunicorn
(master and workers) on CPU 0 and locust on CPU 1 (``taskset``), so the server's cost is
measured on one core of its own: gunicorn.conf.py then sizes its workers for one CPU. The
demo credentials are seeded first when missing. The exit code is locust's (set by the
locustfile's verdict); the last lines printed are that verdict: every target with its
measured value and bound, the missed ones last, and the server's CPU per request.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tools.load_profile import (
    CREDENTIALS_PATH,
    MAX_P95_MS_VARIABLE,
    MIN_THROUGHPUT_RATIO_VARIABLE,
    PROFILES,
    SEED_COMMAND_HINT,
    BoundError,
    load_bounds,
    verdict_lines,
)

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
READY_TIMEOUT_SECONDS = 60.0
PROBE_TIMEOUT_SECONDS = 2.0
STOP_TIMEOUT_SECONDS = 30.0
# --pin: the server's CPU and the load generator's (taskset -c), on a machine of 2 or more.
PIN_SERVER_CPU = 0
PIN_GENERATOR_CPU = 1
# The same seeding as `make run`: only into an empty database.
SEED_COMMAND = ["manage.py", "seed_notes", "--if-empty", "--quiet"]


def _say(message: str) -> None:
    print(f"[loadrun] {message}", file=sys.stderr, flush=True)


def answers(url: str) -> bool:
    """Return True when ``url`` answers 200 within PROBE_TIMEOUT_SECONDS."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_SECONDS) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def pinned(command: list[str], *, cpu: int | None) -> list[str]:
    """Return ``command`` run on CPU ``cpu`` only (``taskset -c``; its children inherit it)."""
    if cpu is None:
        return command
    return ["taskset", "--cpu-list", str(cpu), *command]


def pin_check() -> str | None:
    """Return why --pin cannot work here, or None when it can."""
    if shutil.which("taskset") is None:
        return "--pin needs taskset (util-linux)"
    allowed = os.sched_getaffinity(0)
    if not {PIN_SERVER_CPU, PIN_GENERATOR_CPU} <= allowed:
        return (
            f"--pin runs the server on CPU {PIN_SERVER_CPU} and locust on CPU "
            f"{PIN_GENERATOR_CPU}; this process may only use CPUs {sorted(allowed)}"
        )
    return None


def server_start(*, host: str, log_path: Path, cpu: int | None = None) -> subprocess.Popen:
    """Start gunicorn (gunicorn.conf.py) on ``host``'s address; return once /readyz is 200.

    ``cpu``: the one CPU the server (master and workers) runs on; None for any.
    """
    parts = urlsplit(host)
    if parts.hostname not in LOOPBACK_HOSTS:
        raise SystemExit(f"nothing answers at {host}, and only a loopback server can be started")
    bind = f"{parts.hostname}:{parts.port or 80}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(BIN / "gunicorn"),
        "--config",
        "gunicorn.conf.py",
        "--bind",
        bind,
        "carenotes.wsgi",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            pinned(command, cpu=cpu),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not answers(f"{host}/readyz"):
        if process.poll() is not None or time.monotonic() > deadline:
            server_stop(process)
            raise SystemExit(f"gunicorn did not become ready on {bind}; see {log_path}")
        time.sleep(0.2)
    _say(f"gunicorn serving {host} (pid {process.pid}, log {log_path})")
    return process


def server_stop(process: subprocess.Popen) -> None:
    """Stop the gunicorn we started: graceful SIGTERM, SIGKILL if it outlives the grace."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _proc_cpu_ticks(pid: int, *, reaped: bool) -> int:
    """Return a process's CPU ticks from /proc (with its reaped children's when ``reaped``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")": state is field 3 of proc(5), so utime (14) is [11] ... cstime (17) is [14].
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return utime + stime + (cutime + cstime if reaped else 0)


def server_cpu_seconds(pid: int) -> float:
    """Return the CPU seconds gunicorn has used: the master, its live workers, reaped ones.

    A recycled worker's time moves into the master's children's times when it is reaped, so
    the total only grows.
    """
    ticks = _proc_cpu_ticks(pid, reaped=True)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            ticks += _proc_cpu_ticks(int(child), reaped=True)
        except (OSError, ValueError):
            continue  # exited between the listing and the read: counted when reaped
    return ticks / os.sysconf("SC_CLK_TCK")


def server_cost(*, cpu_seconds: float, wall_seconds: float, requests: int, cpu: int | None):
    """Return the server's share of the run: CPU per request, cores kept busy, its pinning."""
    return {
        "pinned_cpu": cpu,
        "cpu_seconds": round(cpu_seconds, 2),
        "core_share": round(cpu_seconds / wall_seconds, 3) if wall_seconds else None,
        "cpu_ms_per_request": round(cpu_seconds * 1000 / requests, 3) if requests else None,
    }


def summary_add_server(summary_path: Path, server: dict) -> None:
    """Add the server's cost to the run's summary, when locust wrote one."""
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return  # verdict_report says why there is none
    summary["server"] = server
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")


def _requests_made(summary_path: Path) -> int:
    try:
        return int(json.loads(summary_path.read_text())["requests"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def credentials_ensure(path: Path) -> None:
    """Seed the demo tenants when their credentials file is missing."""
    if path.exists():
        return
    _say(f"{path} is missing: seeding the demo data")
    subprocess.run([sys.executable, *SEED_COMMAND], cwd=ROOT, check=True)
    if not path.exists():
        raise SystemExit(
            f"the seed wrote no {path}: the database already holds data. Run "
            f"`{SEED_COMMAND_HINT}` (replaces the demo data) or pass --credentials."
        )


def locust_command(args: argparse.Namespace) -> list[str]:
    """Return the headless locust command line writing CSV and HTML under the report prefix.

    With ``--pin`` it runs on PIN_GENERATOR_CPU (its worker processes too).
    """
    command = [
        str(BIN / "locust"),
        "-f",
        str(ROOT / "locustfile.py"),
        "--headless",
        "--host",
        args.host,
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn_rate),
        "--run-time",
        args.run_time,
        "--csv",
        args.report_prefix,
        "--html",
        f"{args.report_prefix}.html",
        "--only-summary",
    ]
    if args.processes > 1:
        command += ["--processes", str(args.processes)]
    return pinned(command, cpu=PIN_GENERATOR_CPU if args.pin else None)


def verdict_report(summary_path: Path, *, returncode: int) -> list[str]:
    """Return the closing lines of a run: its verdict from the summary, or why there is none."""
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError):
        return [
            f"FAILED: locust exited {returncode} without writing {summary_path}; "
            "its own messages above say why"
        ]
    lines = verdict_lines(summary)
    server = summary.get("server")
    if server and server["cpu_ms_per_request"] is not None:
        where = "any CPU" if server["pinned_cpu"] is None else f"CPU {server['pinned_cpu']} only"
        lines.append(
            f"server ({where}): {server['cpu_ms_per_request']:.2f} ms of CPU per request, "
            f"{server['core_share']:.2f} cores busy"
        )
    return [*lines, f"reports: {summary_path.parent}/ (locust exit {returncode})"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--profile", choices=PROFILES, default=PROFILES[0])
    parser.add_argument("--users", type=int, default=50, help="concurrent simulated users")
    parser.add_argument("--spawn-rate", type=float, default=50, help="users started per second")
    parser.add_argument("--run-time", default="60s", help="locust duration, e.g. 60s or 2m")
    parser.add_argument("--processes", type=int, default=1, help="locust worker processes")
    parser.add_argument(
        "--max-p95-ms",
        type=float,
        default=None,
        help=f"fail when p95 exceeds (ms; default per profile, as {MAX_P95_MS_VARIABLE})",
    )
    parser.add_argument(
        "--min-throughput-ratio",
        type=float,
        default=None,
        help="fail when req/s falls below this share of what the users offer (seed profile; "
        f"default per profile, as {MIN_THROUGHPUT_RATIO_VARIABLE})",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help=f"serve on CPU {PIN_SERVER_CPU} only and run locust on CPU {PIN_GENERATOR_CPU} "
        "(taskset); needs a server started here, so nothing may answer at --host yet",
    )
    parser.add_argument("--credentials", type=Path, default=CREDENTIALS_PATH)
    parser.add_argument("--report-prefix", default=None, help="default reports/load-<profile>")
    args = parser.parse_args(argv)
    args.host = args.host.rstrip("/")
    args.report_prefix = args.report_prefix or f"reports/load-{args.profile}"
    Path(args.report_prefix).parent.mkdir(parents=True, exist_ok=True)
    overrides = {
        MAX_P95_MS_VARIABLE: "" if args.max_p95_ms is None else str(args.max_p95_ms),
        MIN_THROUGHPUT_RATIO_VARIABLE: ""
        if args.min_throughput_ratio is None
        else str(args.min_throughput_ratio),
    }
    try:
        bounds = load_bounds(args.profile, overrides)
    except BoundError as exc:
        parser.error(str(exc))
    if args.pin and (problem := pin_check()):
        parser.error(problem)
    summary_path = Path(f"{args.report_prefix}-summary.json")
    # A summary left by an earlier run must not pass for this one's.
    summary_path.unlink(missing_ok=True)

    credentials_ensure(args.credentials)
    server = None
    if answers(f"{args.host}/healthz"):
        if args.pin:
            # Pinning a server started elsewhere would measure something else than asked.
            raise SystemExit(
                f"--pin: a server already answers at {args.host}; stop it (make stop) so that "
                "the run starts one on its own CPU, or drop --pin"
            )
        _say(f"using the server already answering at {args.host}")
    else:
        server = server_start(
            host=args.host,
            log_path=Path(f"{args.report_prefix}-server.log"),
            cpu=PIN_SERVER_CPU if args.pin else None,
        )
    try:
        env = {
            **os.environ,
            "LOAD_PROFILE": args.profile,
            MAX_P95_MS_VARIABLE: str(bounds.max_p95_ms),
            MIN_THROUGHPUT_RATIO_VARIABLE: str(bounds.min_throughput_ratio),
            "LOAD_CREDENTIALS": str(args.credentials),
            "LOAD_REPORT_PREFIX": args.report_prefix,
        }
        started = time.monotonic()
        cpu_before = server_cpu_seconds(server.pid) if server is not None else 0.0
        result = subprocess.run(locust_command(args), cwd=ROOT, env=env, check=False)
        if server is not None:
            summary_add_server(
                summary_path,
                server_cost(
                    cpu_seconds=server_cpu_seconds(server.pid) - cpu_before,
                    wall_seconds=time.monotonic() - started,
                    requests=_requests_made(summary_path),
                    cpu=PIN_SERVER_CPU if args.pin else None,
                ),
            )
    finally:
        if server is not None:
            server_stop(server)
    for line in verdict_report(summary_path, returncode=result.returncode):
        _say(line)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
