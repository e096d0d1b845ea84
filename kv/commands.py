"""The one command table: Redis command names, arities, flags and replies over a `Store`.

Sans-I/O: a command turns arguments into calls on the store and returns a typed reply
(`kv.replies`); nothing here prints, reads a socket or knows how a reply is shown. The
REPL (`kv.cli`) renders replies as redis-cli does; the server (issue 12) encodes the
same replies as RESP2/RESP3 and dispatches through this same table.

    reply = COMMANDS.execute(store, [b"SET", b"k", b"v"])   # SimpleString("OK")

What `execute` does, in the order Redis's `processCommand` does it:

1. look the name up, case-insensitively (a container such as COMMAND looks its second
   argument up among its subcommands); an unknown name or subcommand is an error
   worded as Redis 7 words it;
2. check the arity, Redis-style: `arity` counts the command name; N > 0 means exactly
   N arguments, -N at least N ("ERR wrong number of arguments for 'get' command");
3. run the handler `(store, arguments after the name) -> Reply`;
4. map a typed store error to an error reply, in one place (`error_for`):
   `StoreReadOnly` -> READONLY, `CorruptionDetected` -> CORRUPTION, `IoError` ->
   IOERR, any other `KvError` (a key too large, a closed store) -> ERR.

Adding a command is one `Command(...)` entry in `COMMANDS` and its handler.

Conditional SET (NX, XX) is the store's conditional write (`set(only_if_missing=...)`),
and GET beside it reads first: a REPL and a server that run one command at a time
cannot interleave a write between the two. SCAN walks the keys in
byte order with the store's stateless cursors (`Store.scan_cursor`: every key present
for the whole scan is returned at least once, whatever is written meanwhile); unlike
Redis's, a cursor names a key, so it can be longer than 64 bits, and a number the store
did not hand out is an invalid cursor.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from kv.errors import CorruptionDetected, InvalidArgument, IoError, KvError, StoreReadOnly, WrongType
from kv.ordered import CURSOR_KEY_BYTES_MAX
from kv.pattern import matcher
from kv.replies import (
    NIL,
    OK,
    PONG,
    Array,
    Bulk,
    ErrorReply,
    Integer,
    Reply,
    SimpleString,
    bulk_array,
    bytes_text,
    error,
    text_bytes,
)
from kv.store import INT64_MIN, Store, parse_int64

Handler = Callable[[Store, list[bytes]], Reply]

# Redis cuts the command name and the quoted arguments of "unknown command" at 128 bytes.
ERROR_ECHO_SIZE_MAX_BYTES = 128

# SCAN returns about this many keys per call unless COUNT says otherwise (Redis's default).
SCAN_COUNT_DEFAULT = 10

# VERIFY names at most this many problems in its one-line error reply.
VERIFY_PROBLEMS_SHOWN_MAX = 8


class Flag(enum.StrEnum):
    """Command flags, named as Redis's COMMAND reply names them."""

    WRITE = "write"  # changes the store: refused by a read-only store or replica
    READONLY = "readonly"  # reads keys only
    ADMIN = "admin"  # maintenance of the whole store
    FAST = "fast"  # O(1) or O(log n)


@dataclass(frozen=True)
class Command:
    """One command. `name` is lower case (Redis's `fullname`: `command|count` for a
    subcommand); `arity` as in Redis's command table; `syntax` and `summary` feed HELP;
    `first_key`, `last_key`, `key_step` say which arguments are keys (1-based, -1 = the
    last, as COMMAND INFO reports them), for ACL key patterns; `ends_session` tells the
    REPL to stop and the server to close the connection after the reply."""

    name: str
    arity: int
    flags: frozenset[Flag]
    handler: Handler
    syntax: str = ""
    summary: str = ""
    first_key: int = 0
    last_key: int = 0
    key_step: int = 0
    subcommands: Mapping[str, Command] = field(default_factory=dict)
    ends_session: bool = False

    def arity_fits(self, argument_count: int) -> bool:
        """Whether `argument_count` arguments, the name included, fit the arity."""
        return arity_fits(self.arity, argument_count)


def arity_fits(arity: int, argument_count: int) -> bool:
    """Redis's arity rule: exactly `arity` words (the name included), or at least
    `-arity` when it is negative."""
    return argument_count == arity if arity > 0 else argument_count >= -arity


