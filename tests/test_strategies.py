"""The public hypothesis strategies (`scenarios.strategies`): what they draw, how they
shrink, that a drawn backend is a deterministic function of the hypothesis data, that
the store passes a model check on them, and that the README's example has teeth."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis.errors import InvalidArgument

import kv
import tests.readme_log as readme_log
import tests.test_readme_example as readme
from io_backends.sim import SimDisk, SimIo
from io_backends.sim.faults import CrashSurvival, FaultPlan, LostWrite
from kv.errors import IoError
from kv.io import File, Io, read_exact
from scenarios.strategies import (
    FAULT_KINDS,
    OPERATION_KINDS,
    PER_EVENT_PROBABILITIES,
    PER_OPERATION_PROBABILITIES,
    crash_after,
    crash_points,
    fault_plans,
    operations,
    sim_ios,
    workloads,
)
from scenarios.workload import Model, Operation, apply, read_state, run_operation

ROOT = Path(__file__).resolve().parent.parent
QUICK = settings(max_examples=50, deadline=None, database=None, derandomize=True)  # no run can be unlucky
STORE = "/store"


def _probabilities(plan: FaultPlan) -> Iterator[tuple[str, float]]:
    for item in fields(plan):
        fault = getattr(plan, item.name)
        for setting in fields(fault):
            if setting.name.endswith("probability"):
                yield f"{item.name}.{setting.name}", getattr(fault, setting.name)


# -- fault_plans ------------------------------------------------------------------------


def test_fault_kinds_are_the_plan_fields() -> None:
    assert tuple(item.name for item in fields(FaultPlan)) == FAULT_KINDS


@QUICK
@given(fault_plans())
def test_fault_plans_are_valid_and_bounded(plan: FaultPlan) -> None:
    assert set(plan.enabled()) <= set(FAULT_KINDS)
    for name, probability in _probabilities(plan):
        assert 0.0 <= probability <= 1.0, name
        assert probability == 0.0 or probability >= min(PER_OPERATION_PROBABILITIES), name
    assert plan.torn_write.sector_bytes in (512, 4096)
    assert plan.operation_errors.write_probability <= max(PER_OPERATION_PROBABILITIES)
    assert plan.lost_write.probability <= max(PER_OPERATION_PROBABILITIES)
    SimIo(faults=plan)  # a usable plan


@QUICK
@given(fault_plans(kinds=("crash_survival", "torn_write")))
def test_fault_plans_keep_to_the_kinds_allowed(plan: FaultPlan) -> None:
    assert set(plan.enabled()) <= {"crash_survival", "torn_write"}


@QUICK
@given(fault_plans(required=("lost_write",)))
def test_required_faults_are_always_on(plan: FaultPlan) -> None:
    assert "lost_write" in plan.enabled()


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_fault_can_be_forced_on_alone(kind: str) -> None:
    plan = find(fault_plans(kinds=(), required=(kind,)), lambda plan: True, settings=QUICK)
    assert plan.enabled() == [kind]


def test_fault_plans_shrink_to_no_faults() -> None:
    assert find(fault_plans(), lambda plan: True, settings=QUICK) == FaultPlan()


def test_fault_plans_shrink_to_the_one_fault_needed_at_its_mildest() -> None:
    plan = find(fault_plans(), lambda plan: plan.damages_data(), settings=QUICK)
    assert len(plan.enabled()) == 1, plan
    nonzero = [probability for _, probability in _probabilities(plan) if probability]
    assert nonzero == [min(PER_OPERATION_PROBABILITIES)] or nonzero == [min(PER_EVENT_PROBABILITIES)], plan


def test_crash_survival_shrinks_to_its_mildest_odds() -> None:
    plan = find(fault_plans(), lambda plan: "crash_survival" in plan.enabled(), settings=QUICK)
    assert plan == FaultPlan(crash_survival=CrashSurvival(prefix_probability=min(PER_EVENT_PROBABILITIES))), plan


@pytest.mark.parametrize(
    "make",
    [
        lambda: fault_plans(kinds=("no_such_fault",)),
        lambda: fault_plans(required=("no_such_fault",)),
        lambda: fault_plans(kinds="torn_write"),
        lambda: operations(kinds=("scan",)),
        lambda: operations(kinds=()),
        lambda: operations(key_count=0),
        lambda: crash_points(-1),
    ],
)
def test_bad_arguments_are_rejected_at_once(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidArgument):
        make()


# -- sim_ios ----------------------------------------------------------------------------


@QUICK
@given(sim_ios(directory="/data/logs"))
def test_sim_ios_are_ready_with_a_durable_directory(io: SimIo) -> None:
    assert isinstance(io, SimIo)
    assert "SimIo(faults=FaultPlan(" in repr(io)
    io.crash()
    assert io.listdir("/data").result() == ["logs"]


@QUICK
@given(sim_ios(faults=FaultPlan(lost_write=LostWrite(0.01)), disk=lambda: SimDisk(capacity_bytes=4096)))
def test_sim_ios_take_a_fixed_plan_and_a_fresh_disk_each(io: SimIo) -> None:
    assert io.faults.plan == FaultPlan(lost_write=LostWrite(0.01))
    assert io.disk.capacity_bytes == 4096
    assert io.disk.inodes == {}  # nothing left over from an earlier example


def _exercise(io: SimIo) -> tuple[object, ...]:
    """Concurrent writes, syncs and a crash on `io`; what the run did, as one value."""
    files = [io.open(f"/f{index}", "w").result() for index in range(3)]
    futures = []
    for step in range(12):
        file = files[step % 3]
        futures.append(io.write(file, step * 7, bytes([step]) * 700))
        if step % 4 == 3:
            futures.append(io.sync(file))
    outcomes = []
    for future in futures:
        try:
            future.result()
            outcomes.append("ok")
        except IoError as error:
            outcomes.append(f"errno {error.errno}")
    io.crash()
    disk = sorted((number, bytes(inode.durable)) for number, inode in io.disk.inodes.items())
    report = sorted((name, count.fired, count.opportunities) for name, count in io.faults.report().items())
    return (repr(io), io.clock_us, io.operations_completed, tuple(outcomes), tuple(disk), tuple(report))


def _traces() -> list[tuple[object, ...]]:
    traces: list[tuple[object, ...]] = []

    @settings(max_examples=30, deadline=None, database=None, derandomize=True)
    @given(sim_ios(faults=fault_plans(kinds=("crash_survival", "torn_write", "latency", "operation_errors"))))
    def run(io: SimIo) -> None:
        traces.append(_exercise(io))

    run()
    return traces


def test_a_drawn_sim_io_is_a_function_of_the_hypothesis_data() -> None:
    first, second = _traces(), _traces()
    assert first == second
    assert len(set(first)) > len(first) // 2  # and the data does vary the runs


def test_fault_decisions_shrink_toward_not_firing() -> None:
    lost: dict[int, tuple[SimIo, int]] = {}

    def loses_a_write(io: SimIo) -> bool:
        file = io.open("/f", "w").result()
        for step in range(20):
            io.write(file, step, b"x").result()
        count = io.faults.report()["lost_write"].fired
        lost[id(io)] = (io, count)
        return count >= 1

    minimal = find(sim_ios(faults=FaultPlan(lost_write=LostWrite(0.5))), loses_a_write, settings=QUICK)
    assert lost[id(minimal)][1] == 1


def test_faults_fire_about_as_often_as_configured() -> None:
    rates: list[float] = []

    @settings(max_examples=100, deadline=None, database=None, derandomize=True)
    @given(sim_ios(faults=FaultPlan(lost_write=LostWrite(0.1))))
    def run(io: SimIo) -> None:
        file = io.open("/f", "w").result()
        for step in range(50):
            io.write(file, step, b"x").result()
        rates.append(io.faults.report()["lost_write"].achieved_probability)

    run()
    assert 0.03 <= sum(rates) / len(rates) <= 0.25


# -- operations, workloads, crash points ------------------------------------------------


@QUICK
@given(operations())
def test_operations_have_the_workload_format(operation: Operation) -> None:
    kind, changes, _arguments = operation
    assert kind in OPERATION_KINDS
    assert all(re.fullmatch(rb"key[0-7]", key) for key in changes)
    assert all(value is None or len(value) <= 64 for value in changes.values())
    if kind in ("set", "set_if_missing", "set_if_present"):
        assert len(changes) == 1 and None not in changes.values()
    elif kind in ("get", "delete", "getdel"):
        assert list(changes.values()) == [None]
    elif kind == "set_many":
        assert 1 <= len(changes) <= 4 and None not in changes.values()
    else:
        assert changes == {}


@QUICK
@given(workloads(operations(kinds=("get", "delete"), key_count=2), max_size=5))
def test_workloads_keep_to_their_options(workload: list[Operation]) -> None:
    assert len(workload) <= 5
    assert all(kind in ("get", "delete") and set(changes) <= {b"key0", b"key1"} for kind, changes, _ in workload)


def test_operations_and_workloads_shrink_to_short_simple_ones() -> None:
    assert find(operations(), lambda operation: True, settings=QUICK) == Operation("flush", {})
    assert find(operations(), lambda operation: operation[0] == "set", settings=QUICK) == Operation(
        "set", {b"key0": b""}
    )
    assert find(workloads(), lambda workload: True, settings=QUICK) == []
    batch = find(
        workloads(), lambda workload: any(operation.kind == "set_many" for operation in workload), settings=QUICK
    )
    assert batch == [Operation("set_many", {b"key0": b""})]


@QUICK
@given(crash_points(10))
def test_crash_points_stay_in_range(point: int) -> None:
    assert 0 <= point <= 10


def test_crash_points_shrink_toward_the_earliest_crash() -> None:
    assert find(crash_points(), lambda point: point >= 100, settings=QUICK) == 100


def _write_synced_then_unsynced(io: Io) -> File:
    file = io.open("/f", "w").result()
    io.sync_dir("/").result()
    io.write(file, 0, b"synced").result()
    io.sync(file).result()
    io.write(file, 6, b"-unsynced").result()
    return file


def test_crash_after_crashes_at_the_point_and_swallows_the_crash() -> None:
    io = SimIo(seed=1)
    reached = []
    with crash_after(io, 3):
        _write_synced_then_unsynced(io)
        reached.append("end")  # not reached: the fourth completion crashed
    assert reached == [] and io.operations_completed == 3
    assert io.crash_at_operation is None
    file = io.open("/f", "r").result()  # its name was synced; its unsynced write is gone
    assert io.read(file, 0, 100).result() == b""


def test_crash_after_loses_power_at_the_end_of_a_block_that_finishes() -> None:
    io = SimIo(seed=1)
    with crash_after(io, 100):
        _write_synced_then_unsynced(io)
    file = io.open("/f", "r").result()
    assert io.read(file, 0, 100).result() == b"synced"


def test_crash_after_lets_other_errors_through_without_a_crash() -> None:
    io = SimIo(seed=1)
    with pytest.raises(KeyError), crash_after(io, 100):
        _write_synced_then_unsynced(io)
        raise KeyError("the caller's own error")
    assert io.crash_at_operation is None
    file = io.open("/f", "r").result()
    assert io.read(file, 0, 100).result() == b"synced-unsynced"  # no power loss
    with pytest.raises(ValueError):
        crash_after(io, -1).__enter__()


# -- the store on drawn backends ---------------------------------------------------------


@settings(max_examples=60, deadline=None, database=None)
@given(sim_ios(faults=FaultPlan()), workloads())
def test_the_store_matches_a_dict_without_faults(io: SimIo, workload: list[Operation]) -> None:
    model: Model = {}
    with kv.open(STORE, io=io, segment_size_target_bytes=4096) as store:
        for operation in workload:
            read = run_operation(store, operation)
            if operation[0] == "get":
                [key] = operation[1]
                assert read == model.get(key), operation
            model = apply(model, operation)
        assert read_state(store) == model
    with kv.open(STORE, io=io) as store:
        assert read_state(store) == model
    io.shutdown()


# Faults that lose only what was never acknowledged: the store must recover exactly the
# acknowledged state, or it plus the one operation in flight.
_CRASH_FAULTS = ("crash_survival", "torn_write", "size_before_data", "latency")


@settings(max_examples=60, deadline=None, database=None)
@given(sim_ios(faults=fault_plans(kinds=_CRASH_FAULTS)), workloads(), crash_points())
def test_the_store_keeps_what_it_acknowledged_across_a_crash(
    io: SimIo, workload: list[Operation], crash_point: int
) -> None:
    acknowledged: Model = {}
    in_flight: Model | None = None
    store = kv.open(STORE, io=io, segment_size_target_bytes=4096)
    with crash_after(io, crash_point):
        for operation in workload:
            in_flight = apply(acknowledged, operation)
            run_operation(store, operation)
            acknowledged, in_flight = in_flight, None
    with kv.open(STORE, io=io) as store:
        recovered = read_state(store)
        assert not store.recovery.corruptions, store.recovery.summary()
    assert recovered in (acknowledged, in_flight)


# -- the README example -------------------------------------------------------------------


def _readme_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {section}")
    end = text.index("\n## ", start + 1)
    return [block.strip() for block in re.findall(r"```python\n(.*?)```", text[start:end], re.DOTALL)]


def test_the_readme_shows_the_tested_example() -> None:
    """The README shows the test (importing `mylog`, which is `tests.readme_log` here) in
    under 20 lines, then the user's log."""
    test, user = (Path(module.__file__ or "").read_text().split('"""', 2)[2].strip() for module in (readme, readme_log))
    shown_test, shown_user = _readme_blocks("Testing your own Io code with the strategies")[:2]
    assert shown_test == test.replace("tests.readme_log", "mylog")
    assert shown_user == user
    assert len(shown_test.splitlines()) < 20


