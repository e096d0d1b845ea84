"""Crash-test target: TinyDB 4.9.0 with its default `JSONStorage`.

Promise checked: TinyDB's `insert`/`remove` return after `JSONStorage.write` ran, and
that method says "Ensure the file has been written" before its `os.fsync`
(tinydb/storages.py:155-157), so an operation that returned is taken as durable: after a
crash, `db.json` opens with TinyDB and holds exactly the documents left by the
acknowledged operations, plus possibly the effect of the one in flight. (TinyDB's docs
also say it offers no ACID guarantees, msiemens/tinydb#144; this target shows what that
means on a power failure.)

The lines the promise depends on (tinydb/storages.py, installed version 4.9.0):
- :32 `with open(path, 'a')` (touch) creates db.json; the directory is never fsynced, so
  the file's entry is not durable;
- :144 `self._handle.seek(0)`, :151 `self._handle.write(serialized)` rewrites the whole
  file in place (no temporary file; issued by :156 `self._handle.flush()`), so a torn
  write mixes old and new JSON;
- :157 `os.fsync(self._handle.fileno())` comes BEFORE :161 `self._handle.truncate()`, and
  nothing fsyncs the truncate: a write that shrinks the file (a `remove`) is acknowledged
  while the old tail may survive, and the file then fails to parse ("Extra data", the
  symptom of msiemens/tinydb#1 and #301; temp-file-and-rename was proposed in #467).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from tinydb import Query, TinyDB

FILE_NAME = "db.json"
INSERTED_NAMES = ("alpha", "bravo", "charlie")
REMOVED_NAME = "alpha"
# Bounds the documents a corrupted file may claim before the check gives up listing them.
DOCUMENTS_MAX = 100


def workload(root: pathlib.Path, ack: Callable[[object], None]) -> None:
    """Insert three documents and remove the first, acknowledging each operation as
    "insert NAME" / "remove NAME" right after TinyDB returns."""
    with TinyDB(str(root / FILE_NAME)) as database:
        for name in INSERTED_NAMES:
            database.insert({"name": name, "note": f"document {name}"})
            ack(f"insert {name}")
        database.remove(Query().name == REMOVED_NAME)
        ack(f"remove {REMOVED_NAME}")


def check(root: pathlib.Path, acked: list[object], pending: object | None) -> None:
    """Reopen db.json with TinyDB; raise AssertionError unless its documents are those the
    acknowledged operations leave (with or without the pending one). A JSONDecodeError
    from TinyDB itself propagates: the database does not open."""
    with TinyDB(str(root / FILE_NAME)) as database:
        documents = database.all()
    assert len(documents) <= DOCUMENTS_MAX, f"{len(documents)} documents in a database of at most 3"
    names = sorted(str(document.get("name")) for document in documents)
    committed = _names_after([str(value) for value in acked])
    allowed = [committed]
    if pending is not None:
        allowed.append(_names_after([*map(str, acked), str(pending)]))
    assert names in allowed, f"db.json holds {names}; acknowledged {acked} allow {allowed[0]} (pending {pending!r})"


def _names_after(operations: list[str]) -> list[str]:
    """The sorted document names left by "insert NAME" / "remove NAME" operations."""
    names: list[str] = []
    for operation in operations:
        verb, _, name = operation.partition(" ")
        if verb == "insert":
            names.append(name)
        else:
            assert verb == "remove", f"unknown operation {operation!r}"
            names = [kept for kept in names if kept != name]
    return sorted(names)
