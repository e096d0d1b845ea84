"""Salvage: keep every frame and record that passes its checks. Pure, no I/O.

`on_corruption="salvage"` is the anchor of RocksDB's `kSkipAnyCorruptedRecords`, made
honest about what it cannot know. Point-in-time repair (`"repair"`) keeps the log's
valid prefix and gives up everything after the first damage; salvage starts from the
same verdict (`kv.judge.LogJudge`: the prefix, the lsns it loses, the regions it would
quarantine) and then takes back, from those regions, what is still whole:

- in log segments, every frame that passes its CRC (rule 13 of `kv.opening`: a frame is
  atomic, so a batch is kept whole or lost whole; a record is never taken out of a
  damaged frame), applied in lsn order, each lsn once;
- in a compacted file, every record that passes its own CRC, in a damaged frame too
  (each record there is an independent live key, rule 12); with an intact hint a
  record is kept only where the hint says that key's record is.

What it reports (`Corruption.lsn_ranges_lost`, `keys_lost`, `keys_at_risk`):

- the lsns lost, exactly (the lsns the point-in-time verdict lost, minus the ones
  taken back), or a lower bound when damaged frames past the last lsn seen cannot be
  counted (`count_known` False);
- the keys lost: exact from a hint; otherwise as read from the damaged records, which
  failed their checks, so a name may itself be damaged;
- the keys at risk: salvage never returns a value older than one it lost for the same
  key without saying so. A lost log record's key is never verified (it failed its
  CRC), so every kept key whose newest kept record is older than a lost lsn might have
  lost a newer value (or a delete) there: those keys are kept, with their older value,
  and named in `keys_at_risk` ("lost newer value, older value kept"). Keys only in a
  compacted file are never at risk: it holds one record per key, and nothing older.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from crc32c import crc32c

from kv.compaction import HintEntry
from kv.keydir import Entry, ListEntry
from kv.record import (
    FRAME_HEADER_SIZE,
    KIND_SET,
    KINDS,
    MAGIC_BYTES,
    RECORD_HEADER,
    RECORD_HEADER_SIZE,
    FrameHeader,
    decode_frame_header,
)
from kv.recovery import Keydir, apply_frames, valid_frame_at

# A lost record is named by at most this many keys in a report (the rest are counted):
# a damaged region of a 64 MiB segment can hold a million records.
SALVAGE_KEYS_REPORTED_MAX = 100_000


@dataclass
class Salvaged:
    """What salvage took back from damaged regions, and what it could read of the rest."""

    frames: int = 0
    records: int = 0
    lsns: set[int] = field(default_factory=set)  # the log lsns taken back
    lsn_max: int = 0
    keys_read: dict[int, bytes] = field(default_factory=dict)  # lost lsn -> key as read (unverified)
    ends: dict[int, int] = field(default_factory=dict)  # segment id -> end of its last frame taken back


def valid_frames_from(data: bytes, start: int, segment_id: int, compacted: bool) -> list[tuple[int, FrameHeader]]:
    """Every frame at or after `start` that passes its checks (its segment id, its place,
    its CRC), found by its magic past any damage."""
    frames: list[tuple[int, FrameHeader]] = []
    position = data.find(MAGIC_BYTES, start)
    while position != -1:
        header = valid_frame_at(data, position, segment_id, compacted)
        if header is None:
            position = data.find(MAGIC_BYTES, position + 1)
            continue
        frames.append((position, header))
        position = data.find(MAGIC_BYTES, position + header.size)
    return frames


def salvage_log_region(
    data: bytes, start: int, segment_id: int, keydir: Keydir, lsn_after: int, salvaged: Salvaged
) -> int:
    """Apply to `keydir` every valid frame of a log segment from `start` whose lsns all
    come after `lsn_after` (and after every frame taken before: each lsn once, in order);
    note the keys of the damaged frames' records as far as they read. Returns the
    highest lsn applied (or `lsn_after`)."""
    frames = valid_frames_from(data, start, segment_id, compacted=False)
    position = start
    salvaged.ends[segment_id] = start
    for offset, header in frames:
        _read_damaged_keys(data, position, offset, salvaged)
        position = offset + header.size
        if header.first_lsn <= lsn_after:
            continue  # a stale or repeated frame: its lsns were applied already
        records, lsn_max = apply_frames(data, [(offset, header)], keydir, segment_id)
        salvaged.frames += 1
        salvaged.records += records
        salvaged.lsns.update(range(header.first_lsn, lsn_max + 1))
        salvaged.lsn_max = max(salvaged.lsn_max, lsn_max)
        salvaged.ends[segment_id] = position
        lsn_after = lsn_max
    _read_damaged_keys(data, position, len(data.rstrip(b"\0")), salvaged)
    return lsn_after


def _read_damaged_keys(data: bytes, start: int, end: int, salvaged: Salvaged, consecutive: bool = True) -> None:
    """The keys of the records of the damaged frame at `start` (bytes up to `end`), as
    far as its header and the records' lengths still read: names for a report, never
    trusted for a value. In a log frame (`consecutive`) each record's lsn must be the
    header's first lsn plus its index."""
    header = decode_frame_header(data, start) if end > start else None
    if header is None:
        return
    position = start + FRAME_HEADER_SIZE
    frame_end = min(end, position + header.payload_length)
    for index in range(header.count):
        if position + RECORD_HEADER_SIZE > frame_end or len(salvaged.keys_read) >= SALVAGE_KEYS_REPORTED_MAX:
            return
        _crc, kind, _flags, key_length, value_length, lsn, _expiry = RECORD_HEADER.unpack_from(data, position)
        length = RECORD_HEADER_SIZE + key_length + value_length
        if kind not in KINDS or position + length > frame_end or (consecutive and lsn != header.first_lsn + index):
            return
        key_start = position + RECORD_HEADER_SIZE
        salvaged.keys_read[lsn if consecutive else position] = data[key_start : key_start + key_length]
        position += length


