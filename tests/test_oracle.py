"""The oracle itself: what it accepts and what it calls a violation, on hand-made runs.

Each test drives a `Harness` directly and damages the simulated disk by hand, so the
case it checks happens for certain (a seeded run only happens upon it).
"""

from __future__ import annotations

import pytest

from io_backends.sim import SimIo
from kv.files import CLEAN_MARKER_NAME, segment_name
from kv.limits import BATCH_INTERVAL_MS_MAX
from kv.store import Durability
from scenarios.runner import STORE_DIRECTORY, Harness, Violation
from scenarios.scripted import damage_last_frame, newest_segment
from scenarios.workload import PAUSE_US, Operation
from tests.broken_variants import VARIANTS


def media_harness() -> Harness:
    harness = Harness("test", SimIo(seed=7))
    harness.media = harness.faulty = True  # as if a media fault were on
    harness.start()
    return harness


def test_a_torn_last_frame_may_take_the_last_acknowledged_write() -> None:
    harness = media_harness()
    harness.do(Operation("set", {b"a": b"1"}))
    harness.do(Operation("set", {b"b": b"2"}))
    damage_last_frame(harness.io)
    harness.crash_now()  # recovery reports a torn tail: losing set b is accepted, reported
    assert harness.model == {b"a": b"1"}
    assert harness.result.losses_reported >= 1


def test_a_delete_of_an_absent_key_writes_no_frame_so_the_excuse_stays_with_the_write_before() -> None:
    """Found by `random` seed 133: the oracle took the no-op delete for the last frame."""
    harness = media_harness()
    harness.do(Operation("set", {b"a": b"1"}))
    harness.do(Operation("set_many", {b"b": b"2", b"c": b"3"}))
    harness.do(Operation("delete", {b"absent": None}))  # acknowledged, nothing written
    damage_last_frame(harness.io)  # the set_many's frame
    harness.crash_now()
    assert harness.model == {b"a": b"1"}


def test_an_in_flight_write_that_made_it_is_recorded_durable_by_the_open_that_kept_it() -> None:
    """Found by `comprehensive` seed 406: recovery kept the in-flight set_many, then the
    next open found its frame damaged (a sticky read error). The open that kept it
    recorded the log durable past it (rule 3), so the damage is corruption, reported
    as a loss, never a torn tail the oracle would let take an acknowledged write."""
    harness = media_harness()
    harness.do(Operation("set", {b"a": b"1"}))
    store = harness.store
    assert store is not None
    store.set(b"b", b"2")  # the harness does not know: as if a crash hit right after it
    harness.oracle.written[b"b"] = {b"2"}
    harness.io.crash()
    harness.store = harness.reopen(Operation("set", {b"b": b"2"}))
    assert harness.model == {b"a": b"1", b"b": b"2"}
    damage_last_frame(harness.io)
    events = len(harness.trace)
    harness.crash_now()
    assert harness.model == {b"a": b"1"}
    [recovery] = [event for event in harness.trace[events:] if str(event).startswith("recovery: ")]
    assert isinstance(recovery, str)
    assert "corruption in" in recovery and "torn tail" not in recovery, recovery


def test_two_damaged_frames_at_the_tail_are_corruption_not_a_torn_tail() -> None:
    """Only one frame can be in flight in `always` mode: damage to the last two is media
    damage, and the store must report the loss of both."""
    harness = media_harness()
    for key in (b"a", b"b", b"c"):
        harness.do(Operation("set", {key: b"1"}))
    inode, frames = newest_segment(harness.io)
    offset, _ = frames[-2]
    damage_last_frame(harness.io)
    inode.flip(offset + 40, 0x01, "bit_flip.at_rest", data=False)  # the frame before it too: two acknowledged writes
    harness.crash_now()
    assert harness.model == {b"a": b"1"}
    assert harness.result.losses_reported >= 2  # both writes reported lost


def test_a_later_record_behind_a_damaged_frame_header_is_corruption() -> None:
    """Found by `swarm` seed 435: the last frame's header damaged (so no second header
    shows), the frame before it damaged on write; the intact record behind them, with
    an lsn past the first damaged frame's, shows two frames were lost."""
    harness = media_harness()
    for key in (b"a", b"b", b"c"):
        harness.do(Operation("set", {key: b"1"}))
    inode, frames = newest_segment(harness.io)
    (second_last, _), (last, _) = frames[-2], frames[-1]
    inode.flip(second_last + 40, 0x01, "bit_flip.at_rest", data=False)  # a record byte of b's frame
    inode.flip(last + 20, 0x01, "bit_flip.at_rest", data=False)  # the count in c's frame header
    harness.crash_now()
    assert harness.model == {b"a": b"1"}
    assert harness.result.losses_reported >= 2


