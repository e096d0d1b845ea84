"""Every fault of the simulated disk: it fires, and the store answers it correctly.

Each test switches one fault on (probability 1 where the point is the effect, so the
test is about the effect and not about luck) and checks both the disk-level outcome
and what the store does: a typed error, a reported loss, never a wrong value.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import subprocess
import sys
from dataclasses import replace

import pytest

import kv
from io_backends.sim import SimIo
from io_backends.sim.disk import Inode, SimDisk
from io_backends.sim.faults import (
    BitFlip,
    CrashSurvival,
    FaultPlan,
    FsyncGate,
    Latency,
    LatentSectorError,
    LostWrite,
    MisdirectedWrite,
    OperationErrors,
    PermissionErrors,
    ReadCorruption,
    ShortRead,
    SizeBeforeData,
    TailCorruption,
    TornWrite,
)
from kv.errors import CorruptionDetected, IoError, StoreReadOnly
from kv.io import File, Future, read_exact

DIRECTORY = "/db"


def _inode(io: SimIo, name: str) -> Inode:
    inode = io.disk.lookup(f"{DIRECTORY}/{name}")
    assert inode is not None
    return inode


def _fired(io: SimIo, name: str) -> int:
    count = io.faults.counts.get(name)
    return count.fired if count is not None else 0


def _file(io: SimIo, data: bytes = b"", synced: bool = True) -> Inode:
    io.mkdir(DIRECTORY).result()
    file = io.open(f"{DIRECTORY}/f", "w").result()
    if data:
        io.write(file, 0, data).result()
    if synced:
        io.sync(file).result()
    io.sync_dir(DIRECTORY).result()
    io.sync_dir("/").result()
    return _inode(io, "f")


# -- crash survival, torn writes, size before data ----------------------------------------


def test_prefix_survival_keeps_a_prefix_of_the_unsynced_writes() -> None:
    outcomes = set()
    for seed in range(20):
        io = SimIo(seed=seed, faults=FaultPlan(crash_survival=CrashSurvival(prefix_probability=1.0)))
        _file(io)
        file = io.open(f"{DIRECTORY}/f", "w").result()
        for index in range(4):
            io.write(file, index, bytes([65 + index])).result()
        io.crash()
        data = bytes(_inode(io, "f").durable)
        assert data == b"ABCD"[: len(data)], data
        outcomes.add(data)
        assert _fired(io, "crash_survival.prefix") == 1
    assert len(outcomes) > 2, "different seeds keep different prefixes"


def test_subset_survival_keeps_any_subset() -> None:
    outcomes = set()
    for seed in range(30):
        io = SimIo(seed=seed, faults=FaultPlan(crash_survival=CrashSurvival(subset_probability=1.0)))
        _file(io, b"....")
        file = io.open(f"{DIRECTORY}/f", "w").result()
        for index in range(4):
            io.write(file, index, bytes([65 + index])).result()
        io.crash()
        data = bytes(_inode(io, "f").durable)
        assert all(byte in (ord("."), 65 + index) for index, byte in enumerate(data))
        outcomes.add(data)
    assert b".B.D" in outcomes or len(outcomes) > 4, "non-prefix subsets occur"


@pytest.mark.parametrize("garbage", [False, True])
@pytest.mark.parametrize("sector_bytes", [512, 4096])
def test_torn_write_mixes_sectors(sector_bytes: int, garbage: bool) -> None:
    plan = FaultPlan(
        crash_survival=CrashSurvival(prefix_probability=1.0),
        torn_write=TornWrite(probability=1.0, sector_bytes=sector_bytes, garbage_probability=1.0 if garbage else 0.0),
    )
    mixed = 0
    for seed in range(10):
        io = SimIo(seed=seed, faults=plan)
        _file(io, b"o" * sector_bytes * 8)
        file = io.open(f"{DIRECTORY}/f", "w").result()
        io.write(file, 0, b"n" * sector_bytes * 8).result()
        io.crash()
        data = bytes(_inode(io, "f").durable)
        sectors = [data[start : start + sector_bytes] for start in range(0, len(data), sector_bytes)]
        kinds = {sector if sector in (b"o" * sector_bytes, b"n" * sector_bytes) else b"garbage" for sector in sectors}
        assert kinds <= ({b"o" * sector_bytes, b"n" * sector_bytes} | ({b"garbage"} if garbage else set()))
        mixed += len(kinds) > 1
    assert mixed >= 2, "some surviving writes were torn"


def test_torn_frame_at_the_tail_is_reported_and_acknowledged_data_survives() -> None:
    plan = FaultPlan(
        crash_survival=CrashSurvival(prefix_probability=1.0), torn_write=TornWrite(probability=1.0, sector_bytes=512)
    )
    io = SimIo(seed=4, faults=plan)
    store = kv.open(DIRECTORY, io=io, durability="none")
    store.set("acknowledged", "durable")
    store.flush()
    store.set("big", b"x" * 8192)
    store.flush()  # writes and syncs; then an unsynced, torn write follows
    store.set_many({f"k{index}": b"y" * 1000 for index in range(8)})
    store._commit(sync=False)
    io.crash()
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.get("acknowledged") == b"durable"
        assert reopened.get("big") == b"x" * 8192
        assert reopened.recovery.torn_tails or not any(reopened.get(f"k{i}") for i in range(8))
        values = {reopened.get(f"k{index}") for index in range(8)}
        assert values in ({None}, {b"y" * 1000}), "a frame is all or nothing"


def test_size_before_data_leaves_zeros_that_recovery_treats_as_free_space() -> None:
    plan = FaultPlan(crash_survival=CrashSurvival(prefix_probability=1.0), size_before_data=SizeBeforeData(1.0))
    io = SimIo(seed=1, faults=plan)
    inode = _file(io, b"base")
    file = io.open(f"{DIRECTORY}/f", "w").result()
    io.write(file, 4, b"more").result()
    for seed in range(5):
        io.crash()
        if len(inode.durable) > 4:
            break
        file = io.open(f"{DIRECTORY}/f", "w").result()
        io.write(file, 4, b"more").result()
        _ = seed
    assert bytes(inode.durable) in (b"base", b"base\0\0\0\0")
    io = SimIo(seed=2, faults=plan)
    store = kv.open(DIRECTORY, io=io, durability="none")
    store.set("a", "1")
    store.flush()
    store.set("b", "2" * 3000)
    store._commit(sync=False)
    io.crash()
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.get("a") == b"1"
        assert reopened.get("b") in (None, b"2" * 3000)


# -- bit flips and read corruption ---------------------------------------------------------


def test_bit_flip_on_write_is_caught_never_returned() -> None:
    io = SimIo(seed=3)
    store = kv.open(DIRECTORY, io=io)
    store.set("first", "1" * 200)
    io.faults.plan = FaultPlan(bit_flip=BitFlip(on_write_probability=1.0, bits_max=4))
    store.set("k", "value" * 40)
    assert _fired(io, "bit_flip.on_write") >= 1
    io.faults_off()
    store.set("last", "3" * 200)
    store._cache.clear()
    with contextlib.suppress(CorruptionDetected):  # the flips may have hit the frame header only
        assert store.get("k") == b"value" * 40
    store.close()
    io.crash()
    with pytest.raises(CorruptionDetected) as raised:  # a damaged frame with a valid one after it
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None and raised.value.report.records_lost == 2


def test_bit_flip_at_rest_is_reported_at_open() -> None:
    io = SimIo(seed=5)
    with kv.open(DIRECTORY, io=io) as store:
        for index in range(20):
            store.set(f"k{index}", f"v{index}" * 20)
    io.faults = type(io.faults)(FaultPlan(bit_flip=BitFlip(at_rest_probability=1.0)), io.random)
    segment = _inode(io, "00000001.seg")
    segment_before = bytes(segment.durable)
    io.crash()
    assert _fired(io, "bit_flip.at_rest") == 1
    if bytes(segment.durable) == segment_before:
        pytest.skip("this seed flipped a bit in another file")
    try:
        store = kv.open(DIRECTORY, io=io, on_corruption="raise")
    except CorruptionDetected as error:
        assert error.report is not None and error.report.records_lost > 0
        return
    with store:  # the flip landed in free space or the last frame: reported as torn, or harmless
        for index in range(20):
            assert store.get(f"k{index}") in (None, f"v{index}".encode() * 20)


def test_transient_read_corruption_fails_the_get_and_a_retry_is_clean() -> None:
    io = SimIo(seed=6)
    store = kv.open(DIRECTORY, io=io)
    store.set("k", "value")
    store._cache.clear()
    io.faults.plan = FaultPlan(read_corruption=ReadCorruption(probability=1.0))
    with pytest.raises(CorruptionDetected):
        store.get("k")
    io.faults_off()
    assert store.get("k") == b"value"


def test_sticky_read_corruption_stays_until_rewritten() -> None:
    io = SimIo(seed=7)
    store = kv.open(DIRECTORY, io=io)
    store.set("k", "value")
    store._cache.clear()
    io.faults.plan = FaultPlan(read_corruption=ReadCorruption(probability=1.0, sticky_probability=1.0))
    with pytest.raises(CorruptionDetected):
        store.get("k")
    io.faults_off()
    with pytest.raises(CorruptionDetected):
        store.get("k")
    store.set("k", "rewritten")
    assert store.get("k") == b"rewritten"


# -- sector errors, misdirected and lost writes, short reads -------------------------------


def test_latent_sector_error_makes_reads_fail_typed_until_rewritten() -> None:
    io = SimIo(seed=8, faults=FaultPlan(latent_sector_error=LatentSectorError(probability=1.0)))
    inode = _file(io, b"z" * 2048)
    file = io.open(f"{DIRECTORY}/f", "r").result()
    with pytest.raises(IoError) as failure:
        read_exact(io, file, 0, 2048)
    assert failure.value.errno == errno.EIO
    [bad] = inode.bad_sectors
    io.faults_off()
    writable = io.open(f"{DIRECTORY}/f", "w").result()
    io.write(writable, bad * 512, b"r" * 512).result()
    assert read_exact(io, file, 0, 2048) == b"z" * (bad * 512) + b"r" * 512 + b"z" * (2048 - bad * 512 - 512)


def test_latent_sector_error_under_the_store_is_a_typed_error() -> None:
    io = SimIo(seed=9)
    store = kv.open(DIRECTORY, io=io)
    io.faults.plan = FaultPlan(latent_sector_error=LatentSectorError(probability=1.0))
    for index in range(10):
        store.set(f"k{index}", f"{index}" * 2000)
    store._cache.clear()
    failures = 0
    for index in range(10):
        try:
            assert store.get(f"k{index}") == f"{index}".encode() * 2000
        except IoError as error:
            assert error.errno == errno.EIO
            failures += 1
    assert failures > 0


def test_misdirected_write_lands_elsewhere_and_recovery_notices() -> None:
    io = SimIo(seed=10)
    store = kv.open(DIRECTORY, io=io)
    for index in range(5):
        store.set(f"k{index}", f"v{index}" * 100)
    io.faults.plan = FaultPlan(misdirected_write=MisdirectedWrite(probability=1.0))
    store.set("misdirected", "x" * 100)
    assert _fired(io, "misdirected_write") >= 1
    io.faults_off()
    store.set("after", "y" * 100)
    store.close()
    io.crash()
    try:
        reopened = kv.open(DIRECTORY, io=io)
    except CorruptionDetected as error:
        assert error.report is not None and error.report.corruptions
        return
    with reopened:
        for index in range(5):  # whatever it found, it never returns a wrong value
            with contextlib.suppress(CorruptionDetected):
                assert reopened.get(f"k{index}") in (None, f"v{index}".encode() * 100)


def test_lost_write_is_acknowledged_visible_and_gone_after_a_crash() -> None:
    io = SimIo(seed=11)
    inode = _file(io, b"old!")
    io.faults.plan = FaultPlan(lost_write=LostWrite(probability=1.0))
    file = io.open(f"{DIRECTORY}/f", "w").result()
    io.write(file, 0, b"new!").result()
    io.sync(file).result()
    assert io.read(file, 0, 4).result() == b"new!"
    io.crash()
    assert bytes(inode.durable) == b"old!"


def test_lost_write_mid_log_is_reported_as_corruption() -> None:
    io = SimIo(seed=12)
    store = kv.open(DIRECTORY, io=io)
    store.set("first", "1" * 100)
    io.faults.plan = FaultPlan(lost_write=LostWrite(probability=1.0))
    store.set("lost", "2" * 100)
    io.faults_off()
    store.set("third", "3" * 100)
    store.close()
    io.crash()
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None and raised.value.report.records_lost == 2


def test_short_reads_are_completed_by_the_store() -> None:
    io = SimIo(seed=13)
    store = kv.open(DIRECTORY, io=io)
    store.set("k", bytes(range(256)) * 40)
    store._cache.clear()
    io.faults.plan = FaultPlan(short_read=ShortRead(probability=0.9))
    assert store.get("k") == bytes(range(256)) * 40
    assert _fired(io, "short_read") >= 1


# -- operation errors, permissions, fsyncgate, disk full, latency ---------------------------


@pytest.mark.parametrize(
    "plan",
    [
        FaultPlan(operation_errors=OperationErrors(write_probability=1.0)),
        FaultPlan(operation_errors=OperationErrors(sync_probability=1.0)),
        FaultPlan(fsync_gate=FsyncGate(probability=1.0)),  # and a later sync is never trusted
    ],
    ids=["write-eio", "sync-eio", "fsyncgate"],
)
def test_a_failed_write_or_sync_is_typed_read_only_and_loses_nothing_acknowledged(plan: FaultPlan) -> None:
    io = SimIo(seed=14)
    store = kv.open(DIRECTORY, io=io)
    store.set("kept", "1")
    io.faults.plan = plan
    with pytest.raises(IoError) as failure:
        store.set("failed", "2")
    assert failure.value.errno == errno.EIO
    io.faults_off()
    with pytest.raises(StoreReadOnly):
        store.set("later", "3")
    with pytest.raises(StoreReadOnly):
        store.flush()
    store.close()
    io.crash()
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.get("kept") == b"1"
        assert reopened.get("failed") is None


def test_persistent_eio_on_open_keeps_failing_until_the_fault_clears() -> None:
    io = SimIo(seed=15)
    kv.open(DIRECTORY, io=io).close()
    io.faults.plan = FaultPlan(operation_errors=OperationErrors(open_probability=1.0, persistent_probability=1.0))
    for _ in range(2):
        with pytest.raises(IoError):
            kv.open(DIRECTORY, io=io)
    io.faults.plan = FaultPlan()
    with pytest.raises(IoError):
        kv.open(DIRECTORY, io=io)  # persistent: still failing with the fault plan off
    io.faults_off()
    kv.open(DIRECTORY, io=io).close()


@pytest.mark.parametrize("operation", ["rename", "unlink"])
def test_eio_during_compaction_loses_nothing(operation: str) -> None:
    io = SimIo(seed=16)
    store = kv.open(DIRECTORY, io=io)
    store.set_many({f"k{index}": f"v{index}" for index in range(50)})
    io.faults.plan = FaultPlan(operation_errors=OperationErrors(**{f"{operation}_probability": 1.0}))
    with pytest.raises(IoError):
        store.compact()
    io.faults_off()
    store.close()
    io.crash()
    with kv.open(DIRECTORY, io=io) as reopened:
        assert [reopened.get(f"k{index}") for index in range(50)] == [f"v{index}".encode() for index in range(50)]


def test_permission_errors_are_typed() -> None:
    io = SimIo(seed=17)
    kv.open(DIRECTORY, io=io).close()
    io.faults.plan = FaultPlan(permission_errors=PermissionErrors(open_probability=1.0))
    with pytest.raises(IoError) as denied:
        kv.open(DIRECTORY, io=io)
    assert denied.value.errno == errno.EACCES
    io.faults.plan = FaultPlan(permission_errors=PermissionErrors(write_probability=1.0))
    io.faults.plan = FaultPlan()
    store = kv.open(DIRECTORY, io=io)
    io.faults.plan = FaultPlan(permission_errors=PermissionErrors(write_probability=1.0))
    with pytest.raises(IoError) as read_only:
        store.set("k", "v")
    assert read_only.value.errno == errno.EROFS
    assert store.state.value == "read-only"


def test_fsyncgate_drops_dirty_pages_and_a_later_sync_does_not_bring_them_back() -> None:
    io = SimIo(seed=18, faults=FaultPlan(fsync_gate=FsyncGate(probability=1.0)))
    inode = _file(io, b"", synced=False)
    file = io.open(f"{DIRECTORY}/f", "w").result()
    io.write(file, 0, b"dropped").result()
    with pytest.raises(IoError):
        io.sync(file).result()
    io.faults_off()
    io.sync(file).result()  # "succeeds"
    assert io.read(file, 0, 7).result() == b"dropped"  # still in the page cache
    io.crash()
    assert bytes(inode.durable) == b""


def test_a_forced_fault_fires_on_its_next_opportunity_even_with_every_fault_off() -> None:
    io = SimIo(seed=18)  # a quiet plan: the fast paths draw nothing
    inode = _file(io, b"", synced=False)
    file = io.open(f"{DIRECTORY}/f", "w").result()
    io.sync(file).result()  # nothing dirty: no opportunity, the forced failure waits
    state = io.random.getstate()
    io.faults.force("fsync_gate")
    io.write(file, 0, b"dropped").result()
    with pytest.raises(IoError) as failed:
        io.sync(file).result()
    assert failed.value.errno == errno.EIO
    io.write(file, 0, b"kept").result()
    io.sync(file).result()  # fired once only
    assert bytes(inode.durable) == b"kept"  # the first write's dirty pages were dropped
    assert io.random.getstate() == state  # forcing draws nothing from the run's RNG
    assert io.faults.quiet and not io.faults.forced
    assert io.faults.report()["fsync_gate"].fired == 1


def test_disk_full_is_typed_and_the_store_recovers_once_space_is_freed() -> None:
    disk = SimDisk(capacity_bytes=64 * 1024)
    io = SimIo(seed=20, disk=disk)
    store = kv.open(DIRECTORY, io=io, segment_size_target_bytes=16 * 1024)
    written = 0
    with pytest.raises(IoError) as full:
        for index in range(1000):
            store.set(f"k{index}", "v" * 500)
            written = index + 1
    assert full.value.errno == errno.ENOSPC
    store.close()
    disk.capacity_bytes = None  # space freed
    with kv.open(DIRECTORY, io=io) as reopened:
        assert [reopened.get(f"k{index}") for index in range(written)] == [b"v" * 500] * written
        reopened.set("after", "space")
        assert reopened.get("after") == b"space"


def test_latency_jitter_reorders_completions() -> None:
    orders = set()
    for seed in range(5):
        io = SimIo(seed=seed, faults=FaultPlan(latency=Latency(jitter_us_max=1000)))
        futures = [io.listdir("/") for _ in range(5)]
        io.drain()
        orders.add(io.clock_us)
        assert all(future.done() for future in futures)
    assert len(orders) > 1


def test_fault_plan_lists_what_is_enabled_and_counts_achieved_rates() -> None:
    plan = FaultPlan(short_read=ShortRead(0.5), torn_write=replace(TornWrite(), sector_bytes=4096))
    assert plan.enabled() == ["short_read"]
    io = SimIo(seed=21, faults=plan)
    file = _file(io, b"x" * 100)
    handle = io.open(f"{DIRECTORY}/f", "r").result()
    for _ in range(1000):
        io.read(handle, 0, 100).result()
    count = io.faults.report()["short_read"]
    assert count.opportunities == 1000 and 0.4 < count.achieved_probability < 0.6
    assert file.number > 0


def test_reopen_after_fsyncgate_makes_what_it_replays_durable() -> None:
    """Found by the fsyncgate scenario: after a failed sync the page cache still shows the
    dropped frame; a reopen without a crash replayed it and later acknowledged writes
    were appended behind it, so a crash left a hole and lost them. Opening after an
    unclean close now writes the newest segment's bytes again and syncs them."""
    io = SimIo(seed=22)
    store = kv.open(DIRECTORY, io=io)
    store.set("before", "1")
    io.faults.plan = FaultPlan(fsync_gate=FsyncGate(probability=1.0))
    with pytest.raises(IoError):
        store.set("dropped", "2")
    io.faults_off()
    store.close()  # no crash: the dropped frame is still in the page cache
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.get("dropped") == b"2"  # in flight: adopting it is legal...
        assert reopened.recovery.segment_bytes_rewritten > 0  # ...only once it is durable
        reopened.set("after", "3")
    io.crash()
    with kv.open(DIRECTORY, io=io) as recovered:
        assert recovered.recovery.clean
        assert [recovered.get(key) for key in ("before", "dropped", "after")] == [b"1", b"2", b"3"]


