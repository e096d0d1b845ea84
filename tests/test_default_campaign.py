"""The default campaign (`sim_runner` with no options: every scenario, seeds 0..19, each
scenario's own operation count) does its job, run once for the whole module:

- every seed passes on the real store;
- crashes land inside every public method of the store (and in recovery's repair);
- every seed fires at least one of its scenario's defining faults (none exercises
  nothing), and nearly every seed fires all of them;
- every coverage mark of `kv.marks` is reached, but for the known gaps listed here.
"""

from __future__ import annotations

from collections import Counter

import pytest

from kv.marks import MARKS
from scenarios.registry import SCENARIOS
from scenarios.runner import SeedResult, run_seed

SEEDS = range(20)
METHODS = ("open", "set", "set_many", "delete", "flush", "compact", "verify", "close", "repair")
# Seeds that may miss one of their defining faults (not all): size_before_data needs a
# surviving write that extends a file, which preallocated segments rarely make.
MISSED_DEFINING_FAULTS_MAX = 5
# Marks the default campaign does not reach, and why (see the report of issue 10):
# each needs a workload edge or a fault the campaign does not have yet.
KNOWN_UNREACHED = {
    # damage spanning two or more frames at the log's end: tail corruption flips one bit
    # in the last 64 bytes (one frame); two independent faults at the tail are needed.
    "damage_spanning_frames",
    # a whole valid frame at the log's end in the wrong place with nothing valid after it:
    # a misdirected write (p = 0.0005 per write) shifted forward lands past zeros and
    # reads as mid-log damage; backwards it is followed by the frames it overwrote.
    "damage_misplaced_frame",
    # a sealed segment with a damaged tail that held no records: rolling cuts and syncs
    # the sealed segment, so only a write landing past a sealed segment's end makes one.
    "sealed_tail_torn",
}


@pytest.fixture(scope="module")
def campaign() -> list[SeedResult]:
    return [run_seed(scenario, seed) for scenario in SCENARIOS.values() for seed in SEEDS]


def test_every_seed_passes(campaign: list[SeedResult]) -> None:
    failures = [f"{r.scenario} seed {r.seed}: {r.violation}" for r in campaign if not r.passed]
    assert not failures, failures[:3]


def test_crashes_land_in_every_public_method(campaign: list[SeedResult]) -> None:
    landed: Counter[str] = Counter()
    for result in campaign:
        landed.update(result.crashes_by_method)
    assert not [method for method in METHODS if not landed[method]], dict(landed)


def test_every_seed_exercises_its_scenario(campaign: list[SeedResult]) -> None:
    idle = [f"{r.scenario} {r.seed}" for r in campaign if r.defining_faults and not any(r.defining_faults.values())]
    assert not idle, idle
    partial = [
        f"{r.scenario} {r.seed}: {[name for name, fired in r.defining_faults.items() if not fired]}"
        for r in campaign
        if not all(r.defining_faults.values())
    ]
    assert len(partial) <= MISSED_DEFINING_FAULTS_MAX, partial


def test_the_default_campaign_reaches_every_mark(campaign: list[SeedResult]) -> None:
    """A mark outside KNOWN_UNREACHED left unreached is a regression. (A known gap may be
    reached by some campaigns: recovery crashes land anywhere in an open, and one in the
    first open can leave segments without a CLEAN marker.)"""
    hits: Counter[str] = Counter()
    for result in campaign:
        hits.update(result.marks)
    unreached = {name for name in MARKS if not hits[name]}
    assert unreached <= KNOWN_UNREACHED, f"unreached {sorted(unreached - KNOWN_UNREACHED)}"
    assert set(MARKS) >= KNOWN_UNREACHED, "a known gap names no mark"
