"""The group commit (`kv.group_commit`) on the simulated disk, and the `server` scenario
that runs it under crashes: reproducible from its seed in any process, and replayable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import kv
from io_backends.sim import SimIo
from io_backends.sim.faults import FaultPlan, OperationErrors
from kv.group_commit import Deliver, GroupCommit
from kv.replies import OK, Bulk, ErrorReply, Integer, Reply
from kv.session import ServerConfig, Session
from kv.store import State
from scenarios.operations import Operation
from scenarios.oracle import Violation
from scenarios.registry import SCENARIOS
from scenarios.runner import record_seed, run_schedule, run_seed
from scenarios.schedule import Schedule
from scenarios.server import answer, encode_request, request

ROOT = Path(__file__).resolve().parent.parent
Delivered = list[tuple[int, list[Reply], bool]]


def _server(io: SimIo) -> tuple[kv.Store, GroupCommit, list[Session]]:
    store = kv.open("/store", io=io, durability="none")
    sessions = [Session(store, ServerConfig(), client_id) for client_id in range(1, 4)]
    return store, GroupCommit(store), sessions


def _collect(delivered: Delivered) -> Deliver:
    def deliver(session: Session, replies: Sequence[Reply], close: bool) -> None:
        delivered.append((session.client_id, list(replies), close))

    return deliver


def test_one_flush_for_every_waiting_session_then_every_reply() -> None:
    io = SimIo(seed=1)
    store, group, (writer, other_writer, reader) = _server(io)
    assert group.received(writer, writer.receive(encode_request([b"SET", b"a", b"1"]))) == "opened"
    assert group.received(other_writer, other_writer.receive(encode_request([b"SET", b"b", b"2"]))) == "wait"
    # a read while the window is open waits too: it may have seen a write not yet durable
    assert group.received(reader, reader.receive(encode_request([b"GET", b"a"]))) == "wait"
    delivered: Delivered = []
    group.commit(_collect(delivered))
    assert group.syncs == 1
    assert delivered == [(1, [OK], False), (2, [OK], False), (3, [Bulk(b"1")], False)]
    # nothing waits now: a read is answered at once
    assert group.received(reader, reader.receive(encode_request([b"GET", b"b"]))) == "now"
    assert reader.take_replies(durable=True) == [Bulk(b"2")]
    store.close()


def test_a_failed_flush_turns_every_reply_of_the_window_into_an_error() -> None:
    io = SimIo(seed=2)
    store, group, (writer, reader, _) = _server(io)
    group.received(writer, writer.receive(encode_request([b"SET", b"a", b"1"])))
    group.received(reader, reader.receive(encode_request([b"GET", b"a"])))
    io.faults.plan = FaultPlan(operation_errors=OperationErrors(sync_probability=1.0))
    delivered: Delivered = []
    group.commit(_collect(delivered))
    assert group.failure is not None and group.syncs == 0
    assert store.state is State.READ_ONLY
    assert [len(replies) for _, replies, _ in delivered] == [1, 1]
    assert all(isinstance(reply, ErrorReply) and reply.prefix == "IOERR" for _, rs, _ in delivered for reply in rs)
    io.faults_off()
    store.close()


def test_requests_and_answers_of_the_operation_kinds() -> None:
    push = Operation("rpush", {b"queue0": b"7"}, (2,))
    assert request(push) == [b"RPUSH", b"queue0", b"7.0", b"7.1"]
    assert request(Operation("set_many", {b"a": b"1", b"b": b"2"})) == [b"MSET", b"a", b"1", b"b", b"2"]
    assert request(Operation("incr", {b"n": None}, (-3,))) == [b"INCRBY", b"n", b"-3"]
    assert request(Operation("compact", {})) is None
    assert answer(push, Integer(2)) == 2
    assert answer(Operation("get", {b"a": None}), Bulk(None)) is None
    with pytest.raises(Violation, match="WRONGTYPE"):
        answer(Operation("get", {b"a": None}), ErrorReply("WRONGTYPE", "wrong kind"))


def test_the_server_scenario_replays_and_repeats_its_trace() -> None:
    scenario = SCENARIOS["server"]
    result, schedule = record_seed(scenario, 4, 400)
    assert result.passed, result.violation
    replayed = run_schedule(Schedule.loads(schedule.dumps()))
    assert (replayed.passed, replayed.trace_hash) == (True, result.trace_hash)
    assert run_seed(scenario, 5, 400).trace_hash != result.trace_hash


def test_the_server_scenario_hashes_the_same_under_any_hash_seed() -> None:
    code = (
        "from scenarios.registry import SCENARIOS; from scenarios.runner import run_seed; "
        "print(run_seed(SCENARIOS['server'], 11, 400).trace_hash)"
    )
    hashes = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=ROOT,
            check=True,
        ).stdout.strip()
        for hash_seed in ("1", "987654")
    ]
    assert hashes[0] == hashes[1] == run_seed(SCENARIOS["server"], 11, 400).trace_hash
