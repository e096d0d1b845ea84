"""The named scenarios: each is data (a workload mix and a fault plan), listed here once."""

from __future__ import annotations

from dataclasses import dataclass, field

from kv.store import Durability
from scenarios.workload import WorkloadMix


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    mix: WorkloadMix = field(default_factory=WorkloadMix)
    durability: Durability = "always"
    operations: int = 2000
    crash_probability: float = 0.0  # per operation: plan a crash within the next few I/Os
    crash_during_recovery_probability: float = 0.0
    segment_size_target_bytes: int = 16 * 1024


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("perfect", "no faults: every operation checked against the model, then a clean reopen"),
        Scenario(
            "crash",
            "power loss at random points (mid-batch, mid-compaction, during recovery); "
            "only unacknowledged work is lost",
            crash_probability=0.01,
            crash_during_recovery_probability=0.3,
        ),
    )
}
