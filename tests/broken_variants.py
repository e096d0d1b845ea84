"""Deliberately broken variants of the store, to prove the simulator has teeth.

Each variant is a context manager that monkeypatches one or two functions or methods
of the real `kv` modules for as long as it is active, so that the store makes one
realistic mistake; its docstring names the real-world bug it models. The patches are in-process:
`scenarios.runner.run_seed` called inside the `with` block drives the broken store.

A patch replaces the name where the caller looks it up (`kv.store.BATCH_INTERVAL_MS_MAX`,
not `kv.limits.BATCH_INTERVAL_MS_MAX`, when `kv.store` is the caller), and is undone on
exit even when the body raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any

import pytest
from crc32c import crc32c

import kv.acl
import kv.compaction
import kv.io
import kv.judge
import kv.opening
import kv.ordered
import kv.plan
import kv.recovery
import kv.session
import kv.store
from kv.commands import COMMANDS, Command, Flag
from kv.errors import IoError, KvError
from kv.group_commit import Deliver, GroupCommit, Received
from kv.judge import LogJudge
from kv.keydir import ListEntry, Location
from kv.limits import FRAME_PAYLOAD_SIZE_TARGET_BYTES
from kv.log import SegmentLog, Written, segment_name
from kv.opening import Recovery
from kv.record import (
    FRAME_FLAG_SEGMENT_START,
    FRAME_HEADER_SIZE,
    KIND_SET,
    KINDS_POP,
    RECORD_CRC,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    FrameHeader,
    Record,
    decode_record,
    encode_frame,
)
from kv.recovery import SegmentScan, TornTail
from kv.replies import Array, ErrorReply, Reply
from kv.session import Session, Tick
from kv.store import Store
from kv.transaction import EXEC_ABORT

Variant = Callable[[], AbstractContextManager[None]]


@contextmanager
def ack_before_sync() -> Iterator[None]:
    """`always` mode acknowledges a write once it is in the page cache, before the fsync.

    Models a store whose write path returns after `write(2)` and leaves the `fsync` to
    the next explicit flush or close (a "durable" mode that is really write-back, as
    when an fsync is made asynchronous or skipped for speed). A power loss then takes
    acknowledged writes with it.
    """
    original_after_append = Store._after_append
    original_commit = Store._commit
    in_write = False

    def after_append(self: Store, keys: list[bytes], values: list[bytes | None]) -> None:
        nonlocal in_write
        in_write = True
        try:
            original_after_append(self, keys, values)
        finally:
            in_write = False

    def commit(self: Store, sync: bool) -> None:
        original_commit(self, sync and not in_write)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_after_append", after_append)
        patch.setattr(Store, "_commit", commit)
        yield


@contextmanager
def skip_frame_crc_on_recovery() -> Iterator[None]:
    """Recovery accepts any frame whose header is plausible and whose bytes are all
    there, without checking its CRC.

    Models a replay loop that trusts structure (magic, version, lengths) instead of the
    checksum, or computes the checksum and forgets to compare it: bit rot in a key, a
    record header or a value is replayed as if it had been written.
    """

    def whole(data: bytes | memoryview, offset: int, header: FrameHeader) -> bool:
        return offset + header.size <= len(data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.recovery, "frame_crc_ok", whole)
        yield


@contextmanager
def no_sync_dir_for_new_segments() -> Iterator[None]:
    """A new segment file's directory entry is never made durable: after creating a
    segment (on a roll, or when opening) the writer fsyncs the file but not its
    directory.

    Models the classic missing `fsync(dirfd)` after `open(O_CREAT)`: the file's data is
    on the platter, but a power loss can forget that the file exists, and with it every
    write acknowledged into it.
    """
    original_plan = kv.plan.plan_log_start  # what kv.opening calls

    def plan_log_start(start: kv.plan.LogStart) -> tuple[list[kv.plan.Action], int, int]:
        actions, segment_id, offset = original_plan(start)
        if start.clean_marker_present and any(isinstance(action, kv.plan.CreateSegment) for action in actions):
            # The open's sync of the directory was only for the segment it created.
            actions = [action for action in actions if not isinstance(action, kv.plan.SyncDirectory)]
        return actions, segment_id, offset

    with pytest.MonkeyPatch.context() as patch:
        # `SegmentLog` asks `directory_dirty` whether a commit must sync the directory:
        # make it always say no (assignments are ignored).
        patch.setattr(SegmentLog, "directory_dirty", property(lambda _self: False, lambda _self, _value: None))
        patch.setattr(kv.opening, "plan_log_start", plan_log_start)  # and opening, once it created one
        yield


@contextmanager
def no_sync_dir_in_compaction() -> Iterator[None]:
    """Compaction never syncs the directory: neither after renaming the compacted file
    into place (its commit point) nor after unlinking the files it replaces.

    Models a compaction that trusts `rename(2)` to be durable on return. A power loss
    may forget the rename; whether that loses data depends on whether the unlinks of
    the replaced files can persist without it.
    """
    original_install = kv.compaction.install
    original_compact = Store.compact
    installed = False  # in the current compaction: every later sync_dir is skipped too

    def install(io: kv.io.Io, directory: str, segment_id: int, output: kv.compaction.CompactionOutput) -> kv.io.File:
        nonlocal installed
        with pytest.MonkeyPatch.context() as inner:
            inner.setattr(io, "sync_dir", _completed_sync_dir)
            file = original_install(io, directory, segment_id, output)
        installed = True
        return file

    def compact(self: Store) -> None:
        nonlocal installed
        real_sync_dir = self.io.sync_dir

        def sync_dir(path: str) -> kv.io.Future[None]:
            return _completed_sync_dir(path) if installed else real_sync_dir(path)

        installed = False
        with pytest.MonkeyPatch.context() as inner:
            inner.setattr(self.io, "sync_dir", sync_dir)
            original_compact(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.compaction, "install", install)
        patch.setattr(Store, "compact", compact)
        yield


def _completed_sync_dir(path: str) -> kv.io.Future[None]:
    return kv.io.Future.completed(None)


@contextmanager
def trust_retried_fsync() -> Iterator[None]:
    """After a failed fsync the writer fsyncs again and, when that succeeds, carries on
    as if the data were durable, instead of going read-only.

    Models the retry-and-trust that PostgreSQL shipped for twenty years (fsyncgate,
    2018): Linux marks the dirty pages clean after reporting the write-back error, so
    the second fsync succeeds with nothing to write, and the acknowledged data exists
    only in the page cache until a power loss.
    """
    original_commit = SegmentLog.commit

    def commit(self: SegmentLog, sync: bool) -> Written | None:
        pending, payload_bytes = self.pending, len(self.payload)
        try:
            return original_commit(self, sync)
        except IoError as error:
            if not sync or error.operation != "sync":
                raise
            if self.pending:  # failed before the frame was issued (sealing the old segment): retry it all
                return original_commit(self, sync)
            written = None
            if pending:  # the frame was written; only its sync failed
                written = Written(self.segment_id, self.write_offset - FRAME_HEADER_SIZE - payload_bytes, pending)
            original_commit(self, sync)  # the retry: nothing is dirty any more, so it "succeeds"
            return written

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SegmentLog, "commit", commit)
        yield


@contextmanager
def corruption_as_torn_tail() -> Iterator[None]:
    """Every corruption recovery finds is reported as a torn tail: the damaged data and
    everything after it in the log are still cut away, but the report says "a crash
    tore the last write", so opening never refuses (`on_corruption="raise"` has nothing
    to raise on) and no caller learns that acknowledged writes were lost.

    Models a replay that takes every checksum failure for a crash-torn tail, the
    tolerate-a-corrupted-tail rule of a write-ahead log applied to mid-log damage too:
    bit rot in the middle of the log silently discards the acknowledged writes after
    it, while the report reads like an ordinary crash.
    """
    original_replay_log = Recovery._replay_log

    def replay_log(self: Recovery, segment_ids: list[int]) -> dict[int, tuple[kv.io.File, int]]:
        kept = original_replay_log(self, segment_ids)
        for corruption in self.report.corruptions:
            stem = corruption.file_name.split(".")[0]
            segment_id = int(stem) if stem.isdigit() else 0
            self.report.torn_tails.append(TornTail(segment_id, corruption.offset, 0, corruption.records_lost))
        self.report.corruptions.clear()
        return kept

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Recovery, "_replay_log", replay_log)
        yield


@contextmanager
def silent_truncation_at_corruption() -> Iterator[None]:
    """Like `corruption_as_torn_tail`, but the truncation is not reported at all.

    Models a replay that stops at the first bad frame and says nothing: mid-log damage
    (and everything after it) vanishes without a trace in the recovery report.
    """
    original_replay_log = Recovery._replay_log

    def replay_log(self: Recovery, segment_ids: list[int]) -> dict[int, tuple[kv.io.File, int]]:
        kept = original_replay_log(self, segment_ids)
        self.report.corruptions.clear()
        self.report.torn_tails.clear()
        return kept

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Recovery, "_replay_log", replay_log)
        yield


@contextmanager
def apply_half_a_frame() -> Iterator[None]:
    """Recovery salvages a damaged frame: it keeps the records at its start that still
    parse and pass their own CRC, and replays them.

    Models a record-at-a-time replay (no frame-level commit marker, or one that is
    ignored) that applies a torn batch up to the tear: after a crash half of a
    `set_many` exists, breaking its all-or-nothing promise.
    """
    original_scan = kv.recovery.scan_segment

    def scan_segment(segment_id: int, data: bytes, compacted: bool = False) -> SegmentScan:
        scan = original_scan(segment_id, data, compacted)
        while scan.bad_offset is not None and (salvaged := _salvageable_prefix(scan, data, compacted)) is not None:
            if data[scan.bad_offset : scan.bad_offset + len(salvaged)] == salvaged:
                break  # nothing to salvage: the frame is whole but out of place
            # Re-frame the records that parse, in memory, and scan again past them.
            data = data[: scan.bad_offset] + salvaged + data[scan.bad_offset + len(salvaged) :]
            scan = original_scan(segment_id, data, compacted)
        return scan

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.recovery, "scan_segment", scan_segment)  # what scan_confirmed calls
        yield


def _salvageable_prefix(scan: SegmentScan, data: bytes, compacted: bool) -> bytes | None:
    """A valid frame holding the leading records of the damaged frame at `bad_offset`
    that still decode and pass their CRC, or None when there are none."""
    header = scan.bad_header
    if compacted or scan.bad_offset is None or header is None or header.segment_id != scan.segment_id:
        return None
    if header.compacted or (scan.last_lsn is not None and header.first_lsn != scan.last_lsn + 1):
        return None
    start = scan.bad_offset + FRAME_HEADER_SIZE
    end = min(len(data), start + header.payload_length)
    position, count = start, 0
    while count < header.count and position + RECORD_HEADER_SIZE <= end:
        _crc, _kind, _flags, key_length, value_length, _lsn, _expiry_ms = RECORD_HEADER.unpack_from(data, position)
        length = RECORD_HEADER_SIZE + key_length + value_length
        record = decode_record(data[position : position + length]) if position + length <= end else None
        if record is None or record.lsn != header.first_lsn + count:
            break
        position, count = position + length, count + 1
    if not count:
        return None
    flags = header.flags & ~FRAME_FLAG_SEGMENT_START | (FRAME_FLAG_SEGMENT_START if scan.bad_offset == 0 else 0)
    return encode_frame(header.segment_id, header.first_lsn, count, data[start:position], flags=flags)


@contextmanager
def set_many_one_at_a_time() -> Iterator[None]:
    """`set_many` writes its pairs one `set` at a time, each its own frame.

    Models a batch API implemented as a loop over single writes (no transaction, no
    single frame): a crash inside the loop leaves part of the batch durable.
    """

    def set_many(self: Store, items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]) -> None:
        for key, value in items.items() if isinstance(items, Mapping) else items:
            self.set(key, value)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "set_many", set_many)
        yield


@contextmanager
def skip_record_crc_on_get() -> Iterator[None]:
    """`get` returns the record's bytes as read, without checking the record CRC (the
    structure, key and lsn checks stay).

    Models a read path that trusts the disk once recovery has validated the log: a bit
    that flips at rest after recovery, or in transit on a read, is returned to the
    caller as the value.
    """

    def decode_unchecked(data: bytes, expected_key: bytes | None = None) -> Record | None:
        restamped = RECORD_CRC.pack(crc32c(memoryview(data)[4:])) + data[4:] if len(data) >= 4 else data
        return decode_record(restamped, expected_key)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.store, "decode_record", decode_unchecked)
        yield


@contextmanager
def flush_without_sync() -> Iterator[None]:
    """In `batch` and `none` modes `flush` writes the pending frame but does not fsync it.

    Models a flush that means "hand it to the OS" (`fflush`, a write-back cache flush)
    where the caller was promised "durable on return": a power loss after `flush`
    returns takes the flushed writes with it.
    """
    original_commit = Store._commit

    def flush(self: Store) -> None:
        self._check_writable()
        original_commit(self, sync=self.durability == "always")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "flush", flush)
        yield


@contextmanager
def batch_without_deadline() -> Iterator[None]:
    """`batch` mode syncs only when a frame fills, never on its operation or time bound.

    Models group commit that waits for a full buffer: under a light load acknowledged
    writes sit unsynced for far longer than the documented `BATCH_INTERVAL_MS_MAX`, and
    a power loss takes all of them.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.store, "BATCH_INTERVAL_MS_MAX", 10**12)
        patch.setattr(kv.store, "BATCH_OPERATIONS_MAX", 10**12)
        yield


