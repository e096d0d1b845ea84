"""Simulated operations per second per core, on `perfect` and `comprehensive`.

    python benchmarks/bench_sim.py [--seeds N] [--ops N]

One process, one core: each scenario runs the same seeds; the rate counts store
operations the workload issued (each is several simulated I/Os plus the oracle's
checks). Target (reported, not asserted): 200,000 simulated ops/s on `perfect`.

A second column counts simulated I/O operations completed per second (every `SimIo`
the runs create, recovery and the oracle's reads included): a different unit, shown
beside the first, never instead of it.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from io_backends.sim import SimIo
from scenarios.registry import SCENARIOS
from scenarios.runner import run_seed

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


if __name__ == "__main__":
    main()
