"""Hypothesis strategies for testing your own code against the `kv.io.Io` contract.

Write your code against `kv.io.Io`, then let hypothesis choose the disk it runs on:

- `fault_plans()`: `FaultPlan`s with each fault off or on at bounded odds; they shrink
  toward no faults, so a failing example names the faults it needs.
- `sim_ios()`: ready `SimIo` backends whose every decision (completion order, latency,
  each fault firing, what survives a crash) is drawn from hypothesis data, so those
  decisions shrink too: toward issue-order completion and faults that do not fire.
- `operations()` and `workloads()`: store operations in the `scenarios.workload`
  format, over a handful of keys so that writes, deletes and reads collide.
- `crash_points()` and `crash_after()`: a power loss after a drawn number of I/Os.

Importing this module needs hypothesis (the `test` extra). It does not check anything
itself: your test states the property.
"""

from __future__ import annotations

import contextlib
import posixpath
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from io_backends.sim import SimDisk, SimIo, SimLatency, SimulatedCrash
from io_backends.sim.faults import (
    BitFlip,
    CrashSurvival,
    DiskFull,
    EntryLoss,
    FaultPlan,
    FlyingWrite,
    FsyncGate,
    Latency,
    LatentSectorError,
    LostTruncate,
    LostWrite,
    MisdirectedWrite,
    OperationErrors,
    PermissionErrors,
    ReadCorruption,
    ShortRead,
    SizeBeforeData,
    TailBurst,
    TailCorruption,
    TornWrite,
)
from scenarios.operations import KINDS, Operation

__all__ = [
    "FAULT_KINDS",
    "OPERATION_KINDS",
    "crash_after",
    "crash_points",
    "fault_plans",
    "operations",
    "sim_ios",
    "workloads",
]

FAULT_KINDS: tuple[str, ...] = tuple(item.name for item in fields(FaultPlan))
"""Every fault a plan holds, by its `FaultPlan` field name, in declaration order."""

_PROBE = st.just(b"")
OPERATION_KINDS: tuple[str, ...] = tuple(
    name for name, kind in KINDS.items() if kind.strategy(_PROBE, _PROBE, 1) is not None
)
"""The kinds `operations()` draws (each kind of `scenarios.operations.KINDS` that has a
strategy), in registry order: the first shrinks simplest."""

# -- limits: what each fault may be set to --------------------------------------------
# Each ladder is ordered from the mildest setting to the harshest, so a fault that is
# on shrinks toward its mildest setting.

# Faults drawn on every read, write, sync or open: at most 2%, so a test's few hundred
# operations mostly succeed and reach the states worth checking.
PER_OPERATION_PROBABILITIES: tuple[float, ...] = (0.001, 0.003, 0.01, 0.02)
# Faults drawn once per rarer event (a crash, a write surviving one, a read that was
# corrupted, an error that fired): any odds up to always, none blocks progress.
PER_EVENT_PROBABILITIES: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
# A short read only costs the caller another read, so it may be common.
SHORT_READ_PROBABILITIES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.3)
# The two sector sizes real devices use.
SECTOR_SIZES_BYTES: tuple[int, ...] = (512, 4096)
# Up to a few bits per flip: one bit is the common case, several defeat weak checks.
BITS_FLIPPED_MAX = 4
# From roomy to tight; 1 MiB is the store's preallocation step, so a smaller disk is
# full at the store's first segment (a fine test of reporting ENOSPC).
DISK_CAPACITIES_BYTES: tuple[int, ...] = tuple(1 << exponent for exponent in (26, 24, 22, 20, 18, 16, 14))
# How near the end of a file's data a tail bit flips: the default first; 8 bytes hits a
# header's last field, 512 a whole sector.
TAIL_WINDOWS_BYTES: tuple[int, ...] = (64, 8, 512)
# Extra virtual latency: 50 us reorders writes (20 us) only; 10 ms reorders anything.
JITTER_US_MAXIMA: tuple[int, ...] = (50, 1_000, 10_000)

# A handful of keys so that sets, deletes and gets of one key meet often.
KEY_COUNT = 8
# Short values keep examples readable; pass value_size_max_bytes to cross sectors.
VALUE_SIZE_MAX_BYTES = 64
# A few keys per batch: enough for a torn or half-applied batch to show.
BATCH_SIZE_MAX = 4
# Long enough to roll, compact and overwrite; short enough to run hundreds of examples.
WORKLOAD_OPERATIONS_MAX = 50
# A short test's few hundred I/Os; a crash point past the end of the work is a power
# loss at the end of it (see `crash_after`).
CRASH_POINT_OPERATIONS_MAX = 256

# `random()` is built from this many bits drawn as bytes (53: a float's precision).
_FLOAT_BITS = 53


