"""Lists: rpush/lpush/rpop/lpop (and their counted forms), lrange, llen. Durable and
atomic per operation, O(1) per element pushed or popped, kept by compaction and the hint
file, typed errors across the two kinds of value."""

from __future__ import annotations

from collections import deque

import pytest
from crc32c import crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

import kv
from io_backends.sim import SimIo
from kv import compaction, files
from kv.errors import BatchTooLarge, InvalidArgument, WrongType
from kv.io import File, Future
from kv.limits import FRAME_PAYLOAD_SIZE_MAX_BYTES
from kv.store import Durability, Store

DURABILITIES: tuple[Durability, ...] = ("always", "batch", "none")


def _open(io: SimIo, durability: Durability = "always", segment_size: int = 2048) -> Store:
    return kv.open("/db", io=io, durability=durability, segment_size_target_bytes=segment_size)


def _names(io: SimIo) -> list[str]:
    return sorted(io.disk.directories["/db"].entries)


@pytest.mark.parametrize("durability", DURABILITIES)
def test_redis_answers(durability: Durability) -> None:
    with _open(SimIo(seed=1), durability) as store:
        assert (store.llen(b"q"), store.lrange(b"q", 0, -1), store.lpop(b"q"), store.rpop(b"q")) == (0, [], None, None)
        assert store.rpush(b"q", b"a", b"b", b"c") == 3
        assert store.lpush(b"q", b"x", b"y") == 5  # y, then x, in front: as Redis LPUSH
        assert store.lrange(b"q", 0, -1) == [b"y", b"x", b"a", b"b", b"c"]
        assert store.lrange(b"q", -2, 100) == [b"b", b"c"]
        assert store.lrange(b"q", 3, 1) == [] and store.lrange(b"q", 9, 12) == []
        for start, stop in (("0", -1), (0, 1.5), (True, 2)):
            with pytest.raises(kv.InvalidArgument, match="start and stop must be ints"):
                store.lrange(b"q", start, stop)  # type: ignore[arg-type]
        assert (store.lpop(b"q"), store.rpop(b"q")) == (b"y", b"c")
        assert store.lpop_many(b"q", 2) == [b"x", b"a"] and store.rpop_many(b"q", 5) == [b"b"]
        assert not store.exists(b"q") and store.keys() == []  # an emptied list is gone, as in Redis
        assert store.lpop_many(b"q", 3) == []


def test_the_two_kinds_of_value_refuse_each_other() -> None:
    with _open(SimIo(seed=2)) as store:
        store.rpush(b"q", b"a")
        store.set(b"s", b"1")
        for call in (
            lambda: store.get(b"q"),
            lambda: store.incr(b"q"),
            lambda: store.getdel(b"q"),
            lambda: store.expire(b"q", 10),
            lambda: store.rpush(b"s", b"x"),
            lambda: store.lpop(b"s"),
            lambda: store.lrange(b"s", 0, -1),
            lambda: store.llen(b"s"),
        ):
            with pytest.raises(WrongType, match="wrong kind of value"):
                call()
        assert store.lrange(b"q", 0, -1) == [b"a"] and store.get(b"s") == b"1"  # nothing written
        assert sorted(store.keys()) == [b"q", b"s"] and len(store) == 2 and store.ttl(b"q") == -1
        store.set(b"q", b"now a string")  # SET replaces a value of any kind, as in Redis
        assert store.get(b"q") == b"now a string"
        store.delete(b"s")
        assert store.rpush(b"s", b"x") == 1


