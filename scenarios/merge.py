"""`sim_runner --merge DIR...`: several report directories (shards, cluster runs, runs of
other seed ranges) read back from their `results.json` into one `CampaignResult`, which
`scenarios.reports` writes as any other run's artifacts.

Two directories may hold the same (scenario, seed) run only with the same result (its
verdict, trace hash and operation count): the same code gives the same trace, so a
disagreement means the runs came from different code or different options, and the
merge is refused (`UsageError`) rather than picking one. Runs of swarm and non-swarm
campaigns are not merged either: their `repro:` lines would need different options.

What a merge cannot give back: timelines that were not kept (only failing seeds'
are in `results.json`), and one wall time (the merged `elapsed_seconds` is the longest
of the inputs', as shards run side by side).
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scenarios.campaign import Campaign, CampaignResult, SeedOutcome, Shard, UsageError
from scenarios.reports import RESULTS_FILE, RESULTS_FORMAT
from scenarios.runner import SeedResult


@dataclass
class Loaded:
    """One input directory: its document and the campaign it describes."""

    directory: Path
    document: dict[str, Any]
    campaign: Campaign
    outcomes: list[SeedOutcome] = field(default_factory=list)


def read_results(directory: Path) -> Loaded:
    """The `results.json` of `directory`, checked; raises `UsageError`."""
    path = directory / RESULTS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"--merge: cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise UsageError(f"--merge: {path} is not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("format") != RESULTS_FORMAT:
        raise UsageError(f"--merge: {path} is not a campaign's results.json (format {RESULTS_FORMAT})")
    try:
        plan = document["campaign"]
        campaign = Campaign(
            scenario_names=tuple(plan["scenarios"]),
            seeds=range(plan["seed_first"], plan["seed_last"] + 1),
            operations=plan["operations"],
            shard=Shard.parse(plan["shard"]) if plan["shard"] else None,
            swarm=plan["swarm"],
        )
        outcomes = [seed_outcome(entry) for entry in document["seeds"]]
    except (KeyError, TypeError, ValueError) as error:
        raise UsageError(f"--merge: {path} lacks a field or has a bad one ({error!r})") from None
    except UsageError as error:
        raise UsageError(f"--merge: {path}: {error}") from None
    return Loaded(directory, document, campaign, outcomes)


def seed_outcome(entry: dict[str, Any]) -> SeedOutcome:
    """One entry of `seeds` back as the outcome it was written from (timeline: failing seeds only)."""
    scenario, seed, operations = entry["scenario"], entry["seed"], entry["operations"]
    elapsed = float(entry["elapsed_seconds"])
    if entry["verdict"] == "error":
        return SeedOutcome(scenario, seed, operations, elapsed, None, entry.get("harness_traceback", ""))
    result = SeedResult(
        scenario,
        seed,
        operations,
        durability=entry["durability"],
        passed=entry["verdict"] == "passed",
        violation=entry["violation"],
        crashes=entry["crashes"],
        recoveries=entry["recoveries"],
        errors_typed=entry["errors_typed"],
        losses_reported=entry["losses_reported"],
        silent_tail_losses=entry["silent_tail_losses"],
        marker_entry_losses=entry.get("marker_entry_losses", 0),
        trace_hash=entry["trace_hash"],
        faults={
            name: (count["fired"], count["opportunities"], count["configured_probability"])
            for name, count in entry["faults"].items()
        },
        timeline=list(entry.get("timeline", [])),
        crashes_by_method=dict(entry.get("crashes_by_method", {})),
        marks=dict(entry.get("marks", {})),
        defining_faults=dict(entry.get("defining_faults", {})),
    )
    return SeedOutcome(scenario, seed, operations, elapsed, result)


def _fingerprint(outcome: SeedOutcome) -> tuple[Any, ...]:
    trace_hash = outcome.result.trace_hash if outcome.result is not None else None
    return outcome.verdict, trace_hash, outcome.operations


def merge(directories: list[Path]) -> CampaignResult:
    """One result from the `results.json` of every directory; raises `UsageError`."""
    inputs = [read_results(directory) for directory in directories]
    if len({loaded.campaign.swarm for loaded in inputs}) > 1:
        raise UsageError("--merge: cannot merge swarm and non-swarm runs (their repro lines differ)")
    runs: dict[tuple[str, int], tuple[SeedOutcome, Path]] = {}
    for loaded in inputs:
        for outcome in loaded.outcomes:
            key = (outcome.scenario, outcome.seed)
            if key not in runs:
                runs[key] = (outcome, loaded.directory)
            elif _fingerprint(runs[key][0]) != _fingerprint(outcome):
                raise UsageError(
                    f"--merge: {runs[key][1]} and {loaded.directory} disagree on {key[0]} seed {key[1]} "
                    f"(verdict, trace, operations: {_fingerprint(runs[key][0])} vs {_fingerprint(outcome)}); "
                    "they come from different code or different campaigns"
                )
    campaign = merged_campaign(inputs)
    order = {name: position for position, name in enumerate(campaign.scenario_names)}
    outcomes = sorted((outcome for outcome, _ in runs.values()), key=lambda item: (order[item.scenario], item.seed))
    planned = {(task.scenario.name, task.seed) for loaded in inputs for task in loaded.campaign.tasks()}
    stopped_by = ", ".join(
        reason for reason in dict.fromkeys(loaded.document.get("stopped_by") for loaded in inputs) if reason
    )
    return CampaignResult(
        campaign,
        outcomes,
        elapsed_seconds=max(float(loaded.document.get("elapsed_seconds", 0.0)) for loaded in inputs),
        started_at_unix_seconds=min(_started_at(loaded) for loaded in inputs),
        stopped_by=stopped_by,
        planned=len(planned | set(runs)),
        merged_from=tuple(str(loaded.directory) for loaded in inputs),
    )


def merged_campaign(inputs: list[Loaded]) -> Campaign:
    """The campaign that covers every input: their scenarios, seeds from the lowest to the highest."""
    names = tuple(dict.fromkeys(name for loaded in inputs for name in loaded.campaign.scenario_names))
    first = min(loaded.campaign.seeds.start for loaded in inputs)
    last = max(loaded.campaign.seeds.stop for loaded in inputs)
    operations = {loaded.campaign.operations for loaded in inputs}
    return Campaign(
        scenario_names=names,
        seeds=range(first, last),
        operations=operations.pop() if len(operations) == 1 else None,
        swarm=inputs[0].campaign.swarm,
    )


def _started_at(loaded: Loaded) -> float:
    text = loaded.document.get("started_at")
    try:
        return datetime.datetime.fromisoformat(text).timestamp() if isinstance(text, str) else 0.0
    except ValueError:
        return 0.0
