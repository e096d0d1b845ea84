"""The named scenarios: each is data (a workload mix and a fault plan), listed here once."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, fields, replace
from typing import Any

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
from kv.opening import OnCorruption
from kv.store import Durability
from scenarios.workload import WorkloadMix, weighted


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    mix: WorkloadMix = field(default_factory=WorkloadMix)
    faults: FaultPlan = field(default_factory=FaultPlan)
    # per seed, one of these (drawn from the seed when there are several)
    durabilities: tuple[Durability, ...] = ("always",)
    operations: int = 2000
    crash_probability: float = 0.0  # per operation: plan a crash within the next few I/Os
    crash_during_recovery_probability: float = 0.0
    segment_size_target_bytes: int = 16 * 1024
    swarm: bool = False  # per seed, switch a random subset of the faults off
    # The faults the scenario is named for, as `FaultInjector.draw` names ("bit_flip.on_write",
    # "torn_write", ...; a name ending in "." covers every draw it prefixes): every seed
    # fires each of them at least once, and a seed that fired none exercised nothing.
    defining_faults: tuple[str, ...] = ()
    # Per seed, every probability of the plan is scaled by a factor drawn log-uniformly
    # from this range (TigerBeetle's swarm draws its rates per seed the same way), so
    # the campaign covers rare and frequent faults alike. (1, 1): the plan as written.
    intensity_range: tuple[float, float] = (0.25, 4.0)
    # How a seed with media faults opens the store: "repair" (point in time) or "salvage".
    on_corruption: OnCorruption = "repair"
    # Its data operations go through `kv serve`'s command layer (`scenarios.server`).
    server: bool = False

    def seed_defining_faults(self, plan: FaultPlan) -> tuple[str, ...]:
        """The defining faults `plan` can fire (swarm may have switched some off)."""
        enabled = set(plan.enabled())
        return tuple(name for name in self.defining_faults if name.partition(".")[0] in enabled)

    def fault_plan(self, rng: random.Random) -> FaultPlan:
        """The plan for one seed: swarm testing keeps each fault with probability 1/2;
        then every probability is scaled by a factor from `intensity_range`."""
        plan = self.faults
        if self.swarm:
            kept = {item.name: getattr(plan, item.name) for item in fields(plan) if rng.random() < 0.5}
            plan = replace(FaultPlan(), **kept)
        low, high = self.intensity_range
        if (low, high) == (1.0, 1.0):
            return plan
        scaled = {}
        for name in plan.enabled():
            factor = math.exp(rng.uniform(math.log(low), math.log(high)))
            scaled[name] = _scaled(getattr(plan, name), factor)
        return replace(plan, **scaled)

    def pick_durability(self, rng: random.Random) -> Durability:
        """The durability mode for one seed (no draw when the scenario has only one)."""
        return self.durabilities[0] if len(self.durabilities) == 1 else rng.choice(self.durabilities)


def _scaled(fault: Any, factor: float) -> Any:
    """`fault` with each of its probabilities times `factor` (at most 1)."""
    changes = {
        item.name: min(1.0, getattr(fault, item.name) * factor)
        for item in fields(fault)
        if item.name.endswith("probability") and getattr(fault, item.name)
    }
    return replace(fault, **changes)


# Scenarios without media faults, and swarm, run each seed in one of the three modes.
# The other media scenarios stay in `always`: there a frame holds one operation, so the
# oracle can tell a torn last frame (one operation lost) from mid-log damage relabelled.
ALL_DURABILITIES: tuple[Durability, ...] = ("always", "batch", "none")
# ... and their clients sometimes pause, so that `batch` mode's sync deadline matters,
# and sometimes close and reopen the store (crashes then land in close and open too).
PAUSING = WorkloadMix(weighted(pause=0.05, reopen=0.01))
CRASHES = CrashSurvival(prefix_probability=0.3, subset_probability=0.2)
TORN = TornWrite(probability=0.3, sector_bytes=512, garbage_probability=0.3)
MEDIA = FaultPlan(
    crash_survival=CRASHES,
    torn_write=TORN,
    bit_flip=BitFlip(on_write_probability=0.002, at_rest_probability=0.05),
    read_corruption=ReadCorruption(probability=0.002, sticky_probability=0.2),
    entry_loss=EntryLoss(probability=0.05),
)
FILESYSTEM = FaultPlan(
    operation_errors=OperationErrors(
        open_probability=0.002,
        read_probability=0.002,
        write_probability=0.002,
        sync_probability=0.002,
        rename_probability=0.01,
        unlink_probability=0.01,
        persistent_probability=0.1,
    ),
    permission_errors=PermissionErrors(open_probability=0.002, write_probability=0.001),
    disk_full=DiskFull(capacity_bytes=2 * 1024 * 1024),
)
EVERYTHING = replace(
    MEDIA,
    torn_write=TornWrite(probability=0.3, sector_bytes=4096, garbage_probability=0.3),
    size_before_data=SizeBeforeData(0.3),
    latent_sector_error=LatentSectorError(probability=0.0005),
    misdirected_write=MisdirectedWrite(probability=0.0005),
    lost_write=LostWrite(probability=0.0005),
    short_read=ShortRead(probability=0.01),
    operation_errors=FILESYSTEM.operation_errors,
    permission_errors=FILESYSTEM.permission_errors,
    fsync_gate=FsyncGate(probability=0.002),
    latency=Latency(jitter_us_max=200),
    tail_corruption=TailCorruption(probability=0.02, window_bytes=64),
    entry_loss=EntryLoss(probability=0.05),
    lost_truncate=LostTruncate(probability=0.05),
    tail_burst=TailBurst(probability=0.02, window_bytes=256),
    flying_write=FlyingWrite(probability=0.05),
)

# The defining faults of the scenarios that turn everything on: one draw of each fault.
EVERY_FAULT = (
    "bit_flip.on_write",
    "bit_flip.at_rest",
    "read_corruption",
    "latent_sector_error",
    "misdirected_write",
    "lost_write",
    "short_read",
    "operation_errors.write",
    "operation_errors.sync",
    "fsync_gate",
    "tail_corruption",
)  # torn writes need a write wider than a 4 KiB sector, which these workloads rarely make

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("perfect", "no faults: every operation checked against the model, then a clean reopen"),
        Scenario(
            "crash",
            "power loss at random points (mid-batch, mid-compaction, during recovery); "
            "only unacknowledged work is lost",
            mix=PAUSING,
            faults=FaultPlan(crash_survival=CRASHES),
            durabilities=ALL_DURABILITIES,
            crash_probability=0.01,
            crash_during_recovery_probability=0.3,
            defining_faults=("crash_survival.prefix", "crash_survival.subset"),
        ),
        Scenario(
            "conditional",
            "getdel, conditional sets (NX, XX), incr and atomic batches (sets, deletes and expires in one "
            "frame) beside every write, under crashes and failing syncs: a getdel's value is the model's, "
            "an acknowledged one stays deleted, a conditional set answers whether it wrote, an incr answers "
            "the model's sum, a batch is all or nothing, a read-only open beside the writer writes nothing "
            "and sees what the writer's files hold",
            mix=WorkloadMix(
                weighted(
                    getdel=0.08,
                    set_if_missing=0.08,
                    set_if_present=0.08,
                    pause=0.03,
                    reopen=0.01,
                    incr=0.04,
                    batch=0.05,
                    read_only_open=0.01,
                )
            ),
            faults=FaultPlan(crash_survival=CRASHES, fsync_gate=FsyncGate(probability=0.002)),
            durabilities=ALL_DURABILITIES,
            crash_probability=0.01,
            crash_during_recovery_probability=0.2,
            defining_faults=("crash_survival.prefix", "crash_survival.subset", "fsync_gate"),
        ),
        Scenario(
            "expiry",
            "TTLs on the virtual clock beside every write: sets with a TTL, expire (a time not in the future "
            "deletes), persist and ttl reads, ordered and cursor scans, pauses and clock jumps past expiries, "
            "compactions, under crashes and crashes during recovery: an expired key reads (and scans) as absent, "
            "a TTL counts from io.now(), and no expired or deleted key comes back after a crash or a compaction",
            mix=WorkloadMix(
                weighted(
                    set_ttl=0.15,
                    expire=0.06,
                    persist=0.03,
                    ttl=0.1,
                    pause=0.05,
                    clock_jump=0.01,
                    compact=0.03,
                    flush=0.02,
                    reopen=0.01,
                    scan=0.04,
                    scan_cursor=0.01,
                ),
                key_count=32,  # few keys: TTLs land on keys written before without one, and after
                long_pause_probability=0.01,
            ),
            faults=FaultPlan(crash_survival=CRASHES),
            durabilities=ALL_DURABILITIES,
            crash_probability=0.01,
            crash_during_recovery_probability=0.2,
            defining_faults=("crash_survival.prefix", "crash_survival.subset"),
        ),
        Scenario(
            "queue",
            "lists as queues beside every write: producers push (rpush, lpush, several elements at once), "
            "consumers pop from either end and read whole lists, with compactions, reopens, crashes, crashes "
            "during recovery and failing syncs: a push lands whole or not at all, an acknowledged pop never "
            "returns its element again, an unacknowledged one may or may not, and the order is kept",
            mix=WorkloadMix(
                weighted(
                    rpush=0.15,
                    lpush=0.05,
                    lpop=0.12,
                    rpop=0.04,
                    lrange=0.08,
                    llen=0.03,
                    compact=0.03,
                    flush=0.02,
                    pause=0.03,
                    reopen=0.01,
                )
            ),
            faults=FaultPlan(crash_survival=CRASHES, fsync_gate=FsyncGate(probability=0.002)),
            durabilities=ALL_DURABILITIES,
            crash_probability=0.01,
            crash_during_recovery_probability=0.2,
            defining_faults=("crash_survival.prefix", "crash_survival.subset", "fsync_gate"),
        ),
        Scenario(
            "server",
            "the command layer of `kv serve` under crashes and failing syncs: clients send RESP requests (SET, "
            "MSET, DEL, GET, GETDEL, INCRBY, RPUSH, LPOP, LRANGE, ..., sometimes cut in two, sometimes followed "
            "by malformed bytes) to sessions over one buffered store, and a group commit ends each window with "
            "one flush: every write whose reply was delivered survives, one never acknowledged is whole or absent, "
            "a window whose flush failed delivers only errors, and every read reply is the model's; clients log in "
            "through an ACL, one as a user restricted to some keys, whose refused requests must get NOPERM and change "
            "nothing, and some MSETs go as MULTI/SET.../EXEC, whole or absent after a crash",
            mix=WorkloadMix(
                weighted(
                    group_commit=0.25,
                    set_many=0.08,
                    getdel=0.03,
                    incr=0.05,
                    rpush=0.06,
                    lpush=0.02,
                    lpop=0.05,
                    rpop=0.02,
                    lrange=0.04,
                    llen=0.02,
                    flush=0.005,
                    compact=0.01,
                    pause=0.02,
                    reopen=0.005,
                ),
                # A value whose record nearly fills a frame: an EXEC holding one reaches
                # the frame-size target between its writes (`Store.holding`).
                target_frame_value_probability=0.01,
            ),
            faults=FaultPlan(
                crash_survival=CRASHES,
                torn_write=TORN,
                fsync_gate=FsyncGate(probability=0.005),
                operation_errors=OperationErrors(write_probability=0.001, sync_probability=0.003),
            ),
            # As `kv serve --durability always` runs the store: the group commit syncs. (Its
            # `batch` shape is not drawn yet: a recorded schedule of it did not replay.)
            durabilities=("none",),
            crash_probability=0.01,
            crash_during_recovery_probability=0.2,
            defining_faults=("crash_survival.prefix", "crash_survival.subset", "fsync_gate", "operation_errors.sync"),
            server=True,
        ),
        Scenario(
            "corruption",
            "bit flips on write and at rest, transient and sticky read corruption, with crashes: "
            "every loss reported, no wrong value",
            faults=MEDIA,
            crash_probability=0.005,
            defining_faults=("bit_flip.on_write", "bit_flip.at_rest", "read_corruption"),
        ),
        Scenario(
            "salvage",
            "the corruption scenario opened with on_corruption='salvage': every intact frame and record kept, "
            "and a key that may hold an older value than one lost is named",
            mix=WorkloadMix(weighted(compact=0.03, reopen=0.01)),
            faults=MEDIA,
            crash_probability=0.005,
            crash_during_recovery_probability=0.1,
            defining_faults=("bit_flip.on_write", "bit_flip.at_rest", "read_corruption"),
            on_corruption="salvage",
        ),
        Scenario(
            "completion_corruption",
            "damage to what marks completion: torn and flipped frame tails, hint and compacted files, "
            "crashes mid-compaction",
            mix=WorkloadMix(weighted(compact=0.1, flush=0.05, reopen=0.01)),
            faults=replace(
                MEDIA,
                bit_flip=BitFlip(on_write_probability=0.001, at_rest_probability=0.2),
                # per crash, per file: the last 64 bytes of its data (a last frame's header
                # or CRC, the CLEAN marker, a hint's or a compacted file's tail)
                tail_corruption=TailCorruption(probability=0.1, window_bytes=64),
            ),
            crash_probability=0.01,
            crash_during_recovery_probability=0.2,
            defining_faults=("tail_corruption", "bit_flip.at_rest"),
        ),
        Scenario(
            "massive",
            "large values and volumes, many segments and several compactions, with crashes",
            mix=WorkloadMix(weighted(compact=0.01), key_count=400, value_size_max_bytes=16 * 1024, batch_size_max=32),
            faults=FaultPlan(crash_survival=CRASHES),
            operations=1000,
            crash_probability=0.003,
            segment_size_target_bytes=256 * 1024,
            defining_faults=("crash_survival.prefix",),
        ),
        Scenario(
            "bulk",
            "megabytes between syncs in every durability mode (values up to 64 KiB, batches of up to 32, "
            "8 MiB segments), with crashes that keep any subset of the unsynced writes: full frames pile up "
            "unless each is synced, and a crash must lose only a suffix, never leave a hole that reads as damage",
            mix=WorkloadMix(weighted(compact=0.005), key_count=200, value_size_max_bytes=64 * 1024, batch_size_max=32),
            faults=FaultPlan(crash_survival=CRASHES),
            durabilities=ALL_DURABILITIES,
            operations=300,
            crash_probability=0.01,
            segment_size_target_bytes=8 * 1024 * 1024,
            defining_faults=("crash_survival.prefix", "crash_survival.subset"),
        ),
        Scenario(
            "random",
            "cosmic rays: bits flip in any file at any time",
            faults=FaultPlan(bit_flip=BitFlip(on_write_probability=0.003, at_rest_probability=0.3, bits_max=3)),
            crash_probability=0.005,
            defining_faults=("bit_flip.on_write", "bit_flip.at_rest"),
        ),
        Scenario(
            "truncation",
            "torn writes, size before data and prefix or subset survival of unsynced writes at every crash",
            mix=PAUSING,
            faults=FaultPlan(
                crash_survival=CrashSurvival(prefix_probability=0.5, subset_probability=0.4),
                torn_write=TornWrite(probability=0.5, sector_bytes=512, garbage_probability=0.5),
                size_before_data=SizeBeforeData(0.5),
            ),
            durabilities=ALL_DURABILITIES,
            crash_probability=0.02,
            defining_faults=("torn_write", "size_before_data", "crash_survival.prefix", "crash_survival.subset"),
        ),
        Scenario(
            "comprehensive",
            "every fault at once, stats and verify in the mix",
            mix=WorkloadMix(weighted(compact=0.03, verify=0.02, reopen=0.01)),
            faults=EVERYTHING,
            crash_probability=0.005,
            crash_during_recovery_probability=0.2,
            defining_faults=EVERY_FAULT,
        ),
        Scenario(
            "filesystem",
            "ENOSPC, EACCES, EROFS and EIO (transient and persistent) on every operation",
            mix=PAUSING,
            faults=FILESYSTEM,
            durabilities=ALL_DURABILITIES,
            crash_probability=0.002,
            defining_faults=(
                "operation_errors.open",
                "operation_errors.write",
                "operation_errors.sync",
                "permission_errors.write",
                "disk_full",
            ),
        ),
        Scenario(
            "fsyncgate",
            "syncs fail once and drop the dirty pages; a later sync 'succeeds'; crashes follow",
            mix=PAUSING,
            faults=FaultPlan(fsync_gate=FsyncGate(probability=0.01), crash_survival=CRASHES),
            durabilities=ALL_DURABILITIES,
            crash_probability=0.01,
            defining_faults=("fsync_gate",),
        ),
        Scenario(
            "swarm",
            "a random half of all the faults and a durability mode per seed (swarm testing)",
            mix=PAUSING,
            faults=EVERYTHING,
            durabilities=ALL_DURABILITIES,
            crash_probability=0.005,
            swarm=True,
            defining_faults=EVERY_FAULT,  # those the seed's half of the faults can fire
        ),
        Scenario(
            "edges",
            "workloads at the documented bounds, with crashes: bursts past BATCH_OPERATIONS_MAX, idle past "
            "BATCH_INTERVAL_MS_MAX, empty and maximal values, full frames, set_many of thousands of keys, "
            "colliding keys (empty, shared prefixes, maximal length)",
            mix=WorkloadMix(
                weighted(pause=0.03),
                key_count=6,  # a tiny key space, plus the colliding EDGE_KEYS
                edge_keys=True,
                empty_value_probability=0.1,
                maximal_value_probability=0.0001,
                target_frame_value_probability=0.002,
                full_frame_probability=0.00005,
                many_keys_probability=0.002,
                burst_probability=0.004,
                long_pause_probability=0.01,
            ),
            faults=FaultPlan(crash_survival=CRASHES),
            durabilities=ALL_DURABILITIES,
            operations=1500,  # room for a burst past BATCH_OPERATIONS_MAX; a full 64 MiB frame costs seconds
            crash_probability=0.005,
            crash_during_recovery_probability=0.2,
            defining_faults=("crash_survival.prefix", "crash_survival.subset"),
        ),
    )
}
