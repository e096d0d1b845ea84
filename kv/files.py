"""Every file a store writes: names, the CLEAN marker's codec, and how a file is
written durably. The rules these files obey are numbered in `kv.opening`.

A store directory holds:

- `NNNNNNNN.seg`: log segments, ids consecutive from the compacted file's id + 1.
- `NNNNNNNN.compacted` and `NNNNNNNN.hint`: the compacted file covering every segment
  whose id is at most NNNNNNNN, and its index (rule 11, rule 12).
- `*.tmp`: a file being written durably, debris once a crash interrupted that (rule 1).
- `CLEAN`: the durable-extent marker (rule 3).
- `LOCK`: the writer's lock (never read).
- `quarantine/`: damaged data moved aside by repair (rule 10) and the journals of
  opening (rule 8, rule 9): `torn-NNNNNN.tmp` -> `torn-NNNNNN.pending` -> removed, and
  `repair-NNNNNN.pending` -> `repair-NNNNNN.reported`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from crc32c import crc32c

from kv.errors import IoError
from kv.io import File, Io, close_quietly
from kv.limits import SEGMENT_ID_MAX
from kv.marks import mark

SEGMENT_SUFFIX = ".seg"
COMPACTED_SUFFIX = ".compacted"
HINT_SUFFIX = ".hint"
TEMPORARY_SUFFIX = ".tmp"
CLEAN_MARKER_NAME = "CLEAN"
LOCK_NAME = "LOCK"
QUARANTINE_DIRECTORY = "quarantine"

# Journals (rule 9). A repair journal records what a repair loses, a torn-tail journal
# the torn tails an open cuts; the state is the suffix.
JOURNAL_PREFIX = "repair-"
TORN_JOURNAL_PREFIX = "torn-"
JOURNAL_PENDING = ".pending"  # written durably, reported by every open until settled
JOURNAL_REPORTED = ".reported"  # a settled repair journal, kept beside the data it moved
JOURNAL_TEMPORARY = ".tmp"  # a torn-tail journal not yet renamed into place: debris


def segment_name(segment_id: int) -> str:
    assert 0 < segment_id <= SEGMENT_ID_MAX
    return f"{segment_id:08d}{SEGMENT_SUFFIX}"


def compacted_name(segment_id: int) -> str:
    return f"{segment_id:08d}{COMPACTED_SUFFIX}"


def hint_name(segment_id: int) -> str:
    return f"{segment_id:08d}{HINT_SUFFIX}"


def journal_name(prefix: str, serial: int, state: str) -> str:
    return f"{prefix}{serial:06d}{state}"


def parse_id(name: str, suffix: str) -> int | None:
    """The id of `NNNNNNNN<suffix>` (eight digits, above 0), else None."""
    stem = name[: -len(suffix)]
    if name.endswith(suffix) and len(stem) == 8 and stem.isdigit() and int(stem) > 0:
        return int(stem)
    return None


@dataclass
class Listing:
    """A store directory's entries, sorted by kind; unknown names are ignored."""

    segments: list[int] = field(default_factory=list)
    compacted: list[int] = field(default_factory=list)
    hints: set[int] = field(default_factory=set)
    temporaries: list[str] = field(default_factory=list)
    clean_marker: bool = False
    quarantine: bool = False

    @property
    def covered(self) -> int:
        """The id of the newest compacted file: every segment up to it is obsolete
        (rule 11)."""
        return max(self.compacted, default=0)


def classify(names: list[str]) -> Listing:
    listing = Listing(quarantine=QUARANTINE_DIRECTORY in names)
    for name in names:
        if name.endswith(TEMPORARY_SUFFIX):
            listing.temporaries.append(name)
        elif (segment_id := parse_id(name, SEGMENT_SUFFIX)) is not None:
            listing.segments.append(segment_id)
        elif (segment_id := parse_id(name, COMPACTED_SUFFIX)) is not None:
            listing.compacted.append(segment_id)
        elif (segment_id := parse_id(name, HINT_SUFFIX)) is not None:
            listing.hints.add(segment_id)
        elif name == CLEAN_MARKER_NAME:
            listing.clean_marker = True
    return listing