def _ladder(values: Sequence[float]) -> st.SearchStrategy[float]:
    return st.sampled_from(values)


def _fault(
    fault_type: Callable[..., object],
    any_of: Mapping[str, st.SearchStrategy[float]],
    optional: Mapping[str, st.SearchStrategy[float]] | None = None,
    fixed: Mapping[str, st.SearchStrategy[float]] | None = None,
) -> st.SearchStrategy[object]:
    """A fault that is on: one of the `any_of` fields nonzero for sure, the other
    `any_of` and `optional` fields zero or not, the `fixed` ones (sizes) always drawn."""

    @st.composite
    def build(draw: st.DrawFn) -> object:
        on = draw(st.sampled_from(sorted(any_of)))
        values: dict[str, float] = {}
        for name, strategy in {**any_of, **(optional or {})}.items():
            values[name] = draw(strategy) if name == on else draw(st.just(0.0) | strategy)
        for name, strategy in (fixed or {}).items():
            values[name] = draw(strategy)
        return fault_type(**values)

    return build()


_OPERATION = _ladder(PER_OPERATION_PROBABILITIES)
_EVENT = _ladder(PER_EVENT_PROBABILITIES)
_SECTOR = _ladder(SECTOR_SIZES_BYTES)

_FAULT_STRATEGIES: dict[str, st.SearchStrategy[object]] = {
    "crash_survival": _fault(CrashSurvival, {"prefix_probability": _EVENT, "subset_probability": _EVENT}),
    "torn_write": _fault(
        TornWrite, {"probability": _EVENT}, {"garbage_probability": _EVENT}, {"sector_bytes": _SECTOR}
    ),
    "size_before_data": _fault(SizeBeforeData, {"probability": _EVENT}),
    "bit_flip": _fault(
        BitFlip,
        {"on_write_probability": _OPERATION, "at_rest_probability": _EVENT},
        fixed={"bits_max": st.integers(1, BITS_FLIPPED_MAX)},
    ),
    "read_corruption": _fault(ReadCorruption, {"probability": _OPERATION}, {"sticky_probability": _EVENT}),
    "latent_sector_error": _fault(LatentSectorError, {"probability": _OPERATION}, fixed={"sector_bytes": _SECTOR}),
    "misdirected_write": _fault(MisdirectedWrite, {"probability": _OPERATION}, fixed={"sector_bytes": _SECTOR}),
    "lost_write": _fault(LostWrite, {"probability": _OPERATION}),
    "short_read": _fault(ShortRead, {"probability": _ladder(SHORT_READ_PROBABILITIES)}),
    "operation_errors": _fault(
        OperationErrors,
        {f"{kind}_probability": _OPERATION for kind in ("open", "read", "write", "sync", "rename", "unlink")},
        {"persistent_probability": _EVENT},
    ),
    "permission_errors": _fault(PermissionErrors, {"open_probability": _OPERATION, "write_probability": _OPERATION}),
    "fsync_gate": _fault(FsyncGate, {"probability": _OPERATION}),
    "disk_full": _fault(DiskFull, {"capacity_bytes": _ladder(DISK_CAPACITIES_BYTES)}),
    "latency": _fault(Latency, {"jitter_us_max": _ladder(JITTER_US_MAXIMA)}),
    "tail_corruption": _fault(
        TailCorruption, {"probability": _EVENT}, fixed={"window_bytes": _ladder(TAIL_WINDOWS_BYTES)}
    ),
    "entry_loss": _fault(EntryLoss, {"probability": _EVENT}),
    "lost_truncate": _fault(LostTruncate, {"probability": _OPERATION}),
    "tail_burst": _fault(TailBurst, {"probability": _EVENT}, fixed={"window_bytes": _ladder(TAIL_WINDOWS_BYTES)}),
    "flying_write": _fault(FlyingWrite, {"probability": _EVENT}),
}
assert set(_FAULT_STRATEGIES) == set(FAULT_KINDS), "every fault of FaultPlan needs a strategy here"


