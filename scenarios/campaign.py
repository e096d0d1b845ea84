"""A campaign: many (scenario, seed) runs, in one process or several, sharded, within a time budget.

`Campaign` is the plan (validated on construction, `UsageError` otherwise) and knows how
to print itself as one `repro:` command; `run_campaign` runs it and returns a
`CampaignResult` whose outcomes are ordered by scenario, then seed, whatever the number
of processes.

Seeds are started seed by seed, every chosen scenario for each seed, so a time budget
spreads over every scenario. A shard keeps the runs whose index in the flattened
scenario-major list (every seed of the first scenario, then of the second, ...) is
`K-1` modulo `N`: the shards `1/N` ... `N/N` are disjoint and cover the campaign.

Runs go to an executor: this process (`--jobs 1`), a pool of worker processes
(`--jobs N`), or a Dask cluster (`--cluster ADDRESS`, `scenarios.cluster`), where seeds
travel in batches of a few (`SeedTask`s in one task) so scheduling costs little. Each
run is a pure function of its task, so the executor changes nothing in the results.

A failing seed is run once more with its timeline kept (for the report), and the replay
must give the same trace hash: a seed that does not replay is a harness failure.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from scenarios.registry import SCENARIOS, Scenario
from scenarios.runner import SeedResult, run_seed

EXIT_PASSED = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_HARNESS = 3

DEFAULT_SEEDS = range(0, 20)
# A range wider than this is a typo, not a campaign (ten million seeds is weeks of CPU).
SEEDS_MAX = 10_000_000
# More worker processes than this only thrash; each one holds a whole simulated disk.
JOBS_MAX = 256
# Timelines kept for the report: the first failures say enough, and each replay costs a run.
FAILURE_TIMELINES_MAX = 20

Verdict = Literal["passed", "failed", "error"]


class UsageError(Exception):
    """The campaign asked for is not one that can run (unknown scenario, bad range, ...)."""


def parse_seeds(text: str) -> range:
    """`A-B` inclusive, or a single seed `A`."""
    first, _, last = text.partition("-")
    try:
        start, end = int(first), int(last or first)
    except ValueError:
        raise UsageError(f"bad seed range {text!r}: expected A-B with whole numbers, for example 0-99") from None
    if start < 0 or end < start or end - start >= SEEDS_MAX:
        raise UsageError(f"bad seed range {text!r}: need 0 <= A <= B and at most {SEEDS_MAX} seeds")
    return range(start, end + 1)


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (1-based), as in `--shard 2/4`."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index_text, slash, count_text = text.partition("/")
        try:
            index, count = int(index_text), int(count_text)
        except ValueError:
            raise UsageError(f"bad shard {text!r}: expected K/N with whole numbers, for example 2/4") from None
        if not slash or not 1 <= index <= count:
            raise UsageError(f"bad shard {text!r}: need 1 <= K <= N")
        return cls(index, count)

    def keeps(self, position: int) -> bool:
        return position % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class SeedTask:
    """One run, as sent to a worker process (everything in it pickles)."""

    scenario: Scenario
    seed: int
    operations: int
    keep_timeline: bool


@dataclass(frozen=True)
class SeedOutcome:
    """What one run gave: the runner's result, or the traceback of a harness failure."""

    scenario: str
    seed: int
    operations: int
    elapsed_seconds: float
    result: SeedResult | None = None  # None when the harness itself failed
    harness_traceback: str = ""

    @property
    def verdict(self) -> Verdict:
        if self.result is None:
            return "error"
        return "passed" if self.result.passed else "failed"


