"""Redis glob patterns (KEYS, SCAN MATCH), matched exactly as Redis 7's `stringmatchlen`.

    `*` any run of bytes, `?` one byte, `[abc]` one of, `[^abc]` none of, `[a-z]` a
    range (either order), `\\x` the byte x literally, inside a class too.

`fnmatch` is not a stand-in: it negates with `[!...]`, not `[^...]`, knows no `\\`
escape and matches text, not bytes. The quirks of the C code are kept on purpose, so
a pattern selects the same keys here as on a Redis server:

- an unterminated class (`[abc`) runs to the end of the pattern; `[` alone matches
  nothing and `[^` any byte;
- a `-` right after a class member makes a range even with `]` as its end (`[a-]`
  is the range `]`..`a`, and the class goes on after that `]`);
- range ends compare as C `char`, which is signed on the x86 and ARM Linux builds
  Redis ships: a byte from 0x80 up counts below 0x00 (`[a-\\xff]` is 0xff..`a`);
- the empty key is matched only by the empty pattern (`*` does not match it; KEYS
  and SCAN special-case a lone `*` as "every key", so they list it).

A pattern is compiled once into tokens, each `STAR` or a 256-entry table of the bytes
one position accepts, and matched by the two-pointer backtracking algorithm: linear
memory, no recursion (the C code recurses once per `*`), O(len(key) * len(pattern))
at worst.
"""

from __future__ import annotations

from collections.abc import Callable

STAR = None  # a token: any run of bytes

_ANY_BYTE = bytes([1]) * 256
_Token = bytes | None  # a 256-byte table (1 = accepted), or STAR


def _signed_char(byte: int) -> int:
    return byte - 256 if byte >= 128 else byte


def _class_token(pattern: bytes, position: int) -> tuple[bytes, int]:
    """Parse the class whose `[` is at `position`; returns its table and the position
    after it, mirroring the `case '['` branch of `stringmatchlen`."""
    length = len(pattern)
    position += 1
    negate = position < length and pattern[position] == ord("^")
    if negate:
        position += 1
    accepted = bytearray(256)
    while True:  # each pass consumes at least one byte of the pattern: bounded by its length
        if position < length and pattern[position] == ord("\\") and length - position >= 2:
            position += 1
            accepted[pattern[position]] = 1
        elif position < length and pattern[position] == ord("]"):
            break
        elif position >= length:  # unterminated: the class ends with the pattern
            position -= 1
            break
        elif length - position >= 3 and pattern[position + 1] == ord("-"):
            start, end = _signed_char(pattern[position]), _signed_char(pattern[position + 2])
            low, high = min(start, end), max(start, end)
            for byte in range(256):
                if low <= _signed_char(byte) <= high:
                    accepted[byte] = 1
            position += 2
        else:
            accepted[pattern[position]] = 1
        position += 1
    if negate:
        accepted = bytearray(1 - flag for flag in accepted)
    return bytes(accepted), position + 1


def compile_pattern(pattern: bytes) -> list[_Token]:
    """The pattern as tokens: STAR (consecutive stars folded into one) or one byte's table."""
    tokens: list[_Token] = []
    position, length = 0, len(pattern)
    while position < length:
        byte = pattern[position]
        if byte == ord("*"):
            if not tokens or tokens[-1] is not STAR:
                tokens.append(STAR)
            position += 1
        elif byte == ord("?"):
            tokens.append(_ANY_BYTE)
            position += 1
        elif byte == ord("["):
            table, position = _class_token(pattern, position)
            tokens.append(table)
        else:
            if byte == ord("\\") and length - position >= 2:
                position += 1
                byte = pattern[position]
            literal = bytearray(256)
            literal[byte] = 1
            tokens.append(bytes(literal))
            position += 1
    return tokens


def _match_tokens(tokens: list[_Token], key: bytes) -> bool:
    if not key:
        return not tokens  # stringmatchlen never enters its loop for an empty string
    token_count, key_length = len(tokens), len(key)
    token_index = key_index = 0
    star_index, star_key_index = -1, 0
    while key_index < key_length:  # each pass advances key_index or the star's start: bounded
        token = tokens[token_index] if token_index < token_count else _NOTHING
        if token is STAR:
            star_index, star_key_index = token_index, key_index
            token_index += 1
        elif token[key[key_index]]:
            token_index += 1
            key_index += 1
        elif star_index >= 0:  # let the last star swallow one more byte and retry after it
            star_key_index += 1
            token_index, key_index = star_index + 1, star_key_index
        else:
            return False
    while token_index < token_count and tokens[token_index] is STAR:
        token_index += 1
    return token_index == token_count


_NOTHING = bytes(256)  # what follows the last token: accepts no byte


def matcher(pattern: bytes) -> Callable[[bytes], bool]:
    """A predicate telling whether a key matches `pattern` (compiled once)."""
    tokens = compile_pattern(pattern)
    return lambda key: _match_tokens(tokens, key)


def matches(pattern: bytes, key: bytes) -> bool:
    """True when `key` matches the Redis glob `pattern`."""
    return _match_tokens(compile_pattern(pattern), key)
