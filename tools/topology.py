"""Servers of a scale-out topology, started on free loopback ports: PostgreSQL primaries
(initdb) and streaming replicas (pg_basebackup -R), and PgBouncer (deploy/pgbouncer/).

Used by the scale-out tests (system_tests/) and their benchmark (bench/scaleout.py). Nothing
assumes one machine's layout: PostgreSQL's programs are found on PATH, through ``pg_config
--bindir`` or in the embedded ``pgserver`` package; PgBouncer and HAProxy on PATH and in the
sbin directories Debian installs them to. A missing program raises MissingProgram naming the
package to install. PostgreSQL and PgBouncer refuse to run as root, so under root they run
as the ``postgres`` account (or ``nobody``), in directories that account owns.
"""

import contextlib
import getpass
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
START_TIMEOUT = 60.0
# Debian installs daemons outside a normal user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
SERVICE_ACCOUNTS = ("postgres", "nobody")


class MissingProgram(RuntimeError):
    """A program a topology needs is not installed (the message names the package)."""


def find_program(name: str) -> str | None:
    """Return the path of program ``name`` on PATH or in the sbin directories, else None."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    return shutil.which(name, path=path)


def program_required(name: str, *, package: str) -> str:
    """Return the path of program ``name``; raise MissingProgram naming ``package``."""
    found = find_program(name)
    if found is None:
        raise MissingProgram(f"{name} is not installed: install the Debian package '{package}'")
    return found


# Ports this process has handed out. A port is only reserved once its server binds it, and
# the kernel may offer a just-closed port again: without this, two servers of one topology
# chosen before either starts could be given the same port (HAProxy's status port and a node).
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """Return a loopback TCP port nothing listens on, never the same one twice per process."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def postgres_program(name: str) -> str:
    """Return a PostgreSQL program (initdb, pg_ctl, pg_basebackup) of one installation."""
    found = shutil.which(name)
    if found:
        return found
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(bindir) / name).exists():
            return str(Path(bindir) / name)
    with contextlib.suppress(ImportError):
        from pgserver._commands import POSTGRES_BIN_PATH

        if (POSTGRES_BIN_PATH / name).exists():
            return str(POSTGRES_BIN_PATH / name)
    raise MissingProgram(
        f"PostgreSQL's {name} is not installed: install the Debian package 'postgresql'"
    )


def service_account() -> pwd.struct_passwd | None:
    """Return the account daemons run as when this process is root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_ACCOUNTS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise MissingProgram("running as root with neither a 'postgres' nor a 'nobody' account")


def service_dir(prefix: str) -> Path:
    """Return a new directory the service account owns (a root-only temp dir would not do)."""
    path = Path(tempfile.mkdtemp(prefix=f"carenotes-{prefix}-"))
    account = service_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)
    return path


def _as_service(**kwargs) -> dict:
    account = service_account()
    if account is None:
        return kwargs
    # Its own HOME: a server's libpq (Citus connecting to its workers) looks for client
    # certificates under $HOME/.postgresql, and root's home is closed to the account.
    env = {**kwargs.pop("env", os.environ), "HOME": account.pw_dir}
    return {
        **kwargs,
        "env": env,
        "user": account.pw_uid,
        "group": account.pw_gid,
        "extra_groups": [],
    }


def run_as_service(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a command as the service account; raise with its output if it fails."""
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=START_TIMEOUT, **_as_service(**kwargs)
    )
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stderr}")
    return result


