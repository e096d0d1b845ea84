"""The plan of opening: what the judge decided, as the list of disk actions that carry
it out, in the order they must happen. Pure: built before any change, then applied one
action at a time by `kv.opening` (the rules cited are numbered there).

Some actions resolve details only the disk can tell when they run (the serial numbers
free in `quarantine/`, whether a rewritten segment still scans clean); none decides
anything the plan did not.
"""

from __future__ import annotations

from dataclasses import dataclass

from kv.files import compacted_name, segment_name
from kv.recovery import TornTail


@dataclass(frozen=True)
class WriteTornJournal:
    """Record durably the torn tails about to be cut (rule 8), in `quarantine/`."""

    tails: tuple[TornTail, ...]


@dataclass(frozen=True)
class Truncate:
    """Cut a torn tail off a kept segment, and sync (rule 4)."""

    segment_id: int
    offset: int


@dataclass(frozen=True)
class WriteRepairJournal:
    """Record durably what this repair loses, before anything moves (rule 8)."""

    text: bytes


@dataclass(frozen=True)
class Quarantine:
    """Move damaged data aside (rule 10): from offset 0 the file moves; from an offset
    its tail is copied and cut; None copies the whole file and leaves it (a damaged
    compacted file, rewritten by a compaction once the store is open, rule 12)."""

    name: str
    offset: int | None


@dataclass(frozen=True)
class FinishQuarantine:
    """Make the moves durable: sync `quarantine/`, then the store directory (rule 1)."""


@dataclass(frozen=True)
class Remove:
    """Unlink a file a finished compaction or write made obsolete (rule 11)."""

    name: str


@dataclass(frozen=True)
class SyncDirectory:
    """Sync the store directory: every entry opening trusts is durable (rule 1)."""


@dataclass(frozen=True)
class MakeDurable:
    """Rewrite the bytes read back of the newest segment into a fresh file renamed over
    it, unless they no longer scan clean (rule 2)."""

    segment_id: int
    length: int


@dataclass(frozen=True)
class Seal:
    """Cut a kept segment that the log will not continue at its last frame, and sync, so
    zeros at its end read as damage from now on (rule 5)."""

    segment_id: int
    length: int


@dataclass(frozen=True)
class CreateSegment:
    """Create the segment the log continues in (its entry made durable later, rule 1)."""

    segment_id: int


@dataclass(frozen=True)
class WriteMarker:
    """Record how far the newest segment is durable now (rule 3)."""

    segment_id: int
    length: int


Action = (
    WriteTornJournal
    | Truncate
    | WriteRepairJournal
    | Quarantine
    | FinishQuarantine
    | Remove
    | SyncDirectory
    | MakeDurable
    | Seal
    | CreateSegment
    | WriteMarker
)


@dataclass(frozen=True)
class Verdict:
    """What the judge decided, as the plan needs it."""

    torn: tuple[TornTail, ...]  # the torn tails this open found (not re-reported ones)
    truncations: tuple[tuple[int, int], ...]  # (segment id, offset)
    quarantine: tuple[tuple[int, int], ...]  # (segment id, offset): 0 moves the whole file
    compacted_damaged: int  # the id of a damaged compacted file to copy aside, else 0
    repair_journal: bytes  # what the repair loses (only written when something moves)
    obsolete: tuple[str, ...]
    # salvage: segments copied whole into quarantine and left in place (their intact
    # frames stay live until the compaction after the open rewrites them, rule 10)
    copies: tuple[int, ...] = ()


@dataclass(frozen=True)
class LogStart:
    """Where the log goes on: the kept segments, the writable one, the clean marker."""

    kept: dict[int, int]  # segment id -> kept length, in id order
    writable: int  # the id of the segment opened for writing (the newest scanned), else 0
    covered: int  # the compacted file's id, else 0
    segment_size_target_bytes: int
    clean_marker: tuple[int, int] | None
    clean_marker_present: bool


def plan_changes(verdict: Verdict) -> list[Action]:
    """Journal, cut, quarantine, remove, sync: the order of rules 8, 4, 10, 11, 1.
    Whole files move newest first and the damaged file is cut last (rule 10): if a step
    fails, the damage that caused the repair is still there for the next open."""
    actions: list[Action] = []
    if verdict.truncations:
        actions.append(WriteTornJournal(verdict.torn))
    actions += [Truncate(segment_id, offset) for segment_id, offset in verdict.truncations]
    if verdict.quarantine or verdict.compacted_damaged or verdict.copies or verdict.repair_journal:
        # (a journal alone: a loss with nothing to move, a file the directory lost)
        actions.append(WriteRepairJournal(verdict.repair_journal))
        order = sorted(verdict.quarantine, key=lambda item: (item[1] != 0, -item[0]))
        actions += [Quarantine(segment_name(segment_id), offset) for segment_id, offset in order]
        actions += [Quarantine(segment_name(segment_id), None) for segment_id in verdict.copies]
        if verdict.compacted_damaged:
            actions.append(Quarantine(compacted_name(verdict.compacted_damaged), None))
        actions.append(FinishQuarantine())
    actions += [Remove(name) for name in verdict.obsolete]
    actions.append(SyncDirectory())
    return actions


def live_segments(kept: dict[int, int], quarantine: tuple[tuple[int, int], ...]) -> dict[int, int]:
    """The kept segments that stay in the store (not moved whole to quarantine)."""
    moved = {segment_id for segment_id, offset in quarantine if offset == 0}
    return {segment_id: length for segment_id, length in kept.items() if segment_id not in moved}


def plan_log_start(start: LogStart) -> tuple[list[Action], int, int]:
    """The actions that make the kept log durable and ready to append to, and where the
    writer starts: (actions, segment id, write offset). The newest kept segment is
    continued when it is writable and has room; else it is sealed and a new one made."""
    actions: list[Action] = []
    newest = max(start.kept, default=0)
    length = start.kept.get(newest, 0)
    if newest and length and start.clean_marker != (newest, length):
        actions.append(MakeDurable(newest, length))
    if newest and newest == start.writable and length < start.segment_size_target_bytes:
        segment_id, offset, created = newest, length, False
    else:
        if newest:
            actions.append(Seal(newest, length))
        segment_id, offset, created = max(newest, start.covered) + 1, 0, True
        actions.append(CreateSegment(segment_id))
    if created:
        # The marker will name a segment this open created: its entry is durable first
        # (rule 1), or a crash could leave the marker naming a segment that never was,
        # which reads as a lost newest segment (rule 3).
        actions.append(SyncDirectory())
    # Written and synced even when the marker read says so already: it may have been
    # read from the page cache after its own sync failed (rule 2: a failed close or open
    # leaves a marker no sync stored, and a crash brings the older one back; found by
    # the state machine: two acknowledged frames cut as torn tails under that older one).
    actions.append(WriteMarker(segment_id, offset))
    if not start.clean_marker_present:  # the marker's own entry (rule 1)
        actions.append(SyncDirectory())
    return actions, segment_id, offset
