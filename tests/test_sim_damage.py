"""The simulated disk's damage ledger: `SimIo.damage()` is exactly the bytes a reader
gets wrong (against a fault-free disk given the same operations and crash-survival
decisions) plus the unreadable ones.

Each fault kind shows up at its exact range, heals when rewritten (and synced where the
durable copy matters), moves with a rename, goes with an unlink, is clipped by a
truncate; a transient read corruption leaves nothing. A property test runs random
sequences on a faulty `SimIo` and on a fault-free twin that is told the faulty one's
crash-survival decisions, and compares the ledger with the bytes that differ; it is
shown to catch a ledger that never heals.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from io_backends.sim import PERSISTENT_READ_ERROR, Damage, SimIo
from io_backends.sim.changes import PendingWrite
from io_backends.sim.damage import UNKNOWN_KIND, Shadow
from io_backends.sim.disk import Inode
from io_backends.sim.faults import (
    BitFlip,
    CrashSurvival,
    FaultPlan,
    FlyingWrite,
    FsyncGate,
    LatentSectorError,
    LostTruncate,
    LostWrite,
    MisdirectedWrite,
    OperationErrors,
    ReadCorruption,
    ShortRead,
    SizeBeforeData,
    TailBurst,
    TailCorruption,
    TornWrite,
)
from kv.errors import IoError
from kv.io import File
from scenarios.registry import SCENARIOS
from scenarios.runner import run_seed

PATH = "/d/f"


def _io(seed: int = 0) -> SimIo:
    io = SimIo(seed=seed)
    io.mkdir("/d").result()
    io.sync_dir("/").result()
    return io


def _file(io: SimIo, data: bytes = b"", sync: bool = True, path: str = PATH) -> File:
    """`path` with `data`, its entry durable (and its bytes, when `sync`)."""
    file = io.open(path, "w").result()
    if data:
        io.write(file, 0, data).result()
    if sync:
        io.sync(file).result()
    io.sync_dir("/d").result()
    return file


def _inode(io: SimIo, path: str = PATH) -> Inode:
    inode = io.disk.lookup(path)
    assert inode is not None
    return inode


def _positions(damage: list[Damage]) -> set[int]:
    return {position for d in damage for position in range(d.offset, d.offset + d.length)}


def _differing(actual: bytes | bytearray, expected: bytes | bytearray) -> set[int]:
    """Brute force: every position where two files differ, one lacking it included."""
    return {
        p
        for p in range(max(len(actual), len(expected)))
        if p >= len(actual) or p >= len(expected) or actual[p] != expected[p]
    }


def _fired(io: SimIo, name: str) -> int:
    count = io.faults.counts.get(name)
    return count.fired if count is not None else 0


# -- each fault at its exact range ---------------------------------------------------------


def test_bit_flip_on_write_is_the_flipped_byte_and_heals_when_rewritten_and_synced() -> None:
    io = _io()
    file = _file(io, bytes(200))
    io.faults.plan = FaultPlan(bit_flip=BitFlip(on_write_probability=1.0))
    written = bytes(range(1, 101))
    io.write(file, 10, written).result()
    expected = bytes(10) + written + bytes(90)
    (flipped,) = _differing(_inode(io).data, expected)
    assert io.damage() == [Damage(PATH, flipped, 1, "bit_flip.on_write")]
    assert io.damaged(PATH, flipped, flipped + 1) and not io.damaged(PATH, flipped + 1, 200)
    io.sync(file).result()
    io.faults_off()
    io.write(file, 10, written).result()
    assert io.damage() == []  # the page cache holds the right bytes
    io.crash()
    assert io.damage() == [Damage(PATH, flipped, 1, "bit_flip.on_write")]  # the durable copy did not
    file = io.open(PATH, "w").result()
    io.write(file, 10, written).result()
    io.sync(file).result()
    io.crash()
    assert io.damage() == []
    assert _inode(io).ledger is None  # a healed file forgets its ledger


def test_bit_flip_at_rest_is_the_flipped_byte_of_the_durable_copy() -> None:
    io = _io()
    content = bytes(range(256)) * 4
    _file(io, content)
    io.faults.plan = FaultPlan(bit_flip=BitFlip(at_rest_probability=1.0))
    io.crash()
    (flipped,) = _differing(_inode(io).data, content)
    assert io.damage() == [Damage(PATH, flipped, 1, "bit_flip.at_rest")]


def test_sticky_read_corruption_is_damage_and_a_transient_one_is_not() -> None:
    io = _io()
    content = bytes(range(100))
    file = _file(io, content)
    io.faults.plan = FaultPlan(read_corruption=ReadCorruption(probability=1.0))
    assert io.read(file, 0, 100).result() != content
    assert io.damage() == [] and _inode(io).data == content
    assert _fired(io, "read_corruption") == 1  # counted all the same
    io.faults.plan = FaultPlan(read_corruption=ReadCorruption(probability=1.0, sticky_probability=1.0))
    io.read(file, 0, 100).result()
    (flipped,) = _differing(_inode(io).data, content)
    assert io.damage() == [Damage(PATH, flipped, 1, "read_corruption.sticky")]
    io.crash()  # the durable byte flipped too
    assert io.damage() == [Damage(PATH, flipped, 1, "read_corruption.sticky")]


def test_latent_sector_error_is_its_sector_until_rewritten() -> None:
    io = _io()
    file = _file(io, bytes(1000))
    io.faults.plan = FaultPlan(latent_sector_error=LatentSectorError(probability=1.0, sector_bytes=512))
    io.write(file, 0, b"x" * 1000).result()
    (sector,) = _inode(io).bad_sectors
    start = sector * 512
    assert io.damage() == [Damage(PATH, start, min(512, 1000 - start), "latent_sector_error")]
    with pytest.raises(IoError):
        io.read(file, start, 1).result()
    io.faults.plan = FaultPlan(latent_sector_error=LatentSectorError(probability=0.0, sector_bytes=512))
    io.write(file, start, b"y").result()
    assert io.damage() == []


def test_a_persistent_read_error_is_the_whole_file_while_it_lasts_and_a_transient_one_is_not() -> None:
    """To a reader, reads that fail and fail again look like bad sectors: the whole file
    is damage (in `damage()` and in `damage_events`, as it fires) until the faults clear.
    (Found by the state machine: a recovery judged such a segment unreadable, moved it to
    quarantine and reported the loss; the fault cleared before the oracle looked, and
    the reported loss read as one with no damage on the disk.)"""
    io = _io()
    file = _file(io, bytes(100))
    io.faults.plan = FaultPlan(operation_errors=OperationErrors(read_probability=1.0))
    with pytest.raises(IoError):
        io.read(file, 0, 100).result()
    assert io.damage() == [] and io.damage_events == []  # transient: the next read may succeed
    io.faults.plan = FaultPlan(operation_errors=OperationErrors(read_probability=1.0, persistent_probability=1.0))
    with pytest.raises(IoError):
        io.read(file, 0, 100).result()
    expected = [Damage(PATH, 0, 100, PERSISTENT_READ_ERROR)]
    assert io.damage() == expected and io.damage_events == expected
    io.faults_off()
    assert io.read(file, 0, 100).result() == bytes(100) and io.damage() == []


def test_misdirected_write_damages_the_intended_range_and_where_it_landed() -> None:
    io = _io(seed=3)
    old = b"\x01" * 4096
    file = _file(io, old)
    io.faults.plan = FaultPlan(misdirected_write=MisdirectedWrite(probability=1.0, sector_bytes=512))
    io.write(file, 1024, b"\x02" * 100).result()
    expected = old[:1024] + b"\x02" * 100 + old[1124:]
    positions = _differing(_inode(io).data, expected)
    assert set(range(1024, 1124)) <= positions and len(positions) >= 200
    damage = io.damage()
    assert _positions(damage) == positions
    assert {d.kind for d in damage} == {"misdirected_write"}


def test_lost_write_is_damage_only_once_a_crash_exposes_it() -> None:
    io = _io()
    file = _file(io, b"\x01" * 300)
    io.faults.plan = FaultPlan(lost_write=LostWrite(probability=1.0))
    io.write(file, 100, b"\x02" * 50).result()
    io.sync(file).result()
    assert io.damage() == []  # the page cache holds it
    io.crash()
    assert io.damage() == [Damage(PATH, 100, 50, "lost_write")]


def test_lost_write_that_extends_the_file_leaves_the_missing_bytes_damaged() -> None:
    io = _io()
    file = _file(io, b"\x01" * 100)
    io.faults.plan = FaultPlan(lost_write=LostWrite(probability=1.0))
    io.write(file, 100, b"\x02" * 50).result()
    io.sync(file).result()
    io.crash()
    assert len(_inode(io).data) == 100
    assert io.damage() == [Damage(PATH, 100, 50, "lost_write")]  # bytes the file should hold


def test_tail_corruption_is_one_byte_near_the_end_of_the_data() -> None:
    io = _io()
    content = b"\x07" * 500
    _file(io, content + bytes(100))
    io.faults.plan = FaultPlan(tail_corruption=TailCorruption(probability=1.0, window_bytes=64))
    io.crash()
    (flipped,) = _differing(_inode(io).data, content + bytes(100))
    assert 500 - 64 <= flipped < 500
    assert io.damage() == [Damage(PATH, flipped, 1, "tail_corruption")]


def _crash_until(plan: FaultPlan, fault: str, old: bytes, offset: int, new: bytes) -> tuple[SimIo, bytes]:
    """A crash in which the unsynced write `new` at `offset` survived and `fault` hit it;
    returns the io and what a fault-free disk would hold."""
    for seed in range(200):
        io = _io(seed)
        file = _file(io, old)
        io.write(file, offset, new).result()
        io.faults.plan = plan
        io.crash()
        if _fired(io, fault):
            expected = bytearray(old)
            expected[offset : offset + len(new)] = new
            return io, bytes(expected)
    raise AssertionError(f"{fault} never fired")


def test_torn_write_damages_the_sectors_that_kept_old_bytes() -> None:
    plan = FaultPlan(
        crash_survival=CrashSurvival(prefix_probability=1.0), torn_write=TornWrite(probability=1.0, sector_bytes=512)
    )
    io, expected = _crash_until(plan, "torn_write", b"\x01" * 4096, 0, b"\x02" * 4096)
    positions = _differing(_inode(io).data, expected)
    assert positions and all(p % 512 == 0 for p in positions if p - 1 not in positions)  # whole sectors
    assert _positions(io.damage()) == positions
    assert {d.kind for d in io.damage()} == {"torn_write"}


def test_torn_write_with_garbage_is_exact_where_garbage_matches() -> None:
    plan = FaultPlan(
        crash_survival=CrashSurvival(prefix_probability=1.0),
        torn_write=TornWrite(probability=1.0, sector_bytes=512, garbage_probability=1.0),
    )
    io, expected = _crash_until(plan, "torn_write", bytes(4096), 0, bytes(range(256)) * 16)
    assert _positions(io.damage()) == _differing(_inode(io).data, expected)


def test_size_before_data_damages_the_bytes_that_read_as_zeros() -> None:
    plan = FaultPlan(
        crash_survival=CrashSurvival(prefix_probability=1.0), size_before_data=SizeBeforeData(probability=1.0)
    )
    io, expected = _crash_until(plan, "size_before_data", b"\x01" * 100, 100, b"\x02" * 40 + b"\x00" * 10)
    assert io.damage() == [Damage(PATH, 100, 40, "size_before_data")]  # the zeros it meant are fine
    assert _positions(io.damage()) == _differing(_inode(io).data, expected)


def test_a_crash_dropping_unsynced_writes_is_not_damage() -> None:
    io = _io()
    file = _file(io, b"\x01" * 100)
    io.write(file, 0, b"\x02" * 300).result()
    io.faults.plan = FaultPlan(lost_write=LostWrite(probability=1.0))  # damaging, but nothing to hit
    io.crash()
    assert io.damage() == []


def test_fsync_gate_drops_what_a_fault_free_disk_would_make_durable() -> None:
    io = _io()
    file = _file(io, b"\x01" * 100)
    io.write(file, 20, b"\x02" * 10).result()
    io.faults.force("fsync_gate")
    with pytest.raises(IoError):
        io.sync(file).result()
    io.sync(file).result()  # "succeeds", writes nothing
    assert io.damage() == []
    io.crash()
    assert io.damage() == [Damage(PATH, 20, 10, "fsync_gate")]


# -- rename, unlink, truncate ---------------------------------------------------------------


def _lost_write_damage(io: SimIo) -> File:
    """/d/f with a lost write exposed at [100, 150) of its 300 bytes; returns it open."""
    file = _file(io, b"\x01" * 300)
    io.faults.force("lost_write")
    io.write(file, 100, b"\x02" * 50).result()
    io.sync(file).result()
    io.crash()
    assert io.damage() == [Damage(PATH, 100, 50, "lost_write")]
    return io.open(PATH, "w").result()


def test_rename_carries_the_damage_and_unlink_drops_it() -> None:
    io = _io()
    _lost_write_damage(io)
    io.rename(PATH, "/d/g").result()
    assert io.damage(PATH) == [] and io.damage("/d/g") == [Damage("/d/g", 100, 50, "lost_write")]
    io.sync_dir("/d").result()
    io.crash()
    assert io.damage() == [Damage("/d/g", 100, 50, "lost_write")]
    io.unlink("/d/g").result()
    assert io.damage() == []


def test_truncate_clips_the_damage_and_regrowth_does_not_bring_it_back() -> None:
    io = _io()
    file = _lost_write_damage(io)
    io.truncate(file, 120).result()
    assert io.damage() == [Damage(PATH, 100, 20, "lost_write")]
    io.truncate(file, 50).result()
    io.truncate(file, 300).result()
    assert io.damage() == []


def test_a_write_over_part_of_the_damage_heals_that_part_only() -> None:
    io = _io()
    file = _lost_write_damage(io)
    io.write(file, 110, b"\x02" * 10).result()
    assert io.damage() == [Damage(PATH, 100, 10, "lost_write"), Damage(PATH, 120, 30, "lost_write")]


# -- the property: the ledger is exactly the differing bytes plus the unreadable ones -------

SECTOR = 64  # torn and misdirected writes: small sectors on a small file
LATENT_SECTOR = 512  # the default: a plan paused for reading interprets bad sectors by it

_probabilities = st.sampled_from([0.0, 0.0, 0.3, 1.0])


@st.composite
def _plans(draw: st.DrawFn) -> FaultPlan:
    p = _probabilities
    return FaultPlan(
        crash_survival=CrashSurvival(draw(st.sampled_from([0.0, 1.0])), draw(st.sampled_from([0.0, 1.0]))),
        torn_write=TornWrite(draw(p), SECTOR, draw(p)),
        size_before_data=SizeBeforeData(draw(p)),
        bit_flip=BitFlip(draw(p), draw(p), draw(st.integers(1, 3))),
        read_corruption=ReadCorruption(draw(p), draw(p)),
        latent_sector_error=LatentSectorError(draw(p) / 3, LATENT_SECTOR),
        misdirected_write=MisdirectedWrite(draw(p) / 3, SECTOR),
        lost_write=LostWrite(draw(p) / 3),
        short_read=ShortRead(draw(p)),
        tail_corruption=TailCorruption(draw(p), 32),
        lost_truncate=LostTruncate(draw(p)),
        tail_burst=TailBurst(draw(p), 32),
        flying_write=FlyingWrite(draw(p)),
    )


_operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(0, 700), st.integers(0, 300), st.integers(0, 9)),
        st.tuples(st.just("sync"), st.just(0), st.just(0), st.just(0)),
        st.tuples(st.just("crash"), st.just(0), st.just(0), st.just(0)),
        st.tuples(st.just("truncate"), st.integers(0, 900), st.just(0), st.just(0)),
        st.tuples(st.just("read"), st.integers(0, 700), st.integers(1, 300), st.just(0)),
        st.tuples(st.sampled_from(["pause", "resume"]), st.just(0), st.just(0), st.just(0)),
    ),
    max_size=25,
)


def _fill(size: int, token: int) -> bytes:
    """Bytes from a small alphabet, so that faults often leave a byte unchanged."""
    return bytes(random.Random(token).choices(b"\x00\x01\xff", k=size))


@contextlib.contextmanager
def _mirrored(faulty: SimIo, twin: SimIo) -> Iterator[None]:
    """The twin's crashes keep the unsynced changes the faulty io's crashes chose (by
    position in the file's list; never a lost write), unaltered."""
    decisions: dict[int, list[int]] = {}
    surviving = faulty.faults.surviving

    def recording(inode: Inode) -> list[PendingWrite]:
        chosen = surviving(inode)
        decisions[inode.number] = [i for i, change in enumerate(inode.unsynced) if any(change is c for c in chosen)]
        return chosen

    def mirrored(inode: Inode) -> list[PendingWrite]:
        return [inode.unsynced[i] for i in decisions.pop(inode.number, [])]

    with (
        mock.patch.object(faulty.faults, "surviving", recording),
        mock.patch.object(twin.faults, "survivors", mirrored),
    ):
        yield


def _mismatch(faulty: SimIo, twin: SimIo) -> str | None:
    """Why the ledger is not the brute-force difference plus the unreadable bytes."""
    data, fault_free = _inode(faulty).data, _inode(twin).data
    unreadable = {
        p for s in _inode(faulty).bad_sectors for p in range(s * LATENT_SECTOR, min((s + 1) * LATENT_SECTOR, len(data)))
    }
    damage = faulty.damage()
    expected, found = _differing(data, fault_free) | unreadable, _positions(damage)
    if any(d.kind == UNKNOWN_KIND for d in damage):
        return f"unexplained damage: {damage}"
    if found != expected:
        return f"ledger {sorted(found - expected)[:8]} extra, {sorted(expected - found)[:8]} missing"
    return None


def _step(io: SimIo, file: File, operation: tuple[str, int, int, int]) -> tuple[File, bool]:
    """Run one operation; the (re)opened file, and whether it succeeded."""
    name, first, second, token = operation
    try:
        if name == "write":
            io.write(file, first, _fill(second, token)).result()
        elif name == "sync":
            io.sync(file).result()
        elif name == "crash":
            io.crash()
            file = io.open(PATH, "w").result()
        elif name == "truncate":
            io.truncate(file, first).result()
        else:
            io.read(file, first, second).result()
    except IoError:
        return file, False
    return file, True


def check_ledger(plan: FaultPlan, seed: int, operations: list[tuple[str, int, int, int]]) -> None:
    """Run `operations` on a faulty io and on its fault-free twin, comparing after each."""
    faulty, twin = _io(seed), _io(seed)
    files = [_file(faulty, _fill(400, seed)), _file(twin, _fill(400, seed))]
    faulty.faults.plan = plan
    with _mirrored(faulty, twin):
        for operation in [*operations, ("crash", 0, 0, 0)]:
            if operation[0] in ("pause", "resume"):  # as the harness pauses faults while it reads
                faulty.faults.plan = FaultPlan() if operation[0] == "pause" else plan
                continue
            files[0], succeeded = _step(faulty, files[0], operation)
            if succeeded or operation[0] != "read":  # a failed read changes nothing
                files[1], _ = _step(twin, files[1], operation)
            problem = _mismatch(faulty, twin)
            assert problem is None, f"after {operation}: {problem}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=_plans(), seed=st.integers(0, 2**16), operations=_operations)
def test_ledger_is_exactly_the_bytes_that_differ_from_a_fault_free_twin(
    plan: FaultPlan, seed: int, operations: list[tuple[str, int, int, int]]
) -> None:
    check_ledger(plan, seed, operations)


def _never_healing(
    self: Shadow, target: bytearray, change: PendingWrite | None, twin: PendingWrite | None, kind: str | None
) -> None:
    """A broken ledger: a change no fault altered keeps every run it lands on."""
    if kind is None and change is twin and change is not None:
        runs = list(self.runs)
        original_apply(self, target, change, twin, kind)
        self.runs = sorted({*self.runs, *runs})  # old runs stay, whatever the bytes are now
        return
    original_apply(self, target, change, twin, kind)


original_apply = Shadow.apply


def test_the_property_catches_a_ledger_that_never_heals() -> None:
    plan = FaultPlan(bit_flip=BitFlip(on_write_probability=1.0))
    heal = [("write", 0, 50, 1), ("pause", 0, 0, 0), ("write", 0, 50, 2)]  # new bytes over the flip
    check_ledger(plan, 0, heal)
    with mock.patch.object(Shadow, "apply", _never_healing):
        with pytest.raises(AssertionError, match="extra"):
            check_ledger(plan, 0, heal)
        with pytest.raises(AssertionError, match="extra"):
            _find_with_hypothesis()


def _find_with_hypothesis() -> None:
    """The property test's own search finds the broken ledger (no hand-picked case)."""

    @settings(
        max_examples=300,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # finding it is the point; shrinking it would only cost time
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(plan=_plans(), seed=st.integers(0, 2**16), operations=_operations)
    def search(plan: FaultPlan, seed: int, operations: list[tuple[str, int, int, int]]) -> None:
        check_ledger(plan, seed, operations)

    search()


# -- the same comparison on whole store runs: every file, renames, unlinks, crashes ---------


class _Replay:
    """A fault-free twin of one `SimDisk`, fed every change the store's ios made to it
    successfully (the bytes the store asked for, not the ones the faults left) and
    their crash-survival decisions; compares every file's ledger with the twin."""

    def __init__(self, twin: SimIo) -> None:
        self.twin = twin  # a fault-free io of its own disk
        self.dropped: dict[int, int] = {}  # inode -> changes an fsync gate dropped (the twin still has them)
        self.decisions: dict[int, list[int]] = {}
        self.entry_decisions: list[int] = []
        self.checks = 0

    def attach(self, io: SimIo, stack: contextlib.ExitStack) -> None:
        """Record through `io` (one of the ios on the disk)."""
        for name, wrapper in (
            ("_write", self._write(io._write)),
            ("_truncate", self._truncate(io._truncate)),
            ("_sync", self._sync(io._sync)),
            ("_mkdir", self._call(io._mkdir, self.twin._mkdir)),
            ("_sync_dir", self._call(io._sync_dir, self.twin._sync_dir)),
            ("crash", self._crash(io, io.crash)),
        ):
            stack.enter_context(mock.patch.object(io, name, wrapper))
        stack.enter_context(mock.patch.object(io.faults, "surviving", self._surviving(io.faults.surviving)))
        stack.enter_context(mock.patch.object(io.faults, "entry_survivors", self._entries(io.faults.entry_survivors)))

    def attach_disk(self, io: SimIo, stack: contextlib.ExitStack) -> None:
        disk = io.disk
        stack.enter_context(mock.patch.object(disk, "new_inode", self._call(disk.new_inode, self.twin.disk.new_inode)))
        entries = self._call(disk.change_entries, self.twin.disk.change_entries)
        stack.enter_context(mock.patch.object(disk, "change_entries", entries))

    @staticmethod
    def _call(original: Callable[..., Any], twin: Callable[..., Any]) -> Callable[..., Any]:
        def call(*arguments: Any) -> Any:
            value = original(*arguments)
            twin(*arguments)
            return value

        return call

    @staticmethod
    def _inode(file: File) -> Inode:
        handle = file.handle
        inode = getattr(handle, "inode", None)  # the sim's private handle type
        assert isinstance(inode, Inode)
        return inode

    def _twin_inode(self, file: File) -> Inode:
        return self.twin.disk.inodes[self._inode(file).number]

    def _write(self, original: Callable[[File, int, bytes], None]) -> Callable[[File, int, bytes], None]:
        def write(file: File, offset: int, data: bytes) -> None:
            original(file, offset, data)
            self._twin_inode(file).write(offset, data)

        return write

    def _truncate(self, original: Callable[[File, int], None]) -> Callable[[File, int], None]:
        def change(file: File, size: int) -> None:
            original(file, size)
            self._twin_inode(file).truncate(size)

        return change

    def _sync(self, original: Callable[[File], None]) -> Callable[[File], None]:
        def sync(file: File) -> None:
            inode = self._inode(file)
            number, pending = inode.number, len(inode.unsynced)
            try:
                original(file)
            except IoError:
                if pending and not inode.unsynced:  # an fsync gate dropped them
                    self.dropped[number] = self.dropped.get(number, 0) + pending
                raise
            self.dropped.pop(number, None)
            self._twin_inode(file).sync()

        return sync

    def _surviving(self, original: Callable[[Inode], list[PendingWrite]]) -> Callable[[Inode], list[PendingWrite]]:
        def surviving(inode: Inode) -> list[PendingWrite]:
            chosen = original(inode)
            skip = self.dropped.get(inode.number, 0)
            self.decisions[inode.number] = [
                skip + i for i, change in enumerate(inode.unsynced) if any(change is c for c in chosen)
            ]
            return chosen

        return surviving

    def _entries(self, original: Callable[[list[Any]], list[Any]]) -> Callable[[list[Any]], list[Any]]:
        def entries(pending: list[Any]) -> list[Any]:
            chosen = original(pending)
            self.entry_decisions = [i for i, change in enumerate(pending) if any(change is c for c in chosen)]
            return chosen

        return entries

    def _crash(self, io: SimIo, original: Callable[[], None]) -> Callable[[], None]:
        def crash() -> None:
            self.decisions, self.entry_decisions = {}, []
            original()
            decisions, entry_decisions = self.decisions, self.entry_decisions
            self.twin.disk.crash(
                lambda inode: [inode.unsynced[i] for i in decisions.get(inode.number, [])],
                lambda pending: [pending[i] for i in entry_decisions],
            )
            self.dropped.clear()
            self.check(io)

        return crash

    def check(self, io: SimIo) -> None:
        """Every file's ledger is exactly its differences from the twin (plus bad sectors)."""
        files = dict(io.disk.files())
        assert set(files) == {path for path, _ in self.twin.disk.files()}
        for path, inode in files.items():
            twin = self.twin.disk.lookup(path)
            assert twin is not None
            unreadable = {
                p
                for s in inode.bad_sectors
                for p in range(s * LATENT_SECTOR, min((s + 1) * LATENT_SECTOR, len(inode.data)))
            }
            damage = io.damage(path)
            assert _positions(damage) == _differing(inode.data, twin.data) | unreadable, (path, damage)
            assert all(d.kind != UNKNOWN_KIND for d in damage)
        self.checks += 1


_HEAVY = FaultPlan(
    crash_survival=CrashSurvival(prefix_probability=0.4, subset_probability=0.4),
    torn_write=TornWrite(probability=0.5, garbage_probability=0.5),
    size_before_data=SizeBeforeData(probability=0.3),
    bit_flip=BitFlip(on_write_probability=0.01, at_rest_probability=0.3, bits_max=2),
    read_corruption=ReadCorruption(probability=0.01, sticky_probability=0.5),
    latent_sector_error=LatentSectorError(probability=0.005),
    misdirected_write=MisdirectedWrite(probability=0.005),
    lost_write=LostWrite(probability=0.005),
    tail_corruption=TailCorruption(probability=0.2),
    lost_truncate=LostTruncate(probability=0.05),
    tail_burst=TailBurst(probability=0.1),
    flying_write=FlyingWrite(probability=0.3),
    operation_errors=OperationErrors(write_probability=0.002, sync_probability=0.002, rename_probability=0.01),
    fsync_gate=FsyncGate(probability=0.005),
)


@pytest.mark.parametrize("seed", range(4))
def test_ledger_matches_a_fault_free_replay_of_store_runs(seed: int) -> None:
    scenario = replace(SCENARIOS["completion_corruption"], faults=_HEAVY, crash_probability=0.02, defining_faults=())
    replays: dict[int, tuple[_Replay, SimIo]] = {}
    original_init = SimIo.__init__
    with contextlib.ExitStack() as stack:

        def init(io: SimIo, *arguments: Any, **keywords: Any) -> None:
            original_init(io, *arguments, **keywords)
            if id(io.disk) not in replays:
                twin = SimIo.__new__(SimIo)
                original_init(twin)
                replays[id(io.disk)] = (_Replay(twin), io)
                replays[id(io.disk)][0].attach_disk(io, stack)
            replays[id(io.disk)][0].attach(io, stack)

        stack.enter_context(mock.patch.object(SimIo, "__init__", init))
        run_seed(scenario, seed, 400)
        for replay, io in replays.values():
            replay.check(io)
    assert sum(replay.checks for replay, _ in replays.values()) > 2  # crashes were checked too


def test_the_store_replay_catches_a_ledger_that_never_heals() -> None:
    """Over the four seeds the replay test runs, a ledger that never heals is caught
    (which seeds rewrite damaged bytes depends on the store's exact I/O)."""
    caught = []
    with mock.patch.object(Shadow, "apply", _never_healing):
        for seed in range(4):
            try:
                test_ledger_matches_a_fault_free_replay_of_store_runs(seed)
            except AssertionError:
                caught.append(seed)
    assert caught
