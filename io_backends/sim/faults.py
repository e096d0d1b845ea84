"""The fault catalogue of the simulated disk.

Every fault is a frozen dataclass whose fields are probabilities (default zero: off),
each documented with the moment it is drawn. `FaultPlan` bundles one of each; the
`FaultInjector` makes every decision from the run's seeded `random.Random` (its
`rng`, which `SimIo.begin_stream` may swap for a per-step stream) and
counts, per fault, how often it fired against how often it could have fired, so a run
can report its achieved rate beside the configured one. A fault that alters stored bytes
tells the file's damage ledger (`damage.py`) what a fault-free disk would hold instead;
a fault the caller is told about (an error) or that leaves the stored bytes right (a
transient read corruption, a short read) is not damage.

| fault | drawn | effect |
|---|---|---|
| `CrashSurvival` | per crash, per file | a prefix, or any subset, of the unsynced changes survives (default: none) |
| `TornWrite` | per surviving multi-sector write | some sectors persist; the rest keep old bytes or get garbage |
| `SizeBeforeData` | per surviving write that extends a file | the new size persists, the data reads as zeros |
| `BitFlip` | per write / per crash | bits flip in the stored bytes / in a random durable file |
| `ReadCorruption` | per read | a bit flips in the returned bytes; sticky ones flip the stored bytes too |
| `LatentSectorError` | per write | one sector of it becomes unreadable (EIO) until rewritten |
| `MisdirectedWrite` | per write | the data lands elsewhere in the file; the target keeps its old bytes |
| `LostWrite` | per write | acknowledged and readable until a crash, but never stored, even when synced |
| `ShortRead` | per read | fewer bytes than asked |
| `OperationErrors` | per operation | EIO on open/read/write/sync/rename/unlink, transient or persistent per path |
| `PermissionErrors` | per open for writing / per write | EACCES on open, EROFS (or EPERM) on write |
| `FsyncGate` | per sync | the sync fails with EIO once and the dirty pages are dropped; a later sync "succeeds" |
| `DiskFull` | per write that grows the disk | ENOSPC past the capacity |
| `Latency` | per operation | extra virtual latency, so completions reorder |
| `TailCorruption` | per crash, per surviving file | a bit flips near the end of its data (what marks completion) |
| `EntryLoss` | per crash | one file's durable directory entry is lost, and the file with it |
| `LostTruncate` | per truncate | seen until a crash, but the new size is never stored, even when synced |
| `TailBurst` | per crash, per surviving file | two bits flip at independent places in the last sectors of its data |
| `FlyingWrite` | per crash, per file | its newest write, unsynced and surviving, lands where the one before it went |

`DiskFull` (ENOSPC past a capacity; switching it off frees the space) can also be set on
the disk itself as `SimDisk(capacity_bytes=...)`. Directory entries
that are durable only after `sync_dir` and crashes at any point are built into the
disk model and `SimIo`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

from io_backends.sim.changes import PendingWrite, fault_free
from io_backends.sim.disk import EntryChange, Inode


@dataclass(frozen=True)
class CrashSurvival:
    prefix_probability: float = 0.0  # per crash, per file: a random prefix of its unsynced changes survives
    subset_probability: float = 0.0  # per crash, per file: each unsynced change survives with probability 1/2


@dataclass(frozen=True)
class TornWrite:
    probability: float = 0.0  # per surviving multi-sector write: only a random subset of its sectors persists
    sector_bytes: int = 512  # 512 or 4096
    garbage_probability: float = 0.0  # per torn write: the sectors that did not persist hold random bytes


@dataclass(frozen=True)
class SizeBeforeData:
    probability: float = 0.0  # per surviving write past the durable end: size persists, data is zeros


@dataclass(frozen=True)
class BitFlip:
    on_write_probability: float = 0.0  # per write: flip bits in the bytes stored
    at_rest_probability: float = 0.0  # per crash: flip bits in a random durable file
    bits_max: int = 1


@dataclass(frozen=True)
class ReadCorruption:
    probability: float = 0.0  # per read: one bit of the returned bytes flips
    sticky_probability: float = 0.0  # per corrupted read: the stored byte flips too, until rewritten


@dataclass(frozen=True)
class LatentSectorError:
    probability: float = 0.0  # per write: one sector it covers reads as EIO until rewritten
    sector_bytes: int = 512


@dataclass(frozen=True)
class MisdirectedWrite:
    probability: float = 0.0  # per write: it lands a whole number of sectors away
    sector_bytes: int = 512


@dataclass(frozen=True)
class LostWrite:
    probability: float = 0.0  # per write: never stored, though acknowledged and synced


@dataclass(frozen=True)
class ShortRead:
    probability: float = 0.0  # per read of more than one byte: a shorter prefix comes back


@dataclass(frozen=True)
class OperationErrors:
    open_probability: float = 0.0  # per open: EIO
    read_probability: float = 0.0  # per read: EIO
    write_probability: float = 0.0  # per write: EIO, nothing written
    sync_probability: float = 0.0  # per sync: EIO (the dirty data stays dirty)
    rename_probability: float = 0.0  # per rename: EIO, nothing renamed
    unlink_probability: float = 0.0  # per unlink: EIO, nothing removed
    persistent_probability: float = 0.0  # per error: it recurs for that operation on that path


@dataclass(frozen=True)
class PermissionErrors:
    open_probability: float = 0.0  # per open for writing: EACCES
    write_probability: float = 0.0  # per write: EROFS (the file system went read-only)


@dataclass(frozen=True)
class FsyncGate:
    probability: float = 0.0  # per sync: EIO once, dirty pages dropped (never written)


@dataclass(frozen=True)
class DiskFull:
    capacity_bytes: int = 0  # when nonzero: writes past this many bytes on the disk fail with ENOSPC


@dataclass(frozen=True)
class Latency:
    jitter_us_max: int = 0  # per operation: up to this much extra virtual latency


@dataclass(frozen=True)
class TailCorruption:
    """Damage to what marks completion, whatever the format: a power loss garbles the
    last bytes a file holds (the sector being written, a marker's checksum).

    At each crash, for each file that survives it and holds any nonzero byte, with
    `probability` one bit flips at a random position within the last `window_bytes`
    bytes of its data, in the durable bytes (and so in what is read after the crash).
    "Its data" ends at its last nonzero byte: trailing zeros (preallocated or never
    written) do not count, so a preallocated log is hit in its last frame, not in its
    free space. Files of zeros only are not opportunities.
    """

    probability: float = 0.0  # per crash, per surviving file with data: one bit of its tail flips
    window_bytes: int = 64  # how far from the end of the file's data the bit may be


@dataclass(frozen=True)
class EntryLoss:
    """File-system metadata damage: a power loss takes a durable directory entry with
    it (what fsck leaves in lost+found, or a journal replay that missed a block), so a
    file the store synced, and whose directory it synced, is gone after the crash.

    At each crash, with `probability`, one file of the disk (picked uniformly among every
    directory's entries) loses its entry and its data. The loss is damage: the ledger
    keeps it at the file's path, its whole length, until a file of that name exists again.
    """

    probability: float = 0.0  # per crash: one random file's durable entry is lost


@dataclass(frozen=True)
class LostTruncate:
    """A lost metadata write: the device acknowledges the block holding the file's new
    size (a truncate), then never stores it, even across a sync that covered it (as
    `LostWrite` for data). Readers see the new size until a crash; after it the file
    has its old length again, and the bytes past the cut are back: the zeros a log
    preallocated past its last frame, a torn frame recovery cut away.

    The fault-free disk cuts the file: the ledger holds the bytes past the cut as damage
    (of kind "lost_truncate", where the twin's file has already ended).
    """

    probability: float = 0.0  # per truncate: the size change is never made durable


@dataclass(frozen=True)
class TailBurst:
    """Power-loss damage to data written before the last write: on MLC and TLC flash a
    cell programmed when the power fails disturbs its paired page, which holds data
    written (and synced) earlier, so a crash can corrupt acknowledged bytes a few
    hundred bytes or kilobytes before the end of a file; several of a log's last frames.

    At each crash, for each file that survives it and holds any nonzero byte, with
    `probability` two bits flip, at independent random positions within the last
    `window_bytes` of its data (which, as for `TailCorruption`, ends at its last nonzero
    byte). Two flips, not more: each damaged frame of a log then keeps evidence that
    the damage is not one torn frame (its own header or records, or the next one's);
    more flips in a window of a few frames can erase that evidence.
    """

    probability: float = 0.0  # per crash, per surviving file with data: two bits of its tail flip
    window_bytes: int = 256  # how far from the end of the file's data the bits may be


@dataclass(frozen=True)
class FlyingWrite:
    """A write in progress at the power loss lands whole, but in the wrong place (the
    "flying writes" of Zheng et al., "Understanding the Robustness of SSDs under Power
    Fault", FAST 2013): here at the offset of the file's write before it, as if the
    device reused a stale address, over what that write stored. Where the write was
    meant to go keeps its old bytes.

    At each crash, for each file whose newest write is not yet synced, survives the crash
    and is not the file's first write since the last crash, with `probability` it lands
    at the offset of the write before it (when that offset differs). The ledger holds
    both ranges as damage (kind "flying_write").
    """

    probability: float = 0.0  # per crash, per file whose newest write survives unsynced


# Settings that shape a fault but do not switch it on.
_SHAPE_FIELDS = ("sector_bytes", "bits_max", "window_bytes")


# The faults that may destroy or alter acknowledged bytes (`FaultPlan` field names).
DAMAGING_FAULTS = frozenset(
    {
        "bit_flip",
        "read_corruption",
        "latent_sector_error",
        "misdirected_write",
        "lost_write",
        "tail_corruption",
        "entry_loss",
        "lost_truncate",
        "tail_burst",
        "flying_write",
    }
)


@dataclass(frozen=True)
class FaultPlan:
    """One of each fault; all off by default."""

    crash_survival: CrashSurvival = field(default_factory=CrashSurvival)
    torn_write: TornWrite = field(default_factory=TornWrite)
    size_before_data: SizeBeforeData = field(default_factory=SizeBeforeData)
    bit_flip: BitFlip = field(default_factory=BitFlip)
    read_corruption: ReadCorruption = field(default_factory=ReadCorruption)
    latent_sector_error: LatentSectorError = field(default_factory=LatentSectorError)
    misdirected_write: MisdirectedWrite = field(default_factory=MisdirectedWrite)
    lost_write: LostWrite = field(default_factory=LostWrite)
    short_read: ShortRead = field(default_factory=ShortRead)
    operation_errors: OperationErrors = field(default_factory=OperationErrors)
    permission_errors: PermissionErrors = field(default_factory=PermissionErrors)
    fsync_gate: FsyncGate = field(default_factory=FsyncGate)
    disk_full: DiskFull = field(default_factory=DiskFull)
    latency: Latency = field(default_factory=Latency)
    tail_corruption: TailCorruption = field(default_factory=TailCorruption)
    entry_loss: EntryLoss = field(default_factory=EntryLoss)
    lost_truncate: LostTruncate = field(default_factory=LostTruncate)
    tail_burst: TailBurst = field(default_factory=TailBurst)
    flying_write: FlyingWrite = field(default_factory=FlyingWrite)

    def damages_data(self) -> bool:
        """True when a fault may destroy or alter acknowledged bytes (then the store may
        lose data, but must report it)."""
        return any(name in DAMAGING_FAULTS for name in self.enabled())

    def enabled(self) -> list[str]:
        """Names of the faults with any nonzero setting (sizes that only shape a fault,
        such as sector sizes, do not count)."""
        names = []
        for item in fields(self):
            fault = getattr(self, item.name)
            if any(getattr(fault, f.name) for f in fields(fault) if f.name not in _SHAPE_FIELDS):
                names.append(item.name)
        return names


@dataclass
class FaultCount:
    fired: int = 0
    opportunities: int = 0
    configured_probability: float = 0.0

    @property
    def achieved_probability(self) -> float:
        return self.fired / self.opportunities if self.opportunities else 0.0


class FaultInjector:
    """Draws every fault decision from one seeded RNG and counts what fired."""

    def __init__(self, plan: FaultPlan, rng: random.Random) -> None:
        self._rng: random.Random | None = rng
        self._stream_seed = ""  # what `rng` is seeded with when it is built (`begin_stream`)
        self.counts: dict[str, FaultCount] = {}
        self.persistent_errors: set[tuple[str, str]] = set()  # (operation, path)
        self.forced: dict[str, int] = {}  # fault name -> how many more opportunities fire for certain
        self._plan = plan
        self.quiet = True
        self.jitter_us_max = 0
        self.plan = plan

    @property
    def rng(self) -> random.Random:
        """The RNG every decision is drawn from; after `begin_stream`, built at the first
        draw (a step that draws nothing, most of them when no fault is on, pays nothing)."""
        rng = self._rng
        if rng is None:
            rng = self._rng = random.Random(self._stream_seed)
        return rng

    @rng.setter
    def rng(self, rng: random.Random) -> None:
        self._rng = rng

    def begin_stream(self, seed: str) -> None:
        """Draw from `random.Random(seed)` from now on: the same draws as building it now,
        built only when something draws (seeding from a string hashes it, then fills the
        Mersenne Twister's state: several microseconds, once per step)."""
        self._rng = None
        self._stream_seed = seed

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        """Switch plans (the harness pauses faults while it reads, the liveness phase
        turns them off) and recompute what the hot paths check per operation."""
        self._plan = plan
        # No fault can fire: the backend may skip its draws (each would draw nothing).
        self.quiet = not plan.enabled() and not self.forced
        self.jitter_us_max = plan.latency.jitter_us_max

    def force(self, name: str, times: int = 1) -> None:
        """Make the next `times` opportunities of fault `name` fire, whatever the plan
        says (a test's "the next sync of dirty data fails"). `name` is a `draw` name:
        `"fsync_gate"`, `"lost_write"`, `"operation_errors.write"`, ...; a forced fault
        draws nothing from the RNG."""
        assert times > 0, times
        self.forced[name] = self.forced.get(name, 0) + times
        self.quiet = False

    def unforce(self) -> None:
        """Drop every forced fault not yet fired."""
        self.forced.clear()
        self.plan = self._plan

    def draw(self, name: str, probability: float) -> bool:
        """One Bernoulli decision for fault `name`; zero probabilities draw nothing, so
        switching a fault off leaves every other decision of the run unchanged."""
        if self.forced and name in self.forced:
            return self._fire_forced(name, probability)
        if probability <= 0.0:
            return False
        count = self.counts.setdefault(name, FaultCount(configured_probability=probability))
        count.opportunities += 1
        fired = self.rng.random() < probability
        count.fired += fired
        return fired

    def _fire_forced(self, name: str, probability: float) -> bool:
        left = self.forced.pop(name) - 1
        if left:
            self.forced[name] = left
        elif not self.forced:
            self.plan = self._plan  # nothing forced any more: quiet again if the plan is
        count = self.counts.setdefault(name, FaultCount(configured_probability=probability))
        count.opportunities += 1
        count.fired += 1
        return True

    def flip_bits(self, data: bytearray, start: int = 0, end: int | None = None) -> None:
        """Flip 1..bits_max random bits of `data[start:end]` in place."""
        for position, bit in self.bits_to_flip(start, len(data) if end is None else end):
            data[position] ^= bit

    def bits_to_flip(self, start: int, end: int) -> list[tuple[int, int]]:
        """1..bits_max random `(position, bit mask)` in `[start, end)`, drawn in order."""
        if end <= start:
            return []
        return [
            (self.rng.randrange(start, end), 1 << self.rng.randrange(8))
            for _ in range(self.rng.randint(1, max(1, self.plan.bit_flip.bits_max)))
        ]

    # -- crash ---------------------------------------------------------------------------

    def survivors(self, inode: Inode) -> list[PendingWrite]:
        """Which unsynced changes of `inode` reach the platter at a crash, as altered by
        torn writes and size-before-data."""
        chosen = self.surviving(inode)
        if not chosen:
            return []
        durable_end = len(inode.durable)
        altered = []
        for change in chosen:
            extends = change.truncate_to is None and change.offset + len(change.data) > durable_end
            if extends and self.draw("size_before_data", self.plan.size_before_data.probability):
                change = PendingWrite(
                    change.offset, bytes(len(change.data)), None, False, fault_free(change), "size_before_data"
                )
            altered.append(self._maybe_torn(inode, change))
            durable_end = max(durable_end, change.offset + len(change.data))
        if chosen[-1] is inode.unsynced[-1]:
            altered[-1] = self._maybe_flying(inode, altered[-1])
        return altered

    def _maybe_flying(self, inode: Inode, change: PendingWrite) -> PendingWrite:
        """The file's newest write, surviving a crash: maybe a flying write (see
        `FlyingWrite`), landing at the offset of the write before it."""
        previous = inode.previous_write_offset
        if change.truncate_to is not None or previous < 0 or previous == change.offset or not change.data:
            return change
        if not self.draw("flying_write", self.plan.flying_write.probability):
            return change
        return PendingWrite(previous, change.data, None, False, fault_free(change), "flying_write")

    def surviving(self, inode: Inode) -> list[PendingWrite]:
        """The crash-survival decision alone: which unsynced changes of `inode` (never a
        lost write) survive, unaltered, in order (a fault-free disk may decide the same)."""
        pending = [change for change in inode.unsynced if not change.lost]
        if not pending:
            return []
        survival = self.plan.crash_survival
        subset_first = "crash_survival.subset" in self.forced  # a forced subset is not preempted
        if not subset_first and self.draw("crash_survival.prefix", survival.prefix_probability):
            return pending[: self.rng.randrange(len(pending) + 1)]
        if self.draw("crash_survival.subset", survival.subset_probability):
            return [change for change in pending if self.rng.random() < 0.5]
        return []

    def entry_survivors(self, pending: list[EntryChange]) -> list[EntryChange]:
        """Which directory changes not yet covered by a `sync_dir` persist at a crash: a
        prefix, or any subset (out of order), by the same `CrashSurvival` odds."""
        if not pending:
            return []
        survival = self.plan.crash_survival
        if self.draw("crash_survival.directory_prefix", survival.prefix_probability):
            return pending[: self.rng.randrange(len(pending) + 1)]
        if self.draw("crash_survival.directory_subset", survival.subset_probability):
            return [change for change in pending if self.rng.random() < 0.5]
        return []

    def _maybe_torn(self, inode: Inode, change: PendingWrite) -> PendingWrite:
        torn = self.plan.torn_write
        sector = torn.sector_bytes
        if change.truncate_to is not None or len(change.data) <= sector:
            return change
        if not self.draw("torn_write", torn.probability):
            return change
        garbage = self.draw("torn_write.garbage", torn.garbage_probability)
        old = inode.durable[change.offset : change.offset + len(change.data)]
        old += bytes(len(change.data) - len(old))
        mixed = bytearray(change.data)
        for start in range(0, len(mixed), sector):
            if self.rng.random() < 0.5:  # this sector did not persist
                end = min(start + sector, len(mixed))
                mixed[start:end] = self.rng.randbytes(end - start) if garbage else old[start:end]
        return PendingWrite(change.offset, bytes(mixed), None, False, fault_free(change), "torn_write")

    def flip_at_rest(self, inodes: list[Inode]) -> None:
        """Per crash: maybe flip bits in one random non-empty durable file."""
        candidates = [inode for inode in inodes if inode.durable]
        if candidates and self.draw("bit_flip.at_rest", self.plan.bit_flip.at_rest_probability):
            inode = self.rng.choice(candidates)
            for position, bit in self.bits_to_flip(0, len(inode.durable)):
                inode.flip(position, bit, "bit_flip.at_rest", data=False)

    def corrupt_tails(self, inodes: list[Inode]) -> None:
        """Per crash, after it (see `TailCorruption`): maybe flip one bit near the end of
        each surviving file's data, in its durable bytes and its page cache alike."""
        tail = self.plan.tail_corruption
        for inode, start, end in self._tails(inodes, "tail_corruption", tail.probability, tail.window_bytes):
            inode.flip(self.rng.randrange(start, end), 1 << self.rng.randrange(8), "tail_corruption")

    def burst_tails(self, inodes: list[Inode]) -> None:
        """Per crash, after it (see `TailBurst`): maybe flip two bits near the end of each
        surviving file's data, in its durable bytes and its page cache alike."""
        burst = self.plan.tail_burst
        for inode, start, end in self._tails(inodes, "tail_burst", burst.probability, burst.window_bytes):
            for _ in range(2):
                inode.flip(self.rng.randrange(start, end), 1 << self.rng.randrange(8), "tail_burst")

    def _tails(
        self, inodes: list[Inode], name: str, probability: float, window_bytes: int
    ) -> Iterator[tuple[Inode, int, int]]:
        """Each file with data whose draw of fault `name` fires, with the window
        `[start, end)` of its last `window_bytes` bytes of data (nothing when off)."""
        if probability <= 0.0:
            return
        for inode in inodes:
            end = _data_end(inode.durable)
            if end and self.draw(name, probability):
                yield inode, max(0, end - max(1, window_bytes)), end

    def lose_entry(self, files: list[tuple[str, int]]) -> tuple[str, int] | None:
        """Per crash (see `EntryLoss`): maybe the (path, size) of the one file, of
        `files`, whose entry the crash takes; None when it takes none."""
        if not files or not self.draw("entry_loss", self.plan.entry_loss.probability):
            return None
        return files[self.rng.randrange(len(files))]

    def report(self) -> dict[str, FaultCount]:
        return dict(sorted(self.counts.items()))


# `_data_end` looks for the last nonzero byte this many bytes at a time, from the end, so
# a long zero tail is never copied whole.
_ZERO_SCAN_BLOCK_BYTES = 4096


def _data_end(data: bytearray) -> int:
    """The length of `data` without its trailing zeros."""
    end = len(data)
    while end > 0:
        start = max(0, end - _ZERO_SCAN_BLOCK_BYTES)
        kept = len(data[start:end].rstrip(b"\0"))
        if kept:
            return start + kept
        end = start
    return 0
