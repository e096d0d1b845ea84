"""RESP, the Redis protocol, sans-I/O: bytes in, commands out; replies in, bytes out.

    parser = RequestParser()
    parser.feed(b"*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n")
    parser.next()                       # [b"GET", b"k"]; None until a command is whole
    encode(Bulk(b"v"), protocol=2)      # b"$1\\r\\nv\\r\\n"

Requests are what redis-cli, redis-py and redis-benchmark send: arrays of bulk strings
(`*N`, then `$len` and the bytes, each line ended by CRLF), or an inline command (a
line of words, split as redis-cli splits them). The parser keeps its place between
feeds, so a 16 MiB value arriving in 4 KiB pieces is parsed once, and it checks every
length before it waits for the bytes: a client that announces a bulk or an array
beyond the limits gets a `ProtocolError` at once, and nothing is buffered for it.
The limits are Redis's (`networking.c`): an array of at most 1,048,576 items, a bulk of
at most `proto-max-bulk-len` (here the store's largest value and some room), an inline
line of at most 64 KiB, and a query buffer (what a client sent that is not yet a whole
command) of at most 1 GiB. Every `ProtocolError` is worded as Redis words it; the
server replies with it and closes the connection, as Redis does.

Replies encode as RESP2 (the default) or RESP3 (after `HELLO 3`): in RESP3 a nil is
`_`, a `Map` is `%`; in RESP2 a nil bulk is `$-1`, a nil array `*-1`, and a `Map` is a
flat array of its keys and values.
"""

from __future__ import annotations

from kv.arguments import split_arguments
from kv.errors import KvError
from kv.limits import KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES
from kv.replies import Array, Bulk, ErrorReply, InProtocol, Integer, Map, Reply, SimpleString, text_bytes

ARRAY_LENGTH_MAX = 1024 * 1024  # Redis: "invalid multibulk length" above it
# A bulk holds a key or a value; a little room for arguments such as MSET's pairs.
BULK_SIZE_MAX_BYTES = VALUE_SIZE_MAX_BYTES + KEY_SIZE_MAX_BYTES
INLINE_SIZE_MAX_BYTES = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
QUERY_BUFFER_SIZE_MAX_BYTES = 1024 * 1024 * 1024  # Redis's client-query-buffer-limit
_LENGTH_DIGITS_MAX = 20


# The fast path reads arrays up to this long; longer ones take the careful path.
_FAST_ARRAY_LENGTH_MAX = 64


class ProtocolError(KvError):
    """Bytes that are not a request: the server replies with this error and closes."""


