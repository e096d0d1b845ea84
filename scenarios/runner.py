"""Run one scenario for one seed on the simulated disk, checked by the oracle.

The `Harness` drives one store on one `SimIo`: it runs each operation with the planned
crash armed (crashes land inside store methods and inside recovery, never in the
harness), decides how to reopen after a crash or a failure, keeps the trace, and hands
every answer and every recovery to the `scenarios.oracle.Oracle`, which says what is
legal (see its docstring for what is and is not checked). Three drivers feed the
harness decisions: `run_seed` (drawn from a seed), `run_schedule` (from a `Schedule`)
and the hypothesis state machine (from hypothesis data).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import kv
from io_backends.sim import Damage, SimIo, SimulatedCrash
from kv import marks
from kv.errors import CorruptionDetected, IoError, KvError
from kv.opening import JOURNAL_PREFIX, QUARANTINE_DIRECTORY, OnCorruption
from kv.store import Durability, State, Store, VerifyReport
from scenarios.operations import (
    Expiring,
    Model,
    Operation,
    OperationKind,
    ReadOnlyView,
    ScanRequest,
    kind_of,
    read_value,
    shown,
)
from scenarios.oracle import DamageLedger, Oracle, Outcome, Recovered, Violation
from scenarios.registry import SCENARIOS, Scenario
from scenarios.schedule import Schedule, Step
from scenarios.workload import Workload, pause_us

__all__ = ["STORE_DIRECTORY", "Harness", "SeedResult", "Violation", "record_seed", "run_schedule", "run_seed"]

STORE_DIRECTORY = "/store"
# A crash lands within this many I/O operations of being planned.
CRASH_DELAY_OPERATIONS_MAX = 60
# A planned crash lands, with this probability, once a data sync may complete next (else
# a number of I/Os in): the moment unsynced writes are sure to exist, which a count of
# I/Os mostly misses (an operation's I/Os are mostly reads).
CRASH_BEFORE_SYNC_PROBABILITY = 0.5
# Faults that fire only at a crash that finds unsynced writes (draw-name prefixes).
CRASH_FAULTS = ("crash_survival.", "torn_write", "size_before_data")
# ... so after forcing them, this many crashes before a sync are planned, at most.
FORCED_CRASHES_MAX = 4
# A defining fault that did not fire is forced at most this many times per seed.
FORCED_TIMES_MAX = 3
# Reopening may crash or fail this many times before the faults are switched off (the
# fault "clears") so the run can go on.
REOPEN_ATTEMPTS_MAX = 4
# A crash planned inside recovery lands anywhere within as many I/Os as the last open
# took (opens of the stores the scenarios build take 11-133), so every point is
# reachable; the range is never shorter than this (the first open of an empty store is).
RECOVERY_CRASH_IOS_MIN = 30
# The disk's RNG streams of a seed: one per step (numbered from 1), one for the first
# open and one for the liveness phase, so shrinking away steps moves no later fault.
OPENING_STREAM = 0
CLOSING_STREAM = -1
# The write the liveness phase makes once faults are off.
LIVENESS_WRITE = Operation("set", {b"liveness": b"ok"})


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
    marker_entry_losses: int = 0  # losses only the file system's loss of the CLEAN marker's entry explains
    trace_hash: str = ""
    faults: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # fired, opportunities, configured
    timeline: list[str] = field(default_factory=list)
    # where planned crashes landed: store method ("open", "set", "close", "compact", ...,
    # "repair") -> how many crashes landed inside it this seed
    crashes_by_method: dict[str, int] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)  # coverage marks reached (`kv.marks`): name -> hits
    # the scenario's defining faults (`Scenario.defining_faults`, draw names) -> times fired this seed
    defining_faults: dict[str, int] = field(default_factory=dict)


RecoveryCrashes = Callable[[], "int | None"]  # per recovery attempt: crash after N I/Os, or not


@dataclass(frozen=True)
class _DamageSeen:
    """A damage ledger: the disk's now, or any of `seen`."""

    io: SimIo
    seen: tuple[Damage, ...]

    def _all(self) -> list[Damage]:
        """Seen, and now (the files whose reads fail for good included: as lost as bad
        sectors, while it lasts, `io_backends.sim.PERSISTENT_READ_ERROR`)."""
        return [*self.seen, *self.io.damage()]

    def damaged(self, path: str, start: int, end: int) -> bool:
        return any(d.path == path and d.offset < end and start < d.offset + d.length for d in self._all())

    def damaged_in(self, directory: str, nested: bool) -> bool:
        """Damage in a file directly in `directory` (or below it, when `nested`)."""
        prefix = directory.rstrip("/") + "/"
        for damage in self._all():
            if damage.path.startswith(prefix) and (nested or "/" not in damage.path[len(prefix) :]):
                return True
        return False

    def entries_lost(self, directory: str) -> list[str]:
        """The names directly in `directory` whose durable entries the file system took
        (`EntryLoss`)."""
        prefix = directory.rstrip("/") + "/"
        return [
            d.path[len(prefix) :]
            for d in self._all()
            if d.kind == "entry_loss" and d.path.startswith(prefix) and "/" not in d.path[len(prefix) :]
        ]


