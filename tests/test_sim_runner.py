"""The `sim_runner` command line: listing, exit codes, the repro line, determinism."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.registry import SCENARIOS, Scenario
from scenarios.runner import run_seed

ROOT = Path(__file__).resolve().parent.parent


def _sim_runner(*arguments: str, hash_seed: str = "0") -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
    command = [sys.executable, str(ROOT / "sim_runner.py"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT, timeout=300)


def test_list_names_every_scenario() -> None:
    result = _sim_runner("--list")
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(SCENARIOS)


def test_one_seed_prints_its_repro_line_first_and_is_deterministic() -> None:
    first = _sim_runner("--scenario", "crash", "--seed", "42", hash_seed="1")
    second = _sim_runner("--scenario", "crash", "--seed", "42", hash_seed="12345")
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines()[0].endswith("repro: sim_runner --scenario crash --seed 42")
    [first_hash] = [line for line in first.stdout.splitlines() if " trace " in line]
    [second_hash] = [line for line in second.stdout.splitlines() if " trace " in line]
    assert first_hash == second_hash
    assert first_hash.split()[-1] == run_seed(SCENARIOS["crash"], 42).trace_hash


@pytest.mark.parametrize(
    "arguments", [["--scenario", "nope"], ["--seeds", "9-3"], ["--seeds", "x"], ["--ops", "0"], ["--bogus"]]
)
def test_bad_arguments_exit_2_with_a_message(arguments: list[str]) -> None:
    result = _sim_runner(*arguments)
    assert result.returncode == 2
    assert result.stderr.strip()


def test_a_broken_store_is_reported_with_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Acknowledge before sync: the crash scenario must catch it."""
    import kv.store

    original = kv.store.Store._commit

    def commit_without_sync(self: kv.store.Store, sync: bool) -> None:
        original(self, sync=False)

    monkeypatch.setattr(kv.store.Store, "_commit", commit_without_sync)
    results = [run_seed(SCENARIOS["crash"], seed, operations=500) for seed in range(10)]
    assert not all(result.passed for result in results)
    failed = next(result for result in results if not result.passed)
    assert failed.violation


def test_perfect_scenario_checks_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store that loses deletes in memory is caught by the model even without faults."""
    import kv.store

    monkeypatch.setattr(kv.store.Store, "delete", lambda self, key: True)
    result = run_seed(Scenario("perfect-test", "test"), seed=1, operations=300)
    assert not result.passed and "get(" in result.violation
