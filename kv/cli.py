"""The `kv` REPL: Redis-style commands over a store, interactive or from a pipe.

    $ printf 'SET test hello\\nGET test\\nDEL test\\nQUIT\\n' | kv ./data
    OK
    "hello"
    (integer) 1

`Repl.execute(line)` turns one command line into one reply string; `main` wires it to
the terminal. Backends are loaded through the `kv.io_backends` entry point, so this
module, like all of `kv`, imports none.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

from kv.errors import CorruptionDetected, InvalidArgument, IoError, KvError, StoreLocked, StoreReadOnly
from kv.io import make_io
from kv.store import DURABILITY_MODES, Store
from kv.store import open as open_store

HELP_TEXT = """\
Commands (case-insensitive; quote arguments with spaces: SET "my key" "a \\"quoted\\" value"):
  SET key value        store value under key                 -> OK
  GET key              the value, or (nil)                    -> "value"
  DEL key [key ...]    remove keys                            -> (integer) removed
  EXISTS key [key ...] count the keys that exist              -> (integer) count
  HELP                 this text
  QUIT                 leave (end of input works too)
Escapes inside double quotes: \\n \\r \\t \\\\ \\" \\xHH."""

_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b"}

# A command line longer than this is refused before parsing (bounds the tokenizer).
LINE_SIZE_MAX_CHARACTERS = 64 * 1024 * 1024


class ParseError(InvalidArgument):
    """A command line could not be split into arguments."""


def split_arguments(line: str) -> list[bytes]:
    """Split like redis-cli: whitespace separates, double quotes allow escapes, single
    quotes are literal. Raises `ParseError` on unbalanced quotes."""
    arguments: list[bytes] = []
    position = 0
    length = len(line)
    while position < length:
        while position < length and line[position].isspace():
            position += 1
        if position >= length:
            break
        token = bytearray()
        while position < length and not line[position].isspace():
            character = line[position]
            if character in "\"'":
                position = _quoted(line, position, token)
            else:
                token += character.encode("utf-8")
                position += 1
        arguments.append(bytes(token))
    return arguments


def _quoted(line: str, position: int, token: bytearray) -> int:
    quote = line[position]
    position += 1
    while position < len(line):
        character = line[position]
        if character == quote:
            if position + 1 < len(line) and not line[position + 1].isspace():
                raise ParseError("closing quote must be followed by a space")
            return position + 1
        if character == "\\" and quote == '"' and position + 1 < len(line):
            following = line[position + 1]
            if following == "x" and position + 3 < len(line):
                digits = line[position + 2 : position + 4]
                try:
                    token.append(int(digits, 16))
                except ValueError:
                    raise ParseError(f"bad escape \\x{digits}") from None
                position += 4
                continue
            token += _ESCAPES.get(following, following).encode("utf-8")
            position += 2
            continue
        token += character.encode("utf-8")
        position += 1
    raise ParseError("unbalanced quotes")


def quote_value(value: bytes) -> str:
    """Render bytes as redis-cli does: double-quoted, non-printables as escapes."""
    out = ['"']
    for byte in value:
        character = chr(byte)
        if character in '\\"':
            out.append("\\" + character)
        elif character == "\n":
            out.append("\\n")
        elif character == "\r":
            out.append("\\r")
        elif character == "\t":
            out.append("\\t")
        elif 32 <= byte < 127:
            out.append(character)
        else:
            out.append(f"\\x{byte:02x}")
    out.append('"')
    return "".join(out)


class Quit(Exception):
    """Raised by QUIT."""


