"""Regression (issue 10's batch-mode hunt): a repair must never leave a gap in the log's
segment ids. A sealed segment damaged at offset 0, an empty sealed segment after it,
then a segment whose lsns show the damage with nothing valid before it (everything
older compacted): recovery moved the damaged segment and the newest whole, kept the
empty one between them, and the next open read the gap as damage and quarantined
every write made since (a clean close's included)."""

from __future__ import annotations

import random

import pytest

from scenarios.operations import Operation
from scenarios.runner import STORE_DIRECTORY, Harness
from scenarios.state_machine import StoreMachine


class _Batch:
    """Stands in for hypothesis' `data`: the machine's durability draw."""

    def draw(self, strategy: object, label: str | None = None) -> str:
        return "batch"


def _damaged_store(seed: int) -> StoreMachine:
    """The shrunk schedule the state machine found, up to its last write."""
    machine = StoreMachine()
    machine.start(rng=random.Random(seed), data=_Batch())
    machine.fail_next_sync()
    machine.operate(Operation("set_many", dict.fromkeys([b"k0", b"k1", b"k2", b"k3", b"k4", b"k5"], bytes(42))))
    for _ in range(5):
        machine.operate(Operation("compact", {}))
    machine.operate(Operation("set_many", dict.fromkeys([b"k0", b"k1", b"k2"], bytes(0))))
    machine.operate(Operation("compact", {}))
    machine.flip_bit(file=0, position=254, bit=0)
    for _ in range(4):
        machine.operate(Operation("compact", {}))
    machine.operate(Operation("delete", {b"k1": None}))
    machine.operate(Operation("compact", {}))
    machine.operate(Operation("compact", {}))
    machine.flip_bit(file=2, position=0, bit=0)  # the first frame of a sealed segment
    machine.operate(Operation("set_many", dict.fromkeys([b"k0", b"k1"], bytes(0))))
    return machine


@pytest.mark.parametrize("seed", range(3))
def test_the_state_machine_schedule_passes_on_the_real_store(seed: int) -> None:
    machine = _damaged_store(seed)
    machine.teardown()  # liveness: raises Violation when a clean close loses a write


def test_repair_leaves_the_segment_ids_contiguous_and_later_writes_survive() -> None:
    machine = _damaged_store(0)
    harness = machine.harness
    assert isinstance(harness, Harness) and harness.store is not None
    harness.io.faults_off()
    harness.close(harness.store)
    with harness.open() as store:  # repairs: the damaged sealed segment goes to quarantine
        assert store.recovery.corruptions and store.recovery.repaired
        store.set(b"after", b"repair")
    names = harness.io.listdir(STORE_DIRECTORY).result()
    ids = sorted(int(name[:8]) for name in names if name.endswith(".seg"))
    assert ids == list(range(ids[0], ids[-1] + 1)), f"a gap in the segment ids: {ids}"
    with harness.open() as store:
        assert store.recovery.clean, store.recovery.summary()
        assert store.get(b"after") == b"repair"
