"""MULTI / EXEC / DISCARD in a `kv serve` session (`kv.transaction`), sans-I/O: bytes in,
replies out, on a store in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kv
from io_backends import make_io
from kv.replies import Array, Bulk
from kv.resp import encode
from kv.session import ServerConfig, Session


@pytest.fixture
def session() -> Iterator[Session]:
    with kv.open("/data", io=make_io("memory")) as store:
        yield Session(store, ServerConfig(), client_id=1)


def _send(session: Session, *commands: list[bytes]) -> tuple[bytes, bool]:
    """Run `commands`; their replies on the wire (RESP2) and whether one wrote."""
    wire = b"".join(encode(Array(tuple(Bulk(word) for word in command)), 2) for command in commands)
    tick = session.receive(wire)
    return session.reply_bytes(durable=True), tick.wrote


def test_exec_runs_the_queued_commands_and_replies_with_their_replies(session: Session) -> None:
    replies, wrote = _send(session, [b"MULTI"], [b"SET", b"k", b"v"], [b"RPUSH", b"l", b"x"], [b"GET", b"k"])
    assert replies == b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n"
    assert not wrote and session.store.get(b"k") is None, "nothing runs before EXEC"
    replies, wrote = _send(session, [b"EXEC"])
    assert replies == b"*3\r\n+OK\r\n:1\r\n$1\r\nv\r\n"
    assert wrote, "the server must sync before it replies to an EXEC that wrote"


def test_a_runtime_error_is_in_the_array_and_the_rest_still_runs(session: Session) -> None:
    _send(session, [b"SET", b"s", b"v"])
    replies, _wrote = _send(session, [b"MULTI"], [b"RPUSH", b"s", b"x"], [b"SET", b"t", b"w"], [b"EXEC"])
    assert replies.startswith(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-WRONGTYPE ")
    assert replies.endswith(b"+OK\r\n")
    assert session.store.get(b"t") == b"w"


def test_a_queueing_error_aborts_the_whole_transaction(session: Session) -> None:
    replies, _wrote = _send(session, [b"MULTI"], [b"SET", b"k", b"v"], [b"GET"], [b"NOSUCH"], [b"EXEC"])
    assert replies.count(b"-ERR ") == 2
    assert replies.endswith(b"-EXECABORT Transaction discarded because of previous errors.\r\n")
    assert session.store.get(b"k") is None


def test_discard_nesting_and_verbs_outside_multi(session: Session) -> None:
    replies, _wrote = _send(session, [b"EXEC"], [b"DISCARD"])
    assert replies == b"-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n"
    replies, _wrote = _send(session, [b"MULTI"], [b"MULTI"], [b"SET", b"k", b"v"], [b"DISCARD"])
    assert replies == b"+OK\r\n-ERR MULTI calls can not be nested\r\n+QUEUED\r\n+OK\r\n"
    assert session.store.get(b"k") is None
    replies, _wrote = _send(session, [b"SET", b"k", b"v"])
    assert replies == b"+OK\r\n", "after DISCARD commands run at once again"