class CommandTable:
    """Commands by name; `execute` is the one dispatcher (see the module docstring)."""

    def __init__(self, commands: Sequence[Command]) -> None:
        self._commands = {command.name: command for command in commands}
        assert len(self._commands) == len(commands), "two commands share a name"

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)

    def lookup(self, name: bytes) -> Command | None:
        """The top-level command called `name` (any case), or None."""
        return self._commands.get(bytes_text(name).lower())

    def resolve(self, argv: Sequence[bytes]) -> Command | ErrorReply:
        """The command (or subcommand) `argv` names, or the error reply for a bad name
        or a wrong number of arguments."""
        assert argv, "a command line has at least a name"
        command = self.lookup(argv[0])
        if command is None:
            return unknown_command(argv)
        if command.subcommands and len(argv) >= 2:
            subcommand = command.subcommands.get(bytes_text(argv[1]).lower())
            if subcommand is None:
                return unknown_subcommand(command.name, argv[1])
            command = subcommand
        if not command.arity_fits(len(argv)):
            return wrong_arity(command.name)
        return command

    def execute(self, store: Store, argv: Sequence[bytes]) -> Reply:
        """Run one command line (name first) against `store` and return its reply.
        Never raises a `KvError`: a store error becomes an error reply."""
        command = self.resolve(argv)
        if isinstance(command, ErrorReply):
            return command
        return self.run(store, command, argv)

    def run(self, store: Store, command: Command, argv: Sequence[bytes]) -> Reply:
        """Run `argv`, which `resolve` found to be `command` (a caller that resolved it
        already, as the server does to check the user's rights, saves a lookup)."""
        skip = 2 if "|" in command.name else 1
        try:
            return command.handler(store, list(argv[skip:]))
        except KvError as failure:
            return error_for(failure)


# -- error words -----------------------------------------------------------------------


def _c_string(data: bytes) -> bytes:
    """`data` up to its first NUL, as C's `%s` prints it."""
    return data.split(b"\0", 1)[0]


def unknown_command(argv: Sequence[bytes]) -> ErrorReply:
    """Redis 7's words: "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "."""
    limit = ERROR_ECHO_SIZE_MAX_BYTES
    echoed = b""
    for argument in argv[1:]:
        if len(echoed) >= limit:
            break
        echoed += b"'" + _c_string(argument)[: limit - len(echoed)] + b"' "
    name = bytes_text(_c_string(argv[0])[:limit])
    return error(f"unknown command '{name}', with args beginning with: {bytes_text(echoed)}")


def unknown_subcommand(container: str, subcommand: bytes) -> ErrorReply:
    name = bytes_text(_c_string(subcommand)[:ERROR_ECHO_SIZE_MAX_BYTES])
    return error(f"unknown subcommand '{name}'. Try {container.upper()} HELP.")


def wrong_arity(name: str) -> ErrorReply:
    return error(f"wrong number of arguments for '{name}' command")


SYNTAX_ERROR = error("syntax error")
NOT_AN_INTEGER = error("value is not an integer or out of range")


def error_for(failure: KvError) -> ErrorReply:
    """The one mapping from the store's typed errors to error replies."""
    if isinstance(failure, StoreReadOnly):
        prefix = "READONLY"
    elif isinstance(failure, CorruptionDetected):
        prefix = "CORRUPTION"
    elif isinstance(failure, IoError):
        prefix = "IOERR"
    elif isinstance(failure, WrongType):
        prefix = "WRONGTYPE"
    else:
        prefix = "ERR"
    return error(str(failure), prefix)


# -- argument parsing as Redis parses -----------------------------------------------------

_CURSOR = re.compile(rb"[0-9]+")
# The longest cursor the store hands out (a marker byte and CURSOR_KEY_BYTES_MAX bytes).
CURSOR_DIGITS_MAX = len(str(1 << (8 * (CURSOR_KEY_BYTES_MAX + 1))))
parse_integer = parse_int64  # an integer argument, as Redis's `string2ll` accepts it


def parse_cursor(data: bytes) -> int | None:
    """A SCAN cursor: the empty string is 0 (as Redis's `strtoul` check has it), else
    the decimal digits of a cursor the store handed out, or None."""
    if not data:
        return 0
    if _CURSOR.fullmatch(data) is None or len(data) > CURSOR_DIGITS_MAX:
        return None
    return int(data)


def _option(data: bytes) -> str:
    return bytes_text(data).upper()


