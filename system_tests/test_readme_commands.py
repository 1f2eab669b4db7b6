"""Every command README.md shows works as written in a newcomer's checkout after `make run`.

The fenced ``sh`` blocks are run in order, each in bash in the checkout (system_tests/
conftest.py), after the shell set-up lines the README shows before them. The exceptions are
listed below, each with its reason; a command the README gains is run like the others.
"""

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tools.citus_cluster import citus_available
from tools.load_profile import stats_total

README = Path(__file__).resolve().parents[1] / "README.md"
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
COMMAND_TIMEOUT = 600

# The server: started once in the background for the whole run, then polled on /healthz.
SERVER = "make run"
# Run last, when nothing needs the server any more; it must leave no process behind.
LAST = "make stop"
# Lines that prepare the shell: run, then put before every later command.
SETUP_PATTERNS = (r"eval \"\$\(", r"\. \.venv/bin/activate")
SKIPPED = {
    r"make test\b": "the whole test suite, this test included",
    r"CITUS_URL=.* make test\b": "the citus tests, run by the whole suite's own run",
    r"make bench": "benchmarks: minutes each, seeding 1M-10M notes (bench/ tests cover them)",
    r"make load\b": "load runs: a minute or more of locust (tools/tests cover the verdict)",
    r"docker compose\b": "no Docker engine here: test_compose.py starts web with exactly the "
    "environment compose gives it and runs its healthcheck",
    r"make cluster\b": "serves in the foreground until Ctrl-C: test_cluster.py starts the same "
    "nodes and HAProxy (tools/cluster.py) and proves what they do",
    r"DATABASE_URL=postgres://\w+:\.\.\.@db/": "a production template: placeholder password, "
    "and db is a compose host name",
}
# Commands that need the citus extension installed for the machine's PostgreSQL (README,
# "Scale out on Citus"); where it is not, they are skipped, as the citus tests are.
NEEDS_CITUS = "tools/citus_cluster.py"
# Documented refusals: the command's own comment says it fails in this state.
REFUSALS = {
    "python manage.py seed_notes": "refuses if data exists (its comment), and make run seeded",
}
CURL = "curl"
KEY_PLACEHOLDER = "<key>"
README_PORT = "127.0.0.1:8000"


def readme_commands(text: str) -> list[str]:
    """Return the command lines of the README's sh blocks, continuation lines joined."""
    commands = []
    for block in SH_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def command_words(command: str) -> str:
    """Return the command without its comment, words single-spaced."""
    return " ".join(shlex.split(command, comments=True))


def _manager_token(checkout, tenant_id: int) -> str:
    credentials = json.loads((checkout.path / ".data" / "demo-credentials.json").read_text())
    for tenant in credentials["tenants"]:
        if tenant["tenant_id"] == tenant_id:
            return next(u["token"] for u in tenant["users"] if u["role"] == "manager")
    raise AssertionError(f"the demo data has no tenant {tenant_id}: {credentials['tenants']}")


def _bash(checkout, setup: list[str], command: str) -> subprocess.CompletedProcess:
    # One line each (a line's comment ends there); a failing set-up line stops the script.
    script = "\n".join(["set -e", *setup, command])
    return checkout.run("bash", "-c", script, timeout=COMMAND_TIMEOUT)


def test_the_readme_commands_are_recognised():
    commands = [command_words(command) for command in readme_commands(README.read_text())]
    assert commands[:3] == ["make run", "make stop", "make test"]
    assert any(command.startswith(CURL) for command in commands)
    for pattern in SKIPPED:
        assert any(re.match(pattern, command) for command in commands), f"stale: {pattern}"
    for refusal in REFUSALS:
        assert refusal in commands, f"stale: {refusal}"


@pytest.mark.slow
def test_every_readme_command_works_as_written(checkout):
    if checkout.server is None or checkout.server.poll() is not None:
        checkout.make_run()
    setup, ran, skipped = [], [], []
    for command in readme_commands(README.read_text()):
        words = command_words(command)
        if words in (SERVER, LAST) or any(re.match(p, words) for p in SKIPPED):
            skipped.append(words)
            continue
        if NEEDS_CITUS in command and not citus_available():
            skipped.append(words)
            continue
        if words.startswith(CURL):
            tenant_id = int(re.search(r"tenant_id=(\d+)", command)[1])
            command = command.replace(KEY_PLACEHOLDER, _manager_token(checkout, tenant_id))
            command = command.replace(README_PORT, f"127.0.0.1:{checkout.port}")
        result = _bash(checkout, setup, command)
        output = result.stdout + result.stderr
        if words in REFUSALS:
            # One line saying what to do instead (the set-up's own [devenv] lines aside).
            own = [line for line in result.stderr.splitlines() if not line.startswith("[devenv]")]
            assert result.returncode == 1, output
            assert len(own) == 1 and own[0].startswith("CommandError: "), output
        else:
            assert result.returncode == 0, f"{command}\n{output}"
        if words.startswith(CURL):
            # The example's day is one the demo data covers: its answer is not all zeros.
            assert result.stdout.startswith("{"), f"{command}\n{output}"
            total = stats_total(json.loads(result.stdout))
            assert total is not None and total > 0, result.stdout
        if any(re.match(pattern, command) for pattern in SETUP_PATTERNS):
            setup.append(command)
        ran.append(words)
    assert len(setup) == len(SETUP_PATTERNS)
    assert "python manage.py seed_notes --help" in ran and "make .env" in ran
    result = checkout.run("make", "stop", timeout=COMMAND_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr
    checkout.server.wait(timeout=60)
    assert checkout.processes() == {}
