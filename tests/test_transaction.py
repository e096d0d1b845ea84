"""MULTI / EXEC / DISCARD in a `kv serve` session (`kv.transaction`), sans-I/O: bytes in,
replies out, on a store in memory."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import kv
import kv.session
from io_backends import make_io
from kv import transaction
from kv.acl import parse_acl
from kv.group_commit import GroupCommit
from kv.replies import Array, Bulk
from kv.resp import encode
from kv.session import ServerConfig, Session
from tests.test_acl import _redis_server
from tests.test_server import server


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


# Each line on its own connection, ended by QUIT; both servers must send the same bytes
# (replies that name the server, as HELLO's and CONFIG GET's do, are left out).
REDIS_SEQUENCES = [
    [b"MULTI", b"SET a 1", b"EXEC x", b"EXEC", b"GET a"],
    [b"MULTI", b"SET a 2", b"DISCARD x", b"EXEC", b"GET a"],
    [b"EXEC x", b"DISCARD x", b"MULTI x"],
    [b"MULTI", b"CLIENT SETNAME foo", b"SELECT 0", b"EXEC", b"CLIENT GETNAME"],
    [b"MULTI", b"QUIT", b"PING"],
    [b"MULTI", b"SHUTDOWN", b"EXEC"],
    [b"MULTI", b"AUTH x", b"ACL WHOAMI", b"EXEC"],
    [b"MULTI", b"MULTI", b"MULTI x", b"EXEC"],
    [b"MULTI", b"CLIENT NOPE", b"EXEC"],
    [b"AUTH a b c", b"SELECT 00", b"SELECT x", b"HELLO 0003", b"HELLO " + b"9" * 5000, b"HELLO 4"],
    [b'CLIENT SETNAME "a\\x01b"', b'HELLO 2 SETNAME "a b"', b"CLIENT GETNAME", b"CLIENT SETNAME a b"],
    [b"MULTI", b"FOO", b"EXEC"],
    [b"MULTI", b"SET c 1", b"SAVE", b"EXEC", b"GET c"],
    [b"SELECT 2147483648", b"SELECT -2147483649", b"SELECT 2147483647", b"ACL CAT a b"],
]


def _conversation(port: int, lines: list[bytes]) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"".join(line + b"\r\n" for line in [*lines, b"QUIT"]))
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    return received


@pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed (apt-get install -y redis-server)"
)
def test_transactions_and_connection_commands_answer_as_redis_server_does(tmp_path: Path) -> None:
    acl_file = tmp_path / "users.acl"
    acl_file.write_text("user default on nopass ~* +@all\n")
    with _redis_server(acl_file) as port:
        expected = [_conversation(port, lines) for lines in REDIS_SEQUENCES]
    with server(tmp_path / "db") as (port, _process):
        assert [_conversation(port, lines) for lines in REDIS_SEQUENCES] == expected
    assert sum(b"EXECABORT" in outcome for outcome in expected) >= 5  # the sequences do refuse things


def test_a_refused_exec_ends_the_transaction_naming_why(tmp_path: Path) -> None:
    with kv.open(str(tmp_path / "db"), io=make_io("blocking")) as store:
        session = Session(store, ServerConfig(acl=parse_acl("user default on nopass ~* +@all -exec\n")), 1)
        session.receive(b"MULTI\r\nSET k v\r\nEXEC\r\nSET k w\r\n")
        wire = session.reply_bytes(durable=True)
        refused = (
            b"-EXECABORT Transaction discarded because of: "
            b"NOPERM this user has no permissions to run the 'exec' command\r\n"
        )
        assert wire == b"+OK\r\n+QUEUED\r\n" + refused + b"+OK\r\n", "after the refused EXEC commands run at once"
        assert store.get(b"k") == b"w"


def test_a_transaction_is_bounded_and_a_command_past_the_bound_dooms_it(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transaction, "TRANSACTION_COMMANDS_MAX", 3)
    replies, _wrote = _send(session, [b"MULTI"], *([b"SET", b"k", b"v"] for _ in range(4)), [b"EXEC"])
    assert replies.count(b"+QUEUED") == 3 and transaction.TRANSACTION_TOO_LONG.message.encode() in replies
    assert replies.endswith(b"-EXECABORT Transaction discarded because of previous errors.\r\n")
    assert session.store.get(b"k") is None
    monkeypatch.setattr(transaction, "TRANSACTION_BYTES_MAX", 10)
    replies, _wrote = _send(session, [b"MULTI"], [b"SET", b"k", b"v" * 20], [b"EXEC"])
    assert transaction.TRANSACTION_TOO_LONG.message.encode() in replies and replies.endswith(b"previous errors.\r\n")


def test_a_command_that_raises_closes_its_connection_and_its_writes_wait_for_the_sync(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a command must not let another connection read a write no sync covers."""
    group = GroupCommit(session.store, flushes=True)
    monkeypatch.setitem(kv.session._CONNECTION_COMMANDS, b"select", lambda self, arguments, tick: int("9" * 5000))
    with pytest.raises(ValueError):
        session.receive(b"SET k v\r\nSELECT 0\r\nGET k\r\n")
    tick = session.internal_error(ValueError("the bug"))  # what the server does with it
    assert tick.close and tick.wrote, "the tick counts as a write: SET staged one"
    assert group.received(session, tick) == "opened"
    reader = Session(session.store, ServerConfig(), client_id=2)
    assert group.received(reader, reader.receive(b"GET k\r\n")) == "wait", "the read waits for the window"
    delivered: dict[int, bytes] = {}
    group.commit(lambda who, replies, close: delivered.__setitem__(who.client_id, who.encode(replies)))
    assert delivered[1] == b"+OK\r\n-ERR internal error: ValueError: the bug\r\n"
    assert delivered[2] == b"$1\r\nv\r\n" and group.syncs == 1


def test_replies_before_a_pipelined_hello_keep_the_protocol_they_were_made_in(session: Session) -> None:
    """Redis encodes each reply as its command runs: a nil before HELLO 3 is RESP2's."""
    session.receive(b"GET nosuchkey\r\nHELLO 3\r\nGET nosuchkey\r\nHELLO 2\r\nGET nosuchkey\r\n")
    wire = session.reply_bytes(durable=True)
    assert wire.startswith(b"$-1\r\n%7\r\n") and b"_\r\n*14\r\n" in wire and wire.endswith(b"$-1\r\n"), wire
    session.receive(b"MULTI\r\nGET nosuchkey\r\nHELLO 3\r\nGET nosuchkey\r\nEXEC\r\n")
    wire = session.reply_bytes(durable=True)
    assert wire.startswith(b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n$-1\r\n%7\r\n"), wire
    assert wire.endswith(b"_\r\n"), wire
