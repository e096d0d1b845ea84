"""TTL on the virtual clock: set(ttl=, expire_at=), expire, expire_at, persist, ttl,
pttl, expiretime and pexpiretime with Redis's answers; expiry survives reopening,
compaction and the hint file; an expired key never comes back."""

from __future__ import annotations

import pytest

import kv
from io_backends.sim import SimIo
from kv import compaction, files
from kv.errors import InvalidArgument
from kv.store import Durability, Store

DURABILITIES: tuple[Durability, ...] = ("always", "batch", "none")


def _at(io: SimIo, milliseconds: int) -> None:
    """Move the virtual clock to exactly `milliseconds`."""
    assert io.clock_us <= milliseconds * 1000
    io.pause(milliseconds * 1000 - io.clock_us)


def _open(io: SimIo, durability: Durability = "always") -> Store:
    return kv.open("/db", io=io, durability=durability)


@pytest.mark.parametrize("durability", DURABILITIES)
def test_redis_answers_for_missing_persistent_and_expiring_keys(durability: Durability) -> None:
    io = SimIo(seed=1)
    with _open(io, durability) as store:
        _at(io, 1_000)
        assert (store.ttl(b"nope"), store.pttl(b"nope"), store.pexpiretime(b"nope")) == (-2, -2, -2)
        store.set(b"plain", b"v")
        assert (store.ttl(b"plain"), store.pttl(b"plain"), store.expiretime(b"plain")) == (-1, -1, -1)
        assert store.set(b"t", b"v", ttl=10) is True
        assert (store.ttl(b"t"), store.pttl(b"t"), store.pexpiretime(b"t")) == (10, 10_000, 11_000)
        _at(io, 1_400)
        assert (store.ttl(b"t"), store.pttl(b"t")) == (10, 9_600)  # TTL rounds to the nearest second
        _at(io, 1_600)
        assert store.ttl(b"t") == 9
        assert store.expiretime(b"t") == 11


@pytest.mark.parametrize("durability", DURABILITIES)
def test_a_key_lives_through_its_expiry_millisecond_and_is_gone_after(durability: Durability) -> None:
    io = SimIo(seed=2)
    with _open(io, durability) as store:
        store.set(b"k", b"v", ttl=0.005)  # expiry at 5 ms
        store.set(b"other", b"w")
        _at(io, 5)
        io.pause(999)  # 5.999 ms: still millisecond 5 (Redis: expired once now > expiry)
        assert store.get(b"k") == b"v" and store.pttl(b"k") == 0 and store.ttl(b"k") == 0
        assert store.exists(b"k") and b"k" in store and len(store) == 2
        io.pause(1)  # 6 ms
        assert store.get(b"k") is None and not store.exists(b"k") and b"k" not in store
        assert store.keys() == [b"other"] and len(store) == 1 and store.pttl(b"k") == -2
        assert [key for key, _value in store.scan()] == [b"other"]
        assert store.scan_cursor(0) == (0, [b"other"])
        assert store.delete(b"k") is False  # an expired key is absent: nothing to delete
        assert store.getdel(b"k") is None
        assert store.set(b"k", b"again", only_if_missing=True) is True
        assert store.get(b"k") == b"again" and store.ttl(b"k") == -1


def test_invalid_expiry_arguments_are_refused_like_redis() -> None:
    io = SimIo(seed=3)
    with _open(io) as store:
        for ttl in (0, -1, 0.0004):
            with pytest.raises(InvalidArgument, match="invalid expire time"):
                store.set(b"k", b"v", ttl=ttl)
        with pytest.raises(InvalidArgument, match="invalid expire time"):
            store.set(b"k", b"v", expire_at=0)
        with pytest.raises(InvalidArgument, match="exclude each other"):
            store.set(b"k", b"v", ttl=1, expire_at=5)
        with pytest.raises(InvalidArgument, match="number of seconds"):
            store.set(b"k", b"v", ttl="1")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument, match="number of seconds"):
            store.expire(b"k", True)
        with pytest.raises(InvalidArgument, match="beyond"):
            store.set(b"k", b"v", ttl=1e300)
        assert not store.exists(b"k")


@pytest.mark.parametrize("durability", DURABILITIES)
def test_expire_expire_at_and_persist(durability: Durability) -> None:
    io = SimIo(seed=4)
    with _open(io, durability) as store:
        _at(io, 2_000)
        assert store.expire(b"missing", 10) is False and store.persist(b"missing") is False
        assert store.expire_at(b"missing", 100) is False and not store.exists(b"missing")
        store.set(b"k", b"v")
        assert store.persist(b"k") is False  # no expiry to remove
        assert store.expire(b"k", 3) is True and store.pexpiretime(b"k") == 5_000  # from the call's clock
        assert store.expire_at(b"k", 7.5) is True and store.pexpiretime(b"k") == 7_500
        assert store.persist(b"k") is True and store.ttl(b"k") == -1 and store.get(b"k") == b"v"
        assert store.expire(b"k", 0) is True and not store.exists(b"k")  # not in the future: deleted
        store.set(b"j", b"w", ttl=1)
        assert store.expire_at(b"j", 1.5) is True and store.get(b"j") is None  # in the past: deleted
        assert store.set(b"p", b"x", expire_at=1) is True and not store.exists(b"p")  # SET EXAT past: deleted
        store.set(b"q", b"y", ttl=5)
        store.set(b"q", b"z")  # a plain SET clears the expiry, as Redis
        assert store.ttl(b"q") == -1
        store.set(b"n", b"1", ttl=5)
        expiry_ms = store.pexpiretime(b"n")
        assert store.incr(b"n") == 2 and store.pexpiretime(b"n") == expiry_ms  # INCR keeps it, as Redis
        store.set(b"nx", b"v", ttl=2, only_if_missing=True)
        expiry_ms = store.pexpiretime(b"nx")
        assert store.set(b"nx", b"w", ttl=9, only_if_missing=True) is False
        assert store.pexpiretime(b"nx") == expiry_ms


