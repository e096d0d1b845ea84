"""Side-by-side throughput of `kv` and its peers, every system measured in one run.

    python benchmarks/bench_store.py [--quick] [--dir DIR] [--rounds N] [--profile]

Workloads (each in a fresh directory, each system in its own subdirectory):

1. bulk sets: 16-byte keys, 100-byte values. kv via one `set_many` (durability
   `always`) and via `set` with durability `none` then `flush()`, on the blocking and
   the io_uring backends; sqlite3 (WAL, synchronous=FULL, one transaction with
   `executemany`); lmdb (one write transaction with `putmulti`, then `sync`).
2. durable sets, one sync per write: kv (`always`, one `set` each); sqlite3 (one
   `INSERT OR REPLACE` and `commit` each); lmdb (one transaction per put, sync on);
   and a raw loop of `os.write` + `os.fdatasync` on one file, the floor of the disk.
3. gets: every key of a loaded store once, in a seeded random order (kv loads with
   `set_many`, so its value cache decides whether a get touches the disk).
4. recovery: `kv.open` replaying a log built with `set_many` batches; records/s.

Each system runs `--rounds` times (default 3), each round in a fresh directory, the
rounds interleaved across the systems of a workload; the table shows the median round
and the range. `--quick` divides every count by 10. The working directory is a fresh
temporary directory (under /tmp, or under `--dir`), removed at the end. `--profile`
also runs the kv bulk `set_many`, gets and recovery of each backend under cProfile
(separately from the timed runs) and prints the top functions by own time. Targets are
reported, never asserted. The uring backend is optional: when `make_io("uring")`
raises, its rows say why they were skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io as text_io
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generic, TypeVar

import lmdb
from rich.console import Console
from rich.table import Table

import kv
from io_backends import make_io
from kv.io import Io

SEED = 20_240_601
KEY_SIZE_BYTES = 16
VALUE_SIZE_BYTES = 100
RECOVERY_VALUE_SIZE_BYTES = 32
LMDB_MAP_SIZE_BYTES = 1 << 30
QUICK_SCALE = 10
VERIFY_SAMPLE_SIZE = 100
PROFILE_LINES = 15
ROUNDS_DEFAULT = 3

BACKENDS = ("blocking", "uring")

BULK = "bulk sets"
DURABLE = "durable sets"
GETS = "gets"
RECOVERY = "recovery"

SQLITE_CREATE = "CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID"
SQLITE_UPSERT = "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)"
SQLITE_SELECT = "SELECT value FROM kv WHERE key = ?"

Item = tuple[bytes, bytes]
Action = Callable[[], object]
Timer = Callable[[Action], float]
Handle = TypeVar("Handle")  # an opened store, as `measure` hands it to its callables


@dataclass(frozen=True)
class Counts:
    bulk_sets: int
    durable_sets: int
    gets: int
    recovery_records: int
    recovery_batch: int


def make_counts(quick: bool) -> Counts:
    scale = QUICK_SCALE if quick else 1
    return Counts(
        bulk_sets=100_000 // scale,
        durable_sets=2_000 // scale,
        gets=100_000 // scale,
        recovery_records=1_000_000 // scale,
        recovery_batch=100_000 // scale,
    )


@dataclass
class Measurement:
    """One system's timed rounds in one workload; the median round is its result."""

    workload: str
    system: str
    operations: int
    unit: str
    backend: str | None = None  # the kv backend, when this row is kv's reference row
    samples: list[float] = field(default_factory=list)  # seconds, one per round
    outcome: str = ""  # "skipped" or "failed" when it did not run
    reason: str = ""

    @property
    def seconds(self) -> float | None:
        if self.outcome or not self.samples:
            return None
        return statistics.median(self.samples)

    @property
    def rate(self) -> float | None:
        return self.rate_of(self.seconds)

    def rate_of(self, seconds: float | None) -> float | None:
        if seconds is None or seconds <= 0:
            return None
        return self.operations / seconds

    @property
    def rate_range(self) -> tuple[float | None, float | None]:
        """(slowest, fastest) rate over the rounds."""
        if self.seconds is None:
            return None, None
        return self.rate_of(max(self.samples)), self.rate_of(min(self.samples))