@contextmanager
def batch_ignores_time_bound() -> Iterator[None]:
    """`batch` mode honours its operation bound but never its time bound.

    Models a group commit whose timer was never armed: an idle client's acknowledged
    writes stay unsynced past `BATCH_INTERVAL_MS_MAX` until the next burst fills the
    window.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.store, "BATCH_INTERVAL_MS_MAX", 10**12)
        yield


@contextmanager
def batch_ignores_operation_bound() -> Iterator[None]:
    """`batch` mode honours its time bound but never its operation bound.

    Models a group commit that counts time only: a burst of writes faster than the
    interval (no I/O, no virtual time) stays unsynced past `BATCH_OPERATIONS_MAX`.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.store, "BATCH_OPERATIONS_MAX", 10**12)
        yield


@contextmanager
def cache_before_sync() -> Iterator[None]:
    """`always` mode puts a written value in the read cache before its sync succeeds.

    Models a write path that updates its in-memory index first and syncs second, without
    undoing the update when the sync fails: the read-only store then serves a value the
    disk may never hold, and a power loss takes it away after a read returned it.
    """
    original = Store._after_append

    def after_append(self: Store, keys: list[bytes], values: list[bytes | None]) -> None:
        if self.durability == "always":
            for key, value in zip(keys, values, strict=True):
                self._cache_put(key, value)
        original(self, keys, values)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_after_append", after_append)
        yield


