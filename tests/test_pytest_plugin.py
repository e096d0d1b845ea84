"""The `kv_sim` pytest plugin, from the outside: the tests run pytest in a subprocess
on a small test file (so the plugin loads through its `pytest11` entry point, as it does
for a user, and hypothesis' global profile stays the subprocess's) and check the
options, the seeds, the reports and the hypothesis profiles. Runs that stop at a usage
error run in this process, which is faster."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from scenarios.pytest_plugin import ci_requested, derive_test_seed
from scenarios.registry import SCENARIOS

pytest_plugins = ["pytester"]

HEADER_SEED = re.compile(r"^kv-sim: base seed (\d+) \(rerun with --sim-seed \1 or --sim-seed last\), scenario (\w+)")

SEED_TESTS = """
import os
from pathlib import Path

import pytest


def record(name: str, sim_seed: int) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(__file__).with_name(f"seed-{name}.txt").write_text(f"{sim_seed} {worker}")


def test_first(sim_seed):
    record("test_first", sim_seed)


def test_second(sim_seed):
    record("test_second", sim_seed)


@pytest.mark.parametrize("number", range(6))
def test_many(sim_seed, number):
    record(f"test_many[{number}]", sim_seed)
"""


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester whose subprocesses load entry-point plugins, in a rootdir of their own."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pytester.makeini("[pytest]\n")
    return pytester


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a subprocess, warnings as errors (the plugin must not warn); pyfakefs,
    which these runs do not use, is left out to save its import time."""
    return pytester.runpytest_subprocess("-W", "error", "-p", "no:fakefs", *args)


def run_usage_error(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in this process, for runs that stop at a usage error before any test (and
    before a hypothesis profile is loaded): the fast way to check option validation."""
    result = pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    return result


def header_seed(result: pytest.RunResult) -> tuple[int, str]:
    for line in result.outlines:
        match = HEADER_SEED.match(line)
        if match:
            return int(match.group(1)), match.group(2)
    raise AssertionError("no kv-sim header line in:\n" + result.stdout.str())


def recorded_seeds(directory: Path) -> dict[str, tuple[int, str]]:
    """Each test's seed and the worker that ran it, as written by `SEED_TESTS`."""
    seeds = {}
    for path in sorted(directory.glob("seed-*.txt")):
        seed, worker = path.read_text().split()
        seeds[path.name.removeprefix("seed-").removesuffix(".txt")] = (int(seed), worker)
        path.unlink()
    return seeds


# -- in-process units ------------------------------------------------------------------


def test_the_entry_point_names_the_plugin() -> None:
    entry_points = {entry.name: entry.value for entry in importlib.metadata.entry_points(group="pytest11")}
    assert entry_points.get("kv_sim") == "scenarios.pytest_plugin"


def test_test_seeds_are_a_stable_hash_of_base_seed_and_node_id() -> None:
    first = derive_test_seed(12345, "tests/test_x.py::test_a")
    assert first == derive_test_seed(12345, "tests/test_x.py::test_a")
    assert 0 <= first < 2**64
    others = {
        derive_test_seed(12345, "tests/test_x.py::test_b"),
        derive_test_seed(12346, "tests/test_x.py::test_a"),
        derive_test_seed(12345, "tests/test_x.py::test_a[1]"),
    }
    assert first not in others
    assert len(others) == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", False), ("0", False), ("false", False), ("False", False), ("1", True), ("true", True)],
)
def test_ci_variable(value: str | None, expected: bool | None) -> None:
    assert ci_requested({} if value is None else {"CI": value}) is expected


# -- pytest in a subprocess ------------------------------------------------------------


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*kv simulated disk*", "*--sim-seed=N|last*", "*--sim-scenario=NAME*"])


def test_per_test_seeds_differ_and_do_not_depend_on_pythonhashseed(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_seeds=SEED_TESTS)
    monkeypatch.setenv("CI", "0")
    runs = []
    for hash_seed in ("1", "2"):
        monkeypatch.setenv("PYTHONHASHSEED", hash_seed)
        result = run(pytester, "--sim-seed", "12345")
        result.assert_outcomes(passed=8)
        assert header_seed(result) == (12345, "perfect")
        result.stdout.fnmatch_lines(["kv-sim: base seed 12345 *, scenario perfect, hypothesis profile dev"])
        runs.append(recorded_seeds(pytester.path))
    first, second = runs
    assert len(first) == 8
    assert first == second
    assert len({seed for seed, _worker in first.values()}) == 8
    for name, (seed, _worker) in first.items():
        assert seed == derive_test_seed(12345, f"test_seeds.py::{name}")