def describe(operation: Operation) -> str:
    """One operation for a timeline, as its kind shows it (the trace hashes the
    operation itself: `Harness.trace`)."""
    return kind_of(operation).describe(operation)


class Harness:
    """One store on one `SimIo`, driven by `start`, `plan_crash`, `do`, `crash_now`,
    `reopen_clean` and `finish`; every answer and recovery goes to `self.oracle`, which
    raises `Violation`."""

    def __init__(
        self,
        scenario: str,
        io: SimIo,
        durability: Durability = "always",
        segment_size_target_bytes: int = 16 * 1024,
        keep_timeline: bool = False,
        header: str = "",
        on_corruption: OnCorruption = "repair",
    ) -> None:
        self.scenario = scenario
        self.on_corruption: OnCorruption = on_corruption  # once a media fault is on
        self.durability: Durability = durability
        self.segment_size_target_bytes = segment_size_target_bytes
        self.io = io
        self.oracle = Oracle(durability, salvage=on_corruption == "salvage")
        self.note_faults()
        self.result = SeedResult(scenario, 0, 0, durability)
        # Every event, in order, hashed once at the end (`trace_hash`): a step as a tuple
        # of its number and its operation's fields, anything else as its text.
        self.trace: list[object] = []
        self.keep_timeline = keep_timeline
        self.crash_countdown: int | None = None  # I/O operations until the planned crash
        self.crash_before_sync = False  # the planned crash replaces the next data sync
        self.crash_landed_after_ios: int | None = None  # set when a planned crash fires
        self.recovery_crashes: RecoveryCrashes = lambda: None
        self.store: Store | None = None
        self.header = header
        self.steps = 0
        self._fault_counts_seen: dict[str, int] = {}
        self._names_before_open: frozenset[str] = frozenset()
        self._crash_site = "open"  # where the last crash inside an open landed: "open" or "repair"
        self.last_outcome = Outcome("acknowledged")  # how the last recovery was judged
        self.open_ios_last = 0  # I/Os the last open that completed took
        self.step_started_ios = 0  # the I/O count when the current step started
        self._damage_seen: list[Damage] = []  # the disk's damage as each open since the last check began
        # Lost and misdirected writes fired before the last crash: a lost write shows
        # only once a crash empties the page cache, so one that fires inside a recovery
        # explains a loss the next crash shows, not this recovery's (`recovered`).
        self._silent_at_crash: int | None = None

    # -- the oracle's view of the faults and the model ---------------------------------

    @property
    def media(self) -> bool:
        return self.oracle.media

    @media.setter
    def media(self, value: bool) -> None:
        self.oracle.media = value

    @property
    def faulty(self) -> bool:
        return self.oracle.faulty

    @faulty.setter
    def faulty(self, value: bool) -> None:
        self.oracle.faulty = value

    @property
    def model(self) -> Model:
        return self.oracle.model

    def note_faults(self) -> None:
        """Call after changing `io.faults.plan`: which kinds of faults the run has seen."""
        plan = self.io.faults.plan
        self.oracle.media = self.oracle.media or plan.damages_data()
        self.oracle.faulty = self.oracle.faulty or bool(plan.enabled())

    def ledger(self) -> DamageLedger | None:
        """What the simulated disk knows it damaged now (None for a disk that keeps no ledger)."""
        return _DamageSeen(self.io, ()) if hasattr(self.io, "damage") else None

    def ledger_since_open(self) -> DamageLedger | None:
        """The damage on the disk now or when an open since the last check began (a
        repair moves damaged bytes away, or cuts them, before the oracle looks)."""
        if not hasattr(self.io, "damage"):
            return None
        return _DamageSeen(self.io, (*self._damage_seen, *self.io.damage_events))

    # -- what drivers call ---------------------------------------------------------------

    def start(self) -> None:
        self.event(
            f"scenario {self.scenario} {self.header}durability {self.durability} faults {self.io.faults.plan.enabled()}"
        )
        self.store = self.reopen(None)
        self.check_lock()

    def check_lock(self) -> None:
        """A second open of the open store must fail with `StoreLocked` (faults paused)."""
        with self.faults_paused():
            try:
                second = self.open()
            except KvError as error:
                self.oracle.check_locked(error)
            else:
                second.close()
                self.oracle.check_locked(None)

    @contextmanager
    def faults_paused(self) -> Iterator[None]:
        """No fault fires inside the block (the harness's own look at the store)."""
        plan = self.io.faults.plan
        self.io.faults.plan = type(plan)()
        try:
            yield
        finally:
            self.io.faults.plan = plan

    def plan_crash(self, after_ios: int) -> None:
        """A power loss this many simulated I/Os from now (inside the next operations)."""
        self.crash_countdown = after_ios

    def plan_crash_before_sync(self) -> None:
        """A power loss instead of the next data sync inside an operation (then the
        write it would make durable is unsynced: survival and torn writes matter)."""
        self.crash_before_sync = True

    def do(self, operation: Operation) -> None:
        assert self.store is not None, "start() first"
        self.result.operations += 1
        self.steps += 1
        self.step_started_ios = self.io.operations_completed
        # The step's event: its operation itself, not its timeline line (`describe` shows
        # values with `repr` and cuts them; the trace only has to pin the run).
        self.trace.append((self.steps, *operation))
        if self.keep_timeline:
            self.result.timeline.append(f"t={self.io.clock_us}us #{self.steps} {describe(operation)}")
        self.store = self.step(self.store, operation)
        if self.keep_timeline:
            self.note_fired_faults()

    def crash_now(self) -> None:
        """A power loss between operations, then recovery (twice, for idempotence)."""
        assert self.store is not None, "start() first"
        self.crash_countdown = None
        self.io.crash()
        self.result.crashes += 1
        self.crashed()
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

    # -- the trace -----------------------------------------------------------------------

    def event(self, text: str) -> None:
        """Part of the trace: hashed, and kept in the timeline when asked."""
        self.trace.append(text)
        if self.keep_timeline:
            self.result.timeline.append(f"t={self.io.clock_us}us {text}")

    def note(self, text: str) -> None:
        """Timeline only (not hashed): what the trace hash need not pay for."""
        if self.keep_timeline:
            self.result.timeline.append(f"t={self.io.clock_us}us   {text}")

    def note_fired_faults(self) -> None:
        """Timeline only: the faults that fired since the last call, by name."""
        if not self.keep_timeline:
            return
        fired = []
        for name, count in self.io.faults.counts.items():
            before = self._fault_counts_seen.get(name, 0)
            if count.fired > before:
                fired.append(f"{name} x{count.fired - before}")
                self._fault_counts_seen[name] = count.fired
        if fired:
            self.note("faults fired: " + ", ".join(fired))

    def crash_landed(self, method: str) -> None:
        self.result.crashes += 1
        counts = self.result.crashes_by_method
        counts[method] = counts.get(method, 0) + 1
        self.crashed()

    def crashed(self) -> None:
        """The power just failed: note the silent write faults fired so far."""
        self._silent_at_crash = self._silent_write_faults()

    def _silent_write_faults(self) -> int:
        counts = self.io.faults.counts
        return sum(counts[name].fired for name in ("lost_write", "misdirected_write") if name in counts)

    def trace_hash(self) -> str:
        """The trace's digest: SHA-256 of the `repr` of every event in order (the repr of
        strings, ints, bytes, tuples and dicts in insertion order does not depend on
        PYTHONHASHSEED), cut to 16 hex digits."""
        return hashlib.sha256(repr(self.trace).encode()).hexdigest()[:16]

    # -- opening and recovery --------------------------------------------------------------

    def open(self) -> Store:
        if hasattr(self.io, "damage"):
            self._damage_seen.extend(_DamageSeen(self.io, ())._all())
        return kv.open(
            STORE_DIRECTORY,
            io=self.io,
            durability=self.durability,
            on_corruption=self.on_corruption if self.oracle.media else "raise",
            segment_size_target_bytes=self.segment_size_target_bytes,
        )

    def _store_names(self) -> frozenset[str]:
        """The names in the store's directory and its quarantine, as the page cache has them."""
        directories = self.io.disk.directories
        names = set(directories[STORE_DIRECTORY].entries) if STORE_DIRECTORY in directories else set()
        quarantine = directories.get(f"{STORE_DIRECTORY}/{QUARANTINE_DIRECTORY}")
        names.update(f"{QUARANTINE_DIRECTORY}/{name}" for name in (quarantine.entries if quarantine else ()))
        return frozenset(names)

    def _arm_open_crash(self) -> None:
        """Arm the recovery's planned crash, and note at the moment it lands whether the
        open was repairing (a repair journal or a new quarantined file exists)."""
        crash_after = self.recovery_crashes()
        if crash_after is None:
            return
        self.io.crash_at_operation = self.io.operations_completed + crash_after
        self._names_before_open = self._store_names()

        def note_site() -> None:
            new = self._store_names() - self._names_before_open
            repairing = any(name.startswith((JOURNAL_PREFIX, QUARANTINE_DIRECTORY)) for name in new)
            self._crash_site = "repair" if repairing else "open"

        self.io.on_crash = note_site

    def _disarm_open_crash(self) -> None:
        self.io.crash_at_operation = None
        self.io.on_crash = None

    def _open_attempt(self, attempt: int) -> Store | None:
        self._crash_site = "open"
        self._arm_open_crash()
        started = self.io.operations_completed
        try:
            store = self.open()
            self.open_ios_last = self.io.operations_completed - started
            return store
        except SimulatedCrash:
            self.crash_landed(self._crash_site)
            self.event(f"crash during recovery (attempt {attempt + 1}, in {self._crash_site})")
        except KvError as error:
            self.result.errors_typed += 1
            self.event(f"open failed: {type(error).__name__}: {error}")
        except Exception as error:  # not a crash, not typed: a store bug in recovery
            raise Violation(f"opening raised an untyped {type(error).__name__}: {error}") from error
        finally:
            self._disarm_open_crash()
        return None

    def reopen(self, in_flight: Operation | None) -> Store:
        """Open again after a crash or a failure, letting recovery crash or fail a few
        times; then check what it recovered."""
        store = None
        for attempt in range(REOPEN_ATTEMPTS_MAX):
            store = self._open_attempt(attempt)
            if store is not None:
                break
        if store is None:
            plan = self.io.faults.plan
            self.io.faults_off()
            self.event("faults off: the fault clears")
            try:
                store = self.open()
            except KvError as error:
                raise Violation(f"the store cannot be opened once the faults cleared: {error}") from error
            except Exception as error:  # as in `_open_attempt`: an untyped error is a store bug
                raise Violation(f"opening raised an untyped {type(error).__name__}: {error}") from error
            self.io.faults.plan = plan  # the outage is over; the faults come back (persistent ones cleared)
        self.result.recoveries += 1
        self.check_recovered(store, in_flight)
        return store

    def read_state(self, store: Store) -> tuple[Model, list[bytes], int, dict[bytes, int]]:
        """The store's state as the oracle sees it (faults paused while reading), as of
        the moment its keys were listed: every key's value (an `Expiring` when it has an
        expiry), the keys whose read raised a typed error, that moment, and the keys
        that expired before their value was read (reads take virtual time), with the
        expiry listed. Listing keys and expiries does no I/O: one moment."""
        state: Model = {}
        unreadable: list[bytes] = []
        expired_while_read: dict[bytes, int] = {}
        with self.faults_paused():
            at_us = self.io.clock_us
            keys = store.keys()
            expiries = [store.pexpiretime(key) for key in keys]
            for key, expiry_ms in zip(keys, expiries, strict=True):
                try:
                    value = read_value(store, key)
                except (CorruptionDetected, IoError):
                    unreadable.append(key)
                    continue
                if value is None:
                    assert expiry_ms > 0, f"{key!r} listed without an expiry, then absent"
                    expired_while_read[key] = expiry_ms
                    continue
                state[key] = Expiring(value, expiry_ms) if expiry_ms > 0 else value
        return state, unreadable, at_us, expired_while_read

    def recovered(self, store: Store, in_flight: Operation | None) -> Recovered:
        """What this recovery gave, as data for the oracle."""
        state, unreadable, at_us, expired_while_read = self.read_state(store)
        silent = self._silent_write_faults() if self._silent_at_crash is None else self._silent_at_crash
        names = self._store_names()
        quarantined = frozenset(name for name in names if name.startswith(QUARANTINE_DIRECTORY + "/"))
        return Recovered(
            store.recovery,
            state,
            unreadable,
            in_flight,
            STORE_DIRECTORY,
            silent,
            quarantined,
            at_us,
            expired_while_read,
        )

    def check_recovered(self, store: Store, in_flight: Operation | None) -> Outcome:
        report = store.recovery
        if not report.clean:
            self.event(f"recovery: {report.summary()}")
            self.result.losses_reported += report.records_lost + len(report.torn_tails)
        outcome = self.oracle.check_recovered(self.recovered(store, in_flight), self.ledger_since_open())
        self._silent_at_crash = None
        self._damage_seen.clear()
        self.io.damage_events.clear()
        self.last_outcome = outcome
        if outcome.kind == "unsynced":
            self.event(f"recovered without the last {outcome.writes_lost} unsynced writes ({self.durability})")
        elif outcome.kind == "silent tail loss":
            self.result.silent_tail_losses += 1
            self.event("accepted: a lost or misdirected write at the tail of the log (undetectable, counted)")
        elif outcome.kind == "marker entry loss":
            self.result.marker_entry_losses += 1
            self.event("accepted: the file system lost the CLEAN marker's entry with the data (undetectable, counted)")
        elif outcome.kind == "reported loss":
            self.event(f"accepted a reported loss: {outcome.keys_lost} keys lost")
        elif self.keep_timeline:
            self.note(f"recovered: {outcome.kind}, {len(self.oracle.model)} keys")
        return outcome

    # -- one operation -------------------------------------------------------------------

    def step(self, store: Store, operation: Operation) -> Store:
        kind = kind_of(operation)
        self.oracle.starting(operation, kind)
        if kind.idles:
            self.io.pause(pause_us(operation))
        if kind.reopens:
            return self.reopen_armed(store)
        started_us = self.io.clock_us
        self.oracle.at(started_us)
        try:
            if self.crash_countdown is None and not self.crash_before_sync:
                result = self.run_operation(kind, store, operation)  # nothing to arm (`run_armed`)
            else:
                result = self.run_armed(store, operation)
        except SimulatedCrash:
            self.crash_landed(kind.name)
            self.event(f"crash during {kind.name}")
            return self.reopen_twice(operation)
        except Violation:
            raise
        except (IoError, CorruptionDetected) as error:
            return self.after_error(store, operation, error)
        except KvError as error:
            self.event(f"{kind.name} refused: {type(error).__name__}")
            return self.after_error(store, operation, error)
        except Exception as error:  # SimulatedCrash is handled above: this came from the store
            raise Violation(f"{kind.name} raised an untyped {type(error).__name__}: {error}") from error
        kind.check(self, operation, result)
        self.oracle.acknowledged(operation, started_us, kind)
        return store

    # -- what operation kinds check (`OperationKind.check`) ------------------------------

    @property
    def now_ms(self) -> int:
        """The store's clock as the operation being checked started (`Checker.now_ms`)."""
        return self.oracle.now_us // 1000

    def check_read(self, key: bytes, value: bytes | None) -> None:
        if self.keep_timeline:
            self.note(f"  -> {shown(value)}")
        self.oracle.check_read(key, value)

    def check_answer(self, operation: Operation, answer: object, expected: Callable[[Model], object]) -> None:
        if self.keep_timeline:
            self.note(f"  -> {answer!r:.40}")
        self.oracle.check_answer(operation, answer, expected)

    def check_scan(self, request: ScanRequest, answer: list[tuple[bytes, bytes]]) -> None:
        if self.keep_timeline:
            self.note(f"  -> {len(answer)} pairs: {' '.join(shown(key) for key, _ in answer[:4])}")
        self.oracle.check_scan(request, answer)

    def check_cursor_scan(self, steps: list[list[bytes]]) -> None:
        if self.keep_timeline:
            self.note(f"  -> {len(steps)} steps, {sum(map(len, steps))} keys")
        self.oracle.check_cursor_scan(steps)

    def check_read_only_open(self, view: ReadOnlyView) -> None:
        if self.keep_timeline:
            self.note(f"  -> read-only open: {len(view.state)} keys, {len(view.writes)} disk-changing calls")
        self.oracle.check_read_only_open(view)

    def check_verify(self, report: VerifyReport) -> None:
        if self.keep_timeline:
            self.note(f"  -> verify: {'ok' if report.ok else '; '.join(report.problems[:2])}")
        data_files = [
            f"{STORE_DIRECTORY}/{name}" for name in self._store_names() if name.endswith((".seg", ".compacted"))
        ]
        self.oracle.check_verify(report.ok, report.damaged_files, report.checked_bytes, self.ledger(), data_files)

    def run_armed(self, store: Store, operation: Operation) -> object:
        """Run one operation with the planned crash armed: crashes land inside store
        operations (and inside recovery, armed by `reopen`), never in the harness."""
        with self.armed():
            return self.run_operation(kind_of(operation), store, operation)

    def run_operation(self, kind: OperationKind, store: Store, operation: Operation) -> object:
        """Run one operation on the store (`scenarios.server.ServerHarness` sends it as a
        client's request instead)."""
        return kind.run(store, operation)

    @contextmanager
    def armed(self) -> Iterator[None]:
        """The planned crash, armed for the block (a store method): after a number of
        I/Os, or instead of the next data sync (when unsynced writes are sure to exist)."""
        if self.crash_countdown is None and not self.crash_before_sync:
            yield
            return
        started = self.io.operations_completed
        if self.crash_countdown is not None:
            self.io.crash_at_operation = started + self.crash_countdown
        self.io.crash_before_sync = self.crash_before_sync
        try:
            yield
        finally:
            by_count = self.crash_countdown is not None and self.io.crash_at_operation is None
            by_sync = self.crash_before_sync and not self.io.crash_before_sync
            if by_count or by_sync:  # this many I/Os into the step (a reopen arms its close and its open)
                # (by count: where it was armed, which replays it exactly even where the disk
                # completes several operations between two checks)
                landed = started + (self.crash_countdown or 0) if by_count else self.io.operations_completed
                self.crash_landed_after_ios = landed - self.step_started_ios
                self.crash_countdown = None
                self.crash_before_sync = False
            elif self.crash_countdown is not None:
                # A countdown that ran out with the operation's last I/O carries over as
                # zero: the crash lands on the next operation's first I/O, so operations
                # of a single I/O can be crashed right after it too.
                self.crash_countdown = max(self.crash_countdown - (self.io.operations_completed - started), 0)
            self.io.crash_at_operation = None
            self.io.crash_before_sync = False

    def reopen_armed(self, store: Store) -> Store:
        """A clean close and open with the planned crash armed in both (the close may
        write and sync what batch and none modes left unsynced)."""
        try:
            with self.armed():
                self.close(store)
        except SimulatedCrash:
            self.crash_landed("close")
            self.event("crash during close")
            return self.reopen_twice(None)
        try:
            with self.armed():
                reopened = self.open()
        except SimulatedCrash:
            self.crash_landed("open")
            self.event("crash during open")
            return self.reopen_twice(None)
        except KvError as error:
            self.result.errors_typed += 1
            self.event(f"open failed: {type(error).__name__}: {error}")
            self.oracle.check_error("open", error)
            return self.reopen(None)
        self.result.recoveries += 1
        self.check_recovered(reopened, None)
        return reopened

    def after_error(self, store: Store, operation: Operation, error: KvError) -> Store:
        """A typed error: allowed only where a fault is on; a failed write leaves the
        store read-only, so read its keys back, then reopen it (the operation is in
        flight: whole or absent)."""
        kind = kind_of(operation)
        self.result.errors_typed += 1
        self.event(f"{kind.name} failed: {type(error).__name__}: {error}")
        self.oracle.check_error(kind.name, error)
        if kind.reads and store.state is State.OPEN:  # a failed read leaves the store usable
            return store
        in_flight = operation if kind.writes else None
        # In batch and none modes a failed commit takes acknowledged, unsynced writes with
        # it (their promise allows that), so only `always` mode's reads are pinned.
        read_only = store.state is State.READ_ONLY and self.durability == "always"
        if in_flight is not None and read_only and self.read_back(store, in_flight):
            self.close(store)
            self.io.crash()  # a read returned the failed write's value: a crash must not take it
            self.crashed()
            self.event("crash after reading back a failed write")
            return self.reopen_twice(in_flight)
        self.close(store)
        return self.reopen(in_flight)

    def read_back(self, store: Store, in_flight: Operation) -> bool:
        """Read the failed write's keys from the read-only store (faults paused); True
        when one returned the failed write's own value (the oracle then holds it to it)."""
        with self.faults_paused():
            for key in sorted(in_flight.changes):
                try:
                    value = read_value(store, key)
                except (CorruptionDetected, IoError):
                    continue
                self.oracle.observe_read_only(key, value, in_flight, self.io.clock_us)
        return bool(self.oracle.observed)

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
                self.oracle.synced()  # the final flush synced every acknowledged write

    def reopen_twice(self, in_flight: Operation | None) -> Store:
        """Recover after a crash, then check that recovering again changes nothing."""
        store = self.reopen(in_flight)
        before = self.oracle.model
        self.close(store)
        again = self.reopen(None)
        self.oracle.check_idempotent(before, self.last_outcome)
        return again

    def liveness(self, store: Store) -> None:
        """Faults off: pending work completes, and a clean reopen gives the model."""
        self.io.crash_at_operation = None
        self.io.faults_off()
        self.event("liveness phase: faults off")
        self.close(store)
        store = self.reopen(None)
        self.oracle.starting(LIVENESS_WRITE)
        store.set(b"liveness", b"ok")
        store.close()
        with self.open() as reopened:
            state, unreadable, at_us, expired_while_read = self.read_state(reopened)
            self.oracle.acknowledged(LIVENESS_WRITE, self.io.clock_us)
            self.oracle.check_liveness(state, unreadable, at_us, expired_while_read)
        self.event(f"end keys={len(self.oracle.model)} clock_us={self.io.clock_us}")


