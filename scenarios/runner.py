"""Run one scenario for one seed on the simulated disk and check it against the model.

The oracle (what every seed checks):

- every `get` returns exactly what the model holds, or raises a typed error when a
  media fault is on (no silent corruption, no stale read);
- after a crash, a failed write or a failed open, the recovered state is the
  acknowledged state, or that state plus the one operation in flight, whole
  (durability; atomicity of `set_many`). In `batch` and `none` modes it may also be
  the state before any of the acknowledged writes not yet known durable (prefix
  consistency), no shorter than the mode's promise: everything before a successful
  `flush`, `compact` or close, and in `batch` mode every write that started more than
  `BATCH_INTERVAL_MS_MAX` of virtual time before, or more than `BATCH_OPERATIONS_MAX`
  writes before, the newest acknowledged one (with media faults on, a reported torn
  tail may take any suffix of the acknowledged writes in these modes: a frame holds a
  group commit, and how much that was is not checked);
- where a media fault destroyed acknowledged data, the store reported it (a corruption
  or torn tail in its recovery report, or a typed error reading the key), and every
  value it still returns was once written for that key: silent loss and invented
  values are violations;
- recovery finds no corruption where no media fault was injected;
- recovery that crashes itself, then runs again, gives the same state (idempotence);
- a store error is a typed `KvError`; anything else from the store is a violation;
- at the end, with faults off, a clean close and reopen give the model (liveness).

Deliberately not checked: how much a media fault destroyed (only that the loss was
reported and nothing was invented), and performance.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import kv
from io_backends.sim import SimIo, SimulatedCrash
from kv.errors import CorruptionDetected, IoError, KvError
from kv.limits import BATCH_INTERVAL_MS_MAX, BATCH_OPERATIONS_MAX
from kv.store import Durability, State, Store
from scenarios.registry import Scenario
from scenarios.schedule import Schedule, Step
from scenarios.workload import WRITE_KINDS, Model, Operation, Workload, apply, pause_us, run_operation

STORE_DIRECTORY = "/store"
# A crash lands within this many I/O operations of being planned.
CRASH_DELAY_OPERATIONS_MAX = 60
# Reopening may crash or fail this many times before the faults are switched off (the
# fault "clears") so the run can go on.
REOPEN_ATTEMPTS_MAX = 4


class Violation(Exception):
    """An invariant the store promised did not hold."""


@dataclass
class SeedResult:
    scenario: str
    seed: int
    operations: int
    durability: str = "always"
    passed: bool = True
    violation: str = ""
    crashes: int = 0
    recoveries: int = 0
    errors_typed: int = 0
    losses_reported: int = 0
    silent_tail_losses: int = 0  # losses only a lost write at the log's tail explains
    trace_hash: str = ""
    faults: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # fired, opportunities, configured
    timeline: list[str] = field(default_factory=list)
    # where planned crashes landed: store method ("open", "set", "close", "compact", ...,
    # "recovery", "repair") -> how many crashes landed inside it this seed
    crashes_by_method: dict[str, int] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)  # coverage marks reached (`kv.marks`): name -> hits
    # the scenario's defining faults (`Scenario.defining_faults`, draw names) -> times fired this seed
    defining_faults: dict[str, int] = field(default_factory=dict)


RecoveryCrashes = Callable[[], "int | None"]  # per recovery attempt: crash after N I/Os, or not


class Harness:
    """The oracle around one store on one `SimIo`: drivers feed it operations and crash
    decisions (`start`, `plan_crash`, `do`, `crash_now`, `finish`), it checks every
    answer and every recovery against the model and raises `Violation`.

    Three drivers: `run_seed` (decisions drawn from a seed), `run_schedule` (decisions
    from a `Schedule`) and the hypothesis state machine (decisions from hypothesis data).
    """

    def __init__(
        self,
        scenario: str,
        io: SimIo,
        durability: Durability = "always",
        segment_size_target_bytes: int = 16 * 1024,
        keep_timeline: bool = False,
        header: str = "",
    ) -> None:
        self.scenario = scenario
        self.durability: Durability = durability
        self.segment_size_target_bytes = segment_size_target_bytes
        self.io = io
        self.media = False  # a fault that damages data was ever on
        self.faulty = False  # any fault was ever on (damage may outlive the faults)
        self.note_faults()
        self.result = SeedResult(scenario, 0, 0, durability)
        self.digest = hashlib.sha256()
        self.keep_timeline = keep_timeline
        self.model: Model = {}
        self.written: dict[bytes, set[bytes]] = {}  # every value ever written for each key
        self.unknown: set[bytes] = set()  # keys whose read failed: value unknown until rewritten
        self.accepted_loss = False  # the last recovery lost data and reported it
        self.before_last: Model = {}  # the model before the last acknowledged write
        # batch and none modes: (the model before it, the virtual clock when it started)
        # for each acknowledged write not yet known durable, oldest first
        self.unsynced: list[tuple[Model, int]] = []
        # batch and none modes: the model before each acknowledged write, the whole run
        # (a damaged last frame may hold any number of them: see `check_recovered`)
        self.history: list[Model] = []
        self.lost_writes_checked = 0  # lost writes already accounted for
        self.crash_countdown: int | None = None  # I/O operations until the planned crash
        self.crash_landed_after_ios: int | None = None  # set when a planned crash fires
        self.recovery_crashes: RecoveryCrashes = lambda: None
        self.store: Store | None = None
        self.header = header

    def note_faults(self) -> None:
        """Call after changing `io.faults.plan`: which kinds of faults the run has seen."""
        plan = self.io.faults.plan
        self.media = self.media or plan.damages_data()
        self.faulty = self.faulty or bool(plan.enabled())

    # -- what drivers call ---------------------------------------------------------------

    def start(self) -> None:
        self.event(
            f"scenario {self.scenario} {self.header}durability {self.durability} faults {self.io.faults.plan.enabled()}"
        )
        self.store = self.reopen(None)

    def plan_crash(self, after_ios: int) -> None:
        """A power loss this many simulated I/Os from now (inside the next operations)."""
        self.crash_countdown = after_ios

    def do(self, operation: Operation) -> None:
        assert self.store is not None, "start() first"
        self.result.operations += 1
        self.event(f"{operation[0]} {sorted(operation[1])[:3]}")
        self.store = self.step(self.store, operation)

    def crash_now(self) -> None:
        """A power loss between operations, then recovery (twice, for idempotence)."""
        assert self.store is not None, "start() first"
        self.crash_countdown = None
        self.io.crash()
        self.result.crashes += 1
        self.event("crash between operations")
        self.store = self.reopen_twice(None)

    def reopen_clean(self) -> None:
        """A clean close and open between operations."""
        assert self.store is not None, "start() first"
        self.close(self.store)
        self.store = self.reopen(None)

    def finish(self) -> None:
        assert self.store is not None, "start() first"
        self.liveness(self.store)
        self.store = None

    def event(self, text: str) -> None:
        self.digest.update(text.encode() + b"\n")
        if self.keep_timeline:
            self.result.timeline.append(f"t={self.io.clock_us}us {text}")

    def open(self) -> Store:
        return kv.open(
            STORE_DIRECTORY,
            io=self.io,
            durability=self.durability,
            on_corruption="repair" if self.media else "raise",
            segment_size_target_bytes=self.segment_size_target_bytes,
        )

    def reopen(self, in_flight: Operation | None) -> Store:
        """Open again after a crash or a failure, letting recovery crash or fail a few
        times; then check what it recovered."""
        store = None
        for attempt in range(REOPEN_ATTEMPTS_MAX):
            crash_after = self.recovery_crashes()
            if crash_after is not None:
                self.io.crash_at_operation = self.io.operations_completed + crash_after
            try:
                store = self.open()
                break
            except SimulatedCrash:
                self.result.crashes += 1
                self.event(f"crash during recovery (attempt {attempt + 1})")
            except KvError as error:
                self.result.errors_typed += 1
                self.event(f"open failed: {type(error).__name__}: {error}")
            except Exception as error:  # not a crash, not typed: a store bug in recovery
                raise Violation(f"opening raised an untyped {type(error).__name__}: {error}") from error
        self.io.crash_at_operation = None
        if store is None:
            self.io.faults_off()
            self.event("faults off: the fault clears")
            try:
                store = self.open()
            except KvError as error:
                raise Violation(f"the store cannot be opened once the faults cleared: {error}") from error
        self.result.recoveries += 1
        self.check_recovered(store, in_flight)
        self.unsynced.clear()  # what recovery found is on the disk
        return store

    def read_state(self, store: Store) -> tuple[Model, list[bytes]]:
        """The store's state as the oracle sees it (reads faults paused); keys whose
        read raised a typed error are returned apart."""
        plan = self.io.faults.plan
        self.io.faults.plan = type(plan)()
        state: Model = {}
        unreadable: list[bytes] = []
        try:
            for key in store.keys():
                try:
                    value = store.get(key)
                except (CorruptionDetected, IoError):
                    unreadable.append(key)
                    continue
                assert value is not None
                state[key] = value
        finally:
            self.io.faults.plan = plan
        return state, unreadable

    def check_recovered(self, store: Store, in_flight: Operation | None) -> None:
        report = store.recovery
        if not report.clean:
            self.event(f"recovery: {report.summary()}")
            self.result.losses_reported += report.records_lost + len(report.torn_tails)
        if report.corruptions and not self.media:
            raise Violation(f"corruption reported where no media fault was injected: {report.summary()}")
        state, unreadable = self.read_state(store)
        if unreadable and not self.faulty:
            raise Violation(f"keys {unreadable[:5]} cannot be read with every fault off")
        self.check_not_invented(state)
        self.unknown.update(unreadable)
        # (a legal state, how it comes about, how many acknowledged writes it lacks)
        legal: list[tuple[Model, str, int]] = [(self.model, "acknowledged", 0)]
        if in_flight is not None:
            legal.append((apply(self.model, in_flight), "in flight", 0))
        # batch and none modes: acknowledged writes not yet synced may be lost, newest first
        unsynced = self.unsynced
        legal += [(unsynced[-count][0], "unsynced", count) for count in range(1, len(unsynced) + 1)]
        if report.torn_tails and self.media:  # a damaged last frame is reported as torn
            if self.durability == "always":  # it holds one operation: it may take the last, no more
                legal.append((self.before_last, "torn", 1))
            else:  # it holds the writes of one group commit, which the oracle cannot see:
                history = self.history  # any prefix (weaker: how much was lost is not checked)
                legal += [(history[-count], "torn", count) for count in range(1, len(history) + 1)]
        found = self.known(state)
        for candidate, outcome, writes_lost in legal:
            if found == self.known(candidate):
                if outcome == "torn" and candidate is not self.model:
                    self.accepted_loss = True  # the torn last frame took an acknowledged operation
                if outcome == "in flight" and in_flight is not None and self.writes_a_frame(in_flight):
                    self.before_last = self.model  # the in-flight write made it: its frame is the last
                    if self.durability != "always":
                        self.history.append(self.model)
                if outcome == "unsynced":
                    self.event(f"recovered without the last {writes_lost} unsynced writes ({self.durability})")
                    self.before_last = candidate
                self.model = candidate
                return
        reported = bool(report.corruptions)
        counts = self.io.faults.counts
        # A misdirected write takes the frame away from where it belongs: at the tail of
        # the log that is a lost write too.
        lost_writes = sum(counts[name].fired for name in ("lost_write", "misdirected_write") if name in counts)
        if lost_writes > self.lost_writes_checked and not reported:
            # A lost write of the last frames leaves zeros that read as free space: no
            # single-disk store can see it (documented gap). Counted, not hidden.
            self.lost_writes_checked = lost_writes
            self.result.silent_tail_losses += 1
            reported = True
            self.event("accepted: a lost or misdirected write at the tail of the log (undetectable, counted)")
        if not (self.media and reported):
            model, found = self.known(self.model), self.known(state)
            missing = sorted(set(model) - set(found))[:5]
            changed = sorted(key for key in found if key in model and found[key] != model[key])[:5]
            extra = sorted(set(found) - set(model))[:5]
            raise Violation(
                "the recovered state is not a legal outcome and no loss was reported "
                f"(missing {missing}, changed {changed}, unexpected {extra})"
            )
        self.accepted_loss = True
        lost = set(self.known(self.model)) - set(state)
        self.event(f"accepted a reported loss: {len(lost)} keys lost, {len(unreadable)} unreadable")
        self.unknown.update(lost)  # reported lost: they may come back if the damage was transient
        self.model = state  # the store's word is the model now

    def known(self, model: Model) -> Model:
        """The part of a state the oracle can vouch for: keys whose value it knows."""
        return {key: value for key, value in model.items() if key not in self.unknown}

    def check_not_invented(self, state: Model) -> None:
        invented = [key for key, value in state.items() if value not in self.written.get(key, set())]
        if invented:
            raise Violation(f"the store returned values never written for keys {invented[:5]}")

    def step(self, store: Store, operation: Operation) -> Store:
        kind, changes = operation
        if kind in WRITE_KINDS:
            for key, value in changes.items():
                if value is not None:
                    self.written.setdefault(key, set()).add(value)
        if kind == "pause":
            self.io.pause(pause_us(operation))
        started_us = self.io.clock_us
        try:
            value = self.run_armed(store, operation)
        except SimulatedCrash:
            self.result.crashes += 1
            self.event(f"crash during {kind}")
            return self.reopen_twice(operation)
        except (IoError, CorruptionDetected) as error:
            return self.after_error(store, operation, error)
        except KvError as error:
            self.result.errors_typed += 1
            self.event(f"{kind} refused: {type(error).__name__}")
            return self.after_error(store, operation, error)
        except Exception as error:  # SimulatedCrash is handled above: this came from the store
            raise Violation(f"{kind} raised an untyped {type(error).__name__}: {error}") from error
        if kind in WRITE_KINDS:
            self.unknown.difference_update(changes)
        if kind == "verify" and value != b"ok" and not self.media:
            raise Violation("verify() found damage where no media fault was injected")
        if kind == "get":
            [key] = changes
            if key in self.unknown:  # a key whose read failed earlier: any value once written, or none
                if value is not None:
                    self.check_not_invented({key: value})
            elif value != self.model.get(key):
                raise Violation(f"get({key!r}) returned {value!r:.80}, the model holds {self.model.get(key)!r:.80}")
        if kind in WRITE_KINDS and self.writes_a_frame(operation):
            self.before_last = self.model
            if self.durability != "always":
                self.history.append(self.model)
                self.acknowledged_unsynced(operation, started_us)
        elif kind in ("flush", "compact"):  # both sync every earlier write before returning
            self.unsynced.clear()
        self.model = apply(self.model, operation)
        return store

    def acknowledged_unsynced(self, operation: Operation, started_us: int) -> None:
        """A write acknowledged in batch or none mode: it may be lost in a crash, with
        every later one, until the mode's promise makes it durable."""
        unsynced = self.unsynced
        unsynced.append((self.model, started_us))
        kind, changes = operation
        counted = kind != "delete" or any(key in self.model and key not in self.unknown for key in changes)
        if self.durability != "batch" or not counted:
            return
        # The store checks its batch bounds on every write it counts (a delete of an
        # absent key is not one). It syncs once BATCH_INTERVAL_MS_MAX passed since its
        # last sync, and every unsynced write started after that sync: so writes that
        # started that long before this one are durable (1 us spare for float rounding).
        horizon_us = started_us - BATCH_INTERVAL_MS_MAX * 1000 - 1
        durable = 0
        while durable < len(unsynced) and unsynced[durable][1] <= horizon_us:
            durable += 1
        # At most BATCH_OPERATIONS_MAX - 1 counted writes stay unsynced.
        durable = max(durable, len(unsynced) - (BATCH_OPERATIONS_MAX - 1))
        del unsynced[:durable]

    def writes_a_frame(self, operation: Operation) -> bool:
        """False for a delete the store acknowledges without writing: its key is absent
        (then the last frame in the log is still the previous write's)."""
        kind, changes = operation
        return kind != "delete" or any(key in self.model or key in self.unknown for key in changes)

    def run_armed(self, store: Store, operation: Operation) -> bytes | None:
        """Run one operation with the planned crash armed: crashes land inside store
        operations (and inside recovery, armed by `reopen`), never in the harness."""
        if self.crash_countdown is None:
            return run_operation(store, operation)
        started = self.io.operations_completed
        self.io.crash_at_operation = started + self.crash_countdown
        try:
            return run_operation(store, operation)
        finally:
            if self.io.crash_at_operation is None:  # it fired, this many I/Os into the operation
                self.crash_landed_after_ios = self.crash_countdown
                self.crash_countdown = None
            else:
                # A countdown that ran out with the operation's last I/O carries over as
                # zero: the crash lands on the next operation's first I/O, so operations
                # of a single I/O can be crashed right after it too.
                self.crash_countdown = max(self.crash_countdown - (self.io.operations_completed - started), 0)
                self.io.crash_at_operation = None

    def after_error(self, store: Store, operation: Operation, error: KvError) -> Store:
        """A typed error: allowed only where a fault is on; a failed write leaves the
        store read-only, so reopen it (the operation is in flight: whole or absent)."""
        self.result.errors_typed += 1
        self.event(f"{operation[0]} failed: {type(error).__name__}: {error}")
        if not self.faulty and not isinstance(error, kv.StoreReadOnly):
            raise Violation(f"{operation[0]} raised {type(error).__name__} with every fault off: {error}")
        if operation[0] == "get" and store.state.value == "open":
            return store
        self.close(store)
        return self.reopen(operation if operation[0] in WRITE_KINDS else None)

    def close(self, store: Store) -> None:
        """Close a store whose final flush may fail under faults (typed errors only)."""
        flushes = store.state is State.OPEN  # a failed (read-only) store closes without one
        try:
            store.close()
        except KvError as error:
            self.result.errors_typed += 1
            self.event(f"close failed: {type(error).__name__}: {error}")
        else:
            if flushes:
                self.unsynced.clear()  # the final flush synced every acknowledged write

    def reopen_twice(self, in_flight: Operation | None) -> Store:
        """Recover after a crash, then check that recovering again changes nothing."""
        store = self.reopen(in_flight)
        before = self.model
        self.close(store)
        self.accepted_loss = False
        again = self.reopen(None)
        if self.model != before and not self.accepted_loss:  # new media damage may show up
            raise Violation("recovery is not idempotent")
        return again

    def liveness(self, store: Store) -> None:
        """Faults off: pending work completes, and a clean reopen gives the model."""
        self.io.crash_at_operation = None
        self.io.faults_off()
        self.event("liveness phase: faults off")
        self.close(store)
        store = self.reopen(None)
        store.set(b"liveness", b"ok")
        store.close()
        with self.open() as reopened:
            state, unreadable = self.read_state(reopened)
            self.model = {**self.model, b"liveness": b"ok"}
            self.written.setdefault(b"liveness", set()).add(b"ok")
            self.check_not_invented(state)
            if self.known(state) != self.known(self.model) or set(unreadable) - self.unknown:
                raise Violation("with faults off, a clean close and reopen did not give the model")
        self.event(f"end keys={len(self.model)} clock_us={self.io.clock_us}")


