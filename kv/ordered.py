"""Keys in order: the index behind `Store.scan` and `Store.scan_cursor`.

The keydir is a dict (O(1) point reads); ranges need order. `KeyIndex` keeps the live
keys in a `sortedcontainers.SortedSet` (a sorted list of lists beside a set: O(log n)
insert and remove, O(log n + k) for a range of k keys), built from the keydir the first
time a scan asks for it, so a store that never scans pays nothing, and kept in step
with every commit from then on.

`keys_between` walks a range in chunks of `CHUNK_KEYS`, seeking again after each, so
writes made while a scan is under way are seen or not but never break it; keys written
in a buffered mode and not yet committed (the store's staged writes) are merged in.

Cursors (`Cursor`) carry where the last step stopped, so a cursor scan is stateless: it
resumes past that key whatever was written meanwhile, which returns every key present
for the whole scan at least once (exactly once, in fact: keys come in order and each
step starts past the last one). The integer is the key's bytes behind a marker byte,
read as one big-endian number (the marker keeps leading zero bytes), so 0, Redis's
"start" and "done", is never a key's cursor. A key longer than `CURSOR_KEY_BYTES_MAX`
is not put in a cursor whole (a 64 KiB key would make a number of 158,000 digits): the
step that reaches it goes on through every key sharing its first `CURSOR_KEY_BYTES_MAX`
bytes, and the cursor resumes after all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice

from sortedcontainers import SortedSet

from kv.errors import InvalidArgument

# A range is read from the index this many keys at a time (one O(log n) seek per chunk).
CHUNK_KEYS = 64
# Longer keys are cut to this many bytes in a cursor (whose decimal form stays under
# Python's 4,300-digit limit for int-to-str conversion).
CURSOR_KEY_BYTES_MAX = 1024
_AFTER_KEY = b"\x01"  # the cursor resumes after this key
_AFTER_PREFIX = b"\x02"  # ... after every key that starts with these bytes


class KeyIndex:
    """The live keys of a store, in byte order."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._keys: SortedSet[bytes] = SortedSet(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, keys: Iterable[bytes]) -> None:
        update = self._keys.add
        for key in keys:
            update(key)

    def discard(self, keys: Iterable[bytes]) -> None:
        remove = self._keys.discard
        for key in keys:
            remove(key)

    def between(
        self, start: bytes | None, stop: bytes | None, reverse: bool = False, after: bytes | None = None
    ) -> Iterator[bytes]:
        """Keys with start <= key < stop (None: unbounded), ascending (or descending);
        `after` resumes past a key already returned (beyond it in the scan's direction)."""
        if after is not None:
            if reverse:
                stop = after if stop is None or after < stop else stop
            elif start is None or after >= start:
                return iter(self._keys.irange(after, stop, inclusive=(False, False)))
        return iter(self._keys.irange(start, stop, inclusive=(True, False), reverse=reverse))


def prefix_stop(prefix: bytes) -> bytes | None:
    """The least key greater than every key that starts with `prefix` (None: no bound,
    for a prefix of only 0xff bytes or the empty prefix)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def keys_between(
    index: KeyIndex,
    staged: Mapping[bytes, bytes | None],
    start: bytes | None,
    stop: bytes | None,
    reverse: bool = False,
    after: bytes | None = None,
) -> Iterator[bytes]:
    """Keys in [start, stop) of the index and of the staged sets (values not None), in
    order, past `after` if given; a caller checks each key still exists when it reaches
    it (a staged or later delete)."""
    while True:
        chunk = list(islice(index.between(start, stop, reverse, after), CHUNK_KEYS))
        bound = chunk[-1] if len(chunk) == CHUNK_KEYS else None  # None: the range ends in this chunk
        pending = [
            key
            for key, value in staged.items()
            if value is not None and _inside(key, start, stop, reverse, after, bound)
        ]
        keys = sorted({*chunk, *pending}, reverse=reverse) if pending else chunk
        yield from keys
        if bound is None:
            return
        after = bound


def _inside(
    key: bytes, start: bytes | None, stop: bytes | None, reverse: bool, after: bytes | None, bound: bytes | None
) -> bool:
    """`key` in [start, stop), past `after` and not past `bound` in the scan's direction."""
    if (start is not None and key < start) or (stop is not None and key >= stop):
        return False
    if reverse:
        return (after is None or key < after) and (bound is None or key >= bound)
    return (after is None or key > after) and (bound is None or key <= bound)


@dataclass(frozen=True)
class Cursor:
    """Where a cursor scan resumes: past `key`, or past every key starting with it."""

    key: bytes
    whole_prefix: bool = False

    def encode(self) -> int:
        return int.from_bytes((_AFTER_PREFIX if self.whole_prefix else _AFTER_KEY) + self.key, "big")

    @classmethod
    def after(cls, key: bytes) -> Cursor:
        """The cursor past `key` (past its whole prefix, for a long key)."""
        if len(key) > CURSOR_KEY_BYTES_MAX:
            return cls(key[:CURSOR_KEY_BYTES_MAX], whole_prefix=True)
        return cls(key)

    def covers(self, key: bytes) -> bool:
        """True when a step that stopped here must still return `key` (it shares the
        long prefix the cursor will skip)."""
        return self.whole_prefix and key.startswith(self.key)

    def start(self) -> tuple[bytes | None, bytes | None]:
        """(start, after) for `keys_between`/`KeyIndex.between`."""
        return (prefix_stop(self.key), None) if self.whole_prefix else (None, self.key)

    @classmethod
    def decode(cls, cursor: int) -> Cursor | None:
        """The cursor a number names (None for 0, a new scan). Raises `InvalidArgument`
        for a number that is not a cursor this module made."""
        if cursor == 0:
            return None
        if cursor < 0:
            raise InvalidArgument(f"invalid cursor {cursor}")
        data = cursor.to_bytes((cursor.bit_length() + 7) // 8, "big")
        if data[:1] not in (_AFTER_KEY, _AFTER_PREFIX) or len(data) > 1 + CURSOR_KEY_BYTES_MAX:
            raise InvalidArgument(f"invalid cursor {cursor}")
        return cls(data[1:], whole_prefix=data[:1] == _AFTER_PREFIX)
