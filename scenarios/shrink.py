"""Shrink a failing run to a small schedule that still fails, and write it out.

`shrink(schedule)` reduces a failing `Schedule` greedily, each candidate replayed
through the oracle (runs are deterministic, so "still fails" is a fact, not a guess):

1. cut every step after the one that failed (later steps never ran);
2. delete chunks of steps, halving the chunk size down to single steps (ddmin);
3. switch faults off one at a time;
4. drop planned crashes and recovery crashes one at a time, and bring the remaining
   crash points earlier;
5. simplify operations, as each kind defines it (`scenarios.operations`): fewer keys in
   a `set_many`, shorter values.

Any violation counts as "still fails" (the message may change as the run shrinks; the
original one is kept in the result). `write_regression` writes the replay file (JSON)
and a ready-to-run pytest file that replays it.
"""

from __future__ import annotations

import pprint
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

from io_backends.sim.faults import FaultPlan
from scenarios.operations import kind_of
from scenarios.runner import SeedResult, run_schedule
from scenarios.schedule import Schedule, Step

DEFAULT_BUDGET_SECONDS = 120.0


@dataclass(frozen=True)
class Shrunk:
    original: Schedule
    schedule: Schedule
    violation: str  # the shrunk schedule's violation
    original_violation: str
    runs: int  # replays tried
    seconds: float


def fails(schedule: Schedule) -> SeedResult | None:
    """The failing result of replaying `schedule`, or None when it passes."""
    result = run_schedule(schedule)
    return None if result.passed else result


def shrink(
    schedule: Schedule,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    check: Callable[[Schedule], SeedResult | None] = fails,
) -> Shrunk:
    """The smallest schedule found (within the budget) that still fails `check`.

    Raises `ValueError` when `schedule` does not fail to begin with."""
    started = time.perf_counter()
    first = check(schedule)
    if first is None:
        raise ValueError("the schedule passes: nothing to shrink")
    runs = 1
    best, best_result = replace(schedule, steps=schedule.steps[: max(first.operations, 1)]), first

    def try_candidate(candidate: Schedule) -> bool:
        nonlocal best, best_result, runs
        if time.perf_counter() - started > budget_seconds:
            return False
        runs += 1
        result = check(candidate)
        if result is None:
            return False
        best, best_result = replace(candidate, steps=candidate.steps[: max(result.operations, 1)]), result
        return True

    changed = True
    while changed and time.perf_counter() - started <= budget_seconds:
        changed = _delete_chunks(lambda: best, try_candidate)
        for candidates_of in (_without_faults, _without_crashes, _simpler_operations):
            progress = True
            while progress:  # after each success, look again from the new best
                progress = any(try_candidate(candidate) for candidate in candidates_of(best))
                changed = changed or progress
    return Shrunk(
        original=schedule,
        schedule=best,
        violation=best_result.violation,
        original_violation=first.violation,
        runs=runs,
        seconds=time.perf_counter() - started,
    )


def _delete_chunks(best: Callable[[], Schedule], try_candidate: Callable[[Schedule], bool]) -> bool:
    """ddmin-style: delete runs of `chunk` steps, halving `chunk` down to one; after a
    deletion the next run starts where the deleted one did."""
    changed = False
    chunk = max(len(best().steps) // 2, 1)
    while chunk >= 1:
        start = 0
        while start < len(best().steps):
            steps = best().steps
            if try_candidate(best().with_steps(steps[:start] + steps[start + chunk :])):
                changed = True
            else:
                start += chunk
        chunk //= 2
    return changed


def _without_faults(schedule: Schedule) -> Iterator[Schedule]:
    default = FaultPlan()
    for item in fields(FaultPlan):
        if getattr(schedule.faults, item.name) != getattr(default, item.name):
            yield replace(schedule, faults=replace(schedule.faults, **{item.name: getattr(default, item.name)}))


def _without_crashes(schedule: Schedule) -> Iterator[Schedule]:
    if schedule.opening_crashes:
        yield replace(schedule, opening_crashes=())
    if schedule.closing_crashes:
        yield replace(schedule, closing_crashes=())
    for index, step in enumerate(schedule.steps):
        if step.recovery_crashes:
            yield _with_step(schedule, index, replace(step, recovery_crashes=()))
        if step.crash_after_ios is not None:
            yield _with_step(schedule, index, replace(step, crash_after_ios=None))
            if step.crash_after_ios > 1:
                yield _with_step(schedule, index, replace(step, crash_after_ios=step.crash_after_ios // 2))
                yield _with_step(schedule, index, replace(step, crash_after_ios=step.crash_after_ios - 1))


def _simpler_operations(schedule: Schedule) -> Iterator[Schedule]:
    """Each step's simpler variants, as its kind defines them (`OperationKind.simpler`)."""
    for index, step in enumerate(schedule.steps):
        for simpler in kind_of(step.operation).simpler(step.operation, index):
            yield _with_step(schedule, index, replace(step, operation=simpler))


def _with_step(schedule: Schedule, index: int, step: Step) -> Schedule:
    return schedule.with_steps((*schedule.steps[:index], step, *schedule.steps[index + 1 :]))


# -- writing it out -------------------------------------------------------------------

_TEST_TEMPLATE = '''"""Regression test written by `sim_runner --shrink`: {scenario} seed {seed}, shrunk from
{original_steps} to {steps} steps with faults {faults}.

The violation when it was written:
    {violation}

Replay it alone with `sim_runner --replay {replay_name}`.
"""

from scenarios.runner import run_schedule
from scenarios.schedule import Schedule

SCHEDULE = {document}


def test_{name}() -> None:
    result = run_schedule(Schedule.from_json(SCHEDULE), keep_timeline=True)
    assert result.passed, result.violation + "\\n" + "\\n".join(result.timeline)
'''


def regression_name(schedule: Schedule) -> str:
    return re.sub(r"\W", "_", f"{schedule.scenario}_seed_{schedule.seed}_shrunk")


def write_regression(shrunk: Shrunk, directory: Path) -> tuple[Path, Path]:
    """Write `<name>.json` (the replay file) and `test_<name>.py` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    schedule = shrunk.schedule
    name = regression_name(schedule)
    replay = directory / f"{name}.json"
    replay.write_text(schedule.dumps() + "\n")
    test = directory / f"test_{name}.py"
    test.write_text(
        _TEST_TEMPLATE.format(
            scenario=schedule.scenario,
            seed=schedule.seed,
            original_steps=len(shrunk.original.steps),
            steps=len(schedule.steps),
            faults=", ".join(schedule.faults.enabled()) or "none",
            violation=shrunk.violation.replace('"""', "'''"),
            replay_name=replay.name,
            document=pprint.pformat(schedule.to_json(), width=110, sort_dicts=False),
            name=name,
        )
    )
    return replay, test
