"""tools/citus_cluster.py: a throwaway Citus coordinator and workers, started, used and stopped.

The cluster tests need the citus extension installed for this machine's PostgreSQL (they skip
otherwise); the others check the tool's refusals and the ``citus_url`` fixture without it.
"""

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tools import citus_cluster
from tools.citus_cluster import (
    LOOPBACK,
    MIN_MAX_CONNECTIONS,
    STATE_FILE,
    ClusterError,
    cluster_start,
    cluster_stop,
    server_running,
)
from tools.topology import MissingProgram, service_account, service_dir

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "citus_cluster.py"
DATABASE = "wtcluster"
NO_CITUS = "the citus extension is not installed for this machine's PostgreSQL"


def needs_citus(test):
    """Mark ``test`` as a Citus test, skipped when the extension is not installed."""
    return pytest.mark.citus(
        pytest.mark.skipif(not citus_cluster.citus_available(), reason=NO_CITUS)(test)
    )


def _rows(url: str, statement: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def _processes_mentioning(path: Path) -> list[str]:
    """Return the command lines of this machine's processes that name ``path``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if str(path) in cmdline:
                found.append(cmdline)
    return found


def _refuses_connections(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        return True
    return False


def _cli(*args: str) -> subprocess.CompletedProcess:
    # PYTHONPATH: this checkout's tools package, whichever checkout the venv was installed from.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=180
    )


@pytest.fixture(scope="module")
def cluster_dir():
    """A directory the servers' account owns (pytest's tmp_path is closed to it under root)."""
    path = service_dir("citus-test")
    yield path
    with contextlib.suppress(ClusterError):
        cluster_stop(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster(cluster_dir):
    """The module's two-worker cluster, running (started the first time, reused afterwards)."""
    return cluster_start(cluster_dir, workers=2, database=DATABASE)


@needs_citus
def test_the_coordinator_sees_both_workers_active(cluster):
    active = _rows(
        cluster.url,
        "SELECT node_name, node_port FROM citus_get_active_worker_nodes() ORDER BY node_port",
    )
    assert active == sorted((LOOPBACK, worker.port) for worker in cluster.workers)
    assert len(cluster.worker_urls) == 2
    assert _rows(cluster.url, "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid = 0") == [
        (LOOPBACK, cluster.coordinator.port)
    ]


@needs_citus
def test_a_distributed_table_has_shards_and_rows_on_both_workers(cluster):
    _rows(cluster.url, "CREATE TABLE probe (tenant_id bigint NOT NULL, body text)")
    try:
        _rows(cluster.url, "SELECT create_distributed_table('probe', 'tenant_id')")
        _rows(cluster.url, "INSERT INTO probe SELECT i, 'note' FROM generate_series(1, 100) i")
        shards = _rows(
            cluster.url,
            "SELECT shard_name, nodeport FROM citus_shards WHERE table_name = 'probe'::regclass",
        )
        assert {port for _, port in shards} == {worker.port for worker in cluster.workers}
        counts = {}
        for worker, url in zip(cluster.workers, cluster.worker_urls, strict=True):
            names = [name for name, port in shards if port == worker.port]
            counts[worker.port] = sum(
                _rows(url, f"SELECT count(*) FROM {name}")[0][0] for name in names
            )
        assert sum(counts.values()) == 100
        assert all(counts.values()), counts
        assert _rows(cluster.url, "SELECT count(*) FROM probe") == [(100,)]
    finally:
        _rows(cluster.url, "DROP TABLE IF EXISTS probe")


@needs_citus
def test_every_node_is_configured_for_citus_and_the_rebalancer(cluster):
    for url in [cluster.url, *cluster.worker_urls]:
        settings = dict(
            _rows(
                url,
                "SELECT name, setting FROM pg_settings WHERE name IN ('wal_level', "
                "'max_connections', 'shared_preload_libraries', 'citus.max_client_connections')",
            )
        )
        assert settings["wal_level"] == "logical"
        assert int(settings["max_connections"]) >= MIN_MAX_CONNECTIONS
        assert settings["shared_preload_libraries"] == "citus"
        assert settings["citus.max_client_connections"] == "-1"  # Citus's default, untouched
        assert _rows(url, "SELECT extname FROM pg_extension WHERE extname = 'citus'") == [
            ("citus",)
        ]


@needs_citus
def test_starting_a_running_cluster_again_reuses_its_servers(cluster):
    started = _rows(cluster.url, "SELECT pg_postmaster_start_time()")
    again = cluster_start(cluster.directory, workers=2, database=DATABASE)
    assert (again.url, again.worker_urls) == (cluster.url, cluster.worker_urls)
    assert _rows(cluster.url, "SELECT pg_postmaster_start_time()") == started
    assert _rows(cluster.url, "SELECT count(*) FROM citus_get_active_worker_nodes()") == [(2,)]
    with pytest.raises(ClusterError, match="holds a cluster of 2 worker"):
        cluster_start(cluster.directory, workers=3, database=DATABASE)


@needs_citus
def test_stop_leaves_nothing_running(cluster):
    cluster.stop()
    assert [node.port for node in cluster.nodes if server_running(node)] == []
    assert _processes_mentioning(cluster.directory) == []
    assert all(_refuses_connections(url) for url in [cluster.url, *cluster.worker_urls])