# -- keys and values -----------------------------------------------------------------------


def _get(store: Store, arguments: list[bytes]) -> Reply:
    return Bulk(store.get(arguments[0]))


_EXPIRY_OPTIONS = ("EX", "PX", "EXAT", "PXAT")


def _set_options(options: list[bytes]) -> tuple[set[str], bytes | None] | ErrorReply:
    """SET's options and the value of its expiry option, checked as Redis's
    `parseExtendedStringArgumentsOrReply` checks them."""
    seen: set[str] = set()
    expiry_value: bytes | None = None
    position = 0
    while position < len(options):  # each pass consumes one option (two with a value)
        option = _option(options[position])
        timed = bool(seen & {"KEEPTTL", *_EXPIRY_OPTIONS})
        if option in ("NX", "XX") and ({"NX", "XX"} - {option}) & seen:
            return SYNTAX_ERROR
        if option in ("NX", "XX", "GET") or (option == "KEEPTTL" and not timed):
            seen.add(option)
        elif option in _EXPIRY_OPTIONS and not timed and position + 1 < len(options):
            seen.add(option)
            position += 1
            expiry_value = options[position]
        else:
            return SYNTAX_ERROR
        position += 1
    return seen, expiry_value


def _set_expiry(store: Store, key: bytes, seen: set[str], value: bytes | None) -> dict[str, float] | ErrorReply:
    """The `ttl=` or `expire_at=` of a SET, as Redis's `getExpireMillisecondsOrReply`
    checks its value; KEEPTTL keeps the key's expiry."""
    if "KEEPTTL" in seen:
        expiry_ms = store.pexpiretime(key)
        return {"expire_at": expiry_ms / 1000} if expiry_ms > 0 else {}
    if value is None:
        return {}
    amount = parse_integer(value)
    if amount is None:
        return NOT_AN_INTEGER
    if amount <= 0 or amount > _EXPIRY_MAX:
        return error("invalid expire time in 'set' command")
    scale = 1 if seen & {"EX", "EXAT"} else 1000
    return {"ttl": amount / scale} if seen & {"EX", "PX"} else {"expire_at": amount / scale}


def _set(store: Store, arguments: list[bytes]) -> Reply:
    key, value = arguments[0], arguments[1]
    parsed = _set_options(arguments[2:])
    if isinstance(parsed, ErrorReply):
        return parsed
    options, expiry_value = parsed
    expiry = _set_expiry(store, key, options, expiry_value)
    if isinstance(expiry, ErrorReply):
        return expiry
    old = store.get(key) if "GET" in options else None
    written = store.set(key, value, only_if_missing="NX" in options, only_if_present="XX" in options, **expiry)
    if "GET" in options:
        return Bulk(old)
    return OK if written else NIL


# Redis refuses an expiry past this many seconds (or ms) as out of range.
_EXPIRY_MAX = (1 << 63) // 1000 - 1


def _expire(seconds_scale: int, absolute: bool) -> Handler:
    """EXPIRE, PEXPIRE (relative) and EXPIREAT, PEXPIREAT (absolute)."""

    def handler(store: Store, arguments: list[bytes]) -> Reply:
        if len(arguments) > 2:
            return error(f"Unsupported option {bytes_text(arguments[2])}")
        amount = parse_integer(arguments[1])
        if amount is None:
            return NOT_AN_INTEGER
        when = amount / seconds_scale
        done = store.expire_at(arguments[0], when) if absolute else store.expire(arguments[0], when)
        return Integer(int(done))

    return handler


def _ttl_reply(read: str) -> Handler:
    """TTL, PTTL, EXPIRETIME, PEXPIRETIME: the store's answer (-2 missing, -1 none)."""

    def handler(store: Store, arguments: list[bytes]) -> Reply:
        answer: int = getattr(store, read)(arguments[0])
        return Integer(answer)

    return handler


def _persist(store: Store, arguments: list[bytes]) -> Reply:
    return Integer(int(store.persist(arguments[0])))


def _getdel(store: Store, arguments: list[bytes]) -> Reply:
    return Bulk(store.getdel(arguments[0]))


