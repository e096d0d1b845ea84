"""Crash-test unmodified Python code: record a target's workload once, check it in every crash state.

A target is a Python file with two functions:

- `workload(root, ack)`: does its work under `root` (a `pathlib.Path` on the simulated
  disk) with ordinary `open`, `os`, `pathlib`, `shutil`, `tempfile` calls, and calls
  `ack(value)` whenever it makes a promise to its user ("saved", "committed", ...);
- `check(root, acked, pending)`: runs on the disk a crash left behind and raises when a
  promise is broken (an `AssertionError`, or whatever error the code gets reopening its
  data). `acked` are the values acknowledged before the crash, `pending` the one in
  flight (or None).

`record` runs the workload once on a fresh simulated disk under `interpose`, logging
every micro-operation with the `file:line` that issued it (ALICE's design, in process).
`explore` enumerates crash states from that recording (`scenarios.crash_states`),
builds each state's image, skips those identical to one already checked, and calls
`check` on each under one interposition whose view is swapped per state. Failures are
sorted by minimality: the earliest crash point first, then the fewest drops and tears.
`failure_report` explains one: the operations kept, dropped or torn with their lines,
the lines responsible, the error, and a one-line reproduce command.

With inline faults (a `FaultPlan` for the recording run: EIO, ENOSPC, EROFS, EACCES,
fsyncgate), the workload may raise; that is recorded, not propagated, and one more check
runs on the final state (no crash, but what a failed fsync dropped is gone) with every
acknowledged value: if it fails while the workload raised nothing, acknowledged data was
lost silently.

A call the POSIX view does not model (`UnmodelledCall`) is the harness's gap, not the
target's bug: it is reported apart, as `unmodelled`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib.util
import inspect
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal, cast

from io_backends.sim.faults import FaultInjector, FaultPlan
from io_backends.sim.posix import errors as posix_errors
from io_backends.sim.posix.errors import UnmodelledCall
from io_backends.sim.posix.fs import Image, Tree
from io_backends.sim.posix.interpose import Interposition, interpose
from io_backends.sim.posix.ops import Ack, Recording
from io_backends.sim.posix.view import PosixView
from scenarios.crash_states import (
    DEFAULT_BUDGET_STATES,
    CrashState,
    Deduplicator,
    Explore,
    acknowledged,
    build_image,
    describe,
    parse_state_id,
    plan_states,
    responsible_sites,
    validate,
)

DEFAULT_ROOT = "/kvsim/root"

Workload = Callable[[Path, Callable[[object], None]], None]
Check = Callable[[Path, list[object], object], None]
Verdict = Literal["passed", "failed", "unmodelled"]
ExplorationVerdict = Literal["passed", "failed", "unmodelled", "workload_error"]
ProgressCallback = Callable[[int, int], None]  # (states done, states enumerated)


class TargetError(ValueError):
    """A target file that cannot be used: missing, failing to import, or lacking a
    callable `workload` or `check`."""


@dataclass(frozen=True)
class Target:
    """A loaded target file: its path as given, a display name, its two functions."""

    path: Path
    name: str
    workload: Workload
    check: Check
    module: ModuleType


def load_target(path: str | Path) -> Target:
    """Import the target file at `path` (as a module of its own, registered in
    `sys.modules` so the interposer's alias scan reaches its globals).

    Raises `TargetError` when the file is missing, fails to import, or lacks a callable
    `workload` or `check`."""
    path = Path(path)
    if not path.is_file():
        raise TargetError(f"no target file at {path}")
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()
    module_name = f"_sim_target_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"{path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # a target that exits at import is no target
        del sys.modules[module_name]
        raise TargetError(f"{path} failed to import: {type(error).__name__}: {error}") from error
    functions = {name: getattr(module, name, None) for name in ("workload", "check")}
    missing = [name for name, function in functions.items() if not callable(function)]
    if missing:
        raise TargetError(
            f"{path} must define {' and '.join(f'{name}(...)' for name in missing)}: "
            "workload(root, ack) and check(root, acked, pending)"
        )
    for name, parameters in _PARAMETERS.items():
        if not _accepts(functions[name], len(parameters)):
            raise TargetError(f"{path}: {name} must take {len(parameters)} arguments: {name}({', '.join(parameters)})")
    return Target(path, path.stem, cast(Workload, functions["workload"]), cast(Check, functions["check"]), module)


_PARAMETERS = {"workload": ("root", "ack"), "check": ("root", "acked", "pending")}


def _accepts(function: object, count: int) -> bool:
    """Whether `function` can be called with `count` positional arguments (True when its
    signature cannot be read, as for some builtins: the call will tell)."""
    try:
        inspect.signature(cast(Callable[..., object], function)).bind(*([None] * count))
    except TypeError:
        return False
    except ValueError:
        return True
    return True


# ---------------------------------------------------------------- recording


@dataclass(frozen=True)
class RecordResult:
    """One run of the workload: its micro-operations, the error it raised (None when it
    returned), the disk it left (no crash: the page cache) and what it acknowledged."""

    recording: Recording
    workload_error: BaseException | None
    final_image: Image
    acked: list[object]

    @property
    def workload_traceback(self) -> str:
        error = self.workload_error
        return "".join(traceback.format_exception(error)) if error is not None else ""


def record(target: Target, faults: FaultPlan | None = None, seed: int = 0, root: str = DEFAULT_ROOT) -> RecordResult:
    """Run `target.workload` once on an empty simulated disk mounted at `root`, every op
    recorded. With `faults`, inline faults are drawn from `random.Random(seed)`, and a
    first run without them tells what the workload means to acknowledge
    (`Recording.planned`: the value in flight when a fault stops it early). An exception
    out of the workload (with faults or without) is recorded, not raised
    (KeyboardInterrupt propagates; a `SystemExit` is the workload's error like any other)."""
    initial = Tree().image()
    planned = None if faults is None else record(target, None, seed, root).acked
    recording = Recording([], [], initial, planned)
    injector = FaultInjector(faults, random.Random(seed)) if faults is not None else None
    view = PosixView(root, Tree.from_image(initial), recording=recording, faults=injector)
    error: BaseException | None = None
    with interpose(view):
        try:
            target.workload(Path(view.root), view.ack)
        except (Exception, SystemExit) as raised:  # sys.exit() in a workload ends it, not the run
            error = raised
    acked = [op.value for op in recording.ops if isinstance(op, Ack)]
    return RecordResult(recording, error, view.tree.image(), acked)


# ---------------------------------------------------------------- checking


@dataclass(frozen=True)
class StateResult:
    """The check of one crash state. `represented` counts the enumerated states it
    stands for (identical ones are checked once)."""

    state: CrashState
    verdict: Verdict
    error: str | None = None  # "AssertionError: balance.txt holds ''", None when passed
    traceback: str = ""
    represented: int = 1

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def minimality(self) -> tuple[int, int]:
        """Sort key of failures: fewest operations issued before the crash, then fewest changes."""
        return (self.state.point, self.state.changes)


def check_image(
    target: Target,
    state: CrashState,
    image: Image,
    acked: list[object],
    pending: object | None,
    interposition: Interposition,
) -> StateResult:
    """Mount `image` as a fresh simulated disk (swapped into `interposition`) and run
    `target.check` on it. An `UnmodelledCall` is verdict `unmodelled`; any other
    exception (an `AssertionError` first of all, and a `SystemExit`: a check that exits
    has not said the state is sound) is `failed`."""
    root = interposition.view.root
    interposition.view = PosixView(root, Tree.from_image(image))
    try:
        target.check(Path(root), acked, pending)
    except UnmodelledCall as error:
        return StateResult(state, "unmodelled", _error_text(error), _traceback_text(error))
    except (Exception, SystemExit) as error:
        return StateResult(state, "failed", _error_text(error), _traceback_text(error))
    return StateResult(state, "passed")


def check_state(target: Target, recording: Recording, state: CrashState, interposition: Interposition) -> StateResult:
    """Build `state`'s image from `recording` and check it (`check_image`) with what was
    acknowledged before the crash point and what was in flight."""
    acked, pending = acknowledged(recording, state)
    return check_image(target, state, build_image(recording, state), acked, pending, interposition)


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _traceback_text(error: BaseException) -> str:
    """The traceback without the harness's frames (this module, the POSIX view): what is
    left is the check's code and the libraries it called."""
    summary = traceback.TracebackException.from_exception(error)
    frames = [frame for frame in summary.stack if not _is_harness_file(frame.filename)]
    summary.stack = traceback.StackSummary.from_list(frames)
    return "".join(summary.format())


# Source files whose frames a check's traceback leaves out.
_HARNESS_FILES = (str(Path(__file__).resolve()), str(Path(posix_errors.__file__).resolve().parent) + "/")


@functools.lru_cache(maxsize=4096)
def _is_harness_file(filename: str) -> bool:
    """Cached: a failing check's traceback has a dozen frames, and thousands of states
    fail; resolving each path anew (real `lstat`s) was half an exploration's time."""
    return str(Path(filename).resolve()).startswith(_HARNESS_FILES)


# ---------------------------------------------------------------- exploring


@dataclass(frozen=True)
class ExploreSettings:
    """How a target is explored; everything `repro` needs to rebuild a state. `faults_name`
    is how the command line names `faults` (`--faults NAME`)."""

    explore: Explore = "alice"
    budget: int = DEFAULT_BUDGET_STATES
    seed: int = 0
    random_count: int | None = None
    faults: FaultPlan | None = None
    faults_name: str | None = None
    root: str = DEFAULT_ROOT

    def repro(self, target_path: Path | str, state_id: str) -> str:
        """One command that rebuilds and checks exactly one state."""
        words = ["sim_runner", "--target", str(target_path), "--crash-state", state_id]
        if self.faults is not None or self.seed != 0:
            words += ["--seed", str(self.seed)]
        if self.faults is not None:
            words += ["--faults", self.faults_name or "<custom plan>"]
        return " ".join(words)


@dataclass
class Exploration:
    """What `explore` found. `results` are the states checked, in order; `failures` the
    failed and unmodelled ones, most minimal first; `final` the check of the final state
    (no crash) with every acknowledged value, run only with faults on."""

    target: Target
    settings: ExploreSettings
    recorded: RecordResult
    results: list[StateResult] = field(default_factory=list)
    failures: list[StateResult] = field(default_factory=list)
    final: StateResult | None = None
    enumerated: int = 0  # states built (a seeded sample of `possible` past the budget)
    possible: int = 0  # states the exploration mode allows in all
    unique: int = 0
    seconds: float = 0.0
    # Exceptions raised in `__del__` and other places Python cannot raise from, while the
    # checks ran: a library whose constructor failed on a damaged file often raises again
    # in its finalizer. Counted here, not printed once per state.
    unraisable: int = 0

    @property
    def recording(self) -> Recording:
        return self.recorded.recording

    @property
    def broken_promises(self) -> list[StateResult]:
        """The final state's check when it failed (first: acknowledged data lost with no
        error raised is the plainest statement of the bug), then the failed crash states
        (unmodelled ones left out), most minimal first."""
        failed = [result for result in self.failures if result.verdict == "failed"]
        final = self.final
        return ([final] if final is not None and not final.passed else []) + failed

    @property
    def sampled(self) -> bool:
        """Whether the budget left states out (the rest were a seeded sample)."""
        return self.possible > self.enumerated

    @property
    def checked(self) -> int:
        return len(self.results)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def unmodelled(self) -> list[StateResult]:
        """Checks that hit a call the POSIX view does not model (a harness gap)."""
        return [result for result in self.failures if result.verdict == "unmodelled"]

    @property
    def workload_unmodelled(self) -> bool:
        return isinstance(self.recorded.workload_error, UnmodelledCall)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def verdict(self) -> ExplorationVerdict:
        """`unmodelled` when the workload or a check made a call the view does not model
        (a harness gap: the states say nothing then); `workload_error` when the workload
        raised without faults on (the target itself is broken); `failed` when a state
        (or, with faults, the final check) failed; else `passed`."""
        if self.workload_unmodelled or self.unmodelled:
            return "unmodelled"
        if self.recorded.workload_error is not None and self.settings.faults is None:
            return "workload_error"
        if self.failures or (self.final is not None and not self.final.passed):
            return "failed"
        return "passed"

    def repro(self, state_id: str) -> str:
        return self.settings.repro(self.target.path, state_id)


def explore(
    target: Target,
    explore: Explore = "alice",
    budget: int = DEFAULT_BUDGET_STATES,
    seed: int = 0,
    faults: FaultPlan | None = None,
    on_progress: ProgressCallback | None = None,
    *,
    random_count: int | None = None,
    faults_name: str | None = None,
    root: str = DEFAULT_ROOT,
) -> Exploration:
    """Record `target` once, then check every crash state `enumerate_states` gives
    (identical ones once). `on_progress(done, total)` is called after each enumerated
    state. Raises `ValueError` on a bad exploration mode or budget."""
    settings = ExploreSettings(explore, budget, seed, random_count, faults, faults_name, root)
    return explore_with(target, settings, on_progress)


def explore_with(target: Target, settings: ExploreSettings, on_progress: ProgressCallback | None = None) -> Exploration:
    """`explore` with its settings in one object (what the command line builds)."""
    started = time.perf_counter()
    recorded = record(target, settings.faults, settings.seed, settings.root)
    recording = recorded.recording
    states, possible = plan_states(recording, settings.explore, settings.budget, settings.seed, settings.random_count)
    exploration = Exploration(target, settings, recorded, enumerated=len(states), possible=possible)
    deduplicator = Deduplicator(recording)
    firsts: list[StateResult] = []
    with interpose(PosixView(settings.root, Tree())) as interposition, _counting_unraisable(exploration):
        for done, state in enumerate(states, start=1):
            image = build_image(recording, state)
            if deduplicator.first(state, image):
                acked, pending = acknowledged(recording, state)
                firsts.append(check_image(target, state, image, acked, pending, interposition))
            if on_progress is not None:
                on_progress(done, len(states))
        if settings.faults is not None:
            exploration.final = _check_final(target, recorded, interposition)
    exploration.results = [_with_count(result, deduplicator.represented[result.state.id]) for result in firsts]
    exploration.unique = len(exploration.results)
    failures = [result for result in exploration.results if not result.passed]
    exploration.failures = sorted(failures, key=lambda result: result.minimality)  # stable: ties keep order
    exploration.seconds = time.perf_counter() - started
    return exploration


@contextlib.contextmanager
def _counting_unraisable(exploration: Exploration) -> Iterator[None]:
    """While the checks run, count unraisable exceptions (`Exploration.unraisable`)
    instead of letting Python print each one."""

    def count(_unraisable: object) -> None:
        exploration.unraisable += 1

    previous = sys.unraisablehook
    sys.unraisablehook = count
    try:
        yield
    finally:
        gc.collect()  # finalizers of the checks' objects run now, counted, not later
        sys.unraisablehook = previous


def _with_count(result: StateResult, represented: int) -> StateResult:
    return StateResult(result.state, result.verdict, result.error, result.traceback, represented)


def _check_final(target: Target, recorded: RecordResult, interposition: Interposition) -> StateResult:
    """With faults on: the state after the whole run, without a crash but without what a
    failed fsync dropped, checked with every acknowledged value and nothing in flight. A
    failure counts only if the workload raised nothing: an error is how a program may
    report a fault; silence with lost data is the bug."""
    recording = recorded.recording
    state = CrashState(len(recording.ops))
    image = build_image(recording, state)
    result = check_image(target, state, image, list(recorded.acked), None, interposition)
    if result.verdict == "failed" and recorded.workload_error is not None:
        return StateResult(state, "passed")
    if result.verdict == "failed":
        error = f"acknowledged data lost silently (the workload raised nothing): {result.error}"
        return StateResult(state, "failed", error, result.traceback)
    return result


def check_one(
    target: Target,
    state_id: str,
    seed: int = 0,
    faults: FaultPlan | None = None,
    root: str = DEFAULT_ROOT,
) -> tuple[RecordResult, StateResult]:
    """Record `target` again (deterministic) and check the one state `state_id` names, as
    `--crash-state ID` does. Raises `CrashStateError` (a `ValueError`) when the id does
    not parse or names a state this recording cannot have."""
    state = parse_state_id(state_id)
    recorded = record(target, faults, seed, root)
    validate(recorded.recording, state)
    with interpose(PosixView(root, Tree())) as interposition:
        result = check_state(target, recorded.recording, state, interposition)
    return recorded, result


# ---------------------------------------------------------------- reporting


def failure_report(exploration: Exploration, failure: StateResult) -> str:
    """A failing state explained for a person: its id and verdict, what was promised, the
    operations kept, dropped or torn with their `file:line`, the lines responsible, the
    error with its traceback, and the one-line reproduce command."""
    recording, state = exploration.recording, failure.state
    acked, pending = acknowledged(recording, state)
    stands_for = f" (stands for {failure.represented} states)" if failure.represented > 1 else ""
    kind = "UNMODELLED CALL in" if failure.verdict == "unmodelled" else "FAIL"
    lines = [
        f"{kind} crash state {state.id}{stands_for}: {failure.error}",
        f"  acknowledged before the crash: {acked!r}; in flight: {pending!r}",
        "  operations:",
        *(f"    {line}" for line in describe(recording, state)),
        "  responsible:",
        *(f"    {line}" for line in [str(item) for item in responsible_sites(recording, state)] or ["(none)"]),
        "  traceback:",
        *(f"    {line}" for line in failure.traceback.rstrip("\n").splitlines()),
        f"  repro: {exploration.repro(state.id)}",
    ]
    return "\n".join(lines)


def summary_line(exploration: Exploration) -> str:
    """`rewrite_in_place: 3 of 41 unique states failed (120 enumerated) in 0.3s`."""
    ignored = f"; {exploration.unraisable} exceptions ignored in finalizers" if exploration.unraisable else ""
    if exploration.sampled:
        ignored += f"; a sample: {exploration.possible - exploration.enumerated} states left out by the budget"
    return (
        f"{exploration.target.name}: {exploration.failed} of {exploration.unique} unique states failed "
        f"({exploration.enumerated} enumerated from {len(exploration.recording.ops)} operations) "
        f"in {exploration.seconds:.1f}s{ignored}"
    )
