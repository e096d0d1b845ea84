"""The sans-I/O protocol layer: `kv.resp` (requests in, replies out) and `kv.session`
(a connection's commands), including a hypothesis fuzz of both with random and
malformed bytes, and one against a live `kv serve`."""

from __future__ import annotations

import contextlib
import os
import re
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import kv
from io_backends.sim import SimIo
from kv.acl import parse_acl
from kv.replies import NIL, Array, Bulk, ErrorReply, Integer, Map, SimpleString
from kv.resp import ProtocolError, RequestParser, encode
from kv.session import ServerConfig, Session
from tests.test_server import _client, server

# The fuzz runs this many examples in the suite; FUZZ_EXAMPLES=10000 for the run.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1000"))
# The live server's fuzz opens a connection per example: 300 in the suite, more on request.
LIVE_FUZZ_EXAMPLES = int(os.environ.get("LIVE_FUZZ_EXAMPLES", "300"))


def _request(argv: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in argv)


def _all(parser: RequestParser) -> list[list[bytes]]:
    commands = []
    while (command := parser.next()) is not None:
        commands.append(command)
    return commands


def test_multibulk_and_inline_requests_byte_by_byte() -> None:
    stream = _request([b"SET", b"k", b"a\r\nb"]) + b"GET k\r\n" + b"\r\n" + b"*0\r\n" + _request([b"PING"])
    parser = RequestParser()
    commands = []
    for byte in stream:
        parser.feed(bytes([byte]))
        commands += _all(parser)
    assert commands == [[b"SET", b"k", b"a\r\nb"], [b"GET", b"k"], [b"PING"]]
    assert parser.buffered == 0


def test_an_announced_length_past_the_limit_fails_before_any_byte_of_it() -> None:
    parser = RequestParser(bulk_size_max=100)
    parser.feed(b"*1\r\n$101\r\n")
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        parser.next()
    parser = RequestParser(query_buffer_size_max=1000)
    parser.feed(b"*1\r\n$900\r\n" + b"x" * 900)
    with pytest.raises(ProtocolError, match="query buffer limit"):
        parser.feed(b"x" * 200)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*x\r\n", "invalid multibulk length"),
        (b"*2\r\n:1\r\n", "expected '$', got ':'"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$1\r\nab\r\n", "invalid bulk length"),
        (b"x" * 70_000, "too big inline request"),
        (b"*" + b"9" * 30, "invalid multibulk length"),
    ],
)
def test_malformed_requests_are_protocol_errors(data: bytes, message: str) -> None:
    parser = RequestParser()
    with pytest.raises(ProtocolError, match=re.escape(message)):
        parser.feed(data)
        parser.next()


def test_replies_encode_as_resp2_and_resp3() -> None:
    reply = Array((SimpleString("OK"), Integer(-3), Bulk(b"v"), NIL, Array(None), ErrorReply("ERR", "bad")))
    assert encode(reply, 2) == b"*6\r\n+OK\r\n:-3\r\n$1\r\nv\r\n$-1\r\n*-1\r\n-ERR bad\r\n"
    assert encode(reply, 3) == b"*6\r\n+OK\r\n:-3\r\n$1\r\nv\r\n_\r\n_\r\n-ERR bad\r\n"
    pairs = Map(((Bulk(b"a"), Integer(1)),))
    assert (encode(pairs, 2), encode(pairs, 3)) == (b"*2\r\n$1\r\na\r\n:1\r\n", b"%1\r\n$1\r\na\r\n:1\r\n")


def _session(password: str | None = None, acl: str | None = None) -> Session:
    store = kv.open("/db", io=SimIo(seed=1))
    config = ServerConfig(password) if acl is None else ServerConfig(acl=parse_acl(acl))
    return Session(store, config, client_id=7)


# A user with rights on some commands and keys only: the fuzz reaches every refusal.
RESTRICTED = "user default on nopass ~k* ~kept +@all -client -config -exec\n"


def test_a_session_authenticates_switches_protocol_and_runs_commands() -> None:
    session = _session("pw")
    tick = session.receive(_request([b"GET", b"k"]) + _request([b"AUTH", b"nope"]) + _request([b"AUTH", b"pw"]))
    assert session.reply_bytes(durable=True) == (
        b"-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n"
    )
    tick = session.receive(_request([b"SET", b"k", b"v"]) + _request([b"HELLO", b"3"]) + b"GET nope\r\n")
    assert tick.wrote and not tick.close
    wire = session.reply_bytes(durable=True)
    assert wire.startswith(b"+OK\r\n%7\r\n$6\r\nserver\r\n$2\r\nkv\r\n") and wire.endswith(b"_\r\n")
    session.receive(_request([b"SET", b"k", b"w"]))
    assert session.reply_bytes(durable=False, failure="sync failed") == b"-IOERR sync failed\r\n"
    tick = session.receive(_request([b"QUIT"]) + _request([b"PING"]))
    assert tick.close and session.reply_bytes(durable=True) == b"+OK\r\n"  # nothing runs after QUIT


