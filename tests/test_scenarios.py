"""Every named scenario passes a CI-sized set of seeds, reproducibly, and each one
actually exercises what it names (its faults fire, its crashes happen)."""

from __future__ import annotations

import pytest

from scenarios.registry import SCENARIOS
from scenarios.runner import run_seed

CI_SEEDS = range(5)
CI_OPERATIONS = 600


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_passes_ci_seeds(name: str) -> None:
    scenario = SCENARIOS[name]
    results = [run_seed(scenario, seed, CI_OPERATIONS) for seed in CI_SEEDS]
    failures = [f"seed {result.seed}: {result.violation}" for result in results if not result.passed]
    assert not failures, failures
    fired = {fault for result in results for fault, (count, _, _) in result.faults.items() if count}
    if scenario.crash_probability:
        assert sum(result.crashes for result in results) > 0, "no crash happened"
    enabled = scenario.faults.enabled()
    if enabled and not scenario.swarm:
        assert fired, f"none of {enabled} fired"


def test_the_scenarios_are_registered() -> None:
    assert list(SCENARIOS) == [
        "perfect",
        "crash",
        "conditional",
        "expiry",
        "queue",
        "server",
        "corruption",
        "salvage",
        "completion_corruption",
        "massive",
        "bulk",
        "random",
        "truncation",
        "comprehensive",
        "filesystem",
        "fsyncgate",
        "swarm",
        "edges",
    ]


def test_which_scenarios_draw_a_durability_mode() -> None:
    """The media scenarios other than swarm stay in `always`: a frame holds one operation
    there, so the oracle tells a torn last frame from relabelled mid-log damage."""
    several = {name for name, scenario in SCENARIOS.items() if scenario.durabilities != ("always",)}
    assert several == {
        "crash",
        "conditional",
        "expiry",
        "queue",
        "server",
        "bulk",
        "truncation",
        "filesystem",
        "fsyncgate",
        "swarm",
        "edges",
    }
    for name in several - {"swarm"}:
        assert not SCENARIOS[name].faults.damages_data(), name
    for name in several - {"server"}:
        assert set(SCENARIOS[name].durabilities) == {"always", "batch", "none"}
    # `kv serve` runs the store buffered and syncs each window itself (its group commit)
    assert SCENARIOS["server"].durabilities == ("none",)


def test_a_seed_draws_its_durability_mode() -> None:
    modes = {run_seed(SCENARIOS["crash"], seed, 20).durability for seed in range(12)}
    assert modes == {"always", "batch", "none"}
    assert {run_seed(SCENARIOS["corruption"], seed, 20).durability for seed in range(4)} == {"always"}


def test_same_seed_same_trace() -> None:
    first = run_seed(SCENARIOS["comprehensive"], 7, CI_OPERATIONS)
    second = run_seed(SCENARIOS["comprehensive"], 7, CI_OPERATIONS)
    assert first.trace_hash == second.trace_hash
    assert first.trace_hash != run_seed(SCENARIOS["comprehensive"], 8, CI_OPERATIONS).trace_hash
