"""The simulated disk's state model: what is durable, what is volatile, what a crash keeps.

Per file (an `Inode`): `data`, the bytes every reader sees now (page cache), and
`durable`, the bytes that survive a crash. `unsynced` lists the writes and truncates
applied to `data` since the last successful sync, in order, so that crash policies
(prefix or subset survival, torn sectors: the fault catalogue) can replay a chosen part
of them onto `durable` without reshaping this model.

Per directory: `entries` (name -> inode, what `listdir` and `open` see now) and
`durable_entries` (what survives a crash). A create, rename or unlink changes
`entries` and is logged, in order, as one atomic `EntryChange` (a rename is one change,
even across directories); `sync_dir` makes a directory's entries durable (and every
logged change that touches it). At a crash the fault plan may let a prefix or any
subset of the logged changes survive (directory operations persisting out of order).

`crash()` throws away everything volatile: every inode's data becomes its durable bytes,
every directory its durable entries, and every open handle and lock is invalidated.

A file a fault damaged has a `FileLedger` (`damage.py`) that every change to it keeps up
to date; the others have none and pay nothing for it.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from io_backends.sim.changes import PendingWrite, apply_change, fault_free
from io_backends.sim.damage import FileLedger, fault_kind

__all__ = ["Directory", "EntryChange", "Inode", "PendingWrite", "SimDisk", "apply_change"]


_new_change = tuple.__new__  # C-level construction: one per simulated write


@dataclass
class Inode:
    """One file: what readers see now (`data`), what survives a crash (`durable`), and
    the changes in between (`unsynced`), in the order they were applied."""

    number: int
    data: bytearray = field(default_factory=bytearray)
    durable: bytearray = field(default_factory=bytearray)
    unsynced: list[PendingWrite] = field(default_factory=list)
    bad_sectors: set[int] = field(default_factory=set)  # latent sector errors: reads fail
    ledger: FileLedger | None = None  # how the bytes differ from a fault-free disk's (None: they do not)
    # Where the newest write and the one before it went since the last crash (-1: none),
    # for a flying write (`faults.FlyingWrite`).
    last_write_offset: int = -1
    previous_write_offset: int = -1

    def write(self, offset: int, data: bytes, lost: bool = False) -> None:
        """Apply a write to the page cache and queue it for the next sync."""
        if self.ledger is not None:
            self.write_altered(offset, data, None, "", lost)
            return
        if type(data) is not bytes:  # kept as a pending change: an immutable copy
            data = bytes(data)
        self.previous_write_offset, self.last_write_offset = self.last_write_offset, offset
        target = self.data
        if offset > len(target):  # `apply_change` of a write, inline: one per simulated write
            target.extend(bytes(offset - len(target)))
        target[offset : offset + len(data)] = data
        self.unsynced.append(_new_change(PendingWrite, (offset, data, None, lost, None, "")))

    def write_altered(self, offset: int, data: bytes, twin: PendingWrite | None, kind: str, lost: bool = False) -> None:
        """`write`, on a file with a ledger or for a write a fault altered: `twin` is the
        write a fault-free disk would have made instead (`kind` the fault), if any."""
        change = PendingWrite(offset, bytes(data), None, lost, twin, kind)
        self.previous_write_offset, self.last_write_offset = self.last_write_offset, offset
        if self.ledger is None:
            self.ledger = FileLedger.start(self.data, self.durable)
        self.ledger.data.apply(self.data, change, fault_free(change), fault_kind(change))
        self.unsynced.append(change)

    def truncate(self, size: int, lost: bool = False) -> None:
        """Apply a truncate to the page cache and queue it; a `lost` one (a lost
        truncate) is never made durable, though a fault-free disk's would be."""
        change = PendingWrite(size, b"", truncate_to=size)
        if lost:
            change = PendingWrite(size, b"", size, True, change, "lost_truncate")
            self._ledger().data.apply(self.data, change, fault_free(change), None)
        elif self.ledger is None:
            apply_change(self.data, change)
        else:
            self.ledger.data.apply(self.data, change, change, None)
        self.unsynced.append(change)

    def sync(self) -> None:
        """Make the unsynced changes durable, in order (lost writes stay lost)."""
        ledger = self.ledger
        if ledger is None:
            unsynced = self.unsynced
            if len(unsynced) == 1:  # the common case (one frame since the last sync), inline
                change = unsynced[0]
                durable = self.durable
                if change.truncate_to is None and not change.lost and change.offset <= len(durable):
                    durable[change.offset : change.offset + len(change.data)] = change.data
                    unsynced.clear()
                    return
            for change in unsynced:
                if not change.lost:
                    apply_change(self.durable, change)
            unsynced.clear()
            return
        ledger.sync(self.durable, self.unsynced)
        self.unsynced.clear()
        self._forget_if_clean()

    def drop_dirty(self) -> None:
        """fsyncgate: the kernel marks the dirty pages clean without storing them; the
        page cache still shows them, a later sync will not write them (a fault-free
        disk's will: the ledger keeps them for the twin)."""
        if self.unsynced:
            ledger = self._ledger()
            ledger.dropped.extend(twin for twin in map(fault_free, self.unsynced) if not twin.lost)
        self.unsynced.clear()

    def crash(self, survivors: list[PendingWrite]) -> None:
        """Power loss: the durable bytes plus whichever unsynced changes (possibly
        altered, e.g. torn) the fault plan let survive."""
        if self.ledger is None and all(change.twin is None for change in survivors):
            for change in survivors:
                apply_change(self.durable, change)
        else:
            self._ledger().crash(self.durable, survivors)
        self.data[:] = self.durable
        self.unsynced.clear()
        self.last_write_offset = self.previous_write_offset = -1
        self._forget_if_clean()

    def flip(self, position: int, bit: int, kind: str, data: bool = True, durable: bool = True) -> None:
        """A fault flips `bit` of the byte at `position` in the page cache (`data`) and the
        durable bytes (`durable`), where the file has that byte; the ledger records it."""
        ledger = self._ledger()
        for wanted, target, shadow in ((data, self.data, ledger.data), (durable, self.durable, ledger.durable)):
            if wanted and position < len(target):
                shadow.apply(target, PendingWrite(position, bytes((target[position] ^ bit,))), None, kind)

    def damage(self) -> list[tuple[int, int, str]]:
        """What a reader gets wrong now: `(start, end, kind)` ranges (bad sectors apart)."""
        return [] if self.ledger is None else self.ledger.data.damage(self.data)

    def _ledger(self) -> FileLedger:
        if self.ledger is None:
            self.ledger = FileLedger.start(self.data, self.durable)
        return self.ledger

    def _forget_if_clean(self) -> None:
        if self.ledger is not None and self.ledger.clean(self.data, self.durable, self.unsynced):
            self.ledger = None


