"""Every bound of the store, named, with units last and the reason for the number."""

from __future__ import annotations

# The keydir holds every key in memory, and the record header stores the key length in
# 16 bits; 16 KiB keeps a million keys within a few GiB even at the limit.
KEY_SIZE_MAX_BYTES = 16 * 1024

# A value is read with one `read` and held whole in memory; 16 MiB bounds the memory of
# one `get` and the latency of one write.
VALUE_SIZE_MAX_BYTES = 16 * 1024 * 1024

# One frame is one atomic unit on disk (one CRC). It must hold the largest record, and a
# `set_many` must fit in one frame; 64 MiB leaves room for a batch of maximum values.
FRAME_PAYLOAD_SIZE_MAX_BYTES = 64 * 1024 * 1024

# Buffered modes (`batch`, `none`) write the pending frame once it holds this much:
# large enough to amortize a system call, small enough to bound memory and loss.
FRAME_PAYLOAD_SIZE_TARGET_BYTES = 1024 * 1024

# A frame never holds more records than this (the count field is 32 bits; a bound on
# the decode loop).
FRAME_RECORDS_MAX = 1 << 24

# A segment is closed and a new one started once it reaches this size; recovery reads a
# whole segment into memory, so this also bounds recovery memory.
SEGMENT_SIZE_TARGET_BYTES = 64 * 1024 * 1024

# The largest segment recovery accepts: the target plus one maximum frame.
SEGMENT_SIZE_MAX_BYTES = SEGMENT_SIZE_TARGET_BYTES + FRAME_PAYLOAD_SIZE_MAX_BYTES + 4096

# Segment ids are 32-bit in the frame header and 8 decimal digits in file names.
SEGMENT_ID_MAX = 99_999_999

# The active segment grows by this much at a time, filled with zeros: an `fdatasync`
# over already allocated blocks need not commit file-size metadata, which on ext4 costs
# about a third of each durable write. One metadata commit per MiB instead.
SEGMENT_PREALLOCATION_BYTES = 1024 * 1024

# A checksum failure is read again this many times before it counts as damage on disk:
# a transient read error (a bad cable, a flaky controller) must not cost a repair.
READ_RETRIES_MAX = 2

# Compaction reads the live records it has no cached value for this many at a time:
# enough in flight for a backend to batch (io_uring submits them together), few enough
# that the buffers of one batch stay small next to the value cache.
COMPACTION_READS_IN_FLIGHT_MAX = 64

# A directory with more files than this is not a store we wrote (bounds the open scan).
DIRECTORY_ENTRIES_MAX = 1_000_000

# `batch` durability: sync after this many operations or this much virtual time.
BATCH_OPERATIONS_MAX = 1000
BATCH_INTERVAL_MS_MAX = 10

# Values cached in memory after a write or a read; gets of hot keys skip the disk.
CACHE_SIZE_MAX_BYTES = 64 * 1024 * 1024

assert KEY_SIZE_MAX_BYTES < 1 << 16
assert VALUE_SIZE_MAX_BYTES < 1 << 32
assert FRAME_PAYLOAD_SIZE_MAX_BYTES >= 2 * (KEY_SIZE_MAX_BYTES + VALUE_SIZE_MAX_BYTES)
assert FRAME_PAYLOAD_SIZE_TARGET_BYTES <= FRAME_PAYLOAD_SIZE_MAX_BYTES
assert FRAME_PAYLOAD_SIZE_MAX_BYTES < 1 << 32
assert SEGMENT_SIZE_TARGET_BYTES < SEGMENT_SIZE_MAX_BYTES < 1 << 32
