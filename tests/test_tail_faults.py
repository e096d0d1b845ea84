"""`LostTruncate`, `TailBurst` and `FlyingWrite`: what each does to the simulated disk,
what its ledger entry says, how it is counted, and the store path it reaches (a sealed
segment's torn tail, damage spanning frames, a whole frame in the wrong place)."""

from __future__ import annotations

from typing import Any

import pytest

import kv
from io_backends.sim import Damage, SimIo, SimulatedCrash
from io_backends.sim.disk import Inode
from io_backends.sim.faults import CrashSurvival, FaultPlan, FlyingWrite, LostTruncate, TailBurst
from kv.marks import recording
from scenarios.runner import run_schedule
from scenarios.schedule import Schedule

DIRECTORY = "/db"
PATH = f"{DIRECTORY}/f"


def _inode(io: SimIo, path: str = PATH) -> Inode:
    inode = io.disk.lookup(path)
    assert inode is not None
    return inode


def _fired(io: SimIo, name: str) -> int:
    count = io.faults.counts.get(name)
    return count.fired if count is not None else 0


def _synced_file(io: SimIo, data: bytes) -> None:
    io.mkdir(DIRECTORY).result()
    file = io.open(PATH, "w").result()
    io.write(file, 0, data).result()
    io.sync(file).result()
    io.close(file).result()
    io.sync_dir(DIRECTORY).result()
    io.sync_dir("/").result()


