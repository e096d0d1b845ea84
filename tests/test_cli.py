"""The `kv` REPL: splitting, rendering as redis-cli, and the console script end to end
through pipes and a pseudo-terminal (bytes in and out, one-shot, --raw, --version,
python -m kv, a closed pipe, readline history)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import kv
from io_backends.sim import SimIo
from io_backends.terminal import history_path
from kv.cli import Quit, Repl, format_raw, format_tty, quote_bytes, render, split_arguments, split_command
from kv.recovery import scan_segment
from kv.replies import NIL, OK, Array, Bulk, ErrorReply, Integer, SimpleString, bulk_array

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repl() -> Repl:
    return Repl(kv.open("/db", io=SimIo(seed=0)))


# -- splitting ---------------------------------------------------------------------------------


def test_split_arguments_as_sdssplitargs() -> None:
    assert split_arguments(b'SET "my key" \'lit\\n\' "a\\x41\\n\\"q\\""  x') == [
        b"SET",
        b"my key",
        b"lit\\n",
        b'aA\n"q"',
        b"x",
    ]
    assert split_arguments(b"   ") == []
    assert split_arguments(b"SET raw \xff\xfe") == [b"SET", b"raw", b"\xff\xfe"]
    assert split_arguments(b'a"b c"d') is None  # a closing quote glued to more text
    assert split_arguments(b'ab"c d" e') == [b"abc d", b"e"]  # a quote may open mid-word
    assert split_arguments(b'"\\a\\b\\t\\r\\q\\xzz"') == [b"\a\b\t\rqxzz"]  # an unknown escape is the letter
    assert split_arguments(b"'it\\'s' '\\n'") == [b"it's", b"\\n"]
    assert split_arguments(b'"open') is None
    assert split_arguments(b"'open") is None
    assert split_arguments(b"GET a\x00ignored") == [b"GET", b"a"]  # a C string ends at NUL
    assert split_arguments(b"a\vb \fc") == [b"a\vb", b"c"]  # \v and \f separate only between words


def test_split_command_stops_options_at_the_command() -> None:
    assert split_command(["d", "--io", "blocking"]) == (["d", "--io", "blocking"], [])
    assert split_command(["--raw", "d", "SET", "k", "--raw"]) == (["--raw", "d"], ["SET", "k", "--raw"])
    assert split_command(["--durability", "none", "d", "--no-raw", "GET", "-1"]) == (
        ["--durability", "none", "d", "--no-raw"],
        ["GET", "-1"],
    )


# -- rendering -----------------------------------------------------------------------------------


def test_quote_bytes_escapes_like_redis_cli() -> None:
    assert quote_bytes(b'a"b\\\n\r\t\a\b\x00\x7f\xff ~') == b'"a\\"b\\\\\\n\\r\\t\\a\\b\\x00\\x7f\\xff ~"'


def test_format_tty_each_reply_type() -> None:
    assert format_tty(OK) == b"OK\n"
    assert (
        format_tty(ErrorReply("WRONGTYPE", "Operation against a key")) == b"(error) WRONGTYPE Operation against a key\n"
    )
    assert format_tty(Integer(-3)) == b"(integer) -3\n"
    assert format_tty(Bulk(b"v\n")) == b'"v\\n"\n'
    assert format_tty(NIL) == b"(nil)\n"
    assert format_tty(Array(None)) == b"(nil)\n"
    assert format_tty(Array(())) == b"(empty array)\n"
    assert format_tty(Bulk(b"")) == b'""\n'


def test_format_tty_nests_and_aligns_as_redis_cli() -> None:
    nested = Array((Bulk(b"a"), Array((Integer(1), Array((Bulk(b"x"), NIL)), Array(()))), SimpleString("OK")))
    assert format_tty(nested) == (
        b'1) "a"\n2) 1) (integer) 1\n   2) 1) "x"\n      2) (nil)\n   3) (empty array)\n3) OK\n'
    )
    eleven = bulk_array([b"%d" % index for index in range(11)])
    lines = format_tty(Array((eleven,))).splitlines()
    assert lines[0] == b'1)  1) "0"'  # indices pad to the widest, nested items line up after "N) "
    assert lines[1] == b'    2) "1"'
    assert lines[9] == b'   10) "9"'


def test_format_raw_each_reply_type() -> None:
    assert format_raw(OK) == b"OK"
    assert format_raw(ErrorReply("ERR", "no")) == b"ERR no\n"  # redis-cli adds a line, then the delimiter
    assert format_raw(Integer(3)) == b"3"
    assert format_raw(Bulk(b"\xff\n")) == b"\xff\n"
    assert format_raw(NIL) == b""
    assert format_raw(Array((Bulk(b"0"), bulk_array([b"a", b"b"]), NIL))) == b"0\na\nb\n"
    assert render(Array(()), raw=True) == b"\n"
    assert render(Bulk(b"# Server\r\n"), raw=False, verbatim=True) == b"# Server\r\n"


# -- the session ---------------------------------------------------------------------------------


def test_replies(repl: Repl) -> None:
    assert repl.execute(b"SET test hello") == b"OK\n"
    assert repl.execute(b"get test") == b'"hello"\n'
    assert repl.execute(b"EXISTS test missing test") == b"(integer) 2\n"
    assert repl.execute(b"MGET test missing") == b'1) "hello"\n2) (nil)\n'
    assert repl.execute(b"DEL test missing") == b"(integer) 1\n"
    assert repl.execute(b"GET test") == b"(nil)\n"
    assert repl.execute(b"KEYS *") == b"(empty array)\n"
    assert repl.execute(b"") == b""
    assert b"SET key value" in repl.execute(b"HELP")
    assert repl.execute(b"INFO keyspace") == b"# Keyspace\r\n"  # printed as it is, as redis-cli prints INFO


def test_raw_session(repl: Repl) -> None:
    repl.raw = True
    assert repl.execute(b"SET k \xff") == b"OK\n"
    assert repl.execute(b"GET k") == b"\xff\n"
    assert repl.execute(b"GET nothing") == b"\n"
    assert repl.execute(b"DBSIZE") == b"1\n"
    assert repl.execute(b"GET") == b"ERR wrong number of arguments for 'get' command\n\n"


def test_errors_keep_the_session_going(repl: Repl) -> None:
    assert repl.execute(b"FLY away") == b"(error) ERR unknown command 'FLY', with args beginning with: 'away' \n"
    assert repl.execute(b"GET") == b"(error) ERR wrong number of arguments for 'get' command\n"
    assert repl.execute(b'SET "open') == b"Invalid argument(s)\n"
    assert repl.execute(b"SET " + b"k" * 20_000 + b" v").startswith(b"(error) ERR key is 20000 bytes")
    assert repl.execute(b"SET a b") == b"OK\n"
    with pytest.raises(Quit):
        repl.execute(b"QUIT")
    with pytest.raises(Quit):
        repl.execute(b"exit")


def test_repeat_and_clear(repl: Repl) -> None:
    assert repl.execute(b"3 PING") == b"PONG\n" * 3
    assert repl.execute(b"0 PING") == b"Invalid kv repeat command option value.\n"
    assert repl.execute(b"-2 PING") == b"Invalid kv repeat command option value.\n"
    assert repl.execute(b"3") == b"(error) ERR unknown command '3', with args beginning with: \n"
    assert repl.execute(b"clear") == b"\x1b[H\x1b[2J"


# -- the console script --------------------------------------------------------------------------


def _kv(*arguments: str, input_bytes: bytes = b"", module: bool = False) -> subprocess.CompletedProcess[bytes]:
    start = ["-m", "kv"] if module else ["-c", "import sys; from kv.cli import main; sys.exit(main())"]
    command = [sys.executable, *start, *arguments]
    return subprocess.run(command, input=input_bytes, capture_output=True, timeout=60, cwd=ROOT)


def test_console_script_from_a_pipe_is_raw(tmp_path: Path) -> None:
    directory = str(tmp_path / "data")
    script = b"SET test hello\nGET test\nDEL test\nQUIT\nGET test\n"
    result = _kv(directory, "--io", "blocking", input_bytes=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"OK\nhello\n1\n"
    formatted = _kv(directory, "--io", "blocking", "--no-raw", input_bytes=b'SET k v\nGET k\nSET "two words" "x y"\n')
    assert formatted.stdout == b'OK\n"v"\nOK\n'
    again = _kv(directory, "--no-raw", input_bytes=b'GET "two words"\nGET missing\nFOO\n')
    assert again.stdout == b"\"x y\"\n(nil)\n(error) ERR unknown command 'FOO', with args beginning with: \n"
    assert again.returncode == 0  # error replies leave the status 0, as redis-cli's do


def test_bytes_in_and_out(tmp_path: Path) -> None:
    """printf 'SET raw \\xff\\xfe\\n' | kv DIR ended in a traceback before the REPL read bytes."""
    directory = str(tmp_path / "data")
    result = _kv(directory, "--io", "blocking", input_bytes=b'SET raw \xff\xfe\nGET raw\nSET \xc3\xa9 "\\x00"\n')
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b"OK\n\xff\xfe\nOK\n"
    formatted = _kv(directory, "--no-raw", "--io", "blocking", input_bytes=b"GET raw\nGET \xc3\xa9\nKEYS *\n")
    assert formatted.stdout == b'"\\xff\\xfe"\n"\\x00"\n1) "raw"\n2) "\\xc3\\xa9"\n'


def test_one_shot(tmp_path: Path) -> None:
    directory = str(tmp_path / "data")
    assert _kv(directory, "--io", "blocking", "SET", "k", "-1").stdout == b"OK\n"
    assert _kv(directory, "GET", "k").stdout == b"-1\n"
    assert _kv(directory, "--no-raw", "GET", "k").stdout == b'"-1"\n'
    assert _kv("--raw", directory, "MGET", "k", "nope").stdout == b"-1\n\n"
    missing_argument = _kv(directory, "GET")
    assert missing_argument.returncode == 0
    assert missing_argument.stdout == b"ERR wrong number of arguments for 'get' command\n\n"
    with_status = _kv(directory, "-e", "GET")
    assert (with_status.returncode, with_status.stdout) == (1, b"")
    assert with_status.stderr == b"ERR wrong number of arguments for 'get' command\n"
    assert _kv(directory, "-e", "GET", "k").returncode == 0
    assert _kv(directory, "INFO", "keyspace").stdout == b"# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n"


def test_version_and_python_dash_m(tmp_path: Path) -> None:
    version = _kv("--version")
    assert version.returncode == 0
    assert version.stdout.startswith(b"kv ") and version.stdout.strip() == f"kv {kv.commands.kv_version()}".encode()
    module = _kv(str(tmp_path / "d"), "--io", "blocking", "PING", module=True)
    assert (module.returncode, module.stdout) == (0, b"PONG\n")
    assert _kv("-v", module=True).stdout == version.stdout


def test_py_typed_is_shipped() -> None:
    assert (ROOT / "kv" / "py.typed").exists()
    assert 'kv = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def _environment(unbuffered: bool) -> dict[str, str]:
    """The environment with or without PYTHONUNBUFFERED (stdout's bytes layer is then a
    raw file, written in parts)."""
    environment = dict(os.environ)
    environment.pop("PYTHONUNBUFFERED", None)
    return {**environment, "PYTHONUNBUFFERED": "1"} if unbuffered else environment


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_closed_pipe_in_one_shot_mode_ends_as_sigpipe(tmp_path: Path, unbuffered: bool) -> None:
    """redis-cli GET big | head -c 1: killed by SIGPIPE (141 in a shell), no traceback;
    the store is closed first, so the next open is clean."""
    directory = str(tmp_path / "data")
    _kv(directory, "--io", "blocking", input_bytes=b'SET big "' + b"x" * (4 << 20) + b'"\n')
    command = [sys.executable, "-m", "kv", directory, "--io", "blocking", "GET", "big"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=_environment(unbuffered)
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(1) == b"x"
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == -signal.SIGPIPE
    assert stderr == b""
    reopened = _kv(directory, "--io", "blocking", "DBSIZE")
    assert (reopened.stdout, reopened.stderr) == (b"1\n", b"")  # no recovery message: closed cleanly


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
def test_a_closed_pipe_in_a_piped_session_runs_every_command(tmp_path: Path, unbuffered: bool) -> None:
    """As redis-cli reading commands from a pipe: output stops, the commands go on, exit 0."""
    directory = str(tmp_path / "data")
    script = tmp_path / "script"
    script.write_bytes(b"".join(b"SET key%d %s\n" % (index, b"v" * 100) for index in range(3000)) + b"KEYS *\n" * 20)
    command = [sys.executable, "-m", "kv", directory, "--io", "blocking", "--durability", "none"]
    with script.open("rb") as stdin:
        process = subprocess.Popen(
            command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=_environment(unbuffered)
        )
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline() == b"OK\n"
        process.stdout.close()
        stderr = process.stderr.read()
        process.stderr.close()
        assert process.wait(timeout=120) == 0
    assert stderr == b""
    assert _kv(directory, "--io", "blocking", "DBSIZE").stdout == b"3000\n"


def test_console_script_refuses_a_corrupt_store_until_repair(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    _kv(
        str(directory),
        "--io",
        "blocking",
        input_bytes=b"".join(b"SET k%d v%d\n" % (index, index) for index in range(5)),
    )
    segment = directory / "00000001.seg"
    data = bytearray(segment.read_bytes())
    frames = scan_segment(1, bytes(data)).frames
    data[frames[1][0] + 40] ^= 1  # inside the second of five frames
    segment.write_bytes(bytes(data))
    refused = _kv(str(directory), "--io", "blocking", input_bytes=b"GET k0\n")
    assert refused.returncode == 1
    assert b"corruption" in refused.stderr and b"repair" in refused.stderr
    repaired = _kv(str(directory), "--io", "blocking", "--repair", input_bytes=b"GET k0\nGET k4\n")
    assert repaired.returncode == 0
    assert repaired.stdout == b"v0\n\n"
    assert b"records lost" in repaired.stderr


def test_console_script_rejects_bad_flags(tmp_path: Path) -> None:
    result = _kv(str(tmp_path), "--io", "floppy")
    assert result.returncode == 2
    assert b"invalid choice" in result.stderr


# -- --read-only -----------------------------------------------------------------------------------


def test_a_read_only_repl_reads_and_refuses_writes_as_a_redis_replica() -> None:
    io = SimIo(seed=0)
    with kv.open("/db", io=io) as writer:
        writer.set(b"k", b"v")
        reader = kv.open("/db", io=io, read_only=True)  # the writer holds the lock
        tty, raw = Repl(reader), Repl(reader, raw=True)
        assert tty.execute(b"GET k") == b'"v"\n'
        assert tty.execute(b"DBSIZE") == b"(integer) 1\n"
        refused = tty.execute(b"SET k other")
        assert refused.startswith(b"(error) READONLY ") and b"read-only" in refused
        assert raw.execute(b"DEL k").startswith(b"READONLY ")
        assert raw.execute(b"GET k") == b"v\n"
        reader.close()


def test_console_script_read_only_beside_a_writer(tmp_path: Path) -> None:
    directory = str(tmp_path / "data")
    assert _kv(directory, "--io", "blocking", "SET", "k", "v").returncode == 0
    with kv.open(directory, io=kv.io.make_io("blocking")) as writer:  # holds the lock
        writer.set(b"j", b"w")
        locked = _kv(directory, "--io", "blocking", "GET", "k")
        assert locked.returncode == 1 and b"open in another writer" in locked.stderr
        session = _kv(directory, "--io", "blocking", "--read-only", input_bytes=b"GET k\nGET j\nSET k x\nGET k\n")
        assert session.returncode == 0, session.stderr
        refusal = b"READONLY the store was opened read-only: writes are refused\n\n"  # raw errors end in a blank line
        assert session.stdout == b"v\nw\n" + refusal + b"v\n"
        one_shot = _kv(directory, "--io", "blocking", "--read-only", "-e", "DEL", "k")
        assert one_shot.returncode == 1 and one_shot.stderr.startswith(b"READONLY ")


def test_console_script_read_only_recovers_in_memory_and_changes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    _kv(str(directory), "--io", "blocking", input_bytes=b"SET a 1\nSET b 2\n")
    segment = directory / "00000001.seg"
    with segment.open("ab") as file:
        file.write(b"\x01torn half of a frame")
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    result = _kv(str(directory), "--io", "blocking", "--read-only", input_bytes=b"GET a\nGET b\nDBSIZE\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"1\n2\n2\n"
    assert b"torn" in result.stderr and b"nothing changed on disk" in result.stderr
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before  # not even the lock file
    writable = _kv(str(directory), "--io", "blocking", "GET", "a")  # a writable open cuts the tail
    assert writable.stdout == b"1\n" and segment.read_bytes() != before[segment.name]


def test_console_script_read_only_refuses_repair_and_a_missing_store(tmp_path: Path) -> None:
    both = _kv(str(tmp_path / "data"), "--read-only", "--repair", "GET", "k")
    assert both.returncode == 1 and b"excludes --repair and --salvage" in both.stderr
    missing = tmp_path / "missing"
    result = _kv(str(missing), "--io", "blocking", "--read-only", "GET", "k")
    assert result.returncode == 1 and b"cannot open" in result.stderr
    assert not missing.exists()  # a read-only open creates nothing
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _kv(str(empty), "--io", "blocking", "--read-only", "GET", "k")
    assert result.returncode == 1 and b"holds no store" in result.stderr
    assert list(empty.iterdir()) == []


# -- on a terminal -------------------------------------------------------------------------------


def test_history_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KV_HISTFILE", raising=False)
    assert history_path() == str(tmp_path / ".kv_history")
    monkeypatch.setenv("KV_HISTFILE", str(tmp_path / "elsewhere"))
    assert history_path() == str(tmp_path / "elsewhere")
    monkeypatch.setenv("KV_HISTFILE", "")
    assert history_path() is None


def _entry_point_path(tmp_path: Path) -> Path:
    """A distribution on the path that registers the history_path entry point, as
    `pip install -e .` of this tree does (the venv may hold an older install)."""
    site = tmp_path / "site"
    info = site / "kv_terminal_test-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kv-terminal-test\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[kv.io_backends]\nhistory_path = io_backends.terminal:history_path\n")
    return site


def test_interactive_session_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal the REPL prompts, edits with readline, formats replies for a
    terminal and keeps ~/.kv_history; end of input (Ctrl-D) leaves cleanly."""
    import pty
    import select

    home = tmp_path / "home"
    home.mkdir()
    environment = {**os.environ, "HOME": str(home), "PYTHONPATH": f"{ROOT}{os.pathsep}{_entry_point_path(tmp_path)}"}
    environment.pop("KV_HISTFILE", None)
    command = [sys.executable, "-m", "kv", str(tmp_path / "d"), "--io", "blocking"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the REPL with the pty as its terminal
        os.chdir(ROOT)
        os.execve(sys.executable, command, environment)

    def read_until(marker: bytes) -> bytes:
        seen = b""
        while marker not in seen:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"timed out waiting for {marker!r}; saw {seen!r}"
            seen += os.read(fd, 1024)
        return seen

    try:
        read_until(b"kv> ")
        os.write(fd, b"SET greeting hello\r")
        assert b"OK" in read_until(b"kv> ")
        os.write(fd, b"GET greeting\r")
        assert b'"hello"' in read_until(b"kv> ")
        os.write(fd, b"\x1b[A\r")  # up arrow: readline brings back the last line
        assert read_until(b"kv> ").count(b'"hello"') == 1
        os.write(fd, b"\x04")  # Ctrl-D
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
    assert (home / ".kv_history").read_text().splitlines()[-2:] == ["SET greeting hello", "GET greeting"]
