"""A hypothesis state machine: the store on the simulated disk, checked by the oracle.

Every decision is hypothesis data, so a failure shrinks: the operations and their
arguments, when the power fails (now, or a number of I/Os into the next operations or
into recovery), which faults are switched on, and the simulated disk's own choices
(completion order, which fault fires, what survives a crash), which it draws from a
`st.randoms(use_true_random=False)`. A shrunk failure is a short list of rules plus the
few faults it needs.

    from scenarios.state_machine import StoreMachine
    TestStore = StoreMachine.TestCase   # collected by pytest

The checks are the seeded runner's (`scenarios.runner.Harness`): every answer and every
recovery against the model, reported losses only, liveness at the end.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from io_backends.sim import SimIo
from io_backends.sim.faults import (
    BitFlip,
    CrashSurvival,
    EntryLoss,
    FsyncGate,
    LatentSectorError,
    LostTruncate,
    LostWrite,
    MisdirectedWrite,
    OperationErrors,
    ReadCorruption,
    SizeBeforeData,
    TornWrite,
)
from kv.store import Durability
from scenarios.operations import KINDS, Operation
from scenarios.runner import STORE_DIRECTORY, Harness, Violation
from scenarios.strategies import OPERATION_KINDS

KEYS = tuple(f"k{index}".encode() for index in range(6))
VALUE_SIZE_MAX_BYTES = 400  # with 1 KiB segments, a few writes roll a segment
SEGMENT_SIZE_TARGET_BYTES = 1024
TIMELINE_NOTE_EVENTS = 40  # the last events of the run, added to a violation's message

# What survives a power loss, chosen by each crash rule: none of the unsynced writes
# and directory changes, a prefix of them, or any subset of them.
SURVIVAL = {
    "nothing": CrashSurvival(),
    "prefix": CrashSurvival(prefix_probability=1.0),
    "subset": CrashSurvival(subset_probability=1.0),
}
# What `inject` switches on: aggressive settings, because a machine's runs are short.
FAULTS: dict[str, Any] = {  # fault name -> its settings (a FaultPlan field)
    "torn_write": TornWrite(probability=0.5, sector_bytes=512, garbage_probability=0.5),
    "size_before_data": SizeBeforeData(probability=0.5),
    "bit_flip": BitFlip(on_write_probability=0.05, at_rest_probability=0.5),
    "read_corruption": ReadCorruption(probability=0.05, sticky_probability=0.3),
    "latent_sector_error": LatentSectorError(probability=0.05),
    "misdirected_write": MisdirectedWrite(probability=0.05),
    "lost_write": LostWrite(probability=0.05),
    "lost_truncate": LostTruncate(probability=0.3),
    "entry_loss": EntryLoss(probability=0.5),
    "operation_errors": OperationErrors(
        open_probability=0.05,
        read_probability=0.05,
        write_probability=0.05,
        sync_probability=0.05,
        rename_probability=0.1,
        unlink_probability=0.1,
        persistent_probability=0.1,
    ),
    "fsync_gate": FsyncGate(probability=0.3),
}


DURABILITIES: tuple[Durability, ...] = ("always", "batch", "none")


def _value(step: int, size: int) -> bytes:
    """A value that names the step that wrote it (so a stale value is told apart)."""
    stamp = f"{step}:".encode()
    return (stamp * (size // len(stamp) + 1))[: max(size, len(stamp))]


class StoreMachine(RuleBasedStateMachine):
    """Rules: one per operation kind hypothesis draws (`scenarios.strategies.OPERATION_KINDS`:
    set, delete, set_many, get, flush, compact, from the registry), pause, crash (now,
    or planned a few I/Os ahead, or inside the next recovery), reopen and inject (switch
    a fault on). Each example runs in one durability mode, drawn first from
    `durabilities`."""

    durabilities: tuple[Durability, ...] = DURABILITIES  # a subclass may narrow them

    def __init__(self) -> None:
        super().__init__()
        self.harness: Harness | None = None
        self.violated = False  # a rule raised: teardown must not bury it under a second failure
        self.step_number = 0
        self.recovery_crashes: list[int] = []

    @initialize(rng=st.randoms(use_true_random=False), data=st.data())
    def start(self, rng: random.Random, data: st.DataObject) -> None:
        durability = data.draw(st.sampled_from(self.durabilities), label="durability")
        io = SimIo(rng=rng)
        self.harness = Harness(
            "state_machine",
            io,
            durability=durability,
            segment_size_target_bytes=SEGMENT_SIZE_TARGET_BYTES,
            keep_timeline=True,
        )
        self.harness.recovery_crashes = lambda: self.recovery_crashes.pop(0) if self.recovery_crashes else None
        self.harness.start()

    def _run(self, action: Callable[[Harness], None]) -> None:
        assert self.harness is not None
        try:
            action(self.harness)
        except BaseException as error:
            self.violated = True
            if isinstance(error, Violation):  # the simulated disk's side of the story
                error.add_note("timeline:\n  " + "\n  ".join(self.harness.result.timeline[-TIMELINE_NOTE_EVENTS:]))
            raise

    def operate(self, operation: Operation) -> None:
        """Run one operation, its values stamped with the step (lengths kept); the
        operation rules call it, and so may a test replaying a shrunk example."""
        self._do(_stamped(operation, self.step_number))

    def _do(self, operation: Operation) -> None:
        self.step_number += 1
        self._run(lambda harness: harness.do(operation))

    def _survive(self, survival: str) -> None:
        assert self.harness is not None
        faults = self.harness.io.faults
        faults.plan = replace(faults.plan, crash_survival=SURVIVAL[survival])
        self.harness.note_faults()

    @rule(survival=st.sampled_from(sorted(SURVIVAL)))
    def crash(self, survival: str) -> None:
        """Power fails between operations; recovery runs (twice: it must be idempotent)."""
        self._survive(survival)
        self._run(Harness.crash_now)

    @rule(after_ios=st.integers(1, 12), survival=st.sampled_from(sorted(SURVIVAL)))
    def crash_soon(self, after_ios: int, survival: str) -> None:
        """Power fails this many simulated I/Os into the next operations."""
        self._survive(survival)
        self._run(lambda harness: harness.plan_crash(after_ios))

    @rule(after_ios=st.integers(1, 30))
    def crash_in_next_recovery(self, after_ios: int) -> None:
        """The next recovery crashes this many I/Os in (then runs again)."""
        self.recovery_crashes.append(after_ios)

    @rule(times=st.integers(1, 4))
    def pause(self, times: int) -> None:
        """The client is idle for `times` x `PAUSE_US` of virtual time (deadlines come due)."""
        for _ in range(times):
            self._do(Operation("pause", {}))

    @rule()
    def reopen(self) -> None:
        """A clean close and open."""
        self._run(Harness.reopen_clean)

    @rule(file=st.integers(0, 7), position=st.integers(0, 1 << 16), bit=st.integers(0, 7))
    def flip_bit(self, file: int, position: int, bit: int) -> None:
        """A bit flips at rest, now, in one of the store's files (media damage: the
        store must report what it loses and never return a wrong value)."""
        assert self.harness is not None
        disk = self.harness.io.disk
        directory = disk.directories.get(STORE_DIRECTORY)
        inodes = [disk.inodes[number] for _, number in sorted(directory.entries.items())] if directory else []
        inodes = [inode for inode in inodes if inode.durable]
        if not inodes:
            return
        inode = inodes[file % len(inodes)]
        position %= len(inode.durable)
        inode.flip(position, 1 << bit, "bit_flip.at_rest")  # in the page cache too; the ledger knows
        self.harness.media = self.harness.faulty = True
        self.harness.event(f"bit {bit} of byte {position} flipped at rest")

    @rule()
    def fail_next_sync(self) -> None:
        """fsyncgate, once: the next sync of dirty data fails and its pages are dropped."""
        assert self.harness is not None
        self.harness.io.faults.force("fsync_gate")
        self.harness.faulty = True
        self.harness.event("the next sync of dirty data will fail (fsyncgate)")

    @precondition(lambda self: self.harness is not None and len(self.harness.io.faults.plan.enabled()) < len(FAULTS))
    @rule(fault=st.sampled_from(sorted(FAULTS)))
    def inject(self, fault: str) -> None:
        """Switch a fault on from now on."""
        assert self.harness is not None
        faults = self.harness.io.faults
        faults.plan = replace(faults.plan, **{fault: FAULTS[fault]})
        self.harness.note_faults()

    def teardown(self) -> None:
        """Faults off: a clean close and reopen give the model (liveness)."""
        if self.harness is not None and self.harness.store is not None and not self.violated:
            self._run(Harness.finish)


def _stamped(operation: Operation, step: int) -> Operation:
    """The operation with each value made to name the step (its length kept)."""
    changes = {key: None if value is None else _value(step, len(value)) for key, value in operation.changes.items()}
    return operation._replace(changes=changes)


def _operation_rule(name: str) -> Callable[[StoreMachine, Operation], None]:
    """The rule that runs one operation of kind `name`, drawn by its registry strategy
    (values drawn as lengths, then stamped with the step)."""
    strategy = KINDS[name].strategy(st.sampled_from(KEYS), st.integers(0, VALUE_SIZE_MAX_BYTES).map(bytes), len(KEYS))
    assert strategy is not None, name

    def run(self: StoreMachine, operation: Operation) -> None:
        self.operate(operation)

    run.__name__ = run.__qualname__ = name
    run.__doc__ = f"One `{name}` (scenarios.operations.KINDS[{name!r}])."
    decorated: Callable[[StoreMachine, Operation], None] = rule(operation=strategy)(run)
    return decorated


for _name in OPERATION_KINDS:
    setattr(StoreMachine, _name, _operation_rule(_name))
