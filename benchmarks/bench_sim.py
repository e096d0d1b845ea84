"""Simulated operations per second per core, and the throughput ratios that matter.

    python benchmarks/bench_sim.py [--seeds N] [--ops N] [--rounds N] [--ceiling]

One process, one core, CPU time (`time.process_time`). The harness rows run each
scenario's seeds through the full oracle (`run_seed`); the rate counts store operations
the workload issued (each is several simulated I/Os plus the oracle's checks). Target
(reported, not asserted): 200,000 simulated ops/s on `perfect`. A second column counts
simulated I/O operations completed per second (every `SimIo` the runs create, recovery
and the oracle's reads included): a different unit, shown beside the first, never
instead of it.

Then the rows the ratios are made of, each a part of the run taken away:

- the `perfect` workload (the very operations the harness ran for each seed, on a sim
  of the same seed), run straight into the store with no oracle: on a fault-free
  `SimIo`, and on `FreeIo` (memory, every call complete at once, no queue, no clock, no
  crash model: the cheapest `Io` that can still read back);
- `set` in `always` mode on the `SimIo`, and on an `Io` whose `write` and `sync` cost
  nothing at all (they return one completed future): the store's own cost per write.

Ratios (targets from issue 10, reported, not asserted): the store on the simulated disk
(the `perfect` workload, no oracle) at least 0.5x the store on an `Io` that costs
nothing (`set` there, as the issue measured it), and the full harness on `perfect` at
least 0.7x the store on the simulated disk. The first compares two different workloads:
`perfect` compacts, rolls 16 KiB segments and writes batches, which `set` alone does not,
so even a simulated disk that cost nothing would stay well under 1x (the `FreeIo` row
shows where). Two more ratios compare the same work on both sides, to show what the
simulated disk itself costs.

`--ceiling` then asks how high the second ratio could go: the harness on `perfect` again,
with more and more of its work made free (patched to do nothing), each row against the
store on the simulated disk measured beside it: the oracle's checks, then its model
updates, then crash planning, forced faults and per-step fault streams, then the
workload's drawing (the operations are handed over ready-made). What remains is the
harness's skeleton (the step loop, the kinds' dispatch, the trace and the schedule).

Each round measures every figure once, one after another; a rate is the best round's,
a ratio the median of the rounds' own ratios (with their range), since other processes
on a shared machine move every figure of a round together more than they move a ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import posixpath
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

# Run as `python benchmarks/bench_sim.py`: the checkout's own packages, not whichever
# checkout the environment was installed from.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kv
from io_backends.sim import SimIo
from kv.errors import IoError
from kv.io import File, Future, Io, OpenMode
from scenarios.oracle import Oracle
from scenarios.registry import SCENARIOS
from scenarios.runner import Forcer, record_seed, run_seed
from scenarios.workload import Operation, Workload, run_operation

TARGET_PERFECT_OPERATIONS_PER_SECOND = 200_000
TARGET_SIM_OVER_FREE_RATIO_MIN = 0.5
TARGET_HARNESS_OVER_SIM_RATIO_MIN = 0.7
SET_VALUE = b"v" * 128
SET_KEYS_DISTINCT = 64


class FreeIo:
    """An `Io` in memory whose every call is complete when it returns: no queue, no
    latency, no durability model, no faults. What is left of an `Io` when the disk costs
    nothing but the store can still read back what it wrote (so every operation kind,
    compaction included, runs on it)."""

    name = "free"

    def __init__(self) -> None:
        self.files: dict[str, bytearray] = {}
        self.directories: set[str] = {"/"}

    @staticmethod
    def _normal(path: str) -> str:
        return posixpath.normpath(posixpath.join("/", path))

    @staticmethod
    def _missing(path: str, operation: str) -> IoError:
        return IoError(errno.ENOENT, "No such file or directory", path, operation)

    def open(self, path: str, mode: OpenMode) -> Future[File]:
        normal = self._normal(path)
        if normal in self.files and mode == "x":
            return Future.failed(IoError(errno.EEXIST, "File exists", path, "open"))
        if normal not in self.files:
            if mode == "r":
                return Future.failed(self._missing(path, "open"))
            self.files[normal] = bytearray()
        return Future.completed(File(path, mode, self.files[normal]))

    def read(self, file: File, offset: int, size: int) -> Future[bytes]:
        data = file.handle
        assert isinstance(data, bytearray)
        return Future.completed(bytes(data[offset : offset + size]))

    def write(self, file: File, offset: int, data: bytes) -> Future[None]:
        target = file.handle
        assert isinstance(target, bytearray)
        if offset > len(target):
            target.extend(bytes(offset - len(target)))
        target[offset : offset + len(data)] = data
        return Future.completed(None)

    def sync(self, file: File, data_only: bool = True) -> Future[None]:
        return Future.completed(None)

    def truncate(self, file: File, size: int) -> Future[None]:
        target = file.handle
        assert isinstance(target, bytearray)
        if size <= len(target):
            del target[size:]
        else:
            target.extend(bytes(size - len(target)))
        return Future.completed(None)

    def close(self, file: File) -> Future[None]:
        return Future.completed(None)

    def size(self, file: File) -> Future[int]:
        data = file.handle
        assert isinstance(data, bytearray)
        return Future.completed(len(data))

    def rename(self, source: str, destination: str) -> Future[None]:
        normal = self._normal(source)
        if normal not in self.files:
            return Future.failed(self._missing(source, "rename"))
        self.files[self._normal(destination)] = self.files.pop(normal)
        return Future.completed(None)

    def unlink(self, path: str) -> Future[None]:
        if self.files.pop(self._normal(path), None) is None:
            return Future.failed(self._missing(path, "unlink"))
        return Future.completed(None)

    def mkdir(self, path: str) -> Future[None]:
        parts = [part for part in self._normal(path).split("/") if part]
        self.directories.update("/" + "/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
        return Future.completed(None)

    def sync_dir(self, path: str) -> Future[None]:
        return Future.completed(None)

    def listdir(self, path: str) -> Future[list[str]]:
        prefix = self._normal(path).rstrip("/") + "/"
        children = (name[len(prefix) :] for name in [*self.files, *self.directories] if name.startswith(prefix))
        return Future.completed(sorted({child for child in children if child and "/" not in child}))

    def lock(self, path: str) -> Future[File]:
        return self.open(path, "w")

    def now(self) -> float:
        return 0.0

    def shutdown(self) -> None:
        pass


_: type[Io] = FreeIo


@contextmanager
def _every_sim_io() -> Iterator[list[SimIo]]:
    """Every `SimIo` built inside the block (the runner builds one per seed)."""
    created: list[SimIo] = []
    original = SimIo.__init__

    def init(self: SimIo, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    with mock.patch.object(SimIo, "__init__", init):
        yield created


def measure(name: str, seeds: int, operations: int) -> tuple[float, float, int]:
    """Store operations per CPU second through the full harness, simulated I/Os per CPU
    second over `seeds` seeds, and how many seeds failed."""
    with _every_sim_io() as created:
        started = time.process_time()
        failed = sum(not run_seed(SCENARIOS[name], seed, operations).passed for seed in range(seeds))
        elapsed = time.process_time() - started
    inputs_outputs = sum(io.operations_completed for io in created)
    return seeds * operations / elapsed, inputs_outputs / elapsed, failed


Workloads = list[tuple[int, list[Operation]]]  # per seed: the sim's seed and the operations


def harness_workloads(name: str, seeds: int, operations: int) -> Workloads:
    """The operations the harness runs for each seed and the seed of its `SimIo`, read
    from the seed's recorded schedule, so that the store-only rows run the same work as
    the harness rows (a workload seeded otherwise compacts at other moments: that alone
    moved the ratio by 0.1)."""
    workloads = []
    for seed in range(seeds):
        _, schedule = record_seed(SCENARIOS[name], seed, operations)
        workloads.append((schedule.sim_seed, [step.operation for step in schedule.steps]))
    return workloads


def store_only(name: str, workloads: Workloads, make_io: Callable[[int], Io]) -> float:
    """Store operations per CPU second with no oracle: the harness's operations for each
    seed run straight into the store on `make_io(sim_seed)` (on a fault-free `SimIo`:
    the ceiling any harness could reach on this store and sim)."""
    scenario = SCENARIOS[name]
    elapsed = 0.0
    for sim_seed, batch in workloads:
        store = kv.open(
            "/store",
            io=make_io(sim_seed),
            durability=scenario.durabilities[0],
            segment_size_target_bytes=scenario.segment_size_target_bytes,
        )
        started = time.process_time()
        for operation in batch:
            run_operation(store, operation)
        elapsed += time.process_time() - started
        store.close()
    return sum(len(batch) for _, batch in workloads) / elapsed


def store_set(operations: int, free: bool) -> float:
    """`set` per CPU second in `always` mode on a `SimIo`; with `free`, its `write` and
    `sync` cost nothing (they return a completed future): the store's own cost per write."""
    io = SimIo(seed=0)
    store = kv.open("/store", io=io, durability="always")
    if free:
        done: Future[None] = Future.completed(None)
        setattr(io, "write", lambda file, offset, data: done)  # noqa: B010 (an instance override)
        setattr(io, "sync", lambda file, data_only=True: done)  # noqa: B010
    keys = [b"key%04d" % (index % SET_KEYS_DISTINCT) for index in range(operations)]
    started = time.process_time()
    for key in keys:
        store.set(key, SET_VALUE)
    return operations / (time.process_time() - started)


