"""docker-compose.yml with .env from .env.example: web gets every setting and becomes healthy.

No Docker engine runs here: system_tests/compose.py computes what compose gives `web`, and
gunicorn is started with exactly that environment and the image's command. Only what cannot
exist outside the compose network is replaced, explicitly: the `db` / `redis` host names
(DATABASE_URL / REDIS_URL point at the test servers) and the bind address (a free port).
"""

import ast
import http.client
import json
import os
import subprocess
import sys
import time
from http import HTTPStatus
from pathlib import Path

import pytest
from django.conf import settings

from carenotes import env as env_module
from system_tests.compose import (
    DOCKERFILE,
    ENV_EXAMPLE,
    ROOT,
    ComposeError,
    compose_services,
    dockerfile_cmd,
    dotenv_parse,
    interpolate,
    service_environment,
)
from tools import devenv
from tools.topology import free_port

SETTINGS_SOURCES = (ROOT / "carenotes" / "settings.py", ROOT / "gunicorn.conf.py")
ENV_HELPERS = {name for name in dir(env_module) if name.startswith("env_")}
# Read by the settings but deliberately not given to `web`, each with the reason.
NOT_FOR_WEB = {
    "DATABASE_TEST_NAME": "the test database's name; only pytest reads it",
    "GUNICORN_BIND": "the image's command binds 0.0.0.0:8000 (Dockerfile CMD); PORT maps it",
}
# What compose's network provides and this machine cannot (the substitution is narrow).
COMPOSE_DATABASE_URL = "postgres://carenotes:{password}@db:5432/carenotes"
COMPOSE_REDIS_URL = "redis://redis:6379/0"
COMPOSE_CITUS_DATABASE_URL = "postgres://postgres@citus-coordinator:5432/carenotes"
COMPOSE_BIND = "0.0.0.0:8000"
HEALTHCHECK_ADDRESS = "127.0.0.1:8000"
# What a production .env changes (README "Containers"): the healthcheck must still pass.
PRODUCTION_OVERRIDES = {
    "DJANGO_ALLOWED_HOSTS": "carenotes.example.org",
    "DJANGO_BEHIND_TLS_PROXY": "1",
    "DJANGO_SECURE_SSL_REDIRECT": "",
    "DJANGO_SECURE_COOKIES": "",
    "DJANGO_HSTS_SECONDS": "",
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "",
    "DJANGO_HSTS_PRELOAD": "",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://carenotes.example.org",
}
START_TIMEOUT_SECONDS = 60


def settings_variables() -> set[str]:
    """Return every variable settings.py and gunicorn.conf.py read through carenotes.env."""
    names = set()
    for path in SETTINGS_SOURCES:
        source = path.read_text()
        assert "os.environ" not in source and "getenv" not in source, (
            f"{path.name} reads the environment around carenotes.env"
        )
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ENV_HELPERS
            ):
                first = node.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{path.name}:{node.lineno}: {node.func.id} with a computed variable name"
                )
                names.add(first.value)
    return names


@pytest.fixture
def dotenv(tmp_path) -> Path:
    """Return the .env `make .env` writes from .env.example (fresh secrets)."""
    path = tmp_path / ".env"
    devenv.dotenv_write(example=ENV_EXAMPLE, output=path)
    return path


def test_interpolation_follows_compose_rules():
    variables = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET $SET", variables) == (
        "x d  d $SET x"
    )
    assert interpolate("${UNSET:-a${SET}b}", variables) == "axb"
    assert interpolate("${SET:+alt}|${EMPTY:+alt}", variables) == "alt|"
    with pytest.raises(ComposeError, match="EMPTY: say so"):
        interpolate("${EMPTY:?say so}", variables)


def test_every_variable_the_settings_read_reaches_web(dotenv):
    read = settings_variables()
    assert {"DJANGO_SECRET_KEY", "GUNICORN_WORKER_CLASS", "NOTE_BACKDATE_DAYS"} <= read
    assert set(NOT_FOR_WEB) <= read, "an exemption names a variable nothing reads"
    web = service_environment(compose_services(dotenv)["web"], dotenv=dotenv)
    assert sorted(read - set(NOT_FOR_WEB) - set(web)) == []


def test_every_env_example_variable_is_read_by_something():
    readers = "\n".join(
        path.read_text()
        for path in (ROOT / "docker-compose.yml", ROOT / "tools" / "locust_users.py")
    )
    unread = [
        name
        for name in dotenv_parse(ENV_EXAMPLE.read_text())
        if name not in settings_variables() and name not in readers
    ]
    assert unread == []


def test_migrate_and_seed_run_with_the_environment_web_has(dotenv):
    services = compose_services(dotenv)
    web = service_environment(services["web"], dotenv=dotenv)
    for name in ("migrate", "seed"):
        assert service_environment(services[name], dotenv=dotenv) == web, name