def _finished(harness: Harness, drive: Callable[[], None]) -> SeedResult:
    """Run `drive`; a violated invariant gives `passed=False`, never an exception."""
    try:
        drive()
    except Violation as violation:
        harness.result.passed = False
        harness.result.violation = str(violation)
        harness.event(f"VIOLATION {violation}")
    harness.result.faults = {
        name: (count.fired, count.opportunities, count.configured_probability)
        for name, count in harness.io.faults.report().items()
    }
    harness.result.trace_hash = harness.digest.hexdigest()[:16]
    return harness.result


def run_seed(scenario: Scenario, seed: int, operations: int | None = None, keep_timeline: bool = False) -> SeedResult:
    """Run `scenario` for `seed`; a violated invariant gives `passed=False`, never an exception."""
    return record_seed(scenario, seed, operations, keep_timeline)[0]


def record_seed(
    scenario: Scenario, seed: int, operations: int | None = None, keep_timeline: bool = False
) -> tuple[SeedResult, Schedule]:
    """`run_seed`, also returning every decision it took as a `Schedule` (which replays
    to the same trace with `run_schedule`)."""
    count = operations if operations is not None else scenario.operations
    rng = random.Random(seed)
    sim_seed = rng.getrandbits(64)
    plan = scenario.fault_plan(rng)
    durability = scenario.pick_durability(rng)
    workload = Workload(scenario.mix, random.Random(rng.getrandbits(64)))
    harness = Harness(
        scenario.name,
        SimIo(seed=sim_seed, faults=plan),
        durability,
        scenario.segment_size_target_bytes,
        keep_timeline,
        header=f"seed {seed} operations {count} ",
    )
    phase: list[int | None] = []  # the recovery decisions of the current step

    def recovery_crash() -> int | None:
        crash = rng.randrange(1, 30) if rng.random() < scenario.crash_during_recovery_probability else None
        phase.append(crash)
        return crash

    harness.recovery_crashes = recovery_crash
    steps: list[Step] = []
    opening: tuple[int | None, ...] = ()

    def drive() -> None:
        nonlocal opening, phase
        harness.start()
        opening, phase = _trimmed(phase), []
        for _ in range(count):
            if harness.crash_countdown is None and rng.random() < scenario.crash_probability:
                harness.plan_crash(rng.randrange(1, CRASH_DELAY_OPERATIONS_MAX))
            operation = workload.next()
            harness.crash_landed_after_ios = None
            try:
                harness.do(operation)
            finally:
                # The schedule names the step a crash landed in, not the one that planned
                # it, so deleting the steps in between (shrinking) does not move it.
                steps.append(Step(operation, harness.crash_landed_after_ios, _trimmed(phase)))
                phase = []
        harness.finish()

    result = _finished(harness, drive)
    result.seed = seed
    result.operations = count
    schedule = Schedule(
        scenario=scenario.name,
        seed=seed,
        sim_seed=sim_seed,
        faults=plan,
        steps=tuple(steps),
        durability=durability,
        segment_size_target_bytes=scenario.segment_size_target_bytes,
        opening_crashes=opening,
        closing_crashes=_trimmed(phase),
    )
    return result, schedule


