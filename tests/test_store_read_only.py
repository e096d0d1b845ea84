"""`kv.open(read_only=True)`: no lock (a writer may hold it), reads work, every write
raises `StoreReadOnly`, and recovery changes nothing on disk."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import kv
from io_backends.sim import SimIo
from kv.errors import CorruptionDetected, InvalidArgument, StoreReadOnly
from kv.recovery import scan_segment
from kv.store import Store
from tests.conftest import Backend

WRITES: dict[str, Callable[[Store], object]] = {
    "set": lambda store: store.set(b"k", b"x"),
    "set_ttl": lambda store: store.set(b"k", b"x", ttl=5),
    "delete": lambda store: store.delete(b"k"),
    "set_many": lambda store: store.set_many({b"a": b"1"}),
    "batch": lambda store: store.batch(),
    "expire": lambda store: store.expire(b"k", 5),
    "persist": lambda store: store.persist(b"k"),
    "incr": lambda store: store.incr(b"n"),
    "getdel": lambda store: store.getdel(b"k"),
    "flush": lambda store: store.flush(),
    "compact": lambda store: store.compact(),
}


def _files(io: kv.Io, directory: str) -> dict[str, bytes]:
    contents = {}
    for name in sorted(io.listdir(directory).result()):
        file = io.open(f"{directory}/{name}", "r").result()
        contents[name] = kv.io.read_exact(io, file, 0, io.size(file).result())
        io.close(file).result()
    return contents


def test_a_read_only_open_beside_a_writer_reads_what_it_committed(backend: Backend) -> None:
    with kv.open(backend.directory, io=backend.io) as writer:
        writer.set(b"k", b"v")
        writer.set(b"t", b"w", ttl=100)
        with kv.open(backend.directory, io=backend.io, read_only=True) as reader:
            assert reader.get(b"k") == b"v" and reader.keys() == [b"k", b"t"]
            assert 0 < reader.pttl(b"t") <= 100_000
            assert [key for key, _ in reader.scan()] == [b"k", b"t"]
            assert reader.stats().state == "read-only" and reader.verify().ok
        writer.set(b"after", b"1")  # the writer is unaffected by the reader's close
    with kv.open(backend.directory, io=backend.io) as reopened:
        assert reopened.get(b"after") == b"1"


@pytest.mark.parametrize("write", list(WRITES))
def test_every_write_is_refused(write: str) -> None:
    io = SimIo(seed=1)
    with kv.open("/db", io=io) as writer:
        writer.set(b"k", b"v")
    before = _files(io, "/db")
    with kv.open("/db", io=io, read_only=True) as reader:
        with pytest.raises(StoreReadOnly, match="opened read-only"):
            WRITES[write](reader)
        assert reader.get(b"k") == b"v"
    assert _files(io, "/db") == before


def test_recovery_of_a_torn_tail_happens_in_memory_only() -> None:
    io = SimIo(seed=2)
    store = kv.open("/db", io=io)
    store.set(b"a", b"1")
    store.set(b"b", b"2")
    store.close()
    segment = io.open("/db/00000001.seg", "w").result()
    size = io.size(segment).result()
    data = kv.io.read_exact(io, segment, 0, size)
    end = scan_segment(1, data).valid_length  # past what the clean close recorded durable: a torn write
    io.write(segment, end, b"\x01half a frame").result()
    io.sync(segment).result()
    io.close(segment).result()
    before = _files(io, "/db")
    with kv.open("/db", io=io, read_only=True) as reader:
        assert reader.recovery.torn_tails and reader.keys() == [b"a", b"b"]
    assert _files(io, "/db") == before
    with kv.open("/db", io=io) as writer:  # a writable open finds and cuts the same tail
        assert writer.recovery.torn_tails and writer.keys() == [b"a", b"b"]


def test_corruption_raises_and_repair_is_refused() -> None:
    io = SimIo(seed=3)
    with kv.open("/db", io=io) as store:
        for index in range(5):
            store.set(b"k%d" % index, b"v")
    segment = io.open("/db/00000001.seg", "w").result()
    data = kv.io.read_exact(io, segment, 0, io.size(segment).result())
    second = scan_segment(1, data).frames[1][0]
    io.write(segment, second + 40, bytes([data[second + 40] ^ 1])).result()
    io.close(segment).result()
    with pytest.raises(CorruptionDetected):
        kv.open("/db", io=io, read_only=True)
    with pytest.raises(InvalidArgument, match="cannot repair"):
        kv.open("/db", io=io, read_only=True, on_corruption="repair")


def test_a_directory_without_a_store_is_refused_and_left_alone() -> None:
    io = SimIo(seed=4)
    with pytest.raises(kv.IoError):
        kv.open("/nothing", io=io, read_only=True)
    io.mkdir("/empty").result()
    with pytest.raises(CorruptionDetected, match="holds no store"):
        kv.open("/empty", io=io, read_only=True)
    assert io.listdir("/empty").result() == []