def harness_type(scenario: str) -> type[Harness]:
    """The harness a scenario runs in: `Harness`, or for one that goes through the
    server's command layer (`Scenario.server`), `scenarios.server.ServerHarness`."""
    named = SCENARIOS.get(scenario)
    if named is None or not named.server:
        return Harness
    from scenarios.server import ServerHarness  # it builds on this module

    return ServerHarness


def _finished(harness: Harness, drive: Callable[[], None], defining: tuple[str, ...] = ()) -> SeedResult:
    """Run `drive`; a violated invariant gives `passed=False`, never an exception. The
    store's coverage marks are counted while it runs (`SeedResult.marks`)."""
    with marks.recording() as hits:
        try:
            drive()
        except Violation as violation:
            harness.result.passed = False
            harness.result.violation = str(violation)
            harness.event(f"VIOLATION {violation}")
    harness.result.marks = dict(sorted(hits.items()))
    harness.result.faults = {
        name: (count.fired, count.opportunities, count.configured_probability)
        for name, count in harness.io.faults.report().items()
    }
    harness.result.defining_faults = {name: _fired(harness.io, name) for name in defining}
    harness.result.trace_hash = harness.trace_hash()
    return harness.result


def _fired(io: SimIo, name: str) -> int:
    """How often fault `name` fired (a name ending in "." counts every draw it prefixes)."""
    counts = io.faults.counts
    if not name.endswith("."):
        count = counts.get(name)
        return count.fired if count is not None else 0
    return sum(count.fired for draw, count in counts.items() if draw.startswith(name))