def test_clean_close_skips_the_rewrite() -> None:
    io = SimIo(seed=23)
    with kv.open(DIRECTORY, io=io) as store:
        store.set("k", "v")
    with kv.open(DIRECTORY, io=io) as store:
        assert store.recovery.segment_bytes_rewritten == 0


class _FailSecondSegmentSync(SimIo):
    """Fails (fsyncgate-style) the first sync of segment 2, and only that one."""

    failed = False

    def sync(self, file: File, data_only: bool = True) -> Future[None]:
        if file.path.endswith("00000002.seg") and not self.failed:
            self.failed = True
            self.drain()  # the writes before this sync complete, then their pages are dropped
            file.handle.inode.drop_dirty()  # type: ignore[attr-defined]
            return Future.failed(IoError(errno.EIO, "Input/output error", file.path, "sync"))
        return super().sync(file, data_only)


def test_reopen_after_a_failed_first_commit_in_a_new_segment_makes_its_entry_durable() -> None:
    """Found by the swarm scenario: a segment created by a roll becomes durable in its
    directory with the roll's first commit; when that commit's sync failed, a reopen
    found the segment in the page cache's directory, kept writing to it, and a crash
    took the file and every acknowledged write in it."""
    io = _FailSecondSegmentSync(seed=24)
    store = kv.open(DIRECTORY, io=io, segment_size_target_bytes=1000)
    store.set("first", "1" * 600)
    with pytest.raises(IoError):
        store.set("rolls", "2" * 600)  # rolls to segment 2, whose first sync fails
    store.close()
    reopened = kv.open(DIRECTORY, io=io, segment_size_target_bytes=1000)
    reopened.set("acknowledged", "3")  # fits in segment 2: no roll, no new sync_dir
    io.crash()  # before any clean close (which would sync the directory)
    with kv.open(DIRECTORY, io=io) as recovered:
        assert recovered.get("acknowledged") == b"3"
        assert recovered.get("first") == b"1" * 600


