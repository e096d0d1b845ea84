"""Coverage marks: named probes at the store's rare paths.

As FoundationDB's `CODE_PROBE` and TigerBeetle's marks: each rare branch of the store
(a torn tail cut, damage spanning frames, a hint file ignored, a journal replayed, ...)
calls `mark(name)`. A simulation campaign runs inside `recording()` and learns which of
them it reached; a mark that no seed reaches is a blind spot of the harness (a fault, a
workload edge or a crash point it never produces), not of the store.

Off (the normal case, and every real use of the store) `mark` costs one global check.
`MARKS` is the one table of every mark; `tests/test_marks.py` checks that the names at
the call sites in `kv/` are exactly its keys, each used by one call site.

Recording is global to the process and does not nest: one campaign (or one seed) at a
time. A process that runs seeds in parallel records in each worker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

MARKS: dict[str, str] = {
    # log replay (kv.opening): how a bad tail is judged
    "torn_tail_cut": "the newest segment ends in a torn frame: the tail is cut and reported",
    "sealed_tail_torn": "a sealed segment's damaged tail held no records (the next segment continues the lsns)",
    "sealed_tail_damaged": "a sealed segment's damaged tail that no later segment shows harmless: lost",
    "damage_mid_log": "a damaged frame followed by valid frames in the same segment",
    "damage_spanning_frames": "damage at the end of the log spans more than one frame (not a torn write)",
    "damage_misplaced_frame": "a whole frame with a valid CRC in the wrong place at the log's end",
    "damage_where_recorded_durable": "damage before the length the CLEAN marker recorded durable",
    "segment_missing": "a log segment id is missing between two segments",
    "log_start_missing": "the log does not start right after the compacted file (at segment 1 without one)",
    "newest_segment_missing": "the CLEAN marker names a newer segment than any found",
    "segment_lsn_gap": "a log segment does not start with the lsn expected next",
    "frame_segment_start_misplaced": "a frame header whose segment-start flag does not match its offset",
    # compacted file and hint (kv.opening)
    "hint_missing": "a compacted file without its hint file: scanned instead",
    "hint_unreadable": "the hint file read failed with EIO: ignored, the compacted file scanned",
    "hint_damaged": "the hint file fails its checks or does not match its data file: ignored",
    "hint_stale_removed": "a hint file of another compacted file found at open: removed",
    "compacted_file_damaged": "a compacted file with a damaged frame (copied to quarantine, rewritten)",
    # salvage (kv.opening, kv.salvage)
    "salvage_log": "salvage took back the intact frames past damage in the log (copied to quarantine, compacted)",
    "salvage_compacted": "salvage kept every intact record of a damaged compacted file, damaged frames included",
    # leftovers of an interrupted compaction or rewrite, cleaned at open (kv.opening)
    "leftover_temporary_removed": "a .tmp file (a crash mid-install or mid-rewrite) removed at open",
    "leftover_compaction_inputs_removed": "segments or an older compacted file a compaction covers, removed at open",
    # journals and quarantine (kv.opening)
    "journal_repair_replayed": "a pending repair journal of an unfinished earlier repair, reported again",
    "journal_torn_replayed": "a pending torn-tail journal of an unfinished earlier open, reported again",
    "quarantine_written": "recovery moved damaged data into quarantine/",
    # the durable-extent marker (kv.opening, kv.log)
    "clean_marker_missing": "a store with log segments but no CLEAN marker",
    "clean_marker_damaged": "every copy of the CLEAN marker fails its CRC",
    # reads during recovery (kv.opening)
    "read_eio_by_block": "a recovery read failed with EIO (a latent sector error): read again block by block",
    "read_block_unreadable": "a block stayed unreadable: filled and counted as unreadable bytes",
    "read_again_differed": "a damaged file read again gave other bytes (a transient read fault, not damage)",
    # the store (kv.store)
    "read_only_after_failed_sync": "a commit's sync failed: the store went read-only",
    "read_only_after_failed_write": "a commit's write (or open, truncate) failed: the store went read-only",
    "record_read_again": "a record read failed its checks and was read again (or reported as damage)",
    "expired_on_read": "a get found its key expired (past its TTL on io.now()): absent",
    "expired_dropped_by_compaction": "compaction dropped expired records and their keys (no older value returns)",
    "batch_sync_by_operations": "batch mode synced because BATCH_OPERATIONS_MAX operations were pending",
    "batch_sync_by_interval": "batch mode synced because BATCH_INTERVAL_MS_MAX passed since the last sync",
    "batch_sync_by_frame_size": "batch mode synced because the pending frame reached FRAME_PAYLOAD_SIZE_TARGET_BYTES",
}

_hits: Counter[str] | None = None  # while recording: hits per mark


def mark(name: str) -> None:
    """Count one hit of the rare path `name` (a key of `MARKS`) while recording;
    otherwise do nothing."""
    if _hits is not None:
        assert name in MARKS, f"unknown mark {name!r}"
        _hits[name] += 1


@contextmanager
def recording() -> Iterator[Counter[str]]:
    """Count every mark hit inside the block into the yielded counter. Does not nest
    (one recording per process at a time; a nested call is a programmer error)."""
    global _hits
    assert _hits is None, "kv.marks.recording() does not nest"
    hits: Counter[str] = Counter()
    _hits = hits
    try:
        yield hits
    finally:
        _hits = None
