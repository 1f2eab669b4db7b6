"""A newcomer's checkout for the system tests: a copy of this one, nothing configured.

The copy has its own .data/ (so `make run` starts its own embedded PostgreSQL and Redis),
shares this checkout's .venv (an installed venv is what `make run` reuses after its first
start) and is given none of the variables of the test run. Stopped at the end whatever
happened.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tools.topology import free_port

ROOT = Path(__file__).resolve().parents[1]
INSTALL_STAMP = ROOT / ".venv" / ".installed"
# What the test run has that a newcomer's shell does not (the outer `make test` included).
CONFIGURED_PREFIXES = ("DATABASE_", "REDIS_", "DJANGO_", "GUNICORN_", "LOAD_", "CARENOTES_")
CONFIGURED_NAMES = {"CACHE_KEY_PREFIX", "PRINCIPAL_CACHE_TTL", "VIRTUAL_ENV", "PYTHONPATH"}
MAKE_NAMES = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR"}
# A first start installs nothing here but collects static files and seeds 100K notes.
FIRST_START_TIMEOUT = 600.0
STOP_TIMEOUT = 60.0


def newcomer_environment() -> dict[str, str]:
    """Return this process's environment less everything that configures carenotes or make."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(CONFIGURED_PREFIXES)
        and name not in CONFIGURED_NAMES
        and name not in MAKE_NAMES
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Checkout:
    """A copy of the repository as a newcomer has it, and what its `make run` started."""

    path: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=newcomer_environment)
    server: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``command`` in the checkout, as the newcomer's shell would."""
        return subprocess.run(
            command, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def make_run(self, *, timeout: float = FIRST_START_TIMEOUT) -> float:
        """Start `make run` in the background; return the seconds until /healthz answered."""
        assert self.server is None or self.server.poll() is not None, "make run is running"
        self.log_path = self.path / f"make-run-{time.monotonic_ns()}.log"
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.server = subprocess.Popen(
                ["make", "run", f"PORT={self.port}"],
                cwd=self.path,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while not _answers(f"{self.base_url}/healthz"):
            assert self.server.poll() is None, self.log()
            assert time.monotonic() - started < timeout, self.log()
            time.sleep(0.1)
        return time.monotonic() - started

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def processes(self) -> dict[int, str]:
        """Return the live processes (pid: command line) running in or naming the checkout."""
        found = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = os.readlink(proc / "cwd")
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and (str(self.path) in command or cwd == str(self.path)):
                found[int(proc.name)] = command
        return found

    def stop_everything(self) -> None:
        """`make stop`, then end any process of the checkout that outlived it (by its pid)."""
        self.run("make", "stop", timeout=STOP_TIMEOUT)
        if self.server is not None and self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            self.server.wait(timeout=STOP_TIMEOUT)
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _copy_checkout(destination: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    (destination / ".venv").symlink_to(ROOT / ".venv")
    # The shared venv is installed: make must not reinstall it from the copy.
    stamp_time = INSTALL_STAMP.stat().st_mtime
    os.utime(destination / "pyproject.toml", (stamp_time - 1, stamp_time - 1))
    return destination


@pytest.fixture(scope="session")
def checkout():
    """Return a newcomer's copy of the repository; stop all it started at the end."""
    if not INSTALL_STAMP.exists():
        pytest.skip("needs this checkout's installed .venv (make install)")
    # Not under pytest's private tmp: as root, pgserver runs PostgreSQL as its own user,
    # which must reach the copy (and the venv's binaries through it) like a real checkout.
    path = Path(tempfile.mkdtemp(prefix="carenotes-checkout-"))
    path.chmod(0o755)
    copy = Checkout(path=_copy_checkout(path))
    try:
        yield copy
    finally:
        copy.stop_everything()
        shutil.rmtree(path, ignore_errors=True)
