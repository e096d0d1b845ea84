"""Compaction: rewrite live records into one compacted file plus a hint file, installed
atomically, then delete what it replaces.

Files: `NNNNNNNN.compacted` holds frames flagged `FRAME_FLAG_COMPACTED` with every
record live when it was written (original lsns kept) and covers every segment whose id
is at most NNNNNNNN: once it is installed those are obsolete. `NNNNNNNN.hint` lists each
record's key and location so opening does not read the values.

Install order (a file is trusted only after its directory entry is durable):
write both as `.tmp`, sync both, rename the hint, rename the data file (the commit
point), `sync_dir`; only then unlink the obsolete files and `sync_dir` again. A crash at
any point leaves either the old files (plus `.tmp` debris, removed on open) or the new
compacted file (plus obsolete files, removed on open).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from crc32c import crc32c

from kv.errors import IoError
from kv.io import File, Io, close_quietly
from kv.limits import FRAME_PAYLOAD_SIZE_TARGET_BYTES, KEY_SIZE_MAX_BYTES
from kv.record import FRAME_FLAG_COMPACTED, FRAME_HEADER_SIZE, KIND_SET, RECORD_HEADER, RECORD_HEADER_SIZE, encode_frame

COMPACTED_SUFFIX = ".compacted"
HINT_SUFFIX = ".hint"
TEMPORARY_SUFFIX = ".tmp"

HINT_MAGIC = 0x544E4948  # "HINT"
HINT_VERSION = 1
HINT_HEADER = struct.Struct("<IHHIQII")  # magic, version, reserved, segment_id, data_length, count, crc
HINT_ENTRY = struct.Struct("<HIQQQ")  # key_length, record_length, offset, lsn, expiry_ms
HINT_HEADER_SIZE = HINT_HEADER.size

# A hint entry as the store uses it: (key, record offset, record length, lsn, expiry_ms)
HintEntry = tuple[bytes, int, int, int, int]


def compacted_name(segment_id: int) -> str:
    return f"{segment_id:08d}{COMPACTED_SUFFIX}"


def hint_name(segment_id: int) -> str:
    return f"{segment_id:08d}{HINT_SUFFIX}"


def encode_hint(segment_id: int, data_length: int, entries: list[HintEntry]) -> bytes:
    body = bytearray()
    for key, offset, length, lsn, expiry_ms in entries:
        body += HINT_ENTRY.pack(len(key), length, offset, lsn, expiry_ms)
        body += key
    checked = HINT_HEADER.pack(HINT_MAGIC, HINT_VERSION, 0, segment_id, data_length, len(entries), 0)[:-4]
    crc = crc32c(body, crc32c(checked))
    return checked + struct.pack("<I", crc) + bytes(body)


def decode_hint(data: bytes, segment_id: int, data_length: int) -> list[HintEntry] | None:
    """The entries of a hint file, or None when it is damaged or does not match its data
    file (then the store scans the data file instead)."""
    if len(data) < HINT_HEADER_SIZE:
        return None
    magic, version, _reserved, hint_segment, hint_length, count, crc = HINT_HEADER.unpack_from(data, 0)
    if magic != HINT_MAGIC or version != HINT_VERSION or hint_segment != segment_id or hint_length != data_length:
        return None
    view = memoryview(data)
    if crc32c(view[HINT_HEADER_SIZE:], crc32c(view[: HINT_HEADER_SIZE - 4])) != crc:
        return None
    entries: list[HintEntry] = []
    position = HINT_HEADER_SIZE
    unpack = HINT_ENTRY.unpack_from
    for _ in range(count):
        if position + HINT_ENTRY.size > len(data):
            return None
        key_length, length, offset, lsn, expiry_ms = unpack(data, position)
        position += HINT_ENTRY.size
        if key_length > KEY_SIZE_MAX_BYTES or offset + length > data_length:
            return None
        entries.append((data[position : position + key_length], offset, length, lsn, expiry_ms))
        position += key_length
    return entries if position == len(data) else None


@dataclass
class CompactionOutput:
    data: bytes
    hint: bytes
    entries: list[HintEntry]


def build_compacted(segment_id: int, records: Iterable[bytes]) -> CompactionOutput:
    """Pack whole, already verified records (as read from disk) into compacted frames.

    Pure: returns the bytes of the data file and of its hint file.
    """
    out = bytearray()
    entries: list[HintEntry] = []
    payload = bytearray()
    frame_records: list[tuple[bytes, int, int, int, int]] = []

    def flush_frame() -> None:
        if not frame_records:
            return
        frame_start = len(out)
        out.extend(
            encode_frame(segment_id, frame_records[0][3], len(frame_records), payload, flags=FRAME_FLAG_COMPACTED)
        )
        for key, offset_in_payload, length, lsn, expiry_ms in frame_records:
            entries.append((key, frame_start + FRAME_HEADER_SIZE + offset_in_payload, length, lsn, expiry_ms))
        payload.clear()
        frame_records.clear()

    for record in records:
        _crc, kind, _flags, key_length, _value_length, lsn, expiry_ms = RECORD_HEADER.unpack_from(record, 0)
        assert kind == KIND_SET
        key = record[RECORD_HEADER_SIZE : RECORD_HEADER_SIZE + key_length]
        if payload and len(payload) + len(record) > FRAME_PAYLOAD_SIZE_TARGET_BYTES:
            flush_frame()
        frame_records.append((key, len(payload), len(record), lsn, expiry_ms))
        payload += record
    flush_frame()
    return CompactionOutput(bytes(out), encode_hint(segment_id, len(out), entries), entries)


def install(io: Io, directory: str, segment_id: int, output: CompactionOutput) -> File:
    """Write, sync and atomically install a compacted file and its hint; return a read
    handle on the installed data file. Raises `IoError`; on error nothing is installed
    unless the final rename landed (then recovery finds a complete, synced file)."""
    data_path = f"{directory}/{compacted_name(segment_id)}"
    hint_path = f"{directory}/{hint_name(segment_id)}"
    for path, content in ((data_path, output.data), (hint_path, output.hint)):
        temporary = io.open(path + TEMPORARY_SUFFIX, "w").result()
        try:
            io.truncate(temporary, 0).result()
            io.write(temporary, 0, content).result()
            io.sync(temporary).result()
        except IoError:
            close_quietly(io, temporary)
            raise
        io.close(temporary).result()
    io.rename(hint_path + TEMPORARY_SUFFIX, hint_path).result()
    io.rename(data_path + TEMPORARY_SUFFIX, data_path).result()
    io.sync_dir(directory).result()
    return io.open(data_path, "r").result()
