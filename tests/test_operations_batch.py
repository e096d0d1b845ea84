"""The `batch` and `incr` operation kinds: their model agrees with the store (answers
and state, in order, at one clock), and the `conditional` scenario draws both."""

from __future__ import annotations

import random

import kv
from io_backends.sim import SimIo
from scenarios.operations import (
    KINDS,
    NOT_AN_INTEGER,
    BatchWrite,
    Expiring,
    Model,
    batch_effect,
    batch_operation,
    expiry_of,
    visible,
)
from scenarios.registry import SCENARIOS
from scenarios.runner import run_seed
from scenarios.workload import Workload, WorkloadMix, apply, read_state, run_operation, weighted


def test_a_batch_model_applies_its_writes_in_order() -> None:
    writes = [
        BatchWrite(b"delete", b"k"),
        BatchWrite(b"set", b"k", b"new"),
        BatchWrite(b"expire", b"k", b"", 5),
        BatchWrite(b"expire", b"j", b"", 0),
        BatchWrite(b"expire", b"j", b"", 9),
    ]
    after, answers = batch_effect({b"k": b"old", b"j": b"w"}, writes, 100)
    assert answers == [True, True, True, True, False]
    assert after == {b"k": b"new"} and expiry_of(after[b"k"]) == 105
    operation = batch_operation(writes)
    assert operation.changes == {b"k": b"new", b"j": None}
    assert KINDS["batch"].writes_now({}, set(), operation) is True
    nothing = batch_operation([BatchWrite(b"delete", b"x"), BatchWrite(b"expire", b"y", b"", 3)])
    assert KINDS["batch"].writes_now({}, set(), nothing) is False
    assert KINDS["batch"].writes_now({}, {b"x"}, nothing) is None


def test_the_models_of_batch_and_incr_agree_with_the_store() -> None:
    mix = WorkloadMix(weighted(batch=0.3, incr=0.2, set_ttl=0.05, expire=0.05, pause=0.05), key_count=6)
    for seed in range(20):
        io = SimIo(seed=seed)
        workload = Workload(mix, random.Random(seed))
        model: Model = {}
        with kv.open("/db", io=io) as store:
            for _ in range(150):
                operation = workload.next()
                kind = KINDS[operation.kind]
                if kind.idles:
                    io.pause(1000)
                    continue
                now_ms = io.clock_us // 1000
                model = visible(model, now_ms)
                answer = run_operation(store, operation)
                if operation.kind in ("batch", "incr"):
                    recorder = _Recorder(model, now_ms)
                    kind.check(recorder, operation, answer)  # type: ignore[arg-type]
                model = apply(model, operation, now_ms)
                assert read_state(store) == visible(model, io.clock_us // 1000), (seed, operation)


class _Recorder:
    """A `Checker` that asserts each answer against the model it was given."""

    def __init__(self, model: Model, now_ms: int) -> None:
        self.model, self.now_ms = model, now_ms

    def check_answer(self, operation: object, answer: object, expected: object) -> None:
        assert callable(expected)
        assert answer == expected(self.model), (operation, answer)


def test_incr_refuses_a_value_that_is_not_an_integer_and_keeps_an_expiry() -> None:
    kind = KINDS["incr"]
    io = SimIo(seed=1)
    with kv.open("/db", io=io) as store:
        store.set(b"text", b"abc")
        store.set(b"n", b"41", ttl=10)
        expiry_ms = store.pexpiretime(b"n")
        refused = run_operation(store, kind.from_json({"op": "incr", "changes": [["text", None]], "arguments": [1]}))
        assert refused == NOT_AN_INTEGER
        added = run_operation(store, kind.from_json({"op": "incr", "changes": [["n", None]], "arguments": [-2]}))
        assert added == 39 and store.pexpiretime(b"n") == expiry_ms
    model: Model = {b"n": Expiring(b"41", 10_000)}
    after = apply(model, kind.from_json({"op": "incr", "changes": [["n", None]], "arguments": [-2]}))
    assert after == {b"n": b"39"} and expiry_of(after[b"n"]) == 10_000


def test_the_conditional_scenario_draws_batches_and_incrs() -> None:
    result = run_seed(SCENARIOS["conditional"], 3, 600, keep_timeline=True)
    assert result.passed, result.violation
    assert any(" batch [" in line for line in result.timeline)
    assert any(" incr " in line for line in result.timeline)