def lost_ranges(first: int, last: int, taken: set[int]) -> list[tuple[int, int]]:
    """The runs of lsns from `first` to `last` not in `taken`, as inclusive ranges."""
    ranges: list[tuple[int, int]] = []
    run_start = None
    for lsn in range(first, last + 1):
        if lsn in taken:
            if run_start is not None:
                ranges.append((run_start, lsn - 1))
                run_start = None
        elif run_start is None:
            run_start = lsn
    if run_start is not None:
        ranges.append((run_start, last))
    return ranges


def _newest_lsn(entry: Entry) -> int:
    """The lsn of a keydir entry's newest record (a list's: its newest element's)."""
    if isinstance(entry, ListEntry):
        return max(location[3] for location in entry)
    return entry[3]


def _points_at(entry: Entry | None, offset: int) -> bool:
    """Whether a keydir entry holds the record at `offset` (of the compacted file)."""
    if entry is None:
        return False
    if isinstance(entry, ListEntry):
        return any(location[1] == offset and location[0] < 0 for location in entry)
    return entry[1] == offset


def keys_at_risk(keydir: Mapping[bytes, Entry], lsn_lost_max: int | None) -> tuple[bytes, ...]:
    """The kept keys whose newest kept record is older than the newest lost log lsn
    (`lsn_lost_max`; None: the lost lsns have no known end, so every key): the lost
    record there may have been a newer value or a delete of any of them. Keys of the
    compacted file count too: a lost log lsn is newer than all of them."""
    return tuple(
        sorted(key for key, entry in keydir.items() if lsn_lost_max is None or _newest_lsn(entry) < lsn_lost_max)
    )


@dataclass
class CompactedSalvage:
    """What salvage kept and lost of a damaged compacted file."""

    records_kept: int = 0
    records_in_valid_frames: int = 0  # what point-in-time repair keeps of the file too
    lsn_max: int = 0
    records_lost: int = 0
    count_known: bool = True
    keys_lost: list[bytes] = field(default_factory=list)


