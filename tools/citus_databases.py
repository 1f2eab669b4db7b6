"""Databases on a Citus cluster: one name on the coordinator and on every worker.

Citus keeps its node list per database: a new database needs the extension on every node
and its workers registered on the coordinator. Used by the citus tests
(system_tests/citus.py) and the Citus benchmark (bench/citus.py).
"""

from urllib.parse import urlsplit, urlunsplit

import psycopg


def database_url(url: str, *, host=None, port=None, dbname=None, user=None) -> str:
    """Return postgres URL ``url`` with another host, port, database or user."""
    parts = urlsplit(url)
    account = user or parts.username or ""
    if parts.password and not user:
        account += f":{parts.password}"
    netloc = f"{account}@" if account else ""
    netloc += f"{host or parts.hostname or '127.0.0.1'}:{port or parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, f"/{dbname}" if dbname else parts.path, "", ""))


def cluster_nodes(citus_url: str) -> list[tuple[str, int]]:
    """Return (host, port) of the coordinator of CITUS_URL and of its active workers."""
    parts = urlsplit(citus_url)
    with psycopg.connect(citus_url, autocommit=True) as conn:
        workers = conn.execute(
            "SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY node_port"
        ).fetchall()
    return [(parts.hostname or "127.0.0.1", parts.port or 5432), *workers]


def cluster_database_create(citus_url: str, name: str) -> str:
    """Create database ``name`` afresh on every node of the cluster; return its URL."""
    nodes = cluster_nodes(citus_url)
    for host, port in nodes:
        admin = database_url(citus_url, host=host, port=port, dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(database_url(admin, dbname=name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION citus")
    (host, port), *workers = nodes
    url = database_url(citus_url, dbname=name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT citus_set_coordinator_host(%s, %s)", [host, port])
        for worker in workers:
            conn.execute("SELECT citus_add_node(%s, %s)", list(worker))
    return url


def cluster_database_drop(citus_url: str, name: str) -> None:
    """Drop database ``name`` on every node (workers first: the coordinator holds no lock)."""
    for host, port in reversed(cluster_nodes(citus_url)):
        admin = database_url(citus_url, host=host, port=port, dbname="postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cluster_database_exists(citus_url: str, name: str) -> bool:
    """Return True when database ``name`` exists on the coordinator of ``citus_url``."""
    with psycopg.connect(citus_url, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    return found is not None
