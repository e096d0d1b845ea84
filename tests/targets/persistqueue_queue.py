"""Crash-test target: persist-queue 1.1.0, the file-based `persistqueue.Queue`.

Promise checked (the Queue docstring, persistqueue/queue.py:56-60: "Adding data to the
queue with put() will always persist immediately"; removal is persisted when
task_done() is called): after a crash the queue opens and yields, in order, exactly the
items the acknowledged puts and get+task_done calls leave, plus possibly the effect of
the operation in flight.

The lines the promise depends on (persistqueue/queue.py, installed version 1.1.0):
- :156 `self.serializer.dump(item, self.headf)` and :157 `self.headf.flush()` append the
  item to the head chunk file with no fsync (fsync happens only when a chunk fills, :163);
- :262-266 `_saveinfo`: :258 `tempfile.mkstemp(dir=self.tempdir)`,
  :264 `with os.fdopen(tmpfd, "wb")` / :265 dump the queue's metadata, close without
  fsync, then :22 `os.replace(src, dst)` over `info` (via :266 `atomic_rename`) with no
  fsync of the file before nor of the directory after. A crash can leave `info` renamed
  but empty (UnpicklingError/EOFError on open, persist-queue#180) or pointing past the
  data its chunk file lost (persist-queue#56, partly addressed by PR #65's fsync at
  chunk rollover).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from persistqueue import Queue

DIRECTORY_NAME = "queue"
PUT_ITEMS = ("alpha", "bravo", "charlie", "delta")
# Three items per chunk file, so the four puts cross a chunk boundary (the one fsync the
# library does, queue.py:163) and the get frees the first chunk's first item.
CHUNK_SIZE_ITEMS = 3
# Bounds how many items the check reads from a queue whose metadata may be corrupted.
ITEMS_MAX = 100


def _open(root: pathlib.Path) -> Queue:
    """The queue under `root`, with its temporary files in its own directory (the place
    persist-queue falls back to when /tmp is on another file system, queue.py:76-83)."""
    path = str(root / DIRECTORY_NAME)
    return Queue(path, chunksize=CHUNK_SIZE_ITEMS, tempdir=path)


def _close(queue: Queue) -> None:
    """Close the queue's chunk files now (what Queue.__del__, queue.py:286-290, would do
    at garbage collection, possibly after the simulated disk is gone)."""
    for handle in (queue.headf, queue.tailf):
        if not handle.closed:
            handle.close()


def workload(root: pathlib.Path, ack: Callable[[object], None]) -> None:
    """Put four items, acknowledging "put ITEM" after each put() returns, then get one
    and call task_done(), acknowledging "get ITEM"."""
    queue = _open(root)
    try:
        for item in PUT_ITEMS:
            queue.put(item)
            ack(f"put {item}")
        item = queue.get()
        queue.task_done()
        ack(f"get {item}")
    finally:
        _close(queue)


def check(root: pathlib.Path, acked: list[object], pending: object | None) -> None:
    """Reopen the queue and drain it without acknowledging (no task_done, nothing is
    persisted); raise AssertionError unless the items, in order, are what the
    acknowledged operations leave (with or without the pending one). Errors the library
    raises opening or reading the queue propagate."""
    queue = _open(root)
    try:
        size = queue.qsize()
        assert 0 <= size <= ITEMS_MAX, f"queue metadata claims {size} items"
        items = [queue.get_nowait() for _ in range(size)]
    finally:
        _close(queue)
    committed = _items_after([str(value) for value in acked])
    allowed = [committed]
    if pending is not None:
        allowed.append(_items_after([*map(str, acked), str(pending)]))
    assert items in allowed, f"queue yields {items}; acknowledged {acked} allow {allowed[0]} (pending {pending!r})"


def _items_after(operations: list[str]) -> list[str]:
    """The queue's items, in order, after "put ITEM" / "get ITEM" operations."""
    items: list[str] = []
    for operation in operations:
        verb, _, item = operation.partition(" ")
        if verb == "put":
            items.append(item)
        else:
            assert verb == "get" and items and items[0] == item, f"operation {operation!r} on {items}"
            items.pop(0)
    return items