def _commands(shutdown: bool = True) -> st.SearchStrategy[list[list[bytes]]]:
    """Pipelines of commands with random arguments; `shutdown` False leaves SHUTDOWN out
    (the live fuzz needs its server up)."""
    word = st.binary(max_size=20)
    names = st.sampled_from(
        [
            *(b"SET", b"GET", b"DEL", b"RPUSH", b"LPOP", b"INCR", b"PING", b"MGET", b"EXISTS"),
            *(b"HELLO", b"AUTH", b"CLIENT", b"SELECT", b"CONFIG", b"ACL", b"MULTI", b"EXEC", b"DISCARD"),
            *((b"SHUTDOWN",) if shutdown else ()),
        ]
    )
    command = st.tuples(names, st.lists(word, max_size=4)).map(lambda drawn: [drawn[0], *drawn[1]])
    return st.lists(command, min_size=1, max_size=8)


def _wire_commands(shutdown: bool = True) -> st.SearchStrategy[bytes]:
    return _commands(shutdown).map(lambda commands: b"".join(map(_request, commands)))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_commands(), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_fuzz_well_formed_requests_round_trip_in_any_split(commands: list[list[bytes]], cuts: list[int]) -> None:
    stream = b"".join(map(_request, commands))
    parser = RequestParser()
    parsed, position, index = [], 0, 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        parser.feed(stream[position : position + size])
        parsed += _all(parser)
        position, index = position + size, index + 1
    assert parsed == commands


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=40), _wire_commands()), max_size=6), st.booleans())
def test_fuzz_random_bytes_never_break_a_session_or_lose_a_write(pieces: list[bytes], restricted: bool) -> None:
    session = _session(acl=RESTRICTED if restricted else None)
    session.receive(_request([b"SET", b"kept", b"v"]))
    assert session.reply_bytes(durable=True) == b"+OK\r\n"
    for piece in pieces:
        tick = session.receive(piece)  # never raises: a bad request is an error reply
        session.reply_bytes(durable=True)
        if tick.close:
            break
    value = session.store.get(b"kept")
    assert value is not None  # only a command the fuzz sent can change it, never a crash of the layer
    session.store.close()


def test_fuzz_a_live_server(tmp_path: Path) -> None:
    """Random bytes, well-formed pipelines and both spliced, each on its own connection:
    the server answers or closes (never hangs: every recv has a 10 s timeout), stays up,
    and loses no write (the kept key is longer than any key the fuzz can draw)."""
    kept = b"kept-by-the-live-fuzz-key"
    with server(tmp_path / "db") as (port, process):
        assert _client(port).set(kept, "v")

        @settings(max_examples=LIVE_FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(
            st.lists(
                st.one_of(st.binary(min_size=1, max_size=200), _wire_commands(shutdown=False)), min_size=1, max_size=4
            )
        )
        def throw(pieces: list[bytes]) -> None:
            # A real SHUTDOWN stops the server: a 10,000-example run sent one (the stack of
            # its stop), though no name drawn is SHUTDOWN; hypothesis also draws bytes
            # from the code's own literals
            assume(b"shutdown" not in b"".join(pieces).lower())
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                connection.sendall(b"".join(pieces))
                connection.shutdown(socket.SHUT_WR)
                with contextlib.suppress(ConnectionResetError):
                    while connection.recv(65536):
                        pass

        throw()
        assert process.poll() is None and _client(port).get(kept) == b"v"


class _CarefulParser(RequestParser):
    """The parser without its fast path: what the fast path must agree with."""

    def _whole_command(self) -> list[bytes] | None:
        return None


def _parse_all(parser: RequestParser, stream: bytes, cuts: list[int]) -> tuple[list[list[bytes]], str]:
    parsed: list[list[bytes]] = []
    position = index = 0
    try:
        while position < len(stream):
            size = cuts[index % len(cuts)]
            parser.feed(stream[position : position + size])
            parsed += _all(parser)
            position, index = position + size, index + 1
    except ProtocolError as failure:
        return parsed, str(failure)
    return parsed, ""


_EDGES = [b"*0\r\n", b"*-1\r\n", b"*1\r\n$0\r\n\r\n", b"\r\n", b"PING\r\n", b"*65\r\n" + b"$1\r\nx\r\n" * 65]


def _damaged_commands() -> st.SearchStrategy[bytes]:
    """Well-formed requests with one byte changed: near misses of every check."""

    def damage(drawn: tuple[bytes, int, bytes]) -> bytes:
        wire, where, byte = drawn
        where %= len(wire)
        return wire[:where] + byte + wire[where + 1 :]

    byte = st.sampled_from([b"0", b"1", b"9", b"-", b"\r", b"\n", b"*", b"$", b"x"])
    return st.tuples(_wire_commands(), st.integers(0, 10_000), byte).map(damage)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.one_of(_wire_commands(), _damaged_commands(), st.binary(max_size=12), st.sampled_from(_EDGES))).map(
        b"".join
    ),
    st.lists(st.integers(1, 40), min_size=1, max_size=10),
)
def test_the_fast_path_reads_exactly_what_the_careful_path_reads(stream: bytes, cuts: list[int]) -> None:
    assert _parse_all(RequestParser(), stream, cuts) == _parse_all(_CarefulParser(), stream, cuts)
