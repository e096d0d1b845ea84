"""The `sim_runner` command line and its campaigns: listing, exit codes, the repro line, determinism,
shards, jobs, time budgets and the artifacts (results.json, junit.xml, report.html)."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scenarios.campaign
from scenarios.campaign import Campaign, CampaignResult, Shard, run_campaign
from scenarios.registry import SCENARIOS, Scenario
from scenarios.reports import write_artifacts
from scenarios.runner import SeedResult, run_seed

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


# ---------------------------------------------------------------- campaigns: options, artifacts, exit codes

FAST = ("--scenario", "crash", "--scenario", "corruption", "--seeds", "0-5", "--ops", "200")
EXPECTED_RUNS = [(name, seed) for name in ("crash", "corruption") for seed in range(6)]


def _seeds_in(report_directory: Path) -> list[dict[str, Any]]:
    document = json.loads((report_directory / "results.json").read_text())
    seeds: list[dict[str, Any]] = document["seeds"]
    return seeds


def _verdicts_and_hashes(report_directory: Path) -> list[tuple[Any, ...]]:
    keys = ("scenario", "seed", "verdict", "trace_hash")
    return [tuple(entry[key] for key in keys) for entry in _seeds_in(report_directory)]


@pytest.fixture(scope="module")
def serial_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("serial")
    result = _sim_runner(*FAST, "--report-dir", str(directory))
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def test_the_first_line_names_every_derived_option() -> None:
    campaign = Campaign(
        ("crash", "massive"), range(3, 8), jobs=2, shard=Shard(2, 4), swarm=True, time_budget_seconds=60
    )
    line = campaign.describe()
    for part in ("scenarios=crash,massive", "seeds=3-7", "ops=2000 (massive 1000)", "jobs=2", "shard=2/4"):
        assert part in line
    assert "swarm=on" in line and "budget=60s" in line
    repro = "sim_runner --scenario crash --scenario massive --seeds 3-7 --swarm --shard 2/4 --time-budget 60 --jobs 2"
    assert line.endswith(f"repro: {repro}")


def test_swarm_turns_every_scenario_to_swarm_mode_and_the_repro_says_so() -> None:
    campaign = Campaign(("crash", "swarm"), range(0, 2), swarm=True)
    assert all(scenario.swarm for scenario in campaign.scenarios())
    assert campaign.seed_repro("crash", 1, 200) == "sim_runner --scenario crash --seed 1 --ops 200 --swarm"
    assert campaign.seed_repro("swarm", 1, 200) == "sim_runner --scenario swarm --seed 1 --ops 200"


@settings(max_examples=60, deadline=None)
@given(
    scenario_count=st.integers(1, 4),
    seed_start=st.integers(0, 50),
    seed_count=st.integers(1, 30),
    shard_count=st.integers(1, 7),
)
def test_shards_are_disjoint_and_cover_the_campaign(
    scenario_count: int, seed_start: int, seed_count: int, shard_count: int
) -> None:
    names = tuple(list(SCENARIOS)[:scenario_count])
    seeds = range(seed_start, seed_start + seed_count)
    everything = [(task.scenario.name, task.seed) for task in Campaign(names, seeds).tasks()]
    shards = [Campaign(names, seeds, shard=Shard(index, shard_count)) for index in range(1, shard_count + 1)]
    runs = [[(task.scenario.name, task.seed) for task in shard.tasks()] for shard in shards]
    assert sorted(run for shard_runs in runs for run in shard_runs) == sorted(everything)
    assert len(set(everything)) == len(everything)
    assert [len(shard_runs) for shard_runs in runs] == [shard.runs_planned for shard in shards]


def test_sharded_runs_partition_the_results(serial_reports: Path, tmp_path: Path) -> None:
    merged = []
    for index in (1, 2):
        directory = tmp_path / f"shard{index}"
        result = _sim_runner(*FAST, "--shard", f"{index}/2", "--report-dir", str(directory))
        assert result.returncode == 0, result.stdout + result.stderr
        merged += _verdicts_and_hashes(directory)
    assert sorted(merged) == sorted(_verdicts_and_hashes(serial_reports))


def test_two_jobs_give_the_same_results_as_one(serial_reports: Path, tmp_path: Path) -> None:
    result = _sim_runner(*FAST, "--jobs", "2", "--report-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _verdicts_and_hashes(tmp_path) == _verdicts_and_hashes(serial_reports)


def test_results_json_has_one_entry_per_seed(serial_reports: Path) -> None:
    seeds = _seeds_in(serial_reports)
    assert [(entry["scenario"], entry["seed"]) for entry in seeds] == EXPECTED_RUNS
    for entry in seeds:
        assert entry["verdict"] == "passed" and entry["operations"] == 200 and len(entry["trace_hash"]) == 16
        assert entry["repro"] == f"sim_runner --scenario {entry['scenario']} --seed {entry['seed']} --ops 200"
        for count in entry["faults"].values():
            assert set(count) == {"fired", "opportunities", "configured_probability"}


def test_junit_is_well_formed_with_one_testcase_per_seed(serial_reports: Path) -> None:
    root = ElementTree.parse(serial_reports / "junit.xml").getroot()
    assert root.tag == "testsuites" and root.get("tests") == "12" and root.get("failures") == "0"
    cases = [(case.get("classname"), case.get("name")) for case in root.iter("testcase")]
    assert cases == [(name, f"seed {seed}") for name, seed in EXPECTED_RUNS]
    assert [suite.get("tests") for suite in root.iter("testsuite")] == ["6", "6"]
    assert "<html" in (serial_reports / "report.html").read_text()


def _failing_campaign(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CampaignResult:
    """Acknowledge before sync, in this process (jobs=1), and write the artifacts."""
    import kv.store

    original = kv.store.Store._commit

    def commit_without_sync(self: kv.store.Store, sync: bool) -> None:
        original(self, sync=False)

    monkeypatch.setattr(kv.store.Store, "_commit", commit_without_sync)
    result = run_campaign(Campaign(("crash",), range(0, 10), operations=200))
    write_artifacts(result, tmp_path)
    return result


def test_a_broken_store_gives_junit_failures_with_repro_and_an_html_timeline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = _failing_campaign(monkeypatch, tmp_path)
    assert result.exit_code == 1
    failed = result.of("failed")
    assert failed and all(outcome.result and outcome.result.timeline for outcome in failed)
    failures = {
        case.get("name"): case.find("failure") for case in ElementTree.parse(tmp_path / "junit.xml").iter("testcase")
    }
    for outcome in failed:
        failure = failures[f"seed {outcome.seed}"]
        assert failure is not None and failure.text is not None
        assert f"repro: sim_runner --scenario crash --seed {outcome.seed} --ops 200" in failure.text
        assert outcome.result is not None and outcome.result.violation in failure.text
    page = html.unescape((tmp_path / "report.html").read_text())
    first = failed[0]
    assert first.result is not None
    assert "Timeline (" in page and first.result.timeline[-1] in page and "VIOLATION" in page
    verdicts = [(entry["seed"], entry["verdict"]) for entry in _seeds_in(tmp_path)]
    assert verdicts == [(outcome.seed, outcome.verdict) for outcome in result.outcomes]


def test_a_harness_failure_is_an_error_with_its_traceback_and_stops_new_seeds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def broken_run_seed(scenario: Scenario, seed: int, operations: int, keep_timeline: bool) -> SeedResult:
        if seed == 2:
            raise RuntimeError("the harness tripped")
        return SeedResult(scenario.name, seed, operations, trace_hash="0" * 16)

    monkeypatch.setattr(scenarios.campaign, "run_seed", broken_run_seed)
    result = run_campaign(Campaign(("crash",), range(0, 10)))
    assert result.exit_code == 3 and result.stopped_by == "harness failure"
    assert [outcome.verdict for outcome in result.outcomes] == ["passed", "passed", "error"]
    assert "RuntimeError: the harness tripped" in result.outcomes[-1].harness_traceback
    write_artifacts(result, tmp_path)
    [error] = ElementTree.parse(tmp_path / "junit.xml").iter("error")
    assert "repro: sim_runner --scenario crash --seed 2 --ops 2000" in (error.text or "")


def test_a_failing_seed_that_does_not_replay_is_a_harness_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsteady_run_seed(scenario: Scenario, seed: int, operations: int, keep_timeline: bool) -> SeedResult:
        return SeedResult(scenario.name, seed, operations, passed=False, trace_hash=f"{keep_timeline:<16}")

    monkeypatch.setattr(scenarios.campaign, "run_seed", unsteady_run_seed)
    result = run_campaign(Campaign(("crash",), range(0, 1)))
    assert result.exit_code == 3 and "does not replay" in result.outcomes[0].harness_traceback


def test_a_time_budget_stops_starting_seeds_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    def quick_run_seed(scenario: Scenario, seed: int, operations: int, keep_timeline: bool) -> SeedResult:
        return SeedResult(scenario.name, seed, operations)

    monkeypatch.setattr(scenarios.campaign, "run_seed", quick_run_seed)
    ticks = iter(range(1000))  # each read of the clock: one more second
    campaign = Campaign(("crash", "perfect"), range(0, 100), time_budget_seconds=5)
    result = run_campaign(campaign, clock=lambda: float(next(ticks)))
    assert result.stopped_by == "time budget"
    started = [(outcome.scenario, outcome.seed) for outcome in result.outcomes]
    assert started == [("crash", 0), ("crash", 1), ("perfect", 0), ("perfect", 1)]  # seed by seed, then ordered


@pytest.mark.parametrize(
    "arguments",
    [
        ["--shard", "0/4"],
        ["--shard", "5/4"],
        ["--shard", "2"],
        ["--jobs", "0"],
        ["--time-budget", "0"],
        ["--seed", "-1"],
    ],
)
def test_bad_campaign_options_exit_2_with_a_message(arguments: list[str]) -> None:
    result = _sim_runner(*arguments)
    assert result.returncode == 2
    assert result.stderr.strip() and not result.stdout


def test_exhaustive_crash_points_from_the_command_line() -> None:
    result = _sim_runner("--exhaustive")
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.splitlines()[-1]
    assert last.startswith("exhaustive: ") and last.endswith(" 0 failures"), last
    assert int(last.split()[1]) > 1000  # crash points tried
