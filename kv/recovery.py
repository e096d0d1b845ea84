"""Pure replay: segment bytes in, keydir entries and a report out. No I/O.

Recovery keeps two failures apart:

- a **torn tail**: the newest log segment ends in a frame that fails its checks and no
  valid frame follows. This is what a crash during a write leaves behind; the store
  truncates it (it was never acknowledged in `always` mode) and reports the bytes and
  the records it held, when the header still says how many.
- **corruption**: a bad frame followed by valid frames, a gap in the log sequence
  numbers, or a bad frame at the end of a segment that is not the newest. Acknowledged
  data was destroyed. For the log the store keeps point-in-time semantics: it applies
  the valid prefix up to the first damage and reports exactly which lsns were lost
  (the damaged ones and the valid ones after them that it cannot apply without breaking
  prefix consistency). In a compacted file every record is an independent live key, so
  only the damaged frames are lost; the hint file names their keys.

The rules these judgements serve are numbered in `kv.opening` (rules 4, 5 and 6); the
decisions built on these scans are `kv.judge`'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from crc32c import crc32c

from kv.keydir import Keydir as Keydir  # re-exported: callers name it kv.recovery.Keydir
from kv.keydir import Location as Location  # re-exported: callers name it kv.recovery.Location
from kv.keydir import apply_list_record
from kv.limits import FRAME_PAYLOAD_SIZE_MAX_BYTES, READ_RETRIES_MAX
from kv.marks import mark
from kv.record import (
    FRAME_HEADER_SIZE,
    KIND_DELETE,
    KIND_SET,
    KINDS,
    MAGIC_BYTES,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    FrameHeader,
    decode_frame_header,
    frame_crc_ok,
)


@dataclass(frozen=True)
class TornTail:
    """Bytes at the end of the newest segment that held no whole, valid frame."""

    segment_id: int
    offset: int
    bytes_dropped: int
    records_dropped: int  # from the torn frame's header when readable, else 0
    # Cut by an earlier open whose report may not have reached its caller (it crashed,
    # or the store was not written to before the next crash): reported again from its
    # journal. A loss may be reported twice, never zero times.
    again: bool = False


@dataclass(frozen=True)
class Corruption:
    """Acknowledged data destroyed on disk, and what was lost because of it."""

    file_name: str
    offset: int
    detail: str
    lsn_first_lost: int | None = None
    lsn_last_lost: int | None = None
    records_lost: int = 0
    keys_lost: tuple[bytes, ...] = ()
    # False when no lsn past the damage could be read (unreadable or garbled frames at
    # the end of the log): then `records_lost` is a lower bound, not a count.
    count_known: bool = True
    # Salvage (`kv.salvage`): the lsns lost exactly, as inclusive ranges (empty: the
    # whole range lsn_first_lost..lsn_last_lost), the records taken back from past the
    # damage, and the kept keys that may hold an older value than one lost ("lost
    # newer value, older value kept").
    lsn_ranges_lost: tuple[tuple[int, int], ...] = ()
    records_salvaged: int = 0
    keys_at_risk: tuple[bytes, ...] = ()


@dataclass
class RecoveryReport:
    """What opening a store found. `clean` when nothing was torn or corrupt."""

    segments_scanned: int = 0
    frames_applied: int = 0
    records_applied: int = 0
    hint_files_used: int = 0
    hint_files_ignored: int = 0
    torn_tails: list[TornTail] = field(default_factory=list)
    corruptions: list[Corruption] = field(default_factory=list)
    segment_bytes_rewritten: int = 0  # after an unclean close: made durable again (fsyncgate)
    unreadable_bytes: int = 0  # read as EIO (latent sector errors) and treated as damage
    repaired: bool = False
    quarantined: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.torn_tails and not self.corruptions

    @property
    def records_lost(self) -> int:
        return sum(c.records_lost for c in self.corruptions)

    def summary(self) -> str:
        parts = [f"{self.segments_scanned} segments, {self.records_applied} records replayed"]
        for tail in self.torn_tails:
            parts.append(
                f"torn tail in segment {tail.segment_id} at offset {tail.offset}: "
                f"{tail.bytes_dropped} bytes, {tail.records_dropped} unacknowledged records dropped"
                + (" (cut by an earlier open, reported again)" if tail.again else "")
            )
        for corruption in self.corruptions:
            lost = f"{corruption.records_lost} records lost"
            if not corruption.count_known:
                lost = f"at least {corruption.records_lost} records lost (the damaged frames cannot be counted)"
            if corruption.lsn_ranges_lost:
                lost += " (lsn " + ", ".join(f"{first}..{last}" for first, last in corruption.lsn_ranges_lost[:8])
                lost += ", ...)" if len(corruption.lsn_ranges_lost) > 8 else ")"
            elif corruption.lsn_first_lost is not None:  # (no last lsn: none read past the damage)
                lost += f" (lsn {corruption.lsn_first_lost}..{corruption.lsn_last_lost or ''})"
            if corruption.keys_lost:
                lost += f", keys {list(corruption.keys_lost)[:8]}"
            if corruption.records_salvaged:
                lost += f"; {corruption.records_salvaged} intact records salvaged"
            if corruption.keys_at_risk:
                lost += (
                    f"; {len(corruption.keys_at_risk)} keys may have lost a newer value (older value kept): "
                    f"{list(corruption.keys_at_risk)[:8]}"
                )
            parts.append(
                f"corruption in {corruption.file_name} at offset {corruption.offset}: {corruption.detail}; {lost}"
            )
        return "; ".join(parts)


@dataclass
class SegmentScan:
    """The valid frames of one file, and where the first damage starts (if any)."""

    segment_id: int
    frames: list[tuple[int, FrameHeader]]
    valid_length: int
    bad_offset: int | None = None
    bad_header: FrameHeader | None = None  # the damaged frame's header, when readable
    resume_offset: int | None = None  # first valid frame after the damage
    frames_after_damage: list[tuple[int, FrameHeader]] = field(default_factory=list)
    # the highest lsn of any valid frame past the damage, further damage included (what
    # point-in-time recovery loses runs at least this far)
    lsn_max_beyond: int | None = None
    # nonzero bytes after the last valid frame (past the damage): damaged frames there
    # may hold records whose lsns no valid frame shows, so a count of lost records that
    # ends at the last lsn seen is only a lower bound
    damage_after_last_frame: bool = False

    @property
    def first_lsn(self) -> int | None:
        return self.frames[0][1].first_lsn if self.frames else None

    @property
    def last_lsn(self) -> int | None:
        if not self.frames:
            return None
        header = self.frames[-1][1]
        return header.first_lsn + header.count - 1

    @property
    def last_lsn_seen(self) -> int | None:
        """The highest lsn in any valid frame, damaged region included."""
        frames = self.frames_after_damage or self.frames
        if not frames:
            return self.lsn_max_beyond
        header = frames[-1][1]
        last = header.first_lsn + header.count - 1
        return last if self.lsn_max_beyond is None else max(last, self.lsn_max_beyond)


def valid_frame_at(data: bytes, offset: int, segment_id: int, compacted: bool) -> FrameHeader | None:
    """The header of the frame at `offset` when the frame passes every check: its segment
    id, its kind, its place (a log segment's first frame, only it, at offset 0) and its
    CRC; else None."""
    header = decode_frame_header(data, offset)
    if header is None or header.segment_id != segment_id or header.compacted != compacted:
        return None
    if not compacted and header.segment_start != (offset == 0):  # a whole frame in the wrong place
        mark("frame_segment_start_misplaced")
        return None
    return header if frame_crc_ok(data, offset, header) else None


def scan_segment(segment_id: int, data: bytes, compacted: bool = False) -> SegmentScan:
    """Walk the frames of one file; stop at the first damage and look past it.

    In a log segment a frame whose lsns do not follow the previous frame's is damage
    too (a lost, stale or misdirected write that happens to carry a valid CRC).
    """
    frames: list[tuple[int, FrameHeader]] = []
    offset = 0
    next_lsn: int | None = None
    while offset < len(data):
        header = valid_frame_at(data, offset, segment_id, compacted)
        if header is None or (not compacted and next_lsn is not None and header.first_lsn != next_lsn):
            break
        frames.append((offset, header))
        offset += header.size
        next_lsn = header.first_lsn + header.count
    scan = SegmentScan(segment_id, frames, valid_length=offset)
    if offset >= len(data):
        return scan
    scan.bad_offset = offset
    scan.bad_header = decode_frame_header(data, offset)
    scan.damage_after_last_frame = nonzero_from(data, offset)
    position = data.find(MAGIC_BYTES, offset + 1)
    while position != -1:
        header = valid_frame_at(data, position, segment_id, compacted)
        if header is not None:
            scan.resume_offset = position
            break
        position = data.find(MAGIC_BYTES, position + 1)
    if scan.resume_offset is not None:
        position = scan.resume_offset
        while position < len(data):
            header = valid_frame_at(data, position, segment_id, compacted)
            if header is None:
                break
            scan.frames_after_damage.append((position, header))
            position += header.size
        scan.lsn_max_beyond, last_end = _lsn_max_from(data, position, segment_id, compacted)
        scan.damage_after_last_frame = nonzero_from(data, max(position, last_end))
    return scan


def nonzero_from(data: bytes, position: int) -> bool:
    """Whether any byte of `data` from `position` on is nonzero."""
    return len(data.rstrip(b"\0")) > position


def _lsn_max_from(data: bytes, position: int, segment_id: int, compacted: bool) -> tuple[int | None, int]:
    """The highest lsn of a valid frame at or after `position`, past any damage, and
    where the last such frame ends (0 when there is none)."""
    highest = None
    end = 0
    position = data.find(MAGIC_BYTES, position)
    while position != -1:
        header = valid_frame_at(data, position, segment_id, compacted)
        if header is None:
            position = data.find(MAGIC_BYTES, position + 1)
            continue
        last = header.first_lsn + header.count - 1
        highest = last if highest is None else max(highest, last)
        end = position + header.size
        position = data.find(MAGIC_BYTES, end)
    return highest, end


def scan_confirmed(
    segment_id: int, data: bytes, read_again: Callable[[], bytes], compacted: bool = False
) -> tuple[bytes, SegmentScan, bool]:
    """`scan_segment`, with damage confirmed: on damage the file is read again (up to
    READ_RETRIES_MAX times) and counts as damaged only once two reads in a row agree, so
    a transient read error is not taken for damage on disk (rule 7 of `kv.opening`).
    Returns the bytes, their scan and whether it can be trusted (False: the reads never
    agreed, and they showed damage)."""
    scan = scan_segment(segment_id, data, compacted=compacted)
    for _ in range(READ_RETRIES_MAX):
        if scan.bad_offset is None:
            return data, scan, True
        again = read_again()
        if again == data:
            return data, scan, True
        mark("read_again_differed")
        data, scan = again, scan_segment(segment_id, again, compacted=compacted)
    return data, scan, scan.bad_offset is None


def frames_in_damaged_tail(data: bytes, start: int, first_header: FrameHeader | None = None) -> tuple[bool, int]:
    """Whether the damaged bytes from `start` to the last nonzero byte held more than one
    frame, and the highest lsn of any intact record among them (0 if none).

    A torn write damages one frame, the last; in `always` mode every earlier frame was
    synced before it was written, so damage spanning frames is media damage to
    acknowledged data, not a torn tail. The evidence: a second frame header, two intact
    records with a frame header's worth of bytes between them, or (when the damaged
    frame's header still reads, `first_header`) an intact record with an lsn past that
    frame's. Records are found
    by their own CRC, so a damaged frame header hides nothing; random bytes pass a
    CRC32C with probability 2**-32.
    """
    end = len(data.rstrip(b"\0"))
    spans = end - start > FRAME_HEADER_SIZE + FRAME_PAYLOAD_SIZE_MAX_BYTES
    position = data.find(MAGIC_BYTES, start + 1, end)
    while position != -1 and not spans:
        spans = decode_frame_header(data, position) is not None
        position = data.find(MAGIC_BYTES, position + 1, end)
    record_ends = set()
    lsn_max = 0
    lsn_after_first = first_header.first_lsn + first_header.count if first_header is not None else None
    unpack = RECORD_HEADER.unpack_from
    for position in range(start, end - RECORD_HEADER_SIZE + 1):
        if data[position + 4] not in KINDS:  # cheap filter before unpacking
            continue
        crc, _kind, _flags, key_length, value_length, lsn, _expiry = unpack(data, position)
        length = RECORD_HEADER_SIZE + key_length + value_length
        if position + length > end or crc32c(data[position + 4 : position + length]) != crc:
            continue
        spans = spans or position - FRAME_HEADER_SIZE in record_ends
        spans = spans or (lsn_after_first is not None and lsn >= lsn_after_first)
        record_ends.add(position + length)
        lsn_max = max(lsn_max, lsn)
    return spans, lsn_max


def apply_frames(data: bytes, frames: list[tuple[int, FrameHeader]], keydir: Keydir, file_key: int) -> tuple[int, int]:
    """Replay the records of valid frames onto `keydir`; return (records, highest lsn).
    Only whole, valid frames come here: a frame is applied all or nothing (rule 13 of
    `kv.opening`).

    The frame CRC was checked, so a record that does not fit its frame is a writer bug:
    asserted, not handled.
    """
    unpack = RECORD_HEADER.unpack_from
    records = 0
    lsn_max = 0
    for offset, header in frames:
        position = offset + FRAME_HEADER_SIZE
        end = position + header.payload_length
        expected_lsn = header.first_lsn
        compacted = header.compacted
        for _ in range(header.count):
            _crc, kind, _flags, key_length, value_length, lsn, expiry_ms = unpack(data, position)
            length = RECORD_HEADER_SIZE + key_length + value_length
            assert position + length <= end, "record overruns its frame"
            assert compacted or lsn == expected_lsn, "log record lsn out of sequence"
            key = data[position + RECORD_HEADER_SIZE : position + RECORD_HEADER_SIZE + key_length]
            if kind == KIND_SET:
                keydir[key] = (file_key, position, length, lsn, expiry_ms)
            elif kind == KIND_DELETE:
                keydir.pop(key, None)
            else:
                apply_list_record(keydir, kind, key, (file_key, position, length, lsn, expiry_ms))
            position += length
            expected_lsn += 1
            lsn_max = lsn
        assert position == end, "frame payload holds more than its records"
        records += header.count
    return records, lsn_max