def test_zeros_at_the_end_of_a_sealed_segment_are_damage_not_free_space() -> None:
    """Found by the swarm scenario: a misdirected last frame left zeros at the end of a
    segment that a compaction's roll then sealed; recovery took them for preallocated
    space and lost the frame silently. Only the newest segment has free space."""
    io = SimIo(seed=25)
    store = kv.open(DIRECTORY, io=io)
    store.set("first", "1" * 100)
    segment = _inode(io, "00000001.seg")
    start = store._log.write_offset  # type: ignore[union-attr]
    store.set("misdirected", "3" * 100)
    end = store._log.write_offset  # type: ignore[union-attr]
    for stored in (segment.data, segment.durable):  # the frame went elsewhere: zeros here
        stored[start:end] = bytes(end - start)
    store._log.roll()  # type: ignore[union-attr]  # seal segment 1; segment 2 starts empty
    store._log.commit(sync=True)  # type: ignore[union-attr]
    io.crash()
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None and raised.value.report.records_lost >= 1


# -- tail corruption: damage to what marks completion ----------------------------------------


def _tail_plan(probability: float = 1.0) -> FaultPlan:
    return FaultPlan(tail_corruption=TailCorruption(probability=probability, window_bytes=64))


def _damage_tail(io: SimIo, name: str) -> None:
    """One crash's tail corruption aimed at one file (the fault itself draws for every
    file; a test about one kind of file aims it)."""
    io.faults.plan = _tail_plan()
    io.faults.corrupt_tails([_inode(io, name)])
    io.faults_off()


