"""Salvage (`on_corruption="salvage"`, `kv --salvage`): every intact frame and record is
kept, and what is lost is named; point-in-time repair (`"repair"`) is unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kv
from io_backends.sim import SimIo
from io_backends.sim.disk import Inode
from kv.errors import CorruptionDetected
from kv.record import FRAME_HEADER_SIZE, RECORD_HEADER_SIZE
from kv.recovery import scan_segment

DIRECTORY = "/db"
ROOT = Path(__file__).resolve().parent.parent


def _inode(io: SimIo, name: str) -> Inode:
    inode = io.disk.lookup(f"{DIRECTORY}/{name}")
    assert inode is not None
    return inode


def _ten_records_third_damaged(seed: int) -> SimIo:
    """Ten sets, one frame each; one byte flipped inside the third record's value."""
    io = SimIo(seed=seed)
    with kv.open(DIRECTORY, io=io) as store:
        for index in range(10):
            store.set(f"key{index}", f"value{index}" * 5)
    inode = _inode(io, "00000001.seg")
    offset, _header = scan_segment(1, bytes(inode.durable)).frames[2]
    inode.durable[offset + FRAME_HEADER_SIZE + RECORD_HEADER_SIZE + 8] ^= 0xFF
    io.crash()
    return io


def test_point_in_time_repair_still_keeps_only_the_prefix() -> None:
    io = _ten_records_third_damaged(seed=1)
    with pytest.raises(CorruptionDetected, match="salvage"):
        kv.open(DIRECTORY, io=io)
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as store:
        assert store.keys() == [b"key0", b"key1"]
        assert store.recovery.records_lost == 8


def test_salvage_keeps_the_seven_intact_records_after_a_damaged_third_of_ten() -> None:
    io = _ten_records_third_damaged(seed=1)
    with kv.open(DIRECTORY, io=io, on_corruption="salvage") as store:
        expected = {f"key{index}".encode(): f"value{index}".encode() * 5 for index in range(10) if index != 2}
        assert {key: store.get(key) for key in store.keys()} == expected
        [corruption] = store.recovery.corruptions
        assert corruption.lsn_ranges_lost == ((3, 3),) and corruption.records_lost == 1 and corruption.count_known
        assert corruption.keys_lost == (b"key2",)  # as the damaged record reads
        assert corruption.records_salvaged == 7
        # The lost record's key failed its CRC: any key last written before lsn 3 may
        # have lost a newer value there. They keep their older value, and say so.
        assert corruption.keys_at_risk == (b"key0", b"key1")
        assert store.recovery.quarantined == ["quarantine/00000001.seg.0"]
        store.set("after", "salvage")
    io.crash()
    with kv.open(DIRECTORY, io=io) as store:  # compacted, clean: nothing to raise about
        assert store.recovery.clean
        assert len(store.keys()) == 10 and store.get("after") == b"salvage"
    copy = io.disk.lookup(f"{DIRECTORY}/quarantine/00000001.seg.0")
    assert copy is not None  # the damaged segment, whole, with its damage
    scan = scan_segment(1, bytes(copy.durable))
    assert len(scan.frames) == 2 and len(scan.frames_after_damage) == 7


def test_salvage_names_a_key_whose_newer_value_it_lost() -> None:
    io = SimIo(seed=3)
    with kv.open(DIRECTORY, io=io) as store:
        store.set("a", "old")
        store.set("a", "new")  # this frame is damaged
        store.set("b", "kept")
    inode = _inode(io, "00000001.seg")
    offset, _header = scan_segment(1, bytes(inode.durable)).frames[1]
    inode.durable[offset + FRAME_HEADER_SIZE + RECORD_HEADER_SIZE] ^= 0xFF  # its key byte
    io.crash()
    with kv.open(DIRECTORY, io=io, on_corruption="salvage") as store:
        assert store.get("a") == b"old" and store.get("b") == b"kept"
        [corruption] = store.recovery.corruptions
        assert b"a" in corruption.keys_at_risk  # "lost newer value, older value kept"
        assert b"b" not in corruption.keys_at_risk  # written after every lost lsn
        assert "may have lost a newer value" in store.recovery.summary()


def test_salvage_keeps_a_damaged_batch_out_whole() -> None:
    io = SimIo(seed=4)
    with kv.open(DIRECTORY, io=io) as store:
        store.set("before", "1")
        store.set_many({"x": "batch", "y": "batch", "z": "batch"})  # one frame, damaged in x
        store.set("after", "2")
    inode = _inode(io, "00000001.seg")
    offset, _header = scan_segment(1, bytes(inode.durable)).frames[1]
    inode.durable[offset + FRAME_HEADER_SIZE + RECORD_HEADER_SIZE + 1] ^= 0xFF
    io.crash()
    with kv.open(DIRECTORY, io=io, on_corruption="salvage") as store:
        assert store.keys() == [b"after", b"before"]  # y and z pass their own CRCs, but a batch is atomic
        [corruption] = store.recovery.corruptions
        assert corruption.lsn_ranges_lost == ((2, 4),) and corruption.records_lost == 3