@dataclass
class Results:
    measurements: list[Measurement] = field(default_factory=list)

    def add(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)

    def find(self, workload: str, system: str) -> Measurement | None:
        for measurement in self.measurements:
            if measurement.workload == workload and measurement.system == system:
                return measurement
        return None

    def reference(self, workload: str, backend: str) -> Measurement | None:
        for measurement in self.measurements:
            if measurement.workload == workload and measurement.backend == backend:
                return measurement
        return None


class BackendSkipped(Exception):
    """`make_io` raised for an optional backend: its rows report why."""


# -- plumbing ------------------------------------------------------------------------------


def timed(action: Action) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


class ProfilingTimer:
    """A `Timer` that also records a cProfile of every action it times."""

    def __init__(self) -> None:
        self.profile = cProfile.Profile()

    def __call__(self, action: Action) -> float:
        gc.collect()
        start = time.perf_counter()
        self.profile.enable()
        action()
        self.profile.disable()
        return time.perf_counter() - start


def make_backend(name: str) -> Io:
    """The blocking backend must work; any other one that cannot be built is skipped."""
    try:
        return make_io(name)
    except Exception as error:
        if name == "blocking":
            raise
        raise BackendSkipped(f"{type(error).__name__}: {error}") from error


class Workspace:
    """Fresh directories under one root: one per workload, one per system and round inside it."""

    def __init__(self, root: str) -> None:
        self.root = root

    def directory(self, workload: str, system: str) -> str:
        path = os.path.join(self.root, slug(workload), slug(system))
        os.makedirs(path)
        return path


def slug(name: str) -> str:
    return "".join(character if character.isalnum() else "-" for character in name)


def make_items(generator: random.Random, count: int, value_size: int) -> list[Item]:
    """`count` pairs of unique random 16-byte keys and random values."""
    keys_blob = generator.randbytes(count * KEY_SIZE_BYTES)
    values_blob = generator.randbytes(count * value_size)
    items = [
        (
            keys_blob[index * KEY_SIZE_BYTES : (index + 1) * KEY_SIZE_BYTES],
            values_blob[index * value_size : (index + 1) * value_size],
        )
        for index in range(count)
    ]
    assert len({key for key, _value in items}) == count, "random keys collided; change SEED"
    return items


def shuffled_keys(items: Sequence[Item], generator: random.Random) -> list[bytes]:
    keys = [key for key, _value in items]
    generator.shuffle(keys)
    return keys


def verify_sample(items: Sequence[Item], lookup: Callable[[bytes], bytes | None], system: str) -> None:
    """Check a sample of values read back (outside the timing): a fast wrong answer is no result."""
    for key, value in items[:VERIFY_SAMPLE_SIZE]:
        found = lookup(key)
        if found is None or bytes(found) != value:
            raise AssertionError(f"{system}: wrong value for key {key.hex()}")


@dataclass(frozen=True)
class SystemRun:
    workload: str
    system: str
    operations: int
    unit: str
    run: Callable[[str], float]  # directory -> seconds
    backend: str | None = None  # set on kv's reference rows (the ratio columns divide by them)
    optional: bool = False  # a failure becomes a row instead of an exception


def run_round(workspace: Workspace, spec: SystemRun, measurement: Measurement, round_number: int) -> None:
    """One timed round in a fresh directory; a skipped or failed system is not retried."""
    if measurement.outcome:
        return
    directory = workspace.directory(spec.workload, f"{spec.system} round {round_number}")
    try:
        measurement.samples.append(spec.run(directory))
    except BackendSkipped as error:
        measurement.outcome, measurement.reason = "skipped", str(error)
    except Exception as error:
        if not spec.optional:
            raise
        measurement.outcome, measurement.reason = "failed", f"{type(error).__name__}: {error}"


