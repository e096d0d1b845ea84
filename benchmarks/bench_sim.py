"""Simulated operations per second per core, on `perfect` and `comprehensive`.

    python benchmarks/bench_sim.py [--seeds N] [--ops N]

One process, one core: each scenario runs the same seeds; the rate counts store
operations the workload issued (each is several simulated I/Os plus the oracle's
checks). Target (reported, not asserted): 200,000 simulated ops/s on `perfect`.

A second column counts simulated I/O operations completed per second (every `SimIo`
the runs create, recovery and the oracle's reads included): a different unit, shown
beside the first, never instead of it.

Two ceilings follow, to show where the time goes: the `perfect` workload run straight
into the store on the sim with no oracle, and `set` on an `Io` whose writes and syncs
cost nothing (the store's own work per durable write).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import kv
from io_backends.sim import SimIo
from kv.io import Future
from scenarios.registry import SCENARIOS
from scenarios.runner import run_seed
from scenarios.workload import Workload, run_operation

TARGET_PERFECT_OPERATIONS_PER_SECOND = 200_000


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
    """Store operations per second, simulated I/Os per second over `seeds` seeds, and
    how many seeds failed."""
    with _every_sim_io() as created:
        started = time.perf_counter()
        failed = sum(not run_seed(SCENARIOS[name], seed, operations).passed for seed in range(seeds))
        elapsed = time.perf_counter() - started
    inputs_outputs = sum(io.operations_completed for io in created)
    return seeds * operations / elapsed, inputs_outputs / elapsed, failed


def store_and_sim_only(name: str, seeds: int, operations: int) -> float:
    """Store operations per second with no oracle: the scenario's workload, generated
    beforehand, run straight into the store on a fault-free `SimIo` (the ceiling any
    harness could reach on this store and sim)."""
    scenario = SCENARIOS[name]
    elapsed = 0.0
    for seed in range(seeds):
        store = kv.open(
            "/store",
            io=SimIo(seed=seed),
            durability=scenario.durabilities[0],
            segment_size_target_bytes=scenario.segment_size_target_bytes,
        )
        workload = Workload(scenario.mix, random.Random(seed))
        batch = [workload.next() for _ in range(operations)]
        started = time.perf_counter()
        for operation in batch:
            run_operation(store, operation)
        elapsed += time.perf_counter() - started
        store.close()
    return seeds * operations / elapsed


def store_set_on_free_io(operations: int) -> float:
    """`set` per second in `always` mode when `write` and `sync` cost nothing (they
    return completed futures): the store's own cost per write, with no disk at all."""
    io = SimIo(seed=0)
    store = kv.open("/store", io=io, durability="always")
    done: Future[None] = Future.completed(None)
    setattr(io, "write", lambda file, offset, data: done)  # noqa: B010 (an instance override)
    setattr(io, "sync", lambda file, data_only=True: done)  # noqa: B010
    keys = [b"key%04d" % (index % 64) for index in range(operations)]
    value = b"v" * 128
    started = time.perf_counter()
    for key in keys:
        store.set(key, value)
    return operations / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--ops", type=int, default=2000)
    arguments = parser.parse_args()
    print(f"{'scenario':<15} {'ops/s/core':>12} {'sim I/Os/s/core':>16} {'seeds':>6} {'failed':>6}")
    for name in ("perfect", "comprehensive"):
        rate, io_rate, failed = measure(name, arguments.seeds, arguments.ops)
        print(f"{name:<15} {rate:>12,.0f} {io_rate:>16,.0f} {arguments.seeds:>6} {failed:>6}")
        if name == "perfect":
            status = "met" if rate >= TARGET_PERFECT_OPERATIONS_PER_SECOND else "missed"
            print(f"  target {TARGET_PERFECT_OPERATIONS_PER_SECOND:,} ops/s on perfect: {status}")
    # Where the time goes: ceilings with parts of the run taken away.
    ceiling = store_and_sim_only("perfect", arguments.seeds, arguments.ops)
    free = store_set_on_free_io(arguments.seeds * arguments.ops)
    print(f"{'perfect, store and sim only (no oracle)':<45} {ceiling:>12,.0f} ops/s")
    print(f"{'store.set, always, on an Io that costs nothing':<45} {free:>12,.0f} ops/s")


if __name__ == "__main__":
    main()
