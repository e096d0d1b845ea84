"""The damage ledger: which bytes of a simulated file differ from a fault-free disk's.

A byte is damaged when what a reader gets there now differs from what a fault-free
disk (the "twin") would return given the same writes, syncs, truncations, renames,
unlinks and crash-survival decisions, or when reading it fails (a latent sector error,
kept by the inode as `bad_sectors`). The oracle asks it whether a loss the store
reports points at real damage, and whether every damaged live record was reported.

No file is copied. Each copy of a file (its page cache and its durable bytes) has a
`Shadow`: the twin's length and a few `Run`s holding the twin's bytes where they may
differ, created when a fault fires (rare) and fixed up when a change lands on them. Where
no run lies, the twin's bytes are the file's own. A change that no fault altered, on a
file the ledger never saw, costs the disk one `is None` test.

Runs may hold a few bytes the twin shares with the file (nearby differences are kept in
one run); `Shadow.damage` compares byte for byte, so the answer is exact.

The twin gets the calls that succeeded: an operation that failed with an error the
caller saw did not happen on it either. A crash keeps, on the twin, the unsynced changes
it kept on the disk, in their fault-free form (a lost write survives on neither). An
fsync gate is the one fault that fails loudly and then lies: the failed sync did not
happen on the twin, but the next successful one makes the dropped changes durable there
(kind "fsync_gate"); a crash before it drops them on both. When several faults alter one
write, the last drawn names it ("lost_write" over "misdirected_write" over
"bit_flip.on_write").
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from io_backends.sim.changes import PendingWrite, affected, apply_change, fault_free

UNKNOWN_KIND = "unknown"  # never expected: a difference no recorded fault explains


@dataclass(frozen=True)
class Damage:
    """One damaged byte range of a file, by the fault that left it."""

    path: str  # the file's current path (renames carry the damage; unlinked files drop it)
    offset: int
    length: int
    kind: str  # the fault's draw name: "bit_flip.on_write", "lost_write", "torn_write", ...


class Run(NamedTuple):
    """Positions `[start, end)` where the twin's bytes are held explicitly: `twin` (of
    `end - start` bytes), or None where the twin file has ended (it is shorter)."""

    start: int
    end: int
    twin: bytes | None
    kind: str


_DIFFERENT = re.compile(rb"[^\x00]+")
# Differences closer than this are kept in one run: fewer runs, a few shared bytes held.
_DIFFERENT_NEARBY = re.compile(rb"[^\x00]+(?:\x00{1,63}[^\x00]+)*")


def differing(first: bytes | bytearray, second: bytes | bytearray, nearby: bool = False) -> list[tuple[int, int]]:
    """The `[start, end)` ranges where two equally long byte strings differ (in C: one
    XOR of two big integers and a regular expression over the result)."""
    if first == second:
        return []
    size = len(first)
    xor = (int.from_bytes(first, "little") ^ int.from_bytes(second, "little")).to_bytes(size, "little")
    return [match.span() for match in (_DIFFERENT_NEARBY if nearby else _DIFFERENT).finditer(xor)]


def _run_end(run: Run) -> int:
    return run.end


def _clip(run: Run, start: int, end: int) -> Run:
    """The part of `run` within `[start, end)` (assumed non-empty)."""
    start, end = max(start, run.start), min(end, run.end)
    twin = None if run.twin is None else run.twin[start - run.start : end - run.start]
    return Run(start, end, twin, run.kind)


class Shadow:
    """One copy of a file (page cache or durable bytes) against the twin's same copy."""

    __slots__ = ("runs", "twin_length")

    def __init__(self, twin_length: int, runs: list[Run] | None = None) -> None:
        self.twin_length = twin_length
        self.runs: list[Run] = [] if runs is None else runs  # sorted, disjoint

    def copy(self) -> Shadow:
        return Shadow(self.twin_length, list(self.runs))

    def clean(self, length: int) -> bool:
        """True when the twin's copy is this one's, byte for byte (nothing to hold)."""
        return not self.runs and self.twin_length == length

    def apply(
        self, target: bytearray, change: PendingWrite | None, twin: PendingWrite | None, kind: str | None
    ) -> None:
        """Apply `change` to `target` (these bytes) and `twin` to the twin's (None: the
        copy does not change); `kind` names the fault when the two differ, else None."""
        length, twin_length = len(target), self.twin_length
        spans = [affected(change, length)] if change is not None else []
        if twin is not None:
            spans.append(affected(twin, twin_length))
        low, high = min((span[0] for span in spans), default=0), max((span[1] for span in spans), default=0)
        if low >= high:
            return  # nothing changes
        first = bisect.bisect_right(self.runs, low, key=_run_end)
        last = bisect.bisect_left(self.runs, high, lo=first, key=_start)
        if kind is None and change is twin and first == last and length == twin_length:
            assert change is not None
            apply_change(target, change)  # the same change on the same bytes: still equal
            self.twin_length = len(target)
            return
        window = self._twin_bytes(target, low, min(high, twin_length), first, last)
        old = self.runs[first:last]
        if change is not None:
            apply_change(target, change)
        if twin is not None:
            apply_change(window, _shifted(twin, low))
            twin_length = (
                twin.truncate_to if twin.truncate_to is not None else max(twin_length, twin.offset + len(twin.data))
            )
        self.twin_length = twin_length
        new = self._runs_within(target, window, low, high, spans if kind is not None else [], kind, old)
        kept_before = [_clip(old[0], old[0].start, low)] if old and old[0].start < low else []
        kept_after = [_clip(old[-1], high, old[-1].end)] if old and old[-1].end > high else []
        self.runs[first:last] = kept_before + new + kept_after

    def _twin_bytes(self, target: bytearray, start: int, end: int, first: int, last: int) -> bytearray:
        """The twin's bytes `[start, end)` (runs `first:last` are the ones overlapping)."""
        if end <= start:
            return bytearray()
        window = bytearray(target[start:end])
        if len(window) < end - start:
            window.extend(bytes(end - start - len(window)))  # the twin is longer: runs cover it
        for run in self.runs[first:last]:
            if run.twin is not None and run.start < end and run.end > start:
                low, high = max(run.start, start), min(run.end, end)
                window[low - start : high - start] = run.twin[low - run.start : high - run.start]
        return window

    def _runs_within(
        self,
        target: bytearray,
        window: bytearray,
        low: int,
        high: int,
        spans: list[tuple[int, int]],
        kind: str | None,
        old: list[Run],
    ) -> list[Run]:
        """The runs `[low, high)` needs now that `target` and the twin's `window` (its
        bytes from `low`) are both updated: differences, and where one copy has ended."""
        length, twin_length = len(target), self.twin_length
        common = min(high, length, twin_length)
        pieces: list[tuple[int, int, bytes | None]] = []
        if common > low:
            for start, end in differing(target[low:common], window[: common - low], nearby=True):
                pieces.append((low + start, low + end, bytes(window[start:end])))
        start, end = max(low, common), min(high, max(length, twin_length))
        if end > start:
            pieces.append((start, end, None if length > twin_length else bytes(window[start - low : end - low])))
        return [Run(start, end, twin, _label(start, end, spans, kind, old)) for start, end, twin in pieces]

    def damage(self, target: bytearray) -> list[tuple[int, int, str]]:
        """Exactly the damaged ranges of `target` (differing bytes, bytes one copy lacks),
        as `(start, end, kind)`."""
        found = []
        length = len(target)
        for run in self.runs:
            if run.twin is None:
                found.append((run.start, run.end, run.kind))
                continue
            end = min(run.end, length)
            if end > run.start:
                span = end - run.start
                found.extend(
                    (run.start + a, run.start + b, run.kind)
                    for a, b in differing(target[run.start : end], run.twin[:span])
                )
            if run.end > length:
                found.append((max(run.start, length), run.end, run.kind))
        return found


