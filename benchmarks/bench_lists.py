"""Lists used as queues, and sets with a TTL, beside their peers; every figure measured
in one run.

    python benchmarks/bench_lists.py [--operations N] [--rounds N]

1. queue, durable: `--operations` pushes of 100-byte elements, then as many pops from
   the other end, each operation durable on return: kv `rpush`/`lpop` (every list
   operation is synced); sqlite3 (WAL, `synchronous=FULL`) an `INSERT` and a
   `DELETE ... RETURNING` of the lowest id, one transaction each; persist-queue's
   `SQLiteQueue(auto_commit=True)`, `put` and `get`. Operations/s; the ratio kv/peer.
2. what a list operation costs over a string one, the disk taken away: kv on the
   simulated disk (every sync free), `rpush` then `lpop` against `set` then `get` of
   the same sizes (lists sync in every mode, so no real-disk mode compares them
   without an fsync in the way).
3. TTL: `--operations` sets of 100-byte values with `ttl=` against plain sets, kv in
   `none` durability on a real directory (no sync per write: the store's own work is
   timed). The ratio is what an expiry costs a set.

Each round runs every system once, one after another; a figure is the median round's.
Wall time (`time.perf_counter`); the machine's load moves the systems together more
than it moves a ratio. The issue sets no targets for these: the figures are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import persistqueue

import kv
from io_backends.sim import SimIo

VALUE = b"v" * 100
Run = Callable[[str, int], float]  # (a fresh directory, operations) -> seconds


@contextlib.contextmanager
def _directory() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-lists-", dir=os.environ.get("BENCH_DIR")) as directory:
        yield directory


def kv_queue(directory: str, operations: int) -> float:
    with kv.open(os.path.join(directory, "kv")) as store:
        started = time.perf_counter()
        for _ in range(operations):
            store.rpush(b"q", VALUE)
        for _ in range(operations):
            assert store.lpop(b"q") == VALUE
        return time.perf_counter() - started


def sqlite_queue(directory: str, operations: int) -> float:
    connection = sqlite3.connect(os.path.join(directory, "queue.sqlite"), isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE queue (id INTEGER PRIMARY KEY AUTOINCREMENT, value BLOB NOT NULL)")
        started = time.perf_counter()
        for _ in range(operations):
            connection.execute("INSERT INTO queue (value) VALUES (?)", (VALUE,))
        for _ in range(operations):
            row = connection.execute(
                "DELETE FROM queue WHERE id = (SELECT MIN(id) FROM queue) RETURNING value"
            ).fetchone()
            assert row[0] == VALUE
        return time.perf_counter() - started
    finally:
        connection.close()


def persist_queue(directory: str, operations: int) -> float:
    queue = persistqueue.SQLiteQueue(os.path.join(directory, "persist"), auto_commit=True)
    started = time.perf_counter()
    for _ in range(operations):
        queue.put(VALUE)
    for _ in range(operations):
        assert queue.get() == VALUE
    return time.perf_counter() - started


def sim_lists(_directory: str, operations: int) -> float:
    with kv.open("/db", io=SimIo(seed=1)) as store:
        started = time.perf_counter()
        for _ in range(operations):
            store.rpush(b"q", VALUE)
        for _ in range(operations):
            store.lpop(b"q")
        return time.perf_counter() - started


def sim_strings(_directory: str, operations: int) -> float:
    keys = [b"k%d" % index for index in range(operations)]
    with kv.open("/db", io=SimIo(seed=1)) as store:
        started = time.perf_counter()
        for key in keys:
            store.set(key, VALUE)
        for key in keys:
            store.get(key)
        return time.perf_counter() - started


def _sets(ttl: float | None) -> Run:
    def run(directory: str, operations: int) -> float:
        keys = [b"k%d" % index for index in range(operations)]
        with kv.open(os.path.join(directory, "kv"), durability="none") as store:
            started = time.perf_counter()
            for key in keys:
                store.set(key, VALUE, ttl=ttl)
            return time.perf_counter() - started

    return run


# Each group: its runs (ours first) and how many operations a run does per `--operations`
# (a queue run pushes and pops each element: two).
GROUPS: dict[str, tuple[dict[str, Run], int]] = {
    "queue, durable (push then pop)": ({"kv": kv_queue, "sqlite3": sqlite_queue, "persist-queue": persist_queue}, 2),
    "list vs string ops, simulated disk": ({"kv rpush+lpop": sim_lists, "kv set+get": sim_strings}, 2),
    "sets, durability none": ({"kv set ttl=100": _sets(100.0), "kv set": _sets(None)}, 1),
}


def measure(runs: dict[str, Run], operations: int, per_operation: int, rounds: int) -> dict[str, float]:
    """Operations per second of each system, the median round's."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            with _directory() as directory:
                seconds[name].append(run(directory, operations))
    return {name: per_operation * operations / statistics.median(times) for name, times in seconds.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args(argv)
    for group, (runs, per_operation) in GROUPS.items():
        rates = measure(runs, arguments.operations, per_operation, arguments.rounds)
        names = list(rates)
        ours = rates[names[0]]
        print(group)
        for name in names:
            ratio = "" if name == names[0] else f"   {names[0]} / {name}: {ours / rates[name]:.2f}x"
            print(f"  {name:<20}{rates[name]:>14,.0f} ops/s{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