def _incr_by(sign: int, by_argument: bool) -> Handler:
    """INCR, DECR (by one) and INCRBY, DECRBY (by their second argument)."""

    def handler(store: Store, arguments: list[bytes]) -> Reply:
        by = parse_integer(arguments[1]) if by_argument else 1
        if by is None:
            return NOT_AN_INTEGER
        if sign < 0 and by == INT64_MIN:
            return error("decrement would overflow")  # Redis's DECRBY cannot negate it
        return Integer(store.incr(arguments[0], sign * by))

    return handler


def _delete(store: Store, arguments: list[bytes]) -> Reply:
    return Integer(sum(store.delete(key) for key in arguments))


def _exists(store: Store, arguments: list[bytes]) -> Reply:
    return Integer(sum(store.exists(key) for key in arguments))


def _mget(store: Store, arguments: list[bytes]) -> Reply:
    return bulk_array([_string_or_nil(store, key) for key in arguments])


def _string_or_nil(store: Store, key: bytes) -> bytes | None:
    """MGET's view of a key: its string, or nil for a missing key or a list (Redis)."""
    try:
        return store.get(key)
    except WrongType:
        return None


def _type(store: Store, arguments: list[bytes]) -> Reply:
    return SimpleString(store.value_type(arguments[0]))


# -- lists ---------------------------------------------------------------------------------


def _push(method: str) -> Handler:
    """RPUSH and LPUSH: every value in one frame; the reply is the new length."""

    def handler(store: Store, arguments: list[bytes]) -> Reply:
        push: Callable[..., int] = getattr(store, method)
        return Integer(push(arguments[0], *arguments[1:]))

    return handler


def _pop(end: str) -> Handler:
    """LPOP and RPOP, with Redis's replies: one element as a bulk (nil when the list
    is missing), or with a count an array (nil when missing, empty for a count of 0)."""

    def handler(store: Store, arguments: list[bytes]) -> Reply:
        if len(arguments) == 1:
            return Bulk(getattr(store, f"{end}pop")(arguments[0]))
        if len(arguments) > 2:
            return wrong_arity(f"{end}pop")
        count = parse_integer(arguments[1])
        if count is None or count < 0:
            return error("value is out of range, must be positive")
        if store.llen(arguments[0]) == 0:
            return Array(None)
        return bulk_array(getattr(store, f"{end}pop_many")(arguments[0], count))

    return handler


def _lrange(store: Store, arguments: list[bytes]) -> Reply:
    start, stop = parse_integer(arguments[1]), parse_integer(arguments[2])
    if start is None or stop is None:
        return NOT_AN_INTEGER
    return bulk_array(store.lrange(arguments[0], start, stop))


def _llen(store: Store, arguments: list[bytes]) -> Reply:
    return Integer(store.llen(arguments[0]))


def _mset(store: Store, arguments: list[bytes]) -> Reply:
    if len(arguments) % 2:
        return wrong_arity("mset")
    store.set_many(list(zip(arguments[0::2], arguments[1::2], strict=True)))
    return OK


def _dbsize(store: Store, _arguments: list[bytes]) -> Reply:
    return Integer(len(store))


def _keys(store: Store, arguments: list[bytes]) -> Reply:
    pattern = arguments[0]
    keys = store.keys()
    if pattern != b"*":  # Redis lists every key for a lone star, the empty key included
        keys = list(filter(matcher(pattern), keys))
    return bulk_array(keys)


def _scan_options(options: list[bytes]) -> tuple[int, bytes | None, bytes | None] | ErrorReply:
    """COUNT, MATCH and TYPE as Redis's `scanGenericCommand` parses them (the last of
    each wins)."""
    count, pattern, type_name = SCAN_COUNT_DEFAULT, None, None
    position = 0
    while position < len(options):  # each pass consumes an option and its value
        option = _option(options[position])
        if position + 1 >= len(options) or option not in ("COUNT", "MATCH", "TYPE"):
            return SYNTAX_ERROR
        value = options[position + 1]
        if option == "COUNT":
            parsed = parse_integer(value)
            if parsed is None:
                return NOT_AN_INTEGER
            if parsed < 1:
                return SYNTAX_ERROR
            count = parsed
        elif option == "MATCH":
            pattern = None if value == b"*" else value
        else:
            type_name = value
        position += 2
    return count, pattern, type_name


