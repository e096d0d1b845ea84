"""Simulated operations per second per core, on `perfect` and `comprehensive`.

    python benchmarks/bench_sim.py [--seeds N] [--ops N]

One process, one core: each scenario runs the same seeds; the rate counts store
operations the workload issued (each is several simulated I/Os plus the oracle's
checks). Target (reported, not asserted): 200,000 simulated ops/s on `perfect`.
"""

from __future__ import annotations

import argparse
import time

from scenarios.registry import SCENARIOS
from scenarios.runner import run_seed

TARGET_PERFECT_OPERATIONS_PER_SECOND = 200_000


def measure(name: str, seeds: int, operations: int) -> tuple[float, int]:
    """Operations per second over `seeds` seeds, and how many seeds failed."""
    started = time.perf_counter()
    failed = sum(not run_seed(SCENARIOS[name], seed, operations).passed for seed in range(seeds))
    return seeds * operations / (time.perf_counter() - started), failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--ops", type=int, default=2000)
    arguments = parser.parse_args()
    print(f"{'scenario':<15} {'ops/s/core':>12} {'seeds':>6} {'failed':>6}")
    for name in ("perfect", "comprehensive"):
        rate, failed = measure(name, arguments.seeds, arguments.ops)
        print(f"{name:<15} {rate:>12,.0f} {arguments.seeds:>6} {failed:>6}")
        if name == "perfect":
            status = "met" if rate >= TARGET_PERFECT_OPERATIONS_PER_SECOND else "missed"
            print(f"  target {TARGET_PERFECT_OPERATIONS_PER_SECOND:,} ops/s on perfect: {status}")


if __name__ == "__main__":
    main()
