"""The `server` scenario: the command layer of `kv serve` on the simulated disk.

`ServerHarness` is the `Harness` with its data operations sent as RESP requests by
CLIENTS simulated clients, each a `kv.session.Session` over the one store, which runs
buffered (durability `none`) as the server runs it in `always` mode. A
`group_commit` operation ends a window: `kv.group_commit.GroupCommit` (the code the
server runs) flushes once for every session with replies waiting, then delivers them.
The network is not simulated; crashes and faults land anywhere, the window's flush too.

What it checks, beside what the oracle checks of every operation's answer (each reply
is decoded into the answer the operation's kind checks: a GET's value, an INCR's sum):

- `Oracle.delivered`: a delivered success reply acknowledges every write executed so far
  (the server promises a reply leaves only after the sync that covers the writes it may
  have seen): the oracle holds them durable from then on, so a crash that takes one away
  fails `check_recovered`.
- `Oracle.check_failed_window`: a window whose flush failed (the store is read-only
  after it) delivered only error replies.

How requests travel: each step's client is drawn from a generator seeded by the step's
number (a replay draws the same); a request is sometimes cut in two `receive` calls,
and sometimes followed by malformed bytes, which end that connection after its replies
(the client reconnects as a new session).

Deliberately not checked: RESP3, AUTH, the network loop's own timers (`batch` mode's
timer, idle timeouts), and what the bytes look like on the wire (`tests/test_resp.py`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from kv.errors import KvError
from kv.group_commit import GroupCommit
from kv.replies import OK, Array, Bulk, ErrorReply, Integer, Reply
from kv.session import ServerConfig, Session, Tick
from kv.store import State, Store
from scenarios.operations import (
    NOT_AN_INTEGER,
    GroupCommitKind,
    ListValue,
    Operation,
    OperationKind,
    push_elements,
)
from scenarios.oracle import Violation
from scenarios.runner import Harness

# Simulated clients, each one connection (a `Session`) at a time.
CLIENTS = 4
# Per request: it arrives in two pieces (the first ends inside the request).
SPLIT_PROBABILITY = 0.3
# Per request: malformed bytes follow it (a protocol error, then the connection closes).
MALFORMED_PROBABILITY = 0.01
MALFORMED_BYTES = b"*2\r\n$3\r\nGET\r\n:1\r\n"  # an integer where a bulk string belongs
# The reply prefixes of a store error (`kv.commands.error_for`).
STORE_ERROR_PREFIXES = ("IOERR", "READONLY", "CORRUPTION")
# Step numbers seed each step's generator apart from any other seeded stream.
STEP_SEED_SALT = 0x5E55


class ServerReplyError(KvError):
    """A store error that reached a client as an error reply (IOERR, READONLY,
    CORRUPTION), or a window whose flush failed: the harness handles it as the store's."""


def request(operation: Operation) -> list[bytes] | None:
    """The command line a client sends for `operation`, or None for a kind the server
    scenario runs on the store itself (flush, compact, pause, reopen)."""
    name, changes = operation.kind, operation.changes
    keys = list(changes)
    if name == "set":
        [(key, value)] = changes.items()
        assert value is not None
        return [b"SET", key, value]
    if name == "set_many":
        return [b"MSET", *(part for key, value in changes.items() if value is not None for part in (key, value))]
    if name in ("rpush", "lpush"):
        return [name.upper().encode(), keys[0], *push_elements(operation)]
    if name == "incr":
        [by] = operation.arguments
        assert isinstance(by, int)
        return [b"INCRBY", keys[0], b"%d" % by]
    if name == "lrange":
        return [b"LRANGE", keys[0], b"0", b"-1"]
    simple = {"delete": b"DEL", "get": b"GET", "getdel": b"GETDEL", "lpop": b"LPOP", "rpop": b"RPOP", "llen": b"LLEN"}
    return [simple[name], keys[0]] if name in simple else None


def encode_request(argv: Sequence[bytes]) -> bytes:
    """A command line as a RESP array of bulk strings (what redis-py sends)."""
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in argv)