@dataclass
class Forcer:
    """Plans a seed's crashes and makes each of its defining faults fire: from step `start` on, whenever no
    forced fault is pending, the next one that has not fired yet is forced (one at a
    time, so one forced failure's recovery does not swallow the others), each at most
    `FORCED_TIMES_MAX` times."""

    defining: tuple[str, ...]
    start: int
    tries: dict[str, int] = field(default_factory=dict)
    crashes: int = 0  # crashes planned for a forced crash fault

    def plan_crash(self, harness: Harness, rng: random.Random, probability: float) -> None:
        """Before a step: plan a crash for a forced crash fault still waiting for one (a
        crash that finds unsynced writes), or with the scenario's `probability`."""
        if harness.crash_countdown is not None or harness.crash_before_sync:
            return
        waiting = any(name.startswith(CRASH_FAULTS) for name in harness.io.faults.forced)
        if waiting and self.crashes < FORCED_CRASHES_MAX:
            self.crashes += 1
            harness.plan_crash_before_sync()
        elif rng.random() < probability:
            if rng.random() < CRASH_BEFORE_SYNC_PROBABILITY:
                harness.plan_crash_before_sync()
            else:
                harness.plan_crash(rng.randrange(1, CRASH_DELAY_OPERATIONS_MAX))

    def step(self, harness: Harness, number: int) -> tuple[str, ...]:
        if number < self.start or harness.io.faults.forced:
            return ()
        for name in self.defining:
            if _fired(harness.io, name) == 0 and self.tries.get(name, 0) < FORCED_TIMES_MAX:
                self.tries[name] = self.tries.get(name, 0) + 1
                harness.io.faults.force(name)
                harness.event(f"forced a first firing of {name}")
                return (name,)
        return ()


