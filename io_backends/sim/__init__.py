"""The simulated backend: an in-memory disk, a virtual clock, seeded completion order.

`SimIo` is one process's view of a `SimDisk`; two `SimIo` on one disk are two processes
(they contend for locks). Every operation is queued with a virtual latency and completes
when driven; among queued operations the next to complete is chosen by the run's one
`random.Random(seed)`, subject to the contract's only ordering rule: a `sync` waits for
the writes and truncates issued before it on the same file. The clock advances to each
completion's time, so `now()` is deterministic.

`crash()` simulates power loss (see `disk.py`): volatile bytes and non-durable directory
entries vanish, queued operations are dropped, handles and locks die.

`begin_stream(k)` switches every later decision to an RNG derived from `(seed, k)`, so a
step that opens its own stream decides the same whatever the steps before it did (faults
that survive shrinking). `damage()` lists what the faults left wrong on the disk (see
`damage.py`), so an oracle can tell a reported loss that real damage explains from one
it does not.
"""

from __future__ import annotations

import errno
import posixpath
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from io_backends.sim.changes import PendingWrite
from io_backends.sim.damage import Damage
from io_backends.sim.disk import Directory, Inode, SimDisk
from io_backends.sim.faults import FaultInjector, FaultPlan
from kv.errors import IoError
from kv.io import File, Future, Io, OpenMode

__all__ = ["Damage", "FaultPlan", "SimDisk", "SimIo", "SimLatency", "SimulatedCrash"]


class SimulatedCrash(Exception):
    """Raised out of a driven future when the planned crash point is reached.

    Not a `KvError`: the store must not handle it, just as a real process does not
    handle losing power. The disk has already crashed when it is raised.
    """


@dataclass(frozen=True)
class SimLatency:
    """Virtual service time of each operation kind, in microseconds."""

    read_us: int = 20
    write_us: int = 20
    sync_us: int = 110  # an fdatasync measured on the development machine
    metadata_us: int = 30


@dataclass
class _Handle:
    inode: Inode
    generation: int
    writable: bool
    closed: bool = False
    lock_path: str | None = None


class _Operation(NamedTuple):
    """One queued call: `run(*arguments)` completes it into `future`.

    Built with `_new_operation` (the C-level `tuple.__new__`): the simulator queues one
    per I/O, so its construction is on the hot path.
    """

    kind: str
    file_key: int | None  # inode number the op orders against, None for none
    ready_time_us: int
    run: Callable[..., Any]
    arguments: tuple[Any, ...]
    future: Future[Any]


_new_operation = tuple.__new__


# Kinds a later `sync` of the same file waits for (invariant 3 of the contract).
_ORDERED_BEFORE_SYNC = frozenset({"write", "truncate"})
# The damage kind of a file whose reads fail persistently (`OperationErrors`): to the
# store, two reads that both fail look like a bad sector, so while it lasts it is damage.
PERSISTENT_READ_ERROR = "operation_errors.persistent.read"


_OPEN_MODES = ("r", "w", "x")