def _five_values(io: SimIo, clean_close: bool) -> None:
    store = kv.open(DIRECTORY, io=io)
    for index in range(5):
        store.set(f"k{index}", f"v{index}" * 30)
    if clean_close:
        store.close()
    io.crash()


def test_tail_corruption_flips_one_bit_near_the_end_of_each_surviving_file() -> None:
    io = SimIo(seed=30, faults=_tail_plan())
    io.mkdir(DIRECTORY).result()
    contents = {
        "long": bytes(range(1, 256)) * 40,
        "short": b"marker",
        "preallocated": b"frame" * 50 + bytes(4096),  # the window ends at the last frame, not the zeros
        "zeros": bytes(100),  # no data: not an opportunity
    }
    for name, content in contents.items():
        file = io.open(f"{DIRECTORY}/{name}", "w").result()
        io.write(file, 0, content).result()
        io.sync(file).result()
    io.sync_dir(DIRECTORY).result()
    io.sync_dir("/").result()
    io.crash()
    for name, content in contents.items():
        inode = _inode(io, name)
        assert inode.data == inode.durable  # what is read after the crash is the damage
        differing = [index for index, byte in enumerate(inode.durable) if byte != content[index]]
        if name == "zeros":
            assert differing == []
            continue
        end = len(content.rstrip(b"\0"))
        [position] = differing
        assert max(0, end - 64) <= position < end
        assert bin(inode.durable[position] ^ content[position]).count("1") == 1
    count = io.faults.report()["tail_corruption"]
    assert (count.fired, count.opportunities, count.configured_probability) == (3, 3, 1.0)


