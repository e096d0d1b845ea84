"""The failure log: every failing seed of every campaign, one JSON object a line, kept
across runs (as TigerBeetle's CFO keeps the seeds it found), and rerun on demand.

`FailureLog.append` adds one line per failing (or erroring) seed as the campaign reports
it, so an interrupted campaign still leaves its failures behind. `replay_failures` reads
a log back and reruns each distinct (scenario, seed, options) once, to tell which
failures are fixed and which still fail. The format is in `reports/README.md`:

    {"commit": "3f2a...", "scenario": "corruption", "seed": 42,
     "options": {"operations": 2000, "swarm": false}, "verdict": "failed",
     "seconds_to_fail": 1.84, "violation": "...", "time": "2026-01-31T12:00:00+00:00",
     "repro": "sim_runner --scenario corruption --seed 42 --ops 2000"}
"""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from scenarios.campaign import Campaign, SeedOutcome, SeedTask, UsageError, run_task
from scenarios.registry import SCENARIOS

FAILURE_LOG_FILE = "failures.jsonl"
# `git rev-parse` answers in milliseconds; past this the checkout is not worth waiting for.
GIT_TIMEOUT_SECONDS = 5
# A log longer than this is not one to rerun by accident (each line can be a minute of CPU).
REPLAY_ENTRIES_MAX = 100_000
PROJECT_DIRECTORY = Path(__file__).resolve().parent.parent


def current_commit(directory: Path = PROJECT_DIRECTORY) -> str | None:
    """`git rev-parse HEAD` of the checkout the code runs from, or None outside one."""
    try:
        answer = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = answer.stdout.strip()
    return commit if answer.returncode == 0 and commit else None


def utc_now_text() -> str:
    return datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="seconds")


def log_entry(campaign: Campaign, outcome: SeedOutcome, commit: str | None, time_text: str) -> dict[str, Any]:
    """One line of the log for a failing or erroring seed of `campaign`."""
    if outcome.result is not None:
        violation = outcome.result.violation
    else:
        violation = (outcome.harness_traceback.strip().splitlines() or ["the harness failed"])[-1]
    return {
        "commit": commit,
        "scenario": outcome.scenario,
        "seed": outcome.seed,
        "options": {"operations": outcome.operations, "swarm": campaign.swarm},
        "verdict": outcome.verdict,
        "seconds_to_fail": round(outcome.elapsed_seconds, 6),
        "violation": violation,
        "time": time_text,
        "repro": campaign.outcome_repro(outcome),
    }


class FailureLog:
    """Appends the failing seeds of one campaign to a JSON-lines file (created with its directory)."""

    def __init__(self, path: Path, campaign: Campaign, clock_text: Callable[[], str] = utc_now_text) -> None:
        self.path = path
        self.campaign = campaign
        self.clock_text = clock_text
        self.commit: str | None = None
        self.commit_known = False
        self.appended = 0

    def append(self, outcome: SeedOutcome) -> None:
        """Log `outcome` if it did not pass; raises `OSError` when the file cannot be written."""
        if outcome.verdict == "passed":
            return
        if not self.commit_known:
            self.commit, self.commit_known = current_commit(), True
        entry = log_entry(self.campaign, outcome, self.commit, self.clock_text())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry, sort_keys=True) + "\n")
        self.appended += 1


@dataclass(frozen=True)
class LoggedRun:
    """One distinct (scenario, seed, options) of a log, and how often it was logged."""

    scenario: str
    seed: int
    operations: int
    swarm: bool
    times_logged: int = 1

    def repro(self) -> str:
        swarm = " --swarm" if self.swarm and not SCENARIOS[self.scenario].swarm else ""
        return f"sim_runner --scenario {self.scenario} --seed {self.seed} --ops {self.operations}{swarm}"

    def task(self) -> SeedTask:
        scenario = SCENARIOS[self.scenario]
        return SeedTask(replace(scenario, swarm=True) if self.swarm else scenario, self.seed, self.operations, False)


def read_log(path: Path) -> list[LoggedRun]:
    """The distinct runs of the log at `path`, in order of first appearance; raises `UsageError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read --replay-failures {path}: {error.strerror}") from None
    runs: dict[tuple[str, int, int, bool], int] = {}
    for number, line in _lines(text):
        key = _parse_entry(path, number, line)
        runs[key] = runs.get(key, 0) + 1
        if len(runs) > REPLAY_ENTRIES_MAX:
            raise UsageError(f"--replay-failures {path}: more than {REPLAY_ENTRIES_MAX} distinct runs")
    return [LoggedRun(*key, times_logged=count) for key, count in runs.items()]


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def _parse_entry(path: Path, number: int, line: str) -> tuple[str, int, int, bool]:
    where = f"--replay-failures {path}, line {number}"
    try:
        entry = json.loads(line)
        scenario, seed, options = entry["scenario"], entry["seed"], entry["options"]
        operations, swarm = options["operations"], options.get("swarm", False)
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{where}: not a failure log entry ({error})") from None
    if scenario not in SCENARIOS:
        raise UsageError(f"{where}: unknown scenario {scenario!r}")
    valid = [isinstance(seed, int), isinstance(operations, int), isinstance(swarm, bool)]
    if not all(valid) or seed < 0 or operations < 1:
        raise UsageError(f"{where}: bad seed, operations or swarm")
    return scenario, seed, operations, swarm


def replay_failures(
    runs: list[LoggedRun], on_rerun: Callable[[LoggedRun, SeedOutcome], None] = lambda run, outcome: None
) -> list[tuple[LoggedRun, SeedOutcome]]:
    """Rerun each logged run in this process, in order; `on_rerun` hears of each as it ends."""
    reruns = []
    for run in runs:
        outcome = run_task(run.task())
        on_rerun(run, outcome)
        reruns.append((run, outcome))
    return reruns
