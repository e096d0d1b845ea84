"""The README's "Crash-test your own code" section, tried as a new user would: its files
pasted into a fresh directory outside this project, run with the installed commands.

The target must fail with the minimal state naming its `os.replace` line; with the
README's fix pasted after that line, every state must pass; the README's pytest test
must fail the same target through the installed plugin.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_LINES_MAX = 25  # the bound on the README example


def readme_block(marker: str) -> str:
    """The fenced Python block right after `<!-- marker -->` in the README."""
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```\n", text, re.DOTALL)
    assert match is not None, f"no python block after <!-- {marker} --> in README.md"
    return match.group(1)


def sim_runner_command() -> list[str]:
    """The installed `sim_runner` beside this Python (a fresh project's venv has it)."""
    installed = Path(sys.executable).parent / "sim_runner"
    return [str(installed)] if installed.exists() else [sys.executable, str(ROOT / "sim_runner.py")]


def run(command: list[str], directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh directory holding the README's target, as pasted."""
    (tmp_path / "crash_settings.py").write_text(readme_block("crash-example"))
    return tmp_path


def test_the_example_is_short() -> None:
    assert len(readme_block("crash-example").splitlines()) <= EXAMPLE_LINES_MAX


def test_the_example_fails_naming_the_rename_and_passes_once_fixed(project: Path) -> None:
    source = (project / "crash_settings.py").read_text()
    replace_line = 1 + source.splitlines().index("    os.replace(temporary, path)")
    failed = run([*sim_runner_command(), "--target", "crash_settings.py"], project)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    responsible = failed.stdout.split("  responsible:\n", 1)[1].split("\n  traceback:", 1)[0]
    assert f"crash_settings.py:{replace_line}: rename 'settings.tmp' to 'settings.json' was lost" in responsible
    repro = next(line for line in failed.stdout.splitlines() if line.startswith("  repro: "))
    assert repro.startswith("  repro: sim_runner --target crash_settings.py --crash-state p")

    fixed = source.replace(
        "    os.replace(temporary, path)\n", "    os.replace(temporary, path)\n" + readme_block("crash-example-fix")
    )
    (project / "crash_settings.py").write_text(fixed)
    passed = run([*sim_runner_command(), "--target", "crash_settings.py"], project)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert re.search(r"failed 0 in", passed.stdout), passed.stdout


def test_the_pytest_example_fails_the_example_through_the_installed_plugin(project: Path) -> None:
    (project / "test_settings.py").write_text(readme_block("crash-example-pytest"))
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_settings.py"], project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL crash state" in result.stdout and "1 failed" in result.stdout, result.stdout