def test_tail_corruption_is_a_media_fault_and_its_window_alone_enables_nothing() -> None:
    assert FaultPlan(tail_corruption=TailCorruption(window_bytes=128)).enabled() == []
    plan = _tail_plan(0.1)
    assert plan.enabled() == ["tail_corruption"] and plan.damages_data()
    io = SimIo(seed=31, faults=plan)
    for _ in range(200):
        _file(io, b"data")
        io.crash()
    count = io.faults.report()["tail_corruption"]
    assert count.opportunities == 200 and 0.04 < count.achieved_probability < 0.18


def test_a_damaged_last_frame_after_a_crash_is_reported_as_a_torn_tail() -> None:
    """No clean close: the damaged last frame may be a torn write. It is cut and reported
    (never silently), and no key returns a value it did not hold."""
    io = SimIo(seed=32)
    _five_values(io, clean_close=False)
    _damage_tail(io, "00000001.seg")
    assert _fired(io, "tail_corruption") == 1
    with kv.open(DIRECTORY, io=io) as reopened:
        [tail] = reopened.recovery.torn_tails
        assert tail.records_dropped <= 1 and not reopened.recovery.corruptions
        assert [reopened.get(f"k{index}") for index in range(4)] == [f"v{index}".encode() * 30 for index in range(4)]
        assert reopened.get("k4") is None


