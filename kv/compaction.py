"""Compaction: rewrite live records into one compacted file plus a hint file, installed
atomically, then delete what it replaces.

Files: `NNNNNNNN.compacted` holds frames flagged `FRAME_FLAG_COMPACTED` with every
record live when it was written (original lsns kept) and covers every segment whose id
is at most NNNNNNNN: once it is installed those are obsolete. `NNNNNNNN.hint` lists each
record's key, kind and location so opening does not read the values. A list's live
elements are its push records, kept whole in lsn order (`kv.keydir` says why that order
rebuilds the list).

Install order (rule 11 of `kv.opening`; a file is trusted only after its directory
entry is durable, rule 1): write both as `.tmp`, sync both, rename the hint, rename the
data file (the commit point), `sync_dir`; only then unlink the obsolete files and
`sync_dir` again. A crash at any point leaves either the old files (plus `.tmp` debris,
removed on open) or the new compacted file (plus obsolete files, removed on open).
File names are in `kv.files`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import itemgetter

from crc32c import crc32c

from kv.files import TEMPORARY_SUFFIX, compacted_name, hint_name, write_temporary
from kv.io import File, Io
from kv.keydir import Keydir, ListEntry, apply_list_record
from kv.limits import FRAME_PAYLOAD_SIZE_TARGET_BYTES, KEY_SIZE_MAX_BYTES
from kv.record import FRAME_FLAG_COMPACTED, FRAME_HEADER_SIZE, KIND_SET, KINDS_LIVE, RECORD_KIND_OFFSET, encode_frame

HINT_MAGIC = 0x544E4948  # "HINT"
HINT_VERSION = 2  # 2 added the record kind (lists); version 1 hints (all sets) are read too
HINT_HEADER = struct.Struct("<IHHIQII")  # magic, version, reserved, segment_id, data_length, count, crc
HINT_ENTRY = struct.Struct("<HIQQQB")  # key_length, record_length, offset, lsn, expiry_ms, kind
HINT_ENTRY_V1 = struct.Struct("<HIQQQ")  # the same without the kind
HINT_HEADER_SIZE = HINT_HEADER.size

# A hint entry as the store uses it: (key, record offset, record length, lsn, expiry_ms, kind)
HintEntry = tuple[bytes, int, int, int, int, int]
# A live record to compact: (key, the whole record as stored, lsn, expiry_ms)
CompactedRecord = tuple[bytes, bytes, int, int]


def encode_hint(segment_id: int, data_length: int, entries: list[HintEntry]) -> bytes:
    pack = HINT_ENTRY.pack
    body = b"".join(
        chain.from_iterable(
            (pack(len(key), length, offset, lsn, expiry_ms, kind), key)
            for key, offset, length, lsn, expiry_ms, kind in entries
        )
    )
    checked = HINT_HEADER.pack(HINT_MAGIC, HINT_VERSION, 0, segment_id, data_length, len(entries), 0)[:-4]
    crc = crc32c(body, crc32c(checked))
    return checked + struct.pack("<I", crc) + body


def decode_hint(data: bytes, segment_id: int, data_length: int) -> list[HintEntry] | None:
    """The entries of a hint file, or None when it is damaged or does not match its data
    file (then the store scans the data file instead: rule 12)."""
    if len(data) < HINT_HEADER_SIZE:
        return None
    magic, version, _reserved, hint_segment, hint_length, count, crc = HINT_HEADER.unpack_from(data, 0)
    if magic != HINT_MAGIC or version not in (1, HINT_VERSION):
        return None
    if hint_segment != segment_id or hint_length != data_length:
        return None
    view = memoryview(data)
    if crc32c(view[HINT_HEADER_SIZE:], crc32c(view[: HINT_HEADER_SIZE - 4])) != crc:
        return None
    entries: list[HintEntry] = []
    position = HINT_HEADER_SIZE
    entry = HINT_ENTRY if version == HINT_VERSION else HINT_ENTRY_V1
    unpack = entry.unpack_from
    for _ in range(count):
        if position + entry.size > len(data):
            return None
        key_length, length, offset, lsn, expiry_ms, *kind = unpack(data, position)
        position += entry.size
        record_kind = kind[0] if kind else KIND_SET
        if key_length > KEY_SIZE_MAX_BYTES or offset + length > data_length or record_kind not in KINDS_LIVE:
            return None
        entries.append((data[position : position + key_length], offset, length, lsn, expiry_ms, record_kind))
        position += key_length
    return entries if position == len(data) else None


@dataclass
class CompactionOutput:
    data: bytes
    hint: bytes
    entries: list[HintEntry]


def build_compacted(segment_id: int, records: Sequence[CompactedRecord]) -> CompactionOutput:
    """Pack whole, already verified records (as stored) into compacted frames of at most
    FRAME_PAYLOAD_SIZE_TARGET_BYTES of payload (a larger record gets a frame alone).

    Pure: returns the bytes of the data file and of its hint file.
    """
    out = bytearray()
    entries: list[HintEntry] = []
    lengths = [len(record) for _key, record, _lsn, _expiry_ms in records]

    def add_frame(start: int, end: int) -> None:
        group = records[start:end]
        kinds = [record[RECORD_KIND_OFFSET] for _key, record, _lsn, _expiry_ms in group]
        assert all(kind in KINDS_LIVE for kind in kinds), kinds
        payload = b"".join(map(itemgetter(1), group))
        first_offset = len(out) + FRAME_HEADER_SIZE
        out.extend(encode_frame(segment_id, group[0][2], len(group), payload, flags=FRAME_FLAG_COMPACTED))
        offsets = accumulate(lengths[start : end - 1], initial=first_offset)
        keys, lsns, expiries = map(itemgetter(0), group), map(itemgetter(2), group), map(itemgetter(3), group)
        entries.extend(zip(keys, offsets, lengths[start:end], lsns, expiries, kinds, strict=True))

    start = size = 0
    for index, length in enumerate(lengths):
        if size and size + length > FRAME_PAYLOAD_SIZE_TARGET_BYTES:
            add_frame(start, index)
            start, size = index, 0
        size += length
    if records:
        add_frame(start, len(records))
    return CompactionOutput(bytes(out), encode_hint(segment_id, len(out), entries), entries)


def install(io: Io, directory: str, segment_id: int, output: CompactionOutput) -> File:
    """Write, sync and atomically install a compacted file and its hint (rule 11); return
    a read handle on the installed data file. `kv.files.write_durably` in two halves: both
    temporaries written and synced first, then the two renames share one directory sync,
    the data file's rename last (the commit point: a compacted file without its hint is
    read by a scan, rule 12). Raises `IoError`; on error nothing is installed unless the
    final rename landed (then recovery finds a complete, synced file)."""
    data_path = f"{directory}/{compacted_name(segment_id)}"
    hint_path = f"{directory}/{hint_name(segment_id)}"
    for path, content in ((data_path, output.data), (hint_path, output.hint)):
        write_temporary(io, path + TEMPORARY_SUFFIX, content)
    io.rename(hint_path + TEMPORARY_SUFFIX, hint_path).result()
    io.rename(data_path + TEMPORARY_SUFFIX, data_path).result()
    io.sync_dir(directory).result()
    return io.open(data_path, "r").result()


def load_entries(keydir: Keydir, file_key: int, entries: list[HintEntry]) -> None:
    """Point `keydir` at a compacted file's records (`entries` in the file's order, which
    is lsn order): a set's location, or one more element of its list."""
    lists: set[bytes] = set()
    for key, offset, length, lsn, expiry_ms, kind in entries:
        if kind == KIND_SET:
            keydir[key] = (file_key, offset, length, lsn, expiry_ms)
            continue
        if key not in lists:  # the list as the file holds it, nothing older
            lists.add(key)
            keydir[key] = ListEntry()
        apply_list_record(keydir, kind, key, (file_key, offset, length, lsn, expiry_ms))