# offset -> (key, record length, lsn, expiry_ms): a record that passed its own CRC
_Found = dict[int, tuple[bytes, int, int, int]]


def salvage_compacted(
    data: bytes,
    segment_id: int,
    keydir: Keydir,
    hint: list[HintEntry] | None,
) -> CompactedSalvage:
    """Apply to `keydir` every record of a compacted file that passes its own CRC (valid
    frames whole, damaged frames record by record); with an intact `hint`, a record only
    where the hint places it, and the hint's entries not found are the keys lost
    (exactly). Without a hint the loss is counted from the damaged frames' headers when
    they read (else a lower bound) and named from the records as far as they read."""
    result = CompactedSalvage()
    found: _Found = {}
    damaged: list[tuple[int, int]] = []  # (start, end) of the bytes between valid frames
    position = 0
    for offset, header in valid_frames_from(data, 0, segment_id, compacted=True):
        if offset > position:
            damaged.append((position, offset))
        _find_records(data, offset + FRAME_HEADER_SIZE, offset + header.size, found)
        result.records_in_valid_frames += header.count
        position = offset + header.size
    end = len(data.rstrip(b"\0"))
    if end > position:
        damaged.append((position, end))
    for start, stop in damaged:
        _find_records(data, start, stop, found)
    placed = {entry[1]: entry for entry in hint or []}
    for offset, (key, length, lsn, expiry_ms) in sorted(found.items(), key=lambda item: item[1][2]):
        entry = placed.get(offset)
        if hint is not None and (entry is None or entry[:5] != (key, offset, length, lsn, expiry_ms)):
            continue  # not where the intact hint says this key's record is
        if key in keydir and _newest_lsn(keydir[key]) > lsn:
            continue  # never an older record over a newer one
        keydir[key] = (-segment_id, offset, length, lsn, expiry_ms)
        result.records_kept += 1
        result.lsn_max = max(result.lsn_max, lsn)
    if hint is not None:
        kept = {offset for offset, entry in placed.items() if _points_at(keydir.get(entry[0]), offset)}
        result.keys_lost = [entry[0] for entry in hint if entry[1] not in kept]
        result.records_lost = len(result.keys_lost)
        return result
    for start, stop in damaged:
        _count_damaged(data, start, stop, found, result)
    return result


def _find_records(data: bytes, start: int, end: int, found: _Found) -> None:
    """Every SET record between `start` and `end` that passes its own CRC, searched at
    every offset (after a record that passes, from its end); random bytes pass a CRC32C
    with probability 2**-32."""
    unpack = RECORD_HEADER.unpack_from
    position = start
    while position + RECORD_HEADER_SIZE <= end:
        if data[position + 4] != KIND_SET:  # cheap filter before unpacking
            position += 1
            continue
        crc, _kind, _flags, key_length, value_length, lsn, expiry_ms = unpack(data, position)
        length = RECORD_HEADER_SIZE + key_length + value_length
        if position + length > end or crc32c(data[position + 4 : position + length]) != crc:
            position += 1
            continue
        key = data[position + RECORD_HEADER_SIZE : position + RECORD_HEADER_SIZE + key_length]
        found[position] = (key, length, lsn, expiry_ms)
        position += length


def _count_damaged(data: bytes, start: int, end: int, found: _Found, result: CompactedSalvage) -> None:
    """Without a hint: the records a damaged span lost, from its frame header (a lower
    bound when the header does not read or the span holds more than its frame), and
    their keys as far as the records read."""
    header = decode_frame_header(data, start)
    if not data[start:end].strip(b"\0"):
        return  # zeros: no frame was there (a lost write leaves them; the scan reported it)
    kept_here = sum(1 for offset in found if start <= offset < end)
    if header is None or start + header.size < end:
        result.count_known = False
    lost = max((header.count if header is not None else 0) - kept_here, 1)
    result.records_lost += lost
    keys = Salvaged()
    _read_damaged_keys(data, start, end, keys, consecutive=False)
    names = {entry[0] for entry in found.values()}
    result.keys_lost += [key for key in keys.keys_read.values() if key not in names]
