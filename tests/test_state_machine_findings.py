"""Regressions: schedules the state machine's searches shrank to on the real store
(`tests/test_state_machine.py`'s `search`), replayed rule by rule with the simulated
disk's choices from a fixed seed. Each failed before its fix: in `kv.judge` (unit tests
of the same cases: `tests/test_judge_plan.py`), or in the harness (`lost_write_in_recovery`);
`teardown` is the liveness check (faults off, a clean close and reopen, every key
against the model)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from kv.files import CLEAN_MARKER_NAME
from scenarios.operations import Operation
from scenarios.runner import STORE_DIRECTORY
from scenarios.state_machine import StoreMachine


class _Durability:
    """Stands in for hypothesis' `data`: the machine's durability draw."""

    def __init__(self, durability: str) -> None:
        self.durability = durability

    def draw(self, strategy: object, label: str | None = None) -> str:
        return self.durability


def _set_if_missing(machine: StoreMachine, key: bytes, size: int) -> None:
    machine.operate(Operation("set_if_missing", {key: bytes(size)}))


def quarantined_twice(machine: StoreMachine) -> None:
    """Search 8: a sealed segment damaged at offset 0 and the newest damaged at offset 0
    (kept at length 0) were both bound for quarantine, the newest twice; every open then
    failed on the second rename ("the store cannot be opened once the faults cleared")."""
    sizes = {b"k0": 0, b"k1": 5, b"k2": 10, b"k5": 318, b"k4": 400}
    machine.operate(Operation("set_many", {key: bytes(size) for key, size in sizes.items()}))
    machine.operate(Operation("set_if_present", {b"k1": bytes(143)}))
    machine.flip_bit(bit=0, file=0, position=0)
    machine.operate(Operation("set_many", {b"k0": b""}))
    for _ in range(4):
        machine.crash_in_next_recovery(after_ios=1)
    machine.flip_bit(bit=0, file=1, position=0)
    machine.crash_in_next_recovery(after_ios=1)


def _search_6(
    machine: StoreMachine,
    writes: tuple[tuple[bytes, int], ...],
    tail_position: int,
    later: tuple[tuple[bytes, int], ...],
    newest_positions: tuple[int, ...],
) -> None:
    """The shape of search 6's shrinks: set_if_missing writes, byte 0 of the first
    segment flipped twice around two refused writes (restored), a flip in the sealed
    segment's tail, more writes, then flips in the newest segment."""
    for key, size in writes:
        _set_if_missing(machine, key, size)
    machine.flip_bit(bit=0, file=0, position=0)
    _set_if_missing(machine, b"k0", 0)
    _set_if_missing(machine, b"k0", 0)
    machine.flip_bit(bit=0, file=0, position=0)
    machine.flip_bit(bit=0, file=0, position=tail_position)
    for key, size in later:
        _set_if_missing(machine, key, size)
    for position in newest_positions:
        machine.flip_bit(bit=0, file=1, position=position)


def recorded_durable_after_a_damaged_tail(machine: StoreMachine) -> None:
    """Search 6, first shrink: a damaged sealed tail, then the newest frame damaged where
    the CLEAN marker recorded it durable, its header carrying a later lsn: 2 keys gone,
    1 reported as a known count."""
    writes = ((b"k1", 159), (b"k2", 0), (b"k0", 238), (b"k0", 0), (b"k0", 0))
    later = ((b"k0", 0), (b"k0", 0), (b"k0", 0), (b"k3", 378))
    _search_6(machine, writes, 285, later, (6,))


def spanning_after_a_damaged_tail(machine: StoreMachine) -> None:
    """Search 6, after the first fix: a damaged sealed tail, then damage spanning the
    newest segment's frames: 3 keys gone, 2 reported as a known count."""
    writes = ((b"k1", 234), (b"k2", 0), (b"k0", 381), (b"k3", 160), (b"k0", 0))
    _search_6(machine, writes, 360, ((b"k0", 0), (b"k0", 0), (b"k4", 0)), (254, 0))


def two_damaged_sealed_segments(machine: StoreMachine) -> None:
    """Search 21: two sealed segments damaged at offset 0, no valid frame in either; the
    second damaged tail replaced the first in the judge, which stayed in the log, and
    the next open quarantined the liveness write made after the repair."""
    for _ in range(5):
        machine.operate(Operation("compact", {}))
    machine.operate(Operation("set", {b"k0": b""}))
    sizes = {b"k0": 0, b"k1": 0, b"k2": 0, b"k3": 0, b"k4": 341, b"k5": 400}
    machine.operate(Operation("set_many", {key: bytes(size) for key, size in sizes.items()}))
    machine.flip_bit(bit=0, file=1, position=0)
    machine.flip_bit(bit=0, file=2, position=0)
    machine.operate(Operation("set_many", {b"k0": b""}))


def lost_write_in_recovery(machine: StoreMachine) -> None:
    """Batch search 3 (its two lost writes forced here): a write lost, the CLEAN marker
    damaged (both copies), a crash; the recovery accepts the loss as a silent one and
    rewrites the segment (rule 2), and the disk loses that write too, which only the
    next crash shows. The harness charged both lost writes to the first recovery, so the
    second loss read as an unreported one; it now counts the lost writes fired before
    each crash (`Harness.crashed`)."""
    assert machine.harness is not None
    faults, disk = machine.harness.io.faults, machine.harness.io.disk
    machine.operate(Operation("set", {b"k0": b""}))
    machine.reopen()
    faults.force("lost_write")
    machine.operate(Operation("set", {b"k0": b""}))
    machine.reopen()
    directory = disk.directories[STORE_DIRECTORY]
    durable = [name for name, number in sorted(directory.entries.items()) if disk.inodes[number].durable]
    for position in (0, 20):  # each copy of the marker
        machine.flip_bit(bit=0, file=durable.index(CLEAN_MARKER_NAME), position=position)
    faults.force("lost_write")
    machine.crash(survival="nothing")
    machine.crash(survival="nothing")


# schedule -> the durability mode it ran in
SCHEDULES: dict[str, tuple[Callable[[StoreMachine], None], str]] = {
    quarantined_twice.__name__: (quarantined_twice, "always"),
    recorded_durable_after_a_damaged_tail.__name__: (recorded_durable_after_a_damaged_tail, "always"),
    spanning_after_a_damaged_tail.__name__: (spanning_after_a_damaged_tail, "always"),
    two_damaged_sealed_segments.__name__: (two_damaged_sealed_segments, "always"),
    lost_write_in_recovery.__name__: (lost_write_in_recovery, "batch"),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_the_shrunk_schedule_passes_on_the_real_store(name: str, seed: int) -> None:
    schedule, durability = SCHEDULES[name]
    machine = StoreMachine()
    machine.start(rng=random.Random(seed), data=_Durability(durability))
    schedule(machine)
    machine.teardown()  # raises Violation on a lost write, a miscounted loss, an open that fails