def test_a_damaged_last_frame_after_a_clean_close_is_corruption_not_a_torn_tail() -> None:
    """Found by completion_corruption: the newest segment's last frame, durable at a clean
    close, was damaged at a crash and cut as a torn tail ("unacknowledged records
    dropped"), though it was acknowledged. The CLEAN marker says how far the segment was
    durable: damage before that is corruption (the default open raises)."""
    io = SimIo(seed=33)
    _five_values(io, clean_close=True)
    _damage_tail(io, "00000001.seg")
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None and raised.value.report.records_lost == 1
    assert not raised.value.report.torn_tails
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as repaired:
        assert repaired.recovery.records_lost == 1 and repaired.recovery.quarantined
        assert [repaired.get(f"k{index}") for index in range(4)] == [f"v{index}".encode() * 30 for index in range(4)]
        assert repaired.get("k4") is None
        repaired.set("k4", "again")
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.recovery.clean and reopened.get("k4") == b"again"


def test_a_damaged_clean_marker_falls_back_on_its_copy_then_costs_a_rewrite_not_data() -> None:
    io = SimIo(seed=34)
    _five_values(io, clean_close=True)
    _damage_tail(io, "CLEAN")  # one bit: one of its two copies
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.recovery.clean and reopened.recovery.segment_bytes_rewritten == 0
    io.crash()
    marker = _inode(io, "CLEAN")
    for copy_start in (0, len(marker.durable) // 2):  # both copies
        marker.durable[copy_start + 5] ^= 0x20
    marker.data[:] = marker.durable
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.recovery.clean and reopened.recovery.segment_bytes_rewritten > 0
        assert [reopened.get(f"k{index}") for index in range(5)] == [f"v{index}".encode() * 30 for index in range(5)]


def _compacted_twenty(io: SimIo) -> None:
    with kv.open(DIRECTORY, io=io) as store:
        for index in range(20):
            store.set(f"k{index:02d}", f"v{index}" * 30)
        store.compact()
    io.crash()


def test_a_damaged_hint_is_ignored_and_the_compacted_file_scanned() -> None:
    io = SimIo(seed=35)
    _compacted_twenty(io)
    _damage_tail(io, "00000001.hint")
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.recovery.hint_files_ignored == 1 and reopened.recovery.clean
        assert all(reopened.get(f"k{index:02d}") == f"v{index}".encode() * 30 for index in range(20))


def test_a_damaged_compacted_tail_is_a_typed_error_never_a_wrong_value() -> None:
    """With its hint intact, opening does not read the values: the damaged last record
    surfaces as `CorruptionDetected` from `get` and in `verify()`. Without the hint,
    opening finds the damaged frame and a repair reports the records it held as lost."""
    io = SimIo(seed=36)
    _compacted_twenty(io)
    _damage_tail(io, "00000001.compacted")
    with kv.open(DIRECTORY, io=io) as reopened:
        assert reopened.recovery.hint_files_used == 1
        for index in range(19):
            assert reopened.get(f"k{index:02d}") == f"v{index}".encode() * 30
        with pytest.raises(CorruptionDetected):
            reopened.get("k19")
        assert not reopened.verify().ok
    io.unlink(f"{DIRECTORY}/00000001.hint").result()
    with pytest.raises(CorruptionDetected) as raised:
        kv.open(DIRECTORY, io=io)
    assert raised.value.report is not None and raised.value.report.corruptions
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as repaired:  # the frame with the damage is lost
        values = [repaired.get(f"k{index:02d}") for index in range(20)]
        assert all(value in (None, f"v{index}".encode() * 30) for index, value in enumerate(values))
        assert values[19] is None and values.count(None) == repaired.recovery.records_lost


# -- per-step RNG streams ------------------------------------------------------------------

_STREAM_PLAN = FaultPlan(
    bit_flip=BitFlip(on_write_probability=0.3),
    lost_write=LostWrite(probability=0.2),
    misdirected_write=MisdirectedWrite(probability=0.2),
    read_corruption=ReadCorruption(probability=0.3, sticky_probability=0.5),
    short_read=ShortRead(probability=0.3),
    latency=Latency(jitter_us_max=500),
)


def _stream_outcome(io: SimIo, writes_before: int, streams: bool) -> tuple[object, ...]:
    """`writes_before` writes in stream 0, then the same work in stream 1 (concurrent
    writes, so the completion order is drawn too): what stream 1 decided."""
    io.mkdir("/d").result()
    if streams:
        io.begin_stream(0)
    before = io.open("/d/a", "w").result()
    for index in range(writes_before):
        io.write(before, 100 * index, bytes([index + 1]) * 100).result()
    counted = {name: count.fired for name, count in io.faults.counts.items()}
    if streams:
        io.begin_stream(1)
    file = io.open("/d/b", "w").result()
    started = io.clock_us
    futures = [io.write(file, 50 * index, bytes([index + 1]) * 100) for index in range(8)]
    io.drain()
    for future in futures:
        future.result()
    reads = [io.read(file, 0, 450).result() for _ in range(6)]
    fired = {name: count.fired - counted.get(name, 0) for name, count in io.faults.counts.items()}
    return bytes(_inode_at(io, "/d/b").data), reads, fired, io.clock_us - started, io.damage("/d/b")


def _inode_at(io: SimIo, path: str) -> Inode:
    inode = io.disk.lookup(path)
    assert inode is not None
    return inode


def test_a_stream_makes_the_same_decisions_whatever_the_earlier_steps_did() -> None:
    for seed in range(5):
        outcomes = [_stream_outcome(SimIo(seed=seed, faults=_STREAM_PLAN), n, streams=True) for n in (0, 3, 11)]
        assert outcomes[0] == outcomes[1] == outcomes[2]
        # Without streams, the earlier steps' draws move the later decisions.
        unstreamed = [_stream_outcome(SimIo(seed=seed, faults=_STREAM_PLAN), n, streams=False) for n in (0, 11)]
        assert unstreamed[0] != unstreamed[1]
    assert _stream_outcome(SimIo(seed=1, faults=_STREAM_PLAN), 0, True) != _stream_outcome(
        SimIo(seed=2, faults=_STREAM_PLAN), 0, True
    )  # the stream depends on the io's seed


def test_a_stream_does_not_depend_on_the_hash_seed() -> None:
    program = (
        "from io_backends.sim import SimIo; io = SimIo(seed=3); io.begin_stream(7); "
        "print(io.random.random(), io.faults.rng is io.random)"
    )
    printed = {
        subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("0", "1", "random")
    }
    assert printed == {f"{random.Random('3/7').random()} True\n"}


def test_begin_stream_is_a_no_op_on_an_io_given_its_rng() -> None:
    """Hypothesis owns the decisions of an io built with `rng=`; streams leave them be."""
    rng = random.Random(9)
    io = SimIo(faults=_STREAM_PLAN, rng=rng)
    io.begin_stream(4)
    assert io.random is rng and io.faults.rng is rng
    called = _stream_outcome(io, 3, streams=True)
    assert called == _stream_outcome(SimIo(faults=_STREAM_PLAN, rng=random.Random(9)), 3, streams=False)
