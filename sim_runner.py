"""`sim_runner`: run the store on the simulated disk under named scenarios and check it.

Exit codes:
  0  every seed passed (--shrink: the seed passes; --replay: the schedule passes)
  1  an invariant was violated (each failing seed printed a `repro:` line; --shrink
     wrote the shrunk replay file and pytest test; --replay: the schedule fails)
  2  usage error: unknown scenario, bad seed range, bad shard, bad --ops, --jobs or
     --time-budget, an unusable --report-dir, --shrink without exactly one scenario
     and seed, an unreadable or invalid --replay file
  3  the harness itself failed: an unexpected exception (its traceback and a `repro:`
     line are printed), or a failing seed that did not replay to the same trace
  130 interrupted (Ctrl-C): nothing is written

Only argument parsing and the exit code live here; the campaign is `scenarios.campaign`,
the console and the artifacts (results.json, junit.xml, report.html) `scenarios.reports`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from scenarios.campaign import (
    DEFAULT_SEEDS,
    EXIT_HARNESS,
    EXIT_PASSED,
    EXIT_USAGE,
    EXIT_VIOLATION,
    Campaign,
    Shard,
    UsageError,
    parse_seeds,
    run_campaign,
)
from scenarios.registry import SCENARIOS
from scenarios.reports import make_console, write_artifacts
from scenarios.runner import record_seed, run_schedule
from scenarios.schedule import Schedule, ScheduleError
from scenarios.shrink import DEFAULT_BUDGET_SECONDS, write_regression
from scenarios.shrink import shrink as shrink_schedule

DEFAULT_REPORT_DIRECTORY = Path("reports")
EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT (128 + 2); no artifacts are written


def build_parser() -> argparse.ArgumentParser:
    summary, exit_codes = (__doc__ or "\n\n").split("\n\n")[:2]
    parser = argparse.ArgumentParser(
        prog="sim_runner",
        description=summary,
        epilog=exit_codes,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", action="append", help="scenario name (repeatable); default: all")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, help="one seed")
    seeds.add_argument("--seeds", help="inclusive seed range A-B (default 0-19)")
    parser.add_argument("--ops", type=int, help="operations per seed (default: the scenario's)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1: in this process)")
    parser.add_argument("--shard", help="K/N: run only the K-th of N disjoint shards of the (scenario, seed) runs")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS", help="start no new seed after this long")
    parser.add_argument("--swarm", action="store_true", help="swarm mode for every scenario: drop faults per seed")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--trace", action="store_true", help="print the timeline of each seed")
    parser.add_argument(
        "--shrink",
        action="store_true",
        help="reduce one failing --scenario/--seed to a minimal schedule; write a replay file and a pytest test",
    )
    parser.add_argument("--replay", type=Path, metavar="FILE", help="replay a schedule written by --shrink")
    parser.add_argument(
        "--report-dir",
        type=Path,
        metavar="DIR",
        default=DEFAULT_REPORT_DIRECTORY,
        help="where results.json, junit.xml and report.html go (default reports/)",
    )
    return parser


def campaign_from(arguments: argparse.Namespace) -> Campaign:
    """The campaign the arguments ask for; raises `UsageError`."""
    if arguments.seed is not None and arguments.seed < 0:
        raise UsageError("--seed must be >= 0")
    seeds = DEFAULT_SEEDS
    if arguments.seed is not None:
        seeds = range(arguments.seed, arguments.seed + 1)
    elif arguments.seeds:
        seeds = parse_seeds(arguments.seeds)
    return Campaign(
        scenario_names=tuple(dict.fromkeys(arguments.scenario or SCENARIOS)),
        seeds=seeds,
        operations=arguments.ops,
        jobs=arguments.jobs,
        shard=Shard.parse(arguments.shard) if arguments.shard is not None else None,
        swarm=arguments.swarm,
        time_budget_seconds=arguments.time_budget,
        trace=arguments.trace,
    )


def prepare_report_directory(directory: Path) -> None:
    """Create it now, so a bad path fails before the run rather than after it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot use --report-dir {directory}: {error}") from None


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
        if arguments.replay is not None:
            return replay(arguments.replay, arguments.trace)
        campaign = campaign_from(arguments)
        prepare_report_directory(arguments.report_dir)
        if arguments.shrink:
            return shrink(campaign, arguments.report_dir)
    except UsageError as error:
        print(f"sim_runner: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run(campaign, arguments.report_dir)


def shrink(campaign: Campaign, report_directory: Path) -> int:
    """`--shrink`: one scenario, one seed; exit 1 with the files written, or 0 when it passes."""
    [scenario] = campaign.scenarios() if len(campaign.scenarios()) == 1 else [None]
    if scenario is None or len(campaign.seeds) != 1:
        raise UsageError("--shrink takes exactly one --scenario and one --seed")
    [seed] = campaign.seeds
    operations = campaign.operations or scenario.operations
    print(f"sim_runner: shrinking {scenario.name} seed {seed} ops {operations}; repro: {campaign.repro()}", flush=True)
    result, schedule = record_seed(scenario, seed, operations)
    if result.passed:
        print(f"{scenario.name} seed {seed} passes: nothing to shrink")
        return EXIT_PASSED
    print(f"violation: {result.violation}")
    budget = campaign.time_budget_seconds or DEFAULT_BUDGET_SECONDS
    shrunk = shrink_schedule(schedule, budget_seconds=budget)
    steps, _, crashes = shrunk.schedule.size()
    print(
        f"shrunk from {len(schedule.steps)} steps to {steps} (planned crashes: {crashes}), "
        f"faults {', '.join(shrunk.schedule.faults.enabled()) or 'none'}, in {shrunk.runs} replays, "
        f"{shrunk.seconds:.1f} s"
    )
    print(f"violation now: {shrunk.violation}")
    replay_file, test_file = write_regression(shrunk, report_directory)
    print(f"replay file: {replay_file}\npytest test: {test_file}\nrepro: sim_runner --replay {replay_file}")
    return EXIT_VIOLATION


def replay(path: Path, trace: bool) -> int:
    """`--replay FILE`: run a saved schedule; exit 0 when it passes, 1 when it fails."""
    try:
        schedule = Schedule.loads(path.read_text())
    except OSError as error:
        raise UsageError(f"cannot read --replay {path}: {error.strerror}") from None
    except ScheduleError as error:
        raise UsageError(f"--replay {path}: {error}") from None
    result = run_schedule(schedule, keep_timeline=True)
    print(f"sim_runner: replay of {path} ({schedule.scenario} seed {schedule.seed}, {len(schedule.steps)} steps)")
    if trace or not result.passed:
        print("\n".join(result.timeline))
    if result.passed:
        print(f"passed: trace {result.trace_hash}")
        return EXIT_PASSED
    print(f"FAILED: {result.violation}\nrepro: sim_runner --replay {path}")
    return EXIT_VIOLATION


def run(campaign: Campaign, report_directory: Path) -> int:
    console = make_console(campaign)
    try:
        console.begin()
        result = run_campaign(campaign, console.seed_finished)
        artifacts = write_artifacts(result, report_directory)
        console.finish(result, artifacts)
    except KeyboardInterrupt:
        console.close()
        print(f"sim_runner: interrupted; repro: {campaign.repro()}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        console.close()
        traceback.print_exc()
        print(f"sim_runner: harness failure; repro: {campaign.repro()}", file=sys.stderr)
        return EXIT_HARNESS
    finally:
        console.close()
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