def run_workload(
    workspace: Workspace, results: Results, specs: list[SystemRun], rounds: int, progress: Console
) -> None:
    """Every system once per round, rounds interleaved so a slow spell of the machine hits them all alike."""
    measurements = [Measurement(spec.workload, spec.system, spec.operations, spec.unit, spec.backend) for spec in specs]
    for measurement in measurements:
        results.add(measurement)
    for round_number in range(1, rounds + 1):
        progress.print(f"  {specs[0].workload}: round {round_number} of {rounds}")
        for spec, measurement in zip(specs, measurements, strict=True):
            run_round(workspace, spec, measurement, round_number)


# -- measuring -----------------------------------------------------------------------------


def measure(
    opened: contextlib.AbstractContextManager[Handle],
    action: Callable[[Handle], object],
    verify: Callable[[Handle], None],
    timer: Timer,
    load: Callable[[Handle], object] | None = None,
) -> float:
    """Seconds `timer` gives `action` on an opened store, which `load` fills before and `verify` checks after.

    Only `action` is timed; the store is closed in the end, whatever happens.
    """
    with opened as handle:
        if load is not None:
            load(handle)
        seconds = timer(partial(action, handle))
        verify(handle)
        return seconds


# -- peers ---------------------------------------------------------------------------------


def open_sqlite(directory: str) -> contextlib.closing[sqlite3.Connection]:
    connection = sqlite3.connect(os.path.join(directory, "bench.sqlite3"))
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(SQLITE_CREATE)
    connection.commit()
    return contextlib.closing(connection)


def sqlite_verify(connection: sqlite3.Connection, items: list[Item]) -> None:
    def lookup(key: bytes) -> bytes | None:
        row = connection.execute(SQLITE_SELECT, (key,)).fetchone()
        return None if row is None else bytes(row[0])

    verify_sample(items, lookup, "sqlite3")


def sqlite_insert_all(connection: sqlite3.Connection, items: list[Item]) -> None:
    """One transaction: `executemany` then `commit`."""
    connection.executemany(SQLITE_UPSERT, items)
    connection.commit()


def sqlite_insert_each(connection: sqlite3.Connection, items: list[Item]) -> None:
    """One `INSERT OR REPLACE` and `commit` per item."""
    execute = connection.execute
    commit = connection.commit
    for key, value in items:
        execute(SQLITE_UPSERT, (key, value))
        commit()


def sqlite_select_each(connection: sqlite3.Connection, order: list[bytes]) -> None:
    execute = connection.cursor().execute
    for key in order:
        execute(SQLITE_SELECT, (key,)).fetchone()


def open_lmdb(directory: str) -> contextlib.closing[lmdb.Environment]:
    return contextlib.closing(lmdb.open(directory, map_size=LMDB_MAP_SIZE_BYTES))


def lmdb_verify(environment: lmdb.Environment, items: list[Item]) -> None:
    with environment.begin() as transaction:
        verify_sample(items, transaction.get, "lmdb")


def lmdb_put_all(environment: lmdb.Environment, items: list[Item]) -> None:
    """One write transaction with `putmulti`."""
    with environment.begin(write=True) as transaction:
        transaction.cursor().putmulti(items)


def lmdb_put_all_then_sync(environment: lmdb.Environment, items: list[Item]) -> None:
    lmdb_put_all(environment, items)
    environment.sync(True)


def lmdb_put_each(environment: lmdb.Environment, items: list[Item]) -> None:
    """One write transaction (synced on commit) per item."""
    begin = environment.begin
    for key, value in items:
        with begin(write=True) as transaction:
            transaction.put(key, value)


def lmdb_get_each(environment: lmdb.Environment, order: list[bytes]) -> None:
    with environment.begin() as transaction:
        get = transaction.get
        for key in order:
            get(key)


