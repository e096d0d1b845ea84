"""`sim_runner`: run the store on the simulated disk under named scenarios and check it.

Exit codes:
  0  every seed passed
  1  an invariant was violated (each failing seed printed a `repro:` line)
  2  usage error: unknown scenario, bad seed range, bad shard, bad --ops, --jobs or
     --time-budget, an unusable --report-dir
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
    Campaign,
    Shard,
    UsageError,
    parse_seeds,
    run_campaign,
)
from scenarios.registry import SCENARIOS
from scenarios.reports import make_console, write_artifacts

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
        campaign = campaign_from(arguments)
        prepare_report_directory(arguments.report_dir)
    except UsageError as error:
        print(f"sim_runner: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run(campaign, arguments.report_dir)


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
