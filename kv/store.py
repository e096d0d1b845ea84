"""The store: a log-structured key-value store over the `kv.io.Io` contract.

Lifecycle (one table, `_TRANSITIONS`): OPENING -> OPEN -> READ_ONLY -> CLOSED. A store
goes READ_ONLY after any failed write or sync (no retry-and-trust: the kernel may have
dropped the dirty pages, fsyncgate); reads still work, writes raise `StoreReadOnly`,
and reopening recovers from what is durable. A store opened with `read_only=True` goes
from OPENING straight to READ_ONLY: it took no lock and writes nothing.

Durability modes:

- `always` (default): every `set`/`delete`/`set_many` returns only after the `sync`
  (and, for a new segment, the `sync_dir`) covering it succeeded.
- `batch`: writes return at once; a group commit writes and syncs after
  `BATCH_OPERATIONS_MAX` operations, `BATCH_INTERVAL_MS_MAX` of `io.now()` time
  (checked on the next call), a full frame, `flush()` or `close()`. A crash loses at
  most the unsynced window.
- `none`: writes return at once; a full frame (FRAME_PAYLOAD_SIZE_TARGET_BYTES) is
  written and synced, the rest only by `flush()` and `close()`. A crash may lose
  everything since the last flush.

In every mode the log holds at most one written, unsynced frame, at its end (rule 14
of `kv.opening`): a crash can tear or lose that frame, never leave a hole between two
frames that survived. `batch` mode syncs every frame it writes, `none` mode every full
frame, and list operations and atomic batches sync their frame.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Literal, TypeVar

from kv import compaction, recovery
from kv.errors import (
    BatchTooLarge,
    CorruptionDetected,
    InvalidArgument,
    IoError,
    KeyTooLarge,
    KvError,
    NotAnInteger,
    StoreClosed,
    StoreLocked,
    StoreReadOnly,
    ValueTooLarge,
    WrongType,
)
from kv.files import LOCK_NAME, compacted_name, hint_name, segment_name, write_clean_marker
from kv.io import File, Io, close_quietly, read_exact
from kv.keydir import Entry, ListEntry, Location, apply_list_record, list_range
from kv.limits import (
    BATCH_INTERVAL_MS_MAX,
    BATCH_OPERATIONS_MAX,
    CACHE_SIZE_MAX_BYTES,
    COMPACTION_READS_IN_FLIGHT_MAX,
    FRAME_PAYLOAD_SIZE_MAX_BYTES,
    FRAME_PAYLOAD_SIZE_TARGET_BYTES,
    KEY_SIZE_MAX_BYTES,
    READ_RETRIES_MAX,
    SEGMENT_SIZE_TARGET_BYTES,
    VALUE_SIZE_MAX_BYTES,
)
from kv.log import SegmentLog, Written
from kv.marks import mark
from kv.opening import ON_CORRUPTION_MODES, OnCorruption, Recovery
from kv.ordered import Cursor, KeyIndex, keys_between, prefix_stop
from kv.record import (
    FRAME_HEADER_SIZE,
    KIND_DELETE,
    KIND_POP_LEFT,
    KIND_POP_RIGHT,
    KIND_PUSH_LEFT,
    KIND_PUSH_RIGHT,
    KIND_SET,
    KINDS_LIST,
    KINDS_LIVE,
    KINDS_PUSH,
    RECORD_HEADER_SIZE,
    RECORD_SIZE_MAX_BYTES,
    Record,
    decode_record,
    encode_record,
    record_offsets,
)
from kv.recovery import Keydir, RecoveryReport

if TYPE_CHECKING:
    from kv.batch import Batch, BatchRecord, Queued

_Key = TypeVar("_Key", bound=bytes | str)
_Value = TypeVar("_Value", bound=bytes | str)
Durability = Literal["always", "batch", "none"]
DURABILITY_MODES: tuple[Durability, ...] = ("always", "batch", "none")

WRONG_TYPE = "Operation against a key holding the wrong kind of value"  # Redis's words
_LOCK_ERRNOS = (errno.EWOULDBLOCK, errno.EAGAIN)  # flock says EWOULDBLOCK; EACCES is a permission error


class State(enum.Enum):
    OPENING = "opening"
    OPEN = "open"
    READ_ONLY = "read-only"
    CLOSED = "closed"


_TRANSITIONS: dict[State, frozenset[State]] = {
    State.OPENING: frozenset({State.OPEN, State.READ_ONLY, State.CLOSED}),  # READ_ONLY: opened read-only
    State.OPEN: frozenset({State.READ_ONLY, State.CLOSED}),
    State.READ_ONLY: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


@dataclass
class Stats:
    keys: int
    state: str
    durability: str
    io: str
    segments: int
    compacted_files: int
    bytes_on_disk: int
    live_bytes: int
    next_lsn: int
    durable_lsn: int
    sets: int
    gets: int
    deletes: int
    syncs: int
    cache_hits: int
    recovery: RecoveryReport


@dataclass
class VerifyReport:
    files_checked: int = 0
    frames_checked: int = 0
    records_checked: int = 0
    problems: list[str] = field(default_factory=list)
    checked_bytes: dict[str, int] = field(default_factory=dict)  # path -> bytes checked from offset 0
    damaged_files: list[str] = field(default_factory=list)  # paths with any problem, in order found

    @property
    def ok(self) -> bool:
        return not self.problems


def _as_bytes(data: bytes | str, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise InvalidArgument(f"{what} must be bytes or str, not {type(data).__name__}")


def _check_key(key: bytes | str) -> bytes:
    key_bytes = _as_bytes(key, "key")
    if len(key_bytes) > KEY_SIZE_MAX_BYTES:
        raise KeyTooLarge(f"key is {len(key_bytes)} bytes; the limit is {KEY_SIZE_MAX_BYTES}")
    return key_bytes


def _check_value(value: bytes | str) -> bytes:
    value_bytes = _as_bytes(value, "value")
    if len(value_bytes) > VALUE_SIZE_MAX_BYTES:
        raise ValueTooLarge(f"value is {len(value_bytes)} bytes; the limit is {VALUE_SIZE_MAX_BYTES}")
    return value_bytes


INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
# Inside `Store.holding()` the pending frame grows past the frame-size target, up to
# where a largest record could no longer fit in it.
HOLDING_PENDING_MAX_BYTES = FRAME_PAYLOAD_SIZE_MAX_BYTES - RECORD_SIZE_MAX_BYTES

# An expiry or a TTL beyond this many seconds (about 146 million years) would not
# fit the record header's u64 of milliseconds once added to the clock: refused.
EXPIRY_SECONDS_MAX = INT64_MAX // 1000 // 2


def parse_int64(data: bytes) -> int | None:
    """A signed 64-bit decimal integer as Redis's `string2ll` accepts it (an optional
    minus, no plus, no spaces, no leading zeros), or None."""
    if not data or len(data) > 20:
        return None
    digits = data[1:] if data[:1] == b"-" else data
    if not digits.isdigit() or (digits[:1] == b"0" and (len(digits) > 1 or data[:1] == b"-")):
        return None
    value = int(data)
    return value if INT64_MIN <= value <= INT64_MAX else None


def _milliseconds(seconds: float, what: str) -> int:
    """`seconds` (an int or a float) in whole milliseconds, rounded to the nearest."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds != seconds:
        raise InvalidArgument(f"{what} must be a number of seconds, not {seconds!r}")
    if abs(seconds) > EXPIRY_SECONDS_MAX:
        raise InvalidArgument(f"invalid expire time: {what} is beyond {EXPIRY_SECONDS_MAX} seconds")
    return round(seconds * 1000)


