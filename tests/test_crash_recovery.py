"""Crashes, torn tails, corruption and failed syncs on the simulated disk.

The model is a dict replayed from the operations the store acknowledged; the one
operation in flight at the crash is indeterminate (whole or absent, never half).
"""

from __future__ import annotations

import contextlib
import errno
import random
from dataclasses import dataclass

import pytest

import kv
from io_backends.sim import SimIo, SimulatedCrash
from io_backends.sim.disk import Inode
from io_backends.sim.faults import CrashSurvival, FaultPlan, FsyncGate, TornWrite
from kv.errors import CorruptionDetected, IoError, StoreReadOnly
from kv.io import File, Future
from kv.recovery import scan_segment
from kv.store import Durability
from scenarios.workload import Operation, apply, read_state, run_operation

DIRECTORY = "/db"


def _random_operation(rng: random.Random, step: int) -> Operation:
    roll = rng.random()
    key = f"key{rng.randrange(40)}".encode()
    if roll < 0.5:
        return Operation("set", {key: f"value{step}-".encode() * rng.randrange(1, 30)})
    if roll < 0.7:
        return Operation("delete", {key: None})
    if roll < 0.95:
        return Operation(
            "set_many",
            {f"key{rng.randrange(40)}".encode(): f"batch{step}".encode() for _ in range(rng.randrange(1, 6))},
        )
    return Operation("compact", {})


@dataclass
class CrashOutcome:
    acknowledged: dict[bytes, bytes]
    in_flight: dict[bytes, bytes] | None


def _workload_until_crash(io: SimIo, seed: int, crash_at: int) -> CrashOutcome:
    rng = random.Random(seed)
    model: dict[bytes, bytes] = {}
    store = kv.open(DIRECTORY, io=io, segment_size_target_bytes=2048)
    io.crash_at_operation = io.operations_completed + crash_at
    for step in range(200):
        operation = _random_operation(rng, step)
        try:
            run_operation(store, operation)
        except SimulatedCrash:
            return CrashOutcome(model, apply(model, operation))
        model = apply(model, operation)
    io.crash_at_operation = None
    io.crash()
    return CrashOutcome(model, None)


@pytest.mark.parametrize("seed", range(60))
def test_crash_anywhere_loses_only_unacknowledged_writes(seed: int) -> None:
    io = SimIo(seed=seed)
    crash_at = random.Random(seed).randrange(1, 1500)
    outcome = _workload_until_crash(io, seed, crash_at)
    # A crash during recovery, then recovery again, must give the same state.
    io.crash_at_operation = io.operations_completed + random.Random(seed + 1).randrange(1, 40)
    with contextlib.suppress(SimulatedCrash):
        kv.open(DIRECTORY, io=io).close()
    io.crash_at_operation = None
    with kv.open(DIRECTORY, io=io) as store:
        recovered = read_state(store)
        assert not store.recovery.corruptions, store.recovery.summary()
        assert store.verify().ok
    assert recovered == outcome.acknowledged or recovered == outcome.in_flight, (
        f"seed {seed}: recovered state is neither the acknowledged state nor it plus the in-flight operation"
    )
    with kv.open(DIRECTORY, io=io) as store:
        assert read_state(store) == recovered, "recovery is not idempotent"


@pytest.mark.parametrize("durability", ["batch", "none"])
@pytest.mark.parametrize("seed", range(10))
def test_buffered_modes_recover_a_prefix_no_shorter_than_the_last_flush(seed: int, durability: Durability) -> None:
    io = SimIo(seed=seed)
    rng = random.Random(seed)
    store = kv.open(DIRECTORY, io=io, durability=durability, segment_size_target_bytes=4096)
    prefixes = [dict[bytes, bytes]()]
    flushed_at = 0
    for step in range(400):
        operation = _random_operation(rng, step)
        if operation[0] == "compact":
            store.flush()
            flushed_at = len(prefixes) - 1
            continue
        run_operation(store, operation)
        prefixes.append(apply(prefixes[-1], operation))
    io.crash()
    with kv.open(DIRECTORY, io=io) as reopened:
        recovered = read_state(reopened)
        assert not reopened.recovery.corruptions
    matches = [index for index, prefix in enumerate(prefixes) if prefix == recovered]
    assert matches, "the recovered state is not the state after any prefix of the operations"
    assert max(matches) >= flushed_at