def test_the_citus_app_services_get_webs_environment_over_the_coordinator(dotenv):
    services = compose_services(dotenv)
    web = service_environment(services["web"], dotenv=dotenv)
    for name in ("citus-setup", "citus-web"):
        assert service_environment(services[name], dotenv=dotenv) == {
            **web,
            "DATABASE_URL": COMPOSE_CITUS_DATABASE_URL,
            # A Redis database of its own: its tenants and ids are not db's.
            "REDIS_URL": "redis://redis:6379/1",
            # Scopes as SET LOCAL (tenants/rls.py), statements bound on the client.
            "DATABASE_CITUS": "1",
            "DATABASE_PREPARED_STATEMENTS": "0",
        }, name
    assert services["citus-web"]["healthcheck"] == services["web"]["healthcheck"]


def test_the_image_holds_every_app_of_this_repository():
    copied = {
        line.split()[1]
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    }
    local = {app.split(".")[0] for app in settings.INSTALLED_APPS}
    local = {package for package in local if (ROOT / package / "__init__.py").exists()}
    assert {"audit", "carenotes", "tenants"} <= local
    assert sorted(local - copied) == []


def test_copying_env_example_without_secrets_is_refused_naming_them(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(ENV_EXAMPLE.read_text())
    with pytest.raises(ComposeError, match=r"set .* in \.env; make \.env writes one"):
        compose_services(dotenv)


def test_the_healthcheck_host_is_allowed_whatever_env_allows(dotenv):
    dotenv.write_text(dotenv.read_text() + "DJANGO_ALLOWED_HOSTS=carenotes.example.org\n")
    web = service_environment(compose_services(dotenv)["web"], dotenv=dotenv)
    # 127.0.0.1 for the healthchecks (the container's and lb's), lb for locust behind it.
    assert web["DJANGO_ALLOWED_HOSTS"].split(",") == ["carenotes.example.org", "127.0.0.1", "lb"]


def _web_process_environment(web: dict[str, str], dotenv: Path) -> dict[str, str]:
    """Return web's environment with the compose-network addresses swapped for the test servers."""
    password = dotenv_parse(dotenv.read_text())["POSTGRES_PASSWORD"]
    assert web["DATABASE_URL"] == COMPOSE_DATABASE_URL.format(password=password)
    assert web["REDIS_URL"] == COMPOSE_REDIS_URL
    return {
        **web,
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        # The image's PATH (python:3.11-slim) is this machine's venv and system tools.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def _healthcheck(service: dict, *, port: int, environment: dict) -> subprocess.CompletedProcess:
    test = service["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"] and HEALTHCHECK_ADDRESS in test[-1]
    command = [
        sys.executable,
        *test[2:-1],
        test[-1].replace(HEALTHCHECK_ADDRESS, f"127.0.0.1:{port}"),
    ]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=30)


def _get(port: int, path: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, json.loads(body)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [{}, PRODUCTION_OVERRIDES], ids=["as-copied", "production"])
def test_web_with_the_compose_environment_passes_its_healthcheck(dotenv, tmp_path, overrides):
    dotenv.write_text(
        dotenv.read_text() + "".join(f"{name}={value}\n" for name, value in overrides.items())
    )
    services = compose_services(dotenv)
    environment = _web_process_environment(
        service_environment(services["web"], dotenv=dotenv), dotenv
    )
    port = free_port()
    command = dockerfile_cmd(DOCKERFILE.read_text())
    assert command[0] == "gunicorn" and COMPOSE_BIND in command
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        *(f"127.0.0.1:{port}" if arg == COMPOSE_BIND else arg for arg in command[1:]),
    ]
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while (
            check := _healthcheck(services["web"], port=port, environment=environment)
        ).returncode:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, check.stderr + log_path.read_text()
            time.sleep(0.5)
        status, body = _get(port, "/readyz")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (status, body["status"]) == (HTTPStatus.OK, "ok")


def test_make_env_fills_only_the_empty_secrets_and_never_overwrites(tmp_path):
    output = tmp_path / ".env"
    assert devenv.dotenv_write(example=ENV_EXAMPLE, output=output) == [
        "DJANGO_SECRET_KEY",
        "POSTGRES_PASSWORD",
    ]
    written, example = dotenv_parse(output.read_text()), dotenv_parse(ENV_EXAMPLE.read_text())
    assert len(written["DJANGO_SECRET_KEY"]) >= 50
    assert {k: v for k, v in written.items() if k not in devenv.DOTENV_SECRETS} == {
        k: v for k, v in example.items() if k not in devenv.DOTENV_SECRETS
    }
    assert output.stat().st_mode & 0o077 == 0
    with pytest.raises(SystemExit, match="exists"):
        devenv.dotenv_write(example=ENV_EXAMPLE, output=output)
    assert dotenv_parse(output.read_text()) == written