def _scan(store: Store, arguments: list[bytes]) -> Reply:
    cursor = parse_cursor(arguments[0])
    if cursor is None:
        return error("invalid cursor")
    options = _scan_options(arguments[1:])
    if isinstance(options, ErrorReply):
        return options
    count, pattern, type_name = options
    try:
        following, page = store.scan_cursor(cursor, count)
    except InvalidArgument:
        return error("invalid cursor")
    if pattern is not None:
        page = list(filter(matcher(pattern), page))
    if type_name is not None:  # an unknown type name matches nothing, as in Redis 7.0
        wanted = bytes_text(type_name).lower()
        page = [key for key in page if store.value_type(key) == wanted]
    return Array((Bulk(str(following).encode()), bulk_array(page)))


# -- connection, server and maintenance ------------------------------------------------------


def _ping(_store: Store, arguments: list[bytes]) -> Reply:
    if len(arguments) > 1:
        return wrong_arity("ping")
    return Bulk(arguments[0]) if arguments else PONG


def _echo(_store: Store, arguments: list[bytes]) -> Reply:
    return Bulk(arguments[0])


def _quit(_store: Store, _arguments: list[bytes]) -> Reply:
    return OK


def _compact(store: Store, _arguments: list[bytes]) -> Reply:
    store.compact()
    return OK


def _save(store: Store, _arguments: list[bytes]) -> Reply:
    store.flush()
    return OK


def _verify(store: Store, _arguments: list[bytes]) -> Reply:
    report = store.verify()
    if report.ok:
        checked = f"{report.files_checked} files, {report.frames_checked} frames, {report.records_checked} records"
        return SimpleString(f"OK {checked} checked")
    shown = "; ".join(report.problems[:VERIFY_PROBLEMS_SHOWN_MAX])
    more = len(report.problems) - VERIFY_PROBLEMS_SHOWN_MAX
    return error(f"{len(report.problems)} problems: {shown}" + (f"; and {more} more" if more > 0 else ""), "CORRUPTION")


def kv_version() -> str:
    """The installed distribution's version (`0+unknown` when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kv-sim")
    except PackageNotFoundError:
        return "0+unknown"


def _info_sections(store: Store) -> dict[str, list[tuple[str, object]]]:
    stats = store.stats()
    recovery = stats.recovery
    return {
        "server": [
            ("kv_version", kv_version()),
            ("directory", store.path),
            ("io", stats.io),
            ("durability", stats.durability),
            ("state", stats.state),
        ],
        "storage": [
            ("segments", stats.segments),
            ("compacted_files", stats.compacted_files),
            ("bytes_on_disk", stats.bytes_on_disk),
            ("live_bytes", stats.live_bytes),
            ("next_lsn", stats.next_lsn),
            ("durable_lsn", stats.durable_lsn),
            ("recovery_clean", int(recovery.clean)),
            ("recovery_torn_tails", len(recovery.torn_tails)),
            ("recovery_corruptions", len(recovery.corruptions)),
        ],
        "stats": [
            ("sets", stats.sets),
            ("gets", stats.gets),
            ("deletes", stats.deletes),
            ("syncs", stats.syncs),
            ("cache_hits", stats.cache_hits),
        ],
        "keyspace": [("db0", f"keys={stats.keys},expires={_expiring(store)},avg_ttl=0")] if stats.keys else [],
    }


def _expiring(store: Store) -> int:
    """How many keys have an expiry (one look at each key: INFO is not a hot path).
    avg_ttl stays 0, as Redis shows it until its expiry cycle has sampled keys."""
    return sum(store.pexpiretime(key) > 0 for key in store.keys())


def _info(store: Store, arguments: list[bytes]) -> Reply:
    """Redis's INFO layout: `# Section` then `field:value` lines, CRLF-terminated,
    sections apart by an empty line; unknown section names give nothing."""
    sections = _info_sections(store)
    asked = {bytes_text(argument).lower() for argument in arguments}
    if not asked or asked & {"all", "everything", "default"}:
        asked = set(sections)
    blocks = [
        f"# {name.capitalize()}\r\n" + "".join(f"{field}:{value}\r\n" for field, value in lines)
        for name, lines in sections.items()
        if name in asked
    ]
    return Bulk(text_bytes("\r\n".join(blocks)))


def _help(_store: Store, arguments: list[bytes]) -> Reply:
    commands = list(COMMANDS)
    if arguments:
        wanted = {bytes_text(argument).lower() for argument in arguments}
        commands = [command for command in commands if command.name in wanted]
        if not commands:
            return error(f"no help for {' '.join(sorted(wanted))}: HELP lists every command")
    lines = []
    for command in commands:
        for entry in [command, *command.subcommands.values()]:
            usage = entry.name.replace("|", " ").upper() + (f" {entry.syntax}" if entry.syntax else "")
            lines.append(f"{usage}\n    {entry.summary}\n")
    return Bulk("".join(lines).encode())


def _command_info(command: Command) -> Reply:
    """COMMAND INFO's ten fields for one command, as Redis 7 lays them out."""
    return Array(
        (
            Bulk(command.name.encode()),
            Integer(command.arity),
            Array(tuple(SimpleString(flag.value) for flag in sorted(command.flags))),
            Integer(command.first_key),
            Integer(command.last_key),
            Integer(command.key_step),
            Array(()),  # ACL categories
            Array(()),  # tips
            Array(()),  # key specifications
            Array(tuple(_command_info(subcommand) for subcommand in command.subcommands.values())),
        )
    )


