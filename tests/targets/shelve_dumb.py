"""Crash-test target: the standard library's `shelve` over `dbm.dumb` (CPython 3.11).

Promise checked (the shelve documentation: `Shelf.sync()` "synchronize the persistent
dictionary on disk, if feasible"; also done by `close()`): after a crash the shelf opens
and maps every key to the object of its last acknowledged assignment (or of the one in
flight), with no other keys, and every object unpickles.

The lines the promise depends on (CPython 3.11.7):
- Lib/shelve.py:119-125 `Shelf.__setitem__` pickles the object and stores the bytes in
  the dumb database; :164-172 `Shelf.sync` calls `self.dict.sync()`, which is
  dbm.dumb's `_commit`;
- Lib/dbm/dumb.py:159-165 `_addval` appends the pickle to `.dat` (a value that outgrows
  its blocks is appended anew, :214), :183-185 `_addkey` appends to `.dir`, and
  :113-136 `_commit` renames `.dir` to `.bak` (:126) and rewrites `.dir` (:130-136),
  with no fsync anywhere; `open` never reads `.bak`.
"""

from __future__ import annotations

import dbm.dumb
import pathlib
import shelve
from collections.abc import Callable, MutableMapping
from typing import cast

BASE_NAME = "shelf"
# (key, version): "settings" grows past its 512-byte block on version 2, so the new
# pickle is appended at a new offset (dumb.py:214) rather than written in place.
ASSIGNMENTS = (("settings", 1), ("history", 1), ("settings", 2))
# Bounds the keys a corrupted index may claim before the check gives up listing them.
KEYS_MAX = 100


def record_of(key: str, version: int) -> dict[str, object]:
    """The object stored for `key` at `version`; version 2 is larger than one block."""
    return {"key": key, "version": version, "entries": [f"{key} entry {index}" for index in range(version * 20)]}


def _open(root: pathlib.Path) -> shelve.Shelf[object]:
    """A shelf over a dbm.dumb database (shelve.open would pick dbm.gnu/ndbm when
    installed, which are C code and would bypass the simulated disk)."""
    # The shelf owns the database and closes it (Shelf.close, shelve.py:140-147).
    database = cast(MutableMapping[bytes, bytes], dbm.dumb.open(str(root / BASE_NAME), "c"))  # noqa: SIM115
    return shelve.Shelf(database)


def workload(root: pathlib.Path, ack: Callable[[object], None]) -> None:
    """Store each (key, version) record and call `sync()`, acknowledging "KEY=VERSION"
    after sync returns; the final close syncs once more."""
    with _open(root) as shelf:
        for key, version in ASSIGNMENTS:
            shelf[key] = record_of(key, version)
            shelf.sync()
            ack(f"{key}={version}")


def check(root: pathlib.Path, acked: list[object], pending: object | None) -> None:
    """Reopen the shelf and raise AssertionError unless its contents are what the
    acknowledged assignments leave, with or without the pending one. Errors from
    dbm.dumb or pickle reopening the data propagate."""
    with _open(root) as shelf:
        keys = list(shelf.keys())
        assert len(keys) <= KEYS_MAX, f"the index claims {len(keys)} keys"
        contents = {key: shelf[key] for key in keys}
    committed = _contents_after([str(value) for value in acked])
    allowed = [committed]
    if pending is not None:
        allowed.append(_contents_after([*map(str, acked), str(pending)]))
    assert contents in allowed, (
        f"the shelf holds versions {_versions(contents)}; acknowledged {acked} (pending {pending!r})"
    )


def _versions(contents: dict[str, object]) -> dict[str, object]:
    """Each key's record version (or the whole value when it is not a record), for messages."""
    return {key: value.get("version") if isinstance(value, dict) else value for key, value in contents.items()}


def _contents_after(assignments: list[str]) -> dict[str, object]:
    """The key -> record mapping after "KEY=VERSION" assignments."""
    contents: dict[str, object] = {}
    for assignment in assignments:
        key, _, version = assignment.partition("=")
        contents[key] = record_of(key, int(version))
    return contents
