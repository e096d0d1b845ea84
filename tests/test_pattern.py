"""Redis glob patterns: `kv.pattern` against a line-by-line port of Redis 7's
`stringmatchlen` (util.c), and the cases where fnmatch would differ."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kv.pattern import matcher, matches


def _signed(byte: int) -> int:
    return byte - 256 if byte >= 128 else byte


def redis_stringmatchlen(pattern: bytes, string: bytes) -> bool:
    """Redis's C function, transcribed with the same control flow (recursion on `*`),
    reading a NUL past the end of the pattern as the C code does (sds strings end in NUL)."""
    p, s = pattern + b"\0", string

    def at(index: int) -> int:
        return p[index] if index < len(p) else 0

    def match(pi: int, plen: int, si: int, slen: int) -> bool:
        while plen and slen:
            c = p[pi]
            if c == ord("*"):
                while plen and at(pi + 1) == ord("*"):
                    pi, plen = pi + 1, plen - 1
                if plen == 1:
                    return True
                while slen:
                    if match(pi + 1, plen - 1, si, slen):
                        return True
                    si, slen = si + 1, slen - 1
                return False
            if c == ord("?"):
                si, slen = si + 1, slen - 1
            elif c == ord("["):
                pi, plen = pi + 1, plen - 1
                negate = at(pi) == ord("^")
                if negate:
                    pi, plen = pi + 1, plen - 1
                found = False
                while True:
                    if at(pi) == ord("\\") and plen >= 2:
                        pi, plen = pi + 1, plen - 1
                        found |= at(pi) == s[si]
                    elif at(pi) == ord("]"):
                        break
                    elif plen == 0:
                        pi, plen = pi - 1, plen + 1
                        break
                    elif plen >= 3 and at(pi + 1) == ord("-"):
                        start, end = _signed(at(pi)), _signed(at(pi + 2))
                        start, end = min(start, end), max(start, end)
                        pi, plen = pi + 2, plen - 2
                        found |= start <= _signed(s[si]) <= end
                    else:
                        found |= at(pi) == s[si]
                    pi, plen = pi + 1, plen - 1
                if negate:
                    found = not found
                if not found:
                    return False
                si, slen = si + 1, slen - 1
            else:
                if c == ord("\\") and plen >= 2:
                    pi, plen = pi + 1, plen - 1
                if at(pi) != s[si]:
                    return False
                si, slen = si + 1, slen - 1
            pi, plen = pi + 1, plen - 1
            if slen == 0:
                while at(pi) == ord("*"):
                    pi, plen = pi + 1, plen - 1
                break
        return plen == 0 and slen == 0

    return match(0, len(pattern), 0, len(string))


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        (b"*", b"anything", True),
        (b"*", b"", False),  # the empty key: only the empty pattern (KEYS * special-cases it)
        (b"", b"", True),
        (b"h?llo", b"hello", True),
        (b"h?llo", b"hllo", False),
        (b"h*llo", b"heeeello", True),
        (b"h[ae]llo", b"hallo", True),
        (b"h[ae]llo", b"hillo", False),
        (b"h[^e]llo", b"hallo", True),
        (b"h[^e]llo", b"hello", False),
        (b"h[a-b]llo", b"hbllo", True),
        (b"h[b-a]llo", b"hallo", True),  # a reversed range is swapped
        (b"h\\*llo", b"h*llo", True),
        (b"h\\*llo", b"hello", False),
        (b"[\\]]", b"]", True),
        (b"[abc", b"b", True),  # an unterminated class runs to the end
        (b"[", b"[", False),
        (b"[^", b"x", True),
        (b"[a-]x", b"]", True),  # `a-]` is a range, and the class goes on
        (b"[a-\xff]", b"\xff", True),  # signed char: 0xff sorts below 'a'
        (b"[a-\xff]", b"b", False),
        (b"a*b*c", b"aXbYc", True),
        (b"a*b*c", b"aXbY", False),
        (b"**a", b"ba", True),
        (b"trailing\\", b"trailing\\", True),
    ],
)
def test_cases(pattern: bytes, key: bytes, expected: bool) -> None:
    assert matches(pattern, key) is expected
    assert redis_stringmatchlen(pattern, key) is expected


def test_fnmatch_is_not_redis_glob() -> None:
    """Why kv.pattern exists: fnmatch negates with [!...] and has no backslash escape."""
    assert fnmatch.fnmatchcase("hallo", "h[^e]llo") is False  # [^e] is "^ or e" to fnmatch
    assert matches(b"h[^e]llo", b"hallo")
    assert fnmatch.fnmatchcase("h*llo", "h\\*llo") is False
    assert matches(b"h\\*llo", b"h*llo")


_ALPHABET = [b"a", b"b", b"*", b"?", b"[", b"]", b"^", b"-", b"\\", b"\xff", b"\x00"]


@settings(max_examples=3000, deadline=None)
@given(
    pattern=st.lists(st.sampled_from(_ALPHABET), max_size=9).map(b"".join),
    key=st.lists(st.sampled_from([b"a", b"b", b"]", b"-", b"^", b"*", b"\\", b"\xff", b"\x00"]), max_size=7).map(
        b"".join
    ),
)
def test_agrees_with_redis_stringmatchlen(pattern: bytes, key: bytes) -> None:
    assert matcher(pattern)(key) is redis_stringmatchlen(pattern, key)


def test_many_stars_need_no_recursion() -> None:
    pattern = b"*a" * 5000 + b"*"
    assert matches(pattern, b"a" * 5000)
    assert not matches(pattern, b"a" * 4999)