class Repl:
    """Turns command lines into replies against one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # name -> (handler, minimum arguments, maximum arguments or None for no limit)
        self.commands: dict[str, tuple[Callable[[list[bytes]], str], int, int | None]] = {
            "SET": (self._set, 2, 2),
            "GET": (self._get, 1, 1),
            "DEL": (self._delete, 1, None),
            "EXISTS": (self._exists, 1, None),
            "HELP": (lambda _: HELP_TEXT, 0, None),
            "QUIT": (self._quit, 0, 0),
            "EXIT": (self._quit, 0, 0),
        }

    def execute(self, line: str) -> str | None:
        """The reply to one line (None for a blank line). Raises `Quit`."""
        if len(line) > LINE_SIZE_MAX_CHARACTERS:
            return f"(error) ERR line longer than {LINE_SIZE_MAX_CHARACTERS} characters"
        try:
            arguments = split_arguments(line)
        except ParseError as error:
            return f"(error) ERR {error}"
        if not arguments:
            return None
        name = arguments[0].decode("utf-8", "replace")
        command = self.commands.get(name.upper())
        if command is None:
            return f"(error) ERR unknown command '{name}', with args beginning with: " + " ".join(
                f"'{a.decode('utf-8', 'replace')}'" for a in arguments[1:4]
            )
        handler, minimum, maximum = command
        count = len(arguments) - 1
        if count < minimum or (maximum is not None and count > maximum):
            return f"(error) ERR wrong number of arguments for '{name.lower()}' command"
        try:
            return handler(arguments[1:])
        except StoreReadOnly as error:
            return f"(error) READONLY {error}"
        except CorruptionDetected as error:
            return f"(error) CORRUPTION {error}"
        except IoError as error:
            return f"(error) IOERR {error}"
        except KvError as error:
            return f"(error) ERR {error}"

    def _set(self, arguments: list[bytes]) -> str:
        self.store.set(arguments[0], arguments[1])
        return "OK"

    def _get(self, arguments: list[bytes]) -> str:
        value = self.store.get(arguments[0])
        return "(nil)" if value is None else quote_value(value)

    def _delete(self, arguments: list[bytes]) -> str:
        return f"(integer) {sum(self.store.delete(key) for key in arguments)}"

    def _exists(self, arguments: list[bytes]) -> str:
        return f"(integer) {sum(self.store.exists(key) for key in arguments)}"

    def _quit(self, _: list[bytes]) -> str:
        raise Quit


def run(store: Store, input_stream: TextIO, output: TextIO, prompt: str | None) -> None:
    """Read lines until QUIT or end of input, writing one reply per command."""
    repl = Repl(store)
    while True:
        if prompt is not None:
            output.write(prompt)
            output.flush()
        line = input_stream.readline()
        if not line:
            if prompt is not None:
                output.write("\n")
            return
        try:
            reply = repl.execute(line.rstrip("\r\n"))
        except Quit:
            return
        if reply is not None:
            output.write(reply + "\n")
            output.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kv", description="A Redis-style shell over a kv store directory.")
    parser.add_argument("directory", nargs="?", default="./kv-data", help="store directory (default ./kv-data)")
    parser.add_argument("--io", choices=("auto", "blocking", "uring"), default="auto", help="I/O backend")
    parser.add_argument("--durability", choices=DURABILITY_MODES, default="always", help="when writes are synced")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="on mid-log corruption, move the damaged data to quarantine/ and open the valid prefix",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `kv` console script. Exit 0 on success, 1 when the store
    cannot be opened, 2 on a usage error."""
    arguments = build_parser().parse_args(argv)
    try:
        io = make_io(arguments.io)
        store = open_store(
            arguments.directory,
            io=io,
            durability=arguments.durability,
            on_corruption="repair" if arguments.repair else "raise",
        )
    except StoreLocked as error:
        print(f"kv: {error}", file=sys.stderr)
        return 1
    except CorruptionDetected as error:
        print(f"kv: {error}", file=sys.stderr)
        return 1
    except KvError as error:
        print(f"kv: cannot open {arguments.directory}: {error}", file=sys.stderr)
        return 1
    if not store.recovery.clean:
        print(f"kv: recovery: {store.recovery.summary()}", file=sys.stderr)
    interactive = sys.stdin.isatty()
    try:
        run(store, sys.stdin, sys.stdout, "kv> " if interactive else None)
    except KeyboardInterrupt:
        print(file=sys.stderr)
    finally:
        try:
            store.close()
        except IoError as error:
            print(f"kv: closing failed: {error}", file=sys.stderr)
            return 1
    return 0
