"""The operation registry: every kind round-trips, validates and draws; and a kind added
in one place (here, in a test) runs through the workload, the harness, the replay file
and the shrinker with nothing else changed."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given

from kv.store import Store
from scenarios import operations
from scenarios.operations import KINDS, Checker, Drawing, KindError, Operation, OperationKind
from scenarios.registry import SCENARIOS
from scenarios.runner import record_seed, run_schedule
from scenarios.schedule import Schedule, ScheduleError
from scenarios.shrink import shrink
from scenarios.strategies import operations as operation_strategy
from scenarios.workload import Workload, WorkloadMix, weighted


@given(operation_strategy())
def test_every_drawn_operation_round_trips_through_its_replay_form(operation: Operation) -> None:
    kind = KINDS[operation.kind]
    encoded = json.loads(json.dumps(kind.to_json(operation)))
    assert kind.from_json(encoded) == operation


def test_every_kind_a_workload_draws_is_valid_and_round_trips() -> None:
    mix = WorkloadMix(weighted(**dict.fromkeys(KINDS, 1.0)))
    workload = Workload(mix, random.Random(3))
    drawn = [workload.next() for _ in range(2000)]
    assert {operation.kind for operation in drawn} == set(KINDS)
    for operation in drawn:
        kind = KINDS[operation.kind]
        kind.validate(operation)
        assert kind.from_json(json.loads(json.dumps(kind.to_json(operation)))) == operation


@pytest.mark.parametrize(
    ("encoded", "complaint"),
    [
        ({"op": "set", "changes": []}, "takes 1..1 keys"),
        ({"op": "set", "changes": [["k", None]]}, "need values"),
        ({"op": "delete", "changes": [["k", "v"]]}, "take no values"),
        ({"op": "get", "changes": [["k", None]], "arguments": [1]}, "takes no arguments"),
        ({"op": "pause", "changes": [], "arguments": [-5]}, "positive length"),
        ({"op": "pause", "changes": [], "arguments": [True]}, "a number or a string"),
        ({"op": "flush", "changes": [[1, None]]}, "expected a string"),
    ],
)
def test_a_bad_operation_in_a_replay_file_is_a_typed_error(encoded: dict[str, object], complaint: str) -> None:
    with pytest.raises(KindError, match=complaint):
        KINDS[str(encoded["op"])].from_json(encoded)
    document = {"format": 3, "scenario": "perfect", "seed": 0, "sim_seed": 0, "faults": {}, "steps": [encoded]}
    with pytest.raises(ScheduleError, match=complaint):
        Schedule.from_json(document)


def test_an_unknown_kind_is_refused_everywhere() -> None:
    with pytest.raises(ValueError, match="unknown operation kinds"):
        WorkloadMix(weighted(frobnicate=1.0))
    with pytest.raises(KindError, match="unknown operation 'frobnicate'"):
        operations.kind_of(Operation("frobnicate", {}))
    document = {"format": 3, "scenario": "perfect", "seed": 0, "sim_seed": 0, "faults": {}, "steps": [{"op": "x"}]}
    with pytest.raises(ScheduleError, match="unknown operation 'x'"):
        Schedule.from_json(document)


def test_a_format_2_pause_reads_as_an_argument() -> None:
    steps = [{"op": "pause", "changes": [["us=12345", None]]}, {"op": "pause", "changes": []}]
    document = {"format": 2, "scenario": "perfect", "seed": 0, "sim_seed": 0, "faults": {}, "steps": steps}
    schedule = Schedule.from_json(document)
    assert [step.operation for step in schedule.steps] == [Operation("pause", {}, (12345,)), Operation("pause", {})]


# -- a kind added in one place -----------------------------------------------------------


class ExistsKind(OperationKind):
    """`exists(key)`, checked against the model: defined here and nowhere else."""

    name = "exists"
    key_count = (1, 1)

    def draw(self, drawing: Drawing) -> Operation:
        return Operation(self.name, {drawing.key(): None})

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        return store.exists(key)

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        checked.append((key, result))


class LyingExistsKind(ExistsKind):
    """The same, except that the harness is told the answer was a read of nothing."""

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        checker.check_read(key, None if result else b"never written")


checked: list[tuple[bytes, object]] = []


@pytest.fixture
def registered() -> Iterator[None]:
    KINDS["exists"] = ExistsKind()
    checked.clear()
    try:
        yield
    finally:
        del KINDS["exists"]


def _schedule_with_exists(seed: int) -> Schedule:
    scenario = replace(SCENARIOS["crash"], mix=WorkloadMix(weighted(exists=0.2, pause=0.05)))
    result, schedule = record_seed(scenario, seed, operations=150)
    assert result.passed, result.violation
    return schedule


def test_a_kind_defined_once_runs_records_replays_and_shrinks(registered: None) -> None:
    schedule = _schedule_with_exists(5)
    assert any(step.operation.kind == "exists" for step in schedule.steps)
    assert run_schedule(schedule).passed
    assert checked and all(isinstance(answer, bool) for _key, answer in checked)
    replayed = Schedule.loads(schedule.dumps())
    assert replayed == schedule
    # A kind whose check fails is shrunk by the same machinery, down to a few steps.
    KINDS["exists"] = LyingExistsKind()
    failed = run_schedule(replayed)
    assert not failed.passed and "get(" in failed.violation
    shrunk = shrink(replayed, budget_seconds=20)
    assert len(shrunk.schedule.steps) <= 3, shrunk.schedule.steps
    assert shrunk.schedule.steps[-1].operation.kind == "exists"