def wait_until(predicate, *, timeout: float, message: str, interval: float = 0.05) -> None:
    """Return once ``predicate()`` holds; raise TimeoutError(message) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(interval)


# --- PostgreSQL -------------------------------------------------------------------------------

# A throwaway cluster: fast and small, streaming to its replicas over loopback.
PRIMARY_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "wal_level": "replica",
    "max_wal_senders": "5",
    "hot_standby": "on",
    "hot_standby_feedback": "on",
    "wal_receiver_status_interval": "1s",
    "fsync": "off",
    "shared_buffers": "32MB",
    "max_connections": "60",
    "log_min_messages": "warning",
}
SUPERUSER = "postgres"


@dataclass
class PostgresServer:
    """A PostgreSQL server of its own: a new primary (initdb), or a streaming replica of one."""

    data_dir: Path
    port: int = field(default_factory=free_port)

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @classmethod
    def primary(cls) -> "PostgresServer":
        """Create (initdb) a new cluster; call ``start`` next."""
        server = cls(service_dir("pg") / "primary")
        run_as_service(
            [
                postgres_program("initdb"),
                *("-D", str(server.data_dir), "-U", SUPERUSER, "--auth=trust"),
                *("-E", "UTF8", "--locale=C", "--no-sync"),
            ]
        )
        with (server.data_dir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in PRIMARY_SETTINGS.items())
        return server

    def replica(self) -> "PostgresServer":
        """Return a streaming replica of this running server (pg_basebackup -R); call start."""
        replica = PostgresServer(self.data_dir.parent / f"replica-{free_port()}")
        run_as_service(
            [
                postgres_program("pg_basebackup"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER),
                *("-D", str(replica.data_dir), "-R", "-X", "stream", "-c", "fast"),
            ]
        )
        return replica

    def start(self) -> None:
        run_as_service(
            [
                postgres_program("pg_ctl"),
                *("-D", str(self.data_dir), "-l", str(self.log_path), "-w"),
                *("-t", str(int(START_TIMEOUT)), "-o", f"-p {self.port}", "start"),
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            run_as_service(
                [postgres_program("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]
            )

    def url(self, database: str = "postgres") -> str:
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, params=(), *, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser on a fresh connection; return its rows."""
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def wait_for_replay(primary: PostgresServer, replica: PostgresServer, database: str) -> None:
    """Wait until ``replica`` has replayed everything ``primary`` has written so far."""
    (target,) = primary.execute("SELECT pg_current_wal_insert_lsn()", database=database)[0]
    wait_until(
        lambda: replica.execute(
            "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target], database=database
        )[0][0],
        timeout=START_TIMEOUT,
        message="the replica did not catch up with the primary",
    )


# --- PgBouncer --------------------------------------------------------------------------------


@dataclass
class PgBouncer:
    """PgBouncer in front of one database, configured by deploy/pgbouncer/configure.sh."""

    # Where the pooled database is: host (or socket directory), port, name, user, password.
    target: dict[str, str]
    pool_mode: str = "transaction"
    pool_size: int = 1
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    run_dir: Path | None = None

    @classmethod
    def in_front_of(cls, settings_dict: dict, **kwargs) -> "PgBouncer":
        """Return a PgBouncer for the database a Django settings dict connects to."""
        target = {
            "host": settings_dict["HOST"] or "127.0.0.1",
            "port": str(settings_dict["PORT"] or 5432),
            "name": settings_dict["NAME"],
            "user": settings_dict["USER"] or getpass.getuser(),
            "password": settings_dict["PASSWORD"] or "",
        }
        return cls(target=target, **kwargs)

    def configure(self, run_dir: Path) -> Path:
        """Write the deploy script's pgbouncer.ini for the target database; return its path."""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PGBOUNCER_LISTEN_ADDR": "127.0.0.1",
            "PGBOUNCER_LISTEN_PORT": str(self.port),
            "PGBOUNCER_DB_HOST": self.target["host"],
            "PGBOUNCER_DB_PORT": self.target["port"],
            "PGBOUNCER_DB_NAME": self.target["name"],
            "PGBOUNCER_DB_USER": self.target["user"],
            "PGBOUNCER_DB_PASSWORD": self.target["password"],
            # The test servers trust loopback; the login above is PgBouncer's own.
            "PGBOUNCER_AUTH_TYPE": "any",
            "PGBOUNCER_POOL_MODE": self.pool_mode,
            "PGBOUNCER_DEFAULT_POOL_SIZE": str(self.pool_size),
            "PGBOUNCER_RUN_DIR": str(run_dir),
        }
        subprocess.run(["sh", str(DEPLOY / "pgbouncer" / "configure.sh")], env=env, check=True)
        return run_dir / "pgbouncer.ini"

    def start(self) -> None:
        program = program_required("pgbouncer", package="pgbouncer")
        run_dir = self.run_dir = service_dir("pgbouncer")
        config = self.configure(run_dir)
        self.log_path = run_dir / "pgbouncer.log"
        self.process = subprocess.Popen(
            [program, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            **_as_service(),
        )
        wait_until(
            self._answers, timeout=START_TIMEOUT, message=f"pgbouncer did not start: {self._log()}"
        )

    def _log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else "(no log)"

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited: {self._log()}")
        try:
            with psycopg.connect(self.url(), autocommit=True, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def url(self) -> str:
        return f"postgres://pooler@127.0.0.1:{self.port}/{self.target['name']}"

    def settings_changes(self) -> dict:
        """Return what points a Django settings dict at this PgBouncer."""
        return {"HOST": "127.0.0.1", "PORT": str(self.port), "USER": "pooler", "PASSWORD": ""}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=START_TIMEOUT)
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
