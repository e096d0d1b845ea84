"""Small prepared stores and a simulated disk whose crashes keep a chosen, named part of
the unsynced changes: the inputs of the exhaustive crash-point run (`scenarios.exhaustive`).

Each prepared store is built by a deterministic recipe on a `SimIo` (fixed seed, no
random faults), and its disk is snapshotted with `copy.deepcopy` (about 0.3 ms for these
stores, against about 1.3 ms to replay a recipe): every crash point starts from a copy.
A recipe also says which logical states a recovery of it may legally give (`legal`), or
leaves that to the uncrashed open (`None`: the reference).

Survival modes (`Survival`) replace the seeded crash policy of `CrashSurvival` with a
fixed one, so a crash point is the same crash state every time:

- `none`: no unsynced file change and no directory change not covered by a `sync_dir`;
- `prefix`: every file's unsynced changes but its last, and the logged directory changes
  but the last (the state just before the last change reached the platter);
- `all`: every unsynced change of every file and every logged directory change;
- `omit-K`: every change but the K-th logged directory change (directory operations
  persisting out of order, ALICE's omission of an unordered operation).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import kv
from io_backends.sim import SimDisk, SimIo, SimulatedCrash
from io_backends.sim.disk import EntryChange, Inode, PendingWrite
from io_backends.sim.faults import FaultInjector, FaultPlan
from kv.errors import IoError
from kv.io import File, Future
from kv.recovery import scan_segment
from kv.store import Durability, Store
from scenarios.workload import Model, Operation, Workload, WorkloadMix, apply, run_operation, weighted

STORE_DIRECTORY = "/store"
# Small segments: a recipe of a dozen writes spans two or three of them.
SEGMENT_SIZE_TARGET_BYTES = 1024
RECIPE_SEED = 10
# Writes only, few keys (overwrites and deletes of live keys), values of up to 120 bytes.
RECIPE_MIX = WorkloadMix(
    weights=weighted(set=0.55, delete=0.2, set_many=0.25, get=0.0, flush=0.0, compact=0.0),
    key_count=8,
    value_size_max_bytes=120,
    batch_size_max=4,
)

SurvivalPart = Literal["none", "prefix", "all", "omit"]


@dataclass(frozen=True)
class Survival:
    """What a crash keeps of the unsynced file changes (`data`) and of the directory
    changes not covered by a `sync_dir` (`entries`; `omit` keeps all but `omitted`)."""

    name: str
    data: SurvivalPart
    entries: SurvivalPart
    omitted: int = 0


NOTHING_SURVIVES = Survival("none", "none", "none")
PREFIX_SURVIVES = Survival("prefix", "prefix", "prefix")
EVERYTHING_SURVIVES = Survival("all", "all", "all")
SURVIVAL_MODES = (NOTHING_SURVIVES, PREFIX_SURVIVES, EVERYTHING_SURVIVES)


def omit_entry(index: int) -> Survival:
    return Survival(f"omit-{index}", "all", "omit", index)


class ScriptedSurvival(FaultInjector):
    """A fault injector with no faults whose crashes keep what `survival` names; it
    records how many directory changes were pending at each crash."""

    def __init__(self, rng: random.Random, survival: Survival) -> None:
        super().__init__(FaultPlan(), rng)
        self.survival = survival
        self.entries_pending: list[int] = []  # per crash, in order

    def survivors(self, inode: Inode) -> list[PendingWrite]:
        pending = [change for change in inode.unsynced if not change.lost]
        return _kept(pending, self.survival.data, self.survival.omitted)

    def entry_survivors(self, pending: list[EntryChange]) -> list[EntryChange]:
        self.entries_pending.append(len(pending))
        return _kept(list(pending), self.survival.entries, self.survival.omitted)


def _kept(changes: list[Any], part: SurvivalPart, omitted: int) -> list[Any]:
    if part == "none":
        return []
    if part == "prefix":
        return changes[:-1]
    if part == "omit":
        return changes[:omitted] + changes[omitted + 1 :]
    return changes


class ExhaustiveIo(SimIo):
    """A `SimIo` that crashes by a `Survival` and records each completed I/O as
    "kind path", in completion order (`trace`), so a crash point can be named."""

    def __init__(self, disk: SimDisk, survival: Survival, seed: int = RECIPE_SEED) -> None:
        super().__init__(seed=seed, disk=disk)
        self.faults = self.survival = ScriptedSurvival(self.random, survival)
        self.trace: list[str] = []

    def _submit(
        self, kind: str, file_key: int | None, latency_us: int, run: Callable[..., Any], *arguments: Any
    ) -> Future[Any]:
        trace = self.trace
        subject = arguments[0].path if arguments and isinstance(arguments[0], File) else arguments[0]

        def traced(*values: Any) -> Any:
            trace.append(f"{kind} {subject}")
            return run(*values)

        return super()._submit(kind, file_key, latency_us, traced, *arguments)

    def _submit_file(
        self, kind: str, file: File, latency_us: int, run: Callable[..., Any], arguments: tuple[Any, ...]
    ) -> Future[Any]:
        """The file operations' own submit path (read, write, sync), traced the same way."""
        trace = self.trace

        def traced(*values: Any) -> Any:
            trace.append(f"{kind} {file.path}")
            return run(*values)

        return super()._submit_file(kind, file, latency_us, traced, arguments)