def _inode(io: SimIo, name: str) -> Inode:
    inode = io.disk.lookup(f"{DIRECTORY}/{name}")
    assert inode is not None
    return inode


def _frame_offsets(data: bytes | bytearray, segment_id: int = 1) -> tuple[list[int], int]:
    """Where each valid frame starts, and where the last one ends (zeros may follow:
    the writer preallocates)."""
    scan = scan_segment(segment_id, bytes(data))
    return [offset for offset, _header in scan.frames], scan.valid_length


def _ten_single_record_frames(io: SimIo) -> None:
    with kv.open(DIRECTORY, io=io) as store:
        for index in range(10):
            store.set(f"k{index}", f"v{index}")


def test_torn_tail_is_truncated_and_reported() -> None:
    io = SimIo(seed=1)
    _ten_single_record_frames(io)
    inode = _inode(io, "00000001.seg")
    offsets, end = _frame_offsets(inode.durable)
    whole = bytes(inode.durable[:end])
    # A torn write: the first half of an eleventh frame reached the disk.
    frame = whole[offsets[-1] :]
    inode.durable[end : end + len(frame) // 2] = frame[: len(frame) // 2]
    size = len(inode.durable)
    io.crash()
    with kv.open(DIRECTORY, io=io) as store:
        [tail] = store.recovery.torn_tails
        assert tail.offset == end
        assert tail.bytes_dropped == size - end
        assert tail.records_dropped == 1
        assert not store.recovery.corruptions
        assert store.get("k9") == b"v9"
        store.set("after", "tear")
    assert bytes(inode.data[:end]) == whole
    with kv.open(DIRECTORY, io=io) as store:
        assert store.recovery.clean
        assert store.get("after") == b"tear"


def test_preallocated_zeros_are_free_space_not_damage() -> None:
    io = SimIo(seed=2)
    _ten_single_record_frames(io)
    inode = _inode(io, "00000001.seg")
    _offsets, end = _frame_offsets(inode.durable)
    assert len(inode.durable) > end and not any(inode.durable[end:]), "the writer preallocates zeros"
    inode.durable += bytes(4096)  # an extension whose size persisted before its data
    size = len(inode.durable)
    io.crash()
    with kv.open(DIRECTORY, io=io) as store:
        assert store.recovery.clean
        assert len(store) == 10
        store.set("next", "fills the free space")
    assert len(inode.data) == size, "free space is reused, not cut"
    with kv.open(DIRECTORY, io=io) as store:
        assert store.recovery.clean and store.get("next") == b"fills the free space"


def test_flipped_byte_mid_log_is_corruption_with_the_lost_count() -> None:
    io = SimIo(seed=3)
    _ten_single_record_frames(io)
    inode = _inode(io, "00000001.seg")
    offsets, _end = _frame_offsets(inode.durable)
    inode.durable[offsets[3] + 40] ^= 0x10  # inside the fourth frame
    io.crash()
    before = bytes(inode.durable)
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    report = raised.value.report
    assert report is not None
    [corruption] = report.corruptions
    assert (corruption.lsn_first_lost, corruption.lsn_last_lost, corruption.records_lost) == (4, 10, 7)
    assert corruption.offset == offsets[3]
    assert bytes(inode.durable) == before, "raising must change nothing on disk"
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as store:
        assert store.recovery.repaired
        assert store.recovery.records_lost == 7
        assert [store.get(f"k{index}") for index in range(10)] == [b"v0", b"v1", b"v2"] + [None] * 7
        assert store.recovery.quarantined == ["quarantine/00000001.seg.0"]
        store.set("k5", "new")
    io.crash()
    with kv.open(DIRECTORY, io=io) as store:
        assert store.recovery.clean
        assert store.get("k5") == b"new"
        assert store.get("k4") is None
    quarantined = io.disk.lookup(f"{DIRECTORY}/quarantine/00000001.seg.0")
    assert quarantined is not None and bytes(quarantined.durable) == before[offsets[3] :]


def test_missing_middle_of_a_sealed_segment_is_an_lsn_gap() -> None:
    io = SimIo(seed=4)
    with kv.open(DIRECTORY, io=io, segment_size_target_bytes=300) as store:
        for index in range(30):
            store.set(f"k{index}", f"v{index}" * 10)
        segments = store.stats().segments
    assert segments >= 4
    inode = _inode(io, "00000002.seg")
    del inode.durable[len(inode.durable) // 2 :]  # a lost write cut the sealed segment short
    io.crash()
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    report = raised.value.report
    assert report is not None and report.records_lost > 0
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as store:
        present = [index for index in range(30) if store.get(f"k{index}") is not None]
        assert present == list(range(len(present))), "recovery must keep a prefix"
        assert len(present) + store.recovery.records_lost == 30
        for index in present:
            assert store.get(f"k{index}") == f"v{index}".encode() * 10


def test_bit_flip_at_rest_is_caught_by_get_and_verify() -> None:
    io = SimIo(seed=5)
    with kv.open(DIRECTORY, io=io) as store:
        store.set("a", "alpha")
        store.set("b", "beta")
        store._cache.clear()
        inode = _inode(io, "00000001.seg")
        _offsets, end = _frame_offsets(inode.data)
        inode.data[end - 2] ^= 0x01  # in b's value, after recovery trusted it
        with pytest.raises(CorruptionDetected):
            store.get("b")
        assert store.get("a") == b"alpha"
        report = store.verify()
        assert not report.ok and len(report.problems) == 2  # the frame and the record


def test_damaged_compacted_file_never_returns_a_wrong_value() -> None:
    io = SimIo(seed=6)
    with kv.open(DIRECTORY, io=io) as store:
        store.set_many({f"k{index}": f"v{index}" for index in range(50)})
        store.compact()
    inode = _inode(io, "00000001.compacted")
    inode.durable[100] ^= 0xFF
    io.crash()
    with kv.open(DIRECTORY, io=io) as store:  # the hint is trusted; reads check records
        values = []
        for index in range(50):
            try:
                values.append(store.get(f"k{index}"))
            except CorruptionDetected:
                values.append(None)
        assert all(value in (None, f"v{index}".encode()) for index, value in enumerate(values))
        assert None in values
        assert not store.verify().ok
    io.unlink(f"{DIRECTORY}/00000001.hint").result()
    io.sync_dir(DIRECTORY).result()
    with pytest.raises(CorruptionDetected):
        kv.open(DIRECTORY, io=io)


class FailingSyncIo(SimIo):
    """Fails the next `failures` syncs with EIO, as fsyncgate does: nothing flushed."""

    failures = 0

    def sync(self, file: File, data_only: bool = True) -> Future[None]:
        if self.failures:
            self.failures -= 1
            return Future.failed(IoError(errno.EIO, "Input/output error", file.path, "sync"))
        return super().sync(file, data_only)


def test_failed_fsync_makes_the_store_read_only_and_reopen_recovers_what_was_durable() -> None:
    io = FailingSyncIo(seed=8)
    store = kv.open(DIRECTORY, io=io)
    store.set("durable", "yes")
    io.failures = 1
    with pytest.raises(IoError) as failure:
        store.set("failed", "no")
    assert failure.value.errno == errno.EIO
    assert store.state.value == "read-only"
    with pytest.raises(StoreReadOnly):
        store.set("later", "refused")
    with pytest.raises(StoreReadOnly):
        store.flush()
    assert store.get("durable") == b"yes"
    assert store.get("failed") is None, "an unacknowledged write must not become visible"
    store.close()
    io.crash()
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.get("durable") == b"yes"
        assert reopened.get("failed") is None
        reopened.set("after", "recovery")
        assert reopened.get("after") == b"recovery"


def _segmented_store(io: SimIo) -> int:
    with kv.open(DIRECTORY, io=io, segment_size_target_bytes=300) as store:
        for index in range(30):
            store.set(f"k{index}", f"v{index}" * 10)
        return store.stats().segments


def test_a_whole_missing_segment_is_corruption() -> None:
    io = SimIo(seed=10)
    assert _segmented_store(io) >= 4
    io.unlink(f"{DIRECTORY}/00000002.seg").result()
    io.sync_dir(DIRECTORY).result()
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None
    [corruption] = raised.value.report.corruptions
    assert "missing" in corruption.detail
    assert corruption.records_lost == 30 - len(_frame_offsets(_inode(io, "00000001.seg").durable)[0])


def test_garbage_after_a_sealed_segment_that_the_next_continues_is_a_torn_tail() -> None:
    io = SimIo(seed=11)
    _segmented_store(io)
    inode = _inode(io, "00000001.seg")
    length = len(inode.durable)
    inode.durable += b"\xde\xad" * 10
    io.crash()
    with kv.open(DIRECTORY, io=io) as store:
        [tail] = store.recovery.torn_tails
        assert (tail.segment_id, tail.offset, tail.bytes_dropped) == (1, length, 20)
        assert len(store) == 30
    assert len(inode.durable) == length


def test_damaged_last_frame_of_a_sealed_segment_before_an_empty_one_is_corruption() -> None:
    io = SimIo(seed=12)
    with kv.open(DIRECTORY, io=io) as store:
        store.set("a", "1")
        store.set("b", "2")
        store.compact()  # seals segment 1 (compacted away), starts an empty segment 2
    with kv.open(DIRECTORY, io=io, segment_size_target_bytes=60) as store:
        store.set("c", "3")  # segment 2 now holds one frame and is past the target
        store.set("d", "4")  # rolls: segment 3
    with kv.open(DIRECTORY, io=io) as store:
        names = io.listdir(DIRECTORY).result()
        assert "00000003.seg" in names
    inode = _inode(io, "00000003.seg")
    inode.durable[-3] ^= 0xFF  # the only frame of the newest segment: a torn tail
    tail = _inode(io, "00000002.seg")
    tail.durable[-3] ^= 0xFF  # the last frame of a sealed segment: acknowledged data
    io.crash()
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None and raised.value.report.records_lost >= 1


def test_repair_rewrites_a_damaged_compacted_file_and_keeps_a_copy() -> None:
    io = SimIo(seed=13)
    with kv.open(DIRECTORY, io=io) as store:
        store.set_many({f"k{index}": f"v{index}" * 100 for index in range(200)})  # several compacted frames
        store.compact()
        store.set("after", "compaction")
    inode = _inode(io, "00000001.compacted")
    damaged = bytes(inode.durable)
    inode.durable[len(inode.durable) // 2] ^= 0xFF
    io.unlink(f"{DIRECTORY}/00000001.hint").result()  # without a hint the damage is seen at open
    io.sync_dir(DIRECTORY).result()
    io.crash()
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None and raised.value.report.records_lost > 0
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as store:
        lost = store.recovery.records_lost
        values = [store.get(f"k{index}") for index in range(200)]
        assert values.count(None) == lost
        assert all(value in (None, f"v{index}".encode() * 100) for index, value in enumerate(values))
        assert store.get("after") == b"compaction"
        [copy] = store.recovery.quarantined
    assert copy.startswith("quarantine/00000001.compacted")
    kept = io.disk.lookup(f"{DIRECTORY}/{copy}")
    assert kept is not None and len(kept.durable) == len(damaged)
    with kv.open(DIRECTORY, io=io) as store:
        assert store.recovery.clean and store.verify().ok
        assert sum(store.get(f"k{index}") is None for index in range(200)) == lost


# What a crash keeps of the unsynced writes and directory changes: a crash inside an
# open may keep a journal's removal that the open had not yet synced.
SURVIVALS = {
    "nothing": CrashSurvival(),
    "prefix": CrashSurvival(prefix_probability=1.0),
    "subset": CrashSurvival(subset_probability=1.0),
}


@pytest.mark.parametrize("survival", sorted(SURVIVALS))
def test_a_repair_that_crashes_at_any_point_never_makes_its_loss_silent(survival: str) -> None:
    """Found by the comprehensive scenario: the quarantine directory was created but not
    made durable before the repair journal went into it, so a crash kept the cut log and
    lost the journal. Crash the repairing open at every I/O and check that each later
    open either has the data or reports the loss."""
    for crash_at in range(1, 80):
        io = SimIo(seed=14, faults=FaultPlan(crash_survival=SURVIVALS[survival]))
        _ten_single_record_frames(io)
        inode = _inode(io, "00000001.seg")
        offsets, _end = _frame_offsets(inode.durable)
        inode.durable[offsets[5] + 40] ^= 0x10  # damage mid-log: frames 6..10 are lost
        io.crash()
        io.crash_at_operation = io.operations_completed + crash_at
        reported = False
        try:
            repairing = kv.open(DIRECTORY, io=io, on_corruption="repair")
            reported = repairing.recovery.records_lost > 0  # the open returned: its caller was told
            repairing.close()
        except SimulatedCrash:
            pass
        io.crash_at_operation = None
        with kv.open(DIRECTORY, io=io, on_corruption="repair") as store:
            intact = all(store.get(f"k{index}") == f"v{index}".encode() for index in range(10))
            reported = reported or store.recovery.records_lost > 0
            assert intact or reported, f"silent loss when the repair crashed at I/O {crash_at}"


@pytest.mark.parametrize("survival", sorted(SURVIVALS))
def test_a_recovery_that_cuts_a_torn_tail_and_crashes_still_reports_it(survival: str) -> None:
    """Found by completion_corruption: a crash damaged the last frame of the log (an
    acknowledged write); recovery cut it as a torn tail, made the cut durable, then
    crashed before returning its report, and the next open found nothing wrong: a
    silent loss. Cuts are journaled now, and reported until an open succeeds. Crash the
    recovering open at every I/O: each later open has the value or reports the loss.
    Found again by the state machine: a crash inside the open that had just removed the
    journal could keep the removal, though the open never returned its report."""
    for crash_at in range(1, 200):
        io = SimIo(seed=26, faults=FaultPlan(crash_survival=SURVIVALS[survival]))
        store = kv.open(DIRECTORY, io=io)
        for index in range(5):
            store.set(f"k{index}", f"v{index}" * 30)
        io.crash()  # unclean: the damaged last frame may be a torn write
        segment = _inode(io, "00000001.seg")
        _offsets, end = _frame_offsets(segment.durable)
        segment.durable[end - 10] ^= 0x04  # the last frame, as a tail corruption leaves it
        segment.data[:] = segment.durable
        io.crash_at_operation = io.operations_completed + crash_at
        crashed = False
        reported = False
        try:
            with kv.open(DIRECTORY, io=io) as first:
                reported = bool(first.recovery.torn_tails)
        except SimulatedCrash:
            crashed = True
        io.crash_at_operation = None
        with kv.open(DIRECTORY, io=io) as store:
            intact = store.get("k4") == b"v4" * 30
            reported = reported or not store.recovery.clean
            assert intact or reported, f"silent loss when recovery crashed at I/O {crash_at}"
            assert all(store.get(f"k{index}") == f"v{index}".encode() * 30 for index in range(4))
        quarantine = io.disk.directories.get(f"{DIRECTORY}/quarantine")
        assert quarantine is None or not any(name.startswith("torn-") for name in quarantine.entries)
        if not crashed:
            break  # the open finished before the planned crash: every point was tried
    else:
        raise AssertionError("recovery never finished within the crash points tried")


def test_a_crash_during_recovery_never_tears_durable_frames() -> None:
    """Found by completion_corruption: after an unclean close, recovery rewrote the
    newest segment in place to make what it replays durable; a power loss during that
    rewrite left garbage sectors over three acknowledged, durable frames, and the next
    open cut them as a torn tail. The rewrite goes to a new file renamed into place now.
    Crash the recovering open at every I/O with torn, garbage-filled writes."""
    tearing = FaultPlan(
        crash_survival=CrashSurvival(prefix_probability=1.0),
        torn_write=TornWrite(probability=1.0, sector_bytes=512, garbage_probability=1.0),
    )
    values = {f"k{index}": f"v{index}".encode() * 40 for index in range(12)}
    for crash_at in range(1, 200):
        io = SimIo(seed=27)
        store = kv.open(DIRECTORY, io=io)
        for key, value in values.items():
            store.set(key, value)
        io.crash()  # unclean: the next open rewrites what it replays
        io.faults.plan = tearing
        io.crash_at_operation = io.operations_completed + crash_at
        crashed = False
        try:
            kv.open(DIRECTORY, io=io).close()
        except SimulatedCrash:
            crashed = True
        io.crash_at_operation = None
        io.faults_off()
        with kv.open(DIRECTORY, io=io) as reopened:
            assert reopened.recovery.clean, f"crash at I/O {crash_at}: {reopened.recovery.summary()}"
            assert {key: reopened.get(key) for key in values} == values
        if not crashed:
            break
    else:
        raise AssertionError("recovery never finished within the crash points tried")


def test_what_a_reopen_adopts_after_fsyncgate_survives_a_crash_before_any_commit() -> None:
    """Recovery makes the bytes it replays durable by writing them to a new file renamed
    over the segment; reads return them at once, so the rename must be durable before
    the open returns, not at the next commit (which may fail, or never come)."""
    io = SimIo(seed=28)
    store = kv.open(DIRECTORY, io=io)
    store.set("before", "1")
    io.faults.plan = FaultPlan(fsync_gate=FsyncGate(probability=1.0))
    with pytest.raises(IoError):
        store.set("dropped", "2")  # written, its sync failed: only the page cache has it
    io.faults_off()
    store.close()
    reopened = kv.open(DIRECTORY, io=io)
    assert reopened.get("dropped") == b"2"  # adopted (it was in flight): now it must last
    assert reopened.recovery.segment_bytes_rewritten > 0
    io.crash()  # before any commit of the reopened store
    with kv.open(DIRECTORY, io=io) as recovered:
        assert recovered.get("before") == b"1" and recovered.get("dropped") == b"2"


def test_damage_to_a_frame_an_open_made_durable_is_corruption_not_a_torn_tail() -> None:
    """Found by completion_corruption: every crash may damage the log's last frame. The
    first time it is a torn tail (the write may have been in flight), but once an open
    has made the segment durable, damage to its new last frame destroys acknowledged
    data; it was cut as a second torn tail ("unacknowledged records dropped"). Opening
    now records how far the newest segment is durable, as a clean close does."""
    io = SimIo(seed=29)
    store = kv.open(DIRECTORY, io=io)
    for index in range(5):
        store.set(f"k{index}", f"v{index}" * 30)
    for crash_number in range(2):
        io.crash()  # no close, clean or not
        segment = _inode(io, "00000001.seg")
        _offsets, end = _frame_offsets(segment.durable)
        segment.durable[end - 10] ^= 0x04  # the last frame, as a tail corruption leaves it
        segment.data[:] = segment.durable
        if crash_number == 0:
            reopened = kv.open(DIRECTORY, io=io)
            assert [tail.records_dropped for tail in reopened.recovery.torn_tails] == [1]
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None
    # The first cut is reported again (nothing was written before the crash, so its
    # journal was never settled); the new damage is corruption, not a second torn tail.
    assert [tail.again for tail in raised.value.report.torn_tails] == [True]
    assert raised.value.report.records_lost == 1
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as repaired:
        assert [repaired.get(f"k{index}") for index in range(5)] == [b"v0" * 30, b"v1" * 30, b"v2" * 30, None, None]


def test_a_segment_an_open_starts_is_durable_before_the_open_returns() -> None:
    """Found by completion_corruption: an open sealed the full newest segment and started
    the next, whose directory entry became durable only with the first commit; a crash
    before it took the new segment, the sealed one was newest again, and damage to its
    last (acknowledged) frame passed for a torn tail."""
    io = SimIo(seed=30)
    store = kv.open(DIRECTORY, io=io, segment_size_target_bytes=1000)
    store.set("big", "x" * 1200)  # one frame past the target: the next open seals the segment
    io.crash()
    kv.open(DIRECTORY, io=io, segment_size_target_bytes=1000)  # seals segment 1, starts segment 2
    io.crash()  # before any commit
    assert io.disk.lookup(f"{DIRECTORY}/00000002.seg") is not None
    segment = _inode(io, "00000001.seg")
    _offsets, end = _frame_offsets(segment.durable)
    segment.durable[end - 10] ^= 0x04
    segment.data[:] = segment.durable
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io, segment_size_target_bytes=1000)
    assert raised.value.report is not None and raised.value.report.records_lost == 1


def test_a_repair_that_moves_a_whole_sealed_segment_leaves_no_gap_in_the_ids() -> None:
    """Found by the state machine (a forced fsync failure, then a bit flip): the last
    sealed segment damaged from offset 0 moved to quarantine, the empty newest segment
    after it stayed, and the next clean open read the gap in the ids as damage and
    dropped a record written after the repair."""
    io = SimIo(seed=12)
    with kv.open(DIRECTORY, io=io, segment_size_target_bytes=64) as store:
        store.set("a", "1" * 40)  # segment 1
        store.set("b", "2" * 40)  # rolls: segment 2
    kv.open(DIRECTORY, io=io, segment_size_target_bytes=64).close()  # segment 2 is full: opens an empty 3
    assert io.disk.lookup(f"{DIRECTORY}/00000003.seg") is not None
    segment = _inode(io, "00000002.seg")
    segment.durable[0] ^= 0x01  # its only frame's magic, at rest
    segment.data[0] ^= 0x01
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as repaired:
        [corruption] = repaired.recovery.corruptions
        assert corruption.records_lost == 1
        assert repaired.get("b") is None
        repaired.set("after", "repair")
    with kv.open(DIRECTORY, io=io) as reopened:  # on_corruption="raise": nothing may be damaged now
        assert reopened.recovery.clean
        assert (reopened.get("a"), reopened.get("after")) == (b"1" * 40, b"repair")


def test_a_repair_journal_records_only_its_own_findings() -> None:
    """Found by the comprehensive sweep (seed 27 ran out of memory): journals stay
    pending until the store is written to, each repair wrote the whole report, journals
    re-reported included, into its own journal, and the texts doubled with each repair."""
    io = SimIo(seed=15)
    _ten_single_record_frames(io)
    for damaged_frame in (8, 5, 2):  # three repairs, no write in between
        inode = _inode(io, "00000001.seg")
        offsets, _end = _frame_offsets(inode.durable)
        inode.durable[offsets[damaged_frame] + 40] ^= 0x10
        inode.data[:] = inode.durable
        store = kv.open(DIRECTORY, io=io, on_corruption="repair")
        assert store.recovery.records_lost >= 1
        io.crash()  # before any write or close: the journals stay pending
    quarantine = io.disk.directories[f"{DIRECTORY}/quarantine"]
    texts = [
        bytes(io.disk.inodes[number].durable).decode()
        for name, number in quarantine.entries.items()
        if name.startswith("repair-")
    ]
    assert len(texts) == 3
    assert not any("an earlier repair" in text for text in texts), texts


@pytest.mark.parametrize("seed", range(12))
def test_none_mode_never_leaves_a_hole_between_unsynced_frames(seed: int) -> None:
    """Found by lists: in `none` mode full frames used to be written without a sync, so
    a 64 MiB segment held many unsynced frames; a power loss that kept a later one and
    lost an earlier one left a hole that the next open judged mid-log corruption, and
    the store refused to open (16 of 20 seeds here). Now a full frame is synced: a
    crash loses a suffix of the unsynced writes, and the store opens."""
    io = SimIo(seed=seed, faults=FaultPlan(crash_survival=CrashSurvival(subset_probability=1.0)))
    store = kv.open("/db", io=io, durability="none")
    values = {b"k%d" % index: bytes([65 + index % 26]) * 65_536 for index in range(80)}
    for key, value in values.items():
        store.set(key, value)
    io.crash()
    with kv.open("/db", io=io, durability="none") as reopened:
        state = {key: reopened.get(key) for key in reopened.keys()}
        assert reopened.recovery.records_lost == 0
    kept = list(values)[: len(state)]
    assert state == {key: values[key] for key in kept}  # a prefix of the writes, each whole
