"""Test helpers for the scale-out tests: servers of tools/topology.py and tools/cluster.py
(what `make cluster` runs) with a missing program turned into a skip naming its package,
Django's database pointed at them, plain HTTP requests."""

import contextlib
import http.client
import json
from collections.abc import Iterator

import pytest

from tools.topology import (  # noqa: F401  (re-exported for the tests)
    ROOT,
    START_TIMEOUT,
    MissingProgram,
    PgBouncer,
    PostgresServer,
    free_port,
    program_required,
    service_dir,
    wait_for_replay,
    wait_until,
)

REQUEST_TIMEOUT = 10.0


def executable(name: str, *, package: str) -> str:
    """Return the path of program ``name``, or skip the test naming the package to install."""
    try:
        return program_required(name, package=package)
    except MissingProgram as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def skipped_when_missing() -> Iterator[None]:
    """Turn a missing program (PostgreSQL, PgBouncer) into a skip that names its package."""
    try:
        yield
    except MissingProgram as exc:
        pytest.skip(str(exc))


@contextlib.contextmanager
def database_pointed_at(alias: str, **changes) -> Iterator[None]:
    """Point Django's database ``alias`` elsewhere for the block (this thread reconnects).

    The settings dict is shared by every thread's connection of the alias; a thread that
    connected before must close its connection to follow.
    """
    from django.db import connections

    settings_dict = connections[alias].settings_dict
    saved = {key: settings_dict[key] for key in changes if key in settings_dict}
    connections[alias].close()
    settings_dict.update(changes)
    try:
        yield
    finally:
        connections[alias].close()
        for key in changes:
            settings_dict.pop(key, None)
        settings_dict.update(saved)


# --- HTTP ------------------------------------------------------------------------------------


def http_request(
    method: str, port: int, path: str, *, body=None, headers=None
) -> tuple[int, dict, bytes]:
    """Send one request on a fresh connection; return (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    headers = dict(headers or {})
    payload = None
    if body is not None:
        payload = body if isinstance(body, bytes | str) else json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, raw
    finally:
        conn.close()


@contextlib.contextmanager
def started(*servers) -> Iterator[None]:
    """Start ``servers`` in order; stop them in reverse order afterwards, also on failure."""
    running = []
    try:
        for server in servers:
            server.start()
            running.append(server)
        yield
    finally:
        for server in reversed(running):
            with contextlib.suppress(Exception):
                server.stop()
