"""The `kv_sim` plugin's fixtures used as a user would: the real store on the simulated
disk, written, crashed and recovered. Tests that expect exact outcomes pin their
scenario with the `sim` marker; the others run under `--sim-scenario` (default `perfect`)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import kv
from io_backends import make_io
from io_backends.sim import SimIo, SimulatedCrash
from kv.errors import KvError
from kv.store import Store
from scenarios.pytest_plugin import SIM_RUN, SimStoreOpener, derive_test_seed
from scenarios.registry import Scenario


@pytest.mark.sim(scenario="perfect")
def test_set_get_delete(sim_store: Store) -> None:
    sim_store.set(b"user:1", b"ada")
    sim_store.set("greeting", "héllo")
    sim_store.set_many({b"a": b"1", b"b": b"2"})
    assert sim_store.get(b"user:1") == b"ada"
    assert sim_store.get("greeting") == "héllo".encode()
    assert sim_store.delete(b"a") is True
    assert sim_store.delete(b"a") is False
    assert sim_store.get(b"a") is None
    assert sim_store.keys() == [b"b", b"greeting", b"user:1"]
    assert sim_store.verify().ok


@pytest.mark.sim(scenario="perfect")
def test_acknowledged_writes_survive_a_crash(sim_io: SimIo, sim_open: SimStoreOpener) -> None:
    store = sim_open()
    store.set(b"kept", b"1")
    store.set_many({b"batch:1": b"x", b"batch:2": b"y"})
    store.delete(b"kept")
    store.set(b"last", b"2")
    sim_io.crash()
    recovered = sim_open()
    assert not recovered.recovery.corruptions
    assert recovered.get(b"kept") is None
    assert {key: recovered.get(key) for key in recovered.keys()} == {b"batch:1": b"x", b"batch:2": b"y", b"last": b"2"}


@pytest.mark.sim(scenario="perfect")
def test_unsynced_writes_are_lost_in_a_crash_and_flushed_ones_kept(sim_io: SimIo, sim_open: SimStoreOpener) -> None:
    store = sim_open(durability="none")
    store.set(b"flushed", b"1")
    store.flush()
    store.set(b"buffered", b"2")
    sim_io.crash()
    recovered = sim_open()
    assert recovered.get(b"flushed") == b"1"
    assert recovered.get(b"buffered") is None


@pytest.mark.sim(scenario="perfect")
def test_a_crash_in_the_middle_of_a_write_leaves_it_whole_or_absent(sim_io: SimIo, sim_open: SimStoreOpener) -> None:
    store = sim_open()
    store.set(b"before", b"1")
    sim_io.crash_at_operation = sim_io.operations_completed + 1
    with pytest.raises(SimulatedCrash):
        store.set_many({b"during:1": b"a", b"during:2": b"b"})
    recovered = sim_open()
    assert recovered.get(b"before") == b"1"
    during = (recovered.get(b"during:1"), recovered.get(b"during:2"))
    assert during in ((None, None), (b"a", b"b"))


@pytest.mark.sim(scenario="crash")
def test_the_crash_scenario_keeps_every_acknowledged_write(
    sim_io: SimIo, sim_open: SimStoreOpener, sim_scenario: Scenario
) -> None:
    assert sim_scenario.name == "crash"
    assert sim_io.faults.plan.enabled() == ["crash_survival"]  # some unsynced writes may survive a crash
    acknowledged: dict[bytes, bytes] = {}
    for round_number in range(5):
        store = sim_open()
        for index in range(20):
            key, value = f"key:{index % 7}".encode(), f"{round_number}:{index}".encode()
            store.set(key, value)
            acknowledged[key] = value
        sim_io.crash()
    recovered = sim_open()
    assert {key: recovered.get(key) for key in recovered.keys()} == acknowledged


def test_sim_seed_is_derived_from_the_base_seed_and_node_id(
    request: pytest.FixtureRequest, sim_seed: int, sim_io: SimIo
) -> None:
    base_seed = request.config.stash[SIM_RUN].base_seed
    assert sim_seed == derive_test_seed(base_seed, request.node.nodeid)
    assert sim_io.seed == sim_seed
    assert ("sim_seed", sim_seed) in request.node.user_properties
    assert request.node.get_closest_marker("sim") is not None  # added by the plugin


def _trace(seed: int, scenario: Scenario) -> list[str]:
    """What one short run on a fresh disk did: results, typed errors, the virtual clock."""
    io = SimIo(seed=seed, faults=scenario.fault_plan(random.Random(seed)))
    events: list[str] = []
    try:
        store = kv.open("/store", io=io, durability=scenario.durabilities[0])
        for index in range(40):
            store.set(f"key:{index % 9}".encode(), bytes([index]) * index)
            events.append(repr(store.get(f"key:{(index * 5) % 9}".encode())))
        store.close()
    except KvError as error:  # a faulty scenario may fail an operation: the same one both times
        events.append(type(error).__name__)
    events.append(f"clock_us={io.clock_us} operations={io.operations_completed}")
    return events


def test_the_same_seed_replays_the_same_run(sim_seed: int, sim_scenario: Scenario) -> None:
    """Runs under any `--sim-scenario`: determinism, not correctness."""
    first = _trace(sim_seed, sim_scenario)
    assert first == _trace(sim_seed, sim_scenario)


@pytest.mark.io_uring
def test_the_store_on_io_uring(tmp_path: Path) -> None:
    with kv.open(str(tmp_path), io=make_io("uring")) as store:
        store.set(b"key", b"value")
        assert store.get(b"key") == b"value"