@dataclass(frozen=True)
class Peer(Generic[Handle]):
    """How the workloads drive one peer system, on the store `opener` opens (and closes on exit)."""

    name: str
    opener: Callable[[str], contextlib.AbstractContextManager[Handle]]  # directory -> store
    verify: Callable[[Handle, list[Item]], None]  # a sample of the items read back (untimed)
    load: Callable[[Handle, list[Item]], None]  # the untimed fill before the gets
    bulk_sets: Callable[[Handle, list[Item]], None]  # all items in one durable transaction
    durable_sets: Callable[[Handle, list[Item]], None]  # one durable transaction per item
    gets: Callable[[Handle, list[bytes]], None]  # one get per key, in this order


SQLITE = Peer(
    "sqlite3",
    open_sqlite,
    sqlite_verify,
    load=sqlite_insert_all,
    bulk_sets=sqlite_insert_all,
    durable_sets=sqlite_insert_each,
    gets=sqlite_select_each,
)
LMDB: Peer[lmdb.Environment] = Peer(
    "lmdb",
    open_lmdb,
    lmdb_verify,
    load=lmdb_put_all,
    bulk_sets=lmdb_put_all_then_sync,
    durable_sets=lmdb_put_each,
    gets=lmdb_get_each,
)
PEERS: tuple[Peer[Any], ...] = (SQLITE, LMDB)


def peer_sets(
    peer: Peer[Handle],
    write: Callable[[Handle, list[Item]], None],
    directory: str,
    items: list[Item],
    timer: Timer = timed,
) -> float:
    """Time `write` (`peer.bulk_sets` or `peer.durable_sets`) of `items` into a fresh store of `peer`."""
    return measure(
        peer.opener(directory), lambda store: write(store, items), lambda store: peer.verify(store, items), timer
    )


def peer_gets(peer: Peer[Handle], directory: str, items: list[Item], order: list[bytes], timer: Timer = timed) -> float:
    return measure(
        peer.opener(directory),
        lambda store: peer.gets(store, order),
        lambda store: peer.verify(store, items),
        timer,
        load=lambda store: peer.load(store, items),
    )


