"""docker-compose.yml's scale-out topology, read (no Docker engine here): two web nodes behind
an HAProxy `lb`, optional `replica`, `pgbouncer` and `citus` profiles, configured only by
variables, each with a healthcheck, every file it mounts or builds present."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from system_tests.scaleout import executable
from tools import citus_cluster

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# The services a node, a pooler or a replica depends on, and those this topology adds.
TOPOLOGY = ("db", "redis", "web", "lb", "replica", "pgbouncer")
CITUS_NODES = ("citus-coordinator", "citus-worker-1", "citus-worker-2")
CITUS_SERVICES = (*CITUS_NODES, "citus-setup", "citus-web")
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
    assert "replicadata" in COMPOSE["volumes"]


def test_the_nodes_and_every_service_of_the_topology_have_a_healthcheck():
    long_running = (*TOPOLOGY, *CITUS_NODES, "citus-web")
    missing = [name for name in long_running if "healthcheck" not in SERVICES[name]]
    assert missing == []


def test_the_citus_profile_runs_a_coordinator_and_two_workers_of_the_official_image():
    assert [name for name in SERVICES if SERVICES[name].get("profiles") == ["citus"]] == list(
        CITUS_SERVICES
    )
    for name in CITUS_NODES:
        node = SERVICES[name]
        # Citus 13 on PostgreSQL 15, what tools/citus_cluster.py runs on this machine.
        assert re.fullmatch(r"citusdata/citus:13\.\d+-pg15", node["image"]), node["image"]
        assert node["environment"]["POSTGRES_DB"] == "carenotes"
        command = node["command"]
        assert command[0] == "postgres" and set(command[1::2]) == {"-c"}
        settings = dict(setting.split("=", 1) for setting in command[2::2])
        assert settings["wal_level"] == "logical"
        assert int(settings["max_connections"]) >= citus_cluster.MIN_MAX_CONNECTIONS
    volumes = [SERVICES[name]["volumes"][0].split(":")[0] for name in CITUS_NODES]
    assert len(set(volumes)) == len(CITUS_NODES)
    assert set(volumes) <= set(COMPOSE["volumes"])


def test_the_trusting_citus_nodes_are_reachable_only_on_an_internal_network():
    assert COMPOSE["networks"]["citus"] == {"internal": True}
    for name in CITUS_NODES:
        node = SERVICES[name]
        assert node["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
        assert node["networks"] == ["citus"]
        assert "ports" not in node
    on_citus = [
        name for name, service in SERVICES.items() if "citus" in service.get("networks", [])
    ]
    assert on_citus == list(CITUS_SERVICES)
    assert SERVICES["citus-web"]["ports"] == ["${CITUS_PORT:-8001}:8000"]


def test_citus_setup_registers_the_workers_then_migrates_then_distributes():
    setup = SERVICES["citus-setup"]
    assert setup["build"] == "."
    assert setup["depends_on"] == {
        name: {"condition": "service_healthy"} for name in (*CITUS_NODES, "redis")
    }
    assert setup["command"][:2] == ["sh", "-c"]
    register, migrate, distribute = [shlex.split(step) for step in setup["command"][2].split("&&")]
    assert register[:3] == ["python", "-m", "tools.citus_cluster"]
    # The command line the tool parses, with the compose services as nodes.
    args = citus_cluster.build_parser().parse_args(register[3:])
    assert (args.command, args.coordinator) == ("register", ("citus-coordinator", 5432))
    assert args.worker == [("citus-worker-1", 5432), ("citus-worker-2", 5432)]
    assert migrate == ["python", "manage.py", "migrate", "--noinput"]
    assert distribute == ["python", "manage.py", "citus_distribute"]
    assert SERVICES["citus-web"]["depends_on"]["citus-setup"] == {
        "condition": "service_completed_successfully"
    }


def test_the_topology_services_are_configured_only_through_variables():
    for name in ("lb", "replica", "pgbouncer"):
        for key, value in SERVICES[name]["environment"].items():
            literal = VARIABLE.sub("", str(value))
            assert "${" not in literal, (name, key)
            if "PASSWORD" in key:
                assert VARIABLE.fullmatch(str(value)), (name, key)


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
