"""docker-compose.yml's scale-out topology, read (no Docker engine here): two web nodes behind
an HAProxy `lb`, optional `replica` and `pgbouncer` profiles, configured only by variables,
each with a healthcheck, every file it mounts or builds present."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from system_tests.scaleout import executable

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# One-shot jobs and the load generator need no healthcheck.
RUN_ONCE = {"migrate", "seed", "locust"}
VARIABLE = re.compile(r"\$\{[A-Z0-9_]+(:?[-?][^}]*)?\}")


def test_web_runs_two_nodes_that_only_the_balancer_publishes():
    assert SERVICES["web"]["deploy"]["replicas"] == "${WEB_REPLICAS:-2}"
    assert "ports" not in SERVICES["web"]
    lb = SERVICES["lb"]
    assert lb["ports"] == ["${PORT:-8000}:8000"]
    assert lb["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert lb["environment"]["LB_SERVICE"] == "web:8000"
    assert lb["environment"]["LB_SERVICE_NODES"] == "${WEB_REPLICAS:-2}"
    assert SERVICES["locust"]["command"][4] == "http://lb:8000"


def test_replica_and_pgbouncer_are_optional_profiles_beside_the_primary():
    assert SERVICES["replica"]["profiles"] == ["replica"]
    assert SERVICES["pgbouncer"]["profiles"] == ["pgbouncer"]
    assert SERVICES["replica"]["environment"]["PRIMARY_HOST"] == "db"
    assert SERVICES["pgbouncer"]["environment"]["PGBOUNCER_DB_HOST"] == "db"
    assert SERVICES["pgbouncer"]["environment"]["PGBOUNCER_POOL_MODE"] == "transaction"
    # Schema changes and bulk loads never go through the pooler.
    for job in ("migrate", "seed"):
        environment = SERVICES[job]["environment"]
        assert "@db:5432/" in environment["DATABASE_URL"]
        assert environment["DATABASE_POOLER"] == ""


def test_every_long_running_service_has_a_healthcheck():
    missing = [
        name for name in SERVICES if name not in RUN_ONCE and "healthcheck" not in SERVICES[name]
    ]
    assert missing == []


def test_the_app_is_configured_only_through_variables():
    app_env = COMPOSE["x-app-env"]
    for name in ("DATABASE_POOLER", "DATABASE_REPLICA_URLS"):
        assert VARIABLE.fullmatch(app_env[name]), name
    assert "${DATABASE_HOST:-db}:${DATABASE_PORT:-5432}" in app_env["DATABASE_URL"]
    for name in ("lb", "replica", "pgbouncer"):
        for key, value in SERVICES[name]["environment"].items():
            literal = VARIABLE.sub("", str(value))
            assert "${" not in literal, (name, key)
            assert "PASSWORD" not in key or VARIABLE.search(str(value)), (name, key)


def test_every_mounted_or_built_file_exists():
    paths = []
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                paths.append(source)
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        if context:
            paths.append(context)
    assert "./deploy/haproxy/haproxy.cfg" in paths
    assert [path for path in paths if not (ROOT / path).exists()] == []


def test_the_balancer_config_is_valid_for_compose_and_for_make_cluster():
    haproxy = executable("haproxy", package="haproxy")
    config = str(ROOT / "deploy" / "haproxy" / "haproxy.cfg")
    for env in (
        {"LB_SERVICE": "web:8000", "LB_SERVICE_NODES": "2"},
        {"LB_NODE1": "127.0.0.1:8101", "LB_NODE2": "127.0.0.1:8102"},
    ):
        result = subprocess.run([haproxy, "-c", "-f", config], env=env, capture_output=True)
        assert result.returncode == 0, result.stderr.decode()


@pytest.mark.parametrize("script", sorted((ROOT / "deploy").rglob("*.sh")), ids=lambda p: p.name)
def test_deploy_scripts_are_valid_shell(script):
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
