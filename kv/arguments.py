"""Splitting a command line into arguments exactly as redis-cli and Redis do
(`sdssplitargs`): the REPL's lines and the server's inline commands. Pure."""

from __future__ import annotations

_C_SPACE = frozenset(b" \t\n\v\f\r")  # isspace() in the C locale: skipped between arguments
_TOKEN_END = frozenset(b" \n\r\t")  # what ends an unquoted argument (not \v or \f)
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}


def _double_quoted(line: bytes, position: int, token: bytearray) -> int | None:
    """Consume a double-quoted part from just after its opening quote; the position after
    the closing quote, or None when it is unterminated or glued to what follows."""
    length = len(line)
    while position < length:  # each pass consumes at least one byte
        byte = line[position]
        if (
            byte == ord("\\")
            and position + 3 < length
            and line[position + 1] == ord("x")
            and line[position + 2] in _HEX_DIGITS
            and line[position + 3] in _HEX_DIGITS
        ):
            token.append(int(line[position + 2 : position + 4], 16))
            position += 4
        elif byte == ord("\\") and position + 1 < length:
            escaped = line[position + 1]
            token += _ESCAPES.get(escaped, bytes([escaped]))
            position += 2
        elif byte == ord('"'):
            if position + 1 < length and line[position + 1] not in _C_SPACE:
                return None  # a closing quote must be followed by a space or the end
            return position + 1
        else:
            token.append(byte)
            position += 1
    return None


def _single_quoted(line: bytes, position: int, token: bytearray) -> int | None:
    """As `_double_quoted` for single quotes: only \\' is an escape."""
    length = len(line)
    while position < length:  # each pass consumes at least one byte
        byte = line[position]
        if byte == ord("\\") and position + 1 < length and line[position + 1] == ord("'"):
            token.append(ord("'"))
            position += 2
        elif byte == ord("'"):
            if position + 1 < length and line[position + 1] not in _C_SPACE:
                return None
            return position + 1
        else:
            token.append(byte)
            position += 1
    return None


def split_arguments(line: bytes) -> list[bytes] | None:
    """Split a command line exactly as redis-cli does; None for unbalanced quotes or a
    closing quote glued to more text (redis-cli then prints "Invalid argument(s)").
    The line ends at a NUL byte, as a C string does."""
    line = line.split(b"\0", 1)[0]
    arguments: list[bytes] = []
    position, length = 0, len(line)
    while True:  # each pass consumes one argument or ends: bounded by the line
        while position < length and line[position] in _C_SPACE:
            position += 1
        if position >= length:
            return arguments
        token = bytearray()
        while position < length:
            byte = line[position]
            if byte in _TOKEN_END:
                position += 1
                break
            if byte in b"\"'":
                quoted = _double_quoted if byte == ord('"') else _single_quoted
                after = quoted(line, position + 1, token)
                if after is None:
                    return None
                position = after
                break
            token.append(byte)
            position += 1
        arguments.append(bytes(token))