def _trimmed(crashes: list[int | None]) -> tuple[int | None, ...]:
    """Recovery decisions without the trailing "no crash"es (the default past the end)."""
    while crashes and crashes[-1] is None:
        crashes = crashes[:-1]
    return tuple(crashes)


def run_schedule(schedule: Schedule, keep_timeline: bool = False) -> SeedResult:
    """Replay `schedule`: its operations, crashes and faults, through the same oracle."""
    harness = Harness(
        schedule.scenario,
        SimIo(seed=schedule.sim_seed, faults=schedule.faults),
        schedule.durability,
        schedule.segment_size_target_bytes,
        keep_timeline,
        header=f"seed {schedule.seed} operations {len(schedule.steps)} ",
    )
    pending: list[int | None] = []

    def recovery_crash() -> int | None:
        return pending.pop(0) if pending else None

    harness.recovery_crashes = recovery_crash

    def drive() -> None:
        pending[:] = schedule.opening_crashes
        harness.start()
        for step in schedule.steps:
            pending[:] = step.recovery_crashes
            if step.crash_after_ios is not None:
                harness.plan_crash(step.crash_after_ios)
            harness.do(step.operation)
        pending[:] = schedule.closing_crashes
        harness.finish()

    result = _finished(harness, drive)
    result.seed = schedule.seed
    return result
