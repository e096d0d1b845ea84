"""Run one scenario for one seed on the simulated disk and check it against the model.

The checks made here (more arrive with the fault catalogue):

- every `get` returns exactly what the model holds (no silent corruption, no stale read);
- after a crash, the recovered state is the acknowledged state, or that state plus the
  one operation in flight, whole (durability, atomicity of `set_many`);
- recovery that crashes itself, then runs again, gives the same state (idempotence);
- recovery finds no corruption where no media fault was injected;
- at the end, with faults off, a clean close and reopen give the model (liveness).

Not checked yet: media faults (bit flips, torn and lost writes, EIO, ENOSPC) and the
loss reports they require; those come with the fault catalogue.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

import kv
from io_backends.sim import SimIo, SimulatedCrash
from kv.store import Store
from scenarios.registry import Scenario
from scenarios.workload import Model, Operation, Workload, apply, read_state, run_operation

STORE_DIRECTORY = "/store"
# A crash lands within this many I/O operations of being planned.
CRASH_DELAY_OPERATIONS_MAX = 60
# Recovery may itself crash this many times in a row before it must finish.
RECOVERY_CRASHES_MAX = 3


class Violation(Exception):
    """An invariant the store promised did not hold."""


@dataclass
class SeedResult:
    scenario: str
    seed: int
    operations: int
    passed: bool = True
    violation: str = ""
    crashes: int = 0
    recoveries: int = 0
    trace_hash: str = ""
    timeline: list[str] = field(default_factory=list)


class _Run:
    def __init__(self, scenario: Scenario, seed: int, operations: int, keep_timeline: bool) -> None:
        self.scenario = scenario
        self.seed = seed
        self.operations = operations
        self.rng = random.Random(seed)
        self.io = SimIo(seed=self.rng.getrandbits(64))
        self.workload = Workload(scenario.mix, random.Random(self.rng.getrandbits(64)))
        self.result = SeedResult(scenario.name, seed, operations)
        self.digest = hashlib.sha256()
        self.keep_timeline = keep_timeline
        self.model: Model = {}

    def event(self, text: str) -> None:
        self.digest.update(text.encode() + b"\n")
        if self.keep_timeline:
            self.result.timeline.append(f"t={self.io.clock_us}us {text}")

    def open(self) -> Store:
        return kv.open(
            STORE_DIRECTORY,
            io=self.io,
            durability=self.scenario.durability,
            on_corruption="raise",
            segment_size_target_bytes=self.scenario.segment_size_target_bytes,
        )

    def recover(self) -> Store:
        """Reopen after a crash, letting recovery itself crash a few times."""
        for attempt in range(RECOVERY_CRASHES_MAX):
            if self.rng.random() < self.scenario.crash_during_recovery_probability:
                self.io.crash_at_operation = self.io.operations_completed + self.rng.randrange(1, 30)
            try:
                store = self.open()
            except SimulatedCrash:
                self.result.crashes += 1
                self.event(f"crash during recovery (attempt {attempt + 1})")
                continue
            self.io.crash_at_operation = None
            self.result.recoveries += 1
            if not store.recovery.clean:
                self.event(f"recovery: {store.recovery.summary()}")
            if store.recovery.corruptions:
                raise Violation(f"corruption reported where no media fault was injected: {store.recovery.summary()}")
            return store
        self.io.crash_at_operation = None
        return self.open()

    def step(self, store: Store, operation: Operation) -> Store:
        try:
            value = run_operation(store, operation)
        except SimulatedCrash:
            return self.after_crash(operation)
        kind, changes = operation
        if kind == "get":
            [key] = changes
            if value != self.model.get(key):
                raise Violation(f"get({key!r}) returned {value!r:.80}, the model holds {self.model.get(key)!r:.80}")
        self.model = apply(self.model, operation)
        return store

    def after_crash(self, in_flight: Operation) -> Store:
        self.result.crashes += 1
        self.event(f"crash during {in_flight[0]}")
        store = self.recover()
        state = read_state(store)
        candidates = [self.model, apply(self.model, in_flight)]
        if state not in candidates:
            missing = sorted(set(self.model) - set(state))[:5]
            raise Violation(f"after a crash during {in_flight[0]} the state is not a legal outcome (missing {missing})")
        self.model = state
        again = self.reopen_and_compare(store, "recovery is not idempotent")
        return again

    def reopen_and_compare(self, store: Store, message: str) -> Store:
        store.close()
        reopened = self.open()
        if read_state(reopened) != self.model:
            raise Violation(message)
        return reopened

    def run(self) -> SeedResult:
        self.event(f"scenario {self.scenario.name} seed {self.seed} operations {self.operations}")
        store = self.open()
        for _ in range(self.operations):
            if self.io.crash_at_operation is None and self.rng.random() < self.scenario.crash_probability:
                self.io.crash_at_operation = self.io.operations_completed + self.rng.randrange(
                    1, CRASH_DELAY_OPERATIONS_MAX
                )
            operation = self.workload.next()
            self.event(f"{operation[0]} {sorted(operation[1])[:3]}")
            store = self.step(store, operation)
        self.io.crash_at_operation = None  # liveness phase: faults off
        self.reopen_and_compare(store, "a clean close and reopen did not give the model").close()
        self.event(f"end keys={len(self.model)} clock_us={self.io.clock_us}")
        return self.result


def run_seed(scenario: Scenario, seed: int, operations: int | None = None, keep_timeline: bool = False) -> SeedResult:
    """Run `scenario` for `seed`; a violated invariant gives `passed=False`, never an exception."""
    run = _Run(scenario, seed, operations if operations is not None else scenario.operations, keep_timeline)
    try:
        run.run()
    except Violation as violation:
        run.result.passed = False
        run.result.violation = str(violation)
        run.event(f"VIOLATION {violation}")
    run.result.trace_hash = run.digest.hexdigest()[:16]
    return run.result