class RequestParser:
    """Commands out of a byte stream, one at a time; `feed` bytes as they arrive."""

    def __init__(
        self,
        bulk_size_max: int = BULK_SIZE_MAX_BYTES,
        query_buffer_size_max: int = QUERY_BUFFER_SIZE_MAX_BYTES,
    ) -> None:
        self.bulk_size_max = bulk_size_max
        self.query_buffer_size_max = query_buffer_size_max
        self._buffer = bytearray()
        self._position = 0
        self._items_left: int | None = None  # of the array being read (None: between commands)
        self._arguments: list[bytes] = []
        self._bulk_size: int | None = None  # of the bulk being read (its header was read)

    @property
    def buffered(self) -> int:
        """Bytes received that are not part of a command handed out yet."""
        return len(self._buffer) - self._position

    def feed(self, data: bytes) -> None:
        """Add received bytes. Raises `ProtocolError` when the query buffer would pass
        its limit (a client that never finishes a command)."""
        if self._position and self._position > len(self._buffer) // 2:
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += data
        if self.buffered > self.query_buffer_size_max:
            raise ProtocolError("Protocol error: query buffer limit reached")

    def next(self) -> list[bytes] | None:
        """The next whole command (never empty), or None when more bytes are needed.
        Raises `ProtocolError` for malformed input; the parser is unusable after it."""
        while True:
            if self._items_left is None:
                if self.buffered == 0:
                    return None
                if (whole := self._whole_command()) is not None:
                    return whole
                if self._buffer[self._position] != ord("*"):
                    inline = self._inline()
                    if inline is None or inline:
                        return inline
                    continue  # an empty line: Redis skips it
                count = self._length_line(b"*", "invalid multibulk length", ARRAY_LENGTH_MAX)
                if count is None:
                    return None
                if count <= 0:
                    continue  # `*0` and `*-1` are no command
                self._items_left, self._arguments = count, []
            while self._items_left:
                argument = self._bulk()
                if argument is None:
                    return None
                self._arguments.append(argument)
                self._items_left -= 1
            self._items_left = None
            return self._arguments

    def _whole_command(self) -> list[bytes] | None:
        """The fast path: a whole, well-formed `*N` array of bulks at the position, read
        with no state kept; None for anything else (a part, a doubt, an error), which the
        careful path below then reads, and words its error, byte for byte as before."""
        buffer, position = self._buffer, self._position
        if buffer[position] != 42:  # b"*"
            return None
        end = buffer.find(b"\r\n", position, position + _LENGTH_DIGITS_MAX + 3)
        digits = buffer[position + 1 : end]
        if end < 0 or not digits.isdigit() or not 0 < (count := int(digits)) <= _FAST_ARRAY_LENGTH_MAX:
            return None
        arguments, position, size_max = [], end + 2, self.bulk_size_max
        for _ in range(count):
            if buffer[position : position + 1] != b"$":
                return None
            end = buffer.find(b"\r\n", position, position + _LENGTH_DIGITS_MAX + 3)
            digits = buffer[position + 1 : end]
            if end < 0 or not digits.isdigit() or (size := int(digits)) > size_max:
                return None
            start = end + 2
            position = start + size + 2
            if buffer[position - 2 : position] != b"\r\n":
                return None
            arguments.append(bytes(buffer[start : start + size]))
        self._position = position
        return arguments

    def _line_end(self, limit: int, too_long: str) -> int | None:
        end = self._buffer.find(b"\r\n", self._position)
        if end < 0:
            if self.buffered > limit:
                raise ProtocolError(too_long)
            return None
        return end

    def _inline(self) -> list[bytes] | None:
        end = self._buffer.find(b"\n", self._position)
        if end < 0:
            if self.buffered > INLINE_SIZE_MAX_BYTES:
                raise ProtocolError("Protocol error: too big inline request")
            return None
        line = bytes(self._buffer[self._position : end]).removesuffix(b"\r")
        self._position = end + 1
        arguments = split_arguments(line)
        if arguments is None:
            raise ProtocolError("Protocol error: unbalanced quotes in request")
        return arguments

    def _length_line(self, marker: bytes, what: str, maximum: int) -> int | None:
        """The number on a `*N` or `$N` line, its line consumed; None until it is whole."""
        end = self._line_end(_LENGTH_DIGITS_MAX + 2, f"Protocol error: {what}")
        if end is None:
            return None
        line = bytes(self._buffer[self._position : end])
        if line[:1] != marker:
            got = line[:1].decode("latin-1") or " "
            raise ProtocolError(f"Protocol error: expected '{marker.decode()}', got '{got}'")
        digits = line[1:]
        negative_one = digits == b"-1" and marker == b"*"
        if not negative_one and (not digits.isdigit() or len(digits) > _LENGTH_DIGITS_MAX):
            raise ProtocolError(f"Protocol error: {what}")
        value = int(digits)
        if value > maximum:
            raise ProtocolError(f"Protocol error: {what}")
        self._position = end + 2
        return value

    def _bulk(self) -> bytes | None:
        if self._bulk_size is None:
            self._bulk_size = self._length_line(b"$", "invalid bulk length", self.bulk_size_max)
            if self._bulk_size is None:
                return None
        size = self._bulk_size
        if self.buffered < size + 2:
            return None
        start = self._position
        if self._buffer[start + size : start + size + 2] != b"\r\n":
            raise ProtocolError("Protocol error: invalid bulk length")
        self._position = start + size + 2
        self._bulk_size = None
        return bytes(self._buffer[start : start + size])


def encode(reply: Reply, protocol: int = 2) -> bytes:
    """A reply's bytes on the wire in RESP2 or RESP3."""
    out = bytearray()
    _encode(reply, protocol, out)
    return bytes(out)


def _encode(reply: Reply, protocol: int, out: bytearray) -> None:
    if isinstance(reply, InProtocol):
        _encode(reply.reply, reply.protocol, out)
    elif isinstance(reply, Bulk):
        value = reply.value
        if value is None:
            out += b"_\r\n" if protocol == 3 else b"$-1\r\n"
        else:
            out += b"$%d\r\n%s\r\n" % (len(value), value)
    elif isinstance(reply, SimpleString):
        out += b"+%s\r\n" % text_bytes(reply.text)
    elif isinstance(reply, Integer):
        out += b":%d\r\n" % reply.value
    elif isinstance(reply, ErrorReply):
        out += b"-%s\r\n" % text_bytes(reply.text)
    elif isinstance(reply, Map):
        out += b"%%%d\r\n" % len(reply.items) if protocol == 3 else b"*%d\r\n" % (2 * len(reply.items))
        for name, item in reply.items:
            _encode(name, protocol, out)
            _encode(item, protocol, out)
    else:
        assert isinstance(reply, Array), reply
        if reply.items is None:
            out += b"_\r\n" if protocol == 3 else b"*-1\r\n"
            return
        out += b"*%d\r\n" % len(reply.items)
        for item in reply.items:
            _encode(item, protocol, out)