@pytest.mark.parametrize("durability", DURABILITIES)
def test_reopen_keeps_expiry_and_expired_keys_stay_gone(durability: Durability) -> None:
    io = SimIo(seed=5)
    with _open(io, durability) as store:
        store.set(b"old", b"forever")
        store.set(b"old", b"short", ttl=1)  # the newer record expires; the older one must not win
        store.set(b"long", b"v", ttl=100)
        store.set(b"kept", b"v", ttl=1)
        store.persist(b"kept")
        long_expiry_ms = store.pexpiretime(b"long")
    with _open(io, durability) as store:
        assert store.pexpiretime(b"long") == long_expiry_ms
        assert store.get(b"old") == b"short" and store.ttl(b"kept") == -1
        io.pause(2_000_000)
    with _open(io, durability) as store:
        assert store.get(b"old") is None and store.keys() == [b"kept", b"long"]


def test_pttl_survives_reopen_exactly() -> None:
    io = SimIo(seed=6)
    with _open(io) as store:
        _at(io, 10)
        store.set(b"k", b"v", ttl=30)
    with _open(io) as store:
        assert store.pexpiretime(b"k") == 30_010


@pytest.mark.parametrize("durability", DURABILITIES)
def test_compaction_drops_expired_keys_and_no_older_value_comes_back(durability: Durability) -> None:
    io = SimIo(seed=7)
    with kv.open("/db", io=io, durability=durability, segment_size_target_bytes=512) as store:
        for round_ in range(5):  # older values without expiry, in segments compaction replaces
            for index in range(8):
                store.set(b"k%d" % index, b"plain-%d-%d" % (round_, index) * 4)
        for index in range(4):
            store.set(b"k%d" % index, b"expiring", ttl=1)
        store.set(b"later", b"v", ttl=1_000)
        io.pause(1_001_000)
        store.compact()
        assert store.keys() == [b"k4", b"k5", b"k6", b"k7", b"later"]
        assert all(location[4] == 0 or key == b"later" for key, location in store._keydir.items())
        assert len(store._keydir) == 5  # the expired keys' entries are gone from memory too
    names = io.disk.directories["/db"].entries
    [hint] = [name for name in names if name.endswith(files.HINT_SUFFIX)]
    with _open(io) as store:  # from the hint
        assert store.recovery.hint_files_used == 1
        assert store.keys() == [b"k4", b"k5", b"k6", b"k7", b"later"] and store.get(b"k0") is None
        later_expiry = store.pexpiretime(b"later")
        assert 1_000_000 <= later_expiry < 1_001_000
    io.unlink(f"/db/{hint}").result()
    with _open(io) as store:  # without the hint: the compacted file's record headers carry it
        assert store.recovery.hint_files_used == 0
        assert store.keys() == [b"k4", b"k5", b"k6", b"k7", b"later"]
        assert store.pexpiretime(b"later") == later_expiry
        io.pause(1_000_000_000)
        assert store.keys() == [b"k4", b"k5", b"k6", b"k7"]


def test_hint_entries_carry_the_expiry() -> None:
    io = SimIo(seed=8)
    with kv.open("/db", io=io, segment_size_target_bytes=512) as store:
        store.set(b"a", b"v", ttl=50)
        store.set(b"b", b"v")
        store.compact()
        expiry_ms = store.pexpiretime(b"a")
    names = io.disk.directories["/db"].entries
    [hint] = [name for name in names if name.endswith(files.HINT_SUFFIX)]
    [compacted] = [name for name in names if name.endswith(files.COMPACTED_SUFFIX)]
    hint_file = io.open(f"/db/{hint}", "r").result()
    data_file = io.open(f"/db/{compacted}", "r").result()
    hint_bytes = io.read(hint_file, 0, io.size(hint_file).result()).result()
    segment_id = int(compacted.split(".")[0])
    entries = compaction.decode_hint(hint_bytes, segment_id, io.size(data_file).result())
    assert entries is not None
    assert {key: expiry for key, _offset, _length, _lsn, expiry, _kind in entries} == {b"a": expiry_ms, b"b": 0}


def test_crash_keeps_an_acknowledged_expiry_and_its_deletion() -> None:
    io = SimIo(seed=9)
    store = _open(io)
    store.set(b"k", b"v")
    store.expire(b"k", 1)
    store.set(b"j", b"w", ttl=100)
    store.persist(b"j")
    io.crash()
    with _open(io) as reopened:
        assert reopened.pttl(b"k") > 0 and reopened.ttl(b"j") == -1
        io.pause(2_000_000)
        assert reopened.get(b"k") is None and reopened.get(b"j") == b"w"
