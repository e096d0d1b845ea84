"""The `kv` REPL: parsing, replies, and the console script driven through a pipe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kv
from io_backends.sim import SimIo
from kv.cli import Quit, Repl, quote_value, split_arguments
from kv.recovery import scan_segment


@pytest.fixture
def repl() -> Repl:
    return Repl(kv.open("/db", io=SimIo(seed=0)))


def test_split_arguments_handles_quotes_and_escapes() -> None:
    assert split_arguments('SET "my key" \'lit\\n\' "a\\x41\\n\\"q\\""  x') == [
        b"SET",
        b"my key",
        b"lit\\n",
        b'aA\n"q"',
        b"x",
    ]
    assert split_arguments("   ") == []
    assert split_arguments('GET "héllo"') == [b"GET", "héllo".encode()]


def test_quote_value_escapes_like_redis_cli() -> None:
    assert quote_value(b'a"b\\\n\x00\xff') == '"a\\"b\\\\\\n\\x00\\xff"'


def test_replies(repl: Repl) -> None:
    assert repl.execute("SET test hello") == "OK"
    assert repl.execute("get test") == '"hello"'
    assert repl.execute("EXISTS test missing test") == "(integer) 2"
    assert repl.execute("DEL test missing") == "(integer) 1"
    assert repl.execute("GET test") == "(nil)"
    assert repl.execute("") is None
    assert "SET key value" in (repl.execute("HELP") or "")


def test_errors_keep_the_session_going(repl: Repl) -> None:
    assert repl.execute("FLY away") == "(error) ERR unknown command 'FLY', with args beginning with: 'away'"
    assert repl.execute("GET") == "(error) ERR wrong number of arguments for 'get' command"
    assert repl.execute("SET a") == "(error) ERR wrong number of arguments for 'set' command"
    assert repl.execute('SET "open') == "(error) ERR unbalanced quotes"
    assert (repl.execute("SET " + "k" * 20_000 + " v") or "").startswith("(error) ERR key is 20000 bytes")
    assert repl.execute("SET a b") == "OK"
    with pytest.raises(Quit):
        repl.execute("QUIT")


def _kv(*arguments: str, input_text: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "import sys; from kv.cli import main; sys.exit(main())", *arguments]
    return subprocess.run(command, input=input_text, capture_output=True, text=True, timeout=60)


def test_console_script_from_a_pipe(tmp_path: Path) -> None:
    directory = str(tmp_path / "data")
    result = _kv(directory, "--io", "blocking", input_text="SET test hello\nGET test\nDEL test\nQUIT\nGET test\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'OK\n"hello"\n(integer) 1\n'
    again = _kv(directory, "--io", "blocking", input_text="SET k v\n")
    again = _kv(directory, input_text='GET k\nSET "two words" "x y"\nGET "two words"\n')
    assert again.stdout == '"v"\nOK\n"x y"\n'


def test_console_script_refuses_a_corrupt_store_until_repair(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    _kv(str(directory), "--io", "blocking", input_text="".join(f"SET k{index} v{index}\n" for index in range(5)))
    segment = directory / "00000001.seg"
    data = bytearray(segment.read_bytes())
    frames = scan_segment(1, bytes(data)).frames
    data[frames[1][0] + 40] ^= 1  # inside the second of five frames
    segment.write_bytes(bytes(data))
    refused = _kv(str(directory), "--io", "blocking", input_text="GET k0\n")
    assert refused.returncode == 1
    assert "corruption" in refused.stderr and "repair" in refused.stderr
    repaired = _kv(str(directory), "--io", "blocking", "--repair", input_text="GET k0\nGET k4\n")
    assert repaired.returncode == 0
    assert repaired.stdout == '"v0"\n(nil)\n'
    assert "records lost" in repaired.stderr


def test_console_script_rejects_bad_flags(tmp_path: Path) -> None:
    result = _kv(str(tmp_path), "--io", "floppy", input_text="")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_interactive_session_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal the REPL prompts; end of input (Ctrl-D) leaves cleanly."""
    import os
    import pty
    import select

    command = [sys.executable, "-c", "import sys; from kv.cli import main; sys.exit(main())", str(tmp_path / "d")]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the REPL with the pty as its terminal
        os.execv(sys.executable, [*command, "--io", "blocking"])

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
        os.write(fd, b"\x04")  # Ctrl-D
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
