"""`Store.holding()`: buffered writes made in the block wait for its end to commit, so a
crash keeps all of them or none; the mode's bounds apply again at the end."""

from __future__ import annotations

import pytest

import kv
from io_backends.sim import SimIo
from kv.limits import BATCH_OPERATIONS_MAX, FRAME_PAYLOAD_SIZE_TARGET_BYTES


def test_no_bound_commits_inside_the_block_and_the_bounds_apply_at_its_end() -> None:
    io = SimIo(seed=3)
    store = kv.open("/store", io=io, durability="batch")
    before = store.stats().syncs
    with store.holding():
        for index in range(BATCH_OPERATIONS_MAX + 10):  # past the operations bound
            store.set(b"k%d" % index, b"x" * 1000)  # and past the frame-size target
        with store.holding():  # nested: the outer block decides
            store.set(b"inner", b"v")
        assert store.stats().syncs == before, "nothing committed inside the block"
    assert store.stats().syncs == before + 1, "the bounds apply at the end: one commit for all of it"
    io.crash()
    recovered = kv.open("/store", io=io, durability="batch")
    assert recovered.get(b"inner") == b"v" and len(recovered.keys()) == BATCH_OPERATIONS_MAX + 11
    recovered.close()


def test_what_the_block_wrote_survives_a_crash_whole_or_not_at_all() -> None:
    io = SimIo(seed=4)
    store = kv.open("/store", io=io, durability="none")
    store.set(b"before", b"v")
    store.flush()
    with store.holding():
        for index in range(FRAME_PAYLOAD_SIZE_TARGET_BYTES // 4000 + 5):
            store.set(b"k%d" % index, b"x" * 4000)
    io.crash()  # the frame-size bound at the end synced them: all are there
    recovered = kv.open("/store", io=io, durability="none")
    assert len(recovered.keys()) == FRAME_PAYLOAD_SIZE_TARGET_BYTES // 4000 + 6
    with recovered.holding():
        recovered.set(b"a", b"1")
        recovered.set(b"b", b"2")
    io.crash()  # below every bound: nothing was written
    again = kv.open("/store", io=io, durability="none")
    assert (again.get(b"a"), again.get(b"b"), again.get(b"before")) == (None, None, b"v")
    again.close()


def test_writes_acknowledged_before_the_block_keep_batch_modes_bounds() -> None:
    """The review's case: a write answered before a long EXEC must not wait for its end
    (3,000 writes in the block would take it past BATCH_OPERATIONS_MAX unsynced)."""
    io = SimIo(seed=6)
    store = kv.open("/store", io=io, durability="batch")
    store.set(b"acknowledged", b"v")
    with pytest.raises(RuntimeError), store.holding(operations=3 * BATCH_OPERATIONS_MAX):
        for index in range(3 * BATCH_OPERATIONS_MAX):
            store.set(b"k%d" % index, b"x")
        io.crash()  # a power loss before the block's end: its own writes may go, not the earlier one
        raise RuntimeError("the process is gone")  # (a block that raises commits nothing at its end)
    recovered = kv.open("/store", io=io, durability="batch")
    assert recovered.get(b"acknowledged") == b"v"
    assert recovered.get(b"k0") is None, "the block's writes are one frame, lost whole"
    recovered.close()