class SimIo:
    """`kv.io.Io` on a `SimDisk`. `seed` fixes the completion order and the clock."""

    name = "sim"

    def __init__(
        self,
        seed: int = 0,
        disk: SimDisk | None = None,
        latency: SimLatency | None = None,
        faults: FaultPlan | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.seed = seed
        self.disk = disk if disk is not None else SimDisk()
        # Every decision (completion order, latency, faults) comes from this one RNG; pass
        # `rng` to draw them from elsewhere (a hypothesis `st.randoms()`, so they shrink).
        # `begin_stream` swaps it for one derived from (seed, stream), unless `rng` was given.
        self._rng_given = rng is not None
        self.faults = FaultInjector(
            faults if faults is not None else FaultPlan(), rng if rng is not None else random.Random(seed)
        )
        self.latency = latency if latency is not None else SimLatency()
        self.clock_us = 0
        self.operations_completed = 0
        self._queue: list[_Operation] = []
        self._driver = self._drive  # one bound method for every future
        self._owner = id(self)
        self.crash_at_operation: int | None = None  # crash instead of completing op N
        self.crash_before_sync = False  # crash once a data sync may complete next, before it does
        # Every damage a fault left as it fired during a read or write, in order (the
        # caller clears it): `damage()` shows what is damaged now, this what ever was,
        # even after the store moved or cut the damaged bytes (a repair).
        self.damage_events: list[Damage] = []
        self.on_crash: Callable[[], None] | None = None  # called first thing in every crash (a harness's look)

    @property
    def random(self) -> random.Random:
        """The one RNG of every decision (shared with `faults`; see `begin_stream`)."""
        return self.faults.rng

    @random.setter
    def random(self, rng: random.Random) -> None:
        self.faults.rng = rng

    # -- clock and driving -------------------------------------------------------------

    def now(self) -> float:
        return self.clock_us / 1_000_000

    def pause(self, microseconds: int) -> None:
        """Let virtual time pass with nothing to do (an idle client between requests)."""
        assert microseconds >= 0, microseconds
        self.clock_us += microseconds

    def faults_off(self) -> None:
        """Switch every fault off (the liveness phase): persistent errors clear too."""
        self.faults.plan = FaultPlan()
        self.faults.persistent_errors.clear()
        self.faults.unforce()

    def _submit(
        self, kind: str, file_key: int | None, latency_us: int, run: Callable[..., Any], *arguments: Any
    ) -> Future[Any]:
        """Queue `run(*arguments)`; it runs when the seeded order picks it (see `_drive`)."""
        jitter = self.faults.jitter_us_max
        if jitter:
            latency_us += self.random.randrange(jitter + 1)
        future: Future[Any] = Future(self._driver)
        self._queue.append(
            _new_operation(_Operation, (kind, file_key, self.clock_us + latency_us, run, arguments, future))
        )
        return future

    def _submit_file(
        self, kind: str, file: File, latency_us: int, run: Callable[..., Any], arguments: tuple[Any, ...]
    ) -> Future[Any]:
        """`_submit` for an operation on an open file (read, write, sync: the I/Os of every
        durable write and every read), in one call: the file's key, the jitter and the
        queue entry without `_key` or packing the arguments again."""
        handle = file.handle
        jitter = self.faults.jitter_us_max
        if jitter:
            latency_us += self.random.randrange(jitter + 1)
        future: Future[Any] = Future(self._driver)
        key = handle.inode.number if type(handle) is _Handle else None
        self._queue.append(_new_operation(_Operation, (kind, key, self.clock_us + latency_us, run, arguments, future)))
        return future

    def _eligible(self) -> list[int]:
        """Indexes (in issue order) of the queued operations that may complete next: all
        but a `sync` behind an earlier write or truncate of the same file. (`_drive`
        decides a queue of one or two operations inline, with the same outcome.)"""
        queue = self._queue
        blocked: set[int | None] = set()
        eligible = []
        for index, operation in enumerate(queue):  # in issue order
            kind = operation.kind
            if kind == "sync" and operation.file_key in blocked:
                continue
            eligible.append(index)
            if kind in _ORDERED_BEFORE_SYNC and operation.file_key is not None:
                blocked.add(operation.file_key)
        return eligible

    def _sync_ready(self) -> bool:
        """A queued `sync` is eligible (no write or truncate of its file queued before it)."""
        blocked: set[int | None] = set()
        for operation in self._queue:
            kind = operation.kind
            if kind == "sync" and operation.file_key not in blocked:
                return True
            if kind in _ORDERED_BEFORE_SYNC and operation.file_key is not None:
                blocked.add(operation.file_key)
        return False

    def _drive(self) -> None:
        """Complete one queued operation, chosen by the seeded RNG among the eligible."""
        queue = self._queue
        assert queue, "driving with nothing queued: the future belongs to a crashed run"
        if self.crash_at_operation is not None and self.operations_completed >= self.crash_at_operation:
            self.crash_at_operation = None
            self.crash()
            raise SimulatedCrash(f"crash planned at operation {self.operations_completed}")
        if self.crash_before_sync and self._sync_ready():
            # A data sync could complete next: the writes before it completed and are not
            # yet durable. (Decided before the completion order is drawn, so a replay that
            # crashes after this many operations draws the same.)
            self.crash_before_sync = False
            self.crash()
            raise SimulatedCrash(f"crash planned before a sync, at operation {self.operations_completed}")
        count = len(queue)
        if count == 1:
            operation = queue.pop()
        elif count == 2:  # the common case (a frame's write, then its sync), decided inline
            first, second = queue
            key = first.file_key
            # the sync waits for the write before it; otherwise either may complete first
            waits = second.kind == "sync" and key is not None and key == second.file_key
            operation = queue.pop(0 if waits and first.kind in _ORDERED_BEFORE_SYNC else self.random.randrange(2))
        else:
            eligible = self._eligible()
            index = eligible[self.random.randrange(len(eligible))] if len(eligible) > 1 else eligible[0]
            operation = queue.pop(index)
        _kind, _file_key, ready_time_us, run, arguments, future = operation
        if ready_time_us > self.clock_us:
            self.clock_us = ready_time_us
        self.operations_completed += 1
        try:
            value = run(*arguments)
        except IoError as error:
            future.set_error(error)
        else:
            future.set_result(value)

    def drain(self) -> None:
        """Complete every queued operation."""
        while self._queue:
            self._drive()

    def shutdown(self) -> None:
        self.drain()

    def crash(self) -> None:
        """Power loss for the whole disk; this process's queued operations vanish."""
        if self.on_crash is not None:
            self.on_crash()
        for operation in self._queue:
            operation.future.set_error(IoError(errno.EIO, "lost in a crash", None, operation.kind))
        self._queue.clear()
        self.faults.flip_at_rest(list(self.disk.inodes.values()))
        self.disk.crash(self.faults.survivors, self.faults.entry_survivors)
        survived = list(self.disk.inodes.values())
        self.faults.corrupt_tails(survived)
        self.faults.burst_tails(survived)
        lost = self.faults.lose_entry([(path, len(inode.data)) for path, inode in self.disk.files()])
        if lost is not None:
            self.disk.lose(lost[0])

    def begin_stream(self, stream: int) -> None:
        """From now on draw every decision (faults, latency, completion order) from a
        fresh RNG derived from `(seed, stream)` only, until the next call: a step that
        opens its own stream makes the same decisions whatever the steps before it did,
        so a shrinker can delete steps without moving later faults. A string seed is
        hashed with SHA-512 by `random`, so the stream does not depend on PYTHONHASHSEED.

        An io built with `rng=` (a hypothesis `st.randoms()`) ignores the call: its
        decisions belong to hypothesis, which shrinks them itself; deriving streams from
        `seed` would take them out of its hands.
        """
        if self._rng_given:
            return
        self.faults.begin_stream(f"{self.seed}/{stream}")  # built when first drawn from

    # -- damage ledger -------------------------------------------------------------------

    def damage(self, path: str | None = None) -> list[Damage]:
        """The damage on the disk now (`damage.py`): byte ranges where a reader of a file
        gets what a fault-free disk would not return, or an error (a latent sector
        error, or a persistent read error: the whole file, until the faults clear);
        sorted by (path, offset). `path` limits it to one file."""
        if path is None:
            files = list(self.disk.files())
            lost = [name for name in self.disk.lost if self.disk.lookup(name) is None]
        else:
            inode = self.disk.lookup(path)
            files = [] if inode is None else [(self.disk.normalize(path), inode)]
            lost = [self.disk.normalize(path)] if inode is None and self.disk.normalize(path) in self.disk.lost else []
        sector = self.faults.plan.latent_sector_error.sector_bytes
        found = []
        for name, inode in files:
            ranges = inode.damage()
            length = len(inode.data)
            for number in inode.bad_sectors:
                start, end = number * sector, min((number + 1) * sector, length)
                if start < end:
                    ranges.append((start, end, "latent_sector_error"))
            found.extend(_merged(name, ranges))
            if ("read", name) in self.faults.persistent_errors:  # every read of it fails: as if every sector
                found.append(Damage(name, 0, max(length, 1), PERSISTENT_READ_ERROR))
        # A file an EntryLoss took: damaged whole (at least one byte), until one of that
        # name exists again.
        found += [Damage(name, 0, max(self.disk.lost[name], 1), "entry_loss") for name in lost]
        return sorted(found, key=lambda d: (d.path, d.offset, d.length, d.kind))

    def damaged(self, path: str, start: int, end: int) -> bool:
        """True when any damage of the file at `path` overlaps `[start, end)`."""
        return any(d.offset < end and start < d.offset + d.length for d in self.damage(path))

    # -- helpers -------------------------------------------------------------------------

    def _handle(self, file: File, operation: str) -> _Handle:
        handle = file.handle
        assert isinstance(handle, _Handle), file
        if handle.closed or handle.generation != self.disk.generation:
            raise IoError(errno.EBADF, "Bad file descriptor", file.path, operation)
        return handle

    def _maybe_fail(self, operation: str, path: str, probability: float, number: int = errno.EIO) -> None:
        """Raise the operation's injected error (and keep raising it when persistent)."""
        if probability <= 0.0 and not self.faults.persistent_errors:
            return  # the common case, kept cheap: no draw, no path normalization
        key = (operation, self.disk.normalize(path))
        if key in self.faults.persistent_errors:
            raise IoError(number, "Input/output error (persistent)", path, operation)
        if self.faults.draw(f"operation_errors.{operation}", probability):
            if self.faults.draw(
                "operation_errors.persistent", self.faults.plan.operation_errors.persistent_probability
            ):
                self.faults.persistent_errors.add(key)
                if operation == "read":  # two reads now agree, as over a bad sector: damage while it lasts
                    self.damage_events += [d for d in self.damage(path) if d.kind == PERSISTENT_READ_ERROR]
            raise IoError(number, "Input/output error", path, operation)

    def _directory(self, path: str, operation: str) -> Directory:
        directory = self.disk.directories.get(self.disk.normalize(path))
        if directory is None:
            raise IoError(errno.ENOENT, "No such file or directory", path, operation)
        return directory

    def _check_space(self, extra_bytes: int, path: str, operation: str) -> None:
        capacity = self.faults.plan.disk_full.capacity_bytes or self.disk.capacity_bytes
        if not capacity or extra_bytes <= 0:
            return
        full = self.disk.used_bytes() + extra_bytes > capacity
        if self.faults.draw("disk_full", 1.0 if full else 0.0) or full:
            raise IoError(errno.ENOSPC, "No space left on device", path, operation)

    # -- files ---------------------------------------------------------------------------

    def open(self, path: str, mode: OpenMode) -> Future[File]:
        assert mode in _OPEN_MODES, mode
        return self._submit("open", None, self.latency.metadata_us, self._open, path, mode)

    def _open(self, path: str, mode: OpenMode) -> File:
        self._maybe_fail("open", path, self.faults.plan.operation_errors.open_probability)
        if mode != "r" and self.faults.draw(
            "permission_errors.open", self.faults.plan.permission_errors.open_probability
        ):
            raise IoError(errno.EACCES, "Permission denied", path, "open")
        parent, name = self.disk.split(path)
        directory = self._directory(parent, "open")
        number = directory.entries.get(name)
        if number is not None and mode == "x":
            raise IoError(errno.EEXIST, "File exists", path, "open")
        if number is None:
            if mode == "r":
                raise IoError(errno.ENOENT, "No such file or directory", path, "open")
            number = self.disk.new_inode().number
            self.disk.change_entries(((parent, name, number),))
        handle = _Handle(self.disk.inodes[number], self.disk.generation, writable=mode != "r")
        return File(path, mode, handle)

    def read(self, file: File, offset: int, size: int) -> Future[bytes]:
        if offset < 0 or size < 0:
            return _invalid(file, "read")
        return self._submit_file("read", file, self.latency.read_us, self._read, (file, offset, size))

    def _read(self, file: File, offset: int, size: int) -> bytes:
        handle = file.handle
        if type(handle) is not _Handle or handle.closed or handle.generation != self.disk.generation:
            handle = self._handle(file, "read")  # `_handle` inlined for a live handle; this raises
        inode = handle.inode
        if self.faults.quiet and not self.faults.persistent_errors and not inode.bad_sectors:
            return bytes(inode.data[offset : offset + size])  # no fault can fire: no draws to make
        plan = self.faults.plan
        self._maybe_fail("read", file.path, plan.operation_errors.read_probability)
        sector = plan.latent_sector_error.sector_bytes
        if inode.bad_sectors and any(
            s in inode.bad_sectors for s in range(offset // sector, (offset + size - 1) // sector + 1)
        ):
            raise IoError(errno.EIO, "Input/output error (latent sector error)", file.path, "read")
        data = bytearray(inode.data[offset : offset + size])
        if len(data) > 1 and self.faults.draw("short_read", plan.short_read.probability):
            del data[self.random.randrange(1, len(data)) :]
        if data and self.faults.draw("read_corruption", plan.read_corruption.probability):
            position = self.random.randrange(len(data))
            bit = 1 << self.random.randrange(8)
            data[position] ^= bit
            if self.faults.draw("read_corruption.sticky", plan.read_corruption.sticky_probability):
                inode.flip(offset + position, bit, "read_corruption.sticky")
                self.damage_events.append(Damage(file.path, offset + position, 1, "read_corruption.sticky"))
        return bytes(data)

    def write(self, file: File, offset: int, data: bytes) -> Future[None]:
        if offset < 0:
            return _invalid(file, "write")
        return self._submit_file("write", file, self.latency.write_us, self._write, (file, offset, data))

    def _write(self, file: File, offset: int, data: bytes) -> None:
        handle = file.handle
        if type(handle) is not _Handle or handle.closed or handle.generation != self.disk.generation:
            handle = self._handle(file, "write")  # `_handle` inlined for a live handle; this raises
        if not handle.writable:
            raise IoError(errno.EBADF, "Bad file descriptor", file.path, "write")
        faults = self.faults
        if faults.quiet and not faults.persistent_errors and not handle.inode.bad_sectors:
            # No fault can fire: the same outcome as the full path, without its draws.
            if self.disk.capacity_bytes:
                self._check_space(offset + len(data) - len(handle.inode.data), file.path, "write")
            handle.inode.write(offset, data)
            return
        plan = self.faults.plan
        self._maybe_fail("write", file.path, plan.operation_errors.write_probability)
        if self.faults.draw("permission_errors.write", plan.permission_errors.write_probability):
            raise IoError(errno.EROFS, "Read-only file system", file.path, "write")
        inode = handle.inode
        self._check_space(offset + len(data) - len(inode.data), file.path, "write")
        stored, intended, kind = data, offset, ""  # `kind`: the last fault that altered the write
        if data and self.faults.draw("bit_flip.on_write", plan.bit_flip.on_write_probability):
            flipped = bytearray(data)
            self.faults.flip_bits(flipped)
            stored, kind = bytes(flipped), "bit_flip.on_write"
        sector = plan.latent_sector_error.sector_bytes
        if inode.bad_sectors and data:  # rewriting a sector repairs it
            inode.bad_sectors.difference_update(range(offset // sector, (offset + len(data) - 1) // sector + 1))
        if self.faults.draw("misdirected_write", plan.misdirected_write.probability):
            shift = self.random.choice((-1, 1)) * self.random.randint(1, 8) * plan.misdirected_write.sector_bytes
            offset, kind = max(0, offset + shift), "misdirected_write"
        lost = self.faults.draw("lost_write", plan.lost_write.probability)
        if lost:
            kind = "lost_write"
        if kind:  # the ledger learns what a fault-free disk would have written
            inode.write_altered(offset, stored, PendingWrite(intended, bytes(data)), kind, lost)
            events = self.damage_events
            events.append(Damage(file.path, offset, len(data), kind))
            if intended != offset:
                events.append(Damage(file.path, intended, len(data), kind))
        else:
            inode.write(offset, stored)
        if data and self.faults.draw("latent_sector_error", plan.latent_sector_error.probability):
            bad = self.random.randrange(offset // sector, (offset + len(data) - 1) // sector + 1)
            inode.bad_sectors.add(bad)
            self.damage_events.append(Damage(file.path, bad * sector, sector, "latent_sector_error"))

    def sync(self, file: File, data_only: bool = True) -> Future[None]:
        return self._submit_file("sync", file, self.latency.sync_us, self._sync, (file,))

    def _sync(self, file: File) -> None:
        handle = file.handle
        if type(handle) is not _Handle or handle.closed or handle.generation != self.disk.generation:
            handle = self._handle(file, "sync")  # `_handle` inlined for a live handle; this raises
        inode = handle.inode
        if self.faults.quiet and not self.faults.persistent_errors:
            inode.sync()  # no fault can fire: no draws to make
            return
        plan = self.faults.plan
        self._maybe_fail("sync", file.path, plan.operation_errors.sync_probability)
        if inode.unsynced and self.faults.draw("fsync_gate", plan.fsync_gate.probability):
            inode.drop_dirty()
            raise IoError(errno.EIO, "Input/output error (dirty pages dropped)", file.path, "sync")
        inode.sync()

    def truncate(self, file: File, size: int) -> Future[None]:
        if size < 0:
            return _invalid(file, "truncate")
        return self._submit("truncate", self._key(file), self.latency.write_us, self._truncate, file, size)

    def _truncate(self, file: File, size: int) -> None:
        handle = self._handle(file, "truncate")
        if not handle.writable:
            raise IoError(errno.EINVAL, "Invalid argument", file.path, "truncate")
        inode = handle.inode
        self._check_space(size - len(inode.data), file.path, "truncate")
        lost = self.faults.draw("lost_truncate", self.faults.plan.lost_truncate.probability)
        if lost and size < len(inode.data):
            self.damage_events.append(Damage(file.path, size, len(inode.data) - size, "lost_truncate"))
        inode.truncate(size, lost)

    def close(self, file: File) -> Future[None]:
        return self._submit("close", None, self.latency.metadata_us, self._close, file)

    def _close(self, file: File) -> None:
        handle = self._handle(file, "close")
        handle.closed = True
        if handle.lock_path is not None and self.disk.locks.get(handle.lock_path) == self._owner:
            del self.disk.locks[handle.lock_path]

    def size(self, file: File) -> Future[int]:
        return self._submit("size", None, self.latency.metadata_us, self._size, file)

    def _size(self, file: File) -> int:
        return len(self._handle(file, "size").inode.data)

    @staticmethod
    def _key(file: File) -> int | None:
        handle = file.handle
        return handle.inode.number if isinstance(handle, _Handle) else None

    # -- directories ---------------------------------------------------------------------

    def rename(self, source: str, destination: str) -> Future[None]:
        return self._submit("rename", None, self.latency.metadata_us, self._rename, source, destination)

    def _rename(self, source: str, destination: str) -> None:
        self._maybe_fail("rename", source, self.faults.plan.operation_errors.rename_probability)
        source_parent, source_name = self.disk.split(source)
        target_parent, target_name = self.disk.split(destination)
        source_directory = self._directory(source_parent, "rename")
        self._directory(target_parent, "rename")  # the target directory must exist
        if source_name not in source_directory.entries:
            raise IoError(errno.ENOENT, "No such file or directory", source, "rename")
        number = source_directory.entries[source_name]
        self.disk.change_entries(((source_parent, source_name, None), (target_parent, target_name, number)))

    def unlink(self, path: str) -> Future[None]:
        return self._submit("unlink", None, self.latency.metadata_us, self._unlink, path)

    def _unlink(self, path: str) -> None:
        self._maybe_fail("unlink", path, self.faults.plan.operation_errors.unlink_probability)
        parent, name = self.disk.split(path)
        directory = self._directory(parent, "unlink")
        if name not in directory.entries:
            raise IoError(errno.ENOENT, "No such file or directory", path, "unlink")
        self.disk.change_entries(((parent, name, None),))

    def mkdir(self, path: str) -> Future[None]:
        return self._submit("mkdir", None, self.latency.metadata_us, self._mkdir, path)

    def _mkdir(self, path: str) -> None:
        normal = self.disk.normalize(path)
        parts = [part for part in normal.split("/") if part]
        for depth in range(1, len(parts) + 1):
            self.disk.directories.setdefault("/" + "/".join(parts[:depth]), Directory())

    def sync_dir(self, path: str) -> Future[None]:
        return self._submit("sync_dir", None, self.latency.sync_us, self._sync_dir, path)

    def _sync_dir(self, path: str) -> None:
        normal = self.disk.normalize(path)
        self._directory(normal, "sync_dir")
        self.disk.sync_directory(normal)
        for child in self.disk.directories:
            if child != normal and posixpath.dirname(child) == normal:
                self.disk.durable_directories.add(child)

    def listdir(self, path: str) -> Future[list[str]]:
        return self._submit("listdir", None, self.latency.metadata_us, self._listdir, path)

    def _listdir(self, path: str) -> list[str]:
        normal = self.disk.normalize(path)
        names = set(self._directory(normal, "listdir").entries)
        prefix = normal.rstrip("/") + "/"
        names.update(
            d[len(prefix) :] for d in self.disk.directories if d.startswith(prefix) and "/" not in d[len(prefix) :]
        )
        return sorted(names)

    def lock(self, path: str) -> Future[File]:
        return self._submit("lock", None, self.latency.metadata_us, self._lock, path)

    def _lock(self, path: str) -> File:
        normal = self.disk.normalize(path)
        file = self._open(path, "w")
        if normal in self.disk.locks:  # like flock: a second open file description waits
            raise IoError(errno.EWOULDBLOCK, "Resource temporarily unavailable", path, "lock")
        self.disk.locks[normal] = self._owner
        assert isinstance(file.handle, _Handle)
        file.handle.lock_path = normal
        return file


def _merged(path: str, ranges: list[tuple[int, int, str]]) -> list[Damage]:
    """One `Damage` per maximal range of one kind (touching or overlapping ranges join)."""
    merged: list[list[int | str]] = []
    for start, end, kind in sorted(ranges, key=lambda item: (item[2], item[0])):
        last = merged[-1] if merged else None
        if last is not None and last[2] == kind and start <= int(last[1]):
            last[1] = max(int(last[1]), end)
        else:
            merged.append([start, end, kind])
    return [Damage(path, int(start), int(end) - int(start), str(kind)) for start, end, kind in merged]


_: type[Io] = SimIo


def _invalid(file: File, operation: str) -> Future[Any]:
    """A negative offset or size: EINVAL at submission, as the kernel answers it."""
    return Future.failed(IoError(errno.EINVAL, "Invalid argument", file.path, operation))
