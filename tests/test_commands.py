"""The command table: every command's replies, arities, and Redis 7's error words."""

from __future__ import annotations

import pytest

import kv
from io_backends.sim import SimIo
from kv.commands import COMMANDS, Command, CommandTable, Flag, error_for, parse_cursor, parse_integer
from kv.errors import CorruptionDetected, IoError, KeyTooLarge, StoreClosed, StoreReadOnly
from kv.replies import NIL, OK, PONG, Array, Bulk, ErrorReply, Integer, Reply, SimpleString, bulk_array
from kv.store import Store


@pytest.fixture
def store() -> Store:
    return kv.open("/db", io=SimIo(seed=0))


def run(store: Store, *argv: bytes | str) -> Reply:
    return COMMANDS.execute(store, [word.encode() if isinstance(word, str) else word for word in argv])


def err(message: str, prefix: str = "ERR") -> ErrorReply:
    return ErrorReply(prefix, message)


def test_get_set_del_exists(store: Store) -> None:
    assert run(store, "GET", "k") == NIL
    assert run(store, "set", "k", b"\xff\x00v") == OK
    assert run(store, "GET", "k") == Bulk(b"\xff\x00v")
    assert run(store, "EXISTS", "k", "k", "missing") == Integer(2)  # each mention counts, as in Redis
    assert run(store, "DEL", "k", "k", "missing") == Integer(1)
    assert run(store, "GET", "k") == NIL


def test_set_nx_xx_get(store: Store) -> None:
    assert run(store, "SET", "k", "1", "XX") == NIL
    assert run(store, "SET", "k", "1", "NX") == OK
    assert run(store, "SET", "k", "2", "NX") == NIL
    assert run(store, "GET", "k") == Bulk(b"1")
    assert run(store, "SET", "k", "2", "xx", "GET") == Bulk(b"1")
    assert run(store, "SET", "k", "3", "NX", "GET") == Bulk(b"2")  # not set; the old value all the same
    assert run(store, "SET", "new", "v", "GET") == NIL
    assert run(store, "SET", "k", "v", "NX", "NX") == NIL  # a repeated flag is allowed, as in Redis
    assert run(store, "SET", "k", "v", "KEEPTTL") == OK
    assert run(store, "SET", "k", "v", "NX", "XX") == err("syntax error")
    assert run(store, "SET", "k", "v", "FOO") == err("syntax error")
    assert run(store, "SET", "k", "v", "EX") == err("syntax error")
    assert run(store, "SET", "k", "v", "EX", "10") == OK
    assert run(store, "TTL", "k") == Integer(10)
    assert run(store, "SET", "k", "v", "KEEPTTL") == OK and run(store, "TTL", "k") == Integer(10)
    assert run(store, "SET", "k", "v") == OK and run(store, "TTL", "k") == Integer(-1)
    assert run(store, "SET", "k", "v", "EX", "0") == err("invalid expire time in 'set' command")
    assert run(store, "SET", "k", "v", "PX", "10", "EX", "1") == err("syntax error")
    assert run(store, "PTTL", "missing") == Integer(-2)


def test_mget_mset_dbsize(store: Store) -> None:
    assert run(store, "MSET", "a", "1", "b", "2") == OK
    assert run(store, "MGET", "a", "missing", "b") == Array((Bulk(b"1"), NIL, Bulk(b"2")))
    assert run(store, "DBSIZE") == Integer(2)
    assert run(store, "MSET", "a", "1", "b") == err("wrong number of arguments for 'mset' command")


def test_keys_and_scan(store: Store) -> None:
    run(store, "MSET", "user:1", "a", "user:2", "b", "other", "c", "", "empty")
    assert run(store, "KEYS", "user:*") == bulk_array([b"user:1", b"user:2"])
    assert run(store, "KEYS", "*") == bulk_array([b"", b"other", b"user:1", b"user:2"])  # a lone * lists the empty key
    assert run(store, "KEYS", "**") == bulk_array([b"other", b"user:1", b"user:2"])
    assert run(store, "KEYS", "[^u]*") == bulk_array([b"other"])
    walked: list[bytes] = []
    cursor = b"0"
    for _ in range(10):
        reply = run(store, "SCAN", cursor, "COUNT", "3")
        assert isinstance(reply, Array) and reply.items is not None
        cursor_reply, page = reply.items
        assert isinstance(cursor_reply, Bulk) and isinstance(page, Array) and page.items is not None
        walked += [item.value for item in page.items if isinstance(item, Bulk) and item.value is not None]
        cursor = cursor_reply.value or b""
        if cursor == b"0":
            break
    assert walked == [b"", b"other", b"user:1", b"user:2"]
    page_reply = run(store, "SCAN", "0", "MATCH", "user:*", "COUNT", "100")
    assert page_reply == Array((Bulk(b"0"), bulk_array([b"user:1", b"user:2"])))
    assert run(store, "SCAN", "0", "TYPE", "list") == Array((Bulk(b"0"), Array(())))
    store.rpush(b"queue", b"job")
    assert run(store, "SCAN", "0", "TYPE", "list", "COUNT", "100") == Array((Bulk(b"0"), bulk_array([b"queue"])))
    strings = run(store, "SCAN", "0", "TYPE", "string", "COUNT", "100")
    assert strings == Array((Bulk(b"0"), bulk_array([b"", b"other", b"user:1", b"user:2"])))
    assert run(store, "SCAN", "0", "TYPE", "hash", "COUNT", "100") == Array((Bulk(b"0"), Array(())))
    store.delete(b"queue")
    assert run(store, "SCAN", "0", "type", "STRING", "count", "1") == Array((Bulk(b"1"), bulk_array([b""])))


