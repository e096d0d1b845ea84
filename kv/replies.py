"""Typed command replies, one class per RESP reply type the commands produce.

The command table (`kv.commands`) returns these; a RESP2/RESP3 encoder (the server)
and the REPL's renderer (`kv.cli`, as redis-cli shows replies) turn them into bytes.
No reply knows how it is shown.

- `SimpleString` (`+OK`, `+PONG`) and `ErrorReply` (`-ERR ...`) carry text without CR
  or LF (the wire format ends them at the first line break); an error's first word is
  its prefix, as in Redis (`ERR`, `WRONGTYPE`, `READONLY`, and ours: `CORRUPTION`,
  `IOERR`).
- `Integer` (`:3`), `Bulk` (`$5 hello`, None = the nil bulk), `Array` (nested
  replies, None = the nil array), `Map` (RESP3's `%`, pairs of replies: HELLO's).

Text is `str`; bytes that are not UTF-8 (a command name typed as `\\xff`) travel as
surrogate escapes and come back as the same bytes through `text_bytes`.
"""

from __future__ import annotations

from dataclasses import dataclass

TEXT_ENCODING = "utf-8"
TEXT_ERRORS = "surrogateescape"  # arbitrary bytes round-trip through str


def text_bytes(text: str) -> bytes:
    """The bytes of a reply's text, as they go on the wire."""
    return text.encode(TEXT_ENCODING, TEXT_ERRORS)


def bytes_text(data: bytes) -> str:
    """Bytes as reply text (the inverse of `text_bytes`)."""
    return data.decode(TEXT_ENCODING, TEXT_ERRORS)


def one_line(text: str) -> str:
    """`text` with CR and LF replaced by spaces, as Redis does to error messages."""
    return text.replace("\r", " ").replace("\n", " ")


@dataclass(frozen=True, slots=True)
class SimpleString:
    text: str

    def __post_init__(self) -> None:
        assert "\r" not in self.text and "\n" not in self.text, self.text


@dataclass(frozen=True, slots=True)
class ErrorReply:
    prefix: str  # ERR, WRONGTYPE, READONLY, CORRUPTION, IOERR
    message: str

    def __post_init__(self) -> None:
        assert self.prefix and self.prefix.isupper() and " " not in self.prefix, self.prefix
        assert "\r" not in self.message and "\n" not in self.message, self.message

    @property
    def text(self) -> str:
        """The error as Redis sends it: prefix, a space, the message."""
        return f"{self.prefix} {self.message}"


@dataclass(frozen=True, slots=True)
class Integer:
    value: int


@dataclass(frozen=True, slots=True)
class Bulk:
    value: bytes | None  # None: the nil bulk string


@dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Reply, ...] | None  # None: the nil array


@dataclass(frozen=True, slots=True)
class Map:
    items: tuple[tuple[Reply, Reply], ...]  # RESP3 `%`; RESP2 sends it as a flat array

    def flat(self) -> Array:
        """The map as RESP2 sends it: keys and values in one array."""
        return Array(tuple(item for pair in self.items for item in pair))


@dataclass(frozen=True, slots=True)
class InProtocol:
    """`reply`, to be encoded in `protocol` whatever the connection's is when it is sent:
    a reply made before a pipelined HELLO switched the protocol (Redis encodes each
    reply as its command runs)."""

    reply: Reply
    protocol: int


Reply = SimpleString | ErrorReply | Integer | Bulk | Array | Map | InProtocol

OK = SimpleString("OK")
PONG = SimpleString("PONG")
NIL = Bulk(None)
EMPTY_ARRAY = Array(())


def error(message: str, prefix: str = "ERR") -> ErrorReply:
    """An error reply; line breaks in `message` become spaces."""
    return ErrorReply(prefix, one_line(message))


def bulk_array(values: list[bytes] | list[bytes | None]) -> Array:
    """An array of bulk strings (None items are nil bulks)."""
    return Array(tuple(Bulk(value) for value in values))