# One atomic directory change: (directory path, name, inode number or None to remove), ...
EntryChange = tuple[tuple[str, str, int | None], ...]


@dataclass
class Directory:
    entries: dict[str, int] = field(default_factory=dict)
    durable_entries: dict[str, int] = field(default_factory=dict)


# Paths are normalized on every open, rename, unlink and sync_dir; a store uses a few
# dozen names over and over, so a small cache of the pure function saves the work.
_NORMALIZED_PATHS_CACHED_MAX = 4096


class SimDisk:
    """Files and directories of one simulated machine, shared by every `SimIo` on it.

    Paths are absolute or relative POSIX paths, normalized; there is one root.
    """

    def __init__(self, capacity_bytes: int | None = None) -> None:
        self.inodes: dict[int, Inode] = {}
        self.directories: dict[str, Directory] = {"/": Directory()}
        self.durable_directories: set[str] = {"/"}
        self.capacity_bytes = capacity_bytes
        self.generation = 0  # bumped by crash(); handles of older generations are dead
        self.locks: dict[str, int] = {}  # path -> owner id
        self.pending_entry_changes: list[EntryChange] = []  # directory changes not yet synced
        self.lost: dict[str, int] = {}  # path -> size of each file an `EntryLoss` took
        self._next_inode = 1

    @staticmethod
    @functools.lru_cache(maxsize=_NORMALIZED_PATHS_CACHED_MAX)
    def normalize(path: str) -> str:
        return posixpath.normpath(posixpath.join("/", path))

    @staticmethod
    @functools.lru_cache(maxsize=_NORMALIZED_PATHS_CACHED_MAX)
    def split(path: str) -> tuple[str, str]:
        normal = SimDisk.normalize(path)
        return posixpath.dirname(normal), posixpath.basename(normal)

    def new_inode(self) -> Inode:
        inode = Inode(self._next_inode)
        self.inodes[inode.number] = inode
        self._next_inode += 1
        return inode

    def lookup(self, path: str) -> Inode | None:
        parent, name = self.split(path)
        directory = self.directories.get(parent)
        if directory is None or name not in directory.entries:
            return None
        return self.inodes[directory.entries[name]]

    def files(self) -> Iterator[tuple[str, Inode]]:
        """Every file by its current path (what `open` sees now)."""
        for path, directory in self.directories.items():
            for name, number in directory.entries.items():
                yield posixpath.join(path, name), self.inodes[number]

    def lose(self, path: str) -> None:
        """A durable entry vanishes (metadata damage at a crash): the file is gone, and
        its data with it once no other entry names its inode."""
        parent, name = self.split(path)
        directory = self.directories[parent]
        number = directory.entries.pop(name)
        directory.durable_entries.pop(name, None)
        self.lost[self.normalize(path)] = len(self.inodes[number].data)
        if all(number not in d.entries.values() for d in self.directories.values()):
            del self.inodes[number]

    def used_bytes(self) -> int:
        return sum(len(inode.data) for inode in self.inodes.values())

    def change_entries(self, change: EntryChange) -> None:
        """Apply one atomic directory change now and log it until a `sync_dir` covers it."""
        self._apply_entries(change, durable=False)
        self.pending_entry_changes.append(change)

    def _apply_entries(self, change: EntryChange, durable: bool) -> None:
        for path, name, number in change:
            directory = self.directories.get(path)
            if directory is None:
                continue
            entries = directory.durable_entries if durable else directory.entries
            if number is None:
                entries.pop(name, None)
            else:
                entries[name] = number

    def sync_directory(self, path: str) -> None:
        """`sync_dir`: the directory's entries become durable, and so do the other parts
        of every logged change that touched it (a rename is atomic)."""
        remaining = []
        for change in self.pending_entry_changes:
            if any(change_path == path for change_path, _, _ in change):
                self._apply_entries(change, durable=True)
            else:
                remaining.append(change)
        self.pending_entry_changes = remaining
        self.directories[path].durable_entries = dict(self.directories[path].entries)

    def crash(
        self,
        survive: Callable[[Inode], list[PendingWrite]] | None = None,
        survive_entries: Callable[[list[EntryChange]], list[EntryChange]] | None = None,
    ) -> None:
        """Power loss: keep what was durable, plus the unsynced changes `survive` picks
        for each file and the directory changes `survive_entries` picks (none by
        default); every handle and lock dies."""
        self.generation += 1
        self.locks.clear()
        for path in list(self.directories):
            if path not in self.durable_directories:
                del self.directories[path]
        surviving = survive_entries(self.pending_entry_changes) if survive_entries is not None else []
        self.pending_entry_changes = []
        for change in surviving:
            self._apply_entries(change, durable=True)
        for directory in self.directories.values():
            directory.entries = dict(directory.durable_entries)
        live = {number for d in self.directories.values() for number in d.entries.values()}
        for number in list(self.inodes):
            if number in live:
                inode = self.inodes[number]
                inode.crash(survive(inode) if survive is not None else [])
            else:
                del self.inodes[number]