def _compacted_five_first_damaged(seed: int, keep_hint: bool, flipped: int) -> SimIo:
    """Five records compacted into one frame; the byte `flipped` bytes into the first
    record's key (key0, then its value) flipped."""
    io = SimIo(seed=seed)
    with kv.open(DIRECTORY, io=io) as store:
        store.set_many({f"key{index}": f"value{index}" * 5 for index in range(5)})
        store.compact()
    inode = _inode(io, "00000001.compacted")
    [(offset, header)] = scan_segment(1, bytes(inode.durable), compacted=True).frames
    assert header.count == 5
    inode.durable[offset + FRAME_HEADER_SIZE + RECORD_HEADER_SIZE + flipped] ^= 0xFF
    if not keep_hint:
        io.unlink(f"{DIRECTORY}/00000001.hint").result()
        io.sync_dir(DIRECTORY).result()
    io.crash()
    return io


def test_repair_with_the_hint_changes_nothing_and_salvage_finds_the_damage() -> None:
    io = _compacted_five_first_damaged(seed=5, keep_hint=True, flipped=2)  # in the key: the hint still names it
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as store:  # the hint is trusted, as before
        assert store.recovery.clean
        with pytest.raises(CorruptionDetected):
            store.get("key0")
    with kv.open(DIRECTORY, io=io, on_corruption="salvage") as store:
        assert store.keys() == [b"key1", b"key2", b"key3", b"key4"]
        assert all(store.get(f"key{index}") == f"value{index}".encode() * 5 for index in range(1, 5))
        [corruption] = store.recovery.corruptions
        assert corruption.keys_lost == (b"key0",) and corruption.records_lost == 1 and corruption.count_known
        assert corruption.keys_at_risk == ()  # a compacted file holds one record per key, nothing older
        assert store.recovery.quarantined == ["quarantine/00000001.compacted.0"]
    with kv.open(DIRECTORY, io=io) as store:
        assert store.recovery.clean and len(store.keys()) == 4


def test_salvage_without_the_hint_keeps_the_four_intact_records_of_a_damaged_compacted_frame() -> None:
    io = _compacted_five_first_damaged(seed=6, keep_hint=False, flipped=7)  # in the value
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as store:  # point in time: the frame is lost
        assert store.keys() == []
    io = _compacted_five_first_damaged(seed=6, keep_hint=False, flipped=7)
    with kv.open(DIRECTORY, io=io, on_corruption="salvage") as store:
        assert store.keys() == [b"key1", b"key2", b"key3", b"key4"]
        [corruption] = store.recovery.corruptions
        assert corruption.records_lost == 1 and corruption.count_known  # the frame header still reads: 5 - 4
        assert corruption.keys_lost == (b"key0",)  # as the damaged record reads
    with kv.open(DIRECTORY, io=io) as store:
        assert store.recovery.clean and len(store.keys()) == 4


def _kv(*arguments: str, input_bytes: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-c", "import sys; from kv.cli import main; sys.exit(main())", *arguments]
    return subprocess.run(command, input=input_bytes, capture_output=True, timeout=60, cwd=ROOT)


def test_cli_names_its_own_flags_and_where_the_damage_went(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    _kv(str(directory), "--io", "blocking", input_bytes=b"".join(b"SET k%d v%d\n" % (i, i) for i in range(10)))
    segment = directory / "00000001.seg"
    data = bytearray(segment.read_bytes())
    data[scan_segment(1, bytes(data)).frames[2][0] + 40] ^= 1  # the third of ten records
    segment.write_bytes(bytes(data))
    refused = _kv(str(directory), "--io", "blocking", input_bytes=b"GET k0\n")
    assert refused.returncode == 1
    assert b"--repair" in refused.stderr and b"--salvage" in refused.stderr
    assert b"on_corruption" not in refused.stderr
    salvaged = _kv(str(directory), "--io", "blocking", "--salvage", input_bytes=b"GET k1\nGET k2\nGET k9\nDBSIZE\n")
    assert salvaged.returncode == 0, salvaged.stderr
    assert salvaged.stdout == b"v1\n\nv9\n9\n"
    assert f"{directory}/quarantine/00000001.seg.0".encode() in salvaged.stderr
    assert (directory / "quarantine" / "00000001.seg.0").exists()
    both = _kv(str(directory), "--repair", "--salvage")
    assert both.returncode == 2 and b"not allowed with" in both.stderr


def test_lost_ranges_and_keys_at_risk() -> None:
    from kv.salvage import keys_at_risk, lost_ranges

    assert lost_ranges(3, 10, {4, 5, 8}) == [(3, 3), (6, 7), (9, 10)]
    assert lost_ranges(3, 4, {3, 4}) == []
    keydir = {b"old": (1, 0, 40, 2, 0), b"new": (1, 40, 40, 9, 0), b"compacted": (-1, 0, 40, 1, 0)}
    assert keys_at_risk(keydir, 5) == (b"compacted", b"old")
    assert keys_at_risk(keydir, None) == (b"compacted", b"new", b"old")