def _expiry_from(now_ms: int, ttl: float | None, expire_at: float | None) -> int:
    """The expiry a `set` writes (absolute ms; 0: none). Redis refuses EX/PX/EXAT/PXAT
    that are not positive ("invalid expire time"), and so does this."""
    if ttl is not None and expire_at is not None:
        raise InvalidArgument("ttl and expire_at exclude each other")
    if ttl is None and expire_at is None:
        return 0
    if ttl is not None:
        milliseconds = _milliseconds(ttl, "ttl")
        if milliseconds <= 0:
            raise InvalidArgument(f"invalid expire time: ttl must be at least 1 ms, not {ttl!r} s")
        return now_ms + milliseconds
    assert expire_at is not None
    milliseconds = _milliseconds(expire_at, "expire_at")
    if milliseconds <= 0:
        raise InvalidArgument(f"invalid expire time: expire_at must be positive, not {expire_at!r}")
    return milliseconds


def _expiring(keydir: Keydir) -> dict[bytes, int]:
    """The expiry of every key of a recovered keydir that has one (lists have none)."""
    return {key: entry[4] for key, entry in keydir.items() if not isinstance(entry, ListEntry) and entry[4]}


def _parent_directory(path: str) -> str:
    """The directory holding `path` ("/" for a top-level path, "." for a bare name)."""
    if path.strip("/") == "":
        return "/"
    head, separator, _name = path.rstrip("/").rpartition("/")
    return (head or "/") if separator else "."