@dataclass(frozen=True)
class PreparedStore:
    """A store on a snapshotted disk, with the states a recovery of it may give."""

    name: str
    description: str
    disk: SimDisk
    legal: tuple[Model, ...] | None  # None: whatever the uncrashed open gives
    damaged: bool = False  # a frame is damaged: opening needs on_corruption="repair"
    torn: bool = False  # the newest segment ends in a torn frame: the open reports it

    def fresh_disk(self) -> SimDisk:
        return copy.deepcopy(self.disk)


def _open(io: SimIo, durability: Durability = "always") -> Store:
    return kv.open(STORE_DIRECTORY, io=io, durability=durability, segment_size_target_bytes=SEGMENT_SIZE_TARGET_BYTES)


def recipe_operations(count: int, seed: int) -> list[Operation]:
    workload = Workload(RECIPE_MIX, random.Random(seed))
    return [workload.next() for _ in range(count)]


def _write(store: Store, model: Model, count: int, seed: int) -> Model:
    for operation in recipe_operations(count, seed):
        run_operation(store, operation)
        model = apply(model, operation)
    return model


def _segment_inodes(disk: SimDisk) -> list[tuple[int, Inode]]:
    entries = disk.directories[STORE_DIRECTORY].entries
    names = sorted(name for name in entries if name.endswith(".seg"))
    return [(int(name[:8]), disk.inodes[entries[name]]) for name in names]


def _set_byte(inode: Inode, offset: int, value: int) -> None:
    inode.durable[offset] = value
    inode.data[offset] = value


def build_clean(io: SimIo) -> tuple[Model, tuple[Model, ...] | None]:
    """Sets, deletes and set_many across three segments, closed cleanly."""
    with _open(io) as store:
        model = _write(store, {}, 16, 1)
    return model, (model,)


