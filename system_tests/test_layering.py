"""The layering contracts hold, and breaking one makes the check (run by make test) fail."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("carenotes", "tenants", "audit", "stats", "dashboard", "bench", "tools", "system_tests")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _copy_tree(destination: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    return destination


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    return _copy_tree(tmp_path)


def test_the_contracts_are_kept(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("carenotes/core/probe.py", "import stats.views\n", "Infrastructure imports no app"),
        ("tenants/probe.py", "import carenotes.notes.models\n", "Tenancy imports neither"),
        ("tenants/probe.py", "import audit.services\n", "Tenancy imports neither"),
        ("audit/probe.py", "import carenotes.notes.selectors\n", "Apps are layered"),
        ("carenotes/notes/probe.py", "import stats.cache\n", "Apps are layered"),
        ("stats/probe.py", "import dashboard.views\n", "Apps are layered"),
        ("tools/probe.py", "import tenants.models\n", "Tooling and load generation"),
        ("stats/probe.py", "import carenotes.settings\n", "Nothing imports the settings"),
        ("tenants/probe_cycle.py", "import tenants.selectors\n", "No import cycles"),
    ],
)
def test_an_import_against_the_layering_breaks_the_check(tree, module, line, contract):
    (tree / module).write_text(f'"""A deliberate violation."""\n\n{line}')
    if module == "tenants/probe_cycle.py":
        # A cycle needs both directions: make the probe's target import it back.
        selectors = tree / "tenants" / "selectors.py"
        selectors.write_text(selectors.read_text() + "\nimport tenants.probe_cycle  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0, result.stdout
    _, _, broken_section = result.stdout.partition("Broken contracts")
    assert contract in broken_section, result.stdout
