"""A topology whose program is missing says which package to install."""

import pytest

from tools import topology
from tools.topology import MissingProgram, program_required


@pytest.mark.parametrize(
    ("program", "package"), [("pgbouncer", "pgbouncer"), ("haproxy", "haproxy")]
)
def test_a_missing_daemon_names_its_package(monkeypatch, program, package):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(topology, "SBIN_DIRS", ())
    with pytest.raises(MissingProgram, match=f"install the Debian package '{package}'"):
        program_required(program, package=package)


def test_a_missing_postgresql_program_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(topology.shutil, "which", lambda name: None)
    monkeypatch.setattr(topology.subprocess, "run", _no_pg_config)
    monkeypatch.setitem(__import__("sys").modules, "pgserver._commands", None)
    with pytest.raises(MissingProgram, match="install the Debian package 'postgresql'"):
        topology.postgres_program("pg_basebackup")


def _no_pg_config(*args, **kwargs):
    raise OSError("pg_config: not found")
