"""Ordered range reads of `kv` beside lmdb cursors and sqlite3 range queries, and what
the ordered index adds to a `set`; every figure measured in one run.

    python benchmarks/bench_ranges.py [--keys N] [--ranges N] [--rounds N]

1. ranges: a store of `--keys` 16-byte keys and 100-byte values (loaded once per
   system), then `--ranges` seeded ranges of k = 10, 100 and 1,000 keys each, read
   whole (keys and values): kv `scan(start, limit=k)`; lmdb `cursor.set_range(start)`
   then k steps; sqlite3 `SELECT key, value FROM kv WHERE key >= ? ORDER BY key LIMIT ?`
   (the primary key is the index: a WITHOUT ROWID table). Keys/s; the ratio kv/peer.
   Each system reads its whole store once first, so all of them read from memory.
2. the index's cost on writes: `--keys` fresh-key `set`s in `none` durability (no sync
   per write, so the store's own work is what is timed), in a store whose ordered
   index does not exist yet and in one where a scan built it first. The ratio is what
   the index makes a `set` of a new key cost (an overwrite costs it nothing).

Each round runs every system once, one after another; a figure is the median round's.
Wall time (`time.perf_counter`); the machine's load moves the systems together more
than it moves a ratio. Targets are not set by the issue: the figures are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import lmdb

import kv
from io_backends import make_io

SEED = 7
VALUE = b"v" * 100
RANGE_SIZES = (10, 100, 1000)
LMDB_MAP_SIZE_BYTES = 1 << 30


def _keys(count: int) -> list[bytes]:
    rng = random.Random(SEED)
    return sorted({rng.randbytes(16) for _ in range(count)})


def _starts(keys: list[bytes], ranges: int) -> list[bytes]:
    rng = random.Random(SEED + 1)
    return [keys[rng.randrange(len(keys))] for _ in range(ranges)]


RangeReader = Callable[[bytes, int], int]  # (start, k) -> keys read


@contextlib.contextmanager
def kv_reader(directory: str, keys: list[bytes]) -> Iterator[RangeReader]:
    with kv.open(directory, io=make_io("blocking"), durability="none") as store:
        store.set_many([(key, VALUE) for key in keys[: len(keys) // 2]])
        store.set_many([(key, VALUE) for key in keys[len(keys) // 2 :]])
        list(store.scan(limit=1))  # builds the ordered index, once

        def read(start: bytes, count: int) -> int:
            return sum(1 for _ in store.scan(start, limit=count))

        yield read


@contextlib.contextmanager
def lmdb_reader(directory: str, keys: list[bytes]) -> Iterator[RangeReader]:
    environment = lmdb.open(directory, map_size=LMDB_MAP_SIZE_BYTES)
    try:
        with environment.begin(write=True) as transaction:
            transaction.cursor().putmulti([(key, VALUE) for key in keys])

        def read(start: bytes, count: int) -> int:
            found = 0
            with environment.begin() as transaction:
                cursor = transaction.cursor()
                if not cursor.set_range(start):
                    return 0
                for _key, _value in cursor:
                    found += 1
                    if found == count:
                        break
            return found

        yield read
    finally:
        environment.close()


@contextlib.contextmanager
def sqlite_reader(directory: str, keys: list[bytes]) -> Iterator[RangeReader]:
    connection = sqlite3.connect(os.path.join(directory, "kv.sqlite"))
    try:
        connection.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        connection.executemany("INSERT INTO kv VALUES (?, ?)", [(key, VALUE) for key in keys])
        connection.commit()
        query = "SELECT key, value FROM kv WHERE key >= ? ORDER BY key LIMIT ?"

        def read(start: bytes, count: int) -> int:
            return len(connection.execute(query, (start, count)).fetchall())

        yield read
    finally:
        connection.close()


READERS = {"kv": kv_reader, "lmdb": lmdb_reader, "sqlite3": sqlite_reader}


def measure_ranges(keys: list[bytes], starts: list[bytes], rounds: int) -> dict[tuple[str, int], float]:
    """Keys/s per (system, range size), the median round."""
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for system, reader in READERS.items():
            with tempfile.TemporaryDirectory() as directory, reader(directory, keys) as read:
                read(keys[0], len(keys))  # warm: every system reads from memory (page cache, kv's value cache)
                for size in RANGE_SIZES:
                    began = time.perf_counter()
                    found = sum(read(start, size) for start in starts)
                    samples.setdefault((system, size), []).append(found / (time.perf_counter() - began))
    return {name: statistics.median(values) for name, values in samples.items()}


def measure_set_cost(keys: list[bytes], rounds: int) -> tuple[float, float]:
    """Fresh-key sets/s without and with the ordered index (median rounds)."""
    without: list[float] = []
    with_index: list[float] = []
    for _ in range(rounds):
        for indexed, sink in ((False, without), (True, with_index)):
            with (
                tempfile.TemporaryDirectory() as directory,
                kv.open(directory, io=make_io("blocking"), durability="none") as store,
            ):
                if indexed:
                    list(store.scan(limit=1))
                began = time.perf_counter()
                for key in keys:
                    store.set(key, VALUE)
                sink.append(len(keys) / (time.perf_counter() - began))
    return statistics.median(without), statistics.median(with_index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--ranges", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args(argv)
    keys = _keys(arguments.keys)
    starts = _starts(keys, arguments.ranges)
    print(f"bench_ranges --keys {len(keys)} --ranges {arguments.ranges} --rounds {arguments.rounds}")
    print(f"  python {sys.version.split()[0]}, load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rates = measure_ranges(keys, starts, arguments.rounds)
    header = f"{'range of k keys':<16}{'kv keys/s':>14}{'lmdb keys/s':>14}{'sqlite3 keys/s':>16}"
    print(f"{header}{'kv/lmdb':>10}{'kv/sqlite3':>12}")
    for size in RANGE_SIZES:
        ours, lmdb_rate, sqlite_rate = (rates[(system, size)] for system in READERS)
        print(
            f"{size:<16}{ours:>14,.0f}{lmdb_rate:>14,.0f}{sqlite_rate:>16,.0f}"
            f"{ours / lmdb_rate:>9.2f}x{ours / sqlite_rate:>11.2f}x"
        )
    without, with_index = measure_set_cost(keys, arguments.rounds)
    print(
        f"set of a new key (durability none): {without:,.0f}/s without the index, {with_index:,.0f}/s with it: "
        f"{with_index / without:.2f}x ({1e6 / with_index - 1e6 / without:+.2f} us per set)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
