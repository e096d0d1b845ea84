"""Crash states: the enumeration obeys the persistence model, ids parse back, the images
hold the right bytes, and (end to end) the explorer tells a broken target from a safe one.

The recordings here are made by hand (a site per operation, `app.py:LINE`), so each test
knows exactly which operations exist; the end-to-end tests record real targets
(`tests/targets/`) through the POSIX view.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from io_backends.sim.faults import FaultPlan, FsyncGate
from io_backends.sim.posix.fs import Image, Tree
from io_backends.sim.posix.ops import (
    ROOT_INODE,
    Ack,
    CallSite,
    Chmod,
    Create,
    DropDirty,
    MicroOp,
    Mkdir,
    Recording,
    Rename,
    Rmdir,
    Sync,
    Truncate,
    Unlink,
    Write,
)
from scenarios.crash_states import (
    CrashState,
    CrashStateError,
    Deduplicator,
    Tear,
    acknowledged,
    analyze,
    build_image,
    changes_in,
    dedupe,
    describe,
    enumerate_states,
    forced,
    omission_states,
    parse_explore,
    parse_state_id,
    prefix_states,
    random_states,
    responsible_sites,
    sample_states,
    tear_masks,
    torn_pieces,
    torn_states,
    validate,
)
from scenarios.target import TargetError, check_one, explore, failure_report, load_target

FILE = 2  # the inode of the file the hand-made recordings create in the root
DIRECTORY = 3


def recording_of(*ops: MicroOp, sites: list[CallSite] | None = None) -> Recording:
    """A recording of `ops` from an empty disk; op i was issued at `app.py:{100 + i}`."""
    made = sites or [CallSite(f"call {index}", f"app.py:{100 + index}") for index in range(len(ops))]
    return Recording(list(ops), made, Image.empty())


def all_states(recording: Recording) -> list[CrashState]:
    """Every state alice and random exploration give, unbounded."""
    alice = enumerate_states(recording, "alice", budget=1_000_000)
    return alice + enumerate_states(recording, "random", budget=1_000_000, seed=7, random_count=300)


def kept(state: CrashState, index: int) -> bool:
    return index < state.point and index not in state.dropped


# -------------------------------------------------------------- the persistence rules


def test_a_write_followed_by_an_fsync_of_its_file_is_never_dropped_nor_torn() -> None:
    recording = recording_of(
        Create(ROOT_INODE, "a", FILE),  # 0
        Truncate(FILE, 2048),  # 1
        Write(FILE, 0, b"x" * 2048),  # 2
        Sync(FILE),  # 3
        Write(FILE, 0, b"y" * 2048),  # 4
        Ack("done"),  # 5
    )
    assert forced(recording, 3) == set()
    assert forced(recording, 4) == {1, 2}  # rule 1; the Create needs an fsync of the directory
    states = all_states(recording)
    assert any(0 in state.dropped for state in states), "the create is never durable: some state drops it"
    for state in states:
        if state.point > 3:
            assert 1 not in state.dropped and 2 not in state.dropped, state.id
            assert state.tear is None or state.tear.op_index == 4, state.id
    assert any(state.tear is not None and state.tear.op_index == 4 for state in states)
    assert any(4 in state.dropped for state in states)


def test_an_entry_followed_by_an_fsync_of_its_directory_is_never_dropped() -> None:
    recording = recording_of(
        Mkdir(ROOT_INODE, "d", DIRECTORY),  # 0
        Create(DIRECTORY, "a", FILE),  # 1
        Sync(DIRECTORY),  # 2: makes the create durable, not the mkdir (in the root)
        Write(FILE, 0, b"data"),  # 3
        Sync(ROOT_INODE),  # 4: the mkdir
        Ack("done"),  # 5
    )
    assert forced(recording, 3) == {1}
    assert forced(recording, 5) == {0, 1}
    for state in all_states(recording):
        if state.point > 2:
            assert 1 not in state.dropped, state.id
        if state.point > 4:
            assert 0 not in state.dropped, state.id
    assert any(0 in state.dropped and state.point == 4 for state in all_states(recording))


def test_a_rename_across_directories_is_durable_after_an_fsync_of_either() -> None:
    recording = recording_of(
        Mkdir(ROOT_INODE, "d", DIRECTORY),
        Create(ROOT_INODE, "a", FILE),
        Rename(ROOT_INODE, "a", DIRECTORY, "b", FILE),
        Sync(DIRECTORY),
    )
    assert 2 in forced(recording, 4)
    assert 2 not in forced(recording, 3)


def test_writes_a_failed_fsync_dropped_are_never_kept() -> None:
    recording = recording_of(
        Create(ROOT_INODE, "a", FILE),  # 0
        Sync(ROOT_INODE),  # 1
        Write(FILE, 0, b"first"),  # 2
        Sync(FILE),  # 3
        Write(FILE, 0, b"LOST!"),  # 4
        DropDirty(FILE),  # 5: fsyncgate
        Sync(FILE),  # 6: "succeeds", but the write is gone
        Ack("acked"),  # 7
    )
    assert analyze(recording).lost_by == {4: 5}
    assert 4 not in forced(recording, 8)
    states = all_states(recording)
    assert states
    for state in states:
        assert 4 not in state.dropped, "a lost write is never listed: every state leaves it out"
        assert state.tear is None or state.tear.op_index != 4
        assert b"LOST" not in (build_image(recording, state).file("a") or b""), state.id
    assert build_image(recording, CrashState(8)).file("a") == b"first"
    assert any("LOST" in line for line in describe(recording, CrashState(8)))
    assert any("fsync at app.py:105 failed" in str(item) for item in responsible_sites(recording, CrashState(8)))


def test_crash_points_are_those_after_a_change_or_an_ack() -> None:
    recording = recording_of(
        Create(ROOT_INODE, "a", FILE),  # 0
        Sync(FILE),  # 1
        Sync(ROOT_INODE),  # 2
        Ack(1),  # 3
        Write(FILE, 0, b"x"),  # 4
    )
    assert [state.id for state in prefix_states(recording)] == ["p0", "p1", "p4", "p5"]


def test_omissions_drop_one_unforced_operation_with_later_ones_kept() -> None:
    recording = recording_of(
        Create(ROOT_INODE, "a", FILE),  # 0
        Write(FILE, 0, b"x"),  # 1 (a write past the end has its Truncate; not needed here)
        Create(ROOT_INODE, "b", FILE + 1),  # 2
        Ack("v"),  # 3
    )
    ids = [state.id for state in omission_states(recording)]
    # dropping the last issued operation gives the previous prefix: skipped
    assert ids == ["p2-o0", "p3-o0", "p3-o1", "p4-o0", "p4-o1", "p4-o2"]


def test_a_rename_over_an_existing_name_is_atomic() -> None:
    """The view records `os.replace(tmp, dst)` over an existing dst as Unlink(dst) then
    Rename, from one call: no state has the unlink without the rename."""
    replace_site = CallSite("replace('tmp', 'dst')", "app.py:7")
    sites = [CallSite(f"call {index}", f"app.py:{index}") for index in range(5)] + [replace_site, replace_site]
    recording = recording_of(
        Create(ROOT_INODE, "dst", FILE),  # 0
        Write(FILE, 0, b"old"),  # 1
        Sync(FILE),  # 2
        Sync(ROOT_INODE),  # 3
        Create(ROOT_INODE, "tmp", FILE + 1),  # 4
        Unlink(ROOT_INODE, "dst", FILE),  # 5
        Rename(ROOT_INODE, "tmp", ROOT_INODE, "dst", FILE + 1),  # 6
        sites=sites,
    )
    states = all_states(recording)
    assert 6 not in {state.point for state in states}, "no crash point inside one rename"
    for state in states:
        assert (5 in state.dropped) == (6 in state.dropped), state.id
        if state.point >= 4:  # the first create is durable: dst names the old file or the new one
            assert build_image(recording, state).file("dst") in (b"old", b""), state.id
    # the temporary file's create dropped, the rename kept: the rename cannot apply, nor its unlink
    assert build_image(recording, CrashState(7, (4,))).file("dst") == b"old"
    assert build_image(recording, CrashState(7)).file("dst") == b""
    with pytest.raises(CrashStateError, match="drop together"):
        validate(recording, CrashState(7, (6,)))
    with pytest.raises(CrashStateError, match="inside one rename"):
        validate(recording, CrashState(6))


def test_a_directory_renamed_over_an_empty_one_is_atomic() -> None:
    """rename(new, old) over an empty directory records Rmdir(old) then Rename: one unit,
    like a rename over a file (review: 'old' went missing between the two)."""
    swap = CallSite("rename('new', 'old')", "app.py:9")
    recording = recording_of(
        Mkdir(ROOT_INODE, "old", 2),
        Mkdir(ROOT_INODE, "new", 3),
        Sync(ROOT_INODE),
        Rmdir(ROOT_INODE, "old", 2),
        Rename(ROOT_INODE, "new", ROOT_INODE, "old", 3),
        Ack("swapped"),
        sites=[CallSite(f"call {i}", f"app.py:{i}") for i in range(3)] + [swap, swap, CallSite("ack", "app.py:10")],
    )
    after_the_fsync = [state for state in all_states(recording) if state.point >= 3]
    assert len(after_the_fsync) > 3
    for state in after_the_fsync:
        directories = [path for path, _mode in build_image(recording, state).directories]
        assert "old" in directories, (state.id, directories)


def test_a_file_replayed_without_its_create_keeps_the_mode_it_was_created_with() -> None:
    """open(tmp, O_CREAT, 0o600), write, fsync, rename: with the Create dropped the
    rename carries the file, still 0o600 (review: it came back 0o644)."""
    recording = recording_of(
        Create(ROOT_INODE, "tmp", FILE, 0o600),
        Truncate(FILE, 6),
        Write(FILE, 0, b"secret"),
        Sync(FILE),
        Rename(ROOT_INODE, "tmp", ROOT_INODE, "key", FILE),
    )
    image = build_image(recording, CrashState(5, (0,)))
    assert image.files == (("key", b"secret", 0o600),)


def test_fdatasync_does_not_make_a_chmod_durable() -> None:
    recording = recording_of(
        Create(ROOT_INODE, "f", FILE), Sync(ROOT_INODE), Chmod(FILE, 0o600), Sync(FILE, data_only=True)
    )
    assert 2 not in forced(recording, 4)
    recording = recording_of(Create(ROOT_INODE, "f", FILE), Sync(ROOT_INODE), Chmod(FILE, 0o600), Sync(FILE))
    assert 2 in forced(recording, 4)


def test_an_explicit_unlink_before_a_rename_is_not_atomic() -> None:
    recording = recording_of(
        Create(ROOT_INODE, "dst", FILE),
        Create(ROOT_INODE, "tmp", FILE + 1),
        Unlink(ROOT_INODE, "dst", FILE),
        Rename(ROOT_INODE, "tmp", ROOT_INODE, "dst", FILE + 1),
    )
    assert 3 in {state.point for state in prefix_states(recording)}
    assert analyze(recording).rename_unlinks == {}


def test_validate_rejects_states_the_model_forbids() -> None:
    recording = recording_of(Create(ROOT_INODE, "a", FILE), Write(FILE, 0, b"x" * 1024), Sync(FILE), Ack(1))
    validate(recording, CrashState(4, (0,)))
    with pytest.raises(CrashStateError, match="cannot be dropped"):
        validate(recording, CrashState(4, (1,)))  # durable by the fsync
    with pytest.raises(CrashStateError, match="cannot be torn"):
        validate(recording, CrashState(4, (), Tear(1, 512, (True, False))))
    with pytest.raises(CrashStateError, match="cannot be torn"):
        validate(recording, CrashState(2, (), Tear(0, 512, (True, False))))  # not a write
    with pytest.raises(CrashStateError, match="one bit per sector"):
        validate(recording, CrashState(2, (), Tear(1, 512, (True, False, False))))
    with pytest.raises(CrashStateError, match="past the 4 operations"):
        validate(recording, CrashState(9))
    with pytest.raises(CrashStateError):
        CrashState(3, (2, 1))  # not sorted
    with pytest.raises(CrashStateError):
        CrashState(3, (3,))  # not issued


# -------------------------------------------------------------- ids


@pytest.mark.parametrize(
    "text",
    ["p0", "p12", "p12-o5", "p12-o3.5.11", "p12-t5.512.s0110", "p12-t5.4096.g10", "p12-o1-t5.512.g1x100_0x1_1x3"],
)
def test_state_ids_round_trip(text: str) -> None:
    state = parse_state_id(text)
    assert state.id == text
    assert parse_state_id(state.id) == state


def test_long_sector_maps_are_written_as_runs() -> None:
    tear = Tear(5, 512, (True,) * 100 + (False,) + (True,) * 3)
    state = CrashState(12, (), tear)
    assert state.id == "p12-t5.512.s1x100_0x1_1x3"
    assert parse_state_id(state.id).tear == tear


@pytest.mark.parametrize("text", ["", "12", "p", "p3-o", "p3-o2-o1", "p3-t1.1000.s01", "p3-t1.512.x01", "p3-o2.1"])
def test_bad_state_ids_are_refused(text: str) -> None:
    with pytest.raises(CrashStateError):
        parse_state_id(text)


def test_every_enumerated_state_id_round_trips() -> None:
    recording = _mixed_recording()
    states = all_states(recording)
    assert len(states) > 50
    for state in states:
        assert parse_state_id(state.id) == state
        validate(recording, state)


def test_parse_explore() -> None:
    assert parse_explore("prefix") == ("prefix", None)
    assert parse_explore("alice") == ("alice", None)
    assert parse_explore("random") == ("random", None)
    assert parse_explore("random:25") == ("random", 25)
    for bad in ("alice:3", "random:0", "random:x", "everything"):
        with pytest.raises(ValueError, match="bad exploration"):
            parse_explore(bad)


# -------------------------------------------------------------- determinism and budget


def _mixed_recording() -> Recording:
    """Two files, appends, an unsynced rewrite, a directory and acks: something of everything."""
    return recording_of(
        Create(ROOT_INODE, "log", FILE),  # 0
        Truncate(FILE, 1500),  # 1
        Write(FILE, 0, bytes(range(256)) * 5 + b"z" * 220),  # 2
        Sync(FILE),  # 3
        Ack("one"),  # 4
        Mkdir(ROOT_INODE, "d", DIRECTORY),  # 5
        Create(DIRECTORY, "b", FILE + 2),  # 6
        Truncate(FILE + 2, 9000),  # 7
        Write(FILE + 2, 0, b"q" * 9000),  # 8
        Ack("two"),  # 9
        Write(FILE, 100, b"w" * 1000),  # 10
        Sync(ROOT_INODE),  # 11
        Ack("three"),  # 12
    )


def test_enumeration_is_deterministic() -> None:
    first = _mixed_recording()
    again = _mixed_recording()  # an equal recording, another object: nothing depends on identity
    for mode in ("prefix", "alice", "random"):
        ids = [state.id for state in enumerate_states(first, mode, budget=200, seed=3)]
        assert ids == [state.id for state in enumerate_states(again, mode, budget=200, seed=3)]
        assert len(ids) == len(set(ids)), "no state is listed twice"
    random_ids = [state.id for state in random_states(first, 40, seed=3)]
    assert random_ids != [state.id for state in random_states(first, 40, seed=4)]


def test_alice_is_prefix_plus_omissions_plus_tears() -> None:
    recording = _mixed_recording()
    alice = enumerate_states(recording, "alice", budget=1_000_000)
    assert alice == prefix_states(recording) + omission_states(recording) + torn_states(recording)
    assert enumerate_states(recording, "prefix", budget=1_000_000) == prefix_states(recording)
    torn = {(state.tear.op_index, state.tear.sector_bytes) for state in alice if state.tear is not None}
    # op 2 is durable before any later point but torn right after it; op 8 spans 18 sectors of 512 B, 3 of 4 KiB
    assert torn == {(2, 512), (8, 512), (8, 4096), (10, 512)}


def test_the_budget_keeps_every_prefix_state_first_and_samples_the_rest() -> None:
    recording = _mixed_recording()
    everything = enumerate_states(recording, "alice", budget=1_000_000)
    prefixes = prefix_states(recording)
    sample = enumerate_states(recording, "alice", budget=len(prefixes) + 10, seed=1)
    assert len(sample) == len(prefixes) + 10
    assert sample[: len(prefixes)] == prefixes
    positions = [everything.index(state) for state in sample]
    assert positions == sorted(positions), "the sample keeps the enumeration order"
    assert sample == enumerate_states(recording, "alice", budget=len(prefixes) + 10, seed=1)
    assert sample != enumerate_states(recording, "alice", budget=len(prefixes) + 10, seed=2)
    few = sample_states(everything, 3, seed=0)
    assert len(few) == 3 and all(state.is_prefix for state in few)
    with pytest.raises(ValueError, match="budget"):
        enumerate_states(recording, "alice", budget=0)


def test_random_states_are_distinct_and_valid() -> None:
    recording = _mixed_recording()
    states = random_states(recording, 60, seed=9)
    assert len(states) == 60
    assert len({state.id for state in states}) == 60
    assert any(state.tear is not None and state.tear.garbage for state in states)
    assert any(len(state.dropped) > 1 for state in states)
    tiny = recording_of(Create(ROOT_INODE, "a", FILE))
    assert len(random_states(tiny, 50, seed=0)) < 50, "fewer distinct states than asked: it stops"


# -------------------------------------------------------------- images


def _torn_recording() -> tuple[Recording, bytes]:
    new = b"".join(bytes([65 + k]) * 512 for k in range(3))  # AAA..BBB..CCC.., three sectors of 512 B
    return (
        recording_of(
            Create(ROOT_INODE, "f", FILE),  # 0
            Sync(ROOT_INODE),  # 1
            Truncate(FILE, 1536),  # 2
            Write(FILE, 0, b"o" * 1536),  # 3
            Sync(FILE),  # 4
            Write(FILE, 0, new),  # 5: the rewrite that tears
            Ack("new"),  # 6
        ),
        new,
    )


def test_torn_images_hold_the_persisted_sectors_and_old_bytes_elsewhere() -> None:
    recording, new = _torn_recording()
    state = CrashState(7, (), Tear(5, 512, (True, False, True)))
    validate(recording, state)
    assert build_image(recording, state).file("f") == new[:512] + b"o" * 512 + new[1024:]
    prefix_only = CrashState(7, (), Tear(5, 512, (True, False, False)))
    assert build_image(recording, prefix_only).file("f") == new[:512] + b"o" * 1024
    assert build_image(recording, CrashState(7)).file("f") == new
    assert build_image(recording, CrashState(7, (5,))).file("f") == b"o" * 1536


def test_garbage_sectors_are_deterministic_bytes_derived_from_the_state_id() -> None:
    """An append (one call: extend, then write) tears with garbage in the sectors it
    allocated that never reached the disk."""
    new = b"".join(bytes([65 + k]) * 512 for k in range(3))
    append = CallSite("write(fd -> 'f', 1536 bytes at 0)", "app.py:7")
    recording = recording_of(
        Create(ROOT_INODE, "f", FILE),
        Sync(ROOT_INODE),
        Truncate(FILE, 1536),
        Write(FILE, 0, new),
        Ack("new"),
        sites=[
            CallSite("open", "app.py:5"),
            CallSite("fsync", "app.py:6"),
            append,
            append,
            CallSite("ack", "app.py:8"),
        ],
    )
    state = CrashState(4, (), Tear(3, 512, (False, True, False), garbage=True))
    content = build_image(recording, state).file("f")
    assert content is not None and len(content) == 1536
    garbage = hashlib.shake_256(state.id.encode()).digest(1536)
    assert content == garbage[:512] + new[512:1024] + garbage[1024:]
    assert build_image(recording, parse_state_id(state.id)).file("f") == content
    assert any(state.tear is not None and state.tear.garbage for state in torn_states(recording))


def test_an_overwrite_never_tears_into_garbage() -> None:
    """Sectors a write overwrites keep their old bytes or get the new ones: garbage is for
    space the write allocated (helper H's false positive: random bytes in a rewritten file)."""
    recording, new = _torn_recording()
    state = CrashState(7, (), Tear(5, 512, (False, True, False), garbage=True))
    assert build_image(recording, state).file("f") == b"o" * 512 + new[512:1024] + b"o" * 512
    assert not any(state.tear.garbage for state in torn_states(recording) if state.tear and state.tear.op_index == 5)


def test_images_built_from_cached_prefixes_equal_a_replay_from_scratch() -> None:
    for recording in (_mixed_recording(), _torn_recording()[0]):
        for state in all_states(recording):
            tree = Tree.from_image(recording.initial)
            for index in changes_in(recording, state):
                op = recording.ops[index]
                tear = state.tear
                pieces: list[MicroOp] = [op]
                if tear is not None and tear.op_index == index:
                    assert isinstance(op, Write)
                    pieces = [*torn_pieces(op, tear, state.id, analyze(recording).fresh_from[index])]
                for piece in pieces:
                    tree.apply(piece, strict=False)
            assert build_image(recording, state) == tree.image(), state.id


def test_an_unaligned_write_tears_at_sector_boundaries_of_the_file() -> None:
    recording = recording_of(Create(ROOT_INODE, "f", FILE), Truncate(FILE, 1100), Write(FILE, 100, b"n" * 1000))
    assert next(state for state in torn_states(recording) if state.point == 3).tear == Tear(
        2, 512, (True, False, False)
    )
    state = CrashState(3, (), Tear(2, 512, (False, True, False)))  # bytes 100..511, 512..1023, 1024..1099
    assert build_image(recording, state).file("f") == bytes(512) + b"n" * 512 + bytes(76)


def test_tear_masks_are_prefixes_then_single_missing_sectors_spread_over_long_writes() -> None:
    assert tear_masks(1) == []
    assert tear_masks(3) == [
        (True, False, False),
        (True, True, False),
        (False, True, True),
        (True, False, True),
    ]
    long = tear_masks(2048)
    assert len(long) <= 16 and (True,) * 2047 + (False,) in long and (False,) + (True,) * 2047 in long


def test_acknowledged_values_are_those_before_the_point_and_the_next_one() -> None:
    recording = _mixed_recording()
    assert acknowledged(recording, CrashState(0)) == ([], "one")
    assert acknowledged(recording, CrashState(5)) == (["one"], "two")
    assert acknowledged(recording, CrashState(10)) == (["one", "two"], "three")
    assert acknowledged(recording, CrashState(13)) == (["one", "two", "three"], None)


def test_after_the_last_ack_of_a_run_stopped_by_a_fault_the_next_planned_value_is_in_flight() -> None:
    recording = _mixed_recording()
    recording.planned = ["one", "two", "three", "four"]
    assert acknowledged(recording, CrashState(13)) == (["one", "two", "three"], "four")
    assert acknowledged(recording, CrashState(5)) == (["one"], "two")  # an Ack still follows: it wins


def test_a_value_in_flight_when_a_failed_directory_fsync_stopped_the_workload_is_pending() -> None:
    """atomic_replace under fsyncgate at seed 3: the rename of '75' is done when the
    directory's fsync fails, so the crashed disk may hold '75', which no Ack promised; the
    check is told '75' was in flight and passes."""
    plan = FaultPlan(fsync_gate=FsyncGate(probability=0.2))
    exploration = explore(load_target(TARGETS / "atomic_replace.py"), "alice", faults=plan, seed=3)
    assert exploration.recorded.workload_error is not None
    assert exploration.recorded.recording.planned is not None
    assert exploration.passed, [failure.error for failure in exploration.failures]


def test_identical_states_are_checked_once_and_counted() -> None:
    recording = recording_of(
        Create(ROOT_INODE, "a", FILE),  # 0
        Sync(ROOT_INODE),  # 1
        Write(FILE, 0, b"x"),  # 2
        Write(FILE, 0, b"x"),  # 3: the same bytes again
        Ack("x"),  # 4
        Write(FILE, 1, b"y"),  # 5
    )
    states = [CrashState(5, (2,)), CrashState(5, (3,)), CrashState(5), CrashState(4), CrashState(6, (5,))]
    unique = dedupe(recording, states)
    # p5-o2, p5-o3 and p5 hold "x" with one ack; p4 has no ack yet; p6-o5 holds "x" with one ack
    assert [(state.id, count) for state, count in unique] == [("p5-o2", 4), ("p4", 1)]
    deduplicator = Deduplicator(recording)
    assert deduplicator.first(CrashState(4), build_image(recording, CrashState(4)))
    assert not deduplicator.first(CrashState(4, (2,)), build_image(recording, CrashState(4, (3,))))
    assert deduplicator.represented == {"p4": 2}


# -------------------------------------------------------------- explaining a state


def test_describe_names_each_operation_with_its_site_and_fate() -> None:
    recording, _new = _torn_recording()
    lines = describe(recording, CrashState(6, (), Tear(5, 512, (True, False, True))))
    assert len(lines) == 6  # the Ack is left out
    assert lines[0].startswith("#0") and "kept" in lines[0] and "app.py:100" in lines[0]
    assert "issued" in lines[1] and "fsync the root directory" in lines[1]
    assert "TORN (sectors 0,2 of 3 x 512 B persisted, the rest old bytes)" in lines[5]
    assert "app.py:105" in lines[5] and "write 1536 B at 0 of 'f'" in lines[5]
    dropped = describe(recording, CrashState(3, (0,)))
    assert "DROPPED" in dropped[0] and "not issued" in dropped[-1]


def test_describe_summarizes_long_runs_of_kept_operations() -> None:
    ops: list[MicroOp] = [Create(ROOT_INODE, "a", FILE), *(Write(FILE, 0, b"x") for _ in range(30))]
    recording = recording_of(*ops)
    lines = describe(recording, CrashState(31, (0,)))
    assert "DROPPED" in lines[0]
    assert len(lines) < 10 and any("more operations kept" in line for line in lines)


def test_responsible_sites_name_the_dropped_operation_and_the_premature_ack() -> None:
    recording, _new = _torn_recording()
    found = responsible_sites(recording, CrashState(7, (5,)))
    assert [(item.site, item.op_index) for item in found] == [("app.py:105", 5), ("app.py:106", 6)]
    assert "acknowledged 'new' before operation #5 was durable" in found[1].reason
    torn = responsible_sites(recording, CrashState(6, (), Tear(5, 512, (True, False, True))))
    assert [item.site for item in torn] == ["app.py:105"] and "tore" in torn[0].reason
    prefix = responsible_sites(recording, CrashState(4))
    assert [(item.site, item.op_index) for item in prefix] == [("app.py:103", 3)]
    assert responsible_sites(recording, CrashState(0)) == []


# -------------------------------------------------------------- end to end

TARGETS = Path(__file__).parent / "targets"


def test_rewriting_a_file_in_place_without_fsync_fails_at_a_minimal_state_naming_the_line() -> None:
    target = load_target(TARGETS / "rewrite_in_place.py")
    exploration = explore(target, "alice", budget=5000, seed=0)
    assert exploration.recorded.workload_error is None
    assert not exploration.passed and exploration.failures
    first = exploration.failures[0]
    assert first.verdict == "failed"
    line = _line_of(TARGETS / "rewrite_in_place.py", "path.write_text(balance)")
    sites = [item.site for item in responsible_sites(exploration.recording, first.state)]
    assert any(site.endswith(f"rewrite_in_place.py:{line}") for site in sites), sites
    assert first.minimality == min(result.minimality for result in exploration.failures)
    assert any(result.state.is_prefix for result in exploration.failures), (
        "truncate-then-write fails without reordering"
    )
    report = failure_report(exploration, first)
    assert first.state.id in report and f"rewrite_in_place.py:{line}" in report
    assert f"repro: sim_runner --target {TARGETS / 'rewrite_in_place.py'} --crash-state {first.state.id}" in report
    assert exploration.unique == exploration.checked < exploration.enumerated, "identical states were checked once"
    assert sum(result.represented for result in exploration.results) == exploration.enumerated
    assert exploration.verdict == "failed"
    _recorded, again = check_one(target, first.state.id)
    assert again.verdict == "failed" and again.error == first.error


def test_write_temp_fsync_rename_fsync_directory_passes_every_state() -> None:
    target = load_target(TARGETS / "atomic_replace.py")
    for mode in ("prefix", "alice"):
        exploration = explore(target, mode, budget=100_000)
        assert exploration.recorded.workload_error is None
        assert exploration.passed, failure_report(exploration, exploration.failures[0])
        assert exploration.checked == exploration.unique > 10
    random_exploration = explore(target, "random", seed=5, random_count=200)
    assert random_exploration.passed


def test_a_check_too_strict_for_the_atomic_target_fails_it() -> None:
    """The safe target is not passing because nothing is checked: demand the newest
    acknowledged value only (no in-flight one) and states fail."""
    target = load_target(TARGETS / "atomic_replace.py")

    def strict(root: Path, acked: list[object], pending: object | None) -> None:
        assert not acked or (root / "balance.txt").read_text() == acked[-1]

    exploration = explore(dataclasses.replace(target, check=strict), "prefix")
    assert not exploration.passed


def test_fault_injection_requires_an_error_or_no_loss(tmp_path: Path) -> None:
    """fsyncgate in a workload that ignores the failed fsync: the final state loses the
    acknowledged data and the workload raised nothing."""
    path = tmp_path / "ignores_fsync_errors.py"
    path.write_text(
        "import os\n"
        "def workload(root, ack):\n"
        "    fd = os.open(root / 'a', os.O_WRONLY | os.O_CREAT)\n"
        "    os.write(fd, b'promise')\n"
        "    try:\n"
        "        os.fsync(fd)\n"
        "    except OSError:\n"
        "        pass\n"
        "    os.close(fd)\n"
        "    ack('promise')\n"
        "def check(root, acked, pending):\n"
        "    if acked:\n"
        "        assert (root / 'a').read_bytes() == b'promise'\n"
    )
    target = load_target(path)
    plan = FaultPlan(fsync_gate=FsyncGate(probability=1.0))
    exploration = explore(target, "prefix", faults=plan, faults_name="fsyncgate", seed=3)
    assert exploration.final is not None and exploration.final.verdict == "failed"
    assert "lost silently" in (exploration.final.error or "")
    assert not exploration.passed
    assert "--seed 3 --faults fsyncgate" in exploration.repro("p1")


def test_load_target_refuses_what_is_not_a_target(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="no target file"):
        load_target(tmp_path / "missing.py")
    lacking = tmp_path / "lacking.py"
    lacking.write_text("def workload(root, ack):\n    pass\ncheck = 3\n")
    with pytest.raises(TargetError, match="check"):
        load_target(lacking)
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(TargetError, match="boom"):
        load_target(broken)
    assert issubclass(TargetError, ValueError)


def test_an_unmodelled_call_in_the_check_is_reported_apart(tmp_path: Path) -> None:
    path = tmp_path / "uses_symlink.py"
    path.write_text(
        "import os\n"
        "def workload(root, ack):\n"
        "    (root / 'a').write_text('x')\n"
        "def check(root, acked, pending):\n"
        "    os.symlink(root / 'a', root / 'b')\n"
    )
    exploration = explore(load_target(path), "prefix")
    assert exploration.failures and all(result.verdict == "unmodelled" for result in exploration.failures)
    assert exploration.verdict == "unmodelled"
    assert exploration.unmodelled == exploration.failures
    assert "UNMODELLED" in failure_report(exploration, exploration.failures[0])


def test_a_workload_that_raises_without_faults_is_a_broken_target(tmp_path: Path) -> None:
    path = tmp_path / "raises.py"
    path.write_text(
        "def workload(root, ack):\n"
        "    (root / 'missing' / 'a').write_text('x')\n"
        "def check(root, acked, pending):\n"
        "    pass\n"
    )
    exploration = explore(load_target(path), "prefix")
    assert isinstance(exploration.recorded.workload_error, FileNotFoundError)
    assert exploration.verdict == "workload_error" and not exploration.passed
    assert "FileNotFoundError" in exploration.recorded.workload_traceback


def test_check_one_refuses_a_state_the_recording_cannot_have() -> None:
    target = load_target(TARGETS / "atomic_replace.py")
    with pytest.raises(CrashStateError):
        check_one(target, "p9999")
    with pytest.raises(CrashStateError):
        check_one(target, "not-an-id")


def _line_of(path: Path, text: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")
