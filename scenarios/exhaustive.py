"""Every crash point of opening, repair, salvage, compaction and close, ALICE-style.

Sampling misses short critical windows: a bug whose window is one I/O near the end of
an open is never hit by a crash drawn within an open's first few dozen I/Os. Here, for
each small prepared store (`scenarios.exhaustive_stores`) and each action, the action's
I/Os are counted on an uncrashed run (N), then the action is crashed at every I/O
(point i in 1..N: the crash takes the place of its i-th I/O; point N+1: right after it
returned), under each survival mode (nothing, a prefix, everything, and every single
omitted directory change where several were pending), and recovered.

What it verifies, per crash point:

- the recovered state is legal: for an open or a repair, the state the uncrashed open
  gives (or one the recipe declares legal, e.g. with or without a write whose sync
  failed); for compaction, the state before it (compaction never changes the logical
  state); for a close with unsynced `batch` writes, the state before them plus a prefix
  of them (all of them once the close returned); an open that refuses (mid-log damage
  without repair) refuses again;
- no corruption is reported where the prepared store has none;
- a loss the uncrashed open reports (a torn tail, a corruption) is reported by the
  recovery after a crash inside that open: the crashed open's report never reached its
  caller, so it must be reported again (twice is safe, never zero times);
- every file a repair says it moved to quarantine/ is there, and still there after a
  crash right after the open returned;
- recovery is idempotent and durable: a crash right after the recovered open returned,
  then another open, gives the same state;
- for an open, recovery that crashes again (at a few points of the reopen) still ends
  in a legal state.

Deliberately not verified: torn writes and media faults inside the crash window (the
random campaign samples those), performance, and recovery-report counts beyond "a loss
reported is reported again".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import kv
from io_backends.sim import SimulatedCrash
from kv.errors import KvError
from kv.opening import OnCorruption
from kv.recovery import RecoveryReport
from kv.store import Durability, Store
from scenarios.exhaustive_stores import (
    EVERYTHING_SURVIVES,
    RECIPES,
    SEGMENT_SIZE_TARGET_BYTES,
    STORE_DIRECTORY,
    SURVIVAL_MODES,
    ExhaustiveIo,
    PreparedStore,
    Survival,
    omit_entry,
    prepare_all,
)
from scenarios.workload import Model, Operation, apply, read_state, run_operation

Action = Literal["open", "repair", "salvage", "compact", "close"]
ACTIONS: tuple[Action, ...] = ("open", "repair", "salvage", "compact", "close")
OPENS: tuple[Action, ...] = ("open", "repair", "salvage")  # the actions that are an open
# A close is crashed with these `batch` writes unsynced (no virtual time passes between
# them, far fewer than BATCH_OPERATIONS_MAX: the close's flush is their only sync).
CLOSE_WRITES: tuple[Operation, ...] = (
    Operation("set", {b"close-a": b"a" * 40}),
    Operation("set_many", {b"close-b": b"b" * 30, b"close-c": b"c" * 50, b"key0001": b"overwritten at close"}),
    Operation("delete", {b"close-a": None}),
)
# For an open, recovery is crashed once more at these fractions of the open's I/Os.
REOPEN_CRASH_FRACTIONS = (0.0, 0.5, 1.0)

# An outcome: the state a recovery gives, or the name of the error an open raised.
Outcome = Model | str


@dataclass(frozen=True)
class Failure:
    store: str
    action: Action
    point: int  # 1..N: the crash took the place of this I/O; N+1: after the action returned
    survival: str
    crashed_in: str  # the I/O the crash took the place of ("kind path"), from the trace
    difference: str
    reopen_crash: int | None = None  # the reopen crashed too, at this I/O

    def __str__(self) -> str:
        if self.survival == "-":
            return f"{self.store}/{self.action}, uncrashed: {self.difference}"
        again = f", reopen crashed at I/O {self.reopen_crash}" if self.reopen_crash is not None else ""
        return (
            f"{self.store}/{self.action}: crash at I/O {self.point} ({self.crashed_in}), "
            f"survival {self.survival}{again}: {self.difference}"
        )


@dataclass
class CaseResult:
    """One prepared store and one action: its I/O count and every crash point tried."""

    store: str
    action: Action
    ios: int = 0
    points_tried: int = 0
    failures: list[Failure] = field(default_factory=list)


@dataclass
class ExhaustiveResult:
    cases: list[CaseResult] = field(default_factory=list)

    @property
    def failures(self) -> list[Failure]:
        return [failure for case in self.cases for failure in case.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def points_tried(self) -> int:
        return sum(case.points_tried for case in self.cases)

    def summary(self) -> list[str]:
        lines = [
            f"{case.store}/{case.action}: {case.ios} I/Os, {case.points_tried} crash points, "
            f"{len(case.failures)} failures"
            for case in self.cases
        ]
        lines.append(f"exhaustive: {self.points_tried} crash points, {len(self.failures)} failures")
        return lines


@dataclass
class _Case:
    """What every crash point of one store and action is checked against."""

    prepared: PreparedStore
    action: Action
    ios: int
    trace: list[str]  # the uncrashed action's I/Os, in completion order
    reference: Outcome
    reported: RecoveryReport | None  # the uncrashed open's report (open actions)
    before: Model  # the state before the action (compact, close)


def _on_corruption(prepared: PreparedStore, action: Action) -> OnCorruption:
    """Salvage opens every store with salvage (on a store without damage it must do what
    an open does); repair only the damaged one."""
    if action == "salvage":
        return "salvage"
    return "raise" if action == "open" else "repair" if prepared.damaged else "raise"


def _open(io: ExhaustiveIo, on_corruption: OnCorruption, durability: Durability) -> Store:
    return kv.open(
        STORE_DIRECTORY,
        io=io,
        durability=durability,
        on_corruption=on_corruption,
        segment_size_target_bytes=SEGMENT_SIZE_TARGET_BYTES,
    )


def _recover(io: ExhaustiveIo, on_corruption: OnCorruption) -> tuple[Outcome, Store | None]:
    """Open the store; its state, or the name of the typed error the open (or a read of
    the state it recovered) raised."""
    try:
        store = _open(io, on_corruption, "always")
    except SimulatedCrash:
        raise
    except KvError as error:
        return type(error).__name__, None
    except Exception as error:  # not typed: a store bug, reported as the outcome
        return f"untyped {type(error).__name__} from the open: {error}", None
    try:
        return read_state(store), store
    except SimulatedCrash:
        raise
    except Exception as error:
        return f"{type(error).__name__} reading the recovered state: {error}", store


def _setup(prepared: PreparedStore, action: Action, io: ExhaustiveIo) -> tuple[Store | None, Model]:
    """What runs, uncrashed, before the action: for compact and close, an open (and the
    close's unsynced writes). Returns the store and its state before the writes."""
    if action in OPENS:
        return None, {}
    store = _open(io, _on_corruption(prepared, action), "batch" if action == "close" else "always")
    before = read_state(store)
    if action == "close":
        for operation in CLOSE_WRITES:
            run_operation(store, operation)
    return store, before


def _act(action: Action, store: Store | None, io: ExhaustiveIo, prepared: PreparedStore) -> Store | None:
    """Run the action; an open that refuses (a typed error) gives None."""
    if action in OPENS:
        try:
            return _open(io, _on_corruption(prepared, action), "always")
        except KvError:
            return None
    assert store is not None
    if action == "compact":
        store.compact()
    else:
        store.close()
    return store


def _reference(prepared: PreparedStore, action: Action) -> _Case:
    """Run the action uncrashed: count its I/Os and keep what it gives. Raises the
    `KvError` of a compaction or close that fails uncrashed."""
    io = ExhaustiveIo(prepared.fresh_disk(), EVERYTHING_SURVIVES)
    store, before = _setup(prepared, action, io)
    start = len(io.trace)
    if action not in OPENS:
        _act(action, store, io, prepared)
        reference = before if action == "compact" else _apply_all(before, CLOSE_WRITES)
        return _Case(prepared, action, len(io.trace) - start, io.trace[start:], reference, None, before)
    result = _act(action, store, io, prepared)
    trace = io.trace[start:]
    if result is None:
        return _Case(prepared, action, len(trace), trace, "CorruptionDetected", None, before)
    try:
        outcome: Outcome = read_state(result)
    except KvError as error:
        outcome = f"{type(error).__name__} reading the recovered state"
    return _Case(prepared, action, len(trace), trace, outcome, result.recovery, before)


def _check_reference(case: _Case) -> list[str]:
    """The uncrashed open reports what the prepared store holds: a torn tail, a
    corruption (refused without repair), or nothing; and gives a legal state."""
    if case.action not in OPENS:
        return []
    prepared, report = case.prepared, case.reported
    if prepared.damaged and case.action == "open":
        return [] if case.reference == "CorruptionDetected" else [f"the open did not refuse: {case.reference!r:.200}"]
    if report is None or isinstance(case.reference, str):
        return [f"the open gave {case.reference}"]
    problems = []
    salvaged = prepared.damaged and case.action == "salvage"  # keeps more than any point-in-time state
    if prepared.legal is not None and not salvaged and case.reference not in prepared.legal:
        problems.append(_difference(list(prepared.legal), case.reference))
    if prepared.damaged and not report.corruptions:
        problems.append(f"the damage was not reported as a corruption: {report.summary()}")
    if prepared.torn and (not report.torn_tails or report.corruptions):
        problems.append(f"the torn tail was not reported as one: {report.summary()}")
    if not prepared.damaged and not prepared.torn and not report.clean:
        problems.append(f"a clean store's open reported damage: {report.summary()}")
    return problems


def _apply_all(model: Model, operations: Sequence[Operation]) -> Model:
    for operation in operations:
        model = apply(model, operation)
    return model


def _legal(case: _Case, completed: bool) -> list[Outcome]:
    """The outcomes a recovery may give after a crash (`completed`: the action returned)."""
    if case.action in OPENS:
        legal = case.prepared.legal
        if legal is None or completed or (case.prepared.damaged and case.action == "salvage"):
            return [case.reference]  # a salvage crashed anywhere salvages the same again
        return list(legal)
    if case.action == "compact" or completed:
        return [case.reference]
    return [_apply_all(case.before, CLOSE_WRITES[:count]) for count in range(len(CLOSE_WRITES) + 1)]


def _difference(expected: list[Outcome], actual: Outcome) -> str:
    """Per key, expected versus actual (against the nearest legal outcome)."""
    if isinstance(actual, str) or any(isinstance(outcome, str) for outcome in expected):
        return f"expected {[o if isinstance(o, str) else f'{len(o)} keys' for o in expected]}, got {actual!r:.200}"
    model = min(expected, key=lambda m: len(set(m.items()) ^ set(actual.items())))  # type: ignore[union-attr]
    assert not isinstance(model, str)
    missing = sorted(set(model) - set(actual))[:5]
    common = sorted(set(model) & set(actual))
    changed = [(key, model[key][:20], actual[key][:20]) for key in common if model[key] != actual[key]][:5]
    extra = sorted(set(actual) - set(model))[:5]
    return f"not a legal state: missing {missing}, changed (key, expected, actual) {changed}, unexpected {extra}"


def _check_report(case: _Case, report: RecoveryReport, crashed_inside_open: bool) -> list[str]:
    problems = []
    if report.corruptions and not case.prepared.damaged:
        problems.append(f"corruption reported in a store with no damage: {report.summary()}")
    reported = case.reported
    if crashed_inside_open and reported is not None:
        # The crashed open's report never reached its caller: its losses must be reported now.
        if reported.torn_tails and not report.torn_tails:
            problems.append(f"the torn tail the open reports was not reported after the crash: {report.summary()}")
        if reported.corruptions and not report.corruptions:
            problems.append(f"the corruption the open reports was not reported after the crash: {report.summary()}")
    return problems


def _check_quarantine(io: ExhaustiveIo, report: RecoveryReport, when: str) -> list[str]:
    """Every file a repair says it moved to quarantine/ is there, and not empty."""
    problems = []
    for name in report.quarantined:
        inode = io.disk.lookup(f"{STORE_DIRECTORY}/{name}")
        if inode is None or not inode.data:
            problems.append(f"{name}, reported quarantined, is {'missing' if inode is None else 'empty'} {when}")
    return problems


def _recover_checked(
    case: _Case, io: ExhaustiveIo, legal: list[Outcome], crashed_inside_open: bool, reopen_crash: int | None
) -> list[str]:
    """Recover (crashing the reopen at `reopen_crash` when given), check the outcome and
    the report, then crash again right after the open and check the state holds."""
    on_corruption = _on_corruption(case.prepared, case.action)
    if reopen_crash is not None:
        io.crash_at_operation = io.operations_completed + reopen_crash - 1
        try:
            _recover(io, on_corruption)
        except SimulatedCrash:
            pass
        else:  # the reopen took fewer I/Os: crash right after it instead
            io.crash()
        io.crash_at_operation = None
    outcome, store = _recover(io, on_corruption)
    if outcome not in legal:
        return [_difference(legal, outcome)]
    problems = []
    if store is not None:
        problems += _check_report(case, store.recovery, crashed_inside_open)
        problems += _check_quarantine(io, store.recovery, "after the open")
    io.crash()
    again, store_again = _recover(io, on_corruption)
    if again != outcome:
        problems.append(
            f"not idempotent: a crash right after recovery, then an open, gives {_difference([outcome], again)}"
        )
    if store is not None:
        problems += _check_quarantine(io, store.recovery, "after a crash right after the open")
    if store_again is not None:
        problems += _check_report(case, store_again.recovery, False)
    return problems


def _run_point(case: _Case, point: int, survival: Survival, reopen_crash: int | None) -> tuple[list[str], int]:
    """Crash the action at `point` under `survival`, recover, check; return the problems
    and how many directory changes were pending at the crash."""
    io = ExhaustiveIo(case.prepared.fresh_disk(), survival)
    store, _before = _setup(case.prepared, case.action, io)
    completed = point > case.ios
    if not completed:
        io.crash_at_operation = io.operations_completed + point - 1
    try:
        _act(case.action, store, io, case.prepared)
    except SimulatedCrash:
        pass
    else:
        if not completed:
            return [f"the action completed without reaching crash point {point}"], 0
        io.crash()
    io.crash_at_operation = None
    pending = io.survival.entries_pending[0] if io.survival.entries_pending else 0
    inside_open = case.action in OPENS and not completed
    return _recover_checked(case, io, _legal(case, completed), inside_open, reopen_crash), pending


def _reopen_crashes(case: _Case) -> list[int]:
    """The points at which an open's recovery is crashed once more."""
    if case.action not in OPENS:
        return []
    return sorted({max(1, round(fraction * case.ios)) for fraction in REOPEN_CRASH_FRACTIONS})


def run_case(prepared: PreparedStore, action: Action) -> CaseResult:
    """Every crash point of `action` on `prepared`, under every survival mode."""
    try:
        case = _reference(prepared, action)
    except Exception as error:  # a typed error or a store bug, uncrashed: nothing to crash
        failure = Failure(
            prepared.name, action, 0, "-", "the uncrashed action", f"raised {type(error).__name__}: {error}"
        )
        return CaseResult(prepared.name, action, 0, 1, [failure])
    result = CaseResult(prepared.name, action, case.ios)
    result.failures += [
        Failure(prepared.name, action, case.ios + 1, "-", "the uncrashed action", problem)
        for problem in _check_reference(case)
    ]
    for point in range(1, case.ios + 2):
        crashed_in = case.trace[point - 1] if point <= case.ios else "after the action returned"
        omissions = 0
        for survival in SURVIVAL_MODES:
            for again in [None, *_reopen_crashes(case)]:
                problems, pending = _run_point(case, point, survival, again)
                result.points_tried += 1
                result.failures += [
                    Failure(prepared.name, action, point, survival.name, crashed_in, problem, again)
                    for problem in problems
                ]
                if survival is EVERYTHING_SURVIVES and again is None:
                    omissions = pending if pending > 1 else 0
        for index in range(omissions):
            problems, _pending = _run_point(case, point, omit_entry(index), None)
            result.points_tried += 1
            result.failures += [
                Failure(prepared.name, action, point, f"omit-{index}", crashed_in, problem) for problem in problems
            ]
    return result


def run_exhaustive(
    stores: Sequence[str] | None = None,
    actions: Sequence[Action] = ACTIONS,
    prepared: Sequence[PreparedStore] | None = None,
) -> ExhaustiveResult:
    """Every crash point of every action on every prepared store: `prepared` (built with
    `scenarios.exhaustive_stores.prepare_all`, e.g. with the real store before a broken
    variant is switched on), else the stores named `stores` (default all of `RECIPES`).
    Deterministic; takes no seed."""
    if prepared is None:
        prepared = prepare_all(list(stores) if stores is not None else list(RECIPES))
    result = ExhaustiveResult()
    for store in prepared:
        for action in actions:
            result.cases.append(run_case(store, action))
    return result
