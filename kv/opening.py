"""Opening a store: the I/O side of recovery.

`Recovery` lists the directory, loads the newest compacted file (through its hint when
the hint is intact), replays the log segments with the pure functions of
`kv.recovery`, decides torn tail versus corruption, and only then changes the disk:
truncates torn tails, moves damaged data into `quarantine/` (when repairing), removes
files made obsolete by a compaction, and starts the segment writer.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import Literal

from kv import compaction
from kv.errors import CorruptionDetected, IoError
from kv.io import File, Io, OpenMode, close_quietly, read_exact
from kv.limits import DIRECTORY_ENTRIES_MAX, READ_RETRIES_MAX, SEGMENT_PREALLOCATION_BYTES, SEGMENT_SIZE_MAX_BYTES
from kv.log import (
    CLEAN_MARKER_NAME,
    SEGMENT_SUFFIX,
    SegmentLog,
    decode_clean_marker,
    segment_name,
    write_clean_marker,
)
from kv.marks import mark
from kv.record import FrameHeader, frame_crc_ok
from kv.recovery import (
    Corruption,
    Keydir,
    RecoveryReport,
    SegmentScan,
    TornTail,
    apply_frames,
    frames_in_damaged_tail,
    scan_confirmed,
)

OnCorruption = Literal["raise", "repair"]
# A read that fails with EIO is retried this many bytes at a time (a disk sector), so
# one bad sector costs one sector, not the segment.
UNREADABLE_BLOCK_BYTES = 512
UNREADABLE_FILL = b"\xff"
QUARANTINE_DIRECTORY = "quarantine"
# A torn-tail journal lists one torn tail per line; an open finds at most one per
# segment, and bounding the lines read bounds the work a damaged journal can cause.
JOURNAL_LINES_MAX = 1024
JOURNAL_SUMMARY_CHARS_MAX = 4096  # a repair journal's description of its loss
JOURNAL_PREFIX = "repair-"
TORN_JOURNAL_PREFIX = "torn-"
JOURNAL_PENDING = ".pending"
JOURNAL_REPORTED = ".reported"
JOURNAL_TEMPORARY = ".tmp"


def _segment_id(name: str, suffix: str) -> int | None:
    stem = name[: -len(suffix)]
    if name.endswith(suffix) and len(stem) == 8 and stem.isdigit() and int(stem) > 0:
        return int(stem)
    return None


class Recovery:
    """Open-time replay: classify files, load the compacted file, replay log segments,
    decide torn tail vs corruption, then (only then) change anything on disk."""

    def __init__(
        self,
        io: Io,
        path: str,
        on_corruption: OnCorruption,
        segment_size_target_bytes: int,
        report: RecoveryReport,
        read_only: bool = False,
    ) -> None:
        assert not (read_only and on_corruption == "repair"), "a read-only open repairs nothing"
        self.io = io
        self.read_only = read_only  # recover in memory only: open files for reading, change nothing
        self.path = path
        self.on_corruption = on_corruption
        self.segment_size_target_bytes = segment_size_target_bytes
        self.report = report
        self.keydir: Keydir = {}
        self.compacted_id = 0
        self.compacted_file: File | None = None
        self.log: SegmentLog | None = None
        self.opened: list[File] = []  # every handle, closed if opening fails
        self.lsn_max = 0
        self.truncations: list[tuple[File, int]] = []
        self.quarantine: list[tuple[int, int]] = []  # (segment id, offset) to move aside
        self.obsolete: list[str] = []
        self.journals: list[str] = []  # journals this open reports (pending until the first commit)
        self.journal_debris: list[str] = []  # torn journals a crash left unfinished
        self.corruptions_from_journals = 0  # the report's first corruptions: re-reported from journals
        self.torn_found: list[TornTail] = []  # torn tails this open found (not re-reported ones)
        self.quarantine_listing: set[str] | None = None  # quarantine/ once made durable and listed
        self.newest_data: tuple[int, bytes] = (0, b"")  # the newest segment as read
        self.clean_marker: tuple[int, int] | None = None
        self.clean_marker_present = False
        self.covered = 0  # the newest compacted file's id: segments up to it are compacted
        self.newest_named = 0  # the newest segment the CLEAN marker names (or `covered`)
        self.compaction_needed = False  # a damaged compacted file: copied aside, then rewritten
        self.allocated: dict[int, int] = {}  # newest segment id -> size with its preallocated zeros
        self.expected_lsn: int | None = None  # the lsn the next log segment must start with
        self.damage: Corruption | None = None  # the first damage in the log
        self.damaged_tail: tuple[int, int, int, int] | None = None  # sealed id, offset, header records, bytes
        self.lost_last = 0
        self.lost_uncounted = False  # damaged frames after the last lsn seen: `lost_last` is a lower bound

    def run(self) -> None:
        """Recover, or raise with every file it opened closed again."""
        try:
            self._run()
        except BaseException:
            for file in self.opened:
                close_quietly(self.io, file)
            raise

    def _path(self, name: str) -> str:
        return f"{self.path}/{name}"

    def _open(self, name: str, mode: OpenMode) -> File:
        file = self.io.open(self._path(name), mode).result()
        self.opened.append(file)
        return file

    def _run(self) -> None:
        names = self.io.listdir(self.path).result()
        if len(names) > DIRECTORY_ENTRIES_MAX:
            raise CorruptionDetected(f"{self.path} holds {len(names)} entries: not a store this library wrote")
        if QUARANTINE_DIRECTORY in names:
            self._read_pending_journals()
        self.corruptions_from_journals = len(self.report.corruptions)
        segments: list[int] = []
        compacted: list[int] = []
        hints: set[int] = set()
        for name in names:
            if name.endswith(compaction.TEMPORARY_SUFFIX):
                mark("leftover_temporary_removed")
                self.obsolete.append(name)
            elif (segment_id := _segment_id(name, SEGMENT_SUFFIX)) is not None:
                segments.append(segment_id)
            elif (segment_id := _segment_id(name, compaction.COMPACTED_SUFFIX)) is not None:
                compacted.append(segment_id)
            elif (segment_id := _segment_id(name, compaction.HINT_SUFFIX)) is not None:
                hints.add(segment_id)
            elif name == CLEAN_MARKER_NAME:
                self.clean_marker = self._read_clean_marker()
                self.clean_marker_present = True
        covered = max(compacted, default=0)
        if segments and not self.clean_marker_present:
            mark("clean_marker_missing")
        if min(segments, default=covered + 1) <= covered or min(compacted, default=covered) < covered:
            mark("leftover_compaction_inputs_removed")
        if hints - {covered}:
            mark("hint_stale_removed")
        self.obsolete += [segment_name(i) for i in segments if i <= covered]
        self.obsolete += [compaction.compacted_name(i) for i in compacted if i < covered]
        self.obsolete += [compaction.hint_name(i) for i in hints if i != covered]
        if covered:
            self._load_compacted(covered, covered in hints)
        live_segments = sorted(i for i in segments if i > covered)
        self.covered = covered
        self.newest_named = max(covered, self.clean_marker[0] if self.clean_marker is not None else 0)
        if not covered and live_segments[:1] == [1]:
            # The first segment of a store that never compacted starts at lsn 1: a frame
            # there with a later lsn (a misdirected write over the first) is damage.
            self.expected_lsn = 1
        kept = self._replay_log(live_segments)
        if self.report.corruptions and self.on_corruption == "raise":
            raise CorruptionDetected(
                f"{self.path}: {self.report.summary()}; open with on_corruption='repair' to move the damaged "
                "data into quarantine/ and keep the valid prefix",
                self.report,
            )
        if self.read_only:
            self._start_log_read_only(kept)
            return
        self._change_disk()
        self._start_log(kept, covered)
        self._record_durable_extent()

    # compacted file ------------------------------------------------------------------

    def _load_compacted(self, segment_id: int, has_hint: bool) -> None:
        file = self._open(compaction.compacted_name(segment_id), "r")
        self.compacted_id, self.compacted_file = segment_id, file
        size = self.io.size(file).result()
        entries = None
        if has_hint:
            hint_file = self.io.open(self._path(compaction.hint_name(segment_id)), "r").result()
            try:
                hint_size = self.io.size(hint_file).result()
                entries = compaction.decode_hint(read_exact(self.io, hint_file, 0, hint_size), segment_id, size)
                if entries is None:
                    mark("hint_damaged")
            except IoError as error:
                if error.errno != errno.EIO:  # an unreadable hint is only a lost shortcut
                    close_quietly(self.io, hint_file)
                    raise
                mark("hint_unreadable")
            close_quietly(self.io, hint_file)
            if entries is None:
                self.report.hint_files_ignored += 1
        else:
            mark("hint_missing")
        if entries is not None:
            self.report.hint_files_used += 1
            compaction.load_entries(self.keydir, -segment_id, entries)
            self.lsn_max = max(self.lsn_max, max((entry[3] for entry in entries), default=0))
            self.report.records_applied += len(entries)
            return
        data, scan = self._scan(segment_id, file, self._read(file, 0, size), compacted=True)
        self.report.segments_scanned += 1
        frames = scan.frames + scan.frames_after_damage
        records, lsn_max = apply_frames(data, frames, self.keydir, -segment_id)
        self._count(len(frames), records, lsn_max)
        if scan.bad_offset is not None:
            mark("compacted_file_damaged")
            end = scan.resume_offset if scan.resume_offset is not None else len(data)
            lost = scan.bad_header.count if scan.bad_header is not None else 0
            self.compaction_needed = True
            self.report.corruptions.append(
                Corruption(
                    compaction.compacted_name(segment_id),
                    scan.bad_offset,
                    f"{end - scan.bad_offset} damaged bytes in the compacted file (no usable hint to name the keys)",
                    records_lost=max(lost, 1),
                    count_known=scan.bad_header is not None,  # else the damaged frame's count is gone
                )
            )

    def _count(self, frames: int, records: int, lsn_max: int) -> None:
        self.report.frames_applied += frames
        self.report.records_applied += records
        self.lsn_max = max(self.lsn_max, lsn_max)

    # log segments ----------------------------------------------------------------------

    def _replay_log(self, segment_ids: list[int]) -> dict[int, tuple[File, int]]:
        """Replay log segments in order under point-in-time semantics; return the kept
        segments (id -> handle, valid length).

        Log segment ids after the compacted file are consecutive and their lsns
        continue from one segment to the next; a missing id or an lsn gap is damage.
        Damage at the tail of a sealed segment is harmless only when the next segment
        continues the lsns (then it is reported as a torn tail and truncated).
        """
        kept: dict[int, tuple[File, int]] = {}
        if segment_ids and not self.covered and segment_ids[0] != 1:
            # Compaction always leaves a compacted file (empty, if nothing is live)
            # before it removes a segment: without one, the log starts at segment 1.
            mark("log_start_missing")
            self._damaged(segment_name(segment_ids[0]), 0, f"segments before {segment_ids[0]} are missing")
        for index, segment_id in enumerate(segment_ids):
            previous = segment_ids[index - 1] if index > 0 else None
            self._replay_segment(segment_id, previous, index == len(segment_ids) - 1, kept)
        if self.damage is None and self.newest_named > max(segment_ids, default=0):
            # The CLEAN marker names the newest segment (rewritten at each roll before a
            # write into the new segment is acknowledged): a newer id than any found
            # means whole newest segments were lost (an entry the file system lost).
            mark("newest_segment_missing")
            detail = "the newest segment, which the CLEAN marker names, is missing"
            self._damaged(segment_name(self.newest_named), 0, detail)
        if self.damaged_tail is not None and self.damage is None:
            self._quarantine_damaged_tail(kept)
        if moved := [segment_id for segment_id, offset in self.quarantine if offset == 0]:
            self._quarantine_later(min(moved), kept)
        if self.damage is not None:
            first = self.damage.lsn_first_lost or 1
            last = max(self.lost_last, first - 1)
            if last < first:  # no lsn past the damage reads: its frames held at least one record
                self.report.corruptions.append(replace(self.damage, records_lost=1, count_known=False))
            else:
                counted = replace(self.damage, lsn_last_lost=last, records_lost=last - first + 1)
                self.report.corruptions.append(replace(counted, count_known=not self.lost_uncounted))
        return kept

    def _replay_segment(
        self, segment_id: int, previous: int | None, newest: bool, kept: dict[int, tuple[File, int]]
    ) -> None:
        """Scan one segment, check it continues the log, apply its frames (into `kept`
        when it is kept) and judge a bad tail (`_judge_bad_tail`)."""
        unreadable_before = self.report.unreadable_bytes
        file, data = self._read_segment(segment_id, "w" if newest and not self.read_only else "r")
        data, scan = self._scan(segment_id, file, data, compacted=False)
        if newest:
            self.newest_data = (segment_id, data)
        self.report.segments_scanned += 1
        self._check_continuity(segment_id, previous, scan, kept)
        if self.damage is not None:
            self.lost_last = max(self.lost_last, scan.last_lsn_seen or 0)
            if scan.last_lsn_seen is not None or scan.damage_after_last_frame:  # its lsns bound earlier damage
                self.lost_uncounted = scan.damage_after_last_frame
            self.quarantine.append((segment_id, 0))
            close_quietly(self.io, file)
            return
        records, lsn_max = apply_frames(data, scan.frames, self.keydir, segment_id)
        self._count(len(scan.frames), records, lsn_max)
        kept[segment_id] = (file, scan.valid_length)
        if scan.last_lsn is not None:
            self.expected_lsn = scan.last_lsn + 1
        if scan.bad_offset is None:
            return
        zero_tail = scan.resume_offset is None and data.count(0, scan.bad_offset) == len(data) - scan.bad_offset
        if newest and zero_tail and not self._recorded_durable(segment_id, data, scan.bad_offset):
            # Preallocated free space, not damage: the writer fills it. Only the newest
            # segment has any: sealing cuts it off (and syncs) before the next segment
            # exists, so zeros at the end of a sealed segment are damage (a lost or
            # misdirected write), judged below like any damaged tail; so are zeros
            # where the newest segment was recorded durable.
            self.allocated[segment_id] = len(data)
            return
        unreadable = self.report.unreadable_bytes > unreadable_before
        self._judge_bad_tail(segment_id, data, scan, newest, unreadable, kept)

    def _check_continuity(
        self, segment_id: int, previous: int | None, scan: SegmentScan, kept: dict[int, tuple[File, int]]
    ) -> None:
        """Damage when ids or lsns skip; a damaged tail of the segment before is resolved
        here: harmless (torn, held no records) when this segment continues the lsns."""
        expected = self.expected_lsn
        if self.damage is None and previous is not None and segment_id != previous + 1:
            mark("segment_missing")
            self._damaged(segment_name(segment_id), 0, f"segments before {segment_id} are missing")
        if self.damage is None and expected is not None and scan.first_lsn not in (None, expected):
            mark("segment_lsn_gap")
            self._damaged(
                segment_name(segment_id), 0, f"lsns {self.expected_lsn}..{(scan.first_lsn or 1) - 1} are missing"
            )
        if self.damage is None and self.damaged_tail is not None and scan.first_lsn is not None:
            tail_id, tail_offset, _records, tail_bytes = self.damaged_tail
            if expected is None:  # nothing valid before it: no way to show the tail held no records
                self._damaged(segment_name(tail_id), tail_offset, "damaged frame at the end of a sealed segment")
                self.lost_last = scan.first_lsn - 1
            else:  # the lsns continue: the damaged tail held no records
                mark("sealed_tail_torn")
                self._torn(tail_id, tail_offset, kept, records=0, size=tail_bytes)
                self.damaged_tail = None

    def _judge_bad_tail(
        self,
        segment_id: int,
        data: bytes,
        scan: SegmentScan,
        newest: bool,
        unreadable: bool,
        kept: dict[int, tuple[File, int]],
    ) -> None:
        """A segment whose frames stop before its end: mid-log corruption, unreadable
        sectors, misplaced or several damaged frames, damage where it was recorded durable,
        or a torn tail (the newest segment's, cut now; a sealed one's, judged by the next)."""
        assert scan.bad_offset is not None
        header_records = scan.bad_header.count if scan.bad_header is not None else 0
        if scan.resume_offset is not None:
            mark("damage_mid_log")
            detail = f"damaged frame followed by valid frames at offset {scan.resume_offset}"
            self._damaged_here(segment_id, scan, detail)
            self.lost_last = scan.last_lsn_seen or 0
            # Damaged frames after the last valid one (two separate damages) hold lsns
            # no frame shows: the count is a lower bound (found by TailBurst, two flips
            # in the last frames: a frame between them read valid).
            self.lost_uncounted = scan.damage_after_last_frame
        elif unreadable:  # never a torn tail: the disk refused
            self._damaged_here(segment_id, scan, "unreadable sectors (EIO)")
        elif newest and self._misplaced(segment_id, data, scan):
            mark("damage_misplaced_frame")
            first = self._damaged_here(
                segment_id, scan, "a whole frame in the wrong place (a misdirected or stale write), not a torn one"
            )
            assert scan.bad_header is not None
            self.lost_last = max(scan.bad_header.first_lsn + scan.bad_header.count - 1, first)
        elif newest and (spanned := frames_in_damaged_tail(data, scan.bad_offset, self._lsn_checked(scan)))[0]:
            mark("damage_spanning_frames")
            first = self._damaged_here(
                segment_id, scan, "damaged frames at the end of the log (more than one: not a torn write)"
            )
            self.lost_last = max(spanned[1], first + 1)  # two frames at least
        elif newest and self._recorded_durable(segment_id, data, scan.bad_offset):
            mark("damage_where_recorded_durable")
            first = self._damaged_here(
                segment_id, scan, "damaged frame where the segment was recorded durable (not a torn write)"
            )
            self.lost_last = first - 1 + max(header_records, 1)
        elif newest:
            mark("torn_tail_cut")
            self._torn(segment_id, scan.bad_offset, kept, records=header_records, size=len(data) - scan.bad_offset)
        else:
            self.damaged_tail = (segment_id, scan.bad_offset, header_records, len(data) - scan.bad_offset)

    def _quarantine_damaged_tail(self, kept: dict[int, tuple[File, int]]) -> None:
        """A sealed segment's damaged tail that no later segment showed harmless."""
        assert self.damaged_tail is not None
        tail_id, tail_offset, header_records, _bytes = self.damaged_tail
        mark("sealed_tail_damaged")
        self._damaged(segment_name(tail_id), tail_offset, "damaged frame at the end of a sealed segment")
        self._quarantine_later(tail_id, kept)
        assert self.damage is not None and self.damage.lsn_first_lost is not None
        self.lost_last = self.damage.lsn_first_lost - 1 + max(header_records, 1)

    def _quarantine_later(self, segment_id: int, kept: dict[int, tuple[File, int]]) -> None:
        """Move to quarantine every kept segment after `segment_id` (damaged, or moved
        whole). They hold no records (their lsns would have shown the damaged tail held
        none, or come after the damage); kept, a damaged segment moved whole would leave
        a gap in the ids that the next open reads as damage, taking later writes with it
        (found by the batch-mode state machine: an empty segment between a sealed
        segment damaged at offset 0 and the segment whose lsns revealed it stayed)."""
        for later in sorted(i for i in kept if i > segment_id):
            file, _length = kept.pop(later)
            self.truncations = [(cut, offset) for cut, offset in self.truncations if cut is not file]
            close_quietly(self.io, file)
            self.quarantine.append((later, 0))

    def _recorded_durable(self, segment_id: int, data: bytes, offset: int) -> bool:
        """True when the bytes at `offset` of the newest segment were recorded durable (by
        the last clean close or the last open, see `kv.log`), so damage there is not a
        torn write: a crash tears only what was written after the recorded length. A
        segment shorter than that length was cut since (a repair): the record is stale."""
        if self.clean_marker is None or self.clean_marker[0] != segment_id:
            return False
        return offset < self.clean_marker[1] <= len(data)

    def _record_durable_extent(self) -> None:
        """Once the newest segment is durable (`_make_durable`), record how far: damage
        there after a later crash is then told from a torn write. Also replaces a
        marker that a repair or a new segment made stale. Raises `IoError`."""
        log = self.log
        assert log is not None
        if log.directory_dirty:
            # The marker will name a segment this open created: its entry is durable
            # first, or a crash could leave the marker naming a segment that never was
            # (which reads as a lost newest segment).
            self.io.sync_dir(self.path).result()
            log.directory_dirty = False
        if self.clean_marker != (log.segment_id, log.write_offset):
            write_clean_marker(self.io, self.path, log.segment_id, log.write_offset, sync_directory=False)
        if not self.clean_marker_present:  # the marker's own entry
            self.io.sync_dir(self.path).result()

    def _read_segment(self, segment_id: int, mode: OpenMode) -> tuple[File, bytes]:
        file = self._open(segment_name(segment_id), mode)
        size = self.io.size(file).result()
        if size > SEGMENT_SIZE_MAX_BYTES:
            close_quietly(self.io, file)
            raise CorruptionDetected(f"{segment_name(segment_id)} is {size} bytes, more than any segment we write")
        return file, self._read(file, 0, size)

    def _scan(self, segment_id: int, file: File, data: bytes, compacted: bool) -> tuple[bytes, SegmentScan]:
        """Scan a file, damage confirmed by a second read (`scan_confirmed`): repair
        would cut away what a transient read error made look damaged. Reads that never
        agree raise `IoError`: the disk is unreliable now, and nothing is cut."""
        data, scan, trusted = scan_confirmed(segment_id, data, lambda: self._read(file, 0, len(data)), compacted)
        if not trusted:
            raise IoError(
                errno.EIO,
                f"{1 + READ_RETRIES_MAX} reads of {file.path} disagree (transient read errors); "
                "not judging it damaged: open again when the disk is healthy",
                file.path,
                "read",
            )
        return data, scan

    def _read(self, file: File, start: int, size: int) -> bytes:
        """`size` bytes from `start`. When the read fails with EIO (a latent sector
        error), read again one block at a time; an unreadable block reads as
        UNREADABLE_FILL (never zeros: a zero tail would pass for free space), so the scan
        sees damage and recovery reports it."""
        try:
            return read_exact(self.io, file, start, size)
        except IoError as error:
            if error.errno != errno.EIO:
                raise
        mark("read_eio_by_block")
        blocks = []
        for offset in range(start, start + size, UNREADABLE_BLOCK_BYTES):
            length = min(UNREADABLE_BLOCK_BYTES, start + size - offset)
            try:
                blocks.append(read_exact(self.io, file, offset, length))
            except IoError as error:
                if error.errno != errno.EIO:
                    raise
                mark("read_block_unreadable")
                self.report.unreadable_bytes += length
                blocks.append(UNREADABLE_FILL * length)
        return b"".join(blocks)

    def _damaged_here(self, segment_id: int, scan: SegmentScan, detail: str) -> int:
        """Damage at the scan's bad offset of a log segment, quarantined from there on;
        returns the first lsn it loses."""
        assert scan.bad_offset is not None
        self._damaged(segment_name(segment_id), scan.bad_offset, detail, quarantine=(segment_id, scan.bad_offset))
        assert self.damage is not None and self.damage.lsn_first_lost is not None
        return self.damage.lsn_first_lost

    def _lsn_checked(self, scan: SegmentScan) -> FrameHeader | None:
        """The damaged frame's header when it still reads and carries the lsn expected
        next (so its count can be trusted), else None."""
        header = scan.bad_header
        if header is None or self.expected_lsn not in (None, header.first_lsn):
            return None
        return header

    @staticmethod
    def _misplaced(segment_id: int, data: bytes, scan: SegmentScan) -> bool:
        """The damaged frame passes its CRC: it was written whole, somewhere it does not
        belong (another segment's, another offset's, or lsns out of sequence). A torn
        write never passes the CRC, so this is damage to acknowledged data."""
        header = scan.bad_header
        assert scan.bad_offset is not None
        return header is not None and frame_crc_ok(data, scan.bad_offset, header)

    def _damaged(self, file_name: str, offset: int, detail: str, quarantine: tuple[int, int] | None = None) -> None:
        """Record the first damage in the log: everything from here on is lost. A damaged
        tail still pending (`damaged_tail`) goes to quarantine with it."""
        assert self.damage is None
        first_lost = self.expected_lsn if self.expected_lsn is not None else self.lsn_max + 1
        self.damage = Corruption(file_name, offset, detail, lsn_first_lost=first_lost)
        if self.damaged_tail is not None:
            self.quarantine.append((self.damaged_tail[0], self.damaged_tail[1]))
            self.damaged_tail = None
        if quarantine is not None:
            self.quarantine.append(quarantine)

    def _torn(self, segment_id: int, offset: int, kept: dict[int, tuple[File, int]], records: int, size: int) -> None:
        file, _length = kept[segment_id]
        self.report.torn_tails.append(TornTail(segment_id, offset, size, records))
        self.torn_found.append(self.report.torn_tails[-1])
        self.truncations.append((file, offset))
        kept[segment_id] = (file, offset)

    # changing the disk -----------------------------------------------------------------

    def _change_disk(self) -> None:
        """Apply what recovery decided, then sync the directory: every entry recovery
        trusted must be durable before the writer builds on it (a segment created just
        before a failed commit may exist only in the page cache's directory)."""
        if self.truncations:
            self._write_torn_journal()
        for file, offset in self.truncations:
            if file.mode == "r":
                writable = self.io.open(file.path, "w").result()
                self.io.truncate(writable, offset).result()
                self.io.sync(writable).result()
                self.io.close(writable).result()
            else:
                self.io.truncate(file, offset).result()
                self.io.sync(file).result()
        if self.quarantine or self.compaction_needed:
            self._move_to_quarantine()
        for name in self.obsolete:
            self.io.unlink(self._path(name)).result()
        self.io.sync_dir(self.path).result()

    def _quarantine_directory(self) -> tuple[str, set[str]]:
        """quarantine/, created and durable, and the names in it (kept up to date by
        the callers that add names)."""
        quarantine = self._path(QUARANTINE_DIRECTORY)
        if self.quarantine_listing is None:
            self.io.mkdir(quarantine).result()
            self.io.sync_dir(self.path).result()  # the directory itself, before the journal in it counts
            self.quarantine_listing = set(self.io.listdir(quarantine).result())
        return quarantine, self.quarantine_listing

    def _move_to_quarantine(self) -> None:
        mark("quarantine_written")
        quarantine, existing = self._quarantine_directory()
        self._write_repair_journal(quarantine, existing)
        # (file name, offset): from 0 the file moves; from an offset its tail is copied
        # and cut; None copies the whole file and leaves it (the store rewrites it).
        # Whole files move newest first and the damaged file is cut last: if a step fails,
        # the damage that caused the repair is still there for the next open to report.
        order = sorted(self.quarantine, key=lambda item: (item[1] != 0, -item[0]))
        moves: list[tuple[str, int | None]] = [(segment_name(i), offset) for i, offset in order]
        if self.compaction_needed:
            moves.append((compaction.compacted_name(self.compacted_id), None))
        for name, offset in moves:
            serial = 0
            while f"{name}.{serial}" in existing:
                serial += 1
            target = f"{quarantine}/{name}.{serial}"
            existing.add(f"{name}.{serial}")
            if offset == 0:
                self.io.rename(self._path(name), target).result()
            else:
                self._copy_tail(self._path(name), offset, target)
            self.report.quarantined.append(f"{QUARANTINE_DIRECTORY}/{name}.{serial}")
        self.io.sync_dir(quarantine).result()
        self.io.sync_dir(self.path).result()
        self.report.repaired = True

    # repair journals: a loss is reported even when the repair that found it fails midway

    def _write_repair_journal(self, quarantine: str, existing: set[str]) -> None:
        """Before anything moves, record durably what this repair loses. Until an open
        succeeds, every open reports it again, so a repair that fails halfway (its
        changes in the page cache, the next open finding nothing wrong) cannot turn a
        reported loss into a silent one."""
        serial = sum(name.startswith(JOURNAL_PREFIX) for name in existing)
        name = f"{JOURNAL_PREFIX}{serial:06d}{JOURNAL_PENDING}"
        # Only what this repair found: the pending journals it reports again stay
        # pending themselves (each would otherwise nest inside the next, doubling).
        found = replace(self.report, corruptions=self.report.corruptions[self.corruptions_from_journals :])
        summary = found.summary()[:JOURNAL_SUMMARY_CHARS_MAX]
        # The first line is the count of records lost, "N+" when N is only a lower bound.
        counted = all(corruption.count_known for corruption in found.corruptions)
        text = f"{found.records_lost}{'' if counted else '+'}\n{summary}\n".encode()
        journal = self.io.open(f"{quarantine}/{name}", "w").result()
        try:
            self.io.write(journal, 0, text).result()
            self.io.sync(journal).result()
        finally:
            close_quietly(self.io, journal)
        self.io.sync_dir(quarantine).result()
        self.journals.append(name)

    def _write_torn_journal(self) -> None:
        """Before a torn tail is cut, record it durably. A torn tail is reported as
        unacknowledged data, but when a media fault damaged an acknowledged last frame
        the report is the only trace of that loss: a recovery that cuts the tail and
        then crashes must not lose it. Until an open succeeds, every open reports it
        again. The journal is written whole under a temporary name and renamed into
        place, so a pending journal that does not parse was damaged at rest."""
        quarantine, existing = self._quarantine_directory()
        serial = 0
        while f"{TORN_JOURNAL_PREFIX}{serial:06d}{JOURNAL_PENDING}" in existing or (
            f"{TORN_JOURNAL_PREFIX}{serial:06d}{JOURNAL_TEMPORARY}" in existing
        ):
            serial += 1
        name = f"{TORN_JOURNAL_PREFIX}{serial:06d}{JOURNAL_PENDING}"
        temporary = f"{TORN_JOURNAL_PREFIX}{serial:06d}{JOURNAL_TEMPORARY}"
        existing.update((name, temporary))
        text = "".join(
            f"{tail.segment_id} {tail.offset} {tail.bytes_dropped} {tail.records_dropped}\n" for tail in self.torn_found
        )
        journal = self.io.open(f"{quarantine}/{temporary}", "w").result()
        try:
            self.io.truncate(journal, 0).result()
            self.io.write(journal, 0, text.encode()).result()
            self.io.sync(journal).result()
        finally:
            close_quietly(self.io, journal)
        self.io.rename(f"{quarantine}/{temporary}", f"{quarantine}/{name}").result()
        existing.discard(temporary)
        self.io.sync_dir(quarantine).result()
        self.journals.append(name)

    def _read_journal(self, quarantine: str, name: str) -> str:
        journal = self.io.open(f"{quarantine}/{name}", "r").result()
        try:
            return self._read(journal, 0, self.io.size(journal).result()).decode("utf-8", "replace")
        finally:
            close_quietly(self.io, journal)

    def _report_torn_journal(self, name: str, text: str) -> None:
        """An earlier open cut these torn tails and did not finish: report them again."""
        tails: list[TornTail] = []
        for line in text.splitlines()[:JOURNAL_LINES_MAX]:
            fields = line.split()
            if len(fields) != 4 or not all(field.isdigit() for field in fields):
                tails = []
                break
            segment_id, offset, size, records = map(int, fields)
            tails.append(TornTail(segment_id, offset, size, records, again=True))
        if tails:
            self.report.torn_tails.extend(tails)
        else:  # written whole and renamed into place: only damage at rest garbles it
            detail = "an earlier recovery cut a torn tail and did not finish; its journal is damaged"
            self.report.corruptions.append(Corruption(f"{QUARANTINE_DIRECTORY}/{name}", 0, detail, records_lost=1))

    def _read_pending_journals(self) -> None:
        quarantine = self._path(QUARANTINE_DIRECTORY)
        for name in self.io.listdir(quarantine).result():
            if name.startswith(TORN_JOURNAL_PREFIX) and name.endswith(JOURNAL_TEMPORARY):
                self.journal_debris.append(name)  # its tails were not cut yet: this open finds them
                continue
            if name.startswith(TORN_JOURNAL_PREFIX) and name.endswith(JOURNAL_PENDING):
                mark("journal_torn_replayed")
                self._report_torn_journal(name, self._read_journal(quarantine, name))
                self.journals.append(name)
                continue
            if not (name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_PENDING)):
                continue
            mark("journal_repair_replayed")
            text = self._read_journal(quarantine, name)
            count, _, summary = text.partition("\n")
            known = count.isdigit()  # "N+" (a lower bound) or garbled: not a count
            digits = count.removesuffix("+")
            lost = int(digits) if digits.isdigit() else 0
            detail = f"an earlier repair did not finish; it had found: {summary.strip()}"
            self.report.corruptions.append(
                Corruption(f"{QUARANTINE_DIRECTORY}/{name}", 0, detail, records_lost=max(lost, 1), count_known=known)
            )
            self.journals.append(name)

    @property
    def journals_pending(self) -> bool:
        return bool(self.journals or self.journal_debris)

    def settle_journals(self) -> None:
        """Call only once this open's report has reached the caller (`kv.open`
        returned): then the journals are done. Repair journals stay (as `.reported`)
        beside the data they moved; torn-tail journals, which moved nothing, are
        removed. Never inside the open itself: a crash there may keep a removal that
        was not yet synced, and the loss would never be reported. Until this runs, every
        open reports the journals again (a loss reported twice, never zero times)."""
        if not self.journals_pending:
            return
        quarantine = self._path(QUARANTINE_DIRECTORY)
        for name in self.journals:
            if name.startswith(TORN_JOURNAL_PREFIX):
                self.io.unlink(f"{quarantine}/{name}").result()
                continue
            done = name[: -len(JOURNAL_PENDING)] + JOURNAL_REPORTED
            self.io.rename(f"{quarantine}/{name}", f"{quarantine}/{done}").result()
        for name in self.journal_debris:
            self.io.unlink(f"{quarantine}/{name}").result()
        self.io.sync_dir(quarantine).result()

    def _copy_tail(self, source: str, offset: int | None, target: str) -> None:
        """Copy `source` from `offset` (all of it for None) into `target`, synced; then
        cut `source` at `offset`."""
        file = self.io.open(source, "r" if offset is None else "w").result()
        size = self.io.size(file).result()
        tail = self._read(file, offset or 0, size - (offset or 0))
        copy = self.io.open(target, "x").result()
        self.io.write(copy, 0, tail).result()
        self.io.sync(copy).result()
        self.io.close(copy).result()
        if offset is not None:
            self.io.truncate(file, offset).result()
            self.io.sync(file).result()
        self.io.close(file).result()

    def _read_clean_marker(self) -> tuple[int, int] | None:
        marker = self.io.open(self._path(CLEAN_MARKER_NAME), "r").result()
        try:
            return decode_clean_marker(read_exact(self.io, marker, 0, 64))
        except IoError as error:
            if error.errno != errno.EIO:
                raise
            return None  # unreadable: as if the close was not clean, which only costs a rewrite
        finally:
            close_quietly(self.io, marker)

    def _make_durable(self, segment_id: int, file: File, length: int) -> File:
        """Unless the last close recorded this segment durable up to `length`, make the
        bytes recovery read back durable: after a failed sync the page cache can hold
        bytes the disk never got (fsyncgate), and recovery must not build on them.

        They go into a fresh file that replaces the segment by rename, never over it: a
        write interrupted by a power loss can leave garbage in the sectors it covered,
        and an in-place rewrite would put acknowledged frames under it (found by
        completion_corruption: a crash during recovery's rewrite tore three durable
        frames). The directory is synced before the replacement is used: from here on
        reads return these bytes, so they must survive a crash. Returns the handle to
        use from now on (a new one, opened for writing, when the segment was replaced).
        """
        if self.clean_marker == (segment_id, length) or not length:
            return file
        read_id, data = self.newest_data
        if read_id != segment_id:  # the newest segment went to quarantine: this one is newest now
            data, scan = self._scan(segment_id, file, self._read(file, 0, length), compacted=False)
            if scan.valid_length < length:  # never write back bytes that failed their checks
                return file
        name = segment_name(segment_id)
        temporary = self._open(name + compaction.TEMPORARY_SUFFIX, "w")
        self.io.truncate(temporary, 0).result()
        self.io.write(temporary, 0, data[:length]).result()
        self.io.sync(temporary).result()
        self.io.close(temporary).result()
        self.io.rename(self._path(name + compaction.TEMPORARY_SUFFIX), self._path(name)).result()
        self.io.sync_dir(self.path).result()
        close_quietly(self.io, file)
        self.report.segment_bytes_rewritten += length
        return self._open(name, "w")

    def _start_log(self, kept: dict[int, tuple[File, int]], covered: int) -> None:
        quarantined = {segment_id for segment_id, offset in self.quarantine if offset == 0}
        live = {i: v for i, v in kept.items() if i not in quarantined}
        newest = max(live, default=0)
        sealed = {i: file for i, (file, _length) in live.items() if i != newest}
        if newest and live[newest][0].mode == "w" and live[newest][1] < self.segment_size_target_bytes:
            old_file, length = live[newest]
            file = self._make_durable(newest, old_file, length)
            segment_id, directory_dirty = newest, False
            allocated = self.allocated.get(newest, length) if file is old_file else length
        else:
            if newest:
                newest_file, newest_length = live[newest]
                newest_file = self._make_durable(newest, newest_file, newest_length)
                sealed[newest] = newest_file
                if newest_file.mode == "w":  # sealed segments end at their last frame
                    self.io.truncate(newest_file, newest_length).result()
                    self.io.sync(newest_file).result()
            segment_id = max(newest, covered) + 1
            file = self._open(segment_name(segment_id), "x")
            length, directory_dirty, allocated = 0, True, 0
        self.log = SegmentLog(
            io=self.io,
            directory=self.path,
            segment_id=segment_id,
            file=file,
            write_offset=length,
            next_lsn=self.lsn_max + 1,
            segment_size_target_bytes=self.segment_size_target_bytes,
            durable_lsn=self.lsn_max,
            directory_dirty=directory_dirty,
            sealed=sealed,
            allocated_bytes=allocated,
            preallocation_bytes=min(SEGMENT_PREALLOCATION_BYTES, self.segment_size_target_bytes),
        )

    # a read-only open ------------------------------------------------------------------

    def _start_log_read_only(self, kept: dict[int, tuple[File, int]]) -> None:
        """A writer over the kept segments that will never write: the newest is its
        (read-only) active file, cut in memory at the end of its valid frames (a torn
        tail stays on disk for the next writable open to cut). Raises
        `CorruptionDetected` when no segment is left to read from."""
        moved = {segment_id for segment_id, offset in self.quarantine if offset == 0}  # as `_start_log`
        kept = {segment_id: kept_file for segment_id, kept_file in kept.items() if segment_id not in moved}
        if not kept:
            detail = "holds no store" if not self.compacted_file else "has a compacted file and no log segment"
            raise CorruptionDetected(f"{self.path} {detail}; a read-only open changes nothing: open it writable")
        newest = max(kept)
        file, length = kept[newest]
        self.log = SegmentLog(
            io=self.io,
            directory=self.path,
            segment_id=newest,
            file=file,
            write_offset=length,
            next_lsn=self.lsn_max + 1,
            segment_size_target_bytes=self.segment_size_target_bytes,
            durable_lsn=self.lsn_max,
            sealed={segment_id: handle for segment_id, (handle, _length) in kept.items() if segment_id != newest},
        )