def raw_fdatasync_loop(directory: str, items: list[Item], timer: Timer = timed) -> float:
    records = [key + value for key, value in items]
    fd = os.open(os.path.join(directory, "raw.log"), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:

        def write() -> None:
            for record in records:
                os.write(fd, record)
                os.fdatasync(fd)

        return timer(write)
    finally:
        os.close(fd)


# -- kv ------------------------------------------------------------------------------------


@contextlib.contextmanager
def backend_io(backend: str) -> Iterator[Io]:
    """A fresh backend, shut down afterwards when it has a `shutdown` (the uring ring)."""
    io = make_backend(backend)
    try:
        yield io
    finally:
        shutdown = getattr(io, "shutdown", None)
        if callable(shutdown):
            shutdown()


@contextlib.contextmanager
def opened_store(directory: str, backend: str, durability: kv.Durability) -> Iterator[kv.Store]:
    with backend_io(backend) as io, kv.open(directory, io=io, durability=durability) as store:
        yield store


def kv_verify(store: kv.Store, items: list[Item], backend: str) -> None:
    verify_sample(items, store.get, f"kv-{backend}")


def kv_set_many(store: kv.Store, items: list[Item]) -> None:
    store.set_many(items)


def kv_set_each(store: kv.Store, items: list[Item]) -> None:
    set_value = store.set
    for key, value in items:
        set_value(key, value)


def kv_set_each_then_flush(store: kv.Store, items: list[Item]) -> None:
    kv_set_each(store, items)
    store.flush()


def kv_get_each(store: kv.Store, order: list[bytes]) -> None:
    get = store.get
    for key in order:
        get(key)


def kv_bulk_set_many(directory: str, backend: str, items: list[Item], timer: Timer = timed) -> float:
    opened, verify = opened_store(directory, backend, "always"), partial(kv_verify, items=items, backend=backend)
    return measure(opened, partial(kv_set_many, items=items), verify, timer)


def kv_bulk_set_then_flush(directory: str, backend: str, items: list[Item], timer: Timer = timed) -> float:
    opened, verify = opened_store(directory, backend, "none"), partial(kv_verify, items=items, backend=backend)
    return measure(opened, partial(kv_set_each_then_flush, items=items), verify, timer)


def kv_durable_sets(directory: str, backend: str, items: list[Item], timer: Timer = timed) -> float:
    opened, verify = opened_store(directory, backend, "always"), partial(kv_verify, items=items, backend=backend)
    return measure(opened, partial(kv_set_each, items=items), verify, timer)


def kv_gets(directory: str, backend: str, items: list[Item], order: list[bytes], timer: Timer = timed) -> float:
    opened, verify = opened_store(directory, backend, "always"), partial(kv_verify, items=items, backend=backend)
    return measure(opened, partial(kv_get_each, order=order), verify, timer, load=partial(kv_set_many, items=items))


def build_recovery_log(directory: str, counts: Counts, generator: random.Random) -> None:
    """Write `counts.recovery_records` records with `set_many` batches on the blocking backend."""
    with opened_store(directory, "blocking", "always") as store:
        for _ in range(counts.recovery_records // counts.recovery_batch):
            store.set_many(make_items(generator, counts.recovery_batch, RECOVERY_VALUE_SIZE_BYTES))


def kv_recovery_open(directory: str, backend: str, expected_records: int, timer: Timer = timed) -> float:
    """Time `kv.open` alone (the replay); the backend is built before and the store closed after."""
    with backend_io(backend) as io:
        stores: list[kv.Store] = []
        seconds = timer(lambda: stores.append(kv.open(directory, io=io, durability="always")))
        with stores[0] as store:
            replayed = store.recovery.records_applied
            if replayed != expected_records or not store.recovery.clean:
                summary = store.recovery.summary()
                raise AssertionError(f"kv-{backend}: replayed {replayed} of {expected_records}: {summary}")
        return seconds


# -- workloads -----------------------------------------------------------------------------


def kv_runs(
    workload: str,
    suffix: str,
    operations: int,
    unit: str,
    run: Callable[[str], Callable[[str], float]],  # backend -> the row's run
    reference: bool = True,
) -> list[SystemRun]:
    """One row per backend, named `kv-<backend><suffix>`; only the blocking one is required to work."""
    return [
        SystemRun(
            workload,
            f"kv-{backend}{suffix}",
            operations,
            unit,
            run(backend),
            backend=backend if reference else None,
            optional=backend != "blocking",
        )
        for backend in BACKENDS
    ]


def peer_runs(
    workload: str, operations: int, unit: str, run: Callable[[Peer[Any]], Callable[[str], float]]
) -> list[SystemRun]:
    """One row per peer system."""
    return [SystemRun(workload, peer.name, operations, unit, run(peer)) for peer in PEERS]


def bulk_workload(counts: Counts) -> list[SystemRun]:
    items = make_items(random.Random(SEED), counts.bulk_sets, VALUE_SIZE_BYTES)
    return [
        *kv_runs(
            BULK,
            " set_many",
            len(items),
            "sets/s",
            lambda backend: partial(kv_bulk_set_many, backend=backend, items=items),
        ),
        *kv_runs(
            BULK,
            " set+flush (none)",
            len(items),
            "sets/s",
            lambda backend: partial(kv_bulk_set_then_flush, backend=backend, items=items),
            reference=False,
        ),
        *peer_runs(BULK, len(items), "sets/s", lambda peer: partial(peer_sets, peer, peer.bulk_sets, items=items)),
    ]


def durable_workload(counts: Counts) -> list[SystemRun]:
    items = make_items(random.Random(SEED + 1), counts.durable_sets, VALUE_SIZE_BYTES)
    return [
        *kv_runs(
            DURABLE, "", len(items), "sets/s", lambda backend: partial(kv_durable_sets, backend=backend, items=items)
        ),
        *peer_runs(
            DURABLE, len(items), "sets/s", lambda peer: partial(peer_sets, peer, peer.durable_sets, items=items)
        ),
        SystemRun(DURABLE, "raw write+fdatasync", len(items), "sets/s", partial(raw_fdatasync_loop, items=items)),
    ]


def gets_workload(counts: Counts) -> list[SystemRun]:
    generator = random.Random(SEED + 2)
    items = make_items(generator, counts.gets, VALUE_SIZE_BYTES)
    order = shuffled_keys(items, generator)
    return [
        *kv_runs(
            GETS, "", len(order), "gets/s", lambda backend: partial(kv_gets, backend=backend, items=items, order=order)
        ),
        *peer_runs(GETS, len(order), "gets/s", lambda peer: partial(peer_gets, peer, items=items, order=order)),
    ]


def reopen(store_directory: str, backend: str, expected_records: int) -> Callable[[str], float]:
    """A `SystemRun.run` that opens the already built store, whatever fresh directory it is given."""

    def run(_directory: str) -> float:
        return kv_recovery_open(store_directory, backend, expected_records)

    return run


def recovery_workload(workspace: Workspace, counts: Counts, progress: Console) -> list[SystemRun]:
    """One log, built once (untimed), opened by each backend in turn (the page cache is warm for all)."""
    progress.print(f"  {RECOVERY}: building a log of {counts.recovery_records:,} records")
    directory = workspace.directory(RECOVERY, "store")
    build_recovery_log(directory, counts, random.Random(SEED + 3))
    records = counts.recovery_records
    return kv_runs(RECOVERY, " open", records, "records/s", lambda backend: reopen(directory, backend, records))


def run_all(workspace: Workspace, counts: Counts, rounds: int, progress: Console) -> Results:
    results = Results()
    for workload in (bulk_workload, durable_workload, gets_workload):
        run_workload(workspace, results, workload(counts), rounds, progress)
    run_workload(workspace, results, recovery_workload(workspace, counts, progress), rounds, progress)
    return results


# -- report --------------------------------------------------------------------------------


def format_rate(rate: float | None) -> str:
    if rate is None:
        return "-"
    if rate >= 1_000_000:
        return f"{rate / 1_000_000:.2f}M"
    if rate >= 1_000:
        return f"{rate / 1_000:.1f}k"
    return f"{rate:.0f}"


def format_latency(measurement: Measurement) -> str:
    if measurement.seconds is None or measurement.operations == 0:
        return "-"
    return f"{measurement.seconds / measurement.operations * 1_000_000:.2f}"


def format_range(measurement: Measurement) -> str:
    slowest, fastest = measurement.rate_range
    if slowest is None or fastest is None:
        return "-"
    return f"{format_rate(slowest)}-{format_rate(fastest)}"


def format_ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or denominator is None or denominator == 0:
        return "-"
    return f"{numerator / denominator:.2f}x"


def numbered_reasons(results: Results) -> dict[str, int]:
    """Each distinct reason a system did not run, numbered for the table's footnotes."""
    numbers: dict[str, int] = {}
    for measurement in results.measurements:
        if measurement.reason and measurement.reason not in numbers:
            numbers[measurement.reason] = len(numbers) + 1
    return numbers


def footnotes(results: Results) -> list[str]:
    return [f"[{number}] {reason}" for reason, number in numbered_reasons(results).items()]


def results_table(results: Results) -> Table:
    table = Table(title="kv vs peers (median of the rounds; ratio = kv's median rate / this row's median rate)")
    for header in ("workload", "system", "ops", "seconds", "rate", "unit", "µs/op", "rate range"):
        table.add_column(header, justify="left" if header in ("workload", "system", "unit") else "right")
    for backend in BACKENDS:
        table.add_column(f"kv-{backend} ÷ this", justify="right")
    reasons = numbered_reasons(results)
    if reasons:
        table.add_column("note")
    previous_workload = ""
    for measurement in results.measurements:
        if previous_workload and measurement.workload != previous_workload:
            table.add_section()
        ratios = []
        for backend in BACKENDS:
            reference = results.reference(measurement.workload, backend)
            ratios.append(format_ratio(reference.rate if reference else None, measurement.rate))
        table.add_row(
            measurement.workload if measurement.workload != previous_workload else "",
            measurement.system,
            f"{measurement.operations:,}",
            "-" if measurement.seconds is None else f"{measurement.seconds:.3f}",
            format_rate(measurement.rate),
            measurement.unit,
            format_latency(measurement),
            format_range(measurement),
            *ratios,
            *(
                [f"{measurement.outcome} [{reasons[measurement.reason]}]" if measurement.reason else ""]
                if reasons
                else []
            ),
        )
        previous_workload = measurement.workload
    return table


@dataclass(frozen=True)
class TargetCheck:
    target: str
    system: str
    measured: str
    met: bool | None  # None: not measured (skipped or failed)


def check_at_least(target: str, measurement: Measurement | None, minimum: float) -> TargetCheck:
    system = measurement.system if measurement else "-"
    rate = measurement.rate if measurement else None
    met = None if rate is None else rate >= minimum
    return TargetCheck(target, system, format_rate(rate), met)


def check_ratio(target: str, kv_row: Measurement | None, peer: Measurement | None, minimum: float) -> TargetCheck:
    system = kv_row.system if kv_row else "-"
    kv_rate = kv_row.rate if kv_row else None
    peer_rate = peer.rate if peer else None
    if kv_rate is None or peer_rate is None:
        return TargetCheck(target, system, "-", None)
    ratio = kv_rate / peer_rate
    met = ratio >= minimum if minimum != 1.0 else ratio > 1.0
    return TargetCheck(target, system, f"{ratio:.3f}x", met)


def target_checks(results: Results) -> Iterator[TargetCheck]:
    for backend in BACKENDS:
        bulk = results.reference(BULK, backend)
        yield check_at_least("bulk set_many >= 1.2M sets/s", bulk, 1_200_000)
        yield check_ratio("bulk set_many ahead of lmdb", bulk, results.find(BULK, "lmdb"), 1.0)
    for backend in BACKENDS:
        durable = results.reference(DURABLE, backend)
        yield check_ratio(
            "durable sets >= 0.9x raw fdatasync loop", durable, results.find(DURABLE, "raw write+fdatasync"), 0.9
        )
        yield check_ratio("durable sets ahead of sqlite3", durable, results.find(DURABLE, "sqlite3"), 1.0)
        yield check_ratio("durable sets ahead of lmdb", durable, results.find(DURABLE, "lmdb"), 1.0)
    for backend in BACKENDS:
        yield check_at_least("gets >= 1M gets/s", results.reference(GETS, backend), 1_000_000)
    for backend in BACKENDS:
        yield check_at_least("recovery >= 1M records/s", results.reference(RECOVERY, backend), 1_000_000)


def targets_table(results: Results) -> Table:
    table = Table(title="targets (reported, not asserted)")
    for header in ("target", "system", "measured", "status"):
        table.add_column(header, justify="right" if header == "measured" else "left")
    for check in target_checks(results):
        status = "n/a (not measured)" if check.met is None else ("met" if check.met else "missed")
        style = "" if check.met is None else ("green" if check.met else "red")
        table.add_row(check.target, check.system, check.measured, status, style=style)
    return table


# -- profile -------------------------------------------------------------------------------


def profile_report(title: str, timer: ProfilingTimer) -> str:
    stream = text_io.StringIO()
    profile_statistics = pstats.Stats(timer.profile, stream=stream)
    profile_statistics.strip_dirs().sort_stats("tottime").print_stats(PROFILE_LINES)
    return f"== cProfile: {title} (top {PROFILE_LINES} by tottime) ==\n{stream.getvalue()}"


def profile_backend(workspace: Workspace, counts: Counts, backend: str, recovery_directory: str) -> list[str]:
    """cProfile one backend's bulk set_many, gets and recovery open, each in a fresh directory."""
    reports: list[str] = []
    items = make_items(random.Random(SEED), counts.bulk_sets, VALUE_SIZE_BYTES)
    timer = ProfilingTimer()
    kv_bulk_set_many(workspace.directory(f"profile {BULK}", backend), backend, items, timer)
    reports.append(profile_report(f"kv-{backend} set_many of {len(items):,}", timer))
    generator = random.Random(SEED + 2)
    items = make_items(generator, counts.gets, VALUE_SIZE_BYTES)
    order = shuffled_keys(items, generator)
    timer = ProfilingTimer()
    kv_gets(workspace.directory(f"profile {GETS}", backend), backend, items, order, timer)
    reports.append(profile_report(f"kv-{backend} {len(order):,} gets", timer))
    timer = ProfilingTimer()
    kv_recovery_open(recovery_directory, backend, counts.recovery_records, timer)
    reports.append(profile_report(f"kv-{backend} open replaying {counts.recovery_records:,} records", timer))
    return reports


def run_profiles(workspace: Workspace, counts: Counts) -> list[str]:
    """Profile the kv parts on every backend (untimed runs, apart from the table's)."""
    recovery_directory = workspace.directory(f"profile {RECOVERY}", "store")
    build_recovery_log(recovery_directory, counts, random.Random(SEED + 3))
    reports: list[str] = []
    for backend in BACKENDS:
        try:
            reports += profile_backend(workspace, counts, backend, recovery_directory)
        except BackendSkipped as error:
            reports.append(f"== cProfile: kv-{backend} skipped: {error} ==")
    return reports


# -- main ----------------------------------------------------------------------------------


def source_version() -> str:
    """The commit measured (and whether the work tree differs from it), for the table's caption."""
    repository = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "-C", repository, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", repository, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"commit {commit}{' with uncommitted changes' if changes else ''}"


def describe_run(version_at_start: str, version_at_end: str) -> str:
    version = version_at_start
    if version_at_end != version_at_start:
        version += f" (the source changed during the run: now {version_at_end}; results mix the two)"
    return f"kv {version}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"


def parse_arguments(arguments: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="divide every count by 10 (a smoke run)")
    parser.add_argument("--dir", default=None, help="parent of the temporary working directory (default /tmp)")
    parser.add_argument(
        "--rounds", type=int, default=ROUNDS_DEFAULT, help="timed rounds per system, interleaved; the median is shown"
    )
    parser.add_argument("--profile", action="store_true", help="also cProfile the kv parts and print the top functions")
    return parser.parse_args(arguments)


def main(arguments: Sequence[str] | None = None) -> int:
    options = parse_arguments(arguments)
    counts = make_counts(options.quick)
    output = Console(width=max(Console().width, 200))
    progress = Console(stderr=True)
    parent = options.dir if options.dir is not None else "/tmp"
    os.makedirs(parent, exist_ok=True)
    root = tempfile.mkdtemp(prefix="kv-bench-", dir=parent)
    try:
        workspace = Workspace(root)
        version_at_start = source_version()
        mode = "quick" if options.quick else "full"
        progress.print(f"working in {root} ({mode} run, {options.rounds} rounds, seed {SEED})")
        results = run_all(workspace, counts, max(1, options.rounds), progress)
        output.print(describe_run(version_at_start, source_version()), highlight=False)
        output.print(results_table(results))
        for line in footnotes(results):
            output.print(line, markup=False, highlight=False)
        output.print(targets_table(results))
        if options.profile:
            for report in run_profiles(workspace, counts):
                output.print(report, markup=False, highlight=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
