"""The `kv` REPL: redis-cli's behaviour over a store directory instead of a server.

    $ printf 'SET test hello\\nGET test\\nDEL test\\nQUIT\\n' | kv ./data
    OK
    hello
    1
    $ kv ./data GET test          # one-shot, as `redis-cli GET test`
    (nil)                          # on a terminal; piped output is raw, as redis-cli's

Commands and replies come from the one command table (`kv.commands`); this module
only reads lines, splits them and renders replies the way redis-cli 7 does:

- On a terminal (stdout is a tty, or `--no-raw`): `cliFormatReplyTTY`, so `OK`,
  `"value"` with redis-cli's escapes, `(nil)`, `(integer) 3`, `(error) ERR ...`,
  `(empty array)`, numbered and indented nested arrays (`1) 1) "x"`).
- Otherwise (piped, or `--raw`): `cliFormatReplyRaw`, so raw bytes, plain integers,
  errors as `ERR ...`, nil as an empty line, array items one per line.
- INFO and HELP print their text as it is, in both modes (redis-cli's list).
- A line is split as redis-cli splits it (`sdssplitargs`: double quotes with `\\n \\r
  \\t \\b \\a \\xHH` escapes, single quotes literal); a bad one prints `Invalid
  argument(s)`; `N COMMAND` runs a command N times; `QUIT`/`EXIT` end the session.
- `--read-only` opens the store without its write lock (a writer may have it open)
  and never writes: reads work, every write replies `(error) READONLY ...` as a Redis
  replica does, and recovery runs in memory only (a torn tail stays on disk).
- Error replies leave the exit status 0, as redis-cli's do, unless `-e` is given in
  one-shot mode (then the error goes to stderr and the status is 1).
- A closed output pipe ends quietly: in one-shot mode the process dies of SIGPIPE
  (status 141 in a shell, as redis-cli) after closing the store; reading commands from
  a pipe it goes on running them with nothing printed and exits 0, as redis-cli does.

Input and output are bytes end to end (stdin's and stdout's buffers). On a terminal,
lines are edited with readline and kept in `~/.kv_history` (`KV_HISTFILE` overrides;
empty disables). `kv/` imports no `os`, so the history file's path comes from
`io_backends.terminal` through the `kv.io_backends` entry point group, the way the
Io backends do; without it, editing works and history lasts one session.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

from kv.arguments import split_arguments as split_arguments  # the REPL's splitter, re-exported
from kv.commands import COMMANDS, CommandTable, kv_version
from kv.errors import CorruptionDetected, IoError, KvError, StoreLocked
from kv.io import ENTRY_POINT_GROUP, make_io
from kv.opening import QUARANTINE_DIRECTORY
from kv.replies import Bulk, ErrorReply, InProtocol, Integer, Map, Reply, SimpleString, error, text_bytes
from kv.store import DURABILITY_MODES, Store
from kv.store import open as open_store

# A command line longer than this is refused before it is split (bounds the tokenizer and
# the memory of one line; a maximum value, quoted with \xHH escapes, fits).
LINE_SIZE_MAX_BYTES = 64 * 1024 * 1024

# readline keeps at most this many lines of history (redis-cli keeps 100 in linenoise;
# a longer memory costs nothing here).
HISTORY_LINES_MAX = 1000

PROMPT = "kv> "
INVALID_ARGUMENTS = b"Invalid argument(s)\n"
INVALID_REPEAT = b"Invalid kv repeat command option value.\n"
CLEAR_SCREEN = b"\x1b[H\x1b[2J"  # what linenoise writes for `clear`

# Commands whose reply redis-cli prints as it is, not formatted (`output_raw` in cliSendCommand).
VERBATIM_COMMANDS = frozenset({"info", "help"})

SIGPIPE_EXIT_STATUS = 128 + 13  # a shell's status for a process killed by SIGPIPE

# -- rendering replies as redis-cli ------------------------------------------------------------


def _repr_table() -> list[bytes]:
    table = [b"\\x%02x" % byte for byte in range(256)]
    for byte in range(0x20, 0x7F):  # isprint() in the C locale
        table[byte] = bytes([byte])
    table[ord("\\")], table[ord('"')] = b"\\\\", b'\\"'
    for byte, text in ((10, b"\\n"), (13, b"\\r"), (9, b"\\t"), (7, b"\\a"), (8, b"\\b")):
        table[byte] = text
    return table


_REPR = _repr_table()


def quote_bytes(value: bytes) -> bytes:
    """`value` double-quoted with redis-cli's escapes (`sdscatrepr`)."""
    return b'"' + b"".join(_REPR[byte] for byte in value) + b'"'


