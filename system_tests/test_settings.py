"""Settings come from the environment and refuse insecure production configurations."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from carenotes import env

ROOT = Path(__file__).resolve().parents[1]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_the_production_variables():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="example.org",
        DJANGO_DEBUG="0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_missing_secret_key_is_refused_when_debug_is_off():
    result = _manage("check", DJANGO_DEBUG="0")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_short_or_insecure_secret_key_is_refused_when_debug_is_off():
    result = _manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY="django-insecure-" + "x" * 60)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be at least 50" in result.stderr


def test_an_unknown_log_format_is_refused_naming_the_variable():
    result = _manage("check", DJANGO_DEBUG="1", DJANGO_LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "DJANGO_LOG_FORMAT must be one of ('json', 'text'), got 'xml'" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "IDEMPOTENCY_KEY_TTL_HOURS must be 1 or more, got 0"),
        ("1.5", "IDEMPOTENCY_KEY_TTL_HOURS must be an integer, got '1.5'"),
    ],
)
def test_an_idempotency_key_ttl_under_an_hour_is_refused_naming_it(value, message):
    result = _manage("check", DJANGO_DEBUG="1", IDEMPOTENCY_KEY_TTL_HOURS=value)
    assert result.returncode != 0
    assert message in result.stderr


def test_an_empty_variable_is_unset_for_every_helper(monkeypatch):
    for name in ("X_STR", "X_BOOL", "X_INT", "X_FLOAT", "X_LIST", "X_CHOICE", "X_MATCH"):
        monkeypatch.setenv(name, "")
    assert env.env_str("X_STR", "default") == "default"
    assert env.env_bool("X_BOOL", True) is True
    assert env.env_int("X_INT", 7) == 7
    assert env.env_float("X_FLOAT", 0.5) == 0.5
    assert env.env_list("X_LIST", "a,b") == ["a", "b"]
    assert env.env_choice("X_CHOICE", "json", choices=("json", "text")) == "json"
    assert env.env_match("X_MATCH", "1/m", pattern=r"\d+/m", expected="like 1/m") == "1/m"
    with pytest.raises(ImproperlyConfigured, match=r"^X_STR is not set\. Do this\.$"):
        env.env_required("X_STR", how="Do this.")


@pytest.mark.parametrize(
    ("helper", "value", "message"),
    [
        (lambda: env.env_bool("X", False), "maybe", "X must be 1 or 0"),
        (lambda: env.env_int("X", 1), "1.5", "X must be an integer, got '1.5'"),
        (lambda: env.env_float("X", 1.0), "fast", "X must be a number, got 'fast'"),
        (lambda: env.env_choice("X", "a", choices=("a",)), "b", "X must be one of"),
    ],
)
def test_a_malformed_variable_is_refused_naming_it(monkeypatch, helper, value, message):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


def test_empty_compose_style_variables_take_the_defaults():
    # docker compose passes `${VAR:-}` as an empty string.
    result = _manage(
        "check",
        DJANGO_DEBUG="",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_LOG_FORMAT="",
        DJANGO_HSTS_SECONDS="",
        THROTTLE_RATE_STATS="",
        NOTE_BACKDATE_DAYS="",
        IDEMPOTENCY_KEY_TTL_HOURS="",
        REDIS_SOCKET_TIMEOUT="",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_required_setting_is_one_line_naming_it_and_how_to_set_it():
    result = _manage("seed_notes", "--help", DJANGO_DEBUG="1", DATABASE_URL="")
    assert result.returncode == env.EXIT_MISCONFIGURED
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "manage.py: DATABASE_URL is not set. Set DATABASE_URL=postgres://user:pass@host:5432/"
        'dbname. For the servers `make run` uses, run `eval "$(.venv/bin/python tools/devenv.py '
        'env)"` first, or use `make manage ARGS="..."`.'
    ]
