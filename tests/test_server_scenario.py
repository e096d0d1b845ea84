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
from kv.limits import FRAME_PAYLOAD_SIZE_TARGET_BYTES
from kv.record import RECORD_HEADER_SIZE
from kv.replies import OK, Array, Bulk, ErrorReply, Integer, Reply
from kv.session import ServerConfig, Session
from kv.store import State
from kv.transaction import EXEC_ABORT, QUEUED
from scenarios.operations import Operation
from scenarios.oracle import Violation
from scenarios.registry import SCENARIOS
from scenarios.runner import record_seed, run_schedule, run_seed
from scenarios.schedule import Schedule
from scenarios.server import (
    USERS,
    answer,
    answer_all,
    app_refuses,
    encode_request,
    exec_requests,
    refusal,
    request,
)

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


def _app_session(store: kv.Store) -> Session:
    session = Session(store, ServerConfig(acl=USERS), 1)
    session.receive(encode_request([b"AUTH", b"app", b"app-secret"]))
    assert session.take_replies(durable=True) == [OK]
    return session


def test_the_scenarios_restated_rights_agree_with_the_acl() -> None:
    """`app_refuses` (the check's model) and `kv.acl` (the server's) refuse the same
    requests: a key outside the patterns anywhere in an MSET, INCRBY, nothing else."""
    io = SimIo(seed=3)
    store = kv.open("/store", io=io, durability="none")
    session = _app_session(store)
    operations = [
        Operation("set", {b"key0049": b"v"}),
        Operation("set", {b"key0050": b"v"}),
        Operation("set_many", {b"key0001": b"v", b"key0063": b"w"}),
        Operation("get", {b"key0063": None}),
        Operation("incr", {b"key0001": None}, (1,)),
        Operation("rpush", {b"queue1": b"7"}, (1,)),
    ]
    for operation in operations:
        argv = request(operation)
        assert argv is not None
        session.receive(encode_request(argv))
        [reply] = session.take_replies(durable=True)
        assert refusal([reply]) == app_refuses(operation, [argv]), (operation, reply)
    assert [store.get(key) for key in (b"key0049", b"key0050", b"key0001", b"key0063")] == [b"v", None, None, None]
    store.close()


def test_a_transaction_that_queued_a_refused_set_is_aborted_and_writes_nothing() -> None:
    io = SimIo(seed=4)
    store = kv.open("/store", io=io, durability="none")
    session = _app_session(store)
    commands = exec_requests(Operation("set_many", {b"key0002": b"a", b"key0060": b"b"}))
    assert commands == [[b"MULTI"], [b"SET", b"key0002", b"a"], [b"SET", b"key0060", b"b"], [b"EXEC"]]
    session.receive(b"".join(encode_request(argv) for argv in commands))
    replies = session.take_replies(durable=True)
    assert replies[:2] == [OK, QUEUED] and replies[-1] == EXEC_ABORT
    assert refusal(replies)
    assert store.get(b"key0002") is None
    store.close()


def test_a_transactions_replies_decode_into_the_set_manys_answer() -> None:
    operation = Operation("set_many", {b"a": b"1", b"b": b"2"})
    assert answer_all(operation, [OK, QUEUED, QUEUED, Array((OK, OK))]) is None
    with pytest.raises(Violation, match="before EXEC"):
        answer_all(operation, [OK, OK, QUEUED, Array((OK, OK))])
    with pytest.raises(Violation, match="EXECABORT"):
        answer_all(operation, [OK, QUEUED, QUEUED, EXEC_ABORT])


def test_the_server_scenario_refuses_requests_and_sends_transactions() -> None:
    """The checks are not idle: a seed refuses requests of the restricted client and
    delivers transactions' replies."""
    result = run_seed(SCENARIOS["server"], 0, 600, keep_timeline=True)
    assert result.passed, result.violation
    refused = [line for line in result.timeline if " refused: " in line]
    assert len(refused) >= 10, refused
    assert any(" refused: set_many" in line for line in refused)
    assert sum(" SETs, EXEC" in line for line in result.timeline) >= 5


def test_an_exec_after_a_nearly_full_buffer_stays_in_one_frame() -> None:
    """When the window's writes before it bring the buffered store to the edge of
    FRAME_PAYLOAD_SIZE_TARGET_BYTES, an EXEC's first SET would reach the target: the
    store used to commit and sync a frame there, so a crash kept EXEC's first SET and
    lost the second. Inside `Store.holding()` the bound waits for the end of the EXEC:
    both are in one frame, synced at the block's end (the bound applies then)."""
    io = SimIo(seed=5)
    store = kv.open("/store", io=io, durability="none")
    value = b"x" * 4000
    log, filled = store._log, 0
    assert log is not None
    # Up to where SET a's record (no larger than a fill's) reaches the target.
    while log.pending_bytes + RECORD_HEADER_SIZE + len(b"a") + len(value) < FRAME_PAYLOAD_SIZE_TARGET_BYTES:
        store.set(b"fill%d" % filled, value)  # other clients' writes of the window
        filled += 1
    session = Session(store, ServerConfig(), 1)
    commands = [[b"MULTI"], [b"SET", b"a", value], [b"SET", b"b", value], [b"EXEC"]]
    session.receive(b"".join(encode_request(argv) for argv in commands))
    assert session.take_replies(durable=True)[-1] == Array((OK, OK))
    io.crash()
    recovered = kv.open("/store", io=io, durability="none")
    assert (recovered.get(b"a"), recovered.get(b"b")) == (value, value)
    recovered.close()