def _command(_store: Store, _arguments: list[bytes]) -> Reply:
    return Array(tuple(_command_info(command) for command in COMMANDS))


def _command_count(_store: Store, _arguments: list[bytes]) -> Reply:
    return Integer(len(COMMANDS))


def _command_list(_store: Store, _arguments: list[bytes]) -> Reply:
    return bulk_array([command.name.encode() for command in COMMANDS])


def _command_information(_store: Store, arguments: list[bytes]) -> Reply:
    found = (COMMANDS.lookup(name) for name in arguments)
    return Array(tuple(Array(None) if command is None else _command_info(command) for command in found))


def _command_docs(_store: Store, _arguments: list[bytes]) -> Reply:
    return Array(())  # no documentation records: clients (redis-cli) fall back to their own


def _command_help(_store: Store, _arguments: list[bytes]) -> Reply:
    lines = ["COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", "(no subcommand)"]
    lines.append("    Return details about all commands.")
    for subcommand in _COMMAND_SUBCOMMANDS:
        lines += [subcommand.name.split("|")[1].upper() + f" {subcommand.syntax}".rstrip(), f"    {subcommand.summary}"]
    return Array(tuple(SimpleString(line) for line in lines))


_READ = frozenset({Flag.READONLY})
_READ_FAST = frozenset({Flag.READONLY, Flag.FAST})
_WRITE = frozenset({Flag.WRITE})
_WRITE_FAST = frozenset({Flag.WRITE, Flag.FAST})
_ADMIN = frozenset({Flag.ADMIN})
_FAST = frozenset({Flag.FAST})
_NONE: frozenset[Flag] = frozenset()

_COMMAND_SUBCOMMANDS = (
    Command("command|count", 2, _READ, _command_count, "", "Return the number of commands."),
    Command("command|docs", -2, _READ, _command_docs, "[command ...]", "Return documentation (none kept)."),
    Command("command|help", 2, _READ, _command_help, "", "Show this help."),
    Command("command|info", -2, _READ, _command_information, "[command ...]", "Return details about commands."),
    Command("command|list", 2, _READ, _command_list, "", "Return the names of all commands."),
)

