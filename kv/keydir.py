"""The keydir's entries: where each live key's records are. Pure; no I/O.

A string key maps to one `Location`, its record's. A list key maps to a `ListEntry`:
the locations of its live push records, head first. A list is never rewritten: a push
appends one record (an element at one end), a pop appends one record with no value that
removes the element at one end. Replaying a segment's records in lsn order rebuilds
every list, and so does replaying only the live push records in lsn order (what a
compacted file holds): an element pushed left went in front of every element live at the
time, and every live element pushed before it was live then, so the survivors keep
their order. An empty list does not exist (as in Redis): the pop that empties it
removes the key.
"""

from __future__ import annotations

from collections import deque
from typing import Union

from kv.record import KIND_POP_LEFT, KIND_PUSH_LEFT, KIND_PUSH_RIGHT

# (file key, record offset, record length, lsn, expiry_ms). The file key is the segment
# id of a log segment and minus the id of a compacted file. Only ints and bytes: the
# garbage collector untracks such tuples, which keeps a million-key keydir from being
# rescanned on every collection.
Location = tuple[int, int, int, int, int]


class ListEntry(deque[Location]):
    """A list's elements: the locations of their push records, head first."""

    __slots__ = ()


Entry = Union[Location, ListEntry]  # noqa: UP007 - a runtime alias (isinstance narrows it)
Keydir = dict[bytes, Entry]


def apply_list_record(keydir: Keydir, kind: int, key: bytes, location: Location) -> None:
    """Replay one push or pop record of `key` (at `location`) onto `keydir`.

    A push onto a string key, or a pop from a key that holds no list, can only follow a
    loss the opening reported (the store refuses both): the push starts a new list, the
    pop changes nothing.
    """
    entry = keydir.get(key)
    if kind in (KIND_PUSH_LEFT, KIND_PUSH_RIGHT):
        if type(entry) is not ListEntry:
            entry = keydir[key] = ListEntry()
        if kind == KIND_PUSH_RIGHT:
            entry.append(location)
        else:
            entry.appendleft(location)
        return
    if type(entry) is not ListEntry:
        return
    if kind == KIND_POP_LEFT:
        entry.popleft()
    else:
        entry.pop()
    if not entry:
        del keydir[key]


def list_range(length: int, start: int, stop: int) -> range:
    """The element indexes Redis LRANGE `start stop` covers in a list of `length`
    (inclusive bounds, negative ones count from the end, out of range ones clipped)."""
    if start < 0:
        start = max(length + start, 0)
    if stop < 0:
        stop += length
    return range(start, min(stop, length - 1) + 1)