def _names(argument: str, names: Iterable[str], known: Sequence[str]) -> tuple[str, ...]:
    """`names` as a tuple; raises `InvalidArgument` for a bare string or an unknown name."""
    if isinstance(names, str):
        raise InvalidArgument(f"{argument} must be a collection of names, not the string {names!r}")
    chosen = tuple(names)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise InvalidArgument(f"{argument}: unknown {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return chosen


def fault_plans(kinds: Iterable[str] | None = None, *, required: Iterable[str] = ()) -> st.SearchStrategy[FaultPlan]:
    """`FaultPlan`s in which each fault of `kinds` (default: all of `FAULT_KINDS`) is
    either off or on, and each fault of `required` is always on.

    A fault that is on has at least one nonzero probability, drawn from a bounded ladder:
    faults drawn per operation (lost writes, EIO, ...) at 0.1% to 2% so runs make
    progress; faults drawn per crash or per rarer event (crash survival, torn writes)
    at 10% to 100%; short reads at 1% to 30%; disks of 16 KiB to 64 MiB; latency jitter
    up to 50 us to 10 ms; sector sizes 512 or 4096 bytes. Plans shrink toward no
    faults, and a fault that stays on shrinks toward its mildest setting.

    Under `sim_ios`, whether a fault fires is hypothesis' choice, made about as often as
    its probability says; the probability is a knob, not a measured rate.

    Raises `hypothesis.errors.InvalidArgument` for a name not in `FAULT_KINDS`.
    """
    allowed = FAULT_KINDS if kinds is None else _names("kinds", kinds, FAULT_KINDS)
    always = _names("required", required, FAULT_KINDS)
    chosen = [name for name in FAULT_KINDS if name in allowed or name in always]

    @st.composite
    def plans(draw: st.DrawFn) -> FaultPlan:
        faults: dict[str, Any] = {}
        for name in chosen:
            if name in always or draw(st.booleans()):
                faults[name] = draw(_FAULT_STRATEGIES[name])
        return FaultPlan(**faults)

    return plans()


class _DrawnRandom(random.Random):
    """A `random.Random` whose every bit is drawn, as bytes, from a hypothesis random.

    Hypothesis draws bytes about uniformly and shrinks them toward zero; integers and
    floats it draws lean heavily toward small values (a `random() < 0.01` fires about
    one time in five). So bits come from bytes, and `random()` counts down from just
    below 1: an all-zero draw means "no fault fires", and `random() < p` fires about
    as often as `p` says. `randrange` (every `randint` and `choice`) shrinks toward its
    start: completions toward issue order, crash survival toward "nothing survives".
    """

    def __init__(self, source: random.Random) -> None:
        super().__init__(0)
        self._source = source

    def getrandbits(self, k: int, /) -> int:
        if k <= 0:
            return 0
        drawn = int.from_bytes(self._source.randbytes((k + 7) // 8), "little")
        return drawn & ((1 << k) - 1)

    def random(self) -> float:
        return ((1 << _FLOAT_BITS) - 1 - self.getrandbits(_FLOAT_BITS)) / (1 << _FLOAT_BITS)

    def __repr__(self) -> str:
        return "<random drawn from hypothesis data>"


class _DrawnSimIo(SimIo):
    """A `SimIo` that prints as the call that made it, for falsifying examples."""

    directory: str | None = None

    def __repr__(self) -> str:
        plan = self.faults.plan
        faults = ", ".join(f"{name}={getattr(plan, name)!r}" for name in plan.enabled())
        directory = "" if self.directory is None else f", directory={self.directory!r}"
        return f"SimIo(faults=FaultPlan({faults}){directory}, rng=<drawn>)"


def _make_durable_directory(io: SimIo, directory: str) -> None:
    """`mkdir` and `sync_dir` every ancestor, so the directory outlives a crash."""
    io.mkdir(directory).result()
    parts = [part for part in posixpath.normpath(posixpath.join("/", directory)).split("/") if part]
    for depth in range(len(parts)):
        io.sync_dir("/" + "/".join(parts[:depth])).result()


def sim_ios(
    faults: st.SearchStrategy[FaultPlan] | FaultPlan | None = None,
    *,
    directory: str | None = None,
    disk: Callable[[], SimDisk] | None = None,
    latency: SimLatency | None = None,
) -> st.SearchStrategy[SimIo]:
    """Ready `SimIo` backends whose decisions all come from hypothesis data.

    `faults`: a strategy of plans (default `fault_plans()`: any fault may be on) or one
    fixed `FaultPlan` (`FaultPlan()`: none). The backend's one RNG is drawn with
    `st.randoms(use_true_random=False)`, so completion order, jitter, every fault
    decision and what survives a crash shrink with the example (see `_DrawnRandom`).

    `directory`: created before the test starts and made durable (its ancestors are
    synced), so it survives a crash; the entries you create in it are yours to sync.
    `disk`: a factory of the `SimDisk` to start from (say `lambda: SimDisk(capacity_bytes=
    1 << 20)`), called once per example so examples never share files. `latency`: the
    virtual service times.

    The backend belongs to one example: drive it (`future.result()`), crash it and shut
    it down inside the test; its RNG cannot draw once the example is over, so keep no
    reference across examples. Hypothesis closes nothing for you.
    """
    plans = fault_plans() if faults is None else faults
    plan_strategy = st.just(plans) if isinstance(plans, FaultPlan) else plans

    @st.composite
    def backends(draw: st.DrawFn) -> SimIo:
        plan = draw(plan_strategy)
        source = draw(st.randoms(use_true_random=False))
        io = _DrawnSimIo(
            disk=disk() if disk is not None else None, latency=latency, faults=plan, rng=_DrawnRandom(source)
        )
        if directory is not None:
            _make_durable_directory(io, directory)
            io.directory = directory
        return io

    return backends()


def operations(
    *,
    kinds: Iterable[str] = OPERATION_KINDS,
    key_count: int = KEY_COUNT,
    value_size_max_bytes: int = VALUE_SIZE_MAX_BYTES,
    batch_size_max: int = BATCH_SIZE_MAX,
) -> st.SearchStrategy[Operation]:
    """One store operation, a `scenarios.operations.Operation`: `(kind, {key: value},
    arguments)`, drawn by its kind's definition in `scenarios.operations.KINDS`.

    `set` carries one key and its value; `get` and `delete` one key mapped to `None`;
    `set_many` 1 to `batch_size_max` keys; `flush` and `compact` no keys. Keys are
    `b"key0"` .. `b"key{key_count - 1}"`; values are any bytes up to
    `value_size_max_bytes`. Shrinks toward the first kind, fewer keys, `b"key0"` and
    empty values (an operation that needs a `set` shrinks to `Operation("set", {b"key0":
    b""})`). Run one with `scenarios.workload.run_operation` and model it with
    `scenarios.workload.apply`.

    Raises `hypothesis.errors.InvalidArgument` for an unknown kind, no kinds, or sizes
    out of range.
    """
    chosen = _names("kinds", kinds, OPERATION_KINDS)
    if not chosen:
        raise InvalidArgument("kinds must name at least one operation kind")
    if key_count < 1 or value_size_max_bytes < 0 or batch_size_max < 1:
        raise InvalidArgument(
            f"need key_count >= 1, value_size_max_bytes >= 0 and batch_size_max >= 1, not "
            f"{key_count}, {value_size_max_bytes} and {batch_size_max}"
        )
    keys = st.sampled_from([f"key{index}".encode() for index in range(key_count)])
    values = st.binary(max_size=value_size_max_bytes)
    return st.one_of(*(_strategy(kind, keys, values, batch_size_max) for kind in OPERATION_KINDS if kind in chosen))


def _strategy(
    kind: str, keys: st.SearchStrategy[bytes], values: st.SearchStrategy[bytes], batch_size_max: int
) -> st.SearchStrategy[Operation]:
    strategy = KINDS[kind].strategy(keys, values, batch_size_max)
    assert strategy is not None, kind
    return strategy


def workloads(
    operation: st.SearchStrategy[Operation] | None = None,
    *,
    min_size: int = 0,
    max_size: int = WORKLOAD_OPERATIONS_MAX,
) -> st.SearchStrategy[list[Operation]]:
    """Lists of `min_size` to `max_size` operations drawn from `operation` (default
    `operations()`); they shrink toward fewer, simpler operations."""
    return st.lists(operations() if operation is None else operation, min_size=min_size, max_size=max_size)


def crash_points(operations_max: int = CRASH_POINT_OPERATIONS_MAX) -> st.SearchStrategy[int]:
    """How many I/Os may complete before the power fails: 0 to `operations_max`.

    Use it with `crash_after`. The scale is logarithmic (first a power of two, then a
    count below it), so a short piece of work is crashed inside as often as a long one:
    a uniform draw up to 256 would land among a small test's first dozen I/Os one time
    in twenty. Shrinks toward 0 (a crash before the first I/O completes), so a failing
    example names the earliest crash that breaks your code. Raises
    `hypothesis.errors.InvalidArgument` when `operations_max` is negative.
    """
    if operations_max < 0:
        raise InvalidArgument(f"operations_max must be >= 0, not {operations_max}")

    @st.composite
    def points(draw: st.DrawFn) -> int:
        bits = draw(st.integers(0, operations_max.bit_length()))
        return draw(st.integers(0, min(operations_max, (1 << bits) - 1)))

    return points()


@contextlib.contextmanager
def crash_after(io: SimIo, operations: int) -> Iterator[None]:
    """Lose power after `operations` more I/Os complete, or when the block ends.

    Inside the block the `operations + 1`-th completion crashes the disk instead and
    raises `SimulatedCrash`, which ends the block and is swallowed here; a block that
    finishes first loses power as it ends. Either way exactly one crash happens: the
    code after the block sees only what the disk kept (recover there). Any other
    exception propagates with no crash. Do not catch `SimulatedCrash` (an `Exception`)
    in the code under test. Raises `ValueError` when `operations` is negative.
    """
    if operations < 0:
        raise ValueError(f"operations must be >= 0, not {operations}")
    io.crash_at_operation = io.operations_completed + operations
    try:
        yield
    except SimulatedCrash:
        return
    finally:
        io.crash_at_operation = None
    io.crash()