@needs_citus
def test_the_command_line_starts_reuses_and_stops_a_cluster():
    directory = service_dir("citus-cli")
    try:
        args = ("--dir", str(directory), "--workers", "1", "--database", "wtcluster_cli")
        start = _cli("start", *args)
        assert start.returncode == 0, start.stderr
        (line,) = start.stdout.splitlines()
        assert line.startswith(f"CITUS_URL=postgres://postgres@{LOOPBACK}:")
        url = line.removeprefix("CITUS_URL=")
        # The command has exited; the servers it started still serve.
        assert _rows(url, "SELECT current_database()") == [("wtcluster_cli",)]
        assert _rows(url, "SELECT count(*) FROM citus_get_active_worker_nodes()") == [(1,)]
        started = _rows(url, "SELECT pg_postmaster_start_time()")
        again = _cli("start", *args)
        assert (again.returncode, again.stdout) == (0, start.stdout)
        assert _rows(url, "SELECT pg_postmaster_start_time()") == started
        stop = _cli("stop", "--dir", str(directory))
        assert stop.returncode == 0, stop.stderr
        assert _processes_mentioning(directory) == []
        assert _refuses_connections(url)
    finally:
        with contextlib.suppress(ClusterError):
            cluster_stop(directory)
        shutil.rmtree(directory, ignore_errors=True)


# --- Without the extension ---------------------------------------------------------------------


def test_citus_is_available_only_with_its_control_file_and_library(monkeypatch, tmp_path):
    sharedir, pkglibdir = tmp_path / "share", tmp_path / "lib"
    (sharedir / "extension").mkdir(parents=True)
    pkglibdir.mkdir()
    monkeypatch.setattr(citus_cluster, "postgres_directories", lambda: (sharedir, pkglibdir))
    assert not citus_cluster.citus_available()
    (sharedir / "extension" / "citus.control").write_text("module_pathname = '$libdir/citus'\n")
    assert not citus_cluster.citus_available()
    (pkglibdir / "citus.so").write_bytes(b"")
    assert citus_cluster.citus_available()
    monkeypatch.setattr(citus_cluster, "postgres_directories", lambda: None)
    assert not citus_cluster.citus_available()


def test_the_directories_are_those_of_the_postgresql_that_runs(monkeypatch):
    def missing(name):
        raise MissingProgram(f"{name} is missing")

    monkeypatch.setattr(citus_cluster, "postgres_program", missing)
    assert citus_cluster.postgres_directories() is None
    assert not citus_cluster.citus_available()


def test_start_without_the_extension_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(citus_cluster, "citus_available", lambda: False)
    with pytest.raises(MissingProgram, match="citus extension is not installed"):
        cluster_start(tmp_path / "citus")
    assert not (tmp_path / "citus").exists()


@pytest.mark.parametrize(("installed", "code"), [(True, 0), (False, 1)])
def test_available_exits_0_only_when_citus_is_installed(monkeypatch, capsys, installed, code):
    monkeypatch.setattr(citus_cluster, "citus_available", lambda: installed)
    assert citus_cluster.main(["available"]) == code
    assert capsys.readouterr().err == f"citus is {'' if installed else 'not '}installed\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 0}, "--workers must be a positive integer, got 0"),
        ({"database": "Bad-Name"}, "--database must be a lower-case identifier"),
        ({"database": "x; DROP DATABASE postgres"}, "--database must be a lower-case identifier"),
    ],
)
def test_bad_start_options_are_refused_naming_them(tmp_path, options, message):
    with pytest.raises(ClusterError, match=message):
        cluster_start(tmp_path / "citus", **options)
    assert not (tmp_path / "citus").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "--workers", "0"], "--workers: must be a positive integer, got '0'"),
        (["start", "--workers", "two"], "--workers: must be a positive integer, got 'two'"),
        (["register", "--coordinator", "nohost", "--worker", "w:1"], "expected HOST:PORT"),
        (["register", "--coordinator", "c:5432", "--worker", "w:99999"], "expected HOST:PORT"),
        (["register", "--url", "", "--coordinator", "c:1", "--worker", "w:1"], "needs --url"),
    ],
)
def test_bad_command_lines_exit_2_naming_the_argument(capsys, args, message):
    with pytest.raises(SystemExit) as exited:
        citus_cluster.main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_stopping_a_directory_without_a_cluster_says_so(capsys, tmp_path):
    assert citus_cluster.main(["stop", "--dir", str(tmp_path)]) == 2
    assert f"no Citus cluster in {tmp_path} ({STATE_FILE} is missing)" in capsys.readouterr().err


def test_a_corrupt_state_file_is_named(tmp_path):
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(ClusterError, match=f"{STATE_FILE} is unreadable"):
        cluster_stop(tmp_path)


@pytest.mark.skipif(service_account() is None, reason="only root runs the servers as another user")
def test_a_directory_closed_to_the_servers_account_is_refused(tmp_path):
    # pytest's tmp_path lies under a directory only root may enter.
    closed = tmp_path / "citus"
    with pytest.raises(ClusterError, match="is not usable by the account"):
        citus_cluster._prepare_directory(closed)
    assert not closed.exists()


@pytest.mark.parametrize("citus_url", ["", "postgres://postgres@127.0.0.1:1/carenotes"])
def test_the_citus_url_fixture_skips_naming_the_command_or_returns_the_url(tmp_path, citus_url):
    test_file = tmp_path / "test_fixture.py"
    test_file.write_text(f"def test_url(citus_url):\n    assert citus_url == {citus_url!r}\n")
    env = {key: value for key, value in os.environ.items() if key != "CITUS_URL"}
    if citus_url:
        env["CITUS_URL"] = citus_url
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "conftest",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(ROOT),
            "-p",
            "no:cacheprovider",
            "-rs",
            "-q",
            str(test_file),
        ],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if citus_url:
        assert "1 passed" in result.stdout, result.stdout + result.stderr
    else:
        assert "1 skipped" in result.stdout, result.stdout + result.stderr
        assert (
            "CITUS_URL is not set: start a cluster with `python tools/citus_cluster.py start`"
            in (result.stdout)
        )
