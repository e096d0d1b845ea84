"""The simulated disk's durability model: what survives `crash()` and what does not."""

from __future__ import annotations

import pytest

from io_backends.sim import SimIo, SimulatedCrash
from kv.errors import IoError
from kv.io import read_exact


def _write_file(io: SimIo, path: str, data: bytes, sync: bool, sync_dir: bool) -> None:
    file = io.open(path, "w").result()
    io.write(file, 0, data).result()
    if sync:
        io.sync(file).result()
    if sync_dir:
        io.sync_dir("/d").result()


@pytest.fixture
def io() -> SimIo:
    sim = SimIo(seed=7)
    sim.mkdir("/d").result()
    sim.sync_dir("/").result()
    return sim


def test_synced_file_with_durable_entry_survives(io: SimIo) -> None:
    _write_file(io, "/d/a", b"kept", sync=True, sync_dir=True)
    io.crash()
    file = io.open("/d/a", "r").result()
    assert read_exact(io, file, 0, 4) == b"kept"


def test_unsynced_bytes_are_lost(io: SimIo) -> None:
    _write_file(io, "/d/a", b"kept", sync=True, sync_dir=True)
    file = io.open("/d/a", "w").result()
    io.write(file, 4, b"lost").result()
    io.crash()
    file = io.open("/d/a", "r").result()
    assert io.size(file).result() == 4


def test_synced_file_without_sync_dir_vanishes(io: SimIo) -> None:
    _write_file(io, "/d/a", b"data", sync=True, sync_dir=False)
    io.crash()
    assert io.listdir("/d").result() == []


def test_rename_needs_sync_dir(io: SimIo) -> None:
    _write_file(io, "/d/a", b"data", sync=True, sync_dir=True)
    io.rename("/d/a", "/d/b").result()
    io.crash()
    assert io.listdir("/d").result() == ["a"]
    io.rename("/d/a", "/d/b").result()
    io.sync_dir("/d").result()
    io.crash()
    assert io.listdir("/d").result() == ["b"]


def test_crash_kills_handles_and_locks(io: SimIo) -> None:
    file = io.open("/d/a", "w").result()
    io.lock("/d/LOCK").result()
    io.crash()
    with pytest.raises(IoError):
        io.read(file, 0, 1).result()
    io.lock("/d/LOCK").result()  # the lock died with the crashed process


def test_completion_order_is_seeded_and_sync_waits_for_writes() -> None:
    orders = []
    for seed in (1, 1, 2):
        sim = SimIo(seed=seed)
        file = sim.open("/f", "w").result()
        futures = [sim.write(file, index, b"x") for index in range(20)]
        sync = sim.sync(file)
        others = [sim.listdir("/") for _ in range(5)]
        sync.result()
        assert all(future.done() for future in futures)
        sim.drain()
        orders.append((sim.clock_us, [future.done() for future in others]))
    assert orders[0] == orders[1]


def test_planned_crash_raises_and_drops_volatile_state(io: SimIo) -> None:
    _write_file(io, "/d/a", b"base", sync=True, sync_dir=True)
    file = io.open("/d/a", "w").result()
    io.crash_at_operation = io.operations_completed + 1
    io.write(file, 4, b"more").result()
    with pytest.raises(SimulatedCrash):
        io.sync(file).result()
    file = io.open("/d/a", "r").result()
    assert read_exact(io, file, 0, 100) == b"base"