@contextmanager
def torn_tail_as_corruption() -> Iterator[None]:
    """Recovery reports every torn tail (an unacknowledged write cut by a crash) as
    corruption: a false alarm that sends every crash into repair.

    Models a recovery that cannot tell an incomplete last write from media damage
    (RocksDB's `kAbsoluteConsistency` applied to the tail of the WAL).
    """
    original = LogJudge._torn

    def torn(self: LogJudge, segment_id: int, offset: int, records: int, size: int) -> None:
        original(self, segment_id, offset, records, size)
        tail = self.report.torn_tails.pop()
        self.report.corruptions.append(kv.recovery.Corruption(segment_name(segment_id), tail.offset, "torn tail"))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LogJudge, "_torn", torn)
        yield


@contextmanager
def quarantine_reported_not_kept() -> Iterator[None]:
    """Repair reports what it moved to `quarantine/`, but deletes it instead.

    Models a repair that promises the damaged data is kept for forensics and throws it
    away (an unlink where a rename was meant, a copy that was never written).
    """
    original_move = Recovery._quarantine
    original_copy = Recovery._copy_tail

    def copy_tail(self: Recovery, source: str, offset: int | None, target: str) -> None:
        original_copy(self, source, offset, target)
        self.io.unlink(target).result()

    def move(self: Recovery, action: kv.plan.Quarantine) -> None:
        rename = self.io.rename

        def unlink_instead(source: str, destination: str) -> kv.io.Future[None]:
            return self.io.unlink(source)

        self.io.rename = unlink_instead  # type: ignore[method-assign]
        try:
            original_move(self, action)
        finally:
            self.io.rename = rename  # type: ignore[method-assign]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Recovery, "_copy_tail", copy_tail)
        patch.setattr(Recovery, "_quarantine", move)
        yield