@dataclass(frozen=True)
class Campaign:
    """What to run. Construction validates it and raises `UsageError`."""

    scenario_names: tuple[str, ...]
    seeds: range = DEFAULT_SEEDS
    operations: int | None = None  # None: each scenario's own count
    jobs: int = 1
    shard: Shard | None = None
    swarm: bool = False
    time_budget_seconds: float | None = None
    trace: bool = False  # keep (and print) every seed's timeline
    cluster: str | None = None  # a Dask scheduler address: run there instead of here

    def __post_init__(self) -> None:
        unknown = [name for name in self.scenario_names if name not in SCENARIOS]
        if unknown or not self.scenario_names:
            raise UsageError(f"unknown scenario {', '.join(unknown) or '(none)'}; choose from {', '.join(SCENARIOS)}")
        if len(set(self.scenario_names)) != len(self.scenario_names):
            raise UsageError(f"a scenario is named twice: {', '.join(self.scenario_names)}")
        if not self.seeds or self.seeds.start < 0 or self.seeds.step != 1 or len(self.seeds) > SEEDS_MAX:
            raise UsageError(f"bad seeds {self.seeds}: need a non-empty range of seeds >= 0, at most {SEEDS_MAX}")
        if self.operations is not None and self.operations < 1:
            raise UsageError("--ops must be >= 1")
        if not 1 <= self.jobs <= JOBS_MAX:
            raise UsageError(f"--jobs must be between 1 and {JOBS_MAX}")
        budget = self.time_budget_seconds
        if budget is not None and not (math.isfinite(budget) and budget > 0):
            raise UsageError("--time-budget must be a number of seconds > 0")
        if self.cluster is not None and self.jobs != 1:
            raise UsageError("--cluster and --jobs do not combine: the cluster's workers are the jobs")

    def scenarios(self) -> list[Scenario]:
        chosen = [SCENARIOS[name] for name in self.scenario_names]
        return [replace(scenario, swarm=True) for scenario in chosen] if self.swarm else chosen

    def operations_for(self, scenario: Scenario) -> int:
        return self.operations if self.operations is not None else scenario.operations

    @property
    def runs_total(self) -> int:
        return len(self.scenario_names) * len(self.seeds)

    @property
    def runs_planned(self) -> int:
        """Runs in this shard (all of them without one), before any time budget."""
        if self.shard is None:
            return self.runs_total
        return len(range(self.shard.index - 1, self.runs_total, self.shard.count))

    def tasks(self) -> Iterator[SeedTask]:
        """The runs in the order they start: seed by seed, every scenario for each seed."""
        scenarios = self.scenarios()
        seed_count = len(self.seeds)
        for seed_position, seed in enumerate(self.seeds):
            for scenario_position, scenario in enumerate(scenarios):
                if self.shard is None or self.shard.keeps(scenario_position * seed_count + seed_position):
                    yield SeedTask(scenario, seed, self.operations_for(scenario), self.trace)

    def seeds_text(self) -> str:
        first, last = self.seeds.start, self.seeds.stop - 1
        return f"--seed {first}" if first == last else f"--seeds {first}-{last}"

    def repro(self) -> str:
        """One command that replays this whole campaign."""
        words = ["sim_runner", *(f"--scenario {name}" for name in self.scenario_names), self.seeds_text()]
        if self.operations is not None:
            words.append(f"--ops {self.operations}")
        if self.swarm:
            words.append("--swarm")
        if self.shard is not None:
            words.append(f"--shard {self.shard}")
        if self.time_budget_seconds is not None:
            words.append(f"--time-budget {self.time_budget_seconds:g}")
        if self.jobs != 1:
            words.append(f"--jobs {self.jobs}")
        if self.cluster is not None:
            words.append(f"--cluster {self.cluster}")
        return " ".join(words)

    def seed_repro(self, scenario_name: str, seed: int, operations: int) -> str:
        """One command that replays one run of this campaign alone."""
        swarm = " --swarm" if self.swarm and not SCENARIOS[scenario_name].swarm else ""
        return f"sim_runner --scenario {scenario_name} --seed {seed} --ops {operations}{swarm}"

    def outcome_repro(self, outcome: SeedOutcome) -> str:
        return self.seed_repro(outcome.scenario, outcome.seed, outcome.operations)

    def operations_text(self) -> str:
        """`2000`, or the common count with the exceptions: `2000 (massive 1000)`."""
        counts = {scenario.name: self.operations_for(scenario) for scenario in self.scenarios()}
        common = max(set(counts.values()), key=list(counts.values()).count)
        exceptions = ", ".join(f"{name} {count}" for name, count in counts.items() if count != common)
        return f"{common} ({exceptions})" if exceptions else str(common)

    def describe(self) -> str:
        """The first line of a run: seeds, scenarios, every derived option, and the repro command."""
        budget = f"{self.time_budget_seconds:g}s" if self.time_budget_seconds is not None else "none"
        return (
            f"sim_runner: scenarios={','.join(self.scenario_names)} {self.seeds_text().lstrip('-').replace(' ', '=')} "
            f"ops={self.operations_text()} jobs={self.jobs} shard={self.shard or 'none'} "
            f"swarm={'on' if self.swarm else 'off'} budget={budget} runs={self.runs_planned} "
            f"{f'cluster={self.cluster} ' if self.cluster is not None else ''}repro: {self.repro()}"
        )


def defining_faults_fired(result: SeedResult) -> dict[str, int]:
    """Each defining fault of the seed's scenario -> times it fired in the seed: the
    runner's own count when it keeps one, else taken from the fault counts (a name
    ending in "." covers every draw it prefixes, as `Scenario.defining_faults` says)."""
    scenario = SCENARIOS.get(result.scenario)
    if result.defining_faults or scenario is None:
        return dict(result.defining_faults)
    fired: dict[str, int] = {}
    for defining in scenario.defining_faults:
        fired[defining] = sum(
            count
            for name, (count, _, _) in result.faults.items()
            if name == defining or (defining.endswith(".") and name.startswith(defining))
        )
    return fired