Rates = dict[str, float]


def one_round(seeds: int, operations: int, workloads: Workloads) -> Rates:
    """Every rate the ratios are made of, measured one after another (so that a round's
    ratios compare figures taken under the same load on the machine)."""
    harness, harness_inputs_outputs, harness_failed = measure("perfect", seeds, operations)
    return {
        "harness": harness,
        "harness_inputs_outputs": harness_inputs_outputs,
        "harness_failed": harness_failed,
        "on_sim": store_only("perfect", workloads, lambda seed: SimIo(seed=seed)),
        "on_free_io": store_only("perfect", workloads, lambda seed: FreeIo()),
        "set_on_sim": store_set(seeds * operations, free=False),
        "set_free": store_set(seeds * operations, free=True),
    }


# (label, numerator, denominator, target or None)
RATIOS: tuple[tuple[str, str, str, float | None], ...] = (
    (
        "store on sim (perfect) / store.set on an Io that costs nothing",
        "on_sim",
        "set_free",
        TARGET_SIM_OVER_FREE_RATIO_MIN,
    ),
    ("full harness on perfect / store on sim (perfect)", "harness", "on_sim", TARGET_HARNESS_OVER_SIM_RATIO_MIN),
    ("perfect workload: store on sim / store on FreeIo", "on_sim", "on_free_io", None),
    ("store.set, always: on sim / on an Io that costs nothing", "set_on_sim", "set_free", None),
)
ROWS = (
    ("perfect, store and sim only (no oracle)", "on_sim"),
    ("perfect, store on FreeIo (no oracle)", "on_free_io"),
    ("store.set, always, on the sim", "set_on_sim"),
    ("store.set, always, on an Io that costs nothing", "set_free"),
)


