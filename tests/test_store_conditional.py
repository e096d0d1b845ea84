"""getdel, incr and conditional sets (Redis GETDEL, INCRBY, SET NX/XX) on the store."""

from __future__ import annotations

import pytest

import kv
from io_backends.sim import SimIo
from kv.errors import InvalidArgument, NotAnInteger
from kv.store import INT64_MAX, INT64_MIN, parse_int64


@pytest.mark.parametrize("durability", ["always", "batch", "none"])
def test_getdel_incr_and_conditional_sets_persist(durability: str) -> None:
    io = SimIo(seed=1)
    with kv.open("/db", io=io, durability=durability) as store:  # type: ignore[arg-type]
        assert store.set(b"k", b"v1", only_if_present=True) is False
        assert store.set(b"k", b"v1", only_if_missing=True) is True
        assert store.set(b"k", b"v2", only_if_missing=True) is False
        assert store.set(b"k", b"v3", only_if_present=True) is True
        assert store.incr(b"n") == 1 and store.incr(b"n", 41) == 42 and store.incr(b"n", -50) == -8
        assert store.getdel(b"gone") is None
        store.set(b"gone", b"x")
        assert store.getdel(b"gone") == b"x" and store.get(b"gone") is None
    with kv.open("/db", io=io) as store:
        assert (store.get(b"k"), store.get(b"n"), store.get(b"gone")) == (b"v3", b"-8", None)


def test_incr_refuses_what_is_not_an_int64_and_writes_nothing() -> None:
    io = SimIo(seed=2)
    with kv.open("/db", io=io) as store:
        for value in (b"x", b"007", b"+1", b" 1", b"1.5", b"", b"-0", b"9223372036854775808"):
            store.set(b"v", value)
            with pytest.raises(NotAnInteger, match="value is not an integer or out of range"):
                store.incr(b"v")
            assert store.get(b"v") == value
        store.set(b"max", b"%d" % INT64_MAX)
        with pytest.raises(NotAnInteger, match="overflow"):
            store.incr(b"max")
        store.set(b"min", b"%d" % INT64_MIN)
        with pytest.raises(NotAnInteger, match="overflow"):
            store.incr(b"min", -1)
        assert store.get(b"max") == b"%d" % INT64_MAX and store.get(b"min") == b"%d" % INT64_MIN
        with pytest.raises(InvalidArgument, match="by must be an int"):
            store.incr(b"n", 1.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="exclude each other"):
            store.set(b"k", b"v", only_if_missing=True, only_if_present=True)
        assert not store.exists(b"k")


def test_parse_int64_is_redis_string2ll() -> None:
    accepted = {b"0": 0, b"-1": -1, b"42": 42, b"9223372036854775807": INT64_MAX, b"-9223372036854775808": INT64_MIN}
    for text, value in accepted.items():
        assert parse_int64(text) == value
    for text in (b"", b"-", b"+1", b"01", b"-0", b"1 ", b"1e3", b"9223372036854775808", b"\xd9\xa1"):
        assert parse_int64(text) is None, text