def exercised_nothing(result: SeedResult) -> bool:
    """Whether the seed's scenario declares defining faults and the seed fired none of them."""
    scenario = SCENARIOS.get(result.scenario)
    if scenario is None or not scenario.defining_faults:
        return False
    return sum(defining_faults_fired(result).values()) == 0


def _add_counts(totals: dict[str, int], counts: dict[str, int]) -> None:
    for name, count in counts.items():
        totals[name] = totals.get(name, 0) + count


@dataclass
class ScenarioSummary:
    """One scenario's totals over the seeds that ran."""

    name: str
    seeds_run: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    crashes: int = 0
    recoveries: int = 0
    losses_reported: int = 0
    silent_tail_losses: int = 0
    marker_entry_losses: int = 0
    faults_fired: int = 0
    faults_fired_by_name: dict[str, int] = field(default_factory=dict)  # only faults that fired
    crashes_by_method: dict[str, int] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    seeds_exercising_nothing: int = 0  # seeds that fired none of the scenario's defining faults

    def add(self, outcome: SeedOutcome) -> None:
        self.seeds_run += 1
        self.passed += outcome.verdict == "passed"
        self.failed += outcome.verdict == "failed"
        self.errors += outcome.verdict == "error"
        result = outcome.result
        if result is not None:
            self.crashes += result.crashes
            self.recoveries += result.recoveries
            self.losses_reported += result.losses_reported
            self.silent_tail_losses += result.silent_tail_losses
            self.marker_entry_losses += result.marker_entry_losses
            self.faults_fired += sum(fired for fired, _, _ in result.faults.values())
            _add_counts(
                self.faults_fired_by_name, {name: fired for name, (fired, _, _) in result.faults.items() if fired}
            )
            _add_counts(self.crashes_by_method, result.crashes_by_method)
            _add_counts(self.marks, result.marks)
            self.seeds_exercising_nothing += exercised_nothing(result)


@dataclass(frozen=True)
class CampaignResult:
    campaign: Campaign
    outcomes: list[SeedOutcome]  # ordered by scenario (as chosen), then seed
    elapsed_seconds: float
    started_at_unix_seconds: float
    stopped_by: str = ""  # why runs were left unstarted: "" (none were), "time budget", "harness failure"
    planned: int | None = None  # runs planned, when not the campaign's own (a merge of several reports)
    merged_from: tuple[str, ...] = ()  # the report directories a merge read (empty for a run)

    @property
    def runs_planned(self) -> int:
        return self.planned if self.planned is not None else self.campaign.runs_planned

    def of(self, verdict: Verdict) -> list[SeedOutcome]:
        return [outcome for outcome in self.outcomes if outcome.verdict == verdict]

    @property
    def exit_code(self) -> int:
        if self.of("error"):
            return EXIT_HARNESS
        return EXIT_VIOLATION if self.of("failed") else EXIT_PASSED

    def summaries(self) -> list[ScenarioSummary]:
        totals = {name: ScenarioSummary(name) for name in self.campaign.scenario_names}
        for outcome in self.outcomes:
            totals[outcome.scenario].add(outcome)
        return list(totals.values())

    def exercising_nothing(self) -> list[SeedOutcome]:
        """The seeds that fired none of their scenario's defining faults."""
        return [
            outcome for outcome in self.outcomes if outcome.result is not None and exercised_nothing(outcome.result)
        ]

    def marks(self) -> dict[str, int]:
        """Hits per coverage mark over every seed."""
        totals: dict[str, int] = {}
        for outcome in self.outcomes:
            if outcome.result is not None:
                _add_counts(totals, outcome.result.marks)
        return totals


def run_task(task: SeedTask) -> SeedOutcome:
    """Run one seed (in a worker process, or inline); an exception is a harness failure."""
    started = time.perf_counter()
    try:
        result = run_seed(task.scenario, task.seed, task.operations, keep_timeline=task.keep_timeline)
    except Exception:
        result, harness_traceback = None, traceback.format_exc()
    else:
        harness_traceback = ""
    elapsed_seconds = time.perf_counter() - started
    return SeedOutcome(task.scenario.name, task.seed, task.operations, elapsed_seconds, result, harness_traceback)


def run_batch(tasks: tuple[SeedTask, ...]) -> list[SeedOutcome]:
    """Run several seeds in turn: one task of a cluster carries a few, so its cost is shared."""
    return [run_task(task) for task in tasks]


