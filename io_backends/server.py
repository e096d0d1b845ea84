"""`kv serve`: the network loop around `kv.session` (asyncio, one thread).

Each connection is an `asyncio.Protocol` whose bytes go to its `Session`; the session
runs the commands. Group commit: in `always` mode the store runs buffered (`none`) and
the loop makes writes durable itself, once per turn of the event loop for every
connection that wrote in it: every connection whose bytes arrived in the same turn
shares one write and one fsync, and every reply of the turn (reads too: they may have
seen those writes) leaves only after that sync succeeded. If it fails, the store is
read-only from then on and each of those replies is the error instead. The decision is
`kv.group_commit.GroupCommit`, sans-I/O, which the simulator's `server` scenario runs
under crashes and failing syncs.

Limits, each Redis's: `maxclients` (a client past it gets an error and is closed), an
idle `timeout` in seconds (0: none), the protocol limits of `kv.resp` (a bulk or array
announced past them, a query buffer that never becomes a command: an error and a
close), and protected mode (a bind address other than loopback needs a password).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import kv
from io_backends import make_io
from kv.acl import parse_acl
from kv.errors import KvError
from kv.group_commit import GroupCommit
from kv.limits import BATCH_INTERVAL_MS_MAX
from kv.replies import Reply
from kv.session import ServerConfig, Session

MAX_CLIENTS_DEFAULT = 10_000
BATCH_INTERVAL_S = BATCH_INTERVAL_MS_MAX / 1000
MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"


class ProtectedMode(KvError):
    """A bind address other than loopback without a password."""


@dataclass
class Options:
    directory: str
    bind: str = "127.0.0.1"
    port: int = 6379
    durability: str = "always"
    password: str | None = None
    io: str = "auto"
    max_clients: int = MAX_CLIENTS_DEFAULT
    timeout_seconds: float = 0.0
    acl_file: str | None = None


def server_config(options: Options) -> ServerConfig:
    """The sessions' shared configuration; reads `--acl-file` (`AclError` naming the
    bad line, `KvError` when it cannot be read)."""
    if options.acl_file is None:
        return ServerConfig(options.password, options.durability)
    try:
        with open(options.acl_file, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as failure:
        raise KvError(f"cannot read the ACL file {options.acl_file}: {failure}") from None
    return ServerConfig(None, options.durability, parse_acl(text, options.acl_file))


def server_io(name: str) -> str:
    """The backend `--io NAME` means for the server: `auto` is blocking. A reply waits
    on one write and one fdatasync per window, which io_uring hands to a kernel worker
    thread; measured with redis-benchmark (SET, 100-byte values), blocking served 23%
    more durable SETs with 1 client and 13% more with 50 than uring did."""
    return "blocking" if name == "auto" else name


def check_protected_mode(bind: str, config: ServerConfig) -> None:
    """Refuse a bind reachable from other hosts where the default user needs no password
    (Redis's protected mode, which, like this, looks at `default` only: an ACL file's
    other `nopass` users are the file's choice)."""
    if config.users().open_default is None:
        return
    try:
        loopback = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = bind == "localhost"
    if not loopback:
        raise ProtectedMode(
            f"refusing to listen on {bind} without a password (protected mode): set --requirepass, "
            "or an --acl-file whose default user needs a password, or bind 127.0.0.1"
        )


@dataclass(eq=False)
class Connection(asyncio.Protocol):
    server: Server
    session: Session
    transport: asyncio.Transport | None = None
    idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        self._arm_idle()
        try:
            tick = self.session.receive(data)
        except Exception as bug:  # a bug in a command: its connection's writes still wait for the sync
            tick = self.session.internal_error(bug)
            print(f"kv serve: internal error: {type(bug).__name__}: {bug}", file=sys.stderr, flush=True)
        if tick.shutdown:
            self.server.shutdown_requested = True
        if tick.wrote and self.server.options.durability == "batch":
            self.server.sync_soon()
        decided = self.server.group.received(self.session, tick)
        if decided == "opened" and len(self.server.connections) == 1:
            self.server.sync()  # no other connection can join the window: close it now
        elif decided == "opened":
            asyncio.get_running_loop().call_soon(self.server.sync)
        elif decided == "now":
            self.send(self.session.take_replies(durable=True), close=tick.close)

    def send(self, replies: Sequence[Reply], close: bool) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        self.transport.write(self.session.encode(replies))
        if close:
            self.transport.close()
        if self.server.shutdown_requested:
            self.server.stop()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.server.connections.discard(self)
        self.server.connections_by_session.pop(self.session, None)

    def _arm_idle(self) -> None:
        if self.server.options.timeout_seconds <= 0:
            return
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        assert self.transport is not None
        self.idle = loop.call_later(self.server.options.timeout_seconds, self.transport.close)


@dataclass(eq=False)
class Server:
    options: Options
    store: kv.Store
    config: ServerConfig
    connections: set[Connection] = field(default_factory=set)
    connections_by_session: dict[Session, Connection] = field(default_factory=dict)
    next_client_id: int = 1
    shutdown_requested: bool = False
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    batch_syncs: int = 0
    batch_timer: asyncio.TimerHandle | None = None
    group: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.group = GroupCommit(self.store, flushes=self.options.durability == "always")

    @property
    def syncs(self) -> int:
        return self.group.syncs + self.batch_syncs

    def connection(self) -> asyncio.Protocol:
        if len(self.connections) >= self.options.max_clients:
            return _Refused()
        session = Session(self.store, self.config, self.next_client_id)
        self.next_client_id += 1
        connection = Connection(self, session)
        self.connections.add(connection)
        self.connections_by_session[session] = connection
        return connection

    def sync(self) -> None:
        """Make every write of this turn durable with one flush, then reply
        (`kv.group_commit`)."""
        self.group.commit(self._deliver)

    def _deliver(self, session: Session, replies: Sequence[Reply], close: bool) -> None:
        connection = self.connections_by_session.get(session)
        if connection is not None:
            connection.send(replies, close)

    def sync_soon(self) -> None:
        """`batch` mode: the store checks its time bound only when called, so a write
        that no other follows is synced BATCH_INTERVAL_S after it, by a timer."""
        if self.batch_timer is None:
            self.batch_timer = asyncio.get_running_loop().call_later(BATCH_INTERVAL_S, self._batch_sync)

    def _batch_sync(self) -> None:
        self.batch_timer = None
        with contextlib.suppress(KvError):  # a failed sync leaves the store read-only: writes say so
            self.store.flush()
            self.batch_syncs += 1

    def stop(self) -> None:
        self.stopped.set()


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(MAX_CLIENTS_REPLY)
        transport.close()


async def _serve(options: Options, ready: asyncio.Future[int] | None = None) -> None:
    config = server_config(options)
    check_protected_mode(options.bind, config)
    store_durability = "none" if options.durability == "always" else options.durability
    store = kv.open(options.directory, io=make_io(server_io(options.io)), durability=store_durability)  # type: ignore[arg-type]
    server = Server(options, store, config)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server.connection, options.bind, options.port, reuse_address=True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, server.stop)
    port = listener.sockets[0].getsockname()[1]
    print(f"kv serve: {options.directory} on {options.bind}:{port} durability {options.durability}", flush=True)
    if ready is not None:
        ready.set_result(port)
    try:
        await server.stopped.wait()
    finally:
        listener.close()
        for connection in list(server.connections):
            if connection.transport is not None:
                connection.transport.close()
        store.close()


