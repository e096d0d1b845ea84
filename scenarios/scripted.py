"""Scripted schedules: fault sequences too narrow for a seeded campaign to sample.

Some bugs need several faults in one order, each at one I/O (a sync that fails on one
file, then no crash, then an open, then a crash and damage in one place). A random
campaign may never draw that order, and an exhaustive crash-point run injects crashes,
not failed syncs or damage. Each schedule here drives a `Harness` through one such
sequence, so the oracle judges it as it judges any run: it raises `Violation` when the
store breaks a promise, and returns when the store keeps it.

`SCHEDULES` maps a promise's name (`scenarios.promises`, rows whose scenario is
`SCRIPTED`) to its schedule.
"""

from __future__ import annotations

from collections.abc import Callable

from io_backends.sim import SimIo
from io_backends.sim.disk import Inode
from kv.files import classify, segment_name
from kv.record import FrameHeader
from kv.recovery import scan_segment
from scenarios.runner import STORE_DIRECTORY, Harness
from scenarios.workload import Operation


def newest_segment(io: SimIo) -> tuple[Inode, list[tuple[int, FrameHeader]]]:
    """The newest log segment's inode and its valid durable frames (offset, header)."""
    directory = io.disk.directories[STORE_DIRECTORY]
    segment_id = max(classify(list(directory.entries)).segments)
    inode = io.disk.inodes[directory.entries[segment_name(segment_id)]]
    return inode, scan_segment(segment_id, bytes(inode.durable)).frames


def damage_last_frame(io: SimIo) -> None:
    """Flip one payload byte of the newest segment's last durable frame (media damage,
    recorded in the disk's damage ledger)."""
    inode, frames = newest_segment(io)
    offset, header = frames[-1]
    inode.flip(offset + header.size - 1, 0x01, "bit_flip.at_rest")


def marker_sync_failed_then_crash() -> Harness:
    """A close whose only sync left, the CLEAN marker's, fails (fsyncgate: the page cache
    keeps the new marker); a reopen with no crash between; then a crash, and damage to
    the last frame, acknowledged before that reopen (`kv.opening`, rules 2 and 3)."""
    harness = Harness("scripted", SimIo(seed=7))
    harness.media = harness.faulty = True  # the schedule damages the disk itself
    harness.start()
    for key in (b"a", b"b"):
        harness.do(Operation("set", {key: key * 40}))
    harness.io.faults.force("fsync_gate")  # close syncs nothing else: every set was synced
    harness.reopen_clean()
    damage_last_frame(harness.io)
    harness.crash_now()
    return harness


SCHEDULES: dict[str, Callable[[], Harness]] = {
    "marker_durable_at_every_open": marker_sync_failed_then_crash,
}