COMMANDS = CommandTable(
    [
        Command("get", 2, _READ_FAST, _get, "key", "The value of key, or nil.", 1, 1, 1),
        Command(
            "set",
            -3,
            _WRITE,
            _set,
            syntax="key value [NX | XX] [GET] [EX seconds | PX ms | EXAT unix-time | PXAT unix-ms | KEEPTTL]",
            summary="Store value under key (NX: only if absent, XX: only if present, GET: reply the old value).",
            first_key=1,
            last_key=1,
            key_step=1,
        ),
        Command("del", -2, _WRITE, _delete, "key [key ...]", "Remove keys; replies how many existed.", 1, -1, 1),
        Command("expire", -3, _WRITE_FAST, _expire(1, False), "key seconds", "Expire key in seconds.", 1, 1, 1),
        Command("pexpire", -3, _WRITE_FAST, _expire(1000, False), "key ms", "Expire key in milliseconds.", 1, 1, 1),
        Command("expireat", -3, _WRITE_FAST, _expire(1, True), "key unix-time", "Expire key at a time.", 1, 1, 1),
        Command("pexpireat", -3, _WRITE_FAST, _expire(1000, True), "key unix-ms", "Expire key at a time.", 1, 1, 1),
        Command("persist", 2, _WRITE_FAST, _persist, "key", "Remove key's expiry.", 1, 1, 1),
        Command("ttl", 2, _READ_FAST, _ttl_reply("ttl"), "key", "Seconds left (-1 none, -2 missing).", 1, 1, 1),
        Command("pttl", 2, _READ_FAST, _ttl_reply("pttl"), "key", "Milliseconds left.", 1, 1, 1),
        Command("expiretime", 2, _READ_FAST, _ttl_reply("expiretime"), "key", "Unix time it expires.", 1, 1, 1),
        Command("pexpiretime", 2, _READ_FAST, _ttl_reply("pexpiretime"), "key", "Unix ms it expires.", 1, 1, 1),
        Command("getdel", 2, _WRITE_FAST, _getdel, "key", "The value of key, removing it (nil when missing).", 1, 1, 1),
        Command("incr", 2, _WRITE_FAST, _incr_by(1, False), "key", "Add 1 to the integer under key.", 1, 1, 1),
        Command("decr", 2, _WRITE_FAST, _incr_by(-1, False), "key", "Subtract 1 from it.", 1, 1, 1),
        Command("incrby", 3, _WRITE_FAST, _incr_by(1, True), "key increment", "Add increment to it.", 1, 1, 1),
        Command("decrby", 3, _WRITE_FAST, _incr_by(-1, True), "key decrement", "Subtract decrement.", 1, 1, 1),
        Command("exists", -2, _READ_FAST, _exists, "key [key ...]", "How many of the keys exist.", 1, -1, 1),
        Command("mget", -2, _READ_FAST, _mget, "key [key ...]", "The values of the keys (nil when missing).", 1, -1, 1),
        Command("mset", -3, _WRITE, _mset, "key value [key value ...]", "Store every pair, all or none.", 1, -1, 2),
        Command("type", 2, _READ_FAST, _type, "key", "string, list or none.", 1, 1, 1),
        Command("rpush", -3, _WRITE_FAST, _push("rpush"), "key value [value ...]", "Append to a list.", 1, 1, 1),
        Command("lpush", -3, _WRITE_FAST, _push("lpush"), "key value [value ...]", "Prepend to a list.", 1, 1, 1),
        Command("rpop", -2, _WRITE_FAST, _pop("r"), "key [count]", "Remove and return the last elements.", 1, 1, 1),
        Command("lpop", -2, _WRITE_FAST, _pop("l"), "key [count]", "Remove and return the first elements.", 1, 1, 1),
        Command("lrange", 4, _READ, _lrange, "key start stop", "Elements start..stop (inclusive; -1 last).", 1, 1, 1),
        Command("llen", 2, _READ_FAST, _llen, "key", "The length of a list (0 when missing).", 1, 1, 1),
        Command("dbsize", 1, _READ_FAST, _dbsize, "", "The number of keys."),
        Command("keys", 2, _READ, _keys, "pattern", "Every key matching a glob pattern (* ? [a-z] [^a] \\x)."),
        Command(
            "scan",
            -2,
            _READ,
            _scan,
            syntax="cursor [MATCH pattern] [COUNT count] [TYPE type]",
            summary="Iterate over the keys, COUNT at a time; a cursor of 0 starts and ends the walk.",
        ),
        Command("ping", -1, _FAST, _ping, "[message]", "PONG, or the message."),
        Command("echo", 2, _FAST, _echo, "message", "The message."),
        Command("info", -1, _NONE, _info, "[section ...]", "Sections server, storage, stats, keyspace."),
        Command("compact", 1, _WRITE | _ADMIN, _compact, "", "Rewrite the live records into one compacted file."),
        Command("verify", 1, _READ | _ADMIN, _verify, "", "Read back every file and record and check every checksum."),
        Command("save", 1, _ADMIN, _save, "", "Write and sync everything pending (durability batch or none)."),
        Command(
            "command",
            -1,
            _NONE,
            _command,
            syntax="[subcommand]",
            summary="Details about the commands.",
            subcommands={subcommand.name.split("|")[1]: subcommand for subcommand in _COMMAND_SUBCOMMANDS},
        ),
        Command("help", -1, _NONE, _help, "[command ...]", "This text, or the entries of the commands named."),
        Command("quit", -1, _FAST, _quit, "", "Close the session.", ends_session=True),
        Command("exit", -1, _FAST, _quit, "", "Close the session (as QUIT).", ends_session=True),
    ]
)
