"""Ordered iteration: `Store.scan` against a sorted model, and `Store.scan_cursor`'s
promise (every key present for the whole scan is returned at least once) under writes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kv
from io_backends.sim import SimIo
from kv.errors import InvalidArgument
from kv.ordered import CHUNK_KEYS, CURSOR_KEY_BYTES_MAX, Cursor, prefix_stop
from kv.store import Durability, Store

KEYS = [bytes([a]) + bytes([b]) * n for a in (0, 1, 0x61, 0xFF) for b in (0, 0x62, 0xFF) for n in range(3)]


def _open(io: SimIo, durability: Durability = "always") -> Store:
    return kv.open("/db", io=io, durability=durability)


def _model_scan(
    model: dict[bytes, bytes],
    start: bytes | None,
    stop: bytes | None,
    prefix: bytes | None,
    reverse: bool,
    limit: int | None,
) -> list[tuple[bytes, bytes]]:
    keys = sorted(model, reverse=reverse)
    keys = [k for k in keys if (start is None or k >= start) and (stop is None or k < stop)]
    keys = [k for k in keys if prefix is None or k.startswith(prefix)]
    return [(k, model[k]) for k in keys[:limit]]


writes = st.lists(
    st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.binary(max_size=8))), min_size=0, max_size=60
)
bounds = st.one_of(st.none(), st.sampled_from(KEYS), st.binary(max_size=3))


@settings(max_examples=150, deadline=None)
@given(
    writes=writes,
    durability=st.sampled_from(["always", "batch", "none"]),
    start=bounds,
    stop=bounds,
    prefix=st.one_of(st.none(), st.binary(max_size=2)),
    reverse=st.booleans(),
    limit=st.one_of(st.none(), st.integers(0, 10)),
    scan_first=st.booleans(),
)
def test_scan_is_the_sorted_model(
    writes: list[tuple[bytes, bytes | None]],
    durability: Durability,
    start: bytes | None,
    stop: bytes | None,
    prefix: bytes | None,
    reverse: bool,
    limit: int | None,
    scan_first: bool,
) -> None:
    """Whatever the writes (committed or still staged in a buffered mode), whether the
    index was built before them (kept in step) or after (built from the keydir)."""
    model: dict[bytes, bytes] = {}
    with _open(SimIo(seed=1), durability) as store:
        if scan_first:
            list(store.scan())
        for key, value in writes:
            if value is None:
                store.delete(key)
                model.pop(key, None)
            else:
                store.set(key, value)
                model[key] = value
        found = list(store.scan(start, stop, prefix=prefix, reverse=reverse, limit=limit))
        assert found == _model_scan(model, start, stop, prefix, reverse, limit)


def test_a_scan_sees_the_store_as_it_goes_and_survives_a_reopen() -> None:
    io = SimIo(seed=2)
    keys = [b"k%04d" % index for index in range(3 * CHUNK_KEYS)]
    with _open(io) as store:
        store.set_many({key: key for key in keys})
        scan = store.scan()
        first = next(scan)
        store.delete(keys[CHUNK_KEYS + 5])  # not reached yet: skipped
        store.set(b"k0100x", b"new")  # written ahead of the scan: seen
        rest = [key for key, _value in scan]
        assert first == (keys[0], keys[0])
        assert keys[CHUNK_KEYS + 5] not in rest and b"k0100x" in rest
        assert rest == sorted(rest) and len(rest) == len(keys) - 1
    with _open(io) as store:
        assert [key for key, _ in store.scan(prefix=b"k01", limit=3)] == [b"k0100", b"k0100x", b"k0101"]
        assert [key for key, _ in store.scan(b"k0005", b"k0002", reverse=True)] == []
        assert [key for key, _ in store.scan(b"k0002", b"k0005", reverse=True)] == [b"k0004", b"k0003", b"k0002"]


def _cursor_scan(store: Store, count: int, rng: random.Random, churn: list[bytes]) -> list[bytes]:
    """A whole cursor scan, with random sets and deletes of `churn` keys between steps."""
    returned: list[bytes] = []
    cursor = 0
    for _ in range(10_000):
        cursor, keys = store.scan_cursor(cursor, count)
        returned += keys
        for key in rng.sample(churn, 3):
            if rng.random() < 0.5:
                store.delete(key)
            else:
                store.set(key, b"x")
        if cursor == 0:
            return returned
    raise AssertionError("the cursor scan did not end")


@pytest.mark.parametrize("durability", ["always", "batch"])
@pytest.mark.parametrize("count", [1, 7, 100])
def test_a_cursor_scan_returns_every_key_present_throughout(durability: Durability, count: int) -> None:
    rng = random.Random(count)
    stable = [b"s%03d" % index for index in range(150)]
    churn = [b"s%03dc" % index for index in range(150)] + [b"a", b"z", b""]
    with _open(SimIo(seed=3), durability) as store:
        store.set_many({key: b"v" for key in stable})
        returned = _cursor_scan(store, count, rng, churn)
    assert set(stable) <= set(returned)
    assert len(returned) == len(set(returned)), "in order, a key comes once"


def test_long_keys_sharing_a_prefix_are_returned_in_one_step() -> None:
    shared = b"p" * (CURSOR_KEY_BYTES_MAX + 10)
    keys = [shared + b"%03d" % index for index in range(20)] + [b"q", b"a"]
    with _open(SimIo(seed=4)) as store:
        store.set_many({key: b"v" for key in keys})
        cursor, first = store.scan_cursor(0, 2)
        assert first[:1] == [b"a"] and len(first) == 21  # "a", then every key of the long prefix
        assert Cursor.decode(cursor) == Cursor(shared[:CURSOR_KEY_BYTES_MAX], whole_prefix=True)
        cursor, second = store.scan_cursor(cursor, 2)
        assert (cursor, second) == (0, [b"q"])
        assert len(str(Cursor.after(shared).encode())) < 4300  # printable as a Redis cursor


def test_cursors_and_bounds_are_checked() -> None:
    with _open(SimIo(seed=5)) as store:
        for bad in (-1, 2**8 * 3 + 1, int.from_bytes(b"\x01" + b"k" * (CURSOR_KEY_BYTES_MAX + 1), "big")):
            with pytest.raises(InvalidArgument, match="invalid cursor"):
                store.scan_cursor(bad)
        with pytest.raises(InvalidArgument, match="count"):
            store.scan_cursor(0, 0)
        with pytest.raises(InvalidArgument, match="limit"):
            store.scan(limit=-1)
        assert store.scan_cursor(Cursor(b"\xff\xff", whole_prefix=True).encode()) == (0, [])
    assert [prefix_stop(p) for p in (b"", b"\xff", b"a", b"a\xff", b"ab")] == [None, None, b"b", b"b", b"ac"]
    assert Cursor.decode(Cursor.after(b"").encode()) == Cursor(b"")
    assert Cursor.decode(Cursor.after(b"\x00\x00k").encode()) == Cursor(b"\x00\x00k")
