"""Micro-operations: the vocabulary shared by the POSIX view, its recorder and the explorer.

Every change the POSIX view makes to its file tree is one of these, applied by
`Tree.apply` (in `fs.py`), the one mutation path of the tree. The live view applies them
as calls happen and appends them to a `Recording`; the explorer replays a chosen subset
of a recording onto the initial image to build a crash state. So a crash state is, by
construction, something the tree could have held.

ALICE's split of system calls into micro-operations:

- an append (or any write past the end) is `Truncate` to the new size (the size
  persists first, the data reads as zeros) and then `Write` of the bytes;
- a rename over an existing name is `Unlink` (or `Rmdir`, over an empty directory) of
  the destination, then `Rename` (an atomic move of the source entry); the explorer keeps
  the two of one call together, so a rename stays atomic;
- `O_TRUNC` and `ftruncate` are `Truncate`; `O_SYNC`/`O_DSYNC` writes are `Write`
  followed by `Sync` of the same inode.

Inodes are numbered; `ROOT_INODE` is the simulated root directory, durable from the
start. Names are single path components (no "/").

The persistence model (what may survive a crash), stated once for the explorer:

1. A data operation (`Write`, `Truncate`) on inode X is durable once a later `Sync(X)`
   (fsync or fdatasync of X) completed; a `Chmod` of X once a later fsync of X did
   (fdatasync leaves metadata that reading the data does not need).
2. An entry operation (`Create`, `Mkdir`, `Unlink`, `Rmdir`, `Rename`) is durable once a
   later `Sync(D)` completed for a directory D it names (for a rename across
   directories, either one).
3. Nothing else orders operations: `close` makes nothing durable, and any operation not
   made durable by 1 or 2 may be lost while later ones survive.
4. `DropDirty(X)` (fsyncgate: a failed fsync) means every earlier data operation on X
   not already durable is lost for good: no crash state keeps it, not even one at a point
   before the failed fsync (its writeback was doomed), so there a state can differ from
   what the live run showed.
5. `Ack` is not a disk operation: it marks a promise the workload made (ALICE's stdout).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROOT_INODE = 1


@dataclass(frozen=True)
class Create:
    """A new empty regular file `inode` linked as `name` in directory `parent`."""

    parent: int
    name: str
    inode: int
    mode: int = 0o644


@dataclass(frozen=True)
class Mkdir:
    """A new empty directory `inode` linked as `name` in directory `parent`."""

    parent: int
    name: str
    inode: int
    mode: int = 0o755


@dataclass(frozen=True)
class Unlink:
    """The entry `name` of `parent` removed (the file `inode` it named)."""

    parent: int
    name: str
    inode: int


@dataclass(frozen=True)
class Rmdir:
    """The empty directory `inode`, entry `name` of `parent`, removed."""

    parent: int
    name: str
    inode: int


@dataclass(frozen=True)
class Rename:
    """The entry `source_name` of `source_parent` moved to `target_name` of
    `target_parent` (atomic; the destination, if it existed, was unlinked by an earlier
    `Unlink`). `inode` is the file or directory moved."""

    source_parent: int
    source_name: str
    target_parent: int
    target_name: str
    inode: int


@dataclass(frozen=True)
class Write:
    """`data` written at `offset` of file `inode`; never past the end (a `Truncate`
    extends first)."""

    inode: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class Truncate:
    """File `inode` cut or extended (with zeros) to `size` bytes."""

    inode: int
    size: int


@dataclass(frozen=True)
class Chmod:
    inode: int
    mode: int


@dataclass(frozen=True)
class Sync:
    """fsync (`data_only=False`) or fdatasync of `inode`, file or directory, completed."""

    inode: int
    data_only: bool = False


@dataclass(frozen=True)
class DropDirty:
    """fsyncgate: a sync of `inode` failed and its dirty pages were dropped (rule 4)."""

    inode: int


@dataclass(frozen=True)
class Ack:
    """The workload acknowledged `value` to its user (rule 5)."""

    value: Any


MicroOp = Create | Mkdir | Unlink | Rmdir | Rename | Write | Truncate | Chmod | Sync | DropDirty | Ack
DATA_OPS = (Write, Truncate, Chmod)
ENTRY_OPS = (Create, Mkdir, Unlink, Rmdir, Rename)


def directories_named(op: MicroOp) -> tuple[int, ...]:
    """The directories an entry operation changes (rule 2); () for any other kind."""
    if isinstance(op, Rename):
        return (op.source_parent, op.target_parent)
    if isinstance(op, ENTRY_OPS):
        return (op.parent,)
    return ()


@dataclass(frozen=True)
class CallSite:
    """Where one micro-operation came from: the call as the program made it
    (`"os.replace('db.json.tmp', 'db.json')"`) and the `file:line` that issued it, the
    innermost frame outside the standard library and this package. When a library of the
    standard library stands between the two (`dbm.dumb`, `shelve`, `zipfile`; not the
    plumbing every file write passes through: `io`, `os`, `pathlib`, `shutil`,
    `tempfile`, `json`, `pickle`, `codecs`), `library` is the `file:line` of its innermost
    frame: the line inside it that issued the call."""

    call: str
    site: str
    library: str = ""

    @property
    def responsible(self) -> str:
        """The one `file:line` to blame: the library line when there is one."""
        return self.library or self.site

    def where(self) -> str:
        """`site`, and the library line when there is one."""
        return f"{self.site} (in {self.library})" if self.library else self.site


@dataclass
class Recording:
    """One run of a workload: the micro-operations in order, each with its call site
    (`sites[i]` belongs to `ops[i]`), and the initial image they start from.

    `planned` is what a run of the same workload without inline faults acknowledged, in
    order, or None when this run had no faults. A faulty run may stop early (an injected
    EIO raised out of the workload); the value it was working on when it stopped, the one
    in flight after its last `Ack`, is then the next planned one."""

    ops: list[MicroOp]
    sites: list[CallSite]
    initial: Any  # an `fs.Image`
    planned: list[Any] | None = None

    def append(self, op: MicroOp, site: CallSite) -> None:
        self.ops.append(op)
        self.sites.append(site)