def format_tty(reply: Reply, prefix: bytes = b"") -> bytes:
    """A reply as redis-cli shows it on a terminal (`cliFormatReplyTTY`)."""
    if isinstance(reply, ErrorReply):
        return b"(error) " + text_bytes(reply.text) + b"\n"
    if isinstance(reply, SimpleString):
        return text_bytes(reply.text) + b"\n"
    if isinstance(reply, Integer):
        return b"(integer) %d\n" % reply.value
    if isinstance(reply, Bulk):
        return b"(nil)\n" if reply.value is None else quote_bytes(reply.value) + b"\n"
    if isinstance(reply, Map):
        return format_tty(reply.flat(), prefix)
    if isinstance(reply, InProtocol):
        return format_tty(reply.reply, prefix)
    if reply.items is None:
        return b"(nil)\n"  # hiredis reads a nil array as nil
    if not reply.items:
        return b"(empty array)\n"
    width = len(str(len(reply.items)))
    nested_prefix = prefix + b" " * (width + 2)  # items under an index line up after "N) "
    out = []
    for index, item in enumerate(reply.items):
        out.append((prefix if index else b"") + b"%*d) " % (width, index + 1))
        out.append(format_tty(item, nested_prefix))
    return b"".join(out)


def format_raw(reply: Reply) -> bytes:
    """A reply as `redis-cli --raw` shows it, before the line delimiter (`cliFormatReplyRaw`)."""
    if isinstance(reply, ErrorReply):
        return text_bytes(reply.text) + b"\n"
    if isinstance(reply, SimpleString):
        return text_bytes(reply.text)
    if isinstance(reply, Integer):
        return b"%d" % reply.value
    if isinstance(reply, Bulk):
        return reply.value or b""
    if isinstance(reply, InProtocol):
        return format_raw(reply.reply)
    if isinstance(reply, Map):
        reply = reply.flat()
    return b"\n".join(format_raw(item) for item in reply.items or ())


def render(reply: Reply, raw: bool, verbatim: bool = False) -> bytes:
    """What redis-cli prints for one reply: raw text for INFO-like commands, else the
    raw or terminal format."""
    if verbatim:
        return format_raw(reply)
    return format_raw(reply) + b"\n" if raw else format_tty(reply)


# -- the session ---------------------------------------------------------------------------------


class Quit(Exception):
    """The session ends (QUIT or EXIT)."""


_REPEAT = re.compile(rb"[ \t\n\v\f\r]*[+-]?[0-9]+")
_LONG_MAX = (1 << 63) - 1


def _repeat_count(argument: bytes) -> int | None:
    """How often `N COMMAND` runs: None when the first word is not a whole number (as
    strtol sees it, the empty word counting as 0), 0 for an invalid count."""
    argument = argument.split(b"\0", 1)[0]
    if argument and _REPEAT.fullmatch(argument) is None:
        return None
    count = int(argument) if argument else 0
    return count if 0 < count <= _LONG_MAX else 0


class Repl:
    """Turns command lines into redis-cli's output against one store."""

    def __init__(self, store: Store, raw: bool = False, table: CommandTable = COMMANDS) -> None:
        self.store = store
        self.raw = raw
        self.table = table

    def execute(self, line: bytes) -> bytes:
        """All the output of one line (empty for a blank one). Raises `Quit`."""
        return b"".join(self.outputs(line))

    def outputs(self, line: bytes) -> Iterator[bytes]:
        """The output of one line, a piece per reply, as it is produced. Raises `Quit`
        (after the output of a session-ending command, if it printed any)."""
        if len(line) > LINE_SIZE_MAX_BYTES:
            yield render(error(f"line longer than {LINE_SIZE_MAX_BYTES} bytes"), self.raw)
            return
        argv = split_arguments(line)
        if argv is None:
            yield INVALID_ARGUMENTS
            return
        if not argv:
            return
        if argv[0].lower() in (b"quit", b"exit"):
            raise Quit
        repeat = _repeat_count(argv[0]) if len(argv) > 1 else None
        if repeat == 0:
            yield INVALID_REPEAT
            return
        if repeat is not None:
            argv = argv[1:]
        if len(argv) == 1 and argv[0].lower() == b"clear":
            yield CLEAR_SCREEN
            return
        for _ in range(repeat or 1):  # bounded by the count the user typed
            reply, ends_session = self.run(argv)
            yield self.render(argv, reply)
            if ends_session:
                raise Quit

    def run(self, argv: list[bytes]) -> tuple[Reply, bool]:
        """One command's reply, and whether it ends the session."""
        command = self.table.resolve(argv)
        ends_session = not isinstance(command, ErrorReply) and command.ends_session
        return self.table.execute(self.store, argv), ends_session

    def render(self, argv: list[bytes], reply: Reply) -> bytes:
        verbatim = argv[0].decode("latin-1").lower() in VERBATIM_COMMANDS
        return render(reply, self.raw, verbatim)