def build_torn_tail(io: SimIo) -> tuple[Model, tuple[Model, ...] | None]:
    """Closed once, reopened, written, then a power loss that tore the last frame (a
    `set_many` of five keys): the second half of its bytes never reached the platter
    (the write was in flight; all five keys or none)."""
    with _open(io) as store:
        model = _write(store, {}, 10, 2)
    store = _open(io)
    model = _write(store, model, 3, 3)
    store.set_many({b"torn-%d" % index: b"t" * 150 for index in range(5)})
    io.crash()
    segment_id, inode = _segment_inodes(io.disk)[-1]
    offset, header = scan_segment(segment_id, bytes(inode.durable)).frames[-1]
    for position in range(offset + header.size // 2, offset + header.size):
        _set_byte(inode, position, 0)
    return model, (model,)


def build_damaged(io: SimIo) -> tuple[Model, tuple[Model, ...] | None]:
    """Closed cleanly, then one bit flipped in the payload of a frame in the middle of
    the first segment (mid-log corruption: opening raises, repair quarantines)."""
    with _open(io) as store:
        model = _write(store, {}, 16, 4)
    segment_id, inode = _segment_inodes(io.disk)[0]
    frames = scan_segment(segment_id, bytes(inode.durable)).frames
    offset, header = frames[len(frames) // 2]
    position = offset + header.size - 3
    _set_byte(inode, position, inode.durable[position] ^ 0x10)
    return model, None


def build_compacted(io: SimIo) -> tuple[Model, tuple[Model, ...] | None]:
    """Written, compacted (a compacted file and its hint), written again, closed."""
    with _open(io) as store:
        model = _write(store, {}, 12, 5)
        store.compact()
        model = _write(store, model, 6, 6)
    return model, (model,)


def _compaction_crashed(io: SimIo, seed: int, is_crash_point: Callable[[str], bool]) -> Model:
    """Write a recipe, then compact and crash at the first I/O of the compaction that
    `is_crash_point` picks, found in a dry run of the same recipe on a fresh disk (the
    run is deterministic: the same I/Os complete in the same order)."""
    dry = ExhaustiveIo(SimDisk(), NOTHING_SURVIVES)
    dry_store = _open(dry)
    _write(dry_store, {}, 14, seed)
    start = len(dry.trace)
    dry_store.compact()
    index = next(i for i, entry in enumerate(dry.trace[start:]) if is_crash_point(entry))
    store = _open(io)
    model = _write(store, {}, 14, seed)
    io.crash_at_operation = io.operations_completed + index
    try:
        store.compact()
    except SimulatedCrash:
        return model
    raise AssertionError("the compaction did not crash where its dry run said")


def build_compaction_obsolete(io: SimIo) -> tuple[Model, tuple[Model, ...] | None]:
    """A compaction that crashed after its install (the compacted file and hint are
    durable) and before it unlinked the segments it replaces: obsolete files left."""
    model = _compaction_crashed(io, 7, lambda entry: entry.startswith("unlink"))
    return model, (model,)


def build_compaction_debris(io: SimIo) -> tuple[Model, tuple[Model, ...] | None]:
    """A compaction that crashed before its commit point (the rename) with every
    unsynced change kept: `.tmp` files left for the next open to remove."""
    assert isinstance(io, ExhaustiveIo)
    io.survival.survival = EVERYTHING_SURVIVES
    model = _compaction_crashed(io, 8, lambda entry: entry.startswith("rename"))
    return model, (model,)


def build_fsync_failed(io: SimIo) -> tuple[Model, tuple[Model, ...] | None]:
    """A sync failed (fsyncgate: the dirty pages dropped, the page cache still shows the
    frame); the store went read-only and was closed without a crash. The failed write
    may be recovered or not; nothing else may change."""
    store = _open(io)
    model = _write(store, {}, 10, 9)
    io.faults.force("fsync_gate")
    failed: Operation = Operation("set", {b"failed": b"f" * 90})
    try:
        run_operation(store, failed)
    except IoError:
        pass
    else:
        raise AssertionError("the forced fsync failure did not fail the write")
    store.close()
    return model, (model, apply(model, failed))


Recipe = Callable[[SimIo], tuple[Model, tuple[Model, ...] | None]]
# name -> (recipe, what the uncrashed open must report: "clean", "torn" or "corruption")
RECIPES: dict[str, tuple[Recipe, Literal["clean", "torn", "corruption"]]] = {
    "clean": (build_clean, "clean"),
    "torn_tail": (build_torn_tail, "torn"),
    "damaged": (build_damaged, "corruption"),
    "compacted": (build_compacted, "clean"),
    "compaction_obsolete": (build_compaction_obsolete, "clean"),
    "compaction_debris": (build_compaction_debris, "clean"),
    "fsync_failed": (build_fsync_failed, "clean"),
}


def prepare(name: str) -> PreparedStore:
    """Build the prepared store `name` by its recipe and snapshot its disk."""
    build, reports = RECIPES[name]
    io = ExhaustiveIo(SimDisk(), NOTHING_SURVIVES)
    _model, legal = build(io)
    io.disk.locks.clear()  # a recipe that ended in a crash or a close holds no lock; be sure
    description = " ".join((build.__doc__ or "").split())
    disk = copy.deepcopy(io.disk)
    return PreparedStore(name, description, disk, legal, reports == "corruption", reports == "torn")


def prepare_all(names: list[str] | None = None) -> list[PreparedStore]:
    return [prepare(name) for name in (names if names is not None else list(RECIPES))]