# -- batch and none modes: prefix consistency ------------------------------------------


def test_batch_mode_may_lose_the_unsynced_acknowledged_writes() -> None:
    harness = Harness("test", SimIo(seed=7), durability="batch", keep_timeline=True)
    harness.start()
    harness.do(Operation("set", {b"a": b"1"}))
    harness.do(Operation("set_many", {b"b": b"2", b"c": b"3"}))
    harness.crash_now()  # nothing unsynced survives (the default crash)
    assert harness.model == {}
    assert "recovered without the last 2 unsynced writes (batch)" in "\n".join(harness.result.timeline)


def test_a_recovered_state_that_is_no_prefix_is_a_violation() -> None:
    harness = Harness("test", SimIo(seed=7), durability="none")
    harness.start()
    harness.do(Operation("set", {b"a": b"1"}))
    harness.do(Operation("set", {b"b": b"2"}))
    store = harness.store
    assert store is not None
    store.delete(b"a")  # behind the harness's back: b without the write before it
    store.flush()
    with pytest.raises(Violation, match="not a legal outcome"):
        harness.check_recovered(store, None)


@pytest.mark.parametrize("durability", ["batch", "none"])
def test_writes_before_a_flush_survive(durability: Durability) -> None:
    harness = Harness("test", SimIo(seed=7), durability=durability)
    harness.start()
    harness.do(Operation("set", {b"a": b"1"}))
    harness.do(Operation("flush", {}))
    harness.do(Operation("set", {b"b": b"2"}))
    harness.crash_now()
    assert harness.model == {b"a": b"1"}
    with VARIANTS["flush_without_sync"]():
        harness.do(Operation("set", {b"c": b"3"}))
        harness.do(Operation("flush", {}))
        with pytest.raises(Violation, match="not a legal outcome"):
            harness.crash_now()


def test_batch_mode_syncs_a_write_once_its_deadline_passed() -> None:
    """A write that started more than `BATCH_INTERVAL_MS_MAX` before the newest one is
    durable: the store syncs on the first write past the deadline."""
    pauses = BATCH_INTERVAL_MS_MAX * 1000 // PAUSE_US + 1
    harness = Harness("test", SimIo(seed=7), durability="batch")
    harness.start()
    harness.do(Operation("set", {b"a": b"1"}))
    for _ in range(pauses):
        harness.do(Operation("pause", {}))
    harness.do(Operation("set", {b"b": b"2"}))
    harness.crash_now()
    assert harness.model == {b"a": b"1", b"b": b"2"}  # b's write synced both
    with VARIANTS["batch_without_deadline"]():
        harness.do(Operation("set", {b"c": b"3"}))
        for _ in range(pauses):
            harness.do(Operation("pause", {}))
        harness.do(Operation("set", {b"d": b"4"}))
        with pytest.raises(Violation, match="not a legal outcome"):
            harness.crash_now()  # c was due for a sync: it may not be lost


def _wiped(lose_segment: bool) -> Harness:
    """Three acknowledged sets, then a crash in which the file system takes the CLEAN
    marker's entry (and the only segment's, when `lose_segment`)."""
    harness = media_harness()
    for key in (b"a", b"b", b"c"):
        harness.do(Operation("set", {key: key * 30}))
    harness.io.crash()
    harness.io.disk.lose(f"{STORE_DIRECTORY}/{CLEAN_MARKER_NAME}")
    if lose_segment:
        harness.io.disk.lose(f"{STORE_DIRECTORY}/{segment_name(1)}")
    return harness


def test_a_store_that_lost_its_marker_and_its_segment_looks_new_and_the_loss_is_counted() -> None:
    """No file is left to show the store held data: no store can report it. The oracle
    accepts it only because its ledger shows both entries lost, and counts it."""
    harness = _wiped(lose_segment=True)
    harness.store = harness.reopen(None)
    assert harness.model == {}
    assert harness.result.marker_entry_losses == 1


def test_losing_only_the_marker_excuses_no_loss() -> None:
    """The marker's entry alone holds no records: a store that then drops data (here a
    variant that cuts every damaged tail) without a report still fails."""
    harness = _wiped(lose_segment=False)
    harness.store = harness.reopen(None)
    assert harness.model == {b"a": b"a" * 30, b"b": b"b" * 30, b"c": b"c" * 30}
    assert harness.result.marker_entry_losses == 0
    harness.io.crash()
    harness.io.disk.lose(f"{STORE_DIRECTORY}/{CLEAN_MARKER_NAME}")
    damage_last_frame(harness.io)
    with VARIANTS["silent_truncation_at_corruption"](), pytest.raises(Violation):
        harness.store = harness.reopen(None)