# -- terminal and pipe wiring ----------------------------------------------------------------------


class Output:
    """Writes bytes to a stream at once; after the reader closed a pipe, writes nothing
    and remembers it (`broken`)."""

    def __init__(self, write: Callable[[bytes], object]) -> None:
        self._write = write
        self.broken = False

    def write(self, data: bytes) -> None:
        if self.broken or not data:
            return
        try:
            self._write(data)
        except BrokenPipeError:
            self.broken = True


def _stdout_write() -> Callable[[bytes], object]:
    """Unbuffered writes to stdout's file (its raw file under a buffered writer), so no
    bytes wait in a buffer for the interpreter to fail flushing at exit once the pipe
    is closed. Each piece is written whole: a raw write may take only part of it."""
    stream = sys.stdout.buffer
    stream.flush()
    target = getattr(stream, "raw", stream)

    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:  # each pass writes at least one byte or raises
            written = target.write(view)
            if not written:
                raise BlockingIOError("stdout accepted no bytes")
            view = view[written:]
        target.flush()

    return write


def pipe_lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of `stream` without their newline; a line over `LINE_SIZE_MAX_BYTES` comes
    back over-long (and is refused) without being held whole in memory."""
    while True:  # one pass per line: bounded by the input
        line = stream.readline(LINE_SIZE_MAX_BYTES + 1)
        if not line:
            return
        if len(line) > LINE_SIZE_MAX_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(LINE_SIZE_MAX_BYTES)) and not rest.endswith(b"\n"):
                pass  # drop the rest of the over-long line, a bounded chunk at a time
        yield line[:-1] if line.endswith(b"\n") else line


def _history_path() -> str | None:
    """Where the history file goes, from the `history_path` entry point (io_backends.terminal)."""
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name="history_path"):
        path: str | None = entry_point.load()()
        return path
    return None


def terminal_lines(prompt: str) -> Iterator[bytes]:
    """Lines typed on the terminal, edited with readline, saved to the history file
    after each line (as redis-cli saves its own)."""
    import readline

    reconfigure = getattr(sys.stdin, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="surrogateescape")  # any bytes typed come back as the same bytes
    encoding = sys.stdin.encoding or "utf-8"
    history = _history_path()
    readline.set_history_length(HISTORY_LINES_MAX)
    if history is not None:
        with contextlib.suppress(OSError):  # no history yet, or an unreadable one: start empty
            readline.read_history_file(history)
    while True:  # one pass per line typed
        try:
            line = input(prompt)
        except EOFError:
            sys.stdout.write("\n")
            sys.stdout.flush()
            return
        if history is not None and line.strip():
            with contextlib.suppress(OSError):  # a read-only home must not stop the session
                readline.write_history_file(history)
        yield line.encode(encoding, "surrogateescape")


def run(repl: Repl, lines: Iterator[bytes], output: Output) -> None:
    """Run lines until QUIT or end of input, writing each reply as it comes."""
    for line in lines:
        try:
            for piece in repl.outputs(line):
                output.write(piece)
        except Quit:
            return


# -- the command line ----------------------------------------------------------------------------

_VALUE_OPTIONS = ("--io", "--durability")  # options that take the next word as their value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kv",
        description="A redis-cli stand-in over a kv store directory: a REPL, or one command after DIR.",
        allow_abbrev=False,  # the command after DIR is split off before parsing: no guessing
    )
    parser.add_argument("directory", nargs="?", default="./kv-data", help="store directory (default ./kv-data)")
    parser.add_argument("--io", choices=("auto", "blocking", "uring"), default="auto", help="I/O backend")
    parser.add_argument("--durability", choices=DURABILITY_MODES, default="always", help="when writes are synced")
    repair = parser.add_mutually_exclusive_group()
    repair.add_argument(
        "--repair",
        action="store_true",
        help="on corruption, point-in-time repair: keep the log up to the first damage, move the damage and "
        "everything after it to DIR/quarantine/",
    )
    repair.add_argument(
        "--salvage",
        action="store_true",
        help="on corruption, salvage: keep every frame and record that passes its checks, copy the damaged files "
        "to DIR/quarantine/, and name the lsns and keys lost",
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="open without the write lock (another process may hold it) and never write: reads work, "
        "writes reply READONLY; recovery runs in memory only",
    )
    parser.add_argument("--raw", action="store_true", help="raw replies even on a terminal (as redis-cli --raw)")
    parser.add_argument("--no-raw", action="store_true", help="formatted replies even when piped (as redis-cli)")
    parser.add_argument("-e", dest="error_status", action="store_true", help="one command: exit 1 on an error reply")
    parser.add_argument("-v", "--version", action="version", version=f"kv {kv_version()}")
    return parser


def split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """Options and DIR, then the command: everything from the second word that is not
    an option (as redis-cli stops reading options at its command)."""
    seen_directory = False
    index = 0
    while index < len(argv):  # each pass moves past one word (two for an option's value)
        word = argv[index]
        if word.startswith("-") and word != "-":
            index += 2 if word in _VALUE_OPTIONS else 1
            continue
        if seen_directory:
            return argv[:index], argv[index:]
        seen_directory = True
        index += 1
    return argv, []


def _open(arguments: argparse.Namespace) -> Store | None:
    if arguments.read_only and (arguments.repair or arguments.salvage):
        print("kv: --read-only excludes --repair and --salvage (both write to the store)", file=sys.stderr)
        return None
    directory = arguments.directory
    try:
        store = open_store(
            directory,
            io=make_io(arguments.io),
            durability=arguments.durability,
            on_corruption="salvage" if arguments.salvage else "repair" if arguments.repair else "raise",
            read_only=arguments.read_only,
        )
    except CorruptionDetected as failure:
        if failure.report is None:  # not a loss recovery can judge (not a store this library wrote)
            print(f"kv: {failure}", file=sys.stderr)
            return None
        print(
            f"kv: {directory} is damaged: {failure.report.summary()}\n"
            f"kv: nothing was changed. Run again with --repair to keep the log up to the first damage "
            f"(the rest moves to {directory}/quarantine/), or with --salvage to keep every intact record "
            f"(the damaged files are copied to {directory}/quarantine/)",
            file=sys.stderr,
        )
        return None
    except StoreLocked as failure:
        print(f"kv: {failure}", file=sys.stderr)
        return None
    except KvError as failure:
        print(f"kv: cannot open {directory}: {failure}", file=sys.stderr)
        return None
    report = store.recovery
    if not report.clean:
        left = " (read-only: found in memory, nothing changed on disk)" if arguments.read_only else ""
        print(f"kv: recovery: {report.summary()}{left}", file=sys.stderr)
    if report.quarantined:
        moved = ", ".join(f"{directory}/{name}" for name in report.quarantined)
        print(f"kv: damaged data kept in {directory}/{QUARANTINE_DIRECTORY}/: {moved}", file=sys.stderr)
    return store


def _one_shot(repl: Repl, argv: list[bytes], output: Output, error_status: bool) -> int:
    reply, _ = repl.run(argv)
    if error_status and isinstance(reply, ErrorReply):
        sys.stderr.buffer.write(text_bytes(reply.text) + b"\n")
        sys.stderr.flush()
        return 1
    output.write(repl.render(argv, reply))
    return 0


def _die_of_sigpipe() -> int:
    """End as redis-cli ends when its reader goes away: killed by SIGPIPE."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        signal.raise_signal(signal.SIGPIPE)
    return SIGPIPE_EXIT_STATUS


