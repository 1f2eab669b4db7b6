"""Reads configuration from the environment: the one place settings.py and gunicorn.conf.py ask.

An empty value means unset everywhere (docker compose passes ``${VAR:-}`` as ""), so every
variable either takes its default or is refused with a message naming it. Nothing here
imports Django beyond its exception, so gunicorn's master can use it before any app loads.
"""

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
FALSE_VALUES = frozenset({"0", "false", "no", "off"})
LIST_SEPARATOR = ","
# What a command-line entry point exits with when a setting is missing or malformed.
EXIT_MISCONFIGURED = 2


def env_str(name: str, default: str = "") -> str:
    """Return variable ``name`` without surrounding blanks, or ``default`` when unset or empty."""
    return os.environ.get(name, "").strip() or default


def env_required(name: str, *, how: str) -> str:
    """Return variable ``name``; raise ImproperlyConfigured saying ``how`` to set it if empty."""
    value = env_str(name)
    if not value:
        raise ImproperlyConfigured(f"{name} is not set. {how}")
    return value


def env_bool(name: str, default: bool) -> bool:
    """Return variable ``name`` as a boolean (1/0, true/false, yes/no, on/off)."""
    value = env_str(name).lower()
    if not value:
        return default
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ImproperlyConfigured(
        f"{name} must be 1 or 0 (or true/false, yes/no, on/off), got {value!r}"
    )


def env_int(name: str, default: int) -> int:
    """Return variable ``name`` as an integer."""
    value = env_str(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    """Return variable ``name`` as a number."""
    value = env_str(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    """Return the comma-separated variable ``name`` (or ``default``) as a list of its items."""
    items = env_str(name, default).split(LIST_SEPARATOR)
    return [item.strip() for item in items if item.strip()]


def env_choice(name: str, default: str, *, choices: tuple[str, ...]) -> str:
    """Return variable ``name``, which must be one of ``choices``."""
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {choices}, got {value!r}")
    return value


def env_match(name: str, default: str, *, pattern: str, expected: str) -> str:
    """Return variable ``name``, which must match ``pattern`` whole (``expected`` says how)."""
    value = env_str(name, default)
    if not re.fullmatch(pattern, value):
        raise ImproperlyConfigured(f"{name} must look {expected}, got {value!r}")
    return value


@contextmanager
def exit_on_misconfiguration(source: str, *, exit_code: int = EXIT_MISCONFIGURED) -> Iterator[None]:
    """Turn ImproperlyConfigured into one line on stderr and exit ``exit_code`` (no traceback)."""
    try:
        yield
    except ImproperlyConfigured as exc:
        print(f"{source}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exit_code) from None
