"""The oracle with expiry: the model is read at the store's clock, recoveries are judged
at the moment the keys were listed, expiries included, and the one boundary tolerance
(a key that expired while the values were read) is exact."""

from __future__ import annotations

import pickle

import pytest

from io_backends.sim import SimIo
from kv.recovery import RecoveryReport
from scenarios.operations import Expiring, Operation, expiry_of, ttl_answers, visible
from scenarios.oracle import Oracle, Recovered, Violation
from scenarios.runner import Harness
from scenarios.workload import apply


def test_expiring_values_compare_as_bytes_and_keep_their_expiry() -> None:
    value = Expiring(b"v", 10)
    assert value == b"v" and hash(value) == hash(b"v") and expiry_of(value) == 10 and expiry_of(b"v") == 0
    again = pickle.loads(pickle.dumps(value))
    assert type(again) is Expiring and again.expiry_ms == 10 and again == b"v"
    assert expiry_of(bytes(value)) == 0
    model = {b"a": value, b"b": b"w"}
    assert visible(model, 10) is model  # alive through its expiry millisecond (Redis)
    assert visible(model, 11) == {b"b": b"w"}


def test_ttl_kinds_apply_at_the_operation_start() -> None:
    model = apply({}, Operation("set_ttl", {b"k": b"v"}, (50,)), now_ms=1_000)
    assert expiry_of(model[b"k"]) == 1_050
    assert ttl_answers(model, b"k", 1_020) == (30, 0, 1_050)
    assert ttl_answers(model, b"k", 1_000) == (50, 0, 1_050)
    assert ttl_answers(model, b"missing", 0) == (-2, -2, -2)
    model = apply(model, Operation("expire", {b"k": None}, (2_000,)), now_ms=1_010)
    assert expiry_of(model[b"k"]) == 3_010
    persisted = apply(model, Operation("persist", {b"k": None}), now_ms=1_020)
    assert expiry_of(persisted[b"k"]) == 0 and ttl_answers(persisted, b"k", 5) == (-1, -1, -1)
    assert apply(model, Operation("expire", {b"k": None}, (0,)), now_ms=1_020) == {}
    assert apply({}, Operation("expire", {b"k": None}, (10,)), now_ms=0) == {}


def _recovered(state: dict[bytes, bytes], at_us: int, expired_while_read: dict[bytes, int] | None = None) -> Recovered:
    return Recovered(RecoveryReport(), state, (), None, "/store", 0, frozenset(), at_us, expired_while_read or {})


def _oracle() -> Oracle:
    oracle = Oracle()
    oracle.at(0)
    for operation in (Operation("set_ttl", {b"k": b"v"}, (5,)), Operation("set", {b"p": b"w"})):
        oracle.starting(operation)
        oracle.acknowledged(operation, 0)  # b"k" expires after 5 ms
    return oracle


def test_a_recovery_is_judged_at_the_listing_moment_expiries_included() -> None:
    _oracle().check_recovered(_recovered({b"k": Expiring(b"v", 5), b"p": b"w"}, 5_999), None)
    _oracle().check_recovered(_recovered({b"p": b"w"}, 6_000), None)  # expired by then
    with pytest.raises(Violation, match="unexpected b'k'"):  # an expired key came back
        _oracle().check_recovered(_recovered({b"k": Expiring(b"v", 5), b"p": b"w"}, 6_000), None)
    with pytest.raises(Violation, match="changed b'k'"):  # the expiry was lost
        _oracle().check_recovered(_recovered({b"k": b"v", b"p": b"w"}, 1_000), None)
    with pytest.raises(Violation, match="missing b'k'"):  # gone before its time
        _oracle().check_recovered(_recovered({b"p": b"w"}, 4_000), None)


def test_a_key_that_expired_while_the_values_were_read_counts_with_its_listed_expiry() -> None:
    _oracle().check_recovered(_recovered({b"p": b"w"}, 5_500, {b"k": 5}), None)
    with pytest.raises(Violation):  # listed with another expiry than the model's
        _oracle().check_recovered(_recovered({b"p": b"w"}, 5_500, {b"k": 4}), None)
    with pytest.raises(Violation):  # listed, but the model had no such key
        _oracle().check_recovered(_recovered({b"p": b"w"}, 5_500, {b"k": 5, b"x": 5}), None)


def test_reads_see_the_model_pruned_at_the_operation_start() -> None:
    oracle = _oracle()
    oracle.at(5_999)
    oracle.check_read(b"k", b"v")
    oracle.at(6_000)
    oracle.check_read(b"k", None)
    with pytest.raises(Violation):
        oracle.check_read(b"k", b"v")


def test_the_harness_reads_a_ttl_against_the_model() -> None:
    harness = Harness("test", SimIo(seed=3))
    harness.start()
    harness.do(Operation("set_ttl", {b"k": b"v"}, (30,)))
    harness.do(Operation("ttl", {b"k": None}))
    harness.do(Operation("expire", {b"k": None}, (1,)))
    harness.do(Operation("clock_jump", {}, (2_000,)))
    harness.do(Operation("get", {b"k": None}))
    harness.do(Operation("persist", {b"k": None}))
    harness.finish()
    assert harness.result.passed, harness.result.violation