def _harness_rate(seeds: int, operations: int, ready_made: Workloads | None = None) -> float:
    """`measure`'s rate on `perfect`; with `ready_made`, `Workload.next` hands over each
    seed's recorded operations instead of drawing them."""
    scenario = SCENARIOS["perfect"]
    elapsed = 0.0
    for seed in range(seeds):
        with contextlib.ExitStack() as stack:
            if ready_made is not None:
                drawn = iter(ready_made[seed][1])
                stack.enter_context(mock.patch.object(Workload, "next", lambda self, drawn=drawn: next(drawn)))
            started = time.process_time()
            run_seed(scenario, seed, operations)
            elapsed += time.process_time() - started
    return seeds * operations / elapsed


def _nothing(*arguments: object, **keywords: object) -> None:
    return None


def _free(owner: Any, *names: str) -> tuple[tuple[Any, str, Any], ...]:
    return tuple((owner, name, _nothing) for name in names)


# What `--ceiling` makes free, row by row (each row keeps the earlier rows' patches).
CEILING_STEPS: tuple[tuple[str, tuple[tuple[Any, str, Any], ...]], ...] = (
    ("the oracle's checks", _free(Oracle, "starting", "at", "check_read", "check_answer")),
    ("+ its model updates", ((Oracle, "acknowledged", _nothing),)),
    (
        "+ crash planning, forced faults, fault streams",
        (*_free(Forcer, "plan_crash"), (Forcer, "step", lambda *arguments: ()), *_free(SimIo, "begin_stream")),
    ),
)


