"""Atomic batches (`store.batch()`): sets, deletes and expires committed as one frame
when the block exits, nothing written when it raises, `BatchTooLarge` before anything
is written, durable per the mode, and whole or absent after a crash at any I/O."""

from __future__ import annotations

import pytest

import kv
from io_backends.sim import SimIo, SimulatedCrash
from kv.errors import BatchTooLarge, InvalidArgument, KeyTooLarge, StoreClosed, StoreReadOnly
from kv.limits import FRAME_PAYLOAD_SIZE_MAX_BYTES, KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES
from kv.store import Durability, Store
from tests.conftest import Backend

DURABILITIES: tuple[Durability, ...] = ("always", "batch", "none")


def _frames(store: Store) -> int:
    """Frames in the store's files (verify reads them all)."""
    return store.verify().frames_checked


def test_a_batch_commits_its_writes_in_one_frame_and_answers_each(backend: Backend) -> None:
    with kv.open(backend.directory, io=backend.io) as store:
        store.set(b"old", b"1")
        store.set(b"ttl", b"2")
        frames = _frames(store)
        with store.batch() as batch:
            batch.set(b"a", b"x")
            batch.set("text", "héllo", ttl=60)
            batch.delete(b"old")
            batch.delete(b"never")
            batch.expire(b"ttl", 30)
            batch.expire(b"missing", 30)
            assert store.get(b"a") is None and store.get(b"old") == b"1"  # nothing happens before the exit
        assert batch.results == [True, True, True, False, True, False]
        assert _frames(store) == frames + 1
        assert store.get(b"a") == b"x" and store.get(b"old") is None
        assert 0 < store.ttl(b"text") <= 60 and 0 < store.ttl(b"ttl") <= 30
    with kv.open(backend.directory, io=backend.io) as store:
        assert store.keys() == [b"a", b"text", b"ttl"]
        assert store.get("text") == "héllo".encode() and store.get(b"ttl") == b"2"


def test_writes_apply_in_order_within_a_batch() -> None:
    io = SimIo(seed=1)
    with kv.open("/db", io=io) as store:
        store.set(b"k", b"stored")
        with store.batch() as batch:
            batch.delete(b"k")  # existed
            batch.delete(b"k")  # already gone within the batch
            batch.set(b"k", b"new")
            batch.expire(b"k", 5)  # applies to the batch's own value
            batch.set(b"j", b"w")
            batch.expire(b"j", 0)  # a time not in the future deletes
            batch.expire(b"j", 10)  # j is gone by now
        assert batch.results == [True, False, True, True, True, True, False]
        assert store.get(b"k") == b"new" and store.pttl(b"k") == 5_000
        assert store.get(b"j") is None
        store.set(b"plain", b"v")
        with store.batch() as batch:
            batch.set(b"gone", b"v", expire_at=0.001)  # already past: nothing is stored
            batch.expire(b"plain", 2)
        assert store.get(b"gone") is None and store.pttl(b"plain") == 2_000


def test_a_batch_that_changes_nothing_writes_nothing() -> None:
    io = SimIo(seed=2)
    with kv.open("/db", io=io) as store:
        store.set(b"k", b"v")
        frames = _frames(store)
        with store.batch() as batch:
            batch.delete(b"absent")
            batch.expire(b"also absent", 10)
        with store.batch():
            pass
        assert batch.results == [False, False]
        assert _frames(store) == frames


def test_nothing_is_written_when_the_block_raises(backend: Backend) -> None:
    with kv.open(backend.directory, io=backend.io) as store:
        store.set(b"k", b"v")
        frames = _frames(store)
        with pytest.raises(RuntimeError), store.batch() as batch:
            batch.set(b"a", b"1")
            batch.delete(b"k")
            raise RuntimeError("the caller changed its mind")
        assert batch.results is None
        with pytest.raises(KeyTooLarge), store.batch() as batch:
            batch.set(b"b", b"1")
            batch.set(b"x" * (KEY_SIZE_MAX_BYTES + 1), b"v")  # refused at once: the batch is abandoned
        assert _frames(store) == frames
        assert store.keys() == [b"k"]
        with pytest.raises(InvalidArgument, match="already been committed"):
            batch.set(b"c", b"1")