def answer(operation: Operation, reply: Reply) -> object:
    """The reply decoded into what the operation's kind checks (`OperationKind.check`);
    a store error raises `ServerReplyError`, any other reply that is not the command's
    is a `Violation`."""
    name = operation.kind
    if isinstance(reply, ErrorReply):
        if name == "incr" and reply.prefix == "ERR" and "not an integer" in reply.message:
            return NOT_AN_INTEGER
        if reply.prefix in STORE_ERROR_PREFIXES:
            raise ServerReplyError(reply.text)
        raise Violation(f"{name} got the error reply {reply.text!r:.80}")
    if name in ("set", "set_many") and reply == OK:
        return None
    if name in ("delete", "incr", "rpush", "lpush", "llen") and isinstance(reply, Integer):
        return None if name == "delete" else reply.value
    if name in ("get", "getdel", "lpop", "rpop") and isinstance(reply, Bulk):
        return reply.value
    if name == "lrange" and isinstance(reply, Array) and reply.items is not None:
        elements = tuple(item.value for item in reply.items if isinstance(item, Bulk) and item.value is not None)
        assert len(elements) == len(reply.items), reply
        return ListValue(elements) if elements else None
    raise Violation(f"{name} got the reply {reply!r:.80}, not one its command gives")


class ServerHarness(Harness):
    """The harness whose clients talk RESP to sessions over the store (module docstring)."""

    def __init__(self, *arguments: Any, **options: Any) -> None:
        super().__init__(*arguments, **options)
        self.group: GroupCommit | None = None
        self.sessions: list[Session] = []
        self.next_client_id = 1
        self.delivered_success = False  # a success reply left during the current step
        self.window: list[bool] = []  # per reply the current commit delivered: not an error

    def _connected(self, store: Store) -> GroupCommit:
        """The group commit and the clients' sessions over `store` (a store reopened
        after a crash or a failure is a restarted server: every client reconnects)."""
        if self.group is None or self.group.store is not store:
            self.group = GroupCommit(store, flushes=True)
            self.sessions = [self._session(store) for _ in range(CLIENTS)]
        return self.group

    def _session(self, store: Store) -> Session:
        session = Session(store, ServerConfig(), self.next_client_id)
        self.next_client_id += 1
        return session

    def step(self, store: Store, operation: Operation) -> Store:
        self.delivered_success = False
        store = super().step(store, operation)
        if self.delivered_success:  # a reply delivered before its own write was acknowledged
            self.oracle.delivered([True])
        return store

    def run_operation(self, kind: OperationKind, store: Store, operation: Operation) -> object:
        if kind.name == GroupCommitKind.name:
            return self.commit(store)
        argv = request(operation)
        if argv is None:
            return kind.run(store, operation)
        group = self._connected(store)
        rng = random.Random(self.steps * STEP_SEED_SALT)
        client = rng.randrange(CLIENTS)
        session = self.sessions[client]
        before = len(session.pending)
        tick = self._send(session, encode_request(argv), rng)
        reply = session.pending[before]
        if tick.close:  # malformed bytes followed: this connection ends after its replies
            self.sessions[client] = self._session(store)
            self.note(f"  client {client} sent malformed bytes and reconnects")
        if group.received(session, tick) == "now":
            self.deliver(session, session.take_replies(durable=True), tick.close)
        if isinstance(reply, ErrorReply) and store.state is not State.OPEN:
            self.commit(store)  # the window whose write failed: its flush fails, every reply an error
        return answer(operation, reply)

    def _send(self, session: Session, data: bytes, rng: random.Random) -> Tick:
        """`data` to `session`, sometimes in two pieces, sometimes with malformed bytes after."""
        if rng.random() < SPLIT_PROBABILITY:
            cut = rng.randrange(1, len(data))
            waiting = len(session.pending)
            session.receive(data[:cut])
            assert len(session.pending) == waiting, "a request cut short ran"
            data = data[cut:]
        tick = session.receive(data)
        if rng.random() < MALFORMED_PROBABILITY:
            tick.close = session.receive(MALFORMED_BYTES).close
        return tick

    def deliver(self, session: Session, replies: Sequence[Reply], close: bool) -> None:
        """A session's replies left (`check_delivery`, module docstring)."""
        replies_ok = [not isinstance(reply, ErrorReply) for reply in replies]
        self.window.extend(replies_ok)
        self.oracle.delivered(replies_ok)  # a success acknowledges every write so far as durable
        self.delivered_success = self.delivered_success or any(replies_ok)
        if self.keep_timeline:
            self.note(f"  client {session.client_id} got {len(replies)} replies{' and closed' if close else ''}")

    def commit(self, store: Store) -> object:
        """One window's group commit (`check_failed_window`, module docstring)."""
        group = self._connected(store)
        self.window = []
        group.commit(self.deliver)
        failed = store.state is not State.OPEN
        self.oracle.check_failed_window(failed, self.window)
        if not failed:
            return None
        raise ServerReplyError(f"the group commit's flush failed: {group.failure}")