@contextmanager
def no_lock() -> Iterator[None]:
    """The store takes no lock: two writers can open the same directory.

    Models a lock taken on the wrong path (or an advisory lock never checked): two
    processes append to one log and each overwrites the other's frames.
    """
    original_open = Store._open

    def open_unlocked(self: Store, on_corruption: kv.opening.OnCorruption) -> None:
        lock = self.io.lock
        self.io.lock = lambda path: self.io.open(path, "w")  # type: ignore[method-assign]
        try:
            original_open(self, on_corruption)
        finally:
            self.io.lock = lock  # type: ignore[method-assign]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_open", open_unlocked)
        yield


@contextmanager
def untyped_error_on_failed_sync() -> Iterator[None]:
    """A failed sync escapes as a bare `OSError` instead of the store's `IoError`.

    Models an error path that forgets to translate the backend's error: callers that
    catch the documented `KvError` crash instead of going read-only.
    """
    original_commit = SegmentLog.commit

    def commit(self: SegmentLog, sync: bool) -> Written | None:
        try:
            return original_commit(self, sync)
        except IoError as error:
            raise OSError(error.errno, str(error)) from None

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SegmentLog, "commit", commit)
        yield


@contextmanager
def report_no_records_lost() -> Iterator[None]:
    """Recovery reports the corruption it found but says no record was lost.

    Models a report that names the damage but not its cost: an operator reads "0
    records lost" and trusts a store that dropped acknowledged writes.
    """
    original_run = Recovery._run

    def run(self: Recovery) -> None:
        original_run(self)
        self.report.corruptions[:] = [replace(c, records_lost=0, lsn_first_lost=None) for c in self.report.corruptions]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Recovery, "_run", run)
        yield


@contextmanager
def verify_checks_frames_only() -> Iterator[None]:
    """`verify()` checks the frames of the newest segment only: not the sealed segments,
    not the compacted file, not the live records one by one.

    Models a scrubber that trusts what was checked when it was written and rereads only
    recent writes: damage at rest in older files goes unreported, and a user told "ok"
    learns of it when a read fails.
    """
    original = Store.verify

    def verify(self: Store) -> kv.store.VerifyReport:
        keydir, self._keydir = self._keydir, {}
        compacted, self._compacted_file = self._compacted_file, None
        log = self._log
        sealed = dict(log.sealed) if log is not None else {}
        if log is not None:
            log.sealed.clear()
        try:
            return original(self)
        finally:
            self._keydir, self._compacted_file = keydir, compacted
            if log is not None:
                log.sealed.update(sealed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "verify", verify)
        yield


@contextmanager
def settle_journals_inside_open() -> Iterator[None]:
    """Recovery settles its journals at the end of the open itself (the torn-tail journal
    unlinked, repair journals marked reported, the quarantine directory synced), before
    the open has returned its report to the caller.

    Models a recovery that deletes its intent journal as the last step of recovering
    ("done, clean up") instead of after the caller has seen the report: a power loss in
    the open's last I/Os keeps the removal but loses the report, so the next open finds
    a tail already cut, no journal, and reports nothing. The window is one or two I/Os at
    the very end of an open.
    """
    original_run = Recovery._run

    def run(self: Recovery) -> None:
        original_run(self)
        self.settle_journals()
        self.journals.clear()
        self.journal_debris.clear()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Recovery, "_run", run)
        yield


@contextmanager
def verify_drops_old_damage() -> Iterator[None]:
    """`verify()` reads every file but reports damage only in the newest segment.

    Models a scrubber that filters its findings ("older files were checked when they
    were written"): it reads the damaged sealed segment or compacted file and says ok.
    """
    original = Store.verify

    def verify(self: Store) -> kv.store.VerifyReport:
        report = original(self)
        newest = self._log.file.path if self._log is not None else None
        report.problems = [problem for problem in report.problems if newest is not None and newest in problem]
        report.damaged_files = [path for path in report.damaged_files if path == newest]
        return report

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "verify", verify)
        yield


@contextmanager
def getdel_before_sync() -> Iterator[None]:
    """A getdel's delete is staged, not committed: the value comes back to the caller at
    once and the delete rides on the next write's sync.

    Models a fetch-and-remove built from a read and a buffered delete (a queue's "pop"
    acknowledged before its removal is durable): after a power loss the key, which the
    caller took, is still there and is handed out again.
    """
    original_getdel = Store.getdel

    def getdel(self: Store, key: bytes | str) -> bytes | None:
        if self.durability != "always":
            return original_getdel(self, key)
        durability, self.durability = self.durability, "none"
        try:
            return original_getdel(self, key)
        finally:
            self.durability = durability

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "getdel", getdel)
        yield


