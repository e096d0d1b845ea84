"""The segment writer: records are appended to a pending frame, written with one
`write`, and made durable with one `sync` (group commit).

The writer owns the active segment file, the next lsn and the durable lsn. It knows
nothing of keys' meaning: it returns, for each record it wrote, where it landed, and
the store updates the keydir only after the write (and, in `always` mode, the sync)
succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kv.errors import IoError
from kv.files import segment_name as segment_name  # re-exported: callers name segments through the log
from kv.files import write_clean_marker
from kv.io import File, Future, Io
from kv.limits import FRAME_PAYLOAD_SIZE_MAX_BYTES
from kv.record import FRAME_FLAG_SEGMENT_START, FRAME_HEADER_SIZE, encode_frame, encode_records


@dataclass(slots=True)
class PendingRecords:
    """Records of one kind appended together, not yet written."""

    kind: int
    keys: list[bytes]
    lengths: list[int]  # each record's encoded length
    first_lsn: int
    payload_offset: int  # where the first record starts in the frame payload
    expiry_ms: int = 0  # every record's absolute expiry (0: none), as in its header


@dataclass(slots=True)
class Written:
    """Where records landed: the store turns these into keydir entries."""

    segment_id: int
    frame_offset: int
    records: list[PendingRecords]


@dataclass
class SegmentLog:
    """Appends frames to the active segment; rolls to a new segment past the target."""

    io: Io
    directory: str
    segment_id: int
    file: File
    write_offset: int
    next_lsn: int
    segment_size_target_bytes: int
    durable_lsn: int = 0
    allocated_bytes: int = 0  # the file's size: zeros past write_offset are preallocated
    preallocation_bytes: int = 0  # extend the file by this much at a time (0: never)
    payload: bytearray = field(default_factory=bytearray)
    pending: list[PendingRecords] = field(default_factory=list)
    pending_count: int = 0
    unsynced_files: list[File] = field(default_factory=list)
    directory_dirty: bool = False
    # The CLEAN marker names an older segment than the active one (a roll since it was
    # written): the next sync renames it, so the loss of a whole newest segment (a
    # directory entry the file system lost) is damage the next open can see.
    marker_stale: bool = False
    sealed: dict[int, File] = field(default_factory=dict)  # segment id -> read handle

    @property
    def pending_bytes(self) -> int:
        return len(self.payload)

    def append(self, kind: int, keys: list[bytes], values: list[bytes], expiry_ms: int = 0) -> None:
        """Add records (all of one kind, all with the expiry `expiry_ms`: absolute ms of
        `io.now()`, 0 for none) to the pending frame."""
        payload, lengths = encode_records(kind, keys, values, self.next_lsn, expiry_ms)
        last = self.pending[-1] if self.pending else None
        if last is not None and last.kind == kind and last.expiry_ms == expiry_ms:  # one run: lsns, offsets continue
            last.keys += keys
            last.lengths += lengths
        else:
            self.pending.append(PendingRecords(kind, list(keys), lengths, self.next_lsn, len(self.payload), expiry_ms))
        if self.payload:
            self.payload += payload
        else:
            self.payload = payload  # a bulk load's megabytes are not copied again
        self.next_lsn += len(keys)
        self.pending_count += len(keys)

    def discard_pending(self) -> None:
        """Forget records not yet written (after a failure); their lsns are not reused."""
        self.payload = bytearray()
        self.pending = []
        self.pending_count = 0

    def commit(self, sync: bool) -> Written | None:
        """Write the pending frame and, with `sync`, make everything written durable.

        The frame's `write` and the `sync`s are issued before any is awaited, so a
        backend can submit them together (io_uring links write -> fsync). The segment
        rolls first when the frame would overflow it. Records are durable only after the
        sync, and in a new segment only after the directory sync too (rule 1). Raises
        `IoError`; after an error the caller must fail the store (nothing in the window
        may be trusted, rule 2).
        """
        written: Written | None = None
        write = zeros = None
        pending = self.pending
        if pending:
            payload = self.payload
            assert len(payload) <= FRAME_PAYLOAD_SIZE_MAX_BYTES
            frame_size = FRAME_HEADER_SIZE + len(payload)
            if self.write_offset > 0 and self.write_offset + frame_size > self.segment_size_target_bytes:
                self.roll()
            offset = self.write_offset
            flags = FRAME_FLAG_SEGMENT_START if offset == 0 else 0
            frame = encode_frame(self.segment_id, pending[0].first_lsn, self.pending_count, payload, flags)
            end = offset + frame_size
            if end > self.allocated_bytes:
                zeros = self._preallocate(end)
            write = self.io.write(self.file, offset, frame)
            written = Written(self.segment_id, offset, pending)
            self.write_offset = end
            self.payload = bytearray()
            self.pending = []
            self.pending_count = 0
            if self.file not in self.unsynced_files:
                self.unsynced_files.append(self.file)
        syncs = [self.io.sync(file) for file in self.unsynced_files] if sync else ()
        if zeros is not None:
            try:
                zeros.result()
            except IoError:  # only free space failed to appear; the frame's own write decides
                self.allocated_bytes = self.write_offset
        if write is not None:
            write.result()
        for future in syncs:
            future.result()
        if sync:
            self.unsynced_files.clear()
            if self.directory_dirty:
                self.io.sync_dir(self.directory).result()
                self.directory_dirty = False
            if self.marker_stale:  # after the new segment's entry is durable, before any ack
                write_clean_marker(self.io, self.directory, self.segment_id, 0, sync_directory=False)
                self.marker_stale = False
            self.durable_lsn = self.next_lsn - 1
        return written

    def _preallocate(self, end: int) -> Future[None] | None:
        """Before a frame ending at `end` is written past the allocated size, extend the
        file with zeros after that end (never overlapping the frame, so the two writes
        need no order). Overwriting allocated blocks lets `fdatasync` skip the metadata
        commit a growing file needs on every write; recovery treats an all-zero tail
        as free space, not damage (rule 5)."""
        if end <= self.allocated_bytes or not self.preallocation_bytes:
            self.allocated_bytes = max(self.allocated_bytes, end)
            return None
        extent = min(self.preallocation_bytes, max(self.segment_size_target_bytes - end, 0))
        self.allocated_bytes = end + extent
        return self.io.write(self.file, end, bytes(extent)) if extent else None

    def roll(self) -> None:
        """Seal the active segment (its preallocated tail cut, synced, so a later gap
        means damage: rule 5) and start the next."""
        # Always cut, even when nothing seems preallocated: after a failed sync the disk
        # may hold a longer file than the page cache shows, and zeros ending a sealed
        # segment would read as a lost frame.
        self.io.truncate(self.file, self.write_offset).result()
        self.io.sync(self.file).result()
        if self.file in self.unsynced_files:
            self.unsynced_files.remove(self.file)
        self.sealed[self.segment_id] = self.file
        self.segment_id += 1
        self.file = self.io.open(f"{self.directory}/{segment_name(self.segment_id)}", "x").result()
        self.write_offset = 0
        self.allocated_bytes = 0
        self.directory_dirty = True
        self.marker_stale = True
