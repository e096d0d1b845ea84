"""Crash-test two functions from a test: `CrashCheck`, behind the pytest fixture `crash_check`.

A target file (`sim_runner --target FILE.py`) is a module with `workload(root, ack)` and
`check(root, acked, pending)`; in a test the two are ordinary functions, often closures
over parameters hypothesis drew. `target_from_functions` makes the engine's `Target` of
them, and `CrashCheck` explores it:

    def test_balance_survives_power_loss(crash_check):
        crash_check(workload, check)        # AssertionError: the minimal failing state's report

- `crash_check(workload, check, ...)` records the workload once, checks every crash
  state, and raises `AssertionError` whose message is the report of the minimal failing
  state (`scenarios.target.failure_report`: operations kept, dropped and torn with their
  `file:line`, the lines responsible, the error), the number of other failing states and
  the call that replays the state; it returns the `Exploration` when every state passes.
- `crash_check.explore(...)` returns the `Exploration` without asserting, for tests that
  expect failures.
- `crash_check.state(workload, check, "p4-o0")` replays one state (the regression test
  of a failure); `AssertionError` when it fails.

Keywords: `explore` (`prefix`, `alice`, `random` or `random:N`), `budget` (states checked
at most; default the engine's `DEFAULT_BUDGET_STATES`, a test's few seconds), `faults`
(inline fault names, as `sim_runner --faults`: `scenarios.target_faults.INLINE_FAULTS`).

Raises `CrashCheckError` (not an `AssertionError`) when no verdict can be given: a call the
simulated disk does not model, in the workload or a check. An exception out of the
workload with no faults on is re-raised as it is: the workload is broken before any
crash. A bad option raises `ValueError`.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path

from io_backends.sim.posix.errors import UnmodelledCall
from scenarios.crash_states import DEFAULT_BUDGET_STATES, parse_explore
from scenarios.target import (
    Check,
    Exploration,
    ExploreSettings,
    StateResult,
    Target,
    Workload,
    check_one,
    explore_with,
    failure_report,
)
from scenarios.target_faults import fault_plan

__all__ = ["CrashCheck", "CrashCheckError", "target_from_functions"]


class CrashCheckError(Exception):
    """No verdict: the workload or a check made a call the simulated disk does not model."""


def target_from_functions(workload: Workload, check: Check, name: str | None = None) -> Target:
    """The engine's `Target` of two functions (closures welcome). Its path is the file
    defining `workload`, its name `name` or the workload's qualified name."""
    source = inspect.getsourcefile(workload) or "<unknown>"
    module = sys.modules.get(workload.__module__) or types.ModuleType(workload.__module__)
    return Target(Path(source), name or workload.__qualname__, workload, check, module)


class CrashCheck:
    """Explores two functions' crash states. `seed` (a number, or a function giving one at
    each call: the fixture's follows the running test) drives sampling past the budget
    and inline faults."""

    def __init__(self, seed: int | Callable[[], int] = 0) -> None:
        self._seed = seed

    @property
    def seed(self) -> int:
        return self._seed() if callable(self._seed) else self._seed

    def settings(self, explore: str, budget: int, faults: Iterable[str]) -> ExploreSettings:
        """The engine's settings; raises `ValueError` for a bad mode, budget or fault name."""
        mode, random_count = parse_explore(explore)
        if budget < 1:
            raise ValueError(f"budget must be at least 1 state, not {budget}")
        names = tuple(faults)
        plan = fault_plan(names, self.seed)
        return ExploreSettings(mode, budget, self.seed, random_count, plan, ",".join(names) or None)

    def explore(
        self,
        workload: Workload,
        check: Check,
        *,
        explore: str = "alice",
        budget: int = DEFAULT_BUDGET_STATES,
        faults: Iterable[str] = (),
    ) -> Exploration:
        """Record `workload`, check every crash state with `check`; no assertion."""
        return explore_with(target_from_functions(workload, check), self.settings(explore, budget, faults))

    def __call__(
        self,
        workload: Workload,
        check: Check,
        *,
        explore: str = "alice",
        budget: int = DEFAULT_BUDGET_STATES,
        faults: Iterable[str] = (),
    ) -> Exploration:
        """Explore and assert that every state passes. Raises `AssertionError` (the minimal
        failing state's report), `CrashCheckError`, or the workload's own exception."""
        exploration = self.explore(workload, check, explore=explore, budget=budget, faults=faults)
        _raise_for_harness(exploration)
        failing = exploration.broken_promises
        if failing:
            others = f"\nand {len(failing) - 1} other failing states" if len(failing) > 1 else ""
            sample = f" (a seeded sample of {exploration.possible} possible)" if exploration.sampled else ""
            counts = f"\n{exploration.unique} unique states of {exploration.enumerated} enumerated{sample} checked"
            raise AssertionError(self.report(exploration, failing[0]) + others + counts)
        return exploration

    def state(self, workload: Workload, check: Check, state_id: str, *, faults: Iterable[str] = ()) -> StateResult:
        """Replay the one state `state_id` names. Raises `AssertionError` when it fails,
        `CrashCheckError` on an unmodelled call, `ValueError` for an id this workload cannot
        have."""
        settings = self.settings("alice", DEFAULT_BUDGET_STATES, faults)
        target = target_from_functions(workload, check)
        recorded, result = check_one(target, state_id, settings.seed, settings.faults, settings.root)
        exploration = Exploration(target, settings, recorded, [result], [] if result.passed else [result])
        if isinstance(recorded.workload_error, UnmodelledCall):
            raise CrashCheckError(str(recorded.workload_error)) from recorded.workload_error
        if result.verdict == "unmodelled":
            raise CrashCheckError(self.report(exploration, result))
        if not result.passed:
            raise AssertionError(self.report(exploration, result))
        return result

    def report(self, exploration: Exploration, failure: StateResult) -> str:
        """`failure_report`, its `sim_runner` repro line (which needs a target file) turned
        into the call that replays the state from a test."""
        report = failure_report(exploration, failure)
        repro_line = f"  repro: {exploration.repro(failure.state.id)}"
        assert repro_line in report, "failure_report's repro line changed"
        return report.replace(repro_line, f"  repro: {self.replay_call(exploration, failure.state.id)}")

    def replay_call(self, exploration: Exploration, state_id: str) -> str:
        faults = exploration.settings.faults_name
        extra = f", faults={tuple(faults.split(','))!r}" if faults else ""
        return f"CrashCheck(seed={exploration.settings.seed}).state(workload, check, {state_id!r}{extra})"


def _raise_for_harness(exploration: Exploration) -> None:
    """Raise when no verdict can be given (see the module docstring)."""
    error = exploration.recorded.workload_error
    if isinstance(error, UnmodelledCall):
        raise CrashCheckError(f"the workload: {error}") from error
    if error is not None and exploration.settings.faults is None:
        raise error
    if exploration.unmodelled:
        raise CrashCheckError(failure_report(exploration, exploration.unmodelled[0]))
