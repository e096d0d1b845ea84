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
ID / SETINFO, SELECT 0, CONFIG GET (the few parameters clients ask for), ACL WHOAMI /
USERS / LIST / CAT, MULTI / EXEC / DISCARD (`kv.transaction`), QUIT and SHUTDOWN.
Every command is checked in Redis's order before it runs or is queued (`_admit`): its
name and arity, then authentication (with a password or an ACL set, nothing but AUTH,
HELLO and QUIT runs before the client logs in: Redis's NOAUTH), then what MULTI may
not hold, then the user's rights (`kv.acl`). Each reply is encoded in the protocol in
force when its command ran (a pipelined HELLO switches it for the replies after it
only). Malformed bytes get Redis's protocol error, and the connection closes after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kv.acl import (
    ALWAYS_ALLOWED,
    CATEGORIES,
    CONNECTION_COMMANDS,
    NO_PERMISSION_KEYS,
    TRANSACTION_COMMANDS,
    Acl,
    User,
    refusal,
)
from kv.commands import (
    COMMANDS,
    NOT_AN_INTEGER,
    SYNTAX_ERROR,
    Command,
    Flag,
    arity_fits,
    error_for,
    kv_version,
    parse_integer,
    unknown_subcommand,
    wrong_arity,
)
from kv.errors import KvError
from kv.replies import OK, Array, Bulk, ErrorReply, InProtocol, Integer, Map, Reply, bulk_array, bytes_text, error
from kv.resp import ProtocolError, RequestParser, encode
from kv.store import Store
from kv.transaction import EXEC_ABORT, TRANSACTION_VERBS, Transaction

