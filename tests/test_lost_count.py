"""The count of records lost by damage in the log: exact only when no damaged frame
lies past the last lsn any valid frame shows."""

from __future__ import annotations

import kv
from io_backends.sim import SimIo
from kv.record import FRAME_HEADER_SIZE
from kv.recovery import scan_segment

DIRECTORY = "/db"


def test_damage_after_the_last_valid_frame_makes_the_count_a_lower_bound() -> None:
    """Found by tests/test_tail_faults.py (a tail burst, seed 6): two flips, in the last frame and the one two
    before it, with a valid frame between. The open counted the lsns up to the valid
    frame and called that exact ("2 records lost"), though the last frame, acknowledged,
    was lost too; now the count is "at least"."""
    io = SimIo(seed=7)
    store = kv.open(DIRECTORY, io=io)
    for index in range(6):
        store.set(f"k{index:03d}", f"v{index}" * 30)
    io.crash()
    segment = io.disk.lookup(f"{DIRECTORY}/00000001.seg")
    assert segment is not None
    frames = scan_segment(1, bytes(segment.durable)).frames
    for offset, _header in (frames[3], frames[5]):
        segment.flip(offset + FRAME_HEADER_SIZE + 40, 1, "bit_flip.at_rest")
    with kv.open(DIRECTORY, io=io, on_corruption="repair") as reopened:
        [corruption] = reopened.recovery.corruptions
        assert (corruption.lsn_first_lost, corruption.lsn_last_lost) == (4, 5) and not corruption.count_known
        assert "at least 2 records lost" in reopened.recovery.summary()
        assert [reopened.get(f"k{index:03d}") for index in range(3, 6)] == [None, None, None]
