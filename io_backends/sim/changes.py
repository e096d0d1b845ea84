"""One change to a simulated file's bytes (a write or a truncate), and how it is replayed.

A change is queued per file between syncs (`disk.Inode.unsynced`) and replayed onto the
durable bytes at a sync or, for the ones a crash lets survive, at a crash. A change a
fault altered (a flipped, misdirected, lost, torn or size-before-data write) carries the
change a fault-free disk would have made in its place (`twin`) and the fault's name
(`kind`), so the damage ledger (`damage.py`) can replay both.
"""

from __future__ import annotations

from typing import NamedTuple


class PendingWrite(NamedTuple):
    """One change applied to `Inode.data` but not yet covered by a sync (immutable).

    `lost` marks a write the device acknowledged but will never store (a lost-write
    fault): readers see it in the page cache, a sync does not make it durable. `twin`
    is None when a fault-free disk would make this very change.
    """

    offset: int
    data: bytes
    truncate_to: int | None = None  # set for truncates; `data` is then empty
    lost: bool = False
    twin: PendingWrite | None = None  # what a fault-free disk would have written instead
    kind: str = ""  # the fault that altered it (a `FaultInjector.draw` name), "" for none


def fault_free(change: PendingWrite) -> PendingWrite:
    """The change a fault-free disk makes in place of `change`."""
    return change if change.twin is None else change.twin


def apply_change(target: bytearray, change: PendingWrite) -> None:
    """Replay one write or truncate onto `target` (zeros fill any gap)."""
    offset, data, truncate_to = change[0], change[1], change[2]
    if truncate_to is not None:
        if truncate_to <= len(target):
            del target[truncate_to:]
        else:
            target.extend(bytes(truncate_to - len(target)))
        return
    if offset > len(target):
        target.extend(bytes(offset - len(target)))
    target[offset : offset + len(data)] = data


def affected(change: PendingWrite, length: int) -> tuple[int, int]:
    """The byte range `[start, end)` that applying `change` to a file of `length` bytes
    may alter (a gap it fills with zeros included)."""
    if change.truncate_to is not None:
        return min(change.truncate_to, length), max(change.truncate_to, length)
    return min(change.offset, length), change.offset + len(change.data)
