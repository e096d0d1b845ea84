"""One client connection of `kv serve`, sans-I/O: bytes in, replies out.

    session = Session(store, ServerConfig(password="s3cret"), client_id=1)
    tick = session.receive(b"AUTH s3cret\\r\\nSET k v\\r\\n")   # runs both commands
    ...  # the server syncs the store once for every session that wrote in this tick
    wire = session.reply_bytes(durable=True)                 # b"+OK\\r\\n+OK\\r\\n"

The network loop (`io_backends.server`) reads from every ready connection, hands the
bytes to its session, and then, once for all of them, makes the tick's writes durable
(group commit, `kv.group_commit`: one write and one fsync for every client that wrote). Only then does it
send each session's replies: a reply leaves only after the sync that covers it. When
that sync fails the store goes read-only, and every reply of the tick is replaced by
the error, since a read in it may have seen a write that is not durable.

Besides the store's commands (`kv.commands.COMMANDS`, the REPL's table) a session
answers the connection's own: AUTH, HELLO (RESP2 or RESP3), CLIENT SETNAME / GETNAME /
ID / SETINFO, SELECT 0, CONFIG GET (the few parameters clients ask for), QUIT and
SHUTDOWN. With a password set, nothing but AUTH, HELLO and QUIT runs before the client
authenticates (Redis's NOAUTH). Malformed bytes get Redis's protocol error, and the
connection closes after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kv.acl import CATEGORIES, Acl, User, refusal
from kv.commands import COMMANDS, Command, Flag, kv_version
from kv.replies import OK, Array, Bulk, ErrorReply, Integer, Map, Reply, bulk_array, bytes_text, error
from kv.resp import ProtocolError, RequestParser, encode
from kv.store import Store
from kv.transaction import TRANSACTION_VERBS, Transaction

NO_AUTH = ErrorReply("NOAUTH", "Authentication required.")
HELLO_NO_AUTH = ErrorReply(
    "NOAUTH",
    "HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> "
    "option can be used to authenticate the client and select the RESP protocol version at the same time",
)
WRONG_PASSWORD = ErrorReply("WRONGPASS", "invalid username-password pair or user is disabled.")
# The connection commands that run before authentication, as in Redis.
_BEFORE_AUTH = frozenset({b"auth", b"hello", b"quit"})
# Connection commands with subcommands: a refusal names both (`acl|whoami`), as Redis's.
_CONTAINERS = frozenset({b"acl", b"client", b"config"})


@dataclass(frozen=True)
class ServerConfig:
    """What every session of a server shares: the password (None: no AUTH needed) or
    the users of an ACL file (`kv.acl`; then `password` is None)."""

    password: str | None = None
    durability: str = "always"  # what the server promises (the store may run buffered)
    acl: Acl | None = None

    def users(self) -> Acl:
        if self.acl is not None:
            return self.acl
        return Acl.open_to_all() if self.password is None else Acl.with_password(self.password)


@dataclass
class Tick:
    """What one `receive` did: whether a command wrote (the server syncs before it
    replies), whether the connection closes after the replies, and whether the client
    asked the server to shut down."""

    wrote: bool = False
    close: bool = False
    shutdown: bool = False


@dataclass(eq=False)
class Session:
    store: Store
    config: ServerConfig
    client_id: int
    protocol: int = 2
    name: bytes | None = None
    user: User | None = None  # None until the client authenticates
    parser: RequestParser = field(default_factory=RequestParser)
    _replies: list[Reply] = field(default_factory=list)
    _closing: bool = False
    transaction: Transaction = field(default_factory=Transaction)  # MULTI/EXEC (kv.transaction)
    _acl: Acl = field(init=False)

    def __post_init__(self) -> None:
        self._acl = self.config.users()
        self.user = self._acl.open_default

    @property
    def authenticated(self) -> bool:
        return self.user is not None

    def receive(self, data: bytes) -> Tick:
        """Run every whole command in `data` (and what was buffered before it)."""
        tick = Tick()
        if self._closing:
            return tick
        try:
            self.parser.feed(data)
            while (argv := self.parser.next()) is not None:
                self._run(argv, tick)
                if tick.close or tick.shutdown:
                    break
        except ProtocolError as failure:
            self._replies.append(error(str(failure)))
            tick.close = True
        self._closing = tick.close
        return tick

    @property
    def pending(self) -> tuple[Reply, ...]:
        """The replies not yet taken (the simulator reads each command's answer here)."""
        return tuple(self._replies)

    def take_replies(self, durable: bool, failure: str = "") -> list[Reply]:
        """The replies of the tick; when its sync failed (`durable` False), each
        becomes the error `failure`."""
        replies, self._replies = self._replies, []
        if not durable:
            replies = [error(failure or "the write could not be made durable", "IOERR") for _ in replies]
        return replies

    def encode(self, replies: Sequence[Reply]) -> bytes:
        """`replies` on the wire, in the session's protocol."""
        return b"".join(encode(reply, self.protocol) for reply in replies)

    def reply_bytes(self, durable: bool, failure: str = "") -> bytes:
        """The replies of the tick, on the wire (`take_replies`, encoded)."""
        return self.encode(self.take_replies(durable, failure))

    def _run(self, argv: list[bytes], tick: Tick) -> None:
        name = argv[0].lower()
        own = _CONNECTION_COMMANDS.get(name)
        if not self.authenticated and name not in _BEFORE_AUTH:
            self._replies.append(NO_AUTH)
            return
        if self.transaction.takes(name):  # MULTI, EXEC, DISCARD and what is queued between them
            if (refused := self._refused_in_transaction(name, argv)) is not None:
                self._replies.append(refused)
                return
            reply, wrote = self.transaction.handle(self.store, argv)
            tick.wrote = tick.wrote or wrote
            self._replies.append(reply)
            return
        if own is not None:
            shown = name + b"|" + argv[1].lower() if name in _CONTAINERS and len(argv) > 1 else name
            self._replies.append(self._refused(shown.decode("latin-1"), argv) or own(self, argv[1:], tick))
            return
        command = COMMANDS.resolve(argv)
        if isinstance(command, ErrorReply):
            self._replies.append(command)
            return
        if (refused := self._refused(command, argv)) is not None:
            self._replies.append(refused)
            return
        reply = COMMANDS.run(self.store, command, argv)
        if Flag.WRITE in command.flags:
            tick.wrote = True
        if command.ends_session:
            tick.close = True
        self._replies.append(reply)

    def _refused_in_transaction(self, name: bytes, argv: list[bytes]) -> ErrorReply | None:
        """NOPERM for a transaction verb or a queued command the user may not run; a
        refused command dooms the transaction (EXEC replies EXECABORT), as in Redis."""
        target = name.decode("latin-1") if name in TRANSACTION_VERBS else COMMANDS.resolve(argv)
        refused = None if isinstance(target, ErrorReply) else self._refused(target, argv)
        if refused is not None and name not in TRANSACTION_VERBS:
            self.transaction.doomed = True
        return refused

    def _refused(self, command: Command | str, argv: list[bytes]) -> ErrorReply | None:
        """Redis's NOPERM when the logged-in user may not run `argv` (rule `kv.acl`)."""
        if self.user is None or self.user.unrestricted:  # AUTH, HELLO, QUIT before logging in; +@all ~*
            return None
        reason = refusal(self.user, command, argv)
        return None if reason is None else ErrorReply("NOPERM", reason)

    # -- the connection's own commands ------------------------------------------------------

    def _auth(self, arguments: list[bytes], tick: Tick) -> Reply:
        if len(arguments) not in (1, 2):
            return error("wrong number of arguments for 'auth' command")
        if len(arguments) == 1 and self._acl.open_default is not None:
            return error(
                "AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?"
            )
        name = arguments[0] if len(arguments) == 2 else b"default"
        user = self._acl.authenticate(name, arguments[-1])
        if user is None:
            return WRONG_PASSWORD
        self.user = user
        return OK

    def _hello(self, arguments: list[bytes], tick: Tick) -> Reply:
        protocol = self.protocol
        rest = arguments
        if rest:
            if not rest[0].isdigit() or int(rest[0]) not in (2, 3):
                return ErrorReply("NOPROTO", "unsupported protocol version")
            protocol, rest = int(rest[0]), rest[1:]
        while rest:
            option = rest[0].upper()
            if option == b"AUTH" and len(rest) >= 3:
                reply = self._auth(rest[1:3], tick)
                if isinstance(reply, ErrorReply):
                    return reply
                rest = rest[3:]
            elif option == b"SETNAME" and len(rest) >= 2:
                self.name, rest = rest[1], rest[2:]
            else:
                return error(f"Syntax error in HELLO option '{bytes_text(rest[0])}'")
        if not self.authenticated:
            return HELLO_NO_AUTH
        self.protocol = protocol
        fields: list[tuple[Reply, Reply]] = [
            (Bulk(b"server"), Bulk(b"kv")),
            (Bulk(b"version"), Bulk(kv_version().encode())),
            (Bulk(b"proto"), Integer(protocol)),
            (Bulk(b"id"), Integer(self.client_id)),
            (Bulk(b"mode"), Bulk(b"standalone")),
            (Bulk(b"role"), Bulk(b"master")),
            (Bulk(b"modules"), Array(())),
        ]
        return Map(tuple(fields))

    def _client(self, arguments: list[bytes], tick: Tick) -> Reply:
        subcommand = arguments[0].lower() if arguments else b""
        if subcommand == b"setname" and len(arguments) == 2:
            if b" " in arguments[1] or b"\n" in arguments[1]:
                return error("Client names cannot contain spaces, newlines or special characters.")
            self.name = arguments[1] or None
            return OK
        if subcommand == b"getname" and len(arguments) == 1:
            return Bulk(self.name)
        if subcommand == b"id" and len(arguments) == 1:
            return Integer(self.client_id)
        if subcommand == b"setinfo" and len(arguments) == 3:
            return OK
        return error(f"unknown subcommand or wrong number of arguments for '{bytes_text(subcommand)}'")

    def _select(self, arguments: list[bytes], tick: Tick) -> Reply:
        if len(arguments) != 1:
            return error("wrong number of arguments for 'select' command")
        if arguments[0] != b"0":
            return error("DB index is out of range")
        return OK

    def _config(self, arguments: list[bytes], tick: Tick) -> Reply:
        if len(arguments) < 2 or arguments[0].lower() != b"get":
            return error("CONFIG subcommands: GET parameter [parameter ...] (nothing else is configurable)")
        values = {
            b"save": b"",
            b"appendonly": b"yes" if self.config.durability != "none" else b"no",
            b"appendfsync": {"always": b"always", "batch": b"everysec"}.get(self.config.durability, b"no"),
            b"databases": b"1",
        }
        pairs = [(Bulk(name), Bulk(values[name])) for name in (a.lower() for a in arguments[1:]) if name in values]
        return Map(tuple(pairs))

    def _acl_command(self, arguments: list[bytes], tick: Tick) -> Reply:
        """ACL WHOAMI, USERS, LIST and CAT (the users are read-only: set in the file)."""
        subcommand = arguments[0].lower() if len(arguments) == 1 else b""
        assert self.user is not None
        if subcommand == b"whoami":
            return Bulk(self.user.name.encode())
        if subcommand == b"users":
            return bulk_array(sorted(name.encode() for name in self._acl.users))
        if subcommand == b"list":
            return bulk_array([user.describe().encode() for _, user in sorted(self._acl.users.items())])
        if subcommand == b"cat":
            return bulk_array(sorted(name.encode() for name in CATEGORIES))
        return error(f"unknown subcommand or wrong number of arguments for '{bytes_text(subcommand)}'")

    def _quit(self, arguments: list[bytes], tick: Tick) -> Reply:
        tick.close = True
        return OK

    def _shutdown(self, arguments: list[bytes], tick: Tick) -> Reply:
        tick.shutdown = tick.close = True
        return OK


_CONNECTION_COMMANDS: dict[bytes, Callable[[Session, list[bytes], Tick], Reply]] = {
    b"auth": Session._auth,
    b"hello": Session._hello,
    b"client": Session._client,
    b"select": Session._select,
    b"config": Session._config,
    b"acl": Session._acl_command,
    b"quit": Session._quit,
    b"shutdown": Session._shutdown,
}
