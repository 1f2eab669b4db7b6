"""Databases on the Citus cluster of CITUS_URL for the citus tests, and commands run on them.

Each test module gets databases of its own, created on the coordinator and on every worker
with the citus extension, the workers registered on the coordinator (Citus keeps its node
list per database). The application runs on them in processes of their own (``manage.py``,
``system_tests.citus_probe``): the suite's own process is bound to its test database.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from tools.citus_databases import database_url

ROOT = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT = 600
# One seed for the plain and the distributed database: the same tenants, notes and days.
SEED_ARGS = [
    "--notes", "6000", "--tenants", "3", "--seed", "16", "--end-date", "2026-11-30",
    "--days", "60",
]  # fmt: skip


def plain_database_create(url: str, name: str) -> str:
    """Create database ``name`` afresh on the plain PostgreSQL server of ``url``."""
    admin = database_url(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(url, dbname=name)


def plain_database_drop(url: str, name: str) -> None:
    with psycopg.connect(database_url(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _environment(url: str, *, citus: bool, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DATABASE_CITUS": "1" if citus else "0",
        "DATABASE_TEST_NAME": "",
        "DJANGO_DEBUG": "1",
        "CACHE_KEY_PREFIX": prefix,
    }


def _run(url: str, argv: list[str], *, citus: bool, prefix: str) -> str:
    """Run ``python argv`` on database ``url``; return its output, raise on failure."""
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=ROOT,
        env=_environment(url, citus=citus, prefix=prefix),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def manage(url: str, *args: str, citus: bool, prefix: str) -> str:
    """Run ``manage.py *args`` on database ``url``; return its output, raise on failure."""
    return _run(url, ["manage.py", *args], citus=citus, prefix=prefix)


def probe(url: str, name: str, credentials: Path, *, citus: bool, prefix: str) -> dict:
    """Run probe ``name`` of system_tests/citus_probe.py on ``url``; return its JSON."""
    argv = ["-m", "system_tests.citus_probe", name, str(credentials)]
    output = _run(url, argv, citus=citus, prefix=prefix)
    return json.loads(output.strip().splitlines()[-1])


def shard_placements(url: str) -> dict[str, set[int]]:
    """Return, per distributed table, the ports of the workers holding its shards."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name::text, nodeport FROM citus_shards "
            "WHERE citus_table_type = 'distributed'"
        ).fetchall()
    placements: dict[str, set[int]] = {}
    for table, port in rows:
        placements.setdefault(table, set()).add(port)
    return placements