NO_AUTH = ErrorReply("NOAUTH", "Authentication required.")
HELLO_NO_AUTH = ErrorReply(
    "NOAUTH",
    "HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> "
    "option can be used to authenticate the client and select the RESP protocol version at the same time",
)
WRONG_PASSWORD = ErrorReply("WRONGPASS", "invalid username-password pair or user is disabled.")
# The connection commands that run before authentication, as in Redis.
_BEFORE_AUTH = frozenset(name.encode() for name in ALWAYS_ALLOWED)
# Commands refused inside MULTI: Redis's no-multi ones that kv has (SHUTDOWN, SAVE), and
# COMPACT (it syncs: EXEC's writes would not be one frame) and EXIT (kv's QUIT alias).
_NOT_IN_TRANSACTION = frozenset({b"shutdown", b"save", b"compact", b"exit"})
NOT_IN_TRANSACTION = error("Command not allowed inside a transaction")
BAD_CLIENT_NAME = error("Client names cannot contain spaces, newlines or special characters.")


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
        """Run every whole command in `data` (and what was buffered before it). Raises
        nothing but what a command raises that is not a `KvError` (a bug; the caller
        answers it with `internal_error`)."""
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

    def internal_error(self, bug: Exception) -> Tick:
        """`receive` raised `bug`: an `ERR internal error` reply, and the connection
        closes after it. The tick counts as a write: the commands before the one that
        raised may have written, and their replies, like every other connection's,
        must wait for the sync that covers those writes (`kv.group_commit`)."""
        self._replies.append(error(f"internal error: {type(bug).__name__}: {bug}"))
        self._closing = True
        return Tick(wrote=True, close=True)

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
        if name == b"quit":  # Redis answers QUIT before any check, inside MULTI too
            self._replies.append(OK)
            tick.close = True
            return
        target = self._admit(name, argv)
        if isinstance(target, ErrorReply):
            self._replies.append(self._rejected(name, target))
        elif self.transaction.active and name not in TRANSACTION_VERBS:
            self._replies.append(self.transaction.queue(argv))  # kv.transaction rule 1
        else:
            self._replies.append(self._call(target, argv, tick))

    def _admit(self, name: bytes, argv: list[bytes]) -> Command | OwnCommand | ErrorReply:
        """What `argv` runs, or why it may not, checked in Redis's order: the name and
        arity, authentication, what a transaction may not hold, the user's rights."""
        own = _CONNECTION_COMMANDS.get(name)
        target = COMMANDS.resolve(argv) if own is None else _own_command(name, argv) or own
        if isinstance(target, ErrorReply):
            return target
        if not self.authenticated and name not in _BEFORE_AUTH:
            return NO_AUTH
        if self.transaction.active and name in _NOT_IN_TRANSACTION:
            return NOT_IN_TRANSACTION
        if self.user is None or self.user.unrestricted:  # AUTH, HELLO before logging in; +@all ~*
            return target
        shown = _shown_name(name, argv) if own is not None else target
        assert isinstance(shown, Command | str)
        reason = refusal(self.user, shown, argv)
        return target if reason is None else error(reason, "NOPERM")

    def _rejected(self, name: bytes, reply: ErrorReply) -> ErrorReply:
        """A refused command dooms an open transaction; a refused EXEC ends it, naming
        the reason (kv.transaction rules 1 and 2, Redis's rejectCommand)."""
        if name != b"exec":
            self.transaction.doom()
            return reply
        if self.transaction.active:
            self.transaction.end()
        reason = reply.message if reply.prefix == "ERR" else reply.text
        return ErrorReply("EXECABORT", f"Transaction discarded because of: {reason}")

    def _call(self, target: Command | OwnCommand, argv: list[bytes], tick: Tick) -> Reply:
        if not isinstance(target, Command):
            return target(self, argv[1:], tick)
        reply = COMMANDS.run(self.store, target, argv)
        if Flag.WRITE in target.flags:
            tick.wrote = True
        if target.ends_session:
            tick.close = True
        return reply

    # -- MULTI, EXEC, DISCARD (kv.transaction) -----------------------------------------

    def _multi(self, arguments: list[bytes], tick: Tick) -> Reply:
        if self.transaction.active:
            return error("MULTI calls can not be nested")
        self.transaction.begin()
        return OK

    def _exec(self, arguments: list[bytes], tick: Tick) -> Reply:
        """Rule 3: the queued commands, each admitted again (a queued AUTH may have
        changed the user)."""
        if not self.transaction.active:
            return error("EXEC without MULTI")
        queued, doomed = self.transaction.end()
        if doomed:
            return EXEC_ABORT
        replies: list[Reply] = []
        try:
            with self.store.holding(len(queued)):  # one frame: all or none after a crash (kv.transaction)
                for argv in queued:
                    target = self._admit(argv[0].lower(), argv)
                    if isinstance(target, ErrorReply):
                        replies.append(_changed_rights(target))
                        continue
                    protocol = self.protocol
                    replies.append(self._call(target, argv, tick))
                    if self.protocol != protocol:  # a queued HELLO: the replies before it keep the old one
                        replies[:-1] = _in_protocol(replies[:-1], protocol)
        except KvError as failure:  # a bound's commit, before or after the commands, failed
            return error_for(failure)
        return Array(tuple(replies))

    def _discard(self, arguments: list[bytes], tick: Tick) -> Reply:
        if not self.transaction.active:
            return error("DISCARD without MULTI")
        self.transaction.end()
        return OK

    # -- the connection's own commands (arity and subcommand checked by `_admit`) ----------

    def _auth(self, arguments: list[bytes], tick: Tick) -> Reply:
        if len(arguments) > 2:
            return SYNTAX_ERROR
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
        protocol, rest, name = self.protocol, arguments, self.name
        if rest:
            version = parse_integer(rest[0])
            if version is None:
                return error("Protocol version is not an integer or out of range")
            if version not in (2, 3):
                return ErrorReply("NOPROTO", "unsupported protocol version")
            protocol, rest = version, rest[1:]
        while rest:
            option = rest[0].upper()
            if option == b"AUTH" and len(rest) >= 3:
                reply = self._auth(rest[1:3], tick)
                if isinstance(reply, ErrorReply):
                    return reply
                rest = rest[3:]
            elif option == b"SETNAME" and len(rest) >= 2:
                if not _valid_client_name(rest[1]):
                    return BAD_CLIENT_NAME
                name, rest = rest[1] or None, rest[2:]
            else:
                return error(f"Syntax error in HELLO option '{bytes_text(rest[0])}'")
        if not self.authenticated:
            return HELLO_NO_AUTH
        self._replies[:] = _in_protocol(
            self._replies, self.protocol
        )  # made before the switch (in place: `_run` appends to it)
        self.protocol, self.name = protocol, name
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
        subcommand = arguments[0].lower()
        if subcommand == b"setname":
            if not _valid_client_name(arguments[1]):
                return BAD_CLIENT_NAME
            self.name = arguments[1] or None
            return OK
        if subcommand == b"getname":
            return Bulk(self.name)
        if subcommand == b"id":
            return Integer(self.client_id)
        return OK  # SETINFO: clients send it; kv keeps nothing of it

    def _select(self, arguments: list[bytes], tick: Tick) -> Reply:
        index = parse_integer(arguments[0])
        if index is None:
            return NOT_AN_INTEGER
        if not -(1 << 31) <= index < 1 << 31:  # Redis reads it as a C int
            return error("value is out of range, value must between -2147483648 and 2147483647")
        return OK if index == 0 else error("DB index is out of range")

    def _config(self, arguments: list[bytes], tick: Tick) -> Reply:
        """CONFIG GET (nothing is configurable at run time)."""
        values = {
            b"save": b"",
            b"appendonly": b"yes" if self.config.durability != "none" else b"no",
            b"appendfsync": {"always": b"always", "batch": b"everysec"}.get(self.config.durability, b"no"),
            b"databases": b"1",
        }
        pairs = [(Bulk(name), Bulk(values[name])) for name in (a.lower() for a in arguments[1:]) if name in values]
        return Map(tuple(pairs))

    def _acl_command(self, arguments: list[bytes], tick: Tick) -> Reply:
        """ACL WHOAMI, USERS, LIST and CAT [category] (the users are read-only: set in the file)."""
        subcommand = arguments[0].lower()
        assert self.user is not None
        if subcommand == b"whoami":
            return Bulk(self.user.name.encode())
        if subcommand == b"users":
            return bulk_array(sorted(name.encode() for name in self._acl.users))
        if subcommand == b"list":
            return bulk_array([user.describe().encode() for _, user in sorted(self._acl.users.items())])
        if len(arguments) == 1:
            return bulk_array(sorted(name.encode() for name in CATEGORIES))
        if len(arguments) > 2:
            return error("unknown subcommand or wrong number of arguments for 'CAT'. Try ACL HELP.")
        members = CATEGORIES.get(bytes_text(arguments[1]).lower())
        if members is None:
            return error(f"Unknown category '{bytes_text(arguments[1])}'")
        return bulk_array(sorted(name.encode() for name in members))

    def _shutdown(self, arguments: list[bytes], tick: Tick) -> Reply:
        tick.shutdown = tick.close = True
        return OK


