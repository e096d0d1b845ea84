"""`sim_runner --target FILE.py`: crash-test a user's target file from the command line.

`TargetOptions` is what the command line asks for (validated on construction,
`UsageError` otherwise) and prints itself as the run's first line, ending in one
`repro:` command. `explore_target` records the target once and checks its crash states
(`scenarios.target.explore_with`); `replay_state` rebuilds and checks the one state
`--crash-state ID` names. The console and the artifacts are `scenarios.target_reports`.

Exit codes (`TargetRunResult.exit_code`, the campaign's numbers):

- 0: every crash state checked passed (and, with faults, the final state too);
- 1: a promise was broken: a crash state failed its check, or with faults on the final
  state lost acknowledged data while the workload raised nothing;
- 3: no verdict could be given: the workload or a check made a call the POSIX view does
  not model (`UnmodelledCall`, a gap of the harness), or the workload raised without
  any fault switched on (the target is broken before any crash; with faults on, an
  exception is how a workload reports a fault, and the crash states are checked).
  The traceback is printed. Failing states found anyway are still reported.

Usage errors (exit 2) are raised as `UsageError`: a missing target file or one without
`workload`/`check` (`load`), a bad `--explore`, `--budget`, `--seed`, `--faults` or
`--crash-state` id, or an id this recording cannot have (`replay_state`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from io_backends.sim.posix.errors import UnmodelledCall
from scenarios.campaign import EXIT_HARNESS, EXIT_PASSED, EXIT_VIOLATION, UsageError
from scenarios.crash_states import CrashStateError, parse_explore, parse_state_id
from scenarios.target import (
    Exploration,
    ExploreSettings,
    RecordResult,
    StateResult,
    Target,
    TargetError,
    check_one,
    explore_with,
    load_target,
)
from scenarios.target_faults import UnknownFault, fault_plan

__all__ = [
    "COMMAND_LINE_BUDGET_STATES",
    "StateReplay",
    "TargetOptions",
    "TargetRunResult",
    "explore_target",
    "load",
    "replay_state",
]

# About 20 s at the 1,000 states/s per core the issue aims for: thorough, yet an answer
# within a coffee break (pytest's fixture uses the engine's smaller default).
COMMAND_LINE_BUDGET_STATES = 20_000
# A budget past this is a typo: ten million states is hours of checking.
BUDGET_STATES_MAX = 10_000_000


@dataclass(frozen=True)
class TargetOptions:
    """What `sim_runner --target` was asked to do. Construction validates every option
    and raises `UsageError` with a message naming it."""

    path: Path
    explore: str = "alice"  # as typed: prefix, alice, random or random:N
    budget: int = COMMAND_LINE_BUDGET_STATES
    seed: int = 0
    faults: tuple[str, ...] = ()  # inline fault names (`scenarios.target_faults.INLINE_FAULTS`)
    crash_state: str | None = None  # --crash-state ID: replay this one state

    def __post_init__(self) -> None:
        try:
            parse_explore(self.explore)
        except ValueError as error:
            raise UsageError(f"--explore: {error}") from None
        if not 1 <= self.budget <= BUDGET_STATES_MAX:
            raise UsageError(f"--budget must be between 1 and {BUDGET_STATES_MAX} states, not {self.budget}")
        if self.seed < 0:
            raise UsageError("--seed must be >= 0")
        try:
            fault_plan(self.faults)
        except UnknownFault as error:
            raise UsageError(f"--faults: {error}") from None
        if self.crash_state is not None:
            try:
                parse_state_id(self.crash_state)
            except CrashStateError as error:
                raise UsageError(f"--crash-state: {error}") from None

    def settings(self) -> ExploreSettings:
        """The engine's settings for this run."""
        mode, random_count = parse_explore(self.explore)
        faults_name = ",".join(self.faults) or None
        plan = fault_plan(self.faults, self.seed)
        return ExploreSettings(mode, self.budget, self.seed, random_count, plan, faults_name)

    def repro(self) -> str:
        """One command that runs this again: the whole exploration, or the one state."""
        if self.crash_state is not None:
            return self.settings().repro(self.path, self.crash_state)
        words = ["sim_runner", "--target", str(self.path), "--explore", self.explore, "--budget", str(self.budget)]
        words += ["--seed", str(self.seed)]
        if self.faults:
            words += ["--faults", ",".join(self.faults)]
        return " ".join(words)

    def describe(self) -> str:
        """The first line of a run: the target, every option, and the repro command."""
        faults = ",".join(self.faults) or "none"
        if self.crash_state is not None:
            chosen = f"crash-state={self.crash_state}"
        else:
            chosen = f"explore={self.explore} budget={self.budget}"
        return f"sim_runner: target={self.path} {chosen} seed={self.seed} faults={faults} repro: {self.repro()}"


