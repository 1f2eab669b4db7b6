"""A throwaway local Citus cluster: a coordinator and N workers on free loopback ports.

``python tools/citus_cluster.py start [--dir D] [--workers 2] [--database carenotes]`` gives
each node its own initdb data directory under D (default ``.data/citus``), preloads citus,
trusts loopback, creates the database with ``CREATE EXTENSION citus`` on every node, registers
the coordinator and the workers on the coordinator, prints ``CITUS_URL=postgres://...`` on
stdout and leaves the servers running; ``stop --dir D`` stops them. Starting a directory whose
cluster is running (or stopped) reuses it. ``available`` says whether the citus extension is
installed for the PostgreSQL whose programs are used; this tool never builds it.
``register`` adds worker nodes to any coordinator (docker-compose.yml's ``citus-setup``);
``url`` prints the running cluster's coordinator URL (README, "Scale out on Citus").

The tests' ``citus_url`` fixture (conftest.py) reads CITUS_URL; .ci/run starts one cluster.
Programs, ports and the service account come from tools/topology.py.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from tools.devenv import pid_alive
from tools.topology import (
    SUPERUSER,
    MissingProgram,
    PostgresServer,
    free_port,
    postgres_program,
    run_as_service,
    service_account,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / ".data" / "citus"
DEFAULT_WORKERS = 2
DEFAULT_DATABASE = "carenotes"
STATE_FILE = "cluster.json"
COORDINATOR = "coordinator"
LOOPBACK = "127.0.0.1"
MIN_MAX_CONNECTIONS = 200
# A plain lower-case identifier: one spelling in SQL, URLs and the shell.
DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Every node; citus.max_client_connections is deliberately left at its default.
NODE_SETTINGS = {
    "listen_addresses": f"'{LOOPBACK}'",
    "unix_socket_directories": "''",
    "shared_preload_libraries": "'citus'",
    # The shard rebalancer moves shards by logical replication.
    "wal_level": "logical",
    # Each worker serves the coordinator's connections per shard on top of the clients'.
    "max_connections": str(MIN_MAX_CONNECTIONS),
    "shared_buffers": "64MB",
    # Throwaway data: a crash may lose it.
    "fsync": "off",
    "log_min_messages": "warning",
}


class ClusterError(RuntimeError):
    """The cluster cannot be started or stopped as asked (the message says what to do)."""


def postgres_directories() -> tuple[Path, Path] | None:
    """Return (sharedir, pkglibdir) of the PostgreSQL whose initdb is used, None if unknown."""
    try:
        bindir = Path(postgres_program("initdb")).resolve().parent
    except MissingProgram:
        return None
    pg_config = bindir / "pg_config"
    if not pg_config.exists():
        return None
    try:
        result = subprocess.run(
            [str(pg_config), "--sharedir", "--pkglibdir"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    sharedir, pkglibdir = result.stdout.split()
    return Path(sharedir), Path(pkglibdir)


def citus_available() -> bool:
    """Return whether the citus extension is installed for the PostgreSQL whose programs run."""
    directories = postgres_directories()
    if directories is None:
        return False
    sharedir, pkglibdir = directories
    return (sharedir / "extension" / "citus.control").is_file() and (
        pkglibdir / "citus.so"
    ).is_file()


def server_running(server: PostgresServer) -> bool:
    """Return whether the postmaster of ``server``'s data directory is alive."""
    pidfile = server.data_dir / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return pid_alive(pid)


