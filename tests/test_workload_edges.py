"""Workloads at the edges (`WorkloadMix`'s edge fields and the `edges` scenario): each
edge is drawn, sits exactly at (or past) its documented bound, and the store accepts
it; a mix without the edges draws what it always drew."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

import kv
from io_backends.sim import SimIo
from kv.limits import (
    BATCH_INTERVAL_MS_MAX,
    BATCH_OPERATIONS_MAX,
    FRAME_PAYLOAD_SIZE_MAX_BYTES,
    FRAME_PAYLOAD_SIZE_TARGET_BYTES,
    KEY_SIZE_MAX_BYTES,
    VALUE_SIZE_MAX_BYTES,
)
from kv.record import RECORD_HEADER_SIZE
from scenarios.registry import SCENARIOS
from scenarios.runner import run_seed
from scenarios.workload import (
    EDGE_KEYS,
    PAUSE_US,
    WRITE_KINDS,
    Operation,
    Workload,
    WorkloadMix,
    pause_operation,
    pause_us,
    weighted,
)

EDGES = SCENARIOS["edges"].mix


def _operations(mix: WorkloadMix, count: int, seed: int = 1) -> list[Operation]:
    workload = Workload(mix, random.Random(seed))
    return [workload.next() for _ in range(count)]


def _payload_bytes(operation: Operation) -> int:
    return sum(RECORD_HEADER_SIZE + len(key) + len(value or b"") for key, value in operation[1].items())


def test_a_mix_with_its_edges_off_draws_what_the_plain_mix_draws() -> None:
    """Every edge field at its default draws nothing: the edges scenario's mix with the
    edges switched off gives the stream of a mix that never had them."""
    plain = WorkloadMix(weighted(pause=EDGES.weight("pause")), key_count=EDGES.key_count)
    off = replace(EDGES, edge_keys=False, empty_value_probability=0.0, maximal_value_probability=0.0)
    off = replace(off, target_frame_value_probability=0.0, full_frame_probability=0.0, many_keys_probability=0.0)
    off = replace(off, burst_probability=0.0, long_pause_probability=0.0)
    assert _operations(off, 3000) == _operations(plain, 3000)
    assert _operations(EDGES, 3000) != _operations(plain, 3000)


def test_a_burst_is_more_writes_than_a_batch_with_no_pause_between() -> None:
    mix = WorkloadMix(burst_probability=0.01, burst_extra_writes_max=5)
    operations = _operations(mix, 4000)
    longest = run = 0
    for kind, _changes, _arguments in operations:
        run = run + 1 if kind in WRITE_KINDS else 0
        longest = max(longest, run)
    assert longest > BATCH_OPERATIONS_MAX, longest


def test_a_long_pause_outlasts_the_batch_interval() -> None:
    operations = _operations(WorkloadMix(weighted(pause=0.1), long_pause_probability=0.05), 2000)
    lengths = [pause_us(operation) for operation in operations if operation[0] == "pause"]
    assert PAUSE_US in lengths
    assert all(length in (PAUSE_US,) or length > BATCH_INTERVAL_MS_MAX * 1000 for length in lengths)
    assert max(lengths) > BATCH_INTERVAL_MS_MAX * 1000
    assert pause_us(pause_operation(12_345)) == 12_345 and pause_us(Operation("pause", {})) == PAUSE_US


def test_values_at_the_edges_are_drawn() -> None:
    mix = WorkloadMix(empty_value_probability=0.1, maximal_value_probability=0.01, target_frame_value_probability=0.01)
    pairs = [(key, value) for _kind, changes, _ in _operations(mix, 1500) for key, value in changes.items()]
    sizes = {len(key) + len(value) for key, value in pairs if value is not None}
    values = [value for _key, value in pairs if value is not None]
    assert b"" in values and max(map(len, values)) == VALUE_SIZE_MAX_BYTES
    target = FRAME_PAYLOAD_SIZE_TARGET_BYTES - RECORD_HEADER_SIZE
    assert {target - 1, target, target + 1} & sizes


def test_colliding_keys_are_in_the_key_space() -> None:
    keys = {key for _kind, changes, _ in _operations(WorkloadMix(key_count=2, edge_keys=True), 2000) for key in changes}
    assert set(EDGE_KEYS) <= keys and b"" in keys
    assert max(map(len, keys)) == KEY_SIZE_MAX_BYTES


def test_a_full_frame_is_exactly_the_frame_limit_and_the_store_takes_it() -> None:
    workload = Workload(WorkloadMix(full_frame_probability=0.01), random.Random(1))
    operation = next(op for op in iter(workload.next, None) if b"frame-0" in op[1])  # drawn, not built, until one
    assert _payload_bytes(operation) == FRAME_PAYLOAD_SIZE_MAX_BYTES
    values = {key: value for key, value in operation[1].items() if value is not None}
    io = SimIo(seed=3)
    with kv.open("/store", io=io, durability="batch") as store:
        with pytest.raises(kv.BatchTooLarge):  # one more (empty) record does not fit
            store.set_many({**values, b"+": b""})
        store.set_many(values)
    with kv.open("/store", io=io) as store:
        assert store.get(b"frame-3") == operation[1][b"frame-3"]


def test_many_keys_in_one_set_many() -> None:
    mix = WorkloadMix(many_keys_probability=0.05, many_keys_max=4096)
    counts = [len(changes) for kind, changes, _ in _operations(mix, 2000) if kind == "set_many"]
    assert max(counts) > 1000


def test_the_edges_scenario_passes_with_crashes() -> None:
    """Three seeds without a full frame (a full frame costs seconds), in always, always
    and none mode (with this harness's draws)."""
    results = [run_seed(SCENARIOS["edges"], seed, 600) for seed in (1, 2, 5)]
    assert all(result.passed for result in results), [result.violation for result in results]
    assert sum(result.crashes for result in results) > 0