class Store:
    """A key-value store in one directory. Build it with `kv.open`."""

    def __init__(
        self,
        path: str,
        io: Io,
        durability: Durability = "always",
        segment_size_target_bytes: int = SEGMENT_SIZE_TARGET_BYTES,
        read_only: bool = False,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise InvalidArgument(f"durability must be one of {', '.join(DURABILITY_MODES)}, not {durability!r}")
        if not 0 < segment_size_target_bytes <= SEGMENT_SIZE_TARGET_BYTES:
            raise InvalidArgument(f"segment_size_target_bytes must be in 1..{SEGMENT_SIZE_TARGET_BYTES}")
        self.path = path.rstrip("/") or "/"
        self.io = io
        self.durability: Durability = durability
        self.segment_size_target_bytes = segment_size_target_bytes
        self.state = State.OPENING
        self.opened_read_only = read_only  # no lock, no write, recovery in memory only (`_open_read_only`)
        self.recovery = RecoveryReport()
        self._keydir: Keydir = {}
        self._index: KeyIndex | None = None  # the keys in order, built by the first scan
        self._staged: dict[bytes, bytes | None] = {}  # buffered modes: not yet written
        # Expiry (absolute ms of `io.now()`) of every key whose entry has one: committed
        # (the keydir's expiry_ms, kept apart so reads of stores without TTLs pay one
        # truthiness check) and staged (the staged value's).
        self._expiring: dict[bytes, int] = {}
        self._staged_expiry: dict[bytes, int] = {}
        self._cache: dict[bytes, bytes] = {}
        self._cache_bytes = 0
        self._lock: File | None = None
        # The open's journals, settled by the first commit: by then its report reached the caller.
        self._unsettled_journals: Callable[[], None] | None = None
        self._owns_io = False  # kv.open made the backend, so close() shuts it down
        self._log: SegmentLog | None = None
        self._compacted_id = 0
        self._compacted_file: File | None = None
        self._operations_since_sync = 0
        self._last_sync_time = 0.0
        self._holding = False  # `holding()`: buffered writes wait for its end to commit
        self._counters = {"sets": 0, "deletes": 0, "syncs": 0}
        self._gets = 0
        self._cache_hits = 0

    # -- lifecycle -----------------------------------------------------------------------

    def _transition(self, new: State) -> None:
        assert new in _TRANSITIONS[self.state], f"store cannot go from {self.state} to {new}"
        self.state = new

    def _file_path(self, name: str) -> str:
        return f"{self.path}/{name}"

    def _check_readable(self) -> None:
        if self.state is State.CLOSED:
            raise StoreClosed("the store is closed")
        assert self.state is not State.OPENING

    def _check_writable(self) -> SegmentLog:
        self._check_readable()
        if self.state is State.READ_ONLY:
            if self.opened_read_only:
                raise StoreReadOnly("the store was opened read-only: writes are refused")
            raise StoreReadOnly("an earlier write or sync failed; reopen the store to recover what is durable")
        assert self._log is not None
        return self._log

    def _fail(self) -> None:
        """A write or sync failed: trust nothing in flight, refuse further writes (rule 2)."""
        if self.state is State.OPEN:
            self._transition(State.READ_ONLY)
        if self._log is not None:
            self._log.discard_pending()
        self._staged.clear()
        self._staged_expiry.clear()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Flush (when writable), close every file, release the lock. Idempotent.

        Raises `IoError` if the final flush fails (the store is closed all the same).
        """
        if self.state is State.CLOSED:
            return
        error: BaseException | None = None
        if self.state is State.OPEN:
            try:
                self.flush()
                self._write_clean_marker()
            except IoError as failure:
                error = failure
        self._transition(State.CLOSED)
        self._close_files()
        if error is not None:
            raise error

    def _write_clean_marker(self) -> None:
        """After the final sync: record how far the newest segment is durable (rule 3)."""
        log = self._log
        assert log is not None
        write_clean_marker(self.io, self.path, log.segment_id, log.write_offset, sync_directory=True)

    def _close_files(self) -> None:
        files: list[File] = []
        if self._log is not None:
            files.extend(self._log.sealed.values())
            files.append(self._log.file)
        if self._compacted_file is not None:
            files.append(self._compacted_file)
        if self._lock is not None:
            files.append(self._lock)
        for file in files:
            close_quietly(self.io, file)  # nothing to lose: every acknowledged write was synced
        self._keydir.clear()
        self._expiring.clear()
        self._index = None
        self._cache.clear()
        if self._owns_io:
            self.io.shutdown()

    # -- writes --------------------------------------------------------------------------

    def set(
        self,
        key: bytes | str,
        value: bytes | str,
        *,
        ttl: float | None = None,
        expire_at: float | None = None,
        only_if_missing: bool = False,
        only_if_present: bool = False,
    ) -> bool:
        """Store `value` under `key`; True when it was written. In `always` mode it is
        durable on return. `only_if_missing` (Redis NX) writes only when the key does not
        exist, `only_if_present` (XX) only when it does; otherwise nothing is written and
        False is returned.

        `ttl` (seconds, Redis EX/PX) or `expire_at` (unix seconds of `io.now()`, EXAT/
        PXAT) makes the key expire: from then on it is absent to every read, and
        compaction drops it. Without either the key has no expiry (an earlier one is
        cleared, as Redis SET does). As Redis, a `ttl` or `expire_at` that is not
        positive is refused; an `expire_at` already past deletes the key.

        Raises `KeyTooLarge`/`ValueTooLarge` (nothing written), `InvalidArgument` for
        both conditions at once, both `ttl` and `expire_at`, or a bad expiry,
        `StoreReadOnly`, `StoreClosed`, or `IoError` (the store then goes read-only).
        """
        if only_if_missing or only_if_present or ttl is not None or expire_at is not None:
            return self._set_with_options(key, value, ttl, expire_at, only_if_missing, only_if_present)
        # The common case (bytes within the limits, an open store) is checked inline.
        key_bytes = key if type(key) is bytes and len(key) <= KEY_SIZE_MAX_BYTES else _check_key(key)
        value_bytes = value if type(value) is bytes and len(value) <= VALUE_SIZE_MAX_BYTES else _check_value(value)
        log = self._log
        if self.state is not State.OPEN or log is None:
            log = self._check_writable()
        keys, values = [key_bytes], [value_bytes]
        log.append(KIND_SET, keys, values)
        self._counters["sets"] += 1
        self._after_append(keys, values)
        return True

    def _set_with_options(
        self,
        key: bytes | str,
        value: bytes | str,
        ttl: float | None,
        expire_at: float | None,
        if_missing: bool,
        if_present: bool,
    ) -> bool:
        """A conditional or expiring `set`. The check and the write happen in one call at
        one reading of the clock, and calls do not interleave (the store is not shared
        between threads)."""
        if ttl is None and expire_at is None:
            return self._set_if(key, value, if_missing, if_present)
        if if_missing and if_present:
            raise InvalidArgument("only_if_missing and only_if_present exclude each other")
        key_bytes, value_bytes = _check_key(key), _check_value(value)
        now_ms = self._now_ms()
        expiry_ms = _expiry_from(now_ms, ttl, expire_at)
        log = self._check_writable()
        if (if_missing or if_present) and self._exists(key_bytes, now_ms) != if_present:
            return False
        if expiry_ms and expiry_ms <= now_ms:  # Redis: an expire time already past deletes the key
            self._delete_present(key_bytes, now_ms)
            return True
        log.append(KIND_SET, [key_bytes], [value_bytes], expiry_ms)
        self._counters["sets"] += 1
        self._after_append([key_bytes], [value_bytes], expiry_ms)
        return True

    def _set_if(self, key: bytes | str, value: bytes | str, if_missing: bool, if_present: bool) -> bool:
        """A conditional `set` without expiry (as `_set_with_options`)."""
        if if_missing and if_present:
            raise InvalidArgument("only_if_missing and only_if_present exclude each other")
        key_bytes, value_bytes = _check_key(key), _check_value(value)
        self._check_writable()
        if self._exists(key_bytes) != if_present:
            return False
        return self.set(key_bytes, value_bytes)

    # -- expiry (Redis EXPIRE, EXPIREAT, PERSIST, TTL, PTTL, EXPIRETIME, PEXPIRETIME) ------
    #
    # An expiry is the record's expiry_ms: absolute milliseconds of `io.now()`, the only
    # clock (virtual in the simulator). As Redis, a key is expired once the clock is past
    # its expiry (`now_ms > expiry_ms`); at expiry_ms itself it still exists, with 0 ms to
    # live. Changing the expiry of a stored key (`expire`, `persist`) writes a new SET
    # record of its current value with the new expiry: it costs one read of the value
    # (none when cached) and a record as large as the value, durable per the mode like
    # any write; compaction then keeps only the newest record.

    def _now_ms(self) -> int:
        """`io.now()` in whole milliseconds (through whole microseconds, so a float's
        rounding cannot put an exact millisecond one below)."""
        return round(self.io.now() * 1_000_000) // 1000

    def _expiry(self, key: bytes) -> int:
        """The expiry of `key`'s current entry (0: none), staged or committed."""
        if self._staged and key in self._staged:
            return self._staged_expiry.get(key, 0)
        return self._expiring.get(key, 0)

    def _expired(self, key: bytes, now_ms: int) -> bool:
        expiry_ms = self._expiry(key)
        return expiry_ms != 0 and now_ms > expiry_ms

    def expire(self, key: bytes | str, seconds: float) -> bool:
        """Make `key` expire `seconds` from now (Redis EXPIRE/PEXPIRE); True when it
        exists. A time not in the future deletes the key, as Redis does. Durable per the
        mode; costs a rewrite of the value (see above). Raises as `set` does."""
        now_ms = self._now_ms()
        return self._set_expiry(key, now_ms + _milliseconds(seconds, "seconds"), now_ms)

    def expire_at(self, key: bytes | str, when: float) -> bool:
        """Make `key` expire at `when` (unix seconds of `io.now()`: Redis EXPIREAT); True
        when it exists. A time not in the future deletes the key. Raises as `expire`."""
        return self._set_expiry(key, _milliseconds(when, "when"), self._now_ms())

    def persist(self, key: bytes | str) -> bool:
        """Remove `key`'s expiry (Redis PERSIST); True when it existed and had one (then
        its value is written again without one). Raises as `expire` does."""
        key_bytes = _check_key(key)
        now_ms = self._now_ms()
        self._check_writable()
        if not self._exists(key_bytes, now_ms) or not self._expiry(key_bytes):
            return False
        return self._rewrite(key_bytes, 0)

    def _set_expiry(self, key: bytes | str, expiry_ms: int, now_ms: int) -> bool:
        key_bytes = _check_key(key)
        self._check_writable()
        if not self._exists(key_bytes, now_ms):
            return False
        if expiry_ms <= now_ms:
            return self._delete_present(key_bytes, now_ms)
        return self._rewrite(key_bytes, expiry_ms)

    def _rewrite(self, key: bytes, expiry_ms: int) -> bool:
        """Write `key`'s current value again with `expiry_ms` (the key exists, unexpired:
        no I/O since the caller checked, so `get` reads at the same clock)."""
        value = self.get(key)
        assert value is not None
        log = self._check_writable()
        log.append(KIND_SET, [key], [value], expiry_ms)
        self._counters["sets"] += 1
        self._after_append([key], [value], expiry_ms)
        return True

    def pttl(self, key: bytes | str) -> int:
        """Milliseconds until `key` expires; -2 when it does not exist, -1 when it has no
        expiry (Redis PTTL). Raises `StoreClosed`."""
        key_bytes = _check_key(key)
        self._check_readable()
        now_ms = self._now_ms()
        if not self._exists(key_bytes, now_ms):
            return -2
        expiry_ms = self._expiry(key_bytes)
        return expiry_ms - now_ms if expiry_ms else -1

    def ttl(self, key: bytes | str) -> int:
        """Seconds until `key` expires, rounded to the nearest (Redis TTL); -2 when it
        does not exist, -1 when it has no expiry. Raises `StoreClosed`."""
        remaining_ms = self.pttl(key)
        return remaining_ms if remaining_ms < 0 else (remaining_ms + 500) // 1000

    def pexpiretime(self, key: bytes | str) -> int:
        """The absolute expiry of `key` in ms of `io.now()`; -2 missing, -1 no expiry
        (Redis PEXPIRETIME). Raises `StoreClosed`."""
        key_bytes = _check_key(key)
        self._check_readable()
        if not self._exists(key_bytes, self._now_ms()):
            return -2
        return self._expiry(key_bytes) or -1

    def expiretime(self, key: bytes | str) -> int:
        """`pexpiretime` in seconds, rounded to the nearest (Redis EXPIRETIME)."""
        expiry_ms = self.pexpiretime(key)
        return expiry_ms if expiry_ms < 0 else (expiry_ms + 500) // 1000

    def getdel(self, key: bytes | str) -> bytes | None:
        """Remove `key` and return the value it held (None, and nothing written, when it
        did not exist): Redis GETDEL. The delete is durable as any write of the mode is;
        raises as `get` and `delete` do."""
        key_bytes = _check_key(key)
        self._check_writable()
        value = self.get(key_bytes)
        if value is not None:
            self.delete(key_bytes)
        return value

    def incr(self, key: bytes | str, by: int = 1) -> int:
        """Add `by` to the decimal integer stored under `key` (0 when it does not exist),
        store the sum and return it: Redis INCRBY (DECRBY with a negative `by`).

        Raises `NotAnInteger` (nothing written) for a value that is not a signed 64-bit
        decimal integer or a sum outside that range, and as `set` does.
        """
        key_bytes = _check_key(key)
        if type(by) is not int:
            raise InvalidArgument(f"by must be an int, not {by!r}")
        self._check_writable()
        current = self.get(key_bytes)
        base = 0 if current is None else parse_int64(current)
        if base is None:
            raise NotAnInteger("value is not an integer or out of range")  # Redis's words
        total = base + by
        if not INT64_MIN <= total <= INT64_MAX:
            raise NotAnInteger("increment or decrement would overflow")
        expiry_ms = self._expiry(key_bytes) if current is not None else 0
        if expiry_ms:  # Redis INCR keeps the key's expiry
            self._check_writable().append(KIND_SET, [key_bytes], [b"%d" % total], expiry_ms)
            self._counters["sets"] += 1
            self._after_append([key_bytes], [b"%d" % total], expiry_ms)
        else:
            self.set(key_bytes, b"%d" % total)
        return total

    def delete(self, key: bytes | str) -> bool:
        """Remove `key`; True when it existed. Raises as `set` does."""
        key_bytes = _check_key(key)
        self._check_writable()
        return self._delete_present(key_bytes, self._now_ms())

    def _delete_present(self, key: bytes, now_ms: int) -> bool:
        """`delete` of a checked key on a writable store (an expired key is absent: no write)."""
        log = self._check_writable()
        if not self._exists(key, now_ms):
            return False
        log.append(KIND_DELETE, [key], [b""])
        self._counters["deletes"] += 1
        self._after_append([key], [None])
        return True

    def set_many(self, items: Mapping[_Key, _Value] | Iterable[tuple[_Key, _Value]]) -> None:
        """Store every pair in one frame: after a crash all of them exist or none.

        Raises `BatchTooLarge` when they do not fit in one frame, and as `set` does.
        """
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        keys = list(map(itemgetter(0), pairs))
        values = list(map(itemgetter(1), pairs))
        # The common case (all bytes, all within limits) is checked by C-level loops.
        if not ({*map(type, keys)} <= {bytes} and {*map(type, values)} <= {bytes}):
            keys = list(map(_check_key, keys))
            values = list(map(_check_value, values))
        elif pairs and (max(map(len, keys)) > KEY_SIZE_MAX_BYTES or max(map(len, values)) > VALUE_SIZE_MAX_BYTES):
            deque(map(_check_key, keys), maxlen=0)
            deque(map(_check_value, values), maxlen=0)
        log = self._check_writable()
        if not pairs:
            return
        self._make_room(log, sum(map(len, keys)) + sum(map(len, values)) + RECORD_HEADER_SIZE * len(keys))
        log.append(KIND_SET, keys, values)
        self._counters["sets"] += len(keys)
        self._after_append(keys, values)

    def _make_room(self, log: SegmentLog, size: int) -> None:
        """Make sure `size` bytes of records can join the pending frame, writing it first
        when they do not fit beside it. Raises `BatchTooLarge` when no frame holds them."""
        if size > FRAME_PAYLOAD_SIZE_MAX_BYTES:
            raise BatchTooLarge(f"batch needs {size} bytes; one frame holds {FRAME_PAYLOAD_SIZE_MAX_BYTES}")
        if log.pending_bytes + size > FRAME_PAYLOAD_SIZE_MAX_BYTES:
            self._commit(sync=True)  # one unsynced frame at most (rule 14 of kv.opening)

    # -- atomic batches (kv.batch: `with store.batch() as b: ...`) -----------------------

    @contextlib.contextmanager
    def holding(self, operations: int = 0) -> Iterator[None]:
        """Buffered modes: the writes made in the block stay in the pending frame, with
        what it held before, until the block ends (no bound commits inside it), so a
        crash keeps all of them or none, like a `batch`. The mode's bounds (operations,
        time, frame size) are suspended for the block's own writes: a crash before the
        end may lose every one of them, so a caller acknowledges them only after it; the
        bounds apply again at the end, which may commit (raising as `flush`). Writes
        acknowledged before the block keep `batch` mode's bounds: the block starts with
        the bounds' check, and, when `operations` (the writes the caller expects to make
        in it) would take the unsynced ones past BATCH_OPERATIONS_MAX, with a commit.

        Exceptions: a list operation syncs its frame at once, as always, and so do
        `flush` and `compact` (the caller keeps them out: `kv serve` refuses them in
        MULTI); a pending frame within a largest record of FRAME_PAYLOAD_SIZE_MAX_BYTES
        is committed (a frame has to end somewhere). In `always` mode every write syncs
        on its own regardless. `kv serve` runs an EXEC in it."""
        log = self._log
        if self._holding or log is None or self.state is not State.OPEN:  # nested, or nothing to hold
            yield
            return
        if self.durability == "batch":
            self._commit_if_due(log)
            if self._operations_since_sync and self._operations_since_sync + operations >= BATCH_OPERATIONS_MAX:
                self._commit(sync=True)
        self._holding = True
        try:
            yield
        except BaseException:
            self._holding = False
            raise
        self._holding = False
        if self.state is State.OPEN and self.durability != "always":
            self._commit_if_due(log)

    def batch(self) -> Batch:
        """Writes queued in a `with` block and committed as one frame when it exits
        normally: after a crash all of them exist or none (see `kv.batch`). Nothing is
        written if the block raises. Raises `StoreReadOnly`, `StoreClosed` at once; the
        exit raises `BatchTooLarge` (nothing written) and as `set` does."""
        from kv.batch import Batch

        self._check_writable()
        return Batch(self)

    def _commit_batch(self, queued: list[Queued]) -> list[bool]:
        """Commit a batch's queued writes as one frame (rules 2-4 of `kv.batch`); return
        each write's answer."""
        from kv.batch import check_fits, net_effect

        now_ms = self._now_ms()  # rule 2: one reading of the clock, before any I/O
        self._check_writable()
        final, results = net_effect(
            queued,
            now_ms,
            lambda key: self._exists(key, now_ms),
            lambda key: (self._live_value(key), self._expiry(key)),
        )
        records: list[BatchRecord] = [
            (key, None, 0) if state is None else (key, state[0], state[1])
            for key, state in final.items()
            if state is not None or self._exists(key, now_ms)
        ]
        check_fits(records)
        if records:
            self._write_batch(records)
        return results

    def _live_value(self, key: bytes) -> bytes:
        """The value of a key the caller found present (no expiry check: the caller
        judged it at its own reading of the clock). Raises as `get` does."""
        if self._staged and key in self._staged:
            value = self._staged[key]
            assert value is not None, key
            return value
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        entry = self._keydir[key]
        if isinstance(entry, ListEntry):
            raise WrongType(WRONG_TYPE)  # a batch's expire of a list
        return self._read_record(key, entry)[1].value

    def _write_batch(self, records: list[BatchRecord]) -> None:
        """Append a batch's records (key, value or None for a delete, expiry_ms) to one
        frame and commit it as the durability mode commits any write."""
        from kv.batch import records_size_bytes

        log = self._check_writable()
        if log.pending_bytes + records_size_bytes(records) > FRAME_PAYLOAD_SIZE_MAX_BYTES:
            self._commit(sync=True)  # the pending frame first: the batch stays whole (rule 14)
        for key, value, expiry_ms in records:
            if value is None:
                log.append(KIND_DELETE, [key], [b""])
                self._counters["deletes"] += 1
            else:
                log.append(KIND_SET, [key], [value], expiry_ms)
                self._counters["sets"] += 1
        if self._cache:
            for key, _value, _expiry_ms in records:
                self._cache_drop(key)
        if self.durability == "always":
            self._commit(sync=True)
            for key, value, _expiry_ms in records:
                self._cache_put(key, value)
            return
        for key, value, expiry_ms in records:
            self._staged[key] = value
            if expiry_ms:
                self._staged_expiry[key] = expiry_ms
            else:
                self._staged_expiry.pop(key, None)
        self._operations_since_sync += 1
        self._commit_if_due(log)

    def _after_append(self, keys: list[bytes], values: Sequence[bytes | None], expiry_ms: int = 0) -> None:
        """Commit or stage what was just appended, by durability mode; values are None
        for deletes, `expiry_ms` the sets' expiry (0: none)."""
        log = self._log
        assert log is not None
        if self.durability == "always":
            if len(keys) == 1:  # the keydir moves only if the commit succeeds: the cache with it
                self._commit(sync=True)
                self._cache_put(keys[0], values[0])
                return
            if self._cache:
                deque(map(self._cache_drop, keys), maxlen=0)
            self._commit(sync=True)
            self._cache_put_many(keys, values)
            return
        if self._cache:  # staged values shadow the cache until the commit moves the keydir
            deque(map(self._cache_drop, keys), maxlen=0)
        if len(keys) == 1:
            self._staged[keys[0]] = values[0]
        else:
            self._staged.update(zip(keys, values, strict=True))
        if expiry_ms:
            self._staged_expiry.update(dict.fromkeys(keys, expiry_ms))
        elif self._staged_expiry:
            deque(map(self._staged_expiry.pop, keys, repeat(0)), maxlen=0)
        self._operations_since_sync += 1
        self._commit_if_due(log)

    def _commit_if_due(self, log: SegmentLog) -> None:
        """Buffered modes, after a write was staged: commit once a bound is reached
        (`batch`: operations, time, frame size; `none`: frame size; each with a sync),
        but inside `holding()` only when the next record might not fit the frame."""
        if self._holding and log.pending_bytes < HOLDING_PENDING_MAX_BYTES:
            return
        if self.durability == "batch":
            elapsed_ms = (self.io.now() - self._last_sync_time) * 1000
            if (
                self._operations_since_sync >= BATCH_OPERATIONS_MAX
                or elapsed_ms >= BATCH_INTERVAL_MS_MAX
                or log.pending_bytes >= FRAME_PAYLOAD_SIZE_TARGET_BYTES
            ):
                if self._operations_since_sync >= BATCH_OPERATIONS_MAX:
                    mark("batch_sync_by_operations")
                elif elapsed_ms >= BATCH_INTERVAL_MS_MAX:
                    mark("batch_sync_by_interval")
                else:
                    mark("batch_sync_by_frame_size")
                self._commit(sync=True)
        elif log.pending_bytes >= FRAME_PAYLOAD_SIZE_TARGET_BYTES:
            self._commit(sync=True)  # a full frame is synced: one unsynced frame at most (rule 14)

    def _commit(self, sync: bool) -> None:
        log = self._log
        assert log is not None
        if self._unsettled_journals is not None:
            self._settle_journals()
        try:
            written = log.commit(sync)
        except IoError as error:
            if error.operation in ("sync", "sync_dir"):
                mark("read_only_after_failed_sync")
            else:
                mark("read_only_after_failed_write")
            self._fail()
            raise
        if sync:
            self._counters["syncs"] += 1
            self._operations_since_sync = 0
            if self.durability == "batch":  # only batch mode reads it
                self._last_sync_time = self.io.now()
        if written is not None:
            self._apply(written)
        self._staged.clear()
        self._staged_expiry.clear()

    def _settle_journals(self) -> None:
        """The open's report reached the caller: its recovery journals are done (rule 9).
        A failure leaves them for the next open to report again (twice is safe)."""
        settle, self._unsettled_journals = self._unsettled_journals, None
        assert settle is not None
        with contextlib.suppress(IoError):
            settle()

    def _apply(self, written: Written) -> None:
        """Point the keydir at records that were written (C-level for runs of sets)."""
        keydir = self._keydir
        segment_id = written.segment_id
        base = written.frame_offset + FRAME_HEADER_SIZE
        for records in written.records:
            expiry_ms = records.expiry_ms
            if expiry_ms:
                self._expiring.update(dict.fromkeys(records.keys, expiry_ms))
            elif self._expiring:
                deque(map(self._expiring.pop, records.keys, repeat(0)), maxlen=0)
            if records.kind == KIND_DELETE:
                for key in records.keys:
                    keydir.pop(key, None)
                continue
            if records.kind in KINDS_LIST:
                offsets = record_offsets(base + records.payload_offset, records.lengths)
                for key, offset, length, lsn in zip(
                    records.keys, offsets, records.lengths, itertools.count(records.first_lsn), strict=False
                ):
                    apply_list_record(keydir, records.kind, key, (segment_id, offset, length, lsn, 0))
                continue
            if len(records.keys) == 1:  # a single set: no pipeline to build
                offset = base + records.payload_offset
                keydir[records.keys[0]] = (segment_id, offset, records.lengths[0], records.first_lsn, expiry_ms)
                continue
            offsets = record_offsets(base + records.payload_offset, records.lengths)
            lsns = range(records.first_lsn, records.first_lsn + len(records.keys))
            locations = zip(repeat(segment_id), offsets, records.lengths, lsns, repeat(expiry_ms))
            keydir.update(zip(records.keys, locations, strict=True))
        if self._index is not None:
            self._index_written(written)

    def _index_written(self, written: Written) -> None:
        """Keep the ordered index (once a scan built it) in step with the keydir."""
        assert self._index is not None
        for records in written.records:
            if records.kind in KINDS_LIST:  # a pop may have emptied (so removed) its list
                keydir = self._keydir
                self._index.add([key for key in records.keys if key in keydir])
                self._index.discard([key for key in records.keys if key not in keydir])
                continue
            (self._index.discard if records.kind == KIND_DELETE else self._index.add)(records.keys)

    def flush(self) -> None:
        """Write and sync everything pending, in every durability mode."""
        self._check_writable()
        self._commit(sync=True)

    # -- reads ---------------------------------------------------------------------------

    def _exists(self, key: bytes, now_ms: int | None = None) -> bool:
        """Whether `key` exists (and has not expired) at `now_ms` (default: now)."""
        present = self._staged[key] is not None if key in self._staged else key in self._keydir
        if present and (self._expiring or self._staged_expiry):
            return not self._expired(key, self._now_ms() if now_ms is None else now_ms)
        return present

    def exists(self, key: bytes | str) -> bool:
        key_bytes = _check_key(key)
        self._check_readable()
        return self._exists(key_bytes)

    def __len__(self) -> int:
        self._check_readable()
        if self._staged:
            return len(self.keys())
        if self._expiring:
            now_ms = self._now_ms()
            return len(self._keydir) - sum(1 for expiry_ms in self._expiring.values() if now_ms > expiry_ms)
        return len(self._keydir)

    def keys(self) -> list[bytes]:
        """Every live key (expired ones are absent), sorted."""
        self._check_readable()
        live = set(self._keydir)
        for key, value in self._staged.items():
            (live.add if value is not None else live.discard)(key)
        if self._expiring or self._staged_expiry:
            now_ms = self._now_ms()
            live = {key for key in live if not self._expired(key, now_ms)}
        return sorted(live)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.keys())

    def _key_index(self) -> KeyIndex:
        if self._index is None:
            self._index = KeyIndex(self._keydir)  # O(n log n) once; O(log n) per new key from then on
        return self._index

    def scan(
        self,
        start: bytes | str | None = None,
        stop: bytes | str | None = None,
        *,
        prefix: bytes | str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Live `(key, value)` pairs with `start <= key < stop` (and starting with
        `prefix`), in byte order (descending when `reverse`), at most `limit` of them;
        string keys only (a list has no one value: `keys()` and `scan_cursor` list it).

        Lazy: each value is read when the iteration reaches its key, and writes made
        meanwhile are seen or not (a key deleted before it is reached is skipped). A
        range of k keys costs O(log n + k) after the first scan of an open store, which
        builds the ordered index (O(n log n)). Raises as `get` does while iterating, and
        `InvalidArgument` for a bad bound or limit before it starts.
        """
        low = None if start is None else _as_bytes(start, "start")
        high = None if stop is None else _as_bytes(stop, "stop")
        if prefix is not None:
            prefix_bytes = _as_bytes(prefix, "prefix")
            low = prefix_bytes if low is None or low < prefix_bytes else low
            end = prefix_stop(prefix_bytes)
            high = end if high is None or (end is not None and end < high) else high
        if limit is not None and (type(limit) is not int or limit < 0):
            raise InvalidArgument(f"limit must be a non-negative int or None, not {limit!r}")
        self._check_readable()
        return self._scan(low, high, reverse, limit)

    def _scan(
        self, low: bytes | None, high: bytes | None, reverse: bool, limit: int | None
    ) -> Iterator[tuple[bytes, bytes]]:
        if limit == 0 or (low is not None and high is not None and high <= low):
            return
        found = 0
        for key in keys_between(self._key_index(), self._staged, low, high, reverse):
            try:
                value = self.get(key)
            except WrongType:
                continue  # a list: scan reads strings (keys() and scan_cursor list every key)
            if value is None:
                continue
            yield key, value
            found += 1
            if found == limit:
                return

    def scan_cursor(self, cursor: int = 0, count: int = 10) -> tuple[int, list[bytes]]:
        """One step of a cursor scan (Redis `SCAN`): about `count` keys in byte order
        from `cursor` (0: the start), and the cursor to pass next (0: done). Every key
        present for the whole scan is returned at least once, whatever is written
        between the steps. Raises `InvalidArgument` for a cursor this store did not hand
        out or a count below 1."""
        if type(count) is not int or count < 1:
            raise InvalidArgument(f"count must be a positive int, not {count!r}")
        resume = Cursor.decode(cursor)
        self._check_readable()
        start, after = (None, None) if resume is None else resume.start()
        if resume is not None and resume.whole_prefix and start is None:
            return 0, []  # past every key that starts with 0xff bytes only: nothing is left
        keys: list[bytes] = []
        stopped: Cursor | None = None
        for key in keys_between(self._key_index(), self._staged, start, None, after=after):
            if stopped is not None and not stopped.covers(key):
                return stopped.encode(), keys
            if self._exists(key):
                keys.append(key)
                if len(keys) >= count and stopped is None:
                    stopped = Cursor.after(key)
        return 0, keys

    def __contains__(self, key: object) -> bool:
        return isinstance(key, (bytes, str)) and self.exists(key)

    def get(self, key: bytes | str) -> bytes | None:
        """The value stored under `key`, or None.

        Raises `CorruptionDetected` when the stored record fails its checksum (never a
        wrong value), `IoError` when the read fails, `StoreClosed`.
        """
        key_bytes = key if type(key) is bytes and len(key) <= KEY_SIZE_MAX_BYTES else _check_key(key)
        if self.state is not State.OPEN:
            self._check_readable()
        self._gets += 1
        if (self._expiring or self._staged_expiry) and self._expired(key_bytes, self._now_ms()):
            mark("expired_on_read")
            return None
        if self._staged and key_bytes in self._staged:
            return self._staged[key_bytes]
        cached = self._cache.get(key_bytes)
        if cached is not None:
            self._cache_hits += 1
            return cached
        location = self._keydir.get(key_bytes)
        if location is None:
            return None
        if isinstance(location, ListEntry):
            raise WrongType(WRONG_TYPE)
        value = self._read_record(key_bytes, location)[1].value
        self._cache_put(key_bytes, value)
        return value

    def _file(self, file_key: int) -> File:
        """The open file a keydir entry points into."""
        log = self._log
        assert log is not None
        if file_key < 0:
            assert self._compacted_file is not None and -file_key == self._compacted_id
            return self._compacted_file
        return log.file if file_key == log.segment_id else log.sealed[file_key]

    def _read_record(
        self, key: bytes, location: Location, kinds: tuple[int, ...] = (KIND_SET,)
    ) -> tuple[bytes, Record]:
        """Read one live record (a set, or with `kinds=KINDS_PUSH` a list element) and
        check it; return its bytes and its decoding.

        Raises `CorruptionDetected` (checksum, key, lsn or kind mismatch), `IoError`.
        """
        file_key, offset, length, lsn, _expiry_ms = location
        file = self._file(file_key)
        for _ in range(1 + READ_RETRIES_MAX):  # a transient read error is not damage
            data = read_exact(self.io, file, offset, length)
            record = decode_record(data, expected_key=key)
            if record is not None and record.lsn == lsn and record.kind in kinds:
                return data, record
            mark("record_read_again")
        raise CorruptionDetected(
            f"record for key {key[:64]!r} in {file.path} at offset {offset} failed its checksum "
            f"{1 + READ_RETRIES_MAX} times; the value is not returned"
        )

    def _cache_put(self, key: bytes, value: bytes | None) -> None:
        self._cache_drop(key)
        if value is None or len(value) > CACHE_SIZE_MAX_BYTES // 16:
            return
        cache = self._cache
        while cache and self._cache_bytes + len(value) > CACHE_SIZE_MAX_BYTES:
            evicted = next(iter(cache))
            self._cache_bytes -= len(cache.pop(evicted))
        cache[key] = value
        self._cache_bytes += len(value)

    def _cache_put_many(self, keys: list[bytes], values: Sequence[bytes | None]) -> None:
        """Write-through for a batch of sets: recent writes are the likeliest reads."""
        latest = dict(zip(keys, values, strict=True))
        size = sum(map(len, latest.values()))  # type: ignore[arg-type]  # sets only: no None
        if self._cache_bytes + size > CACHE_SIZE_MAX_BYTES:
            deque(map(self._cache_put, latest.keys(), latest.values()), maxlen=0)
            return
        self._cache.update(latest)  # type: ignore[arg-type]
        self._cache_bytes += size

    def _cache_drop(self, key: bytes) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= len(old)

    # -- lists ---------------------------------------------------------------------------
    #
    # A list is the run of its live push records (`kv.keydir`): a push writes one record
    # per element, a pop one record per element taken, never the whole list. Each list
    # operation is one frame, written and synced before it returns, in every durability
    # mode (with whatever was staged before it, in order): the keydir points at written
    # records only, and the log never holds two unsynced frames, so a crash that keeps a
    # later unsynced frame and loses an earlier one cannot leave a hole that reads as
    # damage (batch mode syncs every frame it writes for the same reason).

    def rpush(self, key: bytes | str, *values: bytes | str) -> int:
        """Append `values` to the list at `key` (created when absent), in order, all or
        none after a crash, durable on return in every mode (with every write before
        it); return the list's new length (Redis RPUSH).

        Raises `WrongType` (the key holds a string), `InvalidArgument` (no value),
        `BatchTooLarge` (more than one frame holds), and as `set` does.
        """
        return self._push(KIND_PUSH_RIGHT, key, values)

    def lpush(self, key: bytes | str, *values: bytes | str) -> int:
        """Prepend `values` one after another (so the last ends up first, as Redis
        LPUSH); return the new length. Raises as `rpush` does."""
        return self._push(KIND_PUSH_LEFT, key, values)

    def rpop(self, key: bytes | str) -> bytes | None:
        """Remove and return the list's last element (None: no list). Once it returns,
        in every durability mode, no crash brings the element back. Raises `WrongType`,
        and as `get` and `set` do."""
        taken = self._pop(KIND_POP_RIGHT, key, 1)
        return taken[0] if taken else None

    def lpop(self, key: bytes | str) -> bytes | None:
        """Remove and return the list's first element: `rpop` from the other end."""
        taken = self._pop(KIND_POP_LEFT, key, 1)
        return taken[0] if taken else None

    def rpop_many(self, key: bytes | str, count: int) -> list[bytes]:
        """Remove and return up to `count` elements from the end, last first, as one
        frame (Redis RPOP key count). Raises as `rpop` and `BatchTooLarge`."""
        return self._pop(KIND_POP_RIGHT, key, count)

    def lpop_many(self, key: bytes | str, count: int) -> list[bytes]:
        """Remove and return up to `count` elements from the front (Redis LPOP key count)."""
        return self._pop(KIND_POP_LEFT, key, count)

    def llen(self, key: bytes | str) -> int:
        """The list's length, 0 when absent (Redis LLEN). Raises `WrongType`."""
        entry = self._list(_check_key(key))
        return len(entry) if entry is not None else 0

    def lrange(self, key: bytes | str, start: int, stop: int) -> list[bytes]:
        """Elements `start` to `stop`, both included, negative ones counted from the end
        (Redis LRANGE: `lrange(key, 0, -1)` is the whole list). Costs one read per
        element returned. Raises `InvalidArgument` (an index that is not an int),
        `WrongType`, `CorruptionDetected`, `IoError`."""
        key_bytes = _check_key(key)
        if type(start) is not int or type(stop) is not int:
            raise InvalidArgument(f"start and stop must be ints, not {start!r}, {stop!r}")
        entry = self._list(key_bytes)
        if entry is None:
            return []
        span = list_range(len(entry), start, stop)
        if not span:
            return []
        return [
            self._read_record(key_bytes, location, KINDS_PUSH)[1].value
            for location in itertools.islice(entry, span.start, span.stop)
        ]

    def value_type(self, key: bytes | str) -> Literal["none", "string", "list"]:
        """What `key` holds, in Redis TYPE's words."""
        key_bytes = _check_key(key)
        self._check_readable()
        if not self._exists(key_bytes):
            return "none"
        staged = self._staged and key_bytes in self._staged
        return "list" if not staged and isinstance(self._keydir.get(key_bytes), ListEntry) else "string"

    def _list(self, key: bytes) -> ListEntry | None:
        """The list at `key` as a read sees it (None: absent). Raises `WrongType`."""
        self._check_readable()
        if self._staged and key in self._staged:
            if self._staged[key] is not None and not self._expired(key, self._now_ms()):
                raise WrongType(WRONG_TYPE)
            return None
        entry = self._keydir.get(key)
        if entry is None or isinstance(entry, ListEntry):
            return entry
        if self._expiring and self._expired(key, self._now_ms()):
            return None
        raise WrongType(WRONG_TYPE)

    def _push(self, kind: int, key: bytes | str, values: tuple[bytes | str, ...]) -> int:
        key_bytes = _check_key(key)
        items = list(map(_check_value, values))
        if not items:
            raise InvalidArgument("a push needs at least one value")
        log = self._check_writable()
        entry = self._list(key_bytes)
        length = len(entry) if entry is not None else 0
        self._make_room(log, (RECORD_HEADER_SIZE + len(key_bytes)) * len(items) + sum(map(len, items)))
        log.append(kind, [key_bytes] * len(items), items)
        self._counters["sets"] += len(items)
        self._commit_list_write(key_bytes)
        return length + len(items)

    def _pop(self, kind: int, key: bytes | str, count: int) -> list[bytes]:
        key_bytes = _check_key(key)
        if type(count) is not int or count < 0:
            raise InvalidArgument(f"count must be an int of at least 0, not {count!r}")
        log = self._check_writable()
        entry = self._list(key_bytes)
        if entry is None or count == 0:
            return []
        taken = min(count, len(entry))
        ends = itertools.islice(entry if kind == KIND_POP_LEFT else reversed(entry), taken)
        values = [self._read_record(key_bytes, location, KINDS_PUSH)[1].value for location in ends]
        self._make_room(log, (RECORD_HEADER_SIZE + len(key_bytes)) * taken)
        log.append(kind, [key_bytes] * taken, [b""] * taken)
        self._counters["deletes"] += taken
        self._commit_list_write(key_bytes)
        return values

    def _commit_list_write(self, key: bytes) -> None:
        """Write and sync the frame holding a list operation (and whatever was staged
        before it); the keydir moves once it is durable (rule 14 of kv.opening)."""
        self._cache_drop(key)  # an expired string's value may be cached under the key
        self._commit(sync=True)

    # -- maintenance ---------------------------------------------------------------------

    def compact(self) -> None:
        """Rewrite every live record outside the active segment into one compacted file.

        Raises `CorruptionDetected` (a live record failed its checksum; nothing changes),
        `IoError` (before the install point the store stays open and unchanged; after it
        the store goes read-only and a reopen finishes the job). The install order, and
        the files removed only after it, are rule 11.
        """
        log = self._check_writable()
        self._commit(sync=True)
        try:
            log.roll()
            log.commit(sync=True)
        except IoError:
            self._fail()
            raise
        target_id = log.segment_id - 1
        active = log.segment_id
        # Expired records are dropped with every older record of their keys: the
        # compacted file covers every file that holds one (rule 11 of kv.opening), so no
        # older value can come back once it is installed, after a crash either.
        now_ms = self._now_ms()
        expired = [
            key for key, expiry_ms in self._expiring.items() if now_ms > expiry_ms and self._keydir[key][0] != active
        ]
        live = sorted(self._live_locations(active, now_ms), key=lambda item: item[1][3])
        output = compaction.build_compacted(target_id, self._live_records(live))
        try:
            new_file = compaction.install(self.io, self.path, target_id, output)
        except IoError:
            self._fail()
            raise
        self._forget(expired)
        compaction.load_entries(self._keydir, -target_id, output.entries)
        obsolete_files = list(log.sealed.values())
        obsolete_names = [segment_name(segment_id) for segment_id in log.sealed]
        if self._compacted_file is not None:
            obsolete_files.append(self._compacted_file)
            obsolete_names += [compacted_name(self._compacted_id), hint_name(self._compacted_id)]
        log.sealed.clear()
        self._compacted_id, self._compacted_file = target_id, new_file
        try:
            for file in obsolete_files:
                self.io.close(file).result()
            for name in obsolete_names:
                try:
                    self.io.unlink(self._file_path(name)).result()
                except IoError as error:
                    if error.errno != errno.ENOENT:  # a hint may be missing: the goal is its absence
                        raise
            self.io.sync_dir(self.path).result()
        except IoError:
            self._fail()
            raise

    def _forget(self, keys: list[bytes]) -> None:
        """Drop expired keys whose records compaction left behind from memory."""
        if keys:
            mark("expired_dropped_by_compaction")
        for key in keys:
            del self._keydir[key], self._expiring[key]
            self._cache_drop(key)
        if self._index is not None and keys:
            self._index.discard(keys)

    def _live_locations(self, active: int, now_ms: int) -> Iterator[tuple[bytes, Location]]:
        """Every live record outside the active segment: each unexpired set, and each
        element of each list (lists do not expire)."""
        for key, entry in self._keydir.items():
            if isinstance(entry, ListEntry):
                assert all(location[0] != active for location in entry), "compaction rolls the log first"
                yield from zip(repeat(key), entry)
            elif entry[0] != active and not (entry[4] and now_ms > entry[4]):
                yield key, entry

    def _live_records(self, live: list[tuple[bytes, Location]]) -> list[compaction.CompactedRecord]:
        """Each live record as stored, in order, for compaction.

        A cached value is the value of the record its key's keydir entry points at (the
        cache is write-through after the commit, filled by checked reads, and dropped
        for every key appended), so its record is re-encoded, not read. The rest are
        read in batches of COMPACTION_READS_IN_FLIGHT_MAX and checked; a short or
        failing read goes through `_read_record` (which retries).

        Raises `CorruptionDetected` (a live record failed its checksum), `IoError`.
        """
        records: list[compaction.CompactedRecord] = []
        uncached: list[tuple[int, bytes, Location]] = []
        cache = self._cache
        for key, location in live:
            _file_key, _offset, length, lsn, expiry_ms = location
            value = cache.get(key)  # never a list's: lists are not cached
            if value is None:
                uncached.append((len(records), key, location))
                records.append((key, b"", lsn, expiry_ms))
                continue
            encoded = encode_record(KIND_SET, key, value, lsn, expiry_ms)
            assert len(encoded) == length, "the cached value is not the one the keydir points at"
            records.append((key, encoded, lsn, expiry_ms))
        for start in range(0, len(uncached), COMPACTION_READS_IN_FLIGHT_MAX):
            batch = uncached[start : start + COMPACTION_READS_IN_FLIGHT_MAX]
            reads = [self.io.read(self._file(location[0]), location[1], location[2]) for _, _, location in batch]
            try:
                for read, (index, key, location) in zip(reads, batch, strict=True):
                    data = read.result()
                    record = decode_record(data, expected_key=key)
                    if record is None or record.lsn != location[3] or record.kind not in KINDS_LIVE:
                        data = self._read_record(key, location, KINDS_LIVE)[0]  # short, transient or damaged
                    records[index] = (key, data, location[3], location[4])
            except KvError:
                for read in reads:  # leave nothing in flight behind the error
                    with contextlib.suppress(IoError):
                        read.result()
                raise
        return records

    def verify(self) -> VerifyReport:
        """Read every file and every live record back and check every checksum."""
        self._check_readable()
        report = VerifyReport()
        files: list[tuple[int, File, bool]] = []
        if self._compacted_file is not None:
            files.append((self._compacted_id, self._compacted_file, True))
        if self._log is not None:
            files += [(segment_id, file, False) for segment_id, file in self._log.sealed.items()]
            files.append((self._log.segment_id, self._log.file, False))
        for segment_id, file, compacted in files:
            size = self.io.size(file).result()
            if self._log is not None and file is self._log.file:
                size = min(size, self._log.write_offset)
            data = read_exact(self.io, file, 0, size)
            reread = functools.partial(read_exact, self.io, file, 0, size)
            _data, scan, trusted = recovery.scan_confirmed(segment_id, data, reread, compacted)
            if not trusted:
                raise IoError(errno.EIO, "reads disagree (transient read errors): not damage", file.path, "read")
            report.files_checked += 1
            report.checked_bytes[file.path] = size
            report.frames_checked += len(scan.frames)
            if scan.bad_offset is not None:
                report.problems.append(f"{file.path}: damaged frame at offset {scan.bad_offset}")
                report.damaged_files.append(file.path)
        for key, entry in self._keydir.items():
            for location, kinds in self._records_of(entry):
                report.records_checked += 1
                try:
                    self._read_record(key, location, kinds)
                except CorruptionDetected as error:
                    report.problems.append(str(error))
                    path = self._file(location[0]).path
                    if path not in report.damaged_files:
                        report.damaged_files.append(path)
        return report

    @staticmethod
    def _records_of(entry: Entry) -> list[tuple[Location, tuple[int, ...]]]:
        """The live records of a keydir entry, each with the kinds it may be."""
        if isinstance(entry, ListEntry):
            return [(location, KINDS_PUSH) for location in entry]
        return [(entry, (KIND_SET,))]

    def stats(self) -> Stats:
        self._check_readable()
        log = self._log
        assert log is not None
        bytes_on_disk = log.write_offset
        for file in [*log.sealed.values(), *([self._compacted_file] if self._compacted_file else [])]:
            bytes_on_disk += self.io.size(file).result()
        return Stats(
            keys=len(self),
            state=self.state.value,
            durability=self.durability,
            io=self.io.name,
            segments=len(log.sealed) + 1,
            compacted_files=1 if self._compacted_file is not None else 0,
            bytes_on_disk=bytes_on_disk,
            live_bytes=sum(location[2] for entry in self._keydir.values() for location, _ in self._records_of(entry)),
            next_lsn=log.next_lsn,
            durable_lsn=log.durable_lsn,
            recovery=self.recovery,
            gets=self._gets,
            cache_hits=self._cache_hits,
            **self._counters,
        )

    # -- opening and recovery --------------------------------------------------------------

    def _open(self, on_corruption: OnCorruption) -> None:
        if self.opened_read_only:
            self._open_read_only()
            return
        # The directory itself is an entry of its parent: durable only once the parent
        # is synced (rule 1). One fsync per open, cheaper than finding out whether it is new.
        self.io.mkdir(self.path).result()
        self.io.sync_dir(_parent_directory(self.path)).result()
        try:
            self._lock = self.io.lock(self._file_path(LOCK_NAME)).result()
        except IoError as error:
            if error.errno in _LOCK_ERRNOS:
                raise StoreLocked(f"{self.path} is open in another writer ({error})") from error
            raise
        recovery = Recovery(self.io, self.path, on_corruption, self.segment_size_target_bytes, self.recovery)
        self._adopt(recovery)
        self._transition(State.OPEN)
        self._last_sync_time = self.io.now()
        if recovery.compaction_needed:  # a damaged compacted file or a salvaged log: rewrite what is live (rule 12)
            try:
                self.compact()
            except KvError:
                pass  # the store is returned all the same: its report names the loss; it may be read-only
            except BaseException:
                self._transition(State.CLOSED)  # the caller never gets this store: release it
                self._close_files()
                raise
        # Only now, after that compaction's commit: a journal is settled by the first
        # commit after `kv.open` returned (rule 9). Settled by the compaction's own
        # commit, a crash later in the open lost the loss's only report: the compaction
        # had removed the damage (found by the exhaustive run of salvage).
        if recovery.journals_pending:
            self._unsettled_journals = recovery.settle_journals

    def _adopt(self, recovery: Recovery) -> None:
        """Run recovery and take over what it found (the keydir, the log, the compacted
        file); on any failure the store is closed and every file it opened released."""
        try:
            recovery.run()
        except BaseException:
            self._transition(State.CLOSED)
            self._close_files()
            raise
        assert recovery.log is not None
        self._keydir, self._log = recovery.keydir, recovery.log
        self._expiring = _expiring(self._keydir)
        self._compacted_id, self._compacted_file = recovery.compacted_id, recovery.compacted_file

    def _open_read_only(self) -> None:
        """Open without the lock and without writing (see `kv.open`, `read_only`):
        recovery in memory only, then READ_ONLY, where every write is refused."""
        recovery = Recovery(self.io, self.path, "raise", self.segment_size_target_bytes, self.recovery, read_only=True)
        self._adopt(recovery)
        self._transition(State.READ_ONLY)


def open(  # noqa: A001 - the library's entry point reads as kv.open
    path: str,
    io: Io | None = None,
    durability: Durability = "always",
    on_corruption: OnCorruption = "raise",
    segment_size_target_bytes: int = SEGMENT_SIZE_TARGET_BYTES,
    read_only: bool = False,
) -> Store:
    """Open (creating if needed) the store in directory `path`.

    `io` defaults to the best backend here (io_uring if it works, else blocking).
    A torn tail is truncated and reported in `store.recovery`. Mid-log corruption
    raises `CorruptionDetected` (nothing changed on disk) unless `on_corruption` is
    `"repair"` (point in time): then the damaged data and everything after it in the log
    is moved into `quarantine/`, the valid prefix is kept, and `store.recovery` reports
    what was lost; or `"salvage"` (`kv.salvage`): every frame and record that passes its
    checks is kept, the damaged files are copied into `quarantine/` and compacted, and
    `store.recovery` names the lsns and keys lost and the keys that may hold an older
    value than one lost (`Corruption.keys_at_risk`).
    Raises `StoreLocked` when another writer has the store open, `IoError`.

    `read_only=True` opens an existing store without taking its lock (a writer may hold
    it) and never writes: recovery runs in memory only (a torn tail is left on disk and
    reported), reads work, every write raises `StoreReadOnly`. The directory must hold
    a store (else `IoError` or `CorruptionDetected`); mid-log corruption raises
    `CorruptionDetected` (a repair writes: `on_corruption="repair"` is refused). What a
    writer commits after the open is not seen: reopen to see it.
    """
    if on_corruption not in ON_CORRUPTION_MODES:
        raise InvalidArgument(f"on_corruption must be 'raise', 'repair' or 'salvage', not {on_corruption!r}")
    if read_only and on_corruption != "raise":
        raise InvalidArgument("a read-only open cannot repair or salvage: both write to the store")
    if io is None:
        from kv.io import make_io

        io = make_io("auto")
        store = Store(path, io, durability, segment_size_target_bytes, read_only)
        store._owns_io = True
    else:
        store = Store(path, io, durability, segment_size_target_bytes, read_only)
    store._open(on_corruption)
    return store