def run_seed(scenario: Scenario, seed: int, operations: int | None = None, keep_timeline: bool = False) -> SeedResult:
    """Run `scenario` for `seed`; a violated invariant gives `passed=False`, never an exception."""
    return _record(scenario, seed, operations, keep_timeline)[0]


def record_seed(
    scenario: Scenario, seed: int, operations: int | None = None, keep_timeline: bool = False
) -> tuple[SeedResult, Schedule]:
    """`run_seed`, also returning every decision it took as a `Schedule` (which replays
    to the same trace with `run_schedule`)."""
    result, schedule = _record(scenario, seed, operations, keep_timeline)
    return result, schedule()


# A step as `record_seed` keeps it until it builds the `Schedule`: `Step`'s fields, in order.
_StepFields = tuple[Operation, "int | None", "tuple[int | None, ...]", "tuple[str, ...]", int]


def _record(
    scenario: Scenario, seed: int, operations: int | None, keep_timeline: bool
) -> tuple[SeedResult, Callable[[], Schedule]]:
    """`record_seed`, with the `Schedule` built only when asked for (`run_seed` never asks)."""
    count = operations if operations is not None else scenario.operations
    rng = random.Random(seed)
    sim_seed = rng.getrandbits(64)
    plan = scenario.fault_plan(rng)
    durability = scenario.pick_durability(rng)
    workload = Workload(scenario.mix, random.Random(rng.getrandbits(64)))
    harness = harness_type(scenario.name)(
        scenario.name,
        SimIo(seed=sim_seed, faults=plan),
        durability,
        scenario.segment_size_target_bytes,
        keep_timeline,
        header=f"seed {seed} operations {count} ",
        on_corruption=scenario.on_corruption,
    )
    phase: list[int | None] = []  # the recovery decisions of the current step

    def recovery_crash() -> int | None:
        crash = None
        if rng.random() < scenario.crash_during_recovery_probability:  # anywhere in an open like the last
            crash = rng.randrange(1, max(RECOVERY_CRASH_IOS_MIN, harness.open_ios_last + 1))
        phase.append(crash)
        return crash

    harness.recovery_crashes = recovery_crash
    steps: list[_StepFields] = []
    opening: tuple[int | None, ...] = ()

    defining = scenario.seed_defining_faults(plan)
    # Defining faults that have not fired by this step are forced (TigerBeetle's swarm
    # makes sure each seed does its job the same way): early enough for crashes to follow.
    forcer = Forcer(defining, start=rng.randrange(1, max(2, count // 4)))

    def drive() -> None:
        nonlocal opening, phase
        harness.io.begin_stream(OPENING_STREAM)
        harness.start()
        opening, phase = _trimmed(phase), []
        for number in range(1, count + 1):
            forcer.plan_crash(harness, rng, scenario.crash_probability)
            operation = workload.next()
            harness.io.begin_stream(number)
            forced = forcer.step(harness, number)
            harness.crash_landed_after_ios = None
            try:
                harness.do(operation)
            finally:
                # The schedule names the step a crash landed in, not the one that planned
                # it, so deleting the steps in between (shrinking) does not move it.
                steps.append((operation, harness.crash_landed_after_ios, _trimmed(phase), forced, number))
                phase = []
        harness.io.begin_stream(CLOSING_STREAM)
        harness.finish()

    result = _finished(harness, drive, defining)
    result.seed = seed
    result.operations = count
    size = scenario.segment_size_target_bytes
    closing = _trimmed(phase)

    def schedule() -> Schedule:
        built = Schedule(scenario.name, seed, sim_seed, plan, tuple(Step(*step) for step in steps), durability, size)
        return replace(built, opening_crashes=opening, closing_crashes=closing)

    return result, schedule


def _trimmed(crashes: list[int | None]) -> tuple[int | None, ...]:
    """Recovery decisions without the trailing "no crash"es (the default past the end)."""
    while crashes and crashes[-1] is None:
        crashes = crashes[:-1]
    return tuple(crashes)


def run_schedule(schedule: Schedule, keep_timeline: bool = False) -> SeedResult:
    """Replay `schedule`: its operations, crashes and faults, through the same oracle."""
    harness = harness_type(schedule.scenario)(
        schedule.scenario,
        SimIo(seed=schedule.sim_seed, faults=schedule.faults),
        schedule.durability,
        schedule.segment_size_target_bytes,
        keep_timeline,
        header=f"seed {schedule.seed} operations {len(schedule.steps)} ",
        on_corruption=SCENARIOS[schedule.scenario].on_corruption if schedule.scenario in SCENARIOS else "repair",
    )
    pending: list[int | None] = []

    def recovery_crash() -> int | None:
        return pending.pop(0) if pending else None

    harness.recovery_crashes = recovery_crash

    def drive() -> None:
        pending[:] = schedule.opening_crashes
        if schedule.streams:
            harness.io.begin_stream(OPENING_STREAM)
        harness.start()
        for number, step in enumerate(schedule.steps, 1):
            if schedule.streams:
                harness.io.begin_stream(step.stream if step.stream is not None else number)
            pending[:] = step.recovery_crashes
            if step.crash_after_ios is not None:
                harness.plan_crash(step.crash_after_ios)
            if step.forced:
                for name in step.forced:
                    harness.io.faults.force(name)
                harness.event(f"forced a first firing of {', '.join(step.forced)}")
            harness.do(step.operation)
        pending[:] = schedule.closing_crashes
        if schedule.streams:
            harness.io.begin_stream(CLOSING_STREAM)
        harness.finish()

    scenario = SCENARIOS.get(schedule.scenario)
    result = _finished(harness, drive, scenario.seed_defining_faults(schedule.faults) if scenario else ())
    result.seed = schedule.seed
    return result