@contextmanager
def conditional_set_checks_the_cache() -> Iterator[None]:
    """Only-if-missing and only-if-present ask the read cache whether the key exists,
    not the index: a key that is live but not cached counts as missing.

    Models a conditional write whose existence check consults a partial structure (a
    cache, a bloom filter read the wrong way round): SET NX overwrites live keys and
    SET XX refuses to update them.
    """

    def set_if(self: Store, key: bytes | str, value: bytes | str, if_missing: bool, if_present: bool) -> bool:
        key_bytes = key if isinstance(key, bytes) else key.encode()
        present = key_bytes in self._cache or self._staged.get(key_bytes) is not None
        if present != if_present:
            return False
        return self.set(key_bytes, value)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_set_if", set_if)
        yield


@contextmanager
def salvage_returns_stale_value() -> Iterator[None]:
    """Salvage keeps every intact frame past the damage, but does not say which kept
    keys may hold an older value than one it lost: a key whose newest record was in the
    damaged frame comes back with the value before it, and the report names only the
    lsns lost.

    Models RocksDB's `kSkipAnyCorruptedRecords` taken at its word: the records that
    pass their checks are replayed and the corrupted ones skipped, so an older value of
    a key resurfaces where its newer one was destroyed, and nothing tells the caller.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.opening, "keys_at_risk", lambda _keydir, _lsn_lost_max: ())
        yield


@contextmanager
def clean_marker_not_moved_at_roll() -> Iterator[None]:
    """The CLEAN marker is rewritten only at open and close, not when the log rolls to a
    new segment: it keeps naming an older segment while writes go to newer ones.

    Models a store whose manifest (here, the marker naming the newest segment) lags
    behind its files, as RocksDB's WAL tracking does when off: when the file system
    loses the newest segment's directory entry, nothing says it ever existed, and the
    acknowledged writes in it vanish without a report.
    """
    original_roll = SegmentLog.roll

    def roll(self: SegmentLog) -> None:
        original_roll(self)
        self.marker_stale = False

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SegmentLog, "roll", roll)
        yield


@contextmanager
def marker_trusted_from_page_cache() -> Iterator[None]:
    """An open skips rewriting the CLEAN marker when the one it read already names the
    newest segment and its length.

    Models fsyncgate on a manifest: the marker read back may be one whose own sync
    failed (a close or an open that failed there), held only in the page cache. A crash
    brings the older marker back, and damage to frames it does not cover is then cut as
    a torn tail: acknowledged writes lost, reported as unacknowledged.
    """
    original = kv.plan.plan_log_start

    def plan_log_start(start: kv.plan.LogStart) -> tuple[list[kv.plan.Action], int, int]:
        actions, segment_id, offset = original(start)
        if start.clean_marker == (segment_id, offset):
            actions = [action for action in actions if not isinstance(action, kv.plan.WriteMarker)]
        return actions, segment_id, offset

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.opening, "plan_log_start", plan_log_start)
        yield


def _older_unexpired_record(store: Store, key: bytes, lsn: int, now_ms: int) -> kv.recovery.Location | None:
    """The newest record of `key` older than `lsn` that is a SET not expired at
    `now_ms`, in the store's sealed segments and compacted file (what a merge that
    filters expired records before choosing the newest finds)."""
    log = store._log
    assert log is not None
    files = [(segment_id, file, False) for segment_id, file in log.sealed.items()]
    if store._compacted_file is not None:
        files.append((store._compacted_id, store._compacted_file, True))
    best: kv.recovery.Location | None = None
    for segment_id, file, compacted in files:
        data = kv.io.read_exact(store.io, file, 0, store.io.size(file).result())
        scan = kv.recovery.scan_segment(segment_id, data, compacted)
        for offset, header in scan.frames:
            position = offset + FRAME_HEADER_SIZE
            for _ in range(header.count):
                _crc, kind, _flags, key_length, value_length, record_lsn, expiry_ms = RECORD_HEADER.unpack_from(
                    data, position
                )
                length = RECORD_HEADER_SIZE + key_length + value_length
                name = data[position + RECORD_HEADER_SIZE : position + RECORD_HEADER_SIZE + key_length]
                fresh = not expiry_ms or now_ms <= expiry_ms
                newest = best is None or record_lsn > best[3]
                if name == key and kind == KIND_SET and record_lsn < lsn and fresh and newest:
                    best = (-segment_id if compacted else segment_id, position, length, record_lsn, expiry_ms)
                position += length
    return best


@contextmanager
def compaction_lets_an_older_value_win() -> Iterator[None]:
    """Compaction filters out expired records before it picks each key's newest record,
    so a key whose newest record expired gets its previous, unexpired value back.

    Models a merge written as "drop what is expired, then keep the newest of what is
    left" (Bitcask merges and LSM compaction filters have shipped this order): an
    expired key comes back with an older value after the merge, and after any crash.
    """
    original_compact = Store.compact

    def compact(self: Store) -> None:
        now_ms = self._now_ms()
        for key, expiry_ms in list(self._expiring.items()):
            location = self._keydir[key]
            assert not isinstance(location, ListEntry)  # lists do not expire
            if now_ms > expiry_ms and location[0] != (self._log.segment_id if self._log else 0):
                older = _older_unexpired_record(self, key, location[3], now_ms)
                if older is not None:
                    self._keydir[key] = older
                    self._cache_drop(key)
                    if older[4]:
                        self._expiring[key] = older[4]
                    else:
                        del self._expiring[key]
        original_compact(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "compact", compact)
        yield


@contextmanager
def expiry_lost_on_replay() -> Iterator[None]:
    """Recovery builds keydir entries without the records' expiry (from the log and from
    the hint file): after a reopen or a crash every key lives forever.

    Models a replay that decodes the header fields it needs for locating values and
    drops the rest (an index rebuilt from a format whose TTL field came later): expired
    keys come back after a restart, and TTLs stop counting.
    """
    original_apply_frames = kv.recovery.apply_frames  # opening and the judge call it by their own names
    original_decode_hint = kv.compaction.decode_hint

    def apply_frames(
        data: bytes, frames: list[tuple[int, FrameHeader]], keydir: kv.recovery.Keydir, file_key: int
    ) -> tuple[int, int]:
        result = original_apply_frames(data, frames, keydir, file_key)
        for key, location in keydir.items():
            if not isinstance(location, ListEntry) and location[4] and location[0] == file_key:
                keydir[key] = (*location[:4], 0)
        return result

    def decode_hint(data: bytes, segment_id: int, data_length: int) -> list[kv.compaction.HintEntry] | None:
        entries = original_decode_hint(data, segment_id, data_length)
        return None if entries is None else [(*entry[:4], 0, entry[5]) for entry in entries]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.opening, "apply_frames", apply_frames)  # the compacted file
        patch.setattr(kv.judge, "apply_frames", apply_frames)  # the log
        patch.setattr(kv.compaction, "decode_hint", decode_hint)
        patch.setattr(kv.opening, "decode_hint", decode_hint)  # opening's own name for it
        yield


@contextmanager
def ttl_from_the_clock_at_open() -> Iterator[None]:
    """TTLs and expiry are measured from the clock read once when the store opened, not
    from `io.now()` at each call.

    Models a store that caches "now" (at open, or per connection) instead of asking the
    one clock: TTLs count from the wrong moment, and keys do not expire until the next
    reopen.
    """
    opened_at: dict[int, int] = {}
    original_open = Store._open

    def _open(self: Store, on_corruption: kv.opening.OnCorruption) -> None:
        opened_at[id(self)] = round(self.io.now() * 1_000_000) // 1000
        original_open(self, on_corruption)

    def now_ms(self: Store) -> int:
        return opened_at.get(id(self), 0)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_open", _open)
        patch.setattr(Store, "_now_ms", now_ms)
        yield


@contextmanager
def pop_acknowledged_before_sync() -> Iterator[None]:
    """A pop's frame is written but not synced before the element is handed out.

    Models a queue whose consumer path returns as soon as the removal is in the page
    cache (the fsync left to a later write): after a power loss the element, which a
    consumer already took, is still in the queue and is handed out again.
    """
    original_commit_list_write = Store._commit_list_write

    def commit_list_write(self: Store, key: bytes) -> None:
        log = self._log
        assert log is not None
        if not log.pending or log.pending[-1].kind not in KINDS_POP:
            original_commit_list_write(self, key)
            return
        self._cache_drop(key)
        self._commit(sync=False)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_commit_list_write", commit_list_write)
        yield


@contextmanager
def batch_split_across_frames() -> Iterator[None]:
    """A batch of several records is committed as two frames: its first half, then the
    rest, each committed as the durability mode commits a write.

    Models a transaction whose commit is a loop of group commits (a write batch flushed
    whenever a buffer fills, a "multi" applied in chunks): a crash between the two
    frames leaves half of the batch durable, which no caller can tell from a whole one.
    """
    original_write_batch = Store._write_batch

    def write_batch(self: Store, records: list[tuple[bytes, bytes | None, int]]) -> None:
        half = len(records) // 2
        if not half:
            original_write_batch(self, records)
            return
        original_write_batch(self, records[:half])
        self._commit(sync=False)  # the first half's frame ends here, in every mode
        original_write_batch(self, records[half:])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_write_batch", write_batch)
        yield


@contextmanager
def push_split_across_frames() -> Iterator[None]:
    """A push of several elements is written as one frame per element.

    Models a list append built as a loop of single appends: a crash between two of
    them leaves the push half done, some elements in the list and the rest gone.
    """
    original_push = Store._push

    def push(self: Store, kind: int, key: bytes | str, values: tuple[bytes | str, ...]) -> int:
        length = 0
        for value in values:
            length = original_push(self, kind, key, (value,))
        return length if values else original_push(self, kind, key, values)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_push", push)
        yield


@contextmanager
def scan_skips_last_key() -> Iterator[None]:
    """`scan` leaves out the last key of its range (when no limit stopped it first).

    Models an off-by-one at a range's end (the end bound taken as the last key to return
    and then compared exclusively, or a loop that stops one early): the last user of a
    page, the newest entry of a time range, silently vanishes from every listing.
    """
    original_scan = Store._scan

    def scan(
        self: Store, low: bytes | None, high: bytes | None, reverse: bool, limit: int | None
    ) -> Iterator[tuple[bytes, bytes]]:
        pairs = list(original_scan(self, low, high, reverse, None))
        yield from pairs[:-1][:limit]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_scan", scan)
        yield


@contextmanager
def compaction_reorders_lists() -> Iterator[None]:
    """Compaction writes each list's push records head to tail, as the list reads,
    instead of in lsn order.

    Models a rewrite that walks each list from its head and keeps each element's record
    as it is: replaying them (a left push goes in front) reverses every run of left
    pushes, so the queue comes back in another order after a compaction.
    """
    original_compact = Store.compact

    def in_list_order(items: Iterable[tuple[bytes, Location]], key: object = None) -> list[object]:
        return list(items)  # the keydir's order, each list head to tail

    def compact(self: Store) -> None:
        with pytest.MonkeyPatch.context() as inner:
            inner.setattr(kv.store, "sorted", in_list_order, raising=False)  # only compact's own sort
            original_compact(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "compact", compact)
        yield


@contextmanager
def cursor_skips_the_key_after_a_step() -> Iterator[None]:
    """A cursor scan's cursor names the first key a step did not return (the one it
    looked at before stopping), and the next step resumes past it.

    Models a cursor that records "where the scan got to" instead of "the last key
    handed out": one key at every step boundary is never returned, and a client that
    pages through a keyspace (a migration, a backup) misses it.
    """
    original_scan_cursor = Store.scan_cursor

    def scan_cursor(self: Store, cursor: int = 0, count: int = 10) -> tuple[int, list[bytes]]:
        next_cursor, keys = original_scan_cursor(self, cursor, count)
        resume = kv.ordered.Cursor.decode(next_cursor)
        if resume is not None and not resume.whole_prefix:
            following = [key for key in self.keys() if key > resume.key]
            if following:
                next_cursor = kv.ordered.Cursor.after(following[0]).encode()
        return next_cursor, keys

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "scan_cursor", scan_cursor)
        yield


@contextmanager
def none_mode_full_frames_unsynced() -> Iterator[None]:
    """`none` mode writes each full frame without a sync (this store until it was found).

    Models a write-back mode that leaves every sync to the caller's flush: a power loss
    may keep a later frame and lose an earlier one, and the hole between them reads as
    mid-log damage, so the store refuses to open (or, repaired, drops what follows).
    """
    original_commit = Store._commit

    def commit(self: Store, sync: bool) -> None:
        log = self._log
        full = log is not None and log.pending_bytes >= FRAME_PAYLOAD_SIZE_TARGET_BYTES
        original_commit(self, sync and not (self.durability == "none" and full))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "_commit", commit)
        yield


@contextmanager
def read_only_recovery_writes() -> Iterator[None]:
    """A read-only open skips the lock and refuses writes, but its recovery still
    changes the disk as a writable open's does (the newest segment rewritten or sealed
    and a new one started, the CLEAN marker rewritten, the directory synced).

    Models a "read-only" mode bolted onto the front of an unchanged recovery: a reader
    beside a live writer rewrites files under it, and a reader of a damaged or
    write-protected volume fails or makes things worse.
    """

    original_init = Recovery.__init__

    def init(self: Recovery, *arguments: Any, **options: Any) -> None:
        original_init(self, *arguments, **options)
        self.read_only = False  # the recovery of a writable open: plan, apply, a writer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Recovery, "__init__", init)
        yield


@contextmanager
def server_reply_before_sync() -> Iterator[None]:
    """The group commit sends each waiting session's replies, then flushes the window.

    Models a server that writes its replies to the sockets as soon as the commands ran
    and leaves the fsync to run after them (a reply handler that does not wait for the
    commit): a power loss during the flush takes writes whose OK the client has.
    """

    def commit(self: GroupCommit, deliver: Deliver) -> None:
        waiting, self.waiting = self.waiting, {}
        self.failure = None
        for session, close in waiting.items():
            deliver(session, session.take_replies(True), close)
        if self.flushes and waiting:
            try:
                self.store.flush()
                self.syncs += 1
            except KvError as error:
                self.failure = error

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GroupCommit, "commit", commit)
        yield


@contextmanager
def server_acks_failed_sync() -> Iterator[None]:
    """A group commit whose flush failed still delivers the window's real replies.

    Models fsyncgate in a server: the sync error is logged (or retried) and the clients
    get their OK anyway, though nothing of the window is durable and the store is
    read-only after it.
    """
    original_take_replies = Session.take_replies

    def take_replies(self: Session, durable: bool, failure: str = "") -> list[Reply]:
        return original_take_replies(self, True)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "take_replies", take_replies)
        yield


@contextmanager
def server_read_skips_the_window() -> Iterator[None]:
    """A session that ran only reads is answered at once, even while a window is open.

    Models a server that treats reads as needing no sync: a read that saw another
    client's write of the open window is answered before the write is durable, so a
    crash during the flush takes away data a client has read.
    """
    original_received = GroupCommit.received

    def received(self: GroupCommit, session: Session, tick: Tick) -> Received:
        if not tick.wrote and session not in self.waiting:
            return "now"
        return original_received(self, session, tick)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(GroupCommit, "received", received)
        yield


@contextmanager
def server_runs_refused_command() -> Iterator[None]:
    """A command the user's ACL refuses still runs; only its reply is the NOPERM.

    Models a permission check applied to the reply instead of guarding the call (a
    handler that runs first and a middleware that filters what it answered): the client
    is told no, and the write it was refused lands anyway.
    """
    original_run = Session._run

    def run(self: Session, argv: list[bytes], tick: Tick) -> None:
        before = len(self._replies)
        original_run(self, argv, tick)
        reply = self._replies[before] if len(self._replies) > before else None
        if isinstance(reply, ErrorReply) and reply.prefix == "NOPERM" and not self.transaction.active:
            command = COMMANDS.resolve(argv)
            if isinstance(command, Command):
                COMMANDS.run(self.store, command, argv)
                tick.wrote = tick.wrote or Flag.WRITE in command.flags

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "_run", run)
        yield


@contextmanager
def server_acl_checks_first_key_only() -> Iterator[None]:
    """The ACL's key check looks at a command's first key only.

    Models a permission check written for single-key commands (`argv[1]`) and never
    taught the key positions of multi-key ones: an MSET whose first key the user may
    touch writes every other key too.
    """

    def keys(command: Command, argv: Sequence[bytes]) -> Sequence[bytes]:
        return argv[command.first_key : command.first_key + 1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kv.acl, "_keys", keys)
        yield


@contextmanager
def server_exec_commits_each_command() -> Iterator[None]:
    """EXEC makes each queued write durable on its own (a flush after every command
    that wrote) instead of leaving the window's one flush to cover them all.

    Models an EXEC built on the path a single command takes in `always` mode (run,
    then sync): each write is durable before the next runs, so a power loss in the
    middle of EXEC keeps its first writes and loses the rest.
    """
    original_exec = Session._exec

    def exec_(self: Session, arguments: list[bytes], tick: Tick) -> Reply:
        if not self.transaction.active:
            return original_exec(self, arguments, tick)  # the error, as the real one replies
        queued, doomed = self.transaction.end()
        if doomed:
            return EXEC_ABORT
        replies: list[Reply] = []
        for argv in queued:
            target = self._admit(argv[0].lower(), argv)
            replies.append(target if isinstance(target, ErrorReply) else self._call(target, argv, tick))
            if isinstance(target, Command) and Flag.WRITE in target.flags:
                self.store.flush()
        return Array(tuple(replies))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "_exec", exec_)
        patch.setitem(kv.session._CONNECTION_COMMANDS, b"exec", exec_)  # the session dispatches here
        yield


@contextmanager
def server_exec_not_held() -> Iterator[None]:
    """`Store.holding()` holds nothing: the buffered store's bounds commit a frame in
    the middle of an EXEC (the store before it had the method).

    Models an EXEC that runs its commands as separate writes of the buffered store: a
    write that brings the pending frame to FRAME_PAYLOAD_SIZE_TARGET_BYTES (the
    window's other writes may have filled most of it) writes and syncs that frame
    there, so a power loss before the window's flush keeps EXEC's first writes and
    loses the rest.
    """

    @contextmanager
    def holding(self: Store, operations: int = 0) -> Iterator[None]:
        yield

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Store, "holding", holding)
        yield


VARIANTS: dict[str, Variant] = {
    "ack_before_sync": ack_before_sync,
    "skip_frame_crc_on_recovery": skip_frame_crc_on_recovery,
    "no_sync_dir_for_new_segments": no_sync_dir_for_new_segments,
    "no_sync_dir_in_compaction": no_sync_dir_in_compaction,
    "trust_retried_fsync": trust_retried_fsync,
    "corruption_as_torn_tail": corruption_as_torn_tail,
    "silent_truncation_at_corruption": silent_truncation_at_corruption,
    "apply_half_a_frame": apply_half_a_frame,
    "set_many_one_at_a_time": set_many_one_at_a_time,
    "skip_record_crc_on_get": skip_record_crc_on_get,
    "flush_without_sync": flush_without_sync,
    "batch_without_deadline": batch_without_deadline,
    "batch_ignores_time_bound": batch_ignores_time_bound,
    "batch_ignores_operation_bound": batch_ignores_operation_bound,
    "cache_before_sync": cache_before_sync,
    "torn_tail_as_corruption": torn_tail_as_corruption,
    "quarantine_reported_not_kept": quarantine_reported_not_kept,
    "no_lock": no_lock,
    "untyped_error_on_failed_sync": untyped_error_on_failed_sync,
    "report_no_records_lost": report_no_records_lost,
    "verify_checks_frames_only": verify_checks_frames_only,
    "verify_drops_old_damage": verify_drops_old_damage,
    "settle_journals_inside_open": settle_journals_inside_open,
    "getdel_before_sync": getdel_before_sync,
    "conditional_set_checks_the_cache": conditional_set_checks_the_cache,
    "clean_marker_not_moved_at_roll": clean_marker_not_moved_at_roll,
    "marker_trusted_from_page_cache": marker_trusted_from_page_cache,
    "salvage_returns_stale_value": salvage_returns_stale_value,
    "compaction_lets_an_older_value_win": compaction_lets_an_older_value_win,
    "expiry_lost_on_replay": expiry_lost_on_replay,
    "ttl_from_the_clock_at_open": ttl_from_the_clock_at_open,
    "pop_acknowledged_before_sync": pop_acknowledged_before_sync,
    "push_split_across_frames": push_split_across_frames,
    "compaction_reorders_lists": compaction_reorders_lists,
    "none_mode_full_frames_unsynced": none_mode_full_frames_unsynced,
    "batch_split_across_frames": batch_split_across_frames,
    "scan_skips_last_key": scan_skips_last_key,
    "cursor_skips_the_key_after_a_step": cursor_skips_the_key_after_a_step,
    "read_only_recovery_writes": read_only_recovery_writes,
    "server_reply_before_sync": server_reply_before_sync,
    "server_acks_failed_sync": server_acks_failed_sync,
    "server_read_skips_the_window": server_read_skips_the_window,
    "server_runs_refused_command": server_runs_refused_command,
    "server_exec_commits_each_command": server_exec_commits_each_command,
    "server_exec_not_held": server_exec_not_held,
    "server_acl_checks_first_key_only": server_acl_checks_first_key_only,
}

__all__ = ["VARIANTS", "Variant", *VARIANTS]
