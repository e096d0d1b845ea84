"""Schedules, `sim_runner --shrink` and `--replay`: a recorded run replays exactly, a
failing seed of a broken variant shrinks to a few steps, and the files it writes fail
on the variant and pass on the real store."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from scenarios.registry import SCENARIOS
from scenarios.runner import record_seed, run_schedule
from scenarios.schedule import FORMAT_VERSION, Schedule, ScheduleError
from scenarios.shrink import shrink, write_regression
from tests.broken_variants import VARIANTS

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = 600


@pytest.mark.parametrize("name", ["crash", "corruption", "comprehensive", "swarm", "server"])
def test_a_recorded_schedule_replays_to_the_same_trace(name: str) -> None:
    for seed in range(3):
        result, schedule = record_seed(SCENARIOS[name], seed, 300)
        replayed = run_schedule(Schedule.loads(schedule.dumps()))
        assert (replayed.passed, replayed.trace_hash, replayed.crashes) == (
            result.passed,
            result.trace_hash,
            result.crashes,
        )


def first_failing_schedule(variant: str, scenario: str) -> Schedule:
    with VARIANTS[variant]():
        for seed in range(200):
            result, schedule = record_seed(SCENARIOS[scenario], seed, OPERATIONS)
            if not result.passed:
                return schedule
    raise AssertionError(f"{variant} was not caught by {scenario} in 200 seeds")


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ack_before_sync_shrinks_to_a_regression_test_that_fails_only_on_the_variant(tmp_path: Path) -> None:
    schedule = first_failing_schedule("ack_before_sync", "crash")
    with VARIANTS["ack_before_sync"]():
        shrunk = shrink(schedule)
    steps, faults, _crashes = shrunk.schedule.size()
    # Issue 10's bound for a shrunk failure (in `batch` mode it takes a write, the pauses
    # that make it due, the write that should have synced it and the step the crash
    # lands in; a crash-survival fault may stay).
    assert steps <= 10 and faults <= 1, shrunk.schedule.dumps()
    replay_file, test_file = write_regression(shrunk, tmp_path)

    replayed = Schedule.loads(replay_file.read_text())
    assert replayed == shrunk.schedule
    assert run_schedule(replayed).passed  # the real store
    with VARIANTS["ack_before_sync"]():
        assert not run_schedule(replayed).passed

    module = load(test_file)
    [test] = [value for name, value in vars(module).items() if name.startswith("test_")]
    test()  # passes on the real store
    with VARIANTS["ack_before_sync"](), pytest.raises(AssertionError, match=r"no loss was reported|cannot be opened"):
        test()


def test_shrinking_a_passing_schedule_is_refused() -> None:
    _result, schedule = record_seed(SCENARIOS["perfect"], 0, 50)
    with pytest.raises(ValueError, match="nothing to shrink"):
        shrink(schedule)


def _sim_runner_with_variant(variant: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`sim_runner` in a subprocess whose store is the broken variant."""
    program = (
        "import runpy, sys\n"
        "from tests.broken_variants import VARIANTS\n"
        f"sys.argv = ['sim_runner', *{list(arguments)!r}]\n"
        f"with VARIANTS[{variant!r}]():\n"
        f"    runpy.run_path({str(ROOT / 'sim_runner.py')!r}, run_name='__main__')\n"
    )
    return subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=300)


def _sim_runner(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "sim_runner.py"), *arguments]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_sim_runner_shrink_and_replay(tmp_path: Path) -> None:
    schedule = first_failing_schedule("ack_before_sync", "crash")
    arguments = ("--shrink", "--scenario", "crash", "--seed", str(schedule.seed), "--ops", str(OPERATIONS))
    shrunk = _sim_runner_with_variant("ack_before_sync", *arguments, "--report-dir", str(tmp_path))
    assert shrunk.returncode == 1, shrunk.stdout + shrunk.stderr
    replay_file = tmp_path / f"crash_seed_{schedule.seed}_shrunk.json"
    test_file = tmp_path / f"test_crash_seed_{schedule.seed}_shrunk.py"
    assert f"repro: sim_runner --replay {replay_file}" in shrunk.stdout
    assert test_file.exists()
    assert json.loads(replay_file.read_text())["format"] == FORMAT_VERSION

    passing = _sim_runner("--replay", str(replay_file))
    assert passing.returncode == 0, passing.stdout + passing.stderr
    failing = _sim_runner_with_variant("ack_before_sync", "--replay", str(replay_file))
    assert failing.returncode == 1 and "FAILED" in failing.stdout

    # The pytest file fails on the variant and passes on the real store.
    real = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert real.returncode == 0, real.stdout


def test_sim_runner_shrink_of_a_passing_seed_says_so(tmp_path: Path) -> None:
    arguments = ("--shrink", "--scenario", "crash", "--seed", "1", "--ops", "100")
    result = _sim_runner(*arguments, "--report-dir", str(tmp_path))
    assert result.returncode == 0
    assert "passes: nothing to shrink" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--shrink", "--seeds", "1-2", "--scenario", "crash"), "exactly one --scenario and one --seed"),
        (("--shrink", "--seed", "1"), "exactly one --scenario and one --seed"),
        (("--replay", "/nonexistent/replay.json"), "cannot read --replay"),
    ],
)
def test_sim_runner_shrink_and_replay_usage_errors(arguments: tuple[str, ...], message: str) -> None:
    result = _sim_runner(*arguments)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_damaged_replay_file_is_a_usage_error(tmp_path: Path) -> None:
    _result, schedule = record_seed(SCENARIOS["crash"], 0, 20)
    document = schedule.to_json()
    document["steps"][0]["op"] = "explode"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    result = _sim_runner("--replay", str(path))
    assert result.returncode == 2
    assert "unknown operation 'explode'" in result.stderr
    with pytest.raises(ScheduleError, match="not JSON"):
        Schedule.loads("{")
    with pytest.raises(ScheduleError, match="unknown fault 'gremlins'"):
        Schedule.from_json({**document, "faults": {"gremlins": {}}})