@pytest.mark.parametrize(
    ("argv", "reply"),
    [
        (["SCAN", "abc"], err("invalid cursor")),
        (["SCAN", " 1"], err("invalid cursor")),
        (["SCAN", "17"], err("invalid cursor")),  # 0x11: no cursor the store hands out
        (["SCAN", "-1"], err("invalid cursor")),
        (["SCAN", "0", "COUNT", "0"], err("syntax error")),
        (["SCAN", "0", "COUNT", "x"], err("value is not an integer or out of range")),
        (["SCAN", "0", "COUNT", "05"], err("value is not an integer or out of range")),
        (["SCAN", "0", "MATCH"], err("syntax error")),
        (["SCAN", "0", "FOO", "bar"], err("syntax error")),
    ],
)
def test_scan_errors(store: Store, argv: list[str], reply: Reply) -> None:
    assert run(store, *argv) == reply


def test_parsing_as_redis_parses() -> None:
    assert [parse_integer(text) for text in (b"0", b"-5", b"12", b"+1", b"05", b"-0", b" 1", b"", b"1x")] == [
        0,
        -5,
        12,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    assert parse_integer(b"9223372036854775807") == (1 << 63) - 1
    assert parse_integer(b"9223372036854775808") is None
    # The store's cursors are plain digits, of any length up to a key's cursor.
    assert [parse_cursor(text) for text in (b"", b"0", b"+3", b"-1", b"1 ", b"-", b"0x1")] == [
        0,
        0,
        None,
        None,
        None,
        None,
        None,
    ]
    assert parse_cursor(b"18446744073709551616") == 1 << 64
    assert parse_cursor(b"9" * 3000) is None


def test_ping_echo_quit(store: Store) -> None:
    assert run(store, "PING") == PONG
    assert run(store, "ping", "hi") == Bulk(b"hi")
    assert run(store, "PING", "a", "b") == err("wrong number of arguments for 'ping' command")
    assert run(store, "ECHO", b"\x00x") == Bulk(b"\x00x")
    assert run(store, "QUIT") == OK
    quit_command = COMMANDS.lookup(b"quit")
    assert quit_command is not None and quit_command.ends_session


def test_info_sections(store: Store) -> None:
    run(store, "SET", "k", "v")
    reply = run(store, "INFO")
    assert isinstance(reply, Bulk) and reply.value is not None
    text = reply.value.decode()
    assert text.startswith("# Server\r\nkv_version:")
    assert "\r\n\r\n# Storage\r\n" in text and "\r\n\r\n# Stats\r\n" in text
    assert text.endswith("# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n")
    assert "sets:1\r\n" in text and "io:sim\r\n" in text and "durability:always\r\n" in text
    assert run(store, "INFO", "KEYSPACE") == Bulk(b"# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n")
    assert run(store, "INFO", "nosuch") == Bulk(b"")
    run(store, "DEL", "k")
    assert run(store, "INFO", "keyspace") == Bulk(b"# Keyspace\r\n")  # no db line without keys, as in Redis


def test_compact_verify_save(store: Store) -> None:
    run(store, "MSET", "a", "1", "b", "2")
    assert run(store, "COMPACT") == OK
    verified = run(store, "VERIFY")
    assert isinstance(verified, SimpleString) and verified.text.startswith("OK ") and "2 records" in verified.text
    assert run(store, "SAVE") == OK
    assert run(store, "GET", "a") == Bulk(b"1")


def test_command_count_and_friends(store: Store) -> None:
    assert run(store, "COMMAND", "COUNT") == Integer(len(COMMANDS))
    listed = run(store, "COMMAND", "LIST")
    assert isinstance(listed, Array) and Bulk(b"get") in (listed.items or ())
    assert run(store, "COMMAND", "COUNT", "x") == err("wrong number of arguments for 'command|count' command")
    assert run(store, "COMMAND", "FOO") == err("unknown subcommand 'FOO'. Try COMMAND HELP.")
    information = run(store, "COMMAND", "INFO", "get", "nosuch")
    assert isinstance(information, Array) and information.items is not None
    get_info, missing = information.items
    assert missing == Array(None)
    assert isinstance(get_info, Array) and get_info.items is not None
    assert get_info.items[:6] == (
        Bulk(b"get"),
        Integer(2),
        Array((SimpleString("fast"), SimpleString("readonly"))),
        Integer(1),
        Integer(1),
        Integer(1),
    )
    every = run(store, "COMMAND")
    assert isinstance(every, Array) and len(every.items or ()) == len(COMMANDS)


def test_help_is_built_from_the_table(store: Store) -> None:
    reply = run(store, "HELP")
    assert isinstance(reply, Bulk) and reply.value is not None
    for command in COMMANDS:
        assert command.name.upper().encode() in reply.value
    assert b"COMMAND COUNT" in reply.value
    assert run(store, "help", "get") == Bulk(b"GET key\n    The value of key, or nil.\n")
    assert run(store, "HELP", "nosuch") == err("no help for nosuch: HELP lists every command")


def test_unknown_command_words_as_redis_7() -> None:
    store_free = CommandTable([])
    reply = store_free.execute(None, [b"FOO", b"a", b"b"])  # type: ignore[arg-type]  # no store needed
    assert reply == err("unknown command 'FOO', with args beginning with: 'a' 'b' ")
    assert store_free.execute(None, [b"FOO"]) == err("unknown command 'FOO', with args beginning with: ")  # type: ignore[arg-type]
    long_reply = store_free.execute(None, [b"x" * 200, b"y" * 200, b"z"])  # type: ignore[arg-type]
    assert long_reply == err(f"unknown command '{'x' * 128}', with args beginning with: '{'y' * 128}' ")
    newline_reply = store_free.execute(None, [b"FOO", b"a\nb", b"c\x00d"])  # type: ignore[arg-type]
    assert newline_reply == err("unknown command 'FOO', with args beginning with: 'a b' 'c' ")


@pytest.mark.parametrize(
    "command", [command for command in COMMANDS if command.arity != -1], ids=lambda command: command.name
)
def test_every_arity_is_checked(store: Store, command: Command) -> None:
    """One argument too many (a fixed arity) or too few (a minimum) gets Redis's words."""
    if command.arity > 0:
        wrong = [command.name.encode()] + [b"x"] * command.arity
    else:
        wrong = [command.name.encode()] + [b"x"] * (-command.arity - 2)
    assert COMMANDS.execute(store, wrong) == err(f"wrong number of arguments for '{command.name}' command")


def test_flags_say_what_a_command_does() -> None:
    for command in COMMANDS:
        assert not {Flag.WRITE, Flag.READONLY} <= command.flags, command.name
    writes = {command.name for command in COMMANDS if Flag.WRITE in command.flags}
    expiry = {"expire", "pexpire", "expireat", "pexpireat", "persist"}
    lists = {"rpush", "lpush", "rpop", "lpop"}
    assert writes == {"set", "del", "getdel", "incr", "decr", "incrby", "decrby", "mset", "compact", *expiry, *lists}


def test_store_errors_map_in_one_place(store: Store) -> None:
    assert error_for(StoreReadOnly("an earlier sync failed")) == err("an earlier sync failed", "READONLY")
    assert error_for(CorruptionDetected("bad\nframe")) == err("bad frame", "CORRUPTION")
    assert error_for(IoError(5, "Input/output error", "/db/x", "read")).prefix == "IOERR"
    assert error_for(KeyTooLarge("key is big")) == err("key is big")
    assert run(store, "SET", "k" * 20_000, "v") == err("key is 20000 bytes; the limit is 16384")
    store.close()
    closed = run(store, "GET", "k")
    assert isinstance(closed, ErrorReply) and closed.prefix == "ERR"
    assert isinstance(StoreClosed("x"), Exception)


def test_a_command_is_one_entry(store: Store) -> None:
    """The shape later commands (TTL, RPUSH, GETDEL, ...) take: one Command in a table."""

    def strlen(target: Store, arguments: list[bytes]) -> Reply:
        return Integer(len(target.get(arguments[0]) or b""))

    table = CommandTable([*COMMANDS, Command("strlen", 2, frozenset({Flag.READONLY}), strlen, "key", "", 1, 1, 1)])
    table.execute(store, [b"SET", b"k", b"hello"])
    assert table.execute(store, [b"STRLEN", b"k"]) == Integer(5)
    assert table.execute(store, [b"STRLEN"]) == err("wrong number of arguments for 'strlen' command")
