"""The store's promises, on every backend where the promise does not need a crash."""

from __future__ import annotations

import pytest

import kv
from kv.errors import BatchTooLarge, KeyTooLarge, StoreClosed, StoreLocked, ValueTooLarge
from kv.limits import KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES
from tests.conftest import Backend


def test_reopened_store_returns_what_was_written(backend: Backend) -> None:
    with kv.open(backend.directory, io=backend.io) as store:
        store.set(b"a", b"1")
        store.set("text", "héllo")
        store.set(b"gone", b"x")
        assert store.delete(b"gone") is True
        assert store.delete(b"never") is False
        store.set_many({b"m1": b"v1", b"m2": b"v2"})
        store.set(b"a", b"2")
        store.set(b"empty", b"")
    with kv.open(backend.directory, io=backend.io) as store:
        assert store.get(b"a") == b"2"
        assert store.get("text") == "héllo".encode()
        assert store.get(b"gone") is None
        assert store.get(b"m2") == b"v2"
        assert store.get(b"empty") == b""
        assert store.keys() == [b"a", b"empty", b"m1", b"m2", b"text"]
        assert store.recovery.clean
        assert store.recovery.records_applied == 8


@pytest.mark.parametrize("durability", ["always", "batch", "none"])
def test_every_durability_mode_reads_its_writes_and_persists_on_close(backend: Backend, durability: str) -> None:
    with kv.open(backend.directory, io=backend.io, durability=durability) as store:  # type: ignore[arg-type]
        for index in range(300):
            store.set(f"k{index}", f"v{index}")
        store.delete("k7")
        assert store.get("k5") == b"v5"
        assert store.get("k7") is None
        assert len(store) == 299
    with kv.open(backend.directory, io=backend.io) as store:
        assert store.get("k299") == b"v299"
        assert store.get("k7") is None
        assert len(store) == 299


def test_second_writer_is_refused(backend: Backend) -> None:
    with kv.open(backend.directory, io=backend.io), pytest.raises(StoreLocked):
        kv.open(backend.directory, io=backend.io)
    with kv.open(backend.directory, io=backend.io):
        pass  # the lock was released on close


def _disk_bytes(backend: Backend) -> dict[str, int]:
    sizes = {}
    for name in backend.io.listdir(backend.directory).result():
        if name.endswith(".seg"):
            file = backend.io.open(backend.path(name), "r").result()
            sizes[name] = backend.io.size(file).result()
            backend.io.close(file).result()
    return sizes


def test_oversize_input_is_refused_with_nothing_written(backend: Backend) -> None:
    with kv.open(backend.directory, io=backend.io) as store:
        store.set(b"k", b"v")
        before = _disk_bytes(backend)
        with pytest.raises(KeyTooLarge):
            store.set(b"k" * (KEY_SIZE_MAX_BYTES + 1), b"v")
        with pytest.raises(ValueTooLarge):
            store.set(b"k", b"v" * (VALUE_SIZE_MAX_BYTES + 1))
        with pytest.raises(ValueTooLarge):
            store.set_many([(b"ok", b"v"), (b"bad", b"v" * (VALUE_SIZE_MAX_BYTES + 1))])
        with pytest.raises(BatchTooLarge):
            store.set_many((f"k{index}".encode(), b"v" * VALUE_SIZE_MAX_BYTES) for index in range(5))
        with pytest.raises(ValueError):  # InvalidArgument is also a ValueError
            store.set(b"k", 12)  # type: ignore[arg-type]
        assert _disk_bytes(backend) == before
        assert store.get(b"k") == b"v"
        assert store.get(b"ok") is None


def test_largest_allowed_key_and_value_round_trip(backend: Backend) -> None:
    key = b"k" * KEY_SIZE_MAX_BYTES
    value = bytes(range(256)) * (VALUE_SIZE_MAX_BYTES // 256)
    with kv.open(backend.directory, io=backend.io) as store:
        store.set(key, value)
    with kv.open(backend.directory, io=backend.io) as store:
        assert store.get(key) == value


def test_compaction_keeps_live_data_and_shrinks_the_log(backend: Backend) -> None:
    with kv.open(backend.directory, io=backend.io, segment_size_target_bytes=4096) as store:
        for round_number in range(5):
            store.set_many({f"key{index}": f"value{index}-{round_number}" * 3 for index in range(100)})
        for index in range(0, 100, 2):
            store.delete(f"key{index}")
        before = store.stats()
        assert before.segments > 3
        store.compact()
        after = store.stats()
        assert after.bytes_on_disk < before.bytes_on_disk
        assert after.compacted_files == 1
        assert store.get("key1") == b"value1-4" * 3
        assert store.get("key2") is None
        assert store.verify().ok
        store.set("after", "compaction")
    with kv.open(backend.directory, io=backend.io) as store:
        assert store.recovery.hint_files_used == 1
        assert len(store) == 51
        assert store.get("key99") == b"value99-4" * 3
        assert store.get("after") == b"compaction"
        store.compact()  # a second compaction replaces the first
    with kv.open(backend.directory, io=backend.io) as store:
        assert len(store) == 51
        names = backend.io.listdir(backend.directory).result()
        assert sum(name.endswith(".compacted") for name in names) == 1


def test_closed_store_refuses_calls(backend: Backend) -> None:
    store = kv.open(backend.directory, io=backend.io)
    store.close()
    store.close()
    with pytest.raises(StoreClosed):
        store.get(b"a")
    with pytest.raises(StoreClosed):
        store.set(b"a", b"b")


def test_stats_and_verify(backend: Backend) -> None:
    with kv.open(backend.directory, io=backend.io) as store:
        store.set_many({b"a": b"1", b"b": b"22"})
        store.get(b"a")
        stats = store.stats()
        assert stats.keys == 2
        assert stats.durable_lsn == 2
        assert stats.io == backend.io.name
        report = store.verify()
        assert report.ok and report.records_checked == 2 and report.frames_checked == 1
