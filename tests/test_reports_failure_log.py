"""The failure log: a campaign appends each failing seed (commit, scenario, seed, options,
seconds to fail, violation, time) to a JSON-lines file, and `--replay-failures LOG`
reruns each distinct entry, exit 1 while one still fails and 0 once all pass."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scenarios.campaign import Campaign, UsageError, run_campaign
from scenarios.failure_log import FailureLog, LoggedRun, current_commit, read_log, replay_failures

ROOT = Path(__file__).resolve().parent.parent
# sim_runner as a subprocess, its store acknowledging before sync (the crash scenario catches it)
BROKEN = (
    "import runpy, sys, kv.store; original = kv.store.Store._commit; "
    "kv.store.Store._commit = lambda self, sync: original(self, sync=False); "
    "sys.argv = ['sim_runner', *sys.argv[1:]]; "
    f"runpy.run_path({str(ROOT / 'sim_runner.py')!r}, run_name='__main__')"
)


def _sim_runner(*arguments: str, broken: bool = False) -> subprocess.CompletedProcess[str]:
    if broken:
        command = [sys.executable, "-c", BROKEN, *arguments]
    else:
        command = [sys.executable, str(ROOT / "sim_runner.py"), *arguments]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300)


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_failing_campaign_appends_each_failing_seed(tmp_path: Path) -> None:
    arguments = ("--scenario", "crash", "--seeds", "0-7", "--ops", "200", "--report-dir", str(tmp_path))
    completed = _sim_runner(*arguments, broken=True)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    log = tmp_path / "failures.jsonl"
    entries = _entries(log)
    failed = [
        entry for entry in json.loads((tmp_path / "results.json").read_text())["seeds"] if entry["verdict"] != "passed"
    ]
    assert sorted(entry["seed"] for entry in entries) == [entry["seed"] for entry in failed] and entries
    for entry in entries:
        assert set(entry) == {
            "commit",
            "scenario",
            "seed",
            "options",
            "verdict",
            "seconds_to_fail",
            "violation",
            "time",
            "repro",
        }
        assert entry["scenario"] == "crash" and entry["options"] == {"operations": 200, "swarm": False}
        assert entry["commit"] == current_commit() and entry["violation"] and entry["seconds_to_fail"] > 0
        assert entry["repro"] == f"sim_runner --scenario crash --seed {entry['seed']} --ops 200"
    assert str(log) in completed.stdout  # among the artifacts
    again = _sim_runner(*arguments, "--failure-log", str(tmp_path / "other.jsonl"), broken=True)
    assert again.returncode == 1 and len(_entries(tmp_path / "other.jsonl")) == len(entries)
    assert len(_entries(log)) == len(entries)  # --failure-log moved it: the default was left alone


def test_a_passing_campaign_writes_no_log(tmp_path: Path) -> None:
    completed = _sim_runner("--scenario", "crash", "--seeds", "0-1", "--ops", "100", "--report-dir", str(tmp_path))
    assert completed.returncode == 0 and not (tmp_path / "failures.jsonl").exists()


def test_replay_failures_says_which_still_fail(tmp_path: Path) -> None:
    log = tmp_path / "failures.jsonl"
    _sim_runner("--scenario", "crash", "--seeds", "0-5", "--ops", "200", "--report-dir", str(tmp_path), broken=True)
    logged = _entries(log)
    assert logged
    with log.open("a") as file:  # the same failure logged twice is rerun once
        file.write(json.dumps(logged[0]) + "\n")
    still_broken = _sim_runner("--replay-failures", str(log), broken=True)
    assert still_broken.returncode == 1, still_broken.stdout + still_broken.stderr
    assert still_broken.stdout.count("still fails: crash") == len(logged)
    assert f"{len(logged)} of {len(logged)} still fail" in still_broken.stdout
    fixed = _sim_runner("--replay-failures", str(log))
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stdout.count("passes now: crash") == len(logged) and f"0 of {len(logged)} still fail" in fixed.stdout


def test_failure_log_in_process_with_a_fixed_clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import kv.store

    original = kv.store.Store._commit
    monkeypatch.setattr(kv.store.Store, "_commit", lambda self, sync: original(self, sync=False))
    campaign = Campaign(("crash",), range(0, 6), operations=200, swarm=True)
    log = FailureLog(tmp_path / "deep" / "log.jsonl", campaign, clock_text=lambda: "2026-01-01T00:00:00+00:00")
    result = run_campaign(campaign, log.append)
    assert log.appended == len(result.of("failed")) > 0
    entries = _entries(tmp_path / "deep" / "log.jsonl")
    assert {entry["time"] for entry in entries} == {"2026-01-01T00:00:00+00:00"}
    assert all(entry["options"]["swarm"] is True and "--swarm" in entry["repro"] for entry in entries)
    runs = read_log(tmp_path / "deep" / "log.jsonl")
    assert [run.seed for run in runs] == [entry["seed"] for entry in entries]
    reruns = replay_failures(runs)
    assert all(outcome.verdict == "failed" for _, outcome in reruns)
    traces = {
        (outcome.scenario, outcome.seed): outcome.result.trace_hash for outcome in result.of("failed") if outcome.result
    }
    assert {(run.scenario, run.seed): outcome.result.trace_hash for run, outcome in reruns if outcome.result} == traces


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not a failure log entry"),
        ('{"scenario": "nope", "seed": 1, "options": {"operations": 5}}', "unknown scenario"),
        ('{"scenario": "crash", "seed": -1, "options": {"operations": 5}}', "bad seed"),
        ('{"scenario": "crash", "options": {"operations": 5}}', "not a failure log entry"),
    ],
)
def test_a_bad_log_is_a_usage_error(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "log.jsonl").write_text(f"\n{line}\n")
    with pytest.raises(UsageError, match=f"line 2: {message}"):
        read_log(tmp_path / "log.jsonl")
    completed = _sim_runner("--replay-failures", str(tmp_path / "log.jsonl"))
    assert completed.returncode == 2 and message in completed.stderr


def test_a_missing_log_is_a_usage_error(tmp_path: Path) -> None:
    completed = _sim_runner("--replay-failures", str(tmp_path / "missing.jsonl"))
    assert completed.returncode == 2 and "cannot read --replay-failures" in completed.stderr


def test_logged_run_repro_adds_swarm_only_when_the_scenario_lacks_it() -> None:
    assert LoggedRun("crash", 3, 100, swarm=True).repro() == "sim_runner --scenario crash --seed 3 --ops 100 --swarm"
    assert LoggedRun("swarm", 3, 100, swarm=True).repro() == "sim_runner --scenario swarm --seed 3 --ops 100"
    assert LoggedRun("crash", 3, 100, swarm=True).task().scenario.swarm


def test_current_commit_outside_a_checkout_is_none(tmp_path: Path) -> None:
    assert current_commit(tmp_path) is None
    commit = current_commit()
    assert commit is None or len(commit) == 40
