"""Crash-test target: the standard library's `dbm.dumb` (CPython 3.11).

Promise checked (the dbm documentation: `dumbdbm.sync()` "Synchronize the on-disk
directory and data files", and `close()`): after a crash the database opens and maps
every key to the value of its last acknowledged assignment (or of the one in flight),
with no other keys.

The lines the promise depends on (Lib/dbm/dumb.py, 3.11.7; nothing in the module ever
calls fsync):
- :159-165 `_addval` appends the value to `.dat`, :172-175 `_setval` overwrites it in
  place, :183-185 `_addkey` appends an index line to `.dir` ("this is a disaster (for
  the database) if the program crashes", the module's own comment at :216-222);
- :113-136 `_commit` (= `sync`, and `close`): :121 unlink `.bak`, :126
  `self._os.rename(self._dirfile, self._bakfile)`, then :130 `self._io.open(self._dirfile,
  'w')` and :136 `f.write(entry)` rewrite the index from scratch; `open` never reads
  `.bak` (:97), so a crash between :126 and :136, even with every earlier operation on
  disk, loses every key.
"""

from __future__ import annotations

import dbm.dumb
import pathlib
from collections.abc import Callable

BASE_NAME = "db"
# (key, version): "alpha" is first added, then overwritten in place (same block count,
# the _setval path at dumb.py:209); "bravo" once.
ASSIGNMENTS = (("alpha", 1), ("bravo", 1), ("alpha", 2))
# Bounds the keys a corrupted index may claim before the check gives up listing them.
KEYS_MAX = 100


def value_of(key: str, version: int) -> bytes:
    """The value stored for `key` at `version`: the same length for every version, so an
    overwrite fits in the old value's blocks and is done in place."""
    return f"{key} version {version}; ".encode() * 4


def workload(root: pathlib.Path, ack: Callable[[object], None]) -> None:
    """Assign each (key, version) and call `sync()`, acknowledging "KEY=VERSION" after
    sync returns; the final close commits the index once more."""
    with dbm.dumb.open(str(root / BASE_NAME), "c") as database:
        for key, version in ASSIGNMENTS:
            database[key] = value_of(key, version)
            database.sync()
            ack(f"{key}={version}")


def check(root: pathlib.Path, acked: list[object], pending: object | None) -> None:
    """Reopen the database (flag "c", as an application restarting would) and raise
    AssertionError unless its contents are what the acknowledged assignments leave, with
    or without the pending one. Errors dbm.dumb raises reading its index propagate."""
    with dbm.dumb.open(str(root / BASE_NAME), "c") as database:
        keys = list(database.keys())
        assert len(keys) <= KEYS_MAX, f"the index claims {len(keys)} keys"
        contents = {_text(key): database[key] for key in keys}
    committed = _contents_after([str(value) for value in acked])
    allowed = [committed]
    if pending is not None:
        allowed.append(_contents_after([*map(str, acked), str(pending)]))
    assert contents in allowed, (
        f"the database holds {contents}; acknowledged {acked} allow {allowed[0]} (pending {pending!r})"
    )


def _text(key: str | bytes) -> str:
    """A key as dbm.dumb returns it (bytes) as text; dbm.dumb stores keys in Latin-1."""
    return key.decode("latin-1") if isinstance(key, bytes) else key


def _contents_after(assignments: list[str]) -> dict[str, bytes]:
    """The key -> value mapping after "KEY=VERSION" assignments."""
    contents: dict[str, bytes] = {}
    for assignment in assignments:
        key, _, version = assignment.partition("=")
        contents[key] = value_of(key, int(version))
    return contents