# The durable-extent marker (rule 3): "segment S was durable up to length L". It holds
# two copies, each with its own CRC: damage to one (a power loss tearing the in-place
# rewrite, a flipped bit) leaves the other, as file systems keep spare superblocks. One
# copy alone (the older format) is read too.
_CLEAN_MARKER = struct.Struct("<IIQ")
_CLEAN_CRC = struct.Struct("<I")
_CLEAN_COPY_SIZE = _CLEAN_MARKER.size + _CLEAN_CRC.size
_CLEAN_COPIES = 2
_CLEAN_MAGIC = 0x4E41454C  # "LEAN"
CLEAN_MARKER_SIZE_MAX_BYTES = 64  # what opening reads: more than both copies


def encode_clean_marker(segment_id: int, length: int) -> bytes:
    body = _CLEAN_MARKER.pack(_CLEAN_MAGIC, segment_id, length)
    return (body + _CLEAN_CRC.pack(crc32c(body))) * _CLEAN_COPIES


def decode_clean_marker(data: bytes) -> tuple[int, int] | None:
    """(segment id, durable length) from the first intact copy, or None when the marker
    is absent or every copy is damaged."""
    if len(data) not in (_CLEAN_COPY_SIZE, _CLEAN_COPY_SIZE * _CLEAN_COPIES):
        return None
    for start in range(0, len(data), _CLEAN_COPY_SIZE):
        body = data[start : start + _CLEAN_MARKER.size]
        if _CLEAN_CRC.unpack_from(data, start + _CLEAN_MARKER.size)[0] != crc32c(body):
            continue
        magic, segment_id, length = _CLEAN_MARKER.unpack(body)
        if magic == _CLEAN_MAGIC:
            return segment_id, length
    mark("clean_marker_damaged")
    return None


def write_clean_marker(io: Io, directory: str, segment_id: int, length: int, sync_directory: bool) -> None:
    """Record durably that segment `segment_id` is durable up to `length` (rule 3); with
    `sync_directory`, make the marker's directory entry durable too (needed when the
    file is new, rule 1). Written in place, not by rename: the marker has a fixed size
    and two copies, so a torn rewrite leaves one intact or, at worst, reads as no marker,
    which costs only a rewrite of the newest segment. Raises `IoError`."""
    marker = io.open(f"{directory}/{CLEAN_MARKER_NAME}", "w").result()
    try:
        io.write(marker, 0, encode_clean_marker(segment_id, length)).result()
        io.sync(marker).result()
    finally:
        close_quietly(io, marker)
    if sync_directory:
        io.sync_dir(directory).result()


# Writing a file durably (rule 1) -------------------------------------------------------


def write_temporary(
    io: Io, path: str, data: bytes, opened: list[File] | None = None, close_quietly_always: bool = False
) -> None:
    """Write `data` as the whole of `path` (made empty first: a crash may have left a
    longer file there) and sync it, then close it. The handle is closed quietly after an
    `IoError`, unless `opened` is given: then it joins that list, whose owner closes every
    handle in it when it fails. With `close_quietly_always` the handle is closed quietly
    however the write ends, a simulated crash included (the torn-tail journal's order,
    kept so that simulated traces stay the same; a real crash takes its handles with
    it). Raises `IoError`."""
    temporary = io.open(path, "w").result()
    if close_quietly_always:
        try:
            io.truncate(temporary, 0).result()
            io.write(temporary, 0, data).result()
            io.sync(temporary).result()
        finally:
            close_quietly(io, temporary)
        return
    if opened is not None:
        opened.append(temporary)
    try:
        io.truncate(temporary, 0).result()
        io.write(temporary, 0, data).result()
        io.sync(temporary).result()
    except IoError:  # (a crash ends the process: its handles go with it)
        if opened is None:
            close_quietly(io, temporary)
        raise
    io.close(temporary).result()


def write_durably(
    io: Io,
    directory: str,
    name: str,
    data: bytes,
    temporary: str | None = None,
    opened: list[File] | None = None,
    close_quietly_always: bool = False,
) -> None:
    """Make `directory/name` hold exactly `data`, durably, replacing any old file
    atomically: write `temporary` (default `name.tmp`), sync it, rename it over `name`,
    sync the directory (rule 1). A crash leaves the old file or the new one, never a mix,
    and at worst the temporary file, which opening removes. `opened` as for
    `write_temporary`, and `close_quietly_always`. Raises `IoError`."""
    path = f"{directory}/{name}"
    temporary_path = f"{directory}/{temporary}" if temporary is not None else path + TEMPORARY_SUFFIX
    write_temporary(io, temporary_path, data, opened, close_quietly_always)
    io.rename(temporary_path, path).result()
    io.sync_dir(directory).result()
