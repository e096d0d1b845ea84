"""ACL users of `kv serve` (`kv.acl`): the file's rules, logins, commands and key
patterns, through the sans-I/O session; then the same file against a live `kv serve`
and a real `redis-server`, which must refuse and allow the same commands."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from io_backends import make_io
from kv import open as kv_open
from kv.acl import AclError, parse_acl
from kv.session import ServerConfig, Session
from tests.test_server import server

# Redis's ACL files have no comments (kv's skip `#` lines): this one is read by both.
ACL = """\
user default off
user alice on >wonderland ~app:* ~shared +@read +set +del -keys
user ops on #{ops_hash} allkeys +@all -shutdown
user guest on nopass ~* +get +ping
user gone off >pw +@all ~*
"""
ACL_TEXT = ACL.format(ops_hash=hashlib.sha256(b"s3cret").hexdigest())


def _session(tmp_path: Path, text: str = ACL_TEXT) -> Session:
    store = kv_open(str(tmp_path / "db"), io=make_io("blocking"))
    return Session(store, ServerConfig(acl=parse_acl(text)), client_id=1)


def _run(session: Session, *commands: bytes) -> bytes:
    session.receive(b"".join(commands))
    return session.reply_bytes(durable=True)


def test_nothing_runs_before_login_and_disabled_users_cannot_log_in(tmp_path: Path) -> None:
    session = _session(tmp_path)
    assert _run(session, b"PING\r\n", b"GET app:1\r\n") == b"-NOAUTH Authentication required.\r\n" * 2
    wrong = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    assert _run(session, b"AUTH gone pw\r\n", b"AUTH alice bad\r\n", b"AUTH nobody x\r\n") == wrong * 3
    assert _run(session, b"AUTH default x\r\n", b"AUTH x\r\n") == wrong * 2  # default is off
    whoami = b"-NOPERM this user has no permissions to run the 'acl|whoami' command\r\n"
    assert _run(session, b"AUTH alice wonderland\r\n", b"ACL WHOAMI\r\n") == b"+OK\r\n" + whoami
    assert _run(session, b"AUTH ops s3cret\r\n", b"ACL WHOAMI\r\n") == b"+OK\r\n$3\r\nops\r\n"
    session.store.close()


def test_commands_and_keys_are_checked_as_redis_words_it(tmp_path: Path) -> None:
    session = _session(tmp_path)
    _run(session, b"AUTH alice wonderland\r\n")
    assert _run(session, b"SET app:1 v\r\n", b"GET app:1\r\n", b"SET shared x\r\n") == b"+OK\r\n$1\r\nv\r\n+OK\r\n"
    keys = b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    assert _run(session, b"SET other v\r\n", b"DEL app:1 other\r\n", b"MGET app:1 sharedx\r\n") == keys * 3
    assert _run(session, b"INCR app:n\r\n") == b"-NOPERM this user has no permissions to run the 'incr' command\r\n"
    assert _run(session, b"KEYS *\r\n") == b"-NOPERM this user has no permissions to run the 'keys' command\r\n"
    assert _run(session, b"SHUTDOWN\r\n") == b"-NOPERM this user has no permissions to run the 'shutdown' command\r\n"
    assert _run(session, b"GET other\r\n", b"EXISTS app:1\r\n") == keys + b":1\r\n"
    assert session.store.get(b"other") is None  # refused writes wrote nothing
    session.store.close()


def test_mset_checks_its_keys_not_its_values(tmp_path: Path) -> None:
    session = _session(tmp_path, "user default on nopass ~k* +mset +get\n")
    assert _run(session, b"MSET k1 zzz k2 other\r\n") == b"+OK\r\n"
    assert _run(session, b"MSET k1 v zzz v\r\n").startswith(b"-NOPERM")
    assert session.store.get(b"zzz") is None
    session.store.close()


def test_an_open_default_user_is_logged_in_from_the_start(tmp_path: Path) -> None:
    session = _session(tmp_path, "user default on nopass ~* +get +acl\n")
    assert _run(session, b"GET k\r\n", b"ACL WHOAMI\r\n") == b"$-1\r\n$7\r\ndefault\r\n"
    assert _run(session, b"SET k v\r\n").startswith(b"-NOPERM this user has no permissions to run the 'set'")
    session.store.close()


def test_rules_apply_left_to_right() -> None:
    users = parse_acl("user u on nopass +@all -@write +set ~a* resetkeys ~b*\nuser r on >x +@all reset\n").users
    assert users["u"].may_run("set") and users["u"].may_run("get") and not users["u"].may_run("del")
    assert users["u"].may_touch(b"bee") and not users["u"].may_touch(b"apple")
    assert not users["r"].enabled and not users["r"].may_run("get") and not users["r"].accepts(b"x")
    assert users["u"].accepts(b"anything")


def test_acl_list_reads_back_as_the_same_users(tmp_path: Path) -> None:
    session = _session(tmp_path)
    _run(session, b"AUTH ops s3cret\r\n")
    session.receive(b"ACL LIST\r\n")
    listed = [line.decode() for line in session.reply_bytes(durable=True).split(b"\r\n") if line.startswith(b"user")]
    again = parse_acl("\n".join(listed)).users
    for name, user in parse_acl(ACL_TEXT).users.items():
        assert again[name].describe() == user.describe()
        assert (again[name].commands, again[name].enabled) == (user.commands, user.enabled)
    assert b"s3cret" not in "".join(listed).encode()  # passwords are listed by their hash only
    session.store.close()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("user a on +@bogus", "1: Error in applying operation '+@bogus': Unknown command or category"),
        ("\n# comment\nuser a on +nosuch", "3: Error in applying operation '+nosuch': Unknown command"),
        ("user a on frobnicate", "1: Error in applying operation 'frobnicate': Syntax error"),
        ("user a on #abc", "1: Error in applying operation '#abc': The password hash must be 64 hex digits"),
        ("users a on", "1: a line must be: user NAME"),
        ("user a on\nuser a off", "2: user 'a' is defined twice"),
    ],
)
def test_a_bad_line_is_named(text: str, words: str) -> None:
    with pytest.raises(AclError) as raised:
        parse_acl(text, "users.acl")
    assert f"users.acl:{words}" in str(raised.value)


def test_a_bad_acl_file_stops_the_server_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "users.acl").write_text("user a on +@bogus\n")
    done = subprocess.run(
        [*_kv_serve(tmp_path / "db"), "--acl-file", str(tmp_path / "users.acl")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "users.acl:1: Error in applying operation '+@bogus'" in done.stderr


def _kv_serve(directory: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "kv", "serve", str(directory), "--port", "0", "--io", "blocking"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _redis_server(acl_file: Path) -> Iterator[int]:
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--aclfile", str(acl_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)


SESSION = [
    ("alice", "wonderland", ["SET", "app:1", "v"]),
    ("alice", "wonderland", ["GET", "app:1"]),
    ("alice", "wonderland", ["SET", "nope", "v"]),
    ("alice", "wonderland", ["DEL", "app:1", "shared"]),
    ("alice", "wonderland", ["INCR", "app:2"]),
    ("alice", "wonderland", ["KEYS", "*"]),
    ("alice", "wonderland", ["MGET", "app:1", "x"]),
    ("ops", "s3cret", ["INCR", "counter"]),
    ("ops", "s3cret", ["SHUTDOWN"]),
    ("guest", "anything", ["GET", "app:1"]),
    ("guest", "anything", ["SET", "app:1", "x"]),
    ("gone", "pw", ["PING"]),
    ("alice", "bad", ["PING"]),
]


def _outcomes(port: int) -> list[bytes]:
    """Each line of SESSION on its own connection (raw RESP: no client library
    retries or adds commands), ended by QUIT; every byte the server sent back."""
    seen = []
    for user, password, command in SESSION:
        words = [b"AUTH", user.encode(), password.encode()], [word.encode() for word in command], [b"QUIT"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"".join(_request(argv) for argv in words))
            received = b""
            while chunk := connection.recv(65536):
                received += chunk
        seen.append(received)
    return seen


def _request(argv: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in argv)


@pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed (apt-get install -y redis-server)"
)
def test_kv_serve_allows_and_refuses_what_redis_server_does(tmp_path: Path) -> None:
    acl_file = tmp_path / "users.acl"
    acl_file.write_text(ACL_TEXT)
    with _redis_server(acl_file) as port:
        expected = _outcomes(port)
    with server(tmp_path / "db", "--acl-file", str(acl_file)) as (port, _process):
        assert _outcomes(port) == expected
    assert sum(b"NOPERM" in outcome for outcome in expected) >= 6  # the test refuses things


def test_a_command_refused_inside_multi_dooms_the_transaction(tmp_path: Path) -> None:
    session = _session(tmp_path, "user default on nopass ~k* +@write +@transaction\n")
    replies = _run(session, b"MULTI\r\n", b"SET k1 v\r\n", b"SET other v\r\n", b"EXEC\r\n")
    keys = b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    assert replies == b"+OK\r\n+QUEUED\r\n" + keys + b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    assert session.store.get(b"k1") is None
    session.store.close()
    closed = _session(tmp_path, "user default on nopass ~* +set\n")
    assert _run(closed, b"MULTI\r\n") == b"-NOPERM this user has no permissions to run the 'multi' command\r\n"
    closed.store.close()


def test_only_every_command_on_every_key_skips_the_checks() -> None:
    users = parse_acl("user a on nopass +@all ~*\nuser b on nopass +@all ~a*\nuser c on nopass +@all -get ~*\n").users
    assert users["a"].unrestricted and not users["b"].unrestricted and not users["c"].unrestricted


def test_a_refusal_that_echoes_the_request_stays_one_line(tmp_path: Path) -> None:
    """A subcommand with a line break in it, from a user who may not run CLIENT: the
    reply is one error line (the review's finding: it raised inside the session)."""
    session = _session(tmp_path, "user default on nopass ~* +get +set\n")
    replies = _run(session, b'CLIENT "x\\r\\n+OK"\r\n', b"CLIENT ID\r\n", b"GET k\r\n")
    assert replies == (
        b"-ERR unknown subcommand 'x  +OK'. Try CLIENT HELP.\r\n"
        b"-NOPERM this user has no permissions to run the 'client|id' command\r\n"
        b"$-1\r\n"
    )
    session.store.close()


def test_a_queued_command_the_new_user_may_not_run_is_refused_at_exec_in_redis_words(tmp_path: Path) -> None:
    session = _session(tmp_path, "user default on nopass ~* +@all\nuser app on >apw ~app:* +@all -keys\n")
    replies = _run(session, b"MULTI\r\n", b"AUTH app apw\r\n", b"SET other 1\r\n", b"KEYS *\r\n", b"EXEC\r\n")
    changed = (
        b"-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. "
        b"This command is no longer allowed for the following reason: no permission to "
    )
    assert replies == (
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n"
        + changed
        + b"touch the specified keys\r\n"
        + changed
        + b"execute the command or subcommand\r\n"
    )
    assert session.store.get(b"other") is None
    session.store.close()