def fault_kind(change: PendingWrite) -> str | None:
    """The fault that altered `change`, None when none did."""
    return None if change.twin is None else change.kind or UNKNOWN_KIND


def _start(run: Run) -> int:
    return run.start


def _shifted(change: PendingWrite, base: int) -> PendingWrite:
    """`change` as applied to a copy of the file's bytes from `base` on."""
    size = None if change.truncate_to is None else change.truncate_to - base
    return PendingWrite(change.offset - base if size is None else size, change.data, size)


def _label(start: int, end: int, spans: list[tuple[int, int]], kind: str | None, old: list[Run]) -> str:
    """The fault a difference at `[start, end)` is due to: the change's own fault where
    the change touched it, else whatever fault was there before."""
    if kind is not None and any(low < end and start < high for low, high in spans):
        return kind
    for run in old:
        if run.start < end and start < run.end:
            return run.kind
    return kind if kind is not None else UNKNOWN_KIND


@dataclass
class FileLedger:
    """The damage of one file: its page cache (`data`) and durable bytes against the
    twin's, and the changes a failed sync dropped that the twin still has to make."""

    data: Shadow
    durable: Shadow
    dropped: list[PendingWrite] = field(default_factory=list)  # fsync gate: the twin's, not the disk's

    @staticmethod
    def start(data: bytearray, durable: bytearray) -> FileLedger:
        """A ledger for a file that has no damage yet."""
        return FileLedger(Shadow(len(data)), Shadow(len(durable)))

    def sync(self, durable: bytearray, changes: list[PendingWrite]) -> None:
        """A successful sync: the changes reach the durable bytes (lost writes only the
        twin's, and the twin also stores what an earlier failed sync dropped)."""
        for change in self.dropped:
            self.durable.apply(durable, None, change, "fsync_gate")
        self.dropped.clear()
        for change in changes:
            twin = fault_free(change)
            self.durable.apply(
                durable,
                None if change.lost else change,
                None if twin.lost else twin,
                fault_kind(change),
            )

    def crash(self, durable: bytearray, survivors: list[PendingWrite]) -> None:
        """Power loss: the surviving changes (as altered by torn writes and size before
        data) reach the durable bytes, the twin's in their fault-free form; the page
        cache becomes the durable bytes for both."""
        for change in survivors:
            self.durable.apply(durable, change, fault_free(change), fault_kind(change))
        self.dropped.clear()
        self.data = self.durable.copy()

    def clean(self, data: bytearray, durable: bytearray, unsynced: list[PendingWrite]) -> bool:
        """True when the ledger holds nothing (the file may forget it)."""
        return (
            self.data.clean(len(data))
            and self.durable.clean(len(durable))
            and not self.dropped
            and all(change.twin is None for change in unsynced)
        )