class InlineExecutor(Executor):
    """Runs each call in this process at `submit`: `--jobs 1`, and monkeypatched stores in tests."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as error:
            future.set_exception(error)
        return future


@dataclass(frozen=True)
class Workers:
    """Where the runs go: an executor, how many batches to keep in flight, seeds per batch."""

    executor: Executor
    in_flight_max: int
    batch_seeds: int = 1


def make_workers(campaign: Campaign) -> Workers:
    """This process, a process pool, or a Dask cluster; raises `UsageError` (no dask, no scheduler)."""
    if campaign.cluster is not None:
        from scenarios.cluster import connect  # dask is an optional extra: imported only when asked for

        return connect(campaign.cluster, campaign.runs_planned)
    if campaign.jobs == 1:
        return Workers(InlineExecutor(), 1)
    # spawn: workers start clean (no forked threads, the same on every platform).
    workers = min(campaign.jobs, campaign.runs_planned)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    return Workers(pool, campaign.jobs)


def run_campaign(
    campaign: Campaign,
    on_outcome: Callable[[SeedOutcome], None] = lambda outcome: None,
    clock: Callable[[], float] = time.monotonic,
) -> CampaignResult:
    """Run the campaign; `on_outcome` hears of each run as it ends (in completion order)."""
    started_at_unix_seconds = time.time()
    started = clock()
    deadline = None if campaign.time_budget_seconds is None else started + campaign.time_budget_seconds
    workers = make_workers(campaign)
    with workers.executor as executor:
        outcomes, stopped_by = _run_tasks(workers, campaign.tasks(), deadline, clock, on_outcome)
        order = {name: position for position, name in enumerate(campaign.scenario_names)}
        outcomes.sort(key=lambda outcome: (order[outcome.scenario], outcome.seed))
        outcomes = _with_failure_timelines(executor, campaign, outcomes)
    return CampaignResult(campaign, outcomes, clock() - started, started_at_unix_seconds, stopped_by)


def _next_batch(tasks: Iterator[SeedTask], size: int) -> tuple[SeedTask, ...]:
    return tuple(itertools.islice(tasks, size))


def _run_tasks(
    workers: Workers,
    tasks: Iterable[SeedTask],
    deadline: float | None,
    clock: Callable[[], float],
    on_outcome: Callable[[SeedOutcome], None],
) -> tuple[list[SeedOutcome], str]:
    """Keep `in_flight_max` batches going; start none after the deadline or a harness failure."""
    pending = iter(tasks)
    running: set[Future[list[SeedOutcome]]] = set()
    outcomes: list[SeedOutcome] = []
    stopped_by = ""
    while True:
        while not stopped_by and len(running) < workers.in_flight_max:
            if deadline is not None and clock() >= deadline:
                stopped_by = "time budget"
                break
            batch = _next_batch(pending, workers.batch_seeds)
            if not batch:
                break
            running.add(workers.executor.submit(run_batch, batch))
        if not running:
            break
        finished, running = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            for outcome in future.result():
                outcomes.append(outcome)
                on_outcome(outcome)
                if outcome.verdict == "error":
                    stopped_by = "harness failure"
    if stopped_by == "time budget" and next(pending, None) is None:
        stopped_by = ""  # the budget ran out exactly when the runs did: nothing was left out
    return outcomes, stopped_by


def _with_failure_timelines(executor: Executor, campaign: Campaign, outcomes: list[SeedOutcome]) -> list[SeedOutcome]:
    """Replay the first failing seeds with their timeline kept; check that they replay exactly."""
    to_replay = [
        position
        for position, outcome in enumerate(outcomes)
        if outcome.result is not None and not outcome.result.passed and not outcome.result.timeline
    ][:FAILURE_TIMELINES_MAX]
    scenarios = {scenario.name: scenario for scenario in campaign.scenarios()}
    replays: dict[int, Future[SeedOutcome]] = {}
    for position in to_replay:
        outcome = outcomes[position]
        task = SeedTask(scenarios[outcome.scenario], outcome.seed, outcome.operations, keep_timeline=True)
        replays[position] = executor.submit(run_task, task)
    replaced = list(outcomes)
    for position, future in replays.items():
        replaced[position] = _checked_replay(outcomes[position], future.result())
    return replaced


def _checked_replay(original: SeedOutcome, replay: SeedOutcome) -> SeedOutcome:
    if replay.result is None:
        return replay
    assert original.result is not None
    if replay.result.trace_hash == original.result.trace_hash:
        return replace(original, result=replay.result)
    message = (
        f"the seed does not replay: trace {original.result.trace_hash} on the first run, "
        f"{replay.result.trace_hash} on the replay (the run depends on something besides the seed)\n"
    )
    return replace(original, result=None, harness_traceback=message)