def nodes_register(
    url: str, *, coordinator: tuple[str, int], workers: list[tuple[str, int]]
) -> None:
    """Register the coordinator's address and each worker on the coordinator at ``url``.

    Both Citus functions are idempotent: a node already registered keeps its id.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", coordinator)
        for worker in workers:
            conn.execute("SELECT citus_add_node(%s, %s)", worker)


@dataclass
class CitusCluster:
    """A coordinator and its workers, each a PostgreSQL server with its data under ``directory``."""

    directory: Path
    database: str
    coordinator: PostgresServer
    workers: list[PostgresServer] = field(default_factory=list)

    @property
    def nodes(self) -> list[PostgresServer]:
        """The coordinator, then the workers."""
        return [self.coordinator, *self.workers]

    @property
    def url(self) -> str:
        """The coordinator's DATABASE_URL."""
        return self.coordinator.url(self.database)

    @property
    def worker_urls(self) -> list[str]:
        """Each worker's URL of the same database, in worker order."""
        return [worker.url(self.database) for worker in self.workers]

    @classmethod
    def new(cls, directory: Path, *, workers: int, database: str) -> "CitusCluster":
        """Return a cluster not yet created: new node names and free ports."""
        return cls(
            directory=directory,
            database=database,
            coordinator=PostgresServer(directory / COORDINATOR, free_port()),
            workers=[
                PostgresServer(directory / f"worker-{number}", free_port())
                for number in range(1, workers + 1)
            ],
        )

    @classmethod
    def load(cls, directory: Path) -> "CitusCluster | None":
        """Return the cluster recorded in ``directory``, or None if there is none."""
        try:
            state = json.loads((directory / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ClusterError(
                f"{directory / STATE_FILE} is unreadable ({exc}): delete it"
            ) from exc
        servers = [
            PostgresServer(directory / node["name"], node["port"]) for node in state["nodes"]
        ]
        return cls(directory, state["database"], servers[0], servers[1:])

    def save(self) -> None:
        """Record the database and the nodes' names and ports in the directory's state file."""
        state = {
            "database": self.database,
            "nodes": [{"name": node.data_dir.name, "port": node.port} for node in self.nodes],
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def start(self) -> None:
        """Create the nodes that do not exist yet, start those not running, then set up Citus."""
        for node in self.nodes:
            if not (node.data_dir / "PG_VERSION").exists():
                _initdb(node)
            if not server_running(node):
                node.start()
        self.setup()

    def setup(self) -> None:
        """Create the database and the extension on every node; register the nodes."""
        for node in self.nodes:
            if not node.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]):
                node.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
            node.execute("CREATE EXTENSION IF NOT EXISTS citus", database=self.database)
        nodes_register(
            self.url,
            coordinator=(LOOPBACK, self.coordinator.port),
            workers=[(LOOPBACK, worker.port) for worker in self.workers],
        )

    def stop(self) -> None:
        """Stop every node that runs (fast shutdown); their data stays for a later start."""
        for node in reversed(self.nodes):
            if server_running(node):
                node.stop()

    def __enter__(self) -> "CitusCluster":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _initdb(node: PostgresServer) -> None:
    run_as_service(
        [
            postgres_program("initdb"),
            *("-D", str(node.data_dir), "-U", SUPERUSER, "--auth=trust"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
        ]
    )
    with (node.data_dir / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{name} = {value}\n" for name, value in NODE_SETTINGS.items())


def _prepare_directory(directory: Path) -> None:
    """Create ``directory`` for the account the servers run as; refuse one it cannot use."""
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    account = service_account()
    if account is None:
        return
    os.chown(directory, account.pw_uid, account.pw_gid)
    try:
        run_as_service(["sh", "-c", 'test -w "$0" && test -x "$0"', str(directory)])
    except RuntimeError:
        if created:
            directory.rmdir()
        raise ClusterError(
            f"{directory} is not usable by the account '{account.pw_name}' the servers run as "
            "under root (a parent directory is closed to it): choose a --dir it can enter, "
            "e.g. one made by `mktemp -d`"
        ) from None


def cluster_start(
    directory: Path = DEFAULT_DIR,
    *,
    workers: int = DEFAULT_WORKERS,
    database: str = DEFAULT_DATABASE,
) -> CitusCluster:
    """Start (or reuse) the cluster in ``directory``; return it running and set up."""
    if workers < 1:
        raise ClusterError(f"--workers must be a positive integer, got {workers}")
    if not DATABASE_NAME.fullmatch(database):
        raise ClusterError(
            f"--database must be a lower-case identifier (letters, digits, _), got {database!r}"
        )
    if not citus_available():
        raise MissingProgram(
            "the citus extension is not installed for this PostgreSQL "
            f"({postgres_directories() or 'pg_config not found'}): install Citus 13 for it"
        )
    directory = directory.resolve()
    _prepare_directory(directory)
    cluster = CitusCluster.load(directory)
    if cluster is None:
        cluster = CitusCluster.new(directory, workers=workers, database=database)
    elif (len(cluster.workers), cluster.database) != (workers, database):
        raise ClusterError(
            f"{directory} holds a cluster of {len(cluster.workers)} worker(s) with database "
            f"'{cluster.database}': start it with those options, or stop it and use another --dir"
        )
    # Recorded before anything starts, so `stop` finds whatever a failed start left running.
    cluster.save()
    cluster.start()
    return cluster


def cluster_stop(directory: Path = DEFAULT_DIR) -> CitusCluster:
    """Stop the cluster recorded in ``directory``; return it."""
    cluster = CitusCluster.load(directory.resolve())
    if cluster is None:
        raise ClusterError(f"no Citus cluster in {directory} ({STATE_FILE} is missing)")
    cluster.stop()
    return cluster


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """Return the command line's parser (docker-compose.yml's citus-setup uses `register`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start (or reuse) a cluster; print CITUS_URL=...")
    stop = sub.add_parser("stop", help="stop the cluster of --dir")
    url = sub.add_parser("url", help="print the coordinator's URL of the running cluster of --dir")
    for command in (start, stop, url):
        command.add_argument(
            "--dir", type=Path, default=DEFAULT_DIR, help="where the nodes' data live"
        )
    start.add_argument(
        "--workers", type=_positive, default=DEFAULT_WORKERS, help="how many worker nodes"
    )
    start.add_argument(
        "--database", default=DEFAULT_DATABASE, help="the database created on every node"
    )
    sub.add_parser("available", help="exit 0 when the citus extension is installed, else 1")
    register = sub.add_parser("register", help="add workers to a running coordinator")
    register.add_argument(
        "--url",
        default=os.environ.get("DATABASE_URL"),
        help="the coordinator's database URL (default: DATABASE_URL)",
    )
    register.add_argument(
        "--coordinator", type=_address, required=True, help="HOST:PORT workers reach it at"
    )
    register.add_argument(
        "--worker", type=_address, action="append", required=True, help="HOST:PORT, repeatable"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (2: refused, with the reason on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "available":
            found = citus_available()
            print("citus is installed" if found else "citus is not installed", file=sys.stderr)
            return 0 if found else 1
        if args.command == "register":
            if not args.url:
                parser.error("register needs --url or DATABASE_URL")
            nodes_register(args.url, coordinator=args.coordinator, workers=args.worker)
            return 0
        if args.command == "start":
            cluster = cluster_start(args.dir, workers=args.workers, database=args.database)
            ports = ", ".join(str(worker.port) for worker in cluster.workers)
            print(f"Citus in {cluster.directory}: workers on ports {ports}", file=sys.stderr)
            print(f"CITUS_URL={cluster.url}")
            return 0
        if args.command == "url":
            cluster = CitusCluster.load(args.dir)
            if cluster is None or not all(map(server_running, cluster.nodes)):
                raise ClusterError(f"no running cluster in {args.dir}: run `start` first")
            print(cluster.url)
            return 0
        cluster = cluster_stop(args.dir)
        print(f"stopped the Citus cluster in {cluster.directory}", file=sys.stderr)
        return 0
    except (ClusterError, MissingProgram) as exc:
        print(f"citus_cluster: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