def _values(store: kv.Store, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        store.set(f"k{index:03d}", f"v{index}" * 30)


# -- LostTruncate ------------------------------------------------------------------------


def test_a_lost_truncate_is_seen_until_a_crash_and_then_undone_on_disk_only() -> None:
    io = SimIo(seed=1, faults=FaultPlan(lost_truncate=LostTruncate(probability=1.0)))
    _synced_file(io, bytes(range(1, 201)) * 5)
    file = io.open(PATH, "w").result()
    io.truncate(file, 100).result()
    io.sync(file).result()
    assert len(_inode(io).data) == 100 and io.damage() == []  # readers see the cut
    assert io.damage_events == [Damage(PATH, 100, 900, "lost_truncate")]
    io.crash()
    assert _inode(io).data == bytes(range(1, 201)) * 5  # the old length, the old bytes
    assert io.damage() == [Damage(PATH, 100, 900, "lost_truncate")]  # the twin's file ends at 100
    count = io.faults.report()["lost_truncate"]
    assert (count.fired, count.opportunities) == (1, 1)
    assert FaultPlan(lost_truncate=LostTruncate(0.1)).damages_data()


def test_a_lost_truncate_before_the_crash_synced_nothing_and_is_no_damage() -> None:
    io = SimIo(seed=2, faults=FaultPlan(lost_truncate=LostTruncate(probability=1.0)))
    _synced_file(io, b"x" * 300)
    file = io.open(PATH, "w").result()
    io.truncate(file, 10).result()
    io.crash()  # unsynced: lost on a fault-free disk as well
    assert _inode(io).data == b"x" * 300 and io.damage() == []


def test_a_lost_cut_at_a_roll_is_a_sealed_tail_that_held_no_records() -> None:
    """The roll's cut of the preallocated zeros is lost: after a crash the sealed segment
    ends in zeros, and the next segment's lsns show they held no records."""
    io = SimIo(seed=3, faults=FaultPlan(lost_truncate=LostTruncate(probability=1.0)))
    store = kv.open(DIRECTORY, io=io, segment_size_target_bytes=1024)
    _values(store, 12)  # rolls: every cut is lost
    assert _fired(io, "lost_truncate") >= 1
    io.crash()
    io.faults_off()
    with recording() as hits, kv.open(DIRECTORY, io=io, segment_size_target_bytes=1024) as reopened:
        report = reopened.recovery
        assert hits["sealed_tail_torn"] >= 1 and not report.corruptions
        assert report.torn_tails and all(tail.records_dropped == 0 for tail in report.torn_tails)
        assert [reopened.get(f"k{index:03d}") for index in range(12)] == [f"v{i}".encode() * 30 for i in range(12)]


# -- TailBurst ---------------------------------------------------------------------------


def test_a_tail_burst_flips_two_bits_in_the_window_of_each_surviving_file() -> None:
    io = SimIo(seed=4, faults=FaultPlan(tail_burst=TailBurst(probability=1.0, window_bytes=256)))
    content = bytes(range(1, 256)) * 8 + bytes(1000)  # zeros past the data are not in the window
    _synced_file(io, content)
    io.crash()
    inode = _inode(io)
    assert inode.data == inode.durable
    differing = [index for index, byte in enumerate(inode.durable) if byte != content[index]]
    end = len(content.rstrip(b"\0"))
    assert 1 <= len(differing) <= 2 and all(end - 256 <= index < end for index in differing)
    assert {(d.offset, d.kind) for d in io.damage()} <= {(index, "tail_burst") for index in differing}
    assert sum(d.length for d in io.damage()) == len(differing)
    count = io.faults.report()["tail_burst"]
    assert (count.fired, count.opportunities) == (1, 1)
    assert FaultPlan(tail_burst=TailBurst(window_bytes=64)).enabled() == []


def test_a_tail_burst_over_the_last_frames_is_reported_never_cut_as_one_torn_write() -> None:
    """Two flips in the last frames of the log: when they took more than the last
    operation, the open reports corruption (damage spanning frames), never only a torn
    tail; over these seeds both happen."""
    spanning = 0
    for seed in range(40):
        io = SimIo(seed=seed)
        store = kv.open(DIRECTORY, io=io)
        _values(store, 6)
        io.crash()
        io.faults.plan = FaultPlan(tail_burst=TailBurst(probability=1.0, window_bytes=256))
        io.faults.burst_tails([_inode(io, f"{DIRECTORY}/00000001.seg")])
        io.faults_off()
        with recording() as hits, kv.open(DIRECTORY, io=io, on_corruption="repair") as reopened:
            lost = [index for index in range(6) if reopened.get(f"k{index:03d}") != f"v{index}".encode() * 30]
            report = reopened.recovery
            assert not lost or lost[-1] == 5, (seed, lost)  # a prefix of the log survives
            if len(lost) > 1:
                assert report.corruptions, (seed, report.summary())
                counted = all(corruption.count_known for corruption in report.corruptions)
                assert not counted or report.records_lost >= len(lost), (seed, report.summary())
            spanning += hits["damage_spanning_frames"]
    assert spanning


# -- FlyingWrite -------------------------------------------------------------------------


def test_a_flying_write_lands_where_the_write_before_it_went() -> None:
    plan = FaultPlan(crash_survival=CrashSurvival(subset_probability=1.0), flying_write=FlyingWrite(probability=1.0))
    for seed in range(20):
        io = SimIo(seed=seed)
        _synced_file(io, b"a" * 100)
        file = io.open(PATH, "w").result()
        io.write(file, 100, b"b" * 50).result()
        io.faults.plan = plan
        io.crash()
        if _fired(io, "flying_write"):
            break
    else:
        pytest.fail("no seed let the unsynced write survive")
    assert _inode(io).data == b"b" * 50 + b"a" * 50  # over the write before it; nothing at 100
    assert io.damage() == [Damage(PATH, 0, 50, "flying_write"), Damage(PATH, 100, 50, "flying_write")]
    count = io.faults.report()["flying_write"]
    assert (count.fired, count.opportunities) == (1, 1)
    assert plan.damages_data()


def test_a_first_write_since_the_crash_has_nowhere_to_fly() -> None:
    plan = FaultPlan(crash_survival=CrashSurvival(prefix_probability=1.0), flying_write=FlyingWrite(probability=1.0))
    io = SimIo(seed=5)
    _synced_file(io, b"a" * 100)
    io.crash()
    io.faults.plan = plan
    file = io.open(PATH, "w").result()
    io.write(file, 100, b"b" * 50).result()
    io.crash()
    assert "flying_write" not in io.faults.counts


def test_a_flying_last_frame_is_a_whole_frame_in_the_wrong_place() -> None:
    """The frame being written at the power loss lands over the frame before it (which
    was acknowledged): the open reports that frame's loss, never a torn tail."""
    plan = FaultPlan(crash_survival=CrashSurvival(subset_probability=1.0), flying_write=FlyingWrite(probability=1.0))
    for seed in range(20):
        io = SimIo(seed=seed)
        store = kv.open(DIRECTORY, io=io)
        _values(store, 5)
        io.faults.plan = plan
        io.crash_before_sync = True
        with pytest.raises(SimulatedCrash):
            store.set("k005", "v5" * 30)
        if _fired(io, "flying_write"):
            break
    else:
        pytest.fail("no seed let the last frame survive")
    io.faults_off()
    with recording() as hits, kv.open(DIRECTORY, io=io, on_corruption="repair") as reopened:
        assert hits["damage_misplaced_frame"] == 1
        [corruption] = reopened.recovery.corruptions
        assert "wrong place" in corruption.detail and corruption.records_lost >= 1
        assert reopened.get("k004") is None and reopened.get("k003") == b"v3" * 30


MARKER_DAMAGED_WITH_THE_SYNCED_TAIL = {
    "format": 3,
    "scenario": "comprehensive",
    "seed": 458,
    "sim_seed": 11186906797128498215,
    "durability": "always",
    "segment_size_target_bytes": 16384,
    "faults": {
        "bit_flip": {
            "on_write_probability": 0.0020460825485734864,
            "at_rest_probability": 0.05115206371433716,
            "bits_max": 1,
        },
        "read_corruption": {"probability": 0.003122024025339227, "sticky_probability": 0.31220240253392273},
        "short_read": {"probability": 0.0026314221418419037},
        "operation_errors": {
            "open_probability": 0.0017706256186128147,
            "read_probability": 0.0017706256186128147,
            "write_probability": 0.0017706256186128147,
            "sync_probability": 0.0017706256186128147,
            "rename_probability": 0.008853128093064074,
            "unlink_probability": 0.008853128093064074,
            "persistent_probability": 0.08853128093064074,
        },
        "permission_errors": {"open_probability": 0.001230897655670735, "write_probability": 0.0006154488278353675},
        "latency": {"jitter_us_max": 200},
        "tail_corruption": {"probability": 0.005276117777333457, "window_bytes": 64},
        "tail_burst": {"probability": 0.07024661623995256, "window_bytes": 256},
    },
    "opening_crashes": [],
    "closing_crashes": [],
    "steps": [
        {"op": "set_many", "changes": [["key0050", "v0"], ["key0011", "v0"]], "stream": 13},
        {"op": "set", "changes": [["key0013", "v1"]], "stream": 17},
        {"op": "set", "changes": [["key0037", "v2"]], "stream": 18},
        {
            "op": "set_many",
            "changes": [
                ["key0020", "v3"],
                ["key0048", "v3"],
                ["key0032", "v3"],
                ["key0002", "v3"],
                ["key0001", "v3"],
                ["key0040", "v3"],
            ],
            "stream": 23,
        },
        {"op": "set", "changes": [["key0006", "v4"]], "stream": 34},
        {"op": "set", "changes": [["key0039", "v5"]], "stream": 38},
        {"op": "set", "changes": [["key0031", "v6"]], "stream": 39},
        {"op": "compact", "changes": [], "stream": 41},
        {"op": "set", "changes": [["key0028", "v8"]], "stream": 47},
        {"op": "set", "changes": [["key0063", "v9"]], "stream": 48},
        {"op": "set_many", "changes": [["key0026", "v10"], ["key0062", "v10"], ["key0025", "v10"]], "stream": 50},
        {"op": "set", "changes": [["key0027", "v11"]], "stream": 51},
        {"op": "set", "changes": [["key0008", "v12"]], "stream": 53},
        {"op": "set", "changes": [["key0009", "v13"]], "stream": 54},
        {"op": "set", "changes": [["key0061", "v14"]], "stream": 55},
        {"op": "set", "changes": [["key0038", "v15"]], "stream": 56},
        {"op": "set", "changes": [["key0005", "v16"]], "stream": 57},
        {"op": "set", "changes": [["key0042", "v17"]], "stream": 61},
        {"op": "set", "changes": [["key0012", "v18"]], "stream": 296},
        {"op": "set", "changes": [["key0042", "v19"]], "stream": 299},
        {"op": "verify", "changes": [], "stream": 305},
        {"op": "reopen", "changes": [], "stream": 306},
        {
            "op": "set",
            "changes": [
                [
                    "key0032",
                    "332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332:332",
                ]
            ],
            "stream": 332,
        },
        {"op": "set_many", "changes": [["key0014", "v23"]], "forced": ["bit_flip.on_write"], "stream": 333},
        {"op": "delete", "changes": [["key0050", None]], "stream": 370},
        {"op": "delete", "changes": [["key0012", None]], "stream": 371},
        {"op": "flush", "changes": [], "stream": 378},
        {"op": "delete", "changes": [["key0009", None]], "recovery_crashes": [12, 2], "stream": 385},
    ],
}


MARKER_UNREADABLE_WITH_THE_SYNCED_TAIL = {
    "format": 3,
    "scenario": "comprehensive",
    "seed": 584,
    "sim_seed": 13019090807917630682,
    "durability": "always",
    "segment_size_target_bytes": 16384,
    "faults": {
        "crash_survival": {"prefix_probability": 0.1506099715139848, "subset_probability": 0.10040664767598989},
        "bit_flip": {
            "on_write_probability": 0.0006952460155871374,
            "at_rest_probability": 0.017381150389678437,
            "bits_max": 1,
        },
        "read_corruption": {"probability": 0.0006491524079588536, "sticky_probability": 0.06491524079588537},
        "latent_sector_error": {"probability": 0.0002469687749489597, "sector_bytes": 512},
        "misdirected_write": {"probability": 0.0007023699243721915, "sector_bytes": 512},
        "lost_write": {"probability": 0.001411501820883028},
        "short_read": {"probability": 0.027109449130962106},
        "operation_errors": {
            "open_probability": 0.007719010776739053,
            "read_probability": 0.007719010776739053,
            "write_probability": 0.007719010776739053,
            "sync_probability": 0.007719010776739053,
            "rename_probability": 0.03859505388369527,
            "unlink_probability": 0.03859505388369527,
            "persistent_probability": 0.3859505388369527,
        },
        "permission_errors": {"open_probability": 0.0032929369823967705, "write_probability": 0.0016464684911983852},
        "fsync_gate": {"probability": 0.004626716193328646},
        "latency": {"jitter_us_max": 200},
        "tail_corruption": {"probability": 0.06525660431622617, "window_bytes": 64},
        "entry_loss": {"probability": 0.06343469702443603},
        "lost_truncate": {"probability": 0.029052846526649346},
        "tail_burst": {"probability": 0.024623580011082048, "window_bytes": 256},
    },
    "opening_crashes": [],
    "closing_crashes": [],
    "steps": [
        {"op": "set", "changes": [["key0033", "v0"]], "stream": 917},
        {"op": "compact", "changes": [], "stream": 934},
        {"op": "set", "changes": [["key0028", "v2"]], "stream": 949},
        {"op": "delete", "changes": [["key0033", None]], "recovery_crashes": [6], "stream": 950},
        {"op": "set", "changes": [["key0022", "v4"]], "stream": 967},
        {"op": "set_many", "changes": [["key0016", "v5"]], "stream": 968},
        {"op": "set", "changes": [["key0011", "v6"]], "stream": 971},
        {"op": "verify", "changes": [], "crash_after_ios": 7, "stream": 1162},
        {"op": "set", "changes": [["key0053", "v8"]], "stream": 1312},
        {"op": "set", "changes": [["key0028", "v9"]], "stream": 1320},
        {"op": "set_many", "changes": [["key0034", "v10"]], "recovery_crashes": [29], "stream": 1322},
    ],
}


@pytest.mark.parametrize(
    "schedule", [MARKER_DAMAGED_WITH_THE_SYNCED_TAIL, MARKER_UNREADABLE_WITH_THE_SYNCED_TAIL], ids=["458", "584"]
)
def test_a_marker_that_cannot_be_read_does_not_make_synced_damage_a_torn_tail(schedule: dict[str, Any]) -> None:
    """Comprehensive seeds 458 and 584 of a 1,000-seed sweep, shrunk: the CLEAN marker
    was damaged (458: both copies, by tail_burst) or unreadable (584: EIO), and a crash
    flipped bits in the synced end of the newest segment. Without a marker the open
    judged that damage a torn write and cut an acknowledged record without a report.
    A marker that exists but cannot be read or decoded may record those bytes durable,
    so the damage is now reported as corruption (rule 3)."""
    result = run_schedule(Schedule.from_json(schedule), keep_timeline=True)
    assert result.passed, result.violation + "\n" + "\n".join(result.timeline)


def test_a_damaged_header_where_the_segment_was_recorded_durable_reports_an_unknown_count() -> None:
    """The state machine's finding (search seed 2): a set_many of two keys, then a bit
    flip at rest in the magic of its frame; the next open lost both and reported one
    record. A header that cannot be read took the frame's count with it: the report
    now says at least one ("1+")."""
    io = SimIo(seed=2)
    store = kv.open("/store", io=io)
    store.set_many({b"k0": b"", b"k1": b""})
    store.close()
    disk = io.disk
    directory = disk.directories["/store"]
    [segment] = [disk.inodes[number] for name, number in directory.entries.items() if name.endswith(".seg")]
    segment.flip(0, 1, "bit_flip.at_rest")
    reopened = kv.open("/store", io=io, on_corruption="repair")
    [corruption] = reopened.recovery.corruptions
    assert corruption.records_lost >= 1 and not corruption.count_known, corruption
    assert (reopened.get(b"k0"), reopened.get(b"k1")) == (None, None)
    reopened.close()