def test_bad_arguments_are_refused_before_anything_is_written() -> None:
    with _open(SimIo(seed=3)) as store:
        with pytest.raises(InvalidArgument):
            store.rpush(b"q")
        with pytest.raises(InvalidArgument):
            store.lpop_many(b"q", -1)
        with pytest.raises(BatchTooLarge):
            store.rpush(b"q", *[b"v" * 1000] * (FRAME_PAYLOAD_SIZE_MAX_BYTES // 1000 + 1))
        assert store.llen(b"q") == 0 and store.stats().next_lsn == 1


def test_an_expired_string_gives_way_to_a_list() -> None:
    io = SimIo(seed=4)
    with _open(io) as store:
        store.set(b"k", b"old", ttl=1)
        assert store.get(b"k") == b"old"  # cached
        io.pause(2_000_000)
        assert store.rpush(b"k", b"a") == 1
        assert store.lrange(b"k", 0, -1) == [b"a"] and store.ttl(b"k") == -1
        with pytest.raises(WrongType):
            store.get(b"k")


@pytest.mark.parametrize("durability", DURABILITIES)
def test_pushes_cost_the_same_however_long_the_list(durability: Durability) -> None:
    """No read-modify-write: the bytes one push writes do not grow with the list."""
    io = SimIo(seed=5)
    sizes: list[int] = []
    write = io.write

    def counting_write(file: File, offset: int, data: bytes) -> Future[None]:
        sizes.append(len(data))
        return write(file, offset, data)

    io.write = counting_write  # type: ignore[method-assign]
    with _open(io, durability, segment_size=1 << 20) as store:
        written = []
        for count in range(300):
            store.flush()
            before = sum(sizes)
            store.rpush(b"q", b"%05d" % count)
            store.flush()
            written.append(sum(sizes) - before)
        store.flush()
        assert max(written[-100:]) <= max(written[:100])
        assert store.lpop(b"q") == b"00000" and store.llen(b"q") == 299


def test_compaction_and_the_hint_keep_every_list_in_order() -> None:
    io = SimIo(seed=6)
    with _open(io) as store:
        store.rpush(b"q", b"a", b"b")
        store.lpush(b"q", b"z")
        store.set(b"s", b"v")
        store.rpush(b"q", b"c")
        store.lpop(b"q")
        store.compact()
        assert store.lrange(b"q", 0, -1) == [b"a", b"b", b"c"]
        store.lpush(b"q", b"y")
        assert store.verify().ok
    with _open(io) as store:  # from the hint
        assert store.stats().recovery.hint_files_used == 1
        assert store.lrange(b"q", 0, -1) == [b"y", b"a", b"b", b"c"] and store.get(b"s") == b"v"
    [hint] = [name for name in _names(io) if name.endswith(files.HINT_SUFFIX)]
    io.unlink(f"/db/{hint}").result()
    with _open(io) as store:  # from the compacted file itself
        assert store.lrange(b"q", 0, -1) == [b"y", b"a", b"b", b"c"] and store.get(b"s") == b"v"
        store.compact()
        assert store.lrange(b"q", 0, -1) == [b"y", b"a", b"b", b"c"]


def test_a_version_one_hint_is_still_read() -> None:
    entries = [(b"k", 32, 40, 7, 0, 1)]
    hint = compaction.encode_hint(3, 100, entries)
    old = bytearray(hint[: compaction.HINT_HEADER_SIZE])
    body = compaction.HINT_ENTRY_V1.pack(1, 40, 32, 7, 0) + b"k"
    old[4:6] = (1).to_bytes(2, "little")
    checked = bytes(old[: compaction.HINT_HEADER_SIZE - 4])
    old[compaction.HINT_HEADER_SIZE - 4 :] = crc32c(body, crc32c(checked)).to_bytes(4, "little")
    assert compaction.decode_hint(bytes(old) + body, 3, 100) == entries


@pytest.mark.parametrize("seed", range(8))
def test_an_acknowledged_pop_never_comes_back_after_a_crash(seed: int) -> None:
    io = SimIo(seed=seed)
    store = _open(io)
    store.rpush(b"q", *[b"%d" % index for index in range(20)])
    popped = [store.lpop(b"q") for _ in range(5)]
    io.crash()
    with _open(io) as store:
        remaining = store.lrange(b"q", 0, -1)
    assert popped == [b"0", b"1", b"2", b"3", b"4"]
    assert remaining == [b"%d" % index for index in range(5, 20)]


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["rpush", "lpush"]), st.lists(st.binary(max_size=40), min_size=1, max_size=4)),
        st.tuples(st.sampled_from(["lpop", "rpop"]), st.integers(1, 3)),
        st.tuples(st.sampled_from(["compact", "reopen", "delete"]), st.none()),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(OPERATIONS, st.sampled_from(DURABILITIES))
def test_a_list_behaves_as_a_deque_through_compaction_and_reopening(
    operations: list[tuple[str, object]], durability: Durability
) -> None:
    io = SimIo(seed=7)
    store = _open(io, durability, segment_size=512)
    model: deque[bytes] = deque()
    for name, argument in operations:
        if name in ("rpush", "lpush"):
            assert isinstance(argument, list)
            assert getattr(store, name)(b"q", *argument) == len(model) + len(argument)
            for value in argument:
                (model.append if name == "rpush" else model.appendleft)(value)
        elif name in ("lpop", "rpop"):
            assert isinstance(argument, int)
            expected = [(model.popleft if name == "lpop" else model.pop)() for _ in range(min(argument, len(model)))]
            assert getattr(store, f"{name}_many")(b"q", argument) == expected
        elif name == "compact":
            store.compact()
        elif name == "delete":
            assert store.delete(b"q") == bool(model)
            model.clear()
        else:
            store.close()
            store = _open(io, durability, segment_size=512)
        assert store.lrange(b"q", 0, -1) == list(model) and store.llen(b"q") == len(model)
    assert store.verify().ok
    store.close()
