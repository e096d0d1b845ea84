"""Opening a store: scan, judge, plan, journal, apply.

NOTES ON THE DESIGN OF CRASH SAFETY (in the manner of SQLite's pager.c)

The rules below keep a store consistent, and every loss reported, across a power loss
at any I/O, including one during opening itself. Code that enforces a rule says so as
"(rule N)". File names and the CLEAN marker's format are in `kv.files`.

(1) Durable means synced: a file's bytes are durable only once a sync of the file has
    succeeded, and its directory entry (creation, rename, removal) only once a sync of
    its directory has succeeded. Nothing is acknowledged or trusted before both. A file
    that must never be seen half written is written as a temporary file, synced,
    renamed over its name, and the directory synced (`kv.files.write_durably`).

(2) No retry-and-trust (fsyncgate): after a failed write or sync nothing in the failed
    window is trusted; the store goes read-only and a reopen recovers from what is
    durable. Opening therefore rewrites the bytes it read back of the newest segment
    (the page cache may hold bytes a failed sync never stored) unless rule 3 shows them
    durable, into a fresh file renamed over the segment, never in place.

(3) The CLEAN marker says "segment S is durable up to length L". `close` writes it after
    its final sync; every open writes and syncs it once the newest segment is durable,
    even when the marker it read says the same (that one may be a marker whose own sync
    failed, read back from the page cache, rule 2: a crash would bring back the older
    one, and frames acknowledged since would lose its protection). Damage in
    S before L is corruption, never a torn tail. A missing marker means only "not known
    durable", which costs one rewrite (rule 2). A damaged or unreadable one (written in
    place, in two copies: a torn rewrite leaves one whole) costs that rewrite too, and may
    have recorded anything durable: damage at the end of the newest segment is then
    corruption, not a torn tail. The marker also names the newest segment: the log
    rewrites it at each roll, after the new segment's entry is durable and before any
    write there is acknowledged, so an open that finds no segment as new as the one
    named reports the newest segments lost.

(4) A torn tail is the only damage that may be cut without repair: bad bytes ending the
    newest segment after its last valid frame, one frame at most (a single write), no
    valid frame after them, readable, not a whole frame in the wrong place, after the
    length rule 3 recorded, and with a marker that could be read (or none at all). In
    `always` mode it held nothing acknowledged. A sealed segment's damaged tail is torn
    only when the next segment continues its lsns (then it held no records). A torn
    tail is reported, and cut only after rule 8's journal.

(5) Zeros after the last frame of the newest segment, past the recorded durable length,
    are preallocated free space, not damage. Sealing a segment cuts them and syncs before
    the next segment exists, so zeros ending a sealed segment are damage.

(6) Every other damage is corruption, judged point in time: the log keeps its valid
    prefix up to the first damage, and every lsn from the first lost to the highest
    seen past it is reported lost (a count, or a lower bound when frames cannot be
    counted). Log segment ids are consecutive and lsns continue across segments; a gap
    in either is damage, and so is a log that does not start right after the compacted
    file (at segment 1 without one: compaction rolls to the next segment before it
    installs, and leaves a compacted file, even empty, before it removes a segment).

(7) Judge before changing: opening changes nothing on disk until every file has been
    scanned and judged and the plan built. Damage counts only once two reads agree (a
    transient read error is not damage); reads that never agree raise and cut nothing.
    With `on_corruption="raise"` any corruption raises before the first change.

(8) Journal before change: before a torn tail is cut, a torn-tail journal naming it is
    durable in `quarantine/`; before anything moves to quarantine, a repair journal
    recording the loss is durable there, and `quarantine/` itself before the journal.

(9) One journal lifecycle: a torn-tail journal is written whole as `torn-N.tmp`,
    renamed to `torn-N.pending`, and removed when settled; a repair journal is written
    as `repair-N.pending` and renamed to `repair-N.reported` when settled. Every open
    reports every pending journal again. A journal is settled only after the open's
    report reached its caller (the first commit after `kv.open` returned), never inside
    the open: a loss may be reported twice, never zero times. A `torn-N.tmp` is debris
    (its tails were not cut yet: this open finds them again) and goes when settled.

(10) Quarantine keeps what it takes: repair moves the damaged data and everything after
     it in the log into `quarantine/` (whole files renamed, a damaged tail copied, synced,
     then cut), never deleting it. Whole files move newest first and the damaged file is
     cut last, so a failure midway leaves the damage for the next open to find again.

(11) Compaction installs in order: the compacted file NNNNNNNN covers every segment whose
     id is at most NNNNNNNN. Data and hint are written as `.tmp` and synced, the hint
     renamed, then the data file (the commit point), the directory synced; only then
     are the files it replaced removed and the directory synced again. Opening removes
     `.tmp` debris, covered segments, older compacted files and stale hints.

(12) A hint is a shortcut, never a source of truth: it is used only when intact and
     matching its data file; a missing, damaged or unreadable hint costs a scan. In a
     compacted file every record is an independent live key (or one element of a list:
     its live push records, in lsn order, `kv.keydir`), so damage loses only the
     damaged frames; repair copies the file to quarantine and compacts what is live.

(13) A frame is atomic: its CRC covers its segment id, first lsn and payload, so a torn,
     misdirected or stale frame fails as a whole, and no record of a failed frame is
     applied.

(14) The log holds at most one written, unsynced frame, at its end: the writer syncs a
     frame before it writes the next (`batch` mode every frame it writes, `none` mode
     every full frame, a list operation and an atomic batch their own). A power loss
     may keep a later unsynced write and lose an earlier one; with two unsynced frames
     that leaves a hole between valid frames, which rule 6 must read as corruption.
     With one, a crash tears or loses only the last frame (rule 4).

The phases: `_scan_directory` and `_load_compacted`/`_replay_log` read (scan), the pure
`kv.judge.LogJudge` decides (judge), `kv.plan` turns the verdict into a list of disk
actions (plan), whose first actions are the journals (journal), and `_apply` carries
them out in order (apply).
"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import Literal

from kv.compaction import HintEntry, decode_hint, load_entries
from kv.errors import CorruptionDetected, IoError
from kv.files import (
    CLEAN_MARKER_NAME,
    CLEAN_MARKER_SIZE_MAX_BYTES,
    JOURNAL_PENDING,
    JOURNAL_PREFIX,
    JOURNAL_REPORTED,
    JOURNAL_TEMPORARY,
    QUARANTINE_DIRECTORY,
    TORN_JOURNAL_PREFIX,
    Listing,
    classify,
    compacted_name,
    decode_clean_marker,
    hint_name,
    journal_name,
    segment_name,
    write_clean_marker,
    write_durably,
)
from kv.io import File, Io, OpenMode, close_quietly, read_exact
from kv.judge import (
    LogJudge,
    count_applied,
    judge_compacted,
    read_repair_journal,
    read_torn_journal,
    repair_journal_text,
    torn_journal_text,
)
from kv.limits import DIRECTORY_ENTRIES_MAX, READ_RETRIES_MAX, SEGMENT_PREALLOCATION_BYTES, SEGMENT_SIZE_MAX_BYTES
from kv.log import SegmentLog
from kv.marks import mark
from kv.plan import (
    Action,
    CreateSegment,
    FinishQuarantine,
    LogStart,
    MakeDurable,
    Quarantine,
    Remove,
    Seal,
    SyncDirectory,
    Truncate,
    Verdict,
    WriteMarker,
    WriteRepairJournal,
    WriteTornJournal,
    live_segments,
    plan_changes,
    plan_log_start,
)
from kv.recovery import Keydir, RecoveryReport, SegmentScan, TornTail, apply_frames, scan_confirmed
from kv.salvage import Salvaged, keys_at_risk, lost_ranges, salvage_compacted, salvage_log_region

__all__ = [
    "JOURNAL_PENDING",
    "JOURNAL_PREFIX",
    "JOURNAL_REPORTED",
    "JOURNAL_TEMPORARY",
    "ON_CORRUPTION_MODES",
    "QUARANTINE_DIRECTORY",
    "TORN_JOURNAL_PREFIX",
    "OnCorruption",
    "Recovery",
]

# What opening does on corruption (rule 6, rule 7): refuse ("raise", nothing changes),
# point-in-time repair ("repair": the log's valid prefix, the rest to quarantine), or
# salvage ("salvage", `kv.salvage`: every intact frame and record, the files copied to
# quarantine and compacted).
OnCorruption = Literal["raise", "repair", "salvage"]
ON_CORRUPTION_MODES: tuple[OnCorruption, ...] = ("raise", "repair", "salvage")
# A read that fails with EIO is retried this many bytes at a time (a disk sector), so
# one bad sector costs one sector, not the segment.
UNREADABLE_BLOCK_BYTES = 512
UNREADABLE_FILL = b"\xff"


class Recovery:
    """Open-time recovery: scan the files, judge them, plan the changes, then (only then)
    change the disk and start the segment writer (rule 7)."""

    def __init__(
        self,
        io: Io,
        path: str,
        on_corruption: OnCorruption,
        segment_size_target_bytes: int,
        report: RecoveryReport,
        read_only: bool = False,
    ) -> None:
        assert not (read_only and on_corruption != "raise"), "a read-only open repairs nothing"
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
        self.files: dict[int, File] = {}  # kept log segment id -> its handle
        self.rewritten: set[int] = set()  # segments replaced by `_make_durable`
        self.lsn_max = 0
        self.obsolete: list[str] = []
        self.journals: list[str] = []  # journals this open reports (pending until the first commit)
        self.journal_debris: list[str] = []  # torn journals a crash left unfinished
        self.corruptions_from_journals = 0  # the report's first corruptions: re-reported from journals
        self.quarantine_listing: set[str] | None = None  # quarantine/ once made durable and listed
        self.newest_data: tuple[int, bytes] = (0, b"")  # the newest segment as read
        self.clean_marker: tuple[int, int] | None = None
        self.clean_marker_present = False
        self.clean_marker_unknown = False
        self.compaction_needed = False  # a damaged compacted file or a salvaged log: rewritten once open
        self.compacted_damaged = False  # the compacted file is damaged: copied aside (rule 12)
        self.segment_data: dict[int, bytes] = {}  # salvage: every log segment as read
        self.salvaged_lengths: dict[int, int] = {}  # salvage: segment id -> end of its last intact frame
        self.judge = LogJudge(self.keydir, report, None, 0, None)

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
        listing = self._scan_directory()
        covered = listing.covered
        if covered:
            self._load_compacted(covered, covered in listing.hints)
        live = sorted(i for i in listing.segments if i > covered)
        # The first segment of a store that never compacted starts at lsn 1: a frame
        # there with a later lsn (a misdirected write over the first) is damage (rule 6).
        expected_lsn = 1 if not covered and live[:1] == [1] else None
        newest_named = max(covered, self.clean_marker[0] if self.clean_marker is not None else 0)
        self.judge = LogJudge(
            self.keydir, self.report, self.clean_marker, self.lsn_max, expected_lsn, covered, newest_named
        )
        self.judge.marker_unknown = self.clean_marker_unknown
        kept_files = self._replay_log(live)
        if self.report.corruptions and self.on_corruption == "raise":  # nothing changed yet (rule 7)
            raise CorruptionDetected(
                f"{self.path}: {self.report.summary()}; open with on_corruption='repair' to keep the log's valid "
                "prefix (the rest moves to quarantine/), or on_corruption='salvage' to keep every intact record",
                self.report,
            )
        if self.read_only:
            self._start_log_read_only(kept_files)
            return
        salvaging = self.on_corruption == "salvage" and self.judge.damage is not None
        if salvaging:
            self._salvage_log()
        verdict = self._verdict(salvaging)
        if salvaging:  # every segment stays until the compaction after the open; the log goes on in a new one
            kept = {i: self.salvaged_lengths.get(i, self.judge.kept.get(i, 0)) for i in live}
            writable = 0
        else:
            kept = live_segments(self.judge.kept, verdict.quarantine)
            writable = live[-1] if live else 0  # the newest segment scanned was opened for writing
        start = LogStart(
            kept, writable, covered, self.segment_size_target_bytes, self.clean_marker, self.clean_marker_present
        )
        start_actions, segment_id, offset = plan_log_start(start)
        for action in plan_changes(verdict) + start_actions:
            self._apply(action)
        self._start_log(kept, segment_id, offset)

    def _verdict(self, salvaging: bool) -> Verdict:
        """What the judge decided, for the plan. Salvage moves nothing: it copies every
        file the point-in-time verdict would move or cut into quarantine (rule 10) and
        leaves it in place, its intact frames live, for the compaction after the open."""
        judge = self.judge
        # (a segment holding nothing, a new one an earlier salvage created, is not copied)
        damaged = {segment_id for segment_id, _offset in judge.quarantine}
        copies = tuple(i for i in sorted(damaged) if self.segment_data[i].strip(b"\0")) if salvaging else ()
        moved = () if salvaging else tuple(judge.quarantine)
        return Verdict(
            torn=tuple(judge.torn_found),
            truncations=tuple(judge.truncations),
            quarantine=moved,
            compacted_damaged=self.compacted_id if self.compacted_damaged else 0,
            # A loss with nothing to move (a file the directory lost) is journaled too:
            # the open then rewrites the marker and starts the log, which erases the
            # evidence, so a crash before the report reaches the caller would leave the
            # loss reported zero times (rule 9; found by salvage seed 379).
            repair_journal=(
                repair_journal_text(self.report, self.corruptions_from_journals)
                if moved or copies or self.compacted_damaged or self._new_corruptions()
                else b""
            ),
            obsolete=tuple(self.obsolete),
            copies=copies,
        )

    def _new_corruptions(self) -> bool:
        """This open found a loss itself (not only one its journals reported again)."""
        return len(self.report.corruptions) > self.corruptions_from_journals

    def _salvage_log(self) -> None:
        """Take back, from every region point-in-time repair would give up, each frame
        that passes its checks (`kv.salvage`), and report exactly what is lost: the lsns,
        the keys as read from the damaged records, and the keys that may now hold an
        older value than one lost."""
        judge = self.judge
        assert judge.corruption_index is not None
        mark("salvage_log")
        starts: dict[int, int] = {}
        for segment_id, offset in judge.quarantine:
            starts[segment_id] = min(offset, starts.get(segment_id, offset))
        corruption = self.report.corruptions[judge.corruption_index]
        first = corruption.lsn_first_lost or 1
        salvaged = Salvaged()
        lsn_after = first - 1
        for segment_id in sorted(starts):
            data = self.segment_data[segment_id]
            lsn_after = salvage_log_region(data, starts[segment_id], segment_id, self.keydir, lsn_after, salvaged)
        self.salvaged_lengths = salvaged.ends
        last = max(corruption.lsn_last_lost or first - 1, salvaged.lsn_max)
        ranges = lost_ranges(first, last, salvaged.lsns)
        lost = sum(end - start + 1 for start, end in ranges)
        if corruption.count_known:
            at_risk = keys_at_risk(self.keydir, ranges[-1][1]) if ranges else ()
        else:  # lsns past the last one seen were lost too, of keys unknown
            lost, at_risk = max(lost, 1), keys_at_risk(self.keydir, None)
        taken = salvaged.lsns
        names = {
            key: None for lsn, key in sorted(salvaged.keys_read.items()) if first <= lsn <= last and lsn not in taken
        }
        self.report.corruptions[judge.corruption_index] = replace(
            corruption,
            detail=corruption.detail + "; salvage kept every intact frame past it (keys as damaged records read)",
            lsn_last_lost=last if ranges else corruption.lsn_last_lost,
            records_lost=lost,
            lsn_ranges_lost=tuple(ranges),
            keys_lost=tuple(names),
            records_salvaged=salvaged.records,
            keys_at_risk=at_risk,
        )
        count_applied(self.report, salvaged.frames, salvaged.records)
        judge.lsn_max = max(judge.lsn_max, salvaged.lsn_max)  # the log goes on past every lsn taken back
        self.compaction_needed = True

    # scan ------------------------------------------------------------------------------

    def _scan_directory(self) -> Listing:
        """List the store, report pending journals again (rule 9), read the CLEAN marker
        and name the files a finished compaction or write left obsolete (rule 11)."""
        names = self.io.listdir(self.path).result()
        if len(names) > DIRECTORY_ENTRIES_MAX:
            raise CorruptionDetected(f"{self.path} holds {len(names)} entries: not a store this library wrote")
        if QUARANTINE_DIRECTORY in names:
            self._read_pending_journals()
        self.corruptions_from_journals = len(self.report.corruptions)
        listing = classify(names)
        for name in listing.temporaries:
            mark("leftover_temporary_removed")
            self.obsolete.append(name)
        if listing.clean_marker:
            self.clean_marker = self._read_clean_marker()
            self.clean_marker_present = True
        segments, compacted, hints, covered = listing.segments, listing.compacted, listing.hints, listing.covered
        if segments and not self.clean_marker_present:
            mark("clean_marker_missing")
        if min(segments, default=covered + 1) <= covered or min(compacted, default=covered) < covered:
            mark("leftover_compaction_inputs_removed")
        if hints - {covered}:
            mark("hint_stale_removed")
        self.obsolete += [segment_name(i) for i in segments if i <= covered]
        self.obsolete += [compacted_name(i) for i in compacted if i < covered]
        self.obsolete += [hint_name(i) for i in hints if i != covered]
        return listing

    def _load_compacted(self, segment_id: int, has_hint: bool) -> None:
        """Load the compacted file through its hint when the hint is usable, else by
        scanning it (rule 12)."""
        file = self._open(compacted_name(segment_id), "r")
        self.compacted_id, self.compacted_file = segment_id, file
        size = self.io.size(file).result()
        entries = self._read_hint(segment_id, size) if has_hint else None
        if not has_hint:
            mark("hint_missing")
        if entries is not None and self.on_corruption != "salvage":  # salvage reads every record
            self.report.hint_files_used += 1
            load_entries(self.keydir, -segment_id, entries)
            self.lsn_max = max(self.lsn_max, max((entry[3] for entry in entries), default=0))
            self.report.records_applied += len(entries)
            return
        data, scan = self._scan(segment_id, file, self._read(file, 0, size), compacted=True)
        self.report.segments_scanned += 1
        if scan.bad_offset is not None and self.on_corruption == "salvage":
            self._salvage_compacted(segment_id, data, scan, entries)
            return
        frames = scan.frames + scan.frames_after_damage
        records, lsn_max = apply_frames(data, frames, self.keydir, -segment_id)
        count_applied(self.report, len(frames), records)
        self.lsn_max = max(self.lsn_max, lsn_max)
        if (corruption := judge_compacted(segment_id, data, scan)) is not None:
            self.compaction_needed = self.compacted_damaged = True
            self.report.corruptions.append(corruption)

    def _salvage_compacted(self, segment_id: int, data: bytes, scan: SegmentScan, hint: list[HintEntry] | None) -> None:
        """A damaged compacted file, salvaged (`kv.salvage`): every record that passes
        its own CRC is kept, damaged frames included; the keys lost are named exactly by
        an intact hint, else as the damaged records read."""
        corruption = judge_compacted(segment_id, data, scan)
        assert corruption is not None
        mark("salvage_compacted")
        result = salvage_compacted(data, segment_id, self.keydir, hint)
        count_applied(self.report, 0, result.records_kept)
        self.lsn_max = max(self.lsn_max, result.lsn_max)
        named = "the hint names the keys" if hint is not None else "keys as the damaged records read"
        self.report.corruptions.append(
            replace(
                corruption,
                detail=f"damaged frames in the compacted file; salvage kept every intact record ({named})",
                records_lost=result.records_lost,
                count_known=result.count_known,
                keys_lost=tuple(dict.fromkeys(result.keys_lost)),
                records_salvaged=max(result.records_kept - result.records_in_valid_frames, 0),
            )
        )
        self.compaction_needed = self.compacted_damaged = True

    def _read_hint(self, segment_id: int, data_length: int) -> list[HintEntry] | None:
        """The hint's entries, or None (counted as ignored) when it is damaged, does not
        match its data file or cannot be read: only a lost shortcut (rule 12)."""
        hint_file = self.io.open(self._path(hint_name(segment_id)), "r").result()
        entries = None
        try:
            hint_size = self.io.size(hint_file).result()
            entries = decode_hint(read_exact(self.io, hint_file, 0, hint_size), segment_id, data_length)
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
        return entries

    def _replay_log(self, segment_ids: list[int]) -> dict[int, tuple[File, int]]:
        """Read and judge the log segments in order (rule 6); return the kept segments
        (id -> handle, kept length). A segment past the first damage is closed at once;
        the judge's last word may drop more (`LogJudge.finish`)."""
        self.judge.begin(segment_ids)
        for index, segment_id in enumerate(segment_ids):
            newest = index == len(segment_ids) - 1
            unreadable_before = self.report.unreadable_bytes
            file, data = self._read_segment(segment_id, "w" if newest and not self.read_only else "r")
            data, scan = self._scan(segment_id, file, data, compacted=False)
            if newest:
                self.newest_data = (segment_id, data)
            previous = segment_ids[index - 1] if index > 0 else None
            unreadable = self.report.unreadable_bytes > unreadable_before
            salvage = self.on_corruption == "salvage"
            if salvage:  # what the judge gives up, salvage may take back (`_salvage_log`)
                self.segment_data[segment_id] = data
            if self.judge.take(segment_id, previous, newest, data, scan, unreadable) or salvage:
                self.files[segment_id] = file
            else:
                close_quietly(self.io, file)
        for segment_id in self.judge.finish():
            if self.on_corruption != "salvage":
                close_quietly(self.io, self.files.pop(segment_id))
        return {segment_id: (self.files[segment_id], length) for segment_id, length in self.judge.kept.items()}

    def _read_segment(self, segment_id: int, mode: OpenMode) -> tuple[File, bytes]:
        file = self._open(segment_name(segment_id), mode)
        size = self.io.size(file).result()
        if size > SEGMENT_SIZE_MAX_BYTES:
            close_quietly(self.io, file)
            raise CorruptionDetected(f"{segment_name(segment_id)} is {size} bytes, more than any segment we write")
        return file, self._read(file, 0, size)

    def _scan(self, segment_id: int, file: File, data: bytes, compacted: bool) -> tuple[bytes, SegmentScan]:
        """Scan a file, damage confirmed by a second read (`scan_confirmed`, rule 7):
        repair would cut away what a transient read error made look damaged. Reads that
        never agree raise `IoError`: the disk is unreliable now, and nothing is cut."""
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
        UNREADABLE_FILL (never zeros: a zero tail would pass for free space, rule 5), so
        the scan sees damage and recovery reports it."""
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

    def _read_clean_marker(self) -> tuple[int, int] | None:
        """The marker's record, or None (as if the close was not clean: a rewrite, rule
        3). A marker that exists but fails with EIO or does not decode (it is written by
        rename, so only the medium damages it) leaves `clean_marker_unknown` set: it may
        record the end of the newest segment durable, so damage there is not judged torn."""
        marker = self.io.open(self._path(CLEAN_MARKER_NAME), "r").result()
        try:
            decoded = decode_clean_marker(read_exact(self.io, marker, 0, CLEAN_MARKER_SIZE_MAX_BYTES))
        except IoError as error:
            if error.errno != errno.EIO:
                raise
            decoded = None
        finally:
            close_quietly(self.io, marker)
        self.clean_marker_unknown = decoded is None
        return decoded

    # apply -----------------------------------------------------------------------------

    def _apply(self, action: Action) -> None:
        """Carry out one planned action; raises `IoError` (the next open judges again)."""
        match action:
            case WriteTornJournal(tails):
                self._write_torn_journal(list(tails))
            case Truncate(segment_id, offset):
                self._truncate(self.files[segment_id], offset)
            case WriteRepairJournal(text):
                mark("quarantine_written")
                self._write_repair_journal(text)
            case Quarantine():
                self._quarantine(action)
            case FinishQuarantine():
                self.io.sync_dir(self._path(QUARANTINE_DIRECTORY)).result()
                self.io.sync_dir(self.path).result()
                self.report.repaired = True
            case Remove(name):
                self.io.unlink(self._path(name)).result()
            case SyncDirectory():
                self.io.sync_dir(self.path).result()
            case MakeDurable(segment_id, length):
                self._make_durable(segment_id, length)
            case Seal(segment_id, length):
                self._seal(self.files[segment_id], length)
            case CreateSegment(segment_id):
                self.files[segment_id] = self._open(segment_name(segment_id), "x")
            case WriteMarker(segment_id, length):
                write_clean_marker(self.io, self.path, segment_id, length, sync_directory=False)

    def _truncate(self, file: File, offset: int) -> None:
        """Cut a torn tail (rule 4), synced (rule 1); a sealed segment's handle is
        read-only, so a writable one is opened for the cut."""
        if file.mode == "r":
            writable = self.io.open(file.path, "w").result()
            self.io.truncate(writable, offset).result()
            self.io.sync(writable).result()
            self.io.close(writable).result()
        else:
            self.io.truncate(file, offset).result()
            self.io.sync(file).result()

    def _seal(self, file: File, length: int) -> None:
        """Sealed segments end at their last frame (rule 5)."""
        if file.mode == "w":
            self.io.truncate(file, length).result()
            self.io.sync(file).result()

    def _quarantine_directory(self) -> tuple[str, set[str]]:
        """quarantine/, created and durable (rule 8), and the names in it (kept up to
        date by the callers that add names)."""
        quarantine = self._path(QUARANTINE_DIRECTORY)
        if self.quarantine_listing is None:
            self.io.mkdir(quarantine).result()
            self.io.sync_dir(self.path).result()  # the directory itself, before the journal in it counts
            self.quarantine_listing = set(self.io.listdir(quarantine).result())
        return quarantine, self.quarantine_listing

    def _quarantine(self, action: Quarantine) -> None:
        """Move one file, or a copy of its tail, into quarantine/ under the first free
        serial (rule 10)."""
        quarantine, existing = self._quarantine_directory()
        name, offset = action.name, action.offset
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

    def _copy_tail(self, source: str, offset: int | None, target: str) -> None:
        """Copy `source` from `offset` (all of it for None) into `target`, synced; then
        cut `source` at `offset` (rule 10: the copy is durable before the cut)."""
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

    def _make_durable(self, segment_id: int, length: int) -> None:
        """Make the bytes recovery read back of the newest kept segment durable (rule 2):
        after a failed sync the page cache can hold bytes the disk never got, and
        recovery must not build on them.

        They go into a fresh file that replaces the segment by rename, never over it
        (rule 1): a write interrupted by a power loss can leave garbage in the sectors it
        covered, and an in-place rewrite would put acknowledged frames under it (found by
        completion_corruption: a crash during recovery's rewrite tore three durable
        frames). The directory is synced before the replacement is used: from here on
        reads return these bytes, so they must survive a crash. The segment's handle is
        replaced by a new one, opened for writing.
        """
        file = self.files[segment_id]
        read_id, data = self.newest_data
        if read_id != segment_id:  # the newest segment went to quarantine: this one is newest now
            data, scan = self._scan(segment_id, file, self._read(file, 0, length), compacted=False)
            if scan.valid_length < length:  # never write back bytes that failed their checks
                return
        name = segment_name(segment_id)
        write_durably(self.io, self.path, name, data[:length], opened=self.opened)
        close_quietly(self.io, file)
        self.report.segment_bytes_rewritten += length
        self.files[segment_id] = self._open(name, "w")
        self.rewritten.add(segment_id)

    def _start_log(self, kept: dict[int, int], segment_id: int, offset: int) -> None:
        """The segment writer, on the log the plan made durable."""
        if segment_id in kept and segment_id not in self.rewritten:
            allocated = self.judge.allocated.get(segment_id, offset)  # preallocated zeros stay (rule 5)
        else:
            allocated = offset
        self.lsn_max = self.judge.lsn_max
        self.log = SegmentLog(
            io=self.io,
            directory=self.path,
            segment_id=segment_id,
            file=self.files[segment_id],
            write_offset=offset,
            next_lsn=self.lsn_max + 1,
            segment_size_target_bytes=self.segment_size_target_bytes,
            durable_lsn=self.lsn_max,
            directory_dirty=False,  # a segment this open created was synced into the directory (rule 1)
            sealed={i: self.files[i] for i in kept if i != segment_id},
            allocated_bytes=allocated,
            preallocation_bytes=min(SEGMENT_PREALLOCATION_BYTES, self.segment_size_target_bytes),
        )

    # journals (rule 8, rule 9): a loss is reported even when the open that found it fails

    def _write_repair_journal(self, text: bytes) -> None:
        """Before anything moves, record durably what this repair loses (rule 8). Until
        an open succeeds, every open reports it again (rule 9), so a repair that fails
        halfway (its changes in the page cache, the next open finding nothing wrong)
        cannot turn a reported loss into a silent one. Written in place: a journal that
        does not parse still reports a loss, of an unknown count."""
        quarantine, existing = self._quarantine_directory()
        serial = sum(name.startswith(JOURNAL_PREFIX) for name in existing)
        name = journal_name(JOURNAL_PREFIX, serial, JOURNAL_PENDING)
        journal = self.io.open(f"{quarantine}/{name}", "w").result()
        try:
            self.io.write(journal, 0, text).result()
            self.io.sync(journal).result()
        finally:
            close_quietly(self.io, journal)
        self.io.sync_dir(quarantine).result()
        self.journals.append(name)

    def _write_torn_journal(self, tails: list[TornTail]) -> None:
        """Before a torn tail is cut, record it durably (rule 8). A torn tail is reported
        as unacknowledged data, but when a media fault damaged an acknowledged last frame
        the report is the only trace of that loss: a recovery that cuts the tail and then
        crashes must not lose it. Until an open succeeds, every open reports it again
        (rule 9). Written durably under a temporary name (rule 1), so a pending journal
        that does not parse was damaged at rest."""
        quarantine, existing = self._quarantine_directory()
        serial = 0
        while journal_name(TORN_JOURNAL_PREFIX, serial, JOURNAL_PENDING) in existing or (
            journal_name(TORN_JOURNAL_PREFIX, serial, JOURNAL_TEMPORARY) in existing
        ):
            serial += 1
        name = journal_name(TORN_JOURNAL_PREFIX, serial, JOURNAL_PENDING)
        temporary = journal_name(TORN_JOURNAL_PREFIX, serial, JOURNAL_TEMPORARY)
        existing.update((name, temporary))
        text = torn_journal_text(tails)
        write_durably(self.io, quarantine, name, text, temporary=temporary, close_quietly_always=True)
        existing.discard(temporary)
        self.journals.append(name)

    def _read_journal(self, quarantine: str, name: str) -> bytes:
        journal = self.io.open(f"{quarantine}/{name}", "r").result()
        try:
            return self._read(journal, 0, self.io.size(journal).result())
        finally:
            close_quietly(self.io, journal)

    def _read_pending_journals(self) -> None:
        """Report every pending journal again (rule 9); note torn-tail debris."""
        quarantine = self._path(QUARANTINE_DIRECTORY)
        for name in self.io.listdir(quarantine).result():
            if name.startswith(TORN_JOURNAL_PREFIX) and name.endswith(JOURNAL_TEMPORARY):
                self.journal_debris.append(name)  # its tails were not cut yet: this open finds them
                continue
            if name.startswith(TORN_JOURNAL_PREFIX) and name.endswith(JOURNAL_PENDING):
                mark("journal_torn_replayed")
                found = read_torn_journal(name, self._read_journal(quarantine, name))
                if isinstance(found, list):
                    self.report.torn_tails.extend(found)
                else:
                    self.report.corruptions.append(found)
                self.journals.append(name)
                continue
            if not (name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_PENDING)):
                continue
            mark("journal_repair_replayed")
            self.report.corruptions.append(read_repair_journal(name, self._read_journal(quarantine, name)))
            self.journals.append(name)

    @property
    def journals_pending(self) -> bool:
        return bool(self.journals or self.journal_debris)

    def settle_journals(self) -> None:
        """Call only once this open's report has reached the caller (`kv.open`
        returned): then the journals are done (rule 9). Repair journals stay (as
        `.reported`) beside the data they moved; torn-tail journals, which moved nothing,
        are removed. Never inside the open itself: a crash there may keep a removal that
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

    # a read-only open ------------------------------------------------------------------

    def _start_log_read_only(self, kept: dict[int, tuple[File, int]]) -> None:
        """A writer over the kept segments that will never write: the newest is its
        (read-only) active file, cut in memory at the end of its valid frames (a torn
        tail stays on disk for the next writable open to cut). Raises
        `CorruptionDetected` when no segment is left to read from."""
        moved = {segment_id for segment_id, offset in self.judge.quarantine if offset == 0}  # as the plan would
        kept = {segment_id: kept_file for segment_id, kept_file in kept.items() if segment_id not in moved}
        if not kept:
            detail = "holds no store" if not self.compacted_file else "has a compacted file and no log segment"
            raise CorruptionDetected(f"{self.path} {detail}; a read-only open changes nothing: open it writable")
        newest = max(kept)
        file, length = kept[newest]
        self.lsn_max = self.judge.lsn_max
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
