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

- `Oracle.check_refused`: the server runs with an ACL (`USERS`, `default` off, every
  client logs in). Client RESTRICTED_CLIENT is `app`, allowed only some keys and not
  INCRBY; the harness restates those rules (`app_refuses`, not `kv.acl`'s code), and a
  request they refuse must get a refusal (NOPERM, or EXECABORT for a transaction that
  queued a refused command). A refused request is never applied to the model, so a
  refused write that lands anyway shows in a later read (`check_read`) or recovery
  (`check_recovered`). Any other client is `admin`, allowed everything; an `app`
  request the rules allow must not be refused (`answer` fails on the NOPERM).
- EXEC is atomic across a crash: a `set_many` is sometimes sent as MULTI, one SET per
  pair, EXEC (`exec_requests`) instead of MSET, and the oracle holds it to what it holds
  a `set_many` to: whole or absent after a crash, delivered or not. What makes it so
  (`kv.transaction`): EXEC runs its commands in one tick inside `Store.holding()`, so
  no bound of the buffered store commits a frame between them. An EXEC that holds a
  list command (which syncs its own frame) is not atomic, and this workload (SETs only)
  never sends one.

How requests travel: each step's client is drawn from a generator seeded by the step's
number (a replay draws the same); a request is sometimes cut in two `receive` calls
(inside one of a transaction's commands), and sometimes followed by malformed bytes,
which end that connection after its replies (the client reconnects as a new session
and logs in again).

Deliberately not checked: RESP3, a wrong password, ACL rules beyond `app`'s (categories
other than `@all` and `@dangerous`, several users per connection), the network loop's
own timers (`batch` mode's timer, idle timeouts), and what the bytes look like on the
wire (`tests/test_resp.py`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from kv.acl import parse_acl
from kv.errors import KvError
from kv.group_commit import GroupCommit
from kv.replies import OK, Array, Bulk, ErrorReply, Integer, Reply
from kv.session import ServerConfig, Session, Tick
from kv.store import State, Store
from kv.transaction import QUEUED
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
# Per `set_many`: sent as MULTI, one SET per pair, EXEC (`exec_requests`) instead of MSET.
EXEC_PROBABILITY = 0.5
# The reply prefixes of a store error (`kv.commands.error_for`).
STORE_ERROR_PREFIXES = ("IOERR", "READONLY", "CORRUPTION")
# Step numbers seed each step's generator apart from any other seeded stream.
STEP_SEED_SALT = 0x5E55

# The server's users, as an ACL file names them: `default` is off, so every client logs
# in; `app` may touch key0000..key0049 and the queues, and run anything but INCRBY and
# the dangerous commands (none of which the workload sends).
ACL_TEXT = """\
user default off
user admin on >admin-secret ~* +@all
user app on >app-secret ~key00[0-4]* ~queue* +@all -incrby -@dangerous
"""
USERS = parse_acl(ACL_TEXT, "the server scenario's ACL")
RESTRICTED_CLIENT = 3  # logs in as `app`; every other client as `admin`
LOGINS = {"admin": (b"admin", b"admin-secret"), "app": (b"app", b"app-secret")}
# `app`'s rights restated for the check (`app_refuses`), apart from `kv.acl`'s code.
APP_KEY_PREFIXES = (b"key000", b"key001", b"key002", b"key003", b"key004", b"queue")
APP_FORBIDDEN_COMMANDS = frozenset({b"INCRBY"})


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


def exec_requests(operation: Operation) -> list[list[bytes]]:
    """A `set_many` as a transaction: MULTI, one SET per pair, EXEC."""
    assert operation.kind == "set_many", operation
    sets = [[b"SET", key, value] for key, value in operation.changes.items() if value is not None]
    return [[b"MULTI"], *sets, [b"EXEC"]]


def app_refuses(operation: Operation, commands: Sequence[Sequence[bytes]]) -> bool:
    """Whether `app`'s rights (ACL_TEXT, restated) refuse `commands`, sent for
    `operation`: a forbidden command, or a key outside its patterns."""
    if any(argv[0] in APP_FORBIDDEN_COMMANDS for argv in commands):
        return True
    return not all(key.startswith(APP_KEY_PREFIXES) for key in operation.changes)


def refusal(replies: Sequence[Reply]) -> bool:
    """Whether a request's replies refuse it: NOPERM, or a transaction that queued a
    refused command and whose EXEC was aborted for it."""
    last = replies[-1]
    refused = any(isinstance(reply, ErrorReply) and reply.prefix == "NOPERM" for reply in replies)
    return refused and isinstance(last, ErrorReply) and last.prefix in ("NOPERM", "EXECABORT")


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


def answer_all(operation: Operation, replies: Sequence[Reply]) -> object:
    """The replies of a request decoded (`answer`): one command's, or a transaction's
    (MULTI's OK, a QUEUED per command, EXEC's array: an answer of each)."""
    if len(replies) == 1:
        return answer(operation, replies[0])
    opened, *queued, executed = replies
    if opened != OK or any(reply != QUEUED for reply in queued):
        raise Violation(f"{operation.kind} as MULTI/EXEC got {opened!r:.40} and {queued!r:.80} before EXEC")
    if not isinstance(executed, Array) or executed.items is None or len(executed.items) != len(queued):
        return answer(operation, executed)  # an error (a store error raises), else not EXEC's reply
    for item in executed.items:
        answer(operation, item)
    return None


def failed(replies: Sequence[Reply]) -> bool:
    """Whether an error is among `replies` (or in an EXEC's array)."""
    nested = [item for reply in replies if isinstance(reply, Array) for item in reply.items or ()]
    return any(isinstance(reply, ErrorReply) for reply in (*replies, *nested))


@dataclass(frozen=True)
class Sent:
    """What one step's client sends: the client, its command lines, and the step's
    generator for how the bytes travel (`ServerHarness._send`)."""

    client: int
    commands: list[list[bytes]]
    rng: random.Random


def sent_for(step: int, operation: Operation) -> Sent | None:
    """The request of step `step` (None for a kind the harness runs on the store), drawn
    from a generator seeded by the step's number: a replay draws the same."""
    argv = request(operation)
    if argv is None:
        return None
    rng = random.Random(step * STEP_SEED_SALT)
    client = rng.randrange(CLIENTS)
    commands = [argv]
    if operation.kind == "set_many" and rng.random() < EXEC_PROBABILITY:
        commands = exec_requests(operation)
    return Sent(client, commands, rng)


class ServerHarness(Harness):
    """The harness whose clients talk RESP to sessions over the store (module docstring)."""

    def __init__(self, *arguments: Any, **options: Any) -> None:
        super().__init__(*arguments, **options)
        self.group: GroupCommit | None = None
        self.sessions: list[Session] = []
        self.next_client_id = 1
        self.delivered_success = False  # a success reply left during the current step
        self.window: list[bool] = []  # per reply the current commit delivered: not an error
        self.sent: Sent | None = None  # the current step's request (`step` draws it once)

    def _connected(self, store: Store) -> GroupCommit:
        """The group commit and the clients' sessions over `store` (a store reopened
        after a crash or a failure is a restarted server: every client reconnects)."""
        if self.group is None or self.group.store is not store:
            self.group = GroupCommit(store, flushes=True)
            self.sessions = [self._session(store, client) for client in range(CLIENTS)]
        return self.group

    def _session(self, store: Store, client: int) -> Session:
        """A new connection of `client`, logged in (as `app` or `admin`, ACL_TEXT)."""
        session = Session(store, ServerConfig(acl=USERS), self.next_client_id)
        self.next_client_id += 1
        user, password = LOGINS["app" if client == RESTRICTED_CLIENT else "admin"]
        session.receive(encode_request([b"AUTH", user, password]))
        logged_in = session.take_replies(durable=True)
        assert logged_in == [OK], logged_in
        return session

    def step(self, store: Store, operation: Operation) -> Store:
        self.delivered_success = False
        sent = self.sent = sent_for(self.steps, operation)
        if sent is not None and sent.client == RESTRICTED_CLIENT and app_refuses(operation, sent.commands):
            self.refused(store, operation, sent)
        else:
            store = super().step(store, operation)
        if self.delivered_success:  # a reply delivered before its own write was acknowledged
            self.oracle.delivered([True])
        return store

    def refused(self, store: Store, operation: Operation, sent: Sent) -> None:
        """A request `app`'s rights refuse (`check_refused`, module docstring): it must be
        refused, and nothing of it reaches the model."""
        replies = self._exchange(store, sent)
        self.oracle.check_refused(f"{operation.kind} ({sent.commands[-1][0].decode()})", refusal(replies))
        self.event(f"client {sent.client} refused: {operation.kind}")

    def run_operation(self, kind: OperationKind, store: Store, operation: Operation) -> object:
        if kind.name == GroupCommitKind.name:
            return self.commit(store)
        sent = self.sent  # drawn by `step`
        if sent is None:
            return kind.run(store, operation)
        replies = self._exchange(store, sent)
        if failed(replies) and store.state is not State.OPEN:
            self.commit(store)  # the window whose write failed: its flush fails, every reply an error
        return answer_all(operation, replies)

    def _exchange(self, store: Store, sent: Sent) -> list[Reply]:
        """`sent`'s bytes to its client's session, its replies delivered at once or left
        waiting for the window's commit (`kv.group_commit` rule 1); the replies."""
        group = self._connected(store)
        session = self.sessions[sent.client]
        before = len(session.pending)
        tick = self._send(session, [encode_request(argv) for argv in sent.commands], sent.rng)
        replies = list(session.pending[before : before + len(sent.commands)])
        if len(sent.commands) > 1:
            self.note(f"  client {sent.client} sent it as MULTI, {len(sent.commands) - 2} SETs, EXEC")
        if tick.close:  # malformed bytes followed: this connection ends after its replies
            self.sessions[sent.client] = self._session(store, sent.client)
            self.note(f"  client {sent.client} sent malformed bytes and reconnects")
        if group.received(session, tick) == "now":
            self.deliver(session, session.take_replies(durable=True), tick.close)
        return replies

    def _send(self, session: Session, requests: Sequence[bytes], rng: random.Random) -> Tick:
        """`requests` to `session`, sometimes in two pieces (cut inside one of them),
        sometimes with malformed bytes after."""
        data, wrote = b"".join(requests), False
        if rng.random() < SPLIT_PROBABILITY:
            cut = rng.randrange(1, len(data))
            whole = sum(1 for end in accumulate(map(len, requests)) if end <= cut)
            waiting = len(session.pending)
            wrote = session.receive(data[:cut]).wrote
            assert len(session.pending) == waiting + whole, "a request cut short ran, or a whole one did not"
            data = data[cut:]
        tick = session.receive(data)
        tick.wrote = tick.wrote or wrote
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