def _append_before_sync(io: Io, log: File, offset: int, record: bytes) -> int:
    """Broken: acknowledges once the write is issued; the sync is never awaited."""
    body = struct.pack("<I", len(record)) + record
    io.write(log, offset, struct.pack("<I", zlib.crc32(body)) + body).result()
    io.sync(log)
    return offset + 4 + len(body)


def _create_without_sync_dir(io: Io, path: str) -> File:
    """Broken: the new file's directory entry is never made durable."""
    return io.open(path, "x").result()


def _recover_without_crc(io: Io, log: File) -> list[bytes]:
    """Broken: trusts every length-complete record, so a torn one comes back as data."""
    data = read_exact(io, log, 0, io.size(log).result())
    records, offset = [], 0
    while offset + 8 <= len(data):
        (length,) = struct.unpack_from("<I", data, offset + 4)
        if offset + 8 + length > len(data):
            break
        records.append(data[offset + 8 : offset + 8 + length])
        offset += 8 + length
    return records


@pytest.mark.parametrize(("name", "broken"), [("append", _append_before_sync), ("create", _create_without_sync_dir)])
def test_the_readme_property_catches_a_broken_log(monkeypatch: pytest.MonkeyPatch, name: str, broken: object) -> None:
    monkeypatch.setattr(readme, name, broken)
    with pytest.raises(AssertionError):
        readme.test_log_keeps_every_acknowledged_record()


def test_the_readme_property_catches_a_reader_without_crc_when_writes_tear(monkeypatch: pytest.MonkeyPatch) -> None:
    # A torn record needs a crash between its write and its sync, the write surviving
    # and a sector of it lost: rare, so the faults are forced on and examples are many.
    property_test: Any = readme.test_log_keeps_every_acknowledged_record
    check = property_test.hypothesis.inner_test  # the README's test body, undecorated

    @settings(max_examples=3000, deadline=None, database=None, derandomize=True, phases=[Phase.generate])
    @given(
        sim_ios(faults=fault_plans(kinds=(), required=("crash_survival", "torn_write"))),
        readme.records_over_a_sector,
        crash_points(32),
    )
    def search(io: SimIo, records: list[bytes], crash_point: int) -> None:
        check(io, records, crash_point)

    monkeypatch.setattr(readme, "recover", _recover_without_crc)
    with pytest.raises(AssertionError):
        search()
