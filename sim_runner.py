"""`sim_runner`: run the store on the simulated disk under named scenarios and check it,
or crash-test your own code (`--target FILE.py`).

Exit codes:
  0  every seed passed (--shrink: the seed passes; --replay: the schedule passes;
     --merge: every merged run passed; --replay-failures: every logged run passes now;
     --target: every crash state passes; --crash-state: that state passes)
  1  an invariant was violated (each failing seed printed a `repro:` line; --shrink
     wrote the shrunk replay file and pytest test; --replay: the schedule fails;
     --merge: a merged run failed; --replay-failures: a logged run still fails);
     --target: a promise was broken: a crash state fails its check (the minimal one
     is printed with its `repro:` line), or under --faults acknowledged data was lost
     with no error raised; --crash-state: that state fails
  2  usage error: unknown scenario, bad seed range, bad shard, bad --ops, --jobs or
     --time-budget, an unusable --report-dir, --shrink without exactly one scenario
     and seed, an unreadable or invalid --replay file, --cluster without dask or
     without a scheduler at the address, --merge of unreadable or disagreeing
     reports, an unreadable --replay-failures log; --target: a missing file or
     one without workload(root, ack) and check(root, acked, pending), a bad --explore,
     --budget, --faults or --crash-state id, --target with a campaign option
  3  the harness itself failed: an unexpected exception (its traceback and a `repro:`
     line are printed), or a failing seed that did not replay to the same trace;
     --target: a call the simulated disk does not model (UnmodelledCall), or the
     workload raised with no --faults on (its traceback is printed)
  130 interrupted (Ctrl-C): nothing is written

Only argument parsing and the exit code live here; the campaign is `scenarios.campaign`
(on a Dask cluster: `scenarios.cluster`), the console and the artifacts (results.json,
junit.xml, report.html) `scenarios.reports`, merged reports `scenarios.merge`, the
failure log `scenarios.failure_log`; target runs are `scenarios.target_run` and
`scenarios.target_reports`.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from scenarios.campaign import (
    DEFAULT_SEEDS,
    EXIT_HARNESS,
    EXIT_PASSED,
    EXIT_USAGE,
    EXIT_VIOLATION,
    Campaign,
    SeedOutcome,
    Shard,
    UsageError,
    parse_seeds,
    run_campaign,
)
from scenarios.cluster import dask_available
from scenarios.exhaustive import run_exhaustive
from scenarios.failure_log import FAILURE_LOG_FILE, FailureLog, LoggedRun, read_log, replay_failures
from scenarios.merge import merge
from scenarios.registry import SCENARIOS
from scenarios.reports import emit, make_console, rerun_lines, silence_closed_pipe, write_artifacts
from scenarios.runner import record_seed, run_schedule
from scenarios.schedule import Schedule, ScheduleError
from scenarios.shrink import DEFAULT_BUDGET_SECONDS, write_regression
from scenarios.shrink import shrink as shrink_schedule
from scenarios.target_faults import INLINE_FAULTS, UnknownFault, parse_fault_names
from scenarios.target_reports import make_target_console, write_target_artifacts
from scenarios.target_run import COMMAND_LINE_BUDGET_STATES, TargetOptions, explore_target, replay_state
from scenarios.target_run import load as load_target

DEFAULT_REPORT_DIRECTORY = Path("reports")
FAILURES_SHOWN_MAX = 20  # --exhaustive prints this many failures in full
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
    add_cluster_arguments(parser)
    add_target_arguments(parser)
    parser.add_argument(
        "--report-dir",
        type=Path,
        metavar="DIR",
        default=DEFAULT_REPORT_DIRECTORY,
        help="where results.json, junit.xml and report.html go (default reports/)",
    )
    return parser


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("clusters, merged reports and the failure log")
    group.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the campaign on the Dask scheduler at ADDRESS (tcp://HOST:8786); needs the [cluster] extra",
    )
    group.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="merge the results.json of shard or cluster report directories into one report in --report-dir",
    )
    group.add_argument(
        "--failure-log",
        type=Path,
        metavar="FILE",
        help=f"append every failing seed to this JSON-lines file (default: --report-dir's {FAILURE_LOG_FILE})",
    )
    group.add_argument(
        "--exhaustive",
        action="store_true",
        help="crash opening, repair, salvage, compaction and close at every I/O of seven prepared stores (alone)",
    )
    group.add_argument(
        "--replay-failures",
        type=Path,
        metavar="LOG",
        help="rerun each distinct (scenario, seed, options) of a failure log; exit 1 if one still fails",
    )


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("crash-test your own code (--target)")
    group.add_argument(
        "--target",
        type=Path,
        metavar="FILE.py",
        help="a Python file defining workload(root, ack) and check(root, acked, pending): record the workload "
        "once on the simulated disk, check every crash state (--seed N seeds sampling and faults; default 0)",
    )
    group.add_argument(
        "--explore",
        metavar="MODE",
        help="prefix | alice | random:N: which crash states (default alice: prefixes, reorderings, torn writes)",
    )
    group.add_argument(
        "--budget",
        type=int,
        metavar="N",
        help=f"check at most N crash states, a seeded sample past it (default {COMMAND_LINE_BUDGET_STATES})",
    )
    group.add_argument("--crash-state", metavar="ID", help="rebuild and check one crash state (from a repro: line)")
    group.add_argument(
        "--faults",
        metavar="NAME[,NAME...]",
        help=f"inline faults for the recorded run: {', '.join(INLINE_FAULTS)}",
    )


# Options of campaigns that mean nothing for a target, by their `dest`.
CAMPAIGN_ONLY_OPTIONS = {
    "scenario": "--scenario",
    "seeds": "--seeds",
    "ops": "--ops",
    "shard": "--shard",
    "time_budget": "--time-budget",
    "swarm": "--swarm",
    "list": "--list",
    "trace": "--trace",
    "shrink": "--shrink",
    "replay": "--replay",
    "cluster": "--cluster",
    "merge": "--merge",
    "failure_log": "--failure-log",
    "replay_failures": "--replay-failures",
}
# What `--merge` and `--replay-failures` take besides their own argument: none of these.
NOT_WITH_MERGE_OR_REPLAY = {
    dest: flag for dest, flag in CAMPAIGN_ONLY_OPTIONS.items() if dest not in ("merge", "replay_failures")
}
TARGET_ONLY_OPTIONS = {
    "explore": "--explore",
    "budget": "--budget",
    "crash_state": "--crash-state",
    "faults": "--faults",
}


def target_options_from(arguments: argparse.Namespace) -> TargetOptions:
    """The target run the arguments ask for; raises `UsageError`."""
    given = [flag for dest, flag in CAMPAIGN_ONLY_OPTIONS.items() if getattr(arguments, dest) not in (None, False)]
    if arguments.jobs != 1:
        given.append("--jobs")
    if given:
        raise UsageError(f"--target cannot be combined with {', '.join(given)}")
    if arguments.crash_state is not None and (arguments.explore is not None or arguments.budget is not None):
        raise UsageError("--crash-state checks one state: --explore and --budget do not apply")
    try:
        faults = parse_fault_names(arguments.faults) if arguments.faults is not None else ()
    except UnknownFault as error:
        raise UsageError(f"--faults: {error}") from None
    return TargetOptions(
        path=arguments.target,
        explore=arguments.explore if arguments.explore is not None else "alice",
        budget=arguments.budget if arguments.budget is not None else COMMAND_LINE_BUDGET_STATES,
        seed=arguments.seed if arguments.seed is not None else 0,
        faults=faults,
        crash_state=arguments.crash_state,
    )


def campaign_from(arguments: argparse.Namespace) -> Campaign:
    """The campaign the arguments ask for; raises `UsageError`."""
    if arguments.seed is not None and arguments.seed < 0:
        raise UsageError("--seed must be >= 0")
    seeds = DEFAULT_SEEDS
    if arguments.seed is not None:
        seeds = range(arguments.seed, arguments.seed + 1)
    elif arguments.seeds:
        seeds = parse_seeds(arguments.seeds)
    if arguments.cluster is not None and not dask_available():
        raise UsageError("--cluster needs dask.distributed: pip install 'kv-sim[cluster]' (or 'dask[distributed]')")
    return Campaign(
        scenario_names=tuple(dict.fromkeys(arguments.scenario or SCENARIOS)),
        seeds=seeds,
        operations=arguments.ops,
        jobs=arguments.jobs,
        shard=Shard.parse(arguments.shard) if arguments.shard is not None else None,
        swarm=arguments.swarm,
        time_budget_seconds=arguments.time_budget,
        trace=arguments.trace,
        cluster=arguments.cluster,
    )


def prepare_report_directory(directory: Path) -> None:
    """Create it now, so a bad path fails before the run rather than after it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot use --report-dir {directory}: {error}") from None