def ceiling(seeds: int, operations: int, workloads: Workloads) -> None:
    """The `--ceiling` rows (see the module docstring)."""
    on_sim = store_only("perfect", workloads, lambda seed: SimIo(seed=seed))
    print(f"--ceiling: the full harness on perfect / store on sim ({on_sim:,.0f} ops/s), parts made free:")
    print(f"  {'nothing (as measured above)':<50} {_harness_rate(seeds, operations) / on_sim:>5.2f}x")
    with contextlib.ExitStack() as stack:
        for label, patches in CEILING_STEPS:
            for owner, name, replacement in patches:
                stack.enter_context(mock.patch.object(owner, name, replacement))
            print(f"  {label:<50} {_harness_rate(seeds, operations) / on_sim:>5.2f}x")
        rate = _harness_rate(seeds, operations, ready_made=workloads)
        print(f"  {'+ the workload drawing (operations ready-made)':<50} {rate / on_sim:>5.2f}x")


def ratio_line(label: str, ratios: list[float], target: float | None) -> str:
    """The median ratio over the rounds (each round's own figures), its range, the target."""
    ratio = statistics.median(ratios)
    verdict = "" if target is None else f"   target {target:g}x: {'met' if ratio >= target else 'missed'}"
    spread = f"({min(ratios):.2f}-{max(ratios):.2f})"
    return f"  {label:<62} {ratio:>5.2f}x {spread:>11}{verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="rates: the best round; ratios: the median round")
    parser.add_argument("--ceiling", action="store_true", help="the harness ratio with parts of it made free")
    arguments = parser.parse_args()
    seeds, operations, rounds = arguments.seeds, arguments.ops, arguments.rounds
    workloads = harness_workloads("perfect", seeds, operations)
    measured = [one_round(seeds, operations, workloads) for _ in range(rounds)]
    comprehensive = [measure("comprehensive", seeds, operations) for _ in range(rounds)]
    perfect = [(rates["harness"], rates["harness_inputs_outputs"], rates["harness_failed"]) for rates in measured]
    print(f"{'scenario':<15} {'ops/s/core':>12} {'sim I/Os/s/core':>16} {'seeds':>6} {'failed':>6}")
    for name, runs in (("perfect", perfect), ("comprehensive", comprehensive)):
        rate, io_rate, _ = max(runs)
        print(f"{name:<15} {rate:>12,.0f} {io_rate:>16,.0f} {seeds:>6} {max(run[2] for run in runs):>6.0f}")
        if name == "perfect":
            status = "met" if rate >= TARGET_PERFECT_OPERATIONS_PER_SECOND else "missed"
            print(f"  target {TARGET_PERFECT_OPERATIONS_PER_SECOND:,} ops/s on perfect: {status}")
    # Where the time goes: the same work with parts of the run taken away.
    for label, key in ROWS:
        print(f"{label:<50} {max(rates[key] for rates in measured):>12,.0f} ops/s")
    print(f"ratios, the median of {rounds} rounds (range) (issue 10's targets first):")
    for label, numerator, denominator, target in RATIOS:
        print(ratio_line(label, [rates[numerator] / rates[denominator] for rates in measured], target))
    print("  (the first compares the perfect workload with set alone: see the module docstring)")
    if arguments.ceiling:
        ceiling(seeds, operations, workloads)


if __name__ == "__main__":
    main()