OwnCommand = Callable[[Session, list[bytes], Tick], Reply]

_CONNECTION_COMMANDS: dict[bytes, OwnCommand] = {
    b"auth": Session._auth,
    b"hello": Session._hello,
    b"client": Session._client,
    b"select": Session._select,
    b"config": Session._config,
    b"acl": Session._acl_command,
    b"shutdown": Session._shutdown,
    b"multi": Session._multi,
    b"exec": Session._exec,
    b"discard": Session._discard,
}
# kv.acl names them for its categories: the two lists are one (QUIT is answered first).
assert {name.decode() for name in _CONNECTION_COMMANDS} | {"quit"} == CONNECTION_COMMANDS | TRANSACTION_COMMANDS
# Redis's arities of the connection's own commands (negative: at least that many
# words, the name included), and of the subcommands of those that have them.
_ARITIES: dict[bytes, int] = {
    b"auth": -2,
    b"hello": -1,
    b"client": -2,
    b"select": 2,
    b"config": -2,
    b"acl": -2,
    b"shutdown": -1,
    b"multi": 1,
    b"exec": 1,
    b"discard": 1,
}
_SUBCOMMANDS: dict[bytes, dict[bytes, int]] = {
    b"client": {b"setname": 3, b"getname": 2, b"id": 2, b"setinfo": 4},
    b"config": {b"get": -3},
    b"acl": {b"whoami": 2, b"users": 2, b"list": 2, b"cat": -2},
}


def _in_protocol(replies: list[Reply], protocol: int) -> list[Reply]:
    """`replies`, each bound to `protocol` unless already bound to one (`InProtocol`)."""
    return [reply if isinstance(reply, InProtocol) else InProtocol(reply, protocol) for reply in replies]


def _changed_rights(refused: ErrorReply) -> ErrorReply:
    """A queued command refused at EXEC (the user changed since, by a queued AUTH), in
    Redis's words."""
    if refused.prefix != "NOPERM":
        return refused
    reason = (
        "touch the specified keys" if refused.message == NO_PERMISSION_KEYS else "execute the command or subcommand"
    )
    return ErrorReply(
        "NOPERM",
        "ACLs rules changed between the moment the transaction was accumulated and the EXEC call. "
        f"This command is no longer allowed for the following reason: no permission to {reason}",
    )


def _own_command(name: bytes, argv: list[bytes]) -> ErrorReply | None:
    """Redis's checks of a connection command's words: its arity, then its
    subcommand's name and arity."""
    if not arity_fits(_ARITIES[name], len(argv)):
        return wrong_arity(name.decode())
    subcommands = _SUBCOMMANDS.get(name)
    if subcommands is None:
        return None
    arity = subcommands.get(argv[1].lower())
    if arity is None:
        return unknown_subcommand(name.decode(), argv[1])
    if not arity_fits(arity, len(argv)):
        return wrong_arity(_shown_name(name, argv))
    return None


def _shown_name(name: bytes, argv: list[bytes]) -> str:
    """A connection command as Redis names it in errors: `client|setname` for a
    subcommand."""
    shown = name + b"|" + argv[1].lower() if name in _SUBCOMMANDS else name
    return shown.decode("latin-1")


def _valid_client_name(name: bytes) -> bool:
    """Redis's rule: only the characters from '!' to '~' (no spaces, no newlines)."""
    return all(0x21 <= byte <= 0x7E for byte in name)