def test_sim_seed_last_replays_the_previous_base_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_seeds=SEED_TESTS)
    drawn = run(pytester)
    drawn.assert_outcomes(passed=8)
    base_seed, _scenario = header_seed(drawn)
    first = recorded_seeds(pytester.path)
    replayed = run(pytester, "--sim-seed", "last", "--sim-scenario", "crash")
    replayed.assert_outcomes(passed=8)
    assert header_seed(replayed) == (base_seed, "crash")
    assert recorded_seeds(pytester.path) == first


def test_sim_seed_last_without_a_previous_run_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run_usage_error(pytester, "--sim-seed", "last")
    result.stderr.fnmatch_lines(["*--sim-seed last: no previous run's seed*"])


def test_a_bad_sim_seed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = run_usage_error(pytester, "--sim-seed", "-3")
    result.stderr.fnmatch_lines(["*--sim-seed must be a non-negative integer or 'last', not '-3'*"])


def test_an_unknown_scenario_is_a_usage_error_listing_the_names(pytester: pytest.Pytester) -> None:
    result = run_usage_error(pytester, "--sim-scenario", "nonsense")
    result.stderr.fnmatch_lines([f"*unknown scenario 'nonsense'; choose one of: {', '.join(SCENARIOS)}*"])


def test_a_failing_sim_test_reports_how_to_reproduce_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_failing="""
        def test_store_loses_a_write(sim_store):
            sim_store.set(b"key", b"value")
            assert sim_store.get(b"key") == b"other value"

        def test_plain_failure():
            assert 1 == 2

        def test_passes(sim_store):
            sim_store.set(b"key", b"value")
        """
    )
    result = run(pytester, "--sim-seed", "77", "--sim-scenario", "crash")
    result.assert_outcomes(passed=1, failed=2)
    reproduce = [line for line in result.outlines if line.startswith("reproduce:")]
    assert reproduce == [
        "reproduce: pytest test_failing.py::test_store_loses_a_write --sim-seed 77 --sim-scenario crash"
    ]


def test_xdist_workers_use_the_controllers_base_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_seeds=SEED_TESTS)
    result = run(pytester, "-p", "xdist", "-n", "2")
    result.assert_outcomes(passed=8)
    base_seed, _scenario = header_seed(result)
    seeds = recorded_seeds(pytester.path)
    assert len(seeds) == 8
    assert {worker for _seed, worker in seeds.values()} == {"gw0", "gw1"}
    for name, (seed, _worker) in seeds.items():
        assert seed == derive_test_seed(base_seed, f"test_seeds.py::{name}"), name
    cached = pytester.path / ".pytest_cache" / "v" / "kv_sim" / "base_seed"
    assert cached.read_text() == str(base_seed)  # the controller cached the seed it handed out


def test_io_uring_marker_skips_with_the_probes_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KV_IO_URING_DISABLE", "1")
    pytester.makepyfile(
        test_uring="""
        import pytest

        @pytest.mark.io_uring
        def test_needs_io_uring():
            raise AssertionError("must not run")

        def test_plain():
            pass
        """
    )
    result = run(pytester, "-ra", "--strict-markers")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] test_uring.py:*: io_uring unavailable here: disabled by KV_IO_URING_DISABLE=1"]
    )


PROFILE_TEST = """
from hypothesis import settings

def test_profile():
    current = settings()
    print(
        f"PROFILE {settings.get_current_profile_name()} derandomize={current.derandomize} "
        f"database={current.database} deadline={current.deadline} max_examples={current.max_examples}"
    )
"""


@pytest.mark.parametrize(
    ("ci", "args", "expected"),
    [
        ("true", (), "*PROFILE ci derandomize=True database=None deadline=None max_examples=100"),
        ("1", ("--hypothesis-profile", "thorough"), "*PROFILE thorough derandomize=False * max_examples=2000"),
    ],
)
def test_hypothesis_profile_follows_the_ci_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, args: tuple[str, ...], expected: str
) -> None:
    """(`CI=0` gives `dev`: see the header checked in the seed tests.)"""
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(test_profile=PROFILE_TEST)
    result = run(pytester, "-s", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([expected])