def test_a_batch_over_the_frame_limit_raises_before_anything_is_written() -> None:
    io = SimIo(seed=3)
    with kv.open("/db", io=io) as store:
        store.set(b"k", b"v")
        frames = _frames(store)
        count = FRAME_PAYLOAD_SIZE_MAX_BYTES // VALUE_SIZE_MAX_BYTES
        with pytest.raises(BatchTooLarge), store.batch() as batch:
            batch.delete(b"k")
            for index in range(count):
                batch.set(b"big%d" % index, bytes(VALUE_SIZE_MAX_BYTES))
        assert _frames(store) == frames and store.keys() == [b"k"]
        with store.batch() as batch:  # the same values, one key: the final state fits
            for _ in range(count):
                batch.set(b"big", bytes(VALUE_SIZE_MAX_BYTES))
        assert store.keys() == [b"big", b"k"]


@pytest.mark.parametrize("durability", DURABILITIES)
def test_a_batch_is_durable_per_the_mode(durability: Durability) -> None:
    io = SimIo(seed=4)
    store = kv.open("/db", io=io, durability=durability)
    store.set(b"k", b"v")
    with store.batch() as batch:
        batch.set(b"a", b"1")
        batch.delete(b"k")
    assert store.get(b"a") == b"1" and store.get(b"k") is None  # read back at once in every mode
    syncs = store.stats().syncs
    if durability == "always":
        assert syncs >= 1
        io.crash()
    else:
        store.flush()
        io.crash()
    with kv.open("/db", io=io) as reopened:
        assert reopened.keys() == [b"a"]


@pytest.mark.parametrize("durability", DURABILITIES)
def test_a_crash_at_any_io_of_a_batch_leaves_all_of_it_or_none(durability: Durability) -> None:
    before = {b"a": b"0", b"b": b"0", b"c": b"0"}
    after = {b"a": b"1", b"c": b"0", b"d": b"1"}
    outcomes = set()
    for crash_after in range(1, 40):
        io = SimIo(seed=crash_after)
        store = kv.open("/db", io=io, durability=durability, segment_size_target_bytes=256)
        store.set_many(before)
        store.flush()
        io.crash_at_operation = io.operations_completed + crash_after
        try:
            with store.batch() as batch:
                batch.set(b"a", b"1")
                batch.delete(b"b")
                batch.set(b"d", b"1")
                batch.expire(b"c", 1000)
            store.flush()
        except SimulatedCrash:
            pass
        else:
            io.crash()
        io.crash_at_operation = None
        with kv.open("/db", io=io) as reopened:
            state = {key: reopened.get(key) for key in reopened.keys()}
            assert state in (before, after), (crash_after, state)
            outcomes.add(state == after)
    assert outcomes == {False, True}


def test_a_read_only_or_closed_store_refuses_a_batch() -> None:
    io = SimIo(seed=5)
    store = kv.open("/db", io=io)
    with store.batch() as batch:
        batch.set(b"a", b"1")
    store._fail()  # as after a failed sync
    with pytest.raises(StoreReadOnly):
        store.batch()
    store.close()
    with pytest.raises(StoreClosed):
        store.batch()


def test_bad_arguments_are_refused_when_queued() -> None:
    io = SimIo(seed=6)
    with kv.open("/db", io=io) as store, store.batch() as batch:
        with pytest.raises(InvalidArgument, match="exclude"):
            batch.set(b"k", b"v", ttl=1, expire_at=5)
        with pytest.raises(InvalidArgument, match="invalid expire time"):
            batch.set(b"k", b"v", ttl=0)
        with pytest.raises(InvalidArgument, match="number of seconds"):
            batch.expire(b"k", "soon")  # type: ignore[arg-type]
        assert len(batch) == 0