def serve(argv: list[str]) -> int:
    """`kv serve DIR [options]`: the RESP server, a backend's loop (entry point `serve`
    of the `kv.io_backends` group: `kv` never imports a backend)."""
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name="serve"):
        run_server: Callable[[list[str]], int] = entry_point.load()
        return run_server(argv)
    print("kv serve: no server is installed (entry point 'serve' of 'kv.io_backends')", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kv` console script. Exit 0 on success (error replies too,
    unless -e), 1 when the store cannot be opened or closed, 2 on a usage error."""
    words = sys.argv[1:] if argv is None else argv
    if words[:1] == ["serve"]:
        return serve(words[1:])
    head, command_words = split_command(words)
    arguments = build_parser().parse_args(head)
    store = _open(arguments)
    if store is None:
        return 1
    raw = arguments.raw or (not arguments.no_raw and not sys.stdout.isatty())
    repl = Repl(store, raw=raw)
    output = Output(_stdout_write())
    status = 0
    try:
        if command_words:
            encoding = sys.getfilesystemencoding()
            command = [word.encode(encoding, "surrogateescape") for word in command_words]
            status = _one_shot(repl, command, output, arguments.error_status)
        elif sys.stdin.isatty():
            run(repl, terminal_lines(PROMPT), output)
        else:
            run(repl, pipe_lines(sys.stdin.buffer), output)
    except KeyboardInterrupt:
        print(file=sys.stderr)
    finally:
        try:
            store.close()
        except IoError as failure:
            print(f"kv: closing failed: {failure}", file=sys.stderr)
            status = 1
    if command_words and output.broken:
        return _die_of_sigpipe()
    return status