def load(options: TargetOptions) -> Target:
    """The target file, imported. Raises `UsageError` when it is missing or lacks
    `workload`/`check` (the engine's `TargetError`)."""
    try:
        return load_target(options.path)
    except TargetError as error:
        raise UsageError(f"--target: {error}") from None


@dataclass(frozen=True)
class TargetRunResult:
    """One exploration of a target, with what the reports need besides the engine's result."""

    options: TargetOptions
    exploration: Exploration
    started_at_unix_seconds: float
    elapsed_seconds: float

    @property
    def recorded(self) -> RecordResult:
        return self.exploration.recorded

    @property
    def workload_unmodelled(self) -> bool:
        return isinstance(self.recorded.workload_error, UnmodelledCall)

    @property
    def harness_failure(self) -> str:
        """Why no verdict can be given ("" when one can): see the module docstring."""
        if self.workload_unmodelled:
            return "the workload made a call the simulated disk does not model"
        if self.exploration.unmodelled:
            return f"{len(self.exploration.unmodelled)} checks made a call the simulated disk does not model"
        if self.recorded.workload_error is not None and not self.options.faults:
            return (
                "the workload raised an exception with no fault switched on (C code that opens "
                f"files itself, such as sqlite3 or dbm.gnu, is not interposed: under {self.root} it "
                "finds nothing, and it never reaches the real disk there)"
            )
        return ""

    @property
    def root(self) -> str:
        return self.exploration.settings.root

    @property
    def broken_promises(self) -> list[StateResult]:
        """`Exploration.broken_promises`."""
        return self.exploration.broken_promises

    @property
    def exit_code(self) -> int:
        if self.harness_failure:
            return EXIT_HARNESS
        return EXIT_VIOLATION if self.broken_promises else EXIT_PASSED

    @property
    def states_per_second(self) -> float:
        seconds = self.exploration.seconds
        return self.exploration.checked / seconds if seconds > 0 else 0.0


def explore_target(
    target: Target, options: TargetOptions, on_progress: Callable[[int, int], None] | None = None
) -> TargetRunResult:
    """Record the target and check its crash states; `on_progress(done, total)` after each
    enumerated state. Exceptions out of the engine itself propagate (a harness failure)."""
    started_at_unix_seconds = time.time()
    started = time.perf_counter()
    exploration = explore_with(target, options.settings(), on_progress)
    return TargetRunResult(options, exploration, started_at_unix_seconds, time.perf_counter() - started)


@dataclass(frozen=True)
class StateReplay:
    """`--crash-state ID`: the recording and the check of that one state."""

    options: TargetOptions
    target: Target
    recorded: RecordResult
    result: StateResult

    @property
    def exploration(self) -> Exploration:
        """The one state as an `Exploration` (what `failure_report` explains)."""
        failures = [] if self.result.passed else [self.result]
        settings = self.options.settings()
        return Exploration(self.target, settings, self.recorded, [self.result], failures, enumerated=1, unique=1)

    @property
    def exit_code(self) -> int:
        if self.result.verdict == "unmodelled" or isinstance(self.recorded.workload_error, UnmodelledCall):
            return EXIT_HARNESS
        return EXIT_PASSED if self.result.passed else EXIT_VIOLATION


def replay_state(target: Target, options: TargetOptions) -> StateReplay:
    """Record the target again (deterministically) and check the state `--crash-state`
    names. Raises `UsageError` when that id names a state this recording cannot have."""
    assert options.crash_state is not None
    settings = options.settings()
    try:
        recorded, result = check_one(target, options.crash_state, settings.seed, settings.faults, settings.root)
    except CrashStateError as error:
        raise UsageError(f"--crash-state: {error}") from None
    return StateReplay(options, target, recorded, result)