def main(argv: list[str] | None = None) -> int:
    """The command line; a reader that goes away (`| head`) ends it quietly. The campaign's
    console survives that and keeps the real exit code; elsewhere the exit code is the
    one of what had run so far (passed: nothing had failed yet)."""
    try:
        return command_line(argv)
    except BrokenPipeError:
        silence_closed_pipe(sys.stdout)
        return EXIT_PASSED


def say(line: str) -> None:
    emit(line, sys.stdout)


def command_line(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:
        return EXIT_USAGE if exit_request.code else EXIT_PASSED
    if arguments.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<12} {scenario.description}")
        return EXIT_PASSED
    if arguments.target is not None:
        return target(arguments)
    try:
        given = [flag for dest, flag in TARGET_ONLY_OPTIONS.items() if getattr(arguments, dest) is not None]
        if given:
            raise UsageError(f"{', '.join(given)} need --target FILE.py")
        if arguments.merge is not None or arguments.replay_failures is not None:
            return merge_or_replay_failures(arguments)
        if arguments.exhaustive:
            return exhaustive()
        if arguments.replay is not None:
            return replay(arguments.replay, arguments.trace)
        campaign = campaign_from(arguments)
        prepare_report_directory(arguments.report_dir)
        if arguments.shrink:
            return shrink(campaign, arguments.report_dir)
    except UsageError as error:
        print(f"sim_runner: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run(campaign, arguments.report_dir, arguments.failure_log or arguments.report_dir / FAILURE_LOG_FILE)


def exhaustive() -> int:
    """`--exhaustive`: every crash point of the prepared stores; each failure printed with
    its store, action, I/O index and survival mode."""
    result = run_exhaustive()
    for line in result.summary():
        say(line)
    for failure in result.failures[:FAILURES_SHOWN_MAX]:
        say(f"FAIL {failure}")
    return EXIT_PASSED if result.passed else EXIT_VIOLATION


def merge_or_replay_failures(arguments: argparse.Namespace) -> int:
    """`--merge DIR...` or `--replay-failures LOG`: alone (with `--report-dir` for a merge)."""
    both = arguments.merge is not None and arguments.replay_failures is not None
    own = "--merge" if arguments.merge is not None else "--replay-failures"
    given = ["--replay-failures"] if both else []
    given += [flag for dest, flag in NOT_WITH_MERGE_OR_REPLAY.items() if getattr(arguments, dest) not in (None, False)]
    if arguments.seed is not None:
        given.append("--seed")
    if arguments.jobs != 1:
        given.append("--jobs")
    if given:
        raise UsageError(f"{own} cannot be combined with {', '.join(given)}")
    if arguments.replay_failures is not None:
        return rerun_failures(arguments.replay_failures)
    result = merge(arguments.merge)
    prepare_report_directory(arguments.report_dir)
    artifacts = write_artifacts(result, arguments.report_dir)
    console = make_console(result.campaign, sys.stdout)
    say(f"sim_runner: merged {len(arguments.merge)} reports: {len(result.outcomes)} runs")
    console.finish(result, artifacts)
    return result.exit_code


def rerun_failures(path: Path) -> int:
    """`--replay-failures LOG`: rerun each logged run; exit 1 if one still fails, 3 on a harness failure."""
    runs = read_log(path)
    say(f"sim_runner: rerunning {len(runs)} distinct runs of {path}")

    def heard(run: LoggedRun, outcome: SeedOutcome) -> None:
        for line in rerun_lines(run.repro(), outcome):
            say(line)

    reruns = replay_failures(runs, heard)
    failing = [outcome for _, outcome in reruns if outcome.verdict != "passed"]
    say(f"{len(failing)} of {len(reruns)} still fail")
    if any(outcome.verdict == "error" for outcome in failing):
        return EXIT_HARNESS
    return EXIT_VIOLATION if failing else EXIT_PASSED


def target(arguments: argparse.Namespace) -> int:
    """`--target FILE.py`: explore its crash states, or replay one with `--crash-state`."""
    try:
        options = target_options_from(arguments)
        loaded = load_target(options)
        if options.crash_state is None:
            prepare_report_directory(arguments.report_dir)
    except UsageError as error:
        print(f"sim_runner: {error}", file=sys.stderr)
        return EXIT_USAGE
    console = make_target_console()

    def body() -> int:
        console.begin(options.describe())
        if options.crash_state is not None:
            replay = replay_state(loaded, options)
            console.replayed(replay)
            return replay.exit_code
        result = explore_target(loaded, options, console.progress)
        console.close()
        artifacts = write_target_artifacts(result, arguments.report_dir)
        console.finish(result, artifacts)
        return result.exit_code

    return guarded(body, console.close, options.repro())


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


def run(campaign: Campaign, report_directory: Path, failure_log_path: Path) -> int:
    """Run the campaign with its console, its artifacts and its failing seeds logged."""
    console = make_console(campaign, sys.stdout)
    failure_log = FailureLog(failure_log_path, campaign)
    log_broken: list[str] = []

    def seed_finished(outcome: SeedOutcome) -> None:
        console.seed_finished(outcome)
        try:
            failure_log.append(outcome)
        except OSError as error:
            if not log_broken:
                console.print(f"warning: cannot append to the failure log {failure_log_path}: {error}")
            log_broken.append(str(error))

    def body() -> int:
        console.begin()
        result = run_campaign(campaign, seed_finished)
        artifacts = write_artifacts(result, report_directory)
        if failure_log.appended and not log_broken:
            artifacts.append(failure_log_path)
        console.finish(result, artifacts)
        return result.exit_code

    return guarded(body, console.close, campaign.repro())


def guarded(body: Callable[[], int], close_console: Callable[[], None], repro: str) -> int:
    """Run `body` for its exit code; a usage error found late, an interruption or a
    failure of the harness itself becomes its exit code, with the `repro:` line, after
    the console is closed (so the message is not drawn over)."""
    try:
        return body()
    except UsageError as error:
        close_console()
        print(f"sim_runner: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        close_console()
        print(f"sim_runner: interrupted; repro: {repro}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        close_console()
        traceback.print_exc()
        print(f"sim_runner: harness failure; repro: {repro}", file=sys.stderr)
        return EXIT_HARNESS
    finally:
        close_console()


if __name__ == "__main__":
    raise SystemExit(main())
