"""`sim_runner`: run the store on the simulated disk under named scenarios and check it.

Exit codes: 0 every seed passed, 1 an invariant was violated, 2 usage error, 3 the
harness itself failed. Only argument parsing and the exit code live here; the logic is
in `scenarios/`.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback

from scenarios.registry import SCENARIOS
from scenarios.runner import SeedResult, run_seed

EXIT_PASSED = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_HARNESS = 3
DEFAULT_SEEDS = range(0, 20)
SEEDS_MAX = 10_000_000


class UsageError(Exception):
    pass


def parse_seeds(text: str) -> range:
    """`A-B` inclusive, or a single seed."""
    first, _, last = text.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise UsageError(f"bad seed range {text!r}: expected A-B with whole numbers, for example 0-99") from None
    if start < 0 or end < start or end - start >= SEEDS_MAX:
        raise UsageError(f"bad seed range {text!r}: need 0 <= A <= B and at most {SEEDS_MAX} seeds")
    return range(start, end + 1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sim_runner", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", action="append", help="scenario name (repeatable); default: all")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="one seed")
    seeds.add_argument("--seeds", help="inclusive seed range A-B (default 0-19)")
    parser.add_argument("--ops", type=int, help="operations per seed (default: the scenario's)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--trace", action="store_true", help="print the timeline of each seed")
    return parser


def repro(result: SeedResult) -> str:
    return f"sim_runner --scenario {result.scenario} --seed {result.seed} --ops {result.operations}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:
        return EXIT_USAGE if exit_request.code else EXIT_PASSED
    if arguments.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<12} {scenario.description}")
        return EXIT_PASSED
    try:
        names = arguments.scenario or list(SCENARIOS)
        unknown = [name for name in names if name not in SCENARIOS]
        if unknown:
            raise UsageError(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
        if arguments.seed is not None and arguments.seed < 0:
            raise UsageError("--seed must be >= 0")
        seeds = range(arguments.seed, arguments.seed + 1) if arguments.seed is not None else DEFAULT_SEEDS
        if arguments.seeds:
            seeds = parse_seeds(arguments.seeds)
        if arguments.ops is not None and arguments.ops < 1:
            raise UsageError("--ops must be >= 1")
    except UsageError as error:
        print(f"sim_runner: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run(names, seeds, arguments.ops, arguments.trace)


def run(names: list[str], seeds: range, operations: int | None, trace: bool) -> int:
    started = time.perf_counter()
    failures: list[SeedResult] = []
    seed_text = f"--seed {seeds.start}" if len(seeds) == 1 else f"--seeds {seeds.start}-{seeds.stop - 1}"
    scenario_text = " ".join(f"--scenario {name}" for name in names)
    ops_text = f" --ops {operations}" if operations is not None else ""
    print(
        f"sim_runner: scenarios={','.join(names)} {seed_text.lstrip('-')} ops={operations or 'default'} "
        f"repro: sim_runner {scenario_text} {seed_text}{ops_text}"
    )
    for name in names:
        scenario = SCENARIOS[name]
        passed = 0
        for seed in seeds:
            try:
                result = run_seed(scenario, seed, operations, keep_timeline=trace)
            except Exception:
                traceback.print_exc()
                print(
                    f"sim_runner: harness failure; repro: sim_runner --scenario {name} --seed {seed}", file=sys.stderr
                )
                return EXIT_HARNESS
            if trace:
                print("\n".join(result.timeline))
            if result.passed:
                passed += 1
            else:
                failures.append(result)
                print(f"FAIL {name} seed={seed}: {result.violation}\n  repro: {repro(result)}")
        print(
            f"{name:<12} {passed}/{len(seeds)} seeds passed"
            + (f"  trace {result.trace_hash}" if len(seeds) == 1 else "")
        )
    print(f"{'passed' if not failures else 'FAILED'} in {time.perf_counter() - started:.1f}s")
    return EXIT_VIOLATION if failures else EXIT_PASSED


if __name__ == "__main__":
    raise SystemExit(main())