def serve(options: Options) -> int:
    """Run the server until SIGTERM, SIGINT or SHUTDOWN; the exit status."""
    try:
        asyncio.run(_serve(options))
    except KvError as error:
        print(f"kv serve: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"kv serve: cannot listen on {options.bind}:{options.port}: {error.strerror}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    """`kv serve DIR [options]` (the REPL's `kv` hands `serve`'s arguments here)."""
    import argparse

    parser = argparse.ArgumentParser(prog="kv serve", description="Serve a store over RESP (redis-cli, redis-py).")
    parser.add_argument("directory", metavar="DIR", help="the store's directory (created when missing)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=6379, help="TCP port (default 6379; 0: any free port)")
    parser.add_argument("--durability", choices=kv.DURABILITY_MODES, default="always")
    users = parser.add_mutually_exclusive_group()
    users.add_argument("--requirepass", metavar="PASSWORD", help="clients must AUTH with it first")
    users.add_argument("--acl-file", metavar="FILE", help="users, their passwords, commands and keys (kv.acl)")
    parser.add_argument(
        "--io",
        choices=("auto", "blocking", "uring"),
        default="auto",
        help="I/O backend (auto: blocking, the faster for the server's one sync per window)",
    )
    parser.add_argument("--maxclients", type=int, default=MAX_CLIENTS_DEFAULT, help="connections at most")
    parser.add_argument("--timeout", type=float, default=0.0, help="close a client idle this many seconds (0: never)")
    arguments = parser.parse_args(argv)
    return serve(
        Options(
            arguments.directory,
            arguments.bind,
            arguments.port,
            arguments.durability,
            arguments.requirepass,
            arguments.io,
            arguments.maxclients,
            arguments.timeout,
            arguments.acl_file,
        )
    )
