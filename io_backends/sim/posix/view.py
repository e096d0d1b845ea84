"""`PosixView`: os-level calls with Linux's semantics and errnos, on a simulated `Tree`.

The view owns a descriptor table and turns each call into micro-operations (`ops.py`),
applied through `Tree.apply` (the tree's one mutation path) and, when `recording` is set,
appended to the `Recording` with the call and the `file:line` that made it. ALICE's
split: an append or any write past the end is `Truncate` (new size) then `Write`; a
rename over an existing name is `Unlink`/`Rmdir` of the destination then `Rename`;
`O_TRUNC` on a non-empty file is `Truncate(0)`; an `O_SYNC`/`O_DSYNC` write is followed
by `Sync`; `fsync`/`fdatasync` are `Sync`, of a directory too.

Descriptors are numbers >= `SIM_FD_BASE` (never a real descriptor). Each names an open
file description (position, flags, inode) shared by `dup`; an unlinked file stays
readable and writable through it. `flock` locks belong to descriptions (EWOULDBLOCK for
a conflicting `LOCK_NB`; a blocking conflict would wait forever in a single-threaded
simulation, so it raises EDEADLK). `lockf` never conflicts: POSIX record locks of one
process do not conflict with each other.

Linux facts mirrored (checked against the real calls as root, who ignores permission
bits, so mode bits are stored and reported but never enforced): `O_TRUNC` truncates even
with `O_RDONLY`; `pwrite` on an `O_APPEND` descriptor appends; `unlink` of a directory is
EISDIR; `ftruncate` of a read-only descriptor is EINVAL; `O_CREAT|O_DIRECTORY` is EINVAL;
`os.utime` errors carry no filename. Access times are not updated by reads (as with
`noatime`); times come from the tree's virtual clock, one step per call.

Inline faults (only with a `FaultInjector`, every decision through `faults.draw`):
`operation_errors.open/read/write/sync/rename/unlink` raise EIO before any effect
(`unlink` covers rmdir, `write` covers truncates), `permission_errors.open` EACCES on an
open for writing, `permission_errors.write` EROFS, `disk_full` ENOSPC when the file bytes
would exceed `plan.disk_full.capacity_bytes`, `fsync_gate` EIO from a sync after
recording `DropDirty`.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import platform
import posixpath
import stat
import sys
import sysconfig
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NamedTuple

from io_backends.sim.faults import FaultInjector
from io_backends.sim.posix.errors import UnmodelledCall
from io_backends.sim.posix.fs import CLOCK_EPOCH_NS, DirNode, FileNode, Node, Tree
from io_backends.sim.posix.ops import (
    ROOT_INODE,
    Ack,
    CallSite,
    Chmod,
    Create,
    DropDirty,
    MicroOp,
    Mkdir,
    Recording,
    Rename,
    Rmdir,
    Sync,
    Truncate,
    Unlink,
    Write,
)

# Simulated descriptors start here: above any real one (Linux's RLIMIT_NOFILE hard limit
# defaults to 2**20), so a number alone says which world a descriptor belongs to.
SIM_FD_BASE = 1 << 20
SIM_DEVICE = 0x53494D  # st_dev of every simulated node ("SIM"): one file system
DEFAULT_UMASK = 0o022  # fixed, not read from the process, so runs are reproducible
BLOCK_BYTES = 4096  # st_blksize, and the allocation unit behind st_blocks
DIRECTORY_SIZE_BYTES = 4096  # st_size of a directory, as on ext4
F_FULLFSYNC = 51  # macOS's full fsync; treated as fsync
EXT4_DIRECTORY_END = (1 << 63) - 1  # lseek(directory, 0, SEEK_END) on ext4 (hashed directories)

# F_GETFL shows the flags a description keeps: the kernel drops these at open.
_OPEN_ONLY_FLAGS = os.O_CREAT | os.O_EXCL | os.O_NOCTTY | os.O_TRUNC | os.O_CLOEXEC
# F_SETFL may change only these (Linux).
_SETFL_FLAGS = os.O_APPEND | os.O_ASYNC | os.O_DIRECT | os.O_NOATIME | os.O_NONBLOCK
# The kernel adds O_LARGEFILE to every description on 64-bit systems (Python's os.O_LARGEFILE
# is 0 there); its value depends on the architecture.
_KERNEL_LARGEFILE = {"x86_64": 0o100000, "aarch64": 0o400000, "arm64": 0o400000}.get(platform.machine(), 0)
_SPECIAL_NAMES = frozenset(("", ".", ".."))  # a final component that names no entry


class _Description:
    """An open file description: what `dup` shares (position, flags, the inode)."""

    __slots__ = (
        "flags",
        "inode",
        "is_directory",
        "node",
        "path",
        "position",
        "readable",
        "references",
        "sync_data_only",
        "writable",
    )

    def __init__(self, inode: int, node: Node, flags: int, path: str) -> None:
        access = flags & os.O_ACCMODE
        self.inode = inode
        self.node = node
        self.flags = flags
        self.path = path
        self.position = 0
        self.is_directory = isinstance(node, DirNode)
        self.readable = access in (os.O_RDONLY, os.O_RDWR)
        self.writable = access in (os.O_WRONLY, os.O_RDWR)
        self.references = 1
        # O_SYNC is O_DSYNC plus a bit: None (neither), False (O_SYNC), True (O_DSYNC only)
        synchronous = flags & os.O_SYNC
        self.sync_data_only: bool | None = None if not synchronous else synchronous != os.O_SYNC


class _Resolved(NamedTuple):
    """A path after walking its directories: the directory holding the final component,
    that component ("" for the start directory itself, ".", ".." or a name), the inode it
    names (None when there is no such entry), and whether the path ended with "/"."""

    parent: int
    name: str
    inode: int | None
    trailing_slash: bool


def _error(number: int, filename: str | int | None = None, filename2: str | None = None) -> OSError:
    """The OSError a real call raises (the constructor picks FileNotFoundError etc.)."""
    if filename2 is not None:
        return OSError(number, os.strerror(number), filename, None, filename2)
    if filename is not None:
        return OSError(number, os.strerror(number), filename)
    return OSError(number, os.strerror(number))


def _as_bytes(data: object) -> bytes:
    """Any bytes-like object as immutable bytes (TypeError for anything else, as os.write)."""
    if type(data) is bytes:
        return data
    return memoryview(data).tobytes()  # type: ignore[arg-type]


# -- call sites: the innermost frame outside the standard library and this package ----

_PACKAGE_DIRECTORY = os.path.dirname(os.path.abspath(__file__)) + os.sep
_paths = sysconfig.get_paths()
_STDLIB_PREFIXES = tuple(
    {os.path.join(p, "") for name in ("stdlib", "platstdlib") for p in (_paths[name], os.path.realpath(_paths[name]))}
)
_THIRD_PARTY_PREFIXES = tuple(
    {os.path.join(p, "") for name in ("purelib", "platlib") for p in (_paths[name], os.path.realpath(_paths[name]))}
)
_frame_kinds: dict[str, int] = {}  # co_filename -> one of the four kinds below
_OUTSIDE, _STDLIB, _PACKAGE, _PLUMBING = 0, 1, 2, 3
# Standard-library modules that only carry a program's file I/O through to the calls
# this package sees: a frame in them is never "the line that issued the call" (see
# `CallSite.library`). Top-level names; a package (`json`, `encodings`) counts whole.
_PLUMBING_MODULES = frozenset(
    {"os", "io", "_pyio", "pathlib", "shutil", "tempfile", "genericpath", "posixpath", "codecs", "encodings"}
    | {"json", "pickle", "contextlib", "functools", "abc", "_collections_abc", "fnmatch", "glob"}
)


def _frame_kind(filename: str) -> int:
    kind = _frame_kinds.get(filename)
    if kind is None:
        if filename.startswith(_PACKAGE_DIRECTORY):
            kind = _PACKAGE
        elif filename.startswith("<frozen "):
            kind = _PLUMBING
        elif filename.startswith(_STDLIB_PREFIXES) and not filename.startswith(_THIRD_PARTY_PREFIXES):
            relative = filename[len(next(p for p in _STDLIB_PREFIXES if filename.startswith(p))) :]
            top = relative.split(os.sep, 1)[0].removesuffix(".py")
            kind = _PLUMBING if top in _PLUMBING_MODULES else _STDLIB
        else:
            kind = _OUTSIDE
        _frame_kinds[filename] = kind
    return kind


# Linux's limits on names, in bytes of the file-system encoding: a whole path (with its
# terminating NUL, so 4,095 bytes at most) and one component (ext4's EXT4_NAME_LEN).
PATH_MAX_BYTES = 4096
NAME_MAX_BYTES = 255


def _name_too_long(name: str) -> bool:
    """A component longer than NAME_MAX (a str of 63 characters or fewer is at most 252
    bytes, so most names cost no encoding)."""
    return len(name) > NAME_MAX_BYTES // 4 and len(os.fsencode(name)) > NAME_MAX_BYTES


def _check_name_length(name: str, path: str) -> None:
    """ENAMETOOLONG for a component longer than NAME_MAX, checked as the walk reaches
    it (as ext4's lookup does)."""
    if _name_too_long(name):
        raise _error(errno.ENAMETOOLONG, path)


def call_site() -> tuple[str, str]:
    """(`file:line` of the innermost frame outside the standard library and the
    io_backends/sim/posix package, or the outermost standard-library frame if none is;
    `file:line` of the innermost frame in a standard-library module that is not
    plumbing, inner to the first, or "")."""
    frame: FrameType | None = sys._getframe(1)
    fallback, library = "<unknown>:0", ""
    while frame is not None:
        code = frame.f_code
        kind = _frame_kind(code.co_filename)
        if kind == _OUTSIDE:
            return f"{code.co_filename}:{frame.f_lineno}", library
        if kind != _PACKAGE:
            fallback = f"{code.co_filename}:{frame.f_lineno}"
            if kind == _STDLIB and not library:
                library = fallback
        frame = frame.f_back
    return fallback, "" if library == fallback else library


class PosixView:
    """The simulated file system as os-level calls (see the module docstring)."""

    def __init__(
        self,
        root: str,
        tree: Tree | None = None,
        recording: Recording | None = None,
        faults: FaultInjector | None = None,
    ) -> None:
        """`root`: the absolute path the tree's root directory appears at."""
        assert root.startswith("/"), root
        self.root = posixpath.normpath(root)
        self._root_slash = self.root.rstrip("/") + "/"
        self._reserved_top = "/" + self.root.split("/")[1]
        self.tree = Tree() if tree is None else tree
        self.recording = recording
        self.faults = faults
        self.umask = DEFAULT_UMASK
        self._descriptions: dict[int, _Description] = {}
        self._inheritable: set[int] = set()  # fds without FD_CLOEXEC (Python's default is non-inheritable)
        self._lowest_free_fd = SIM_FD_BASE
        self._flocks: dict[int, dict[_Description, int]] = {}  # inode -> holder -> LOCK_SH or LOCK_EX

    # -- ownership and acknowledgements --------------------------------------------

    def owns_path(self, path: str) -> bool:
        """`path` (absolute, normalized) is the root or under it."""
        return path == self.root or path.startswith(self._root_slash)

    def reserves_path(self, path: str) -> bool:
        """`path` (absolute, normalized) is in the root's top directory (`/kvsim` for
        `/kvsim/root`): the interposer hands such paths to the view, which answers for
        the root and its ancestors and refuses the rest, so that a path next to the root
        (`root.parent / "x"`) never reaches the real disk."""
        top = self._reserved_top
        return path == top or path.startswith(top + "/")

    def owns_fd(self, fd: int) -> bool:
        """Every number >= SIM_FD_BASE is the view's, open or not (a closed one gives
        EBADF here rather than reaching the real OS)."""
        return fd >= SIM_FD_BASE

    def open_fds(self) -> list[int]:
        """The simulated descriptors now open, ascending."""
        return sorted(self._descriptions)

    def ack(self, value: object) -> None:
        """Record `Ack(value)`: the workload promised `value` to its user."""
        self._commit((Ack(value),), lambda: f"ack({value!r})")

    # -- recording -------------------------------------------------------------------

    def _commit(self, ops: Sequence[MicroOp], describe: Callable[[], str]) -> None:
        """Apply `ops` to the tree, in order, and record them with one call site."""
        apply = self.tree.apply
        for op in ops:
            apply(op)
        recording = self.recording
        if recording is not None:
            site = CallSite(describe(), *call_site())
            for op in ops:
                recording.append(op, site)

    def _show(self, path: str, dir_fd: int | None = None) -> str:
        """A path relative to the root, for call descriptions."""
        full = self._absolute(path, dir_fd)
        return "." if full == self.root else full[len(self._root_slash) :]

    def _absolute(self, path: str, dir_fd: int | None) -> str:
        if path.startswith("/"):
            return posixpath.normpath(path)
        description = self._descriptions.get(dir_fd) if dir_fd is not None else None
        base = description.path if description is not None else self.root
        return posixpath.normpath(posixpath.join(base, path))

    # -- descriptors -------------------------------------------------------------------

    def _description(self, fd: int) -> _Description:
        description = self._descriptions.get(fd)
        if description is None:
            raise _error(errno.EBADF)
        return description

    def _allocate_fd(self, description: _Description, minimum: int = SIM_FD_BASE) -> int:
        """The lowest free descriptor >= `minimum` now names `description`."""
        # Invariant: every descriptor below `_lowest_free_fd` (and >= SIM_FD_BASE) is open.
        lowest = self._lowest_free_fd
        fd = max(minimum, lowest)
        table = self._descriptions
        while fd in table:
            fd += 1
        table[fd] = description
        if minimum <= lowest:
            self._lowest_free_fd = fd + 1  # every number from `lowest` to `fd` is taken now
        return fd

    def close(self, fd: int) -> None:
        """Close `fd`; the last close of a description releases its flock and its pin.
        Makes nothing durable. EBADF when `fd` is not open."""
        self.tree.tick()
        description = self._descriptions.pop(fd, None)
        if description is None:
            raise _error(errno.EBADF)
        self._inheritable.discard(fd)
        if fd < self._lowest_free_fd:
            self._lowest_free_fd = fd
        description.references -= 1
        if description.references == 0:
            holders = self._flocks.get(description.inode)
            if holders is not None:
                holders.pop(description, None)
                if not holders:
                    del self._flocks[description.inode]
            self.tree.unpin(description.inode)

    def dup(self, fd: int) -> int:
        """A new (non-inheritable) descriptor sharing `fd`'s description. EBADF."""
        description = self._description(fd)
        description.references += 1
        return self._allocate_fd(description)

    def fd_flags(self, fd: int) -> int:
        """The O_* flags `fd` was opened with (as changed by F_SETFL). EBADF."""
        return self._description(fd).flags

    def fd_path(self, fd: int) -> str:
        """The absolute path `fd` was opened with. EBADF."""
        return self._description(fd).path

    def fd_is_directory(self, fd: int) -> bool:
        """True when `fd` is a directory descriptor. EBADF."""
        return self._description(fd).is_directory

    def get_inheritable(self, fd: int) -> bool:
        """os.get_inheritable: False unless set (EBADF)."""
        self._description(fd)
        return fd in self._inheritable

    def set_inheritable(self, fd: int, inheritable: bool) -> None:
        """os.set_inheritable (EBADF)."""
        self._description(fd)
        if inheritable:
            self._inheritable.add(fd)
        else:
            self._inheritable.discard(fd)

    # -- paths -------------------------------------------------------------------------

    def _start(self, path: str, dir_fd: int | None, call: str) -> tuple[int, str]:
        """The directory a path is walked from, and the rest of the path to walk."""
        if not path:
            raise _error(errno.ENOENT, path)
        if path[0] == "/":
            if path == self.root or path.startswith(self._root_slash):
                return ROOT_INODE, path[len(self.root) :]
            raise UnmodelledCall(call, f"{path!r} is outside the simulated root {self.root!r}")
        if dir_fd is None:
            return ROOT_INODE, path  # relative paths without dir_fd: relative to the root
        description = self._descriptions.get(dir_fd)
        if description is None:
            raise _error(errno.EBADF, path)
        if not description.is_directory:
            raise _error(errno.ENOTDIR, path)
        return description.inode, path

    def _resolve(self, path: str, dir_fd: int | None, call: str, check_last: bool = True) -> _Resolved:
        """Walk every directory of `path` (ENOENT for a missing one, ENOTDIR for a file)
        and look up its final component."""
        if len(path) >= PATH_MAX_BYTES // 4 and len(os.fsencode(path)) >= PATH_MAX_BYTES:
            raise _error(errno.ENAMETOOLONG, path)
        current, rest = self._start(path, dir_fd, call)
        nodes = self.tree.nodes
        components = [name for name in rest.split("/") if name]
        trailing_slash = rest.endswith("/")
        last = components.pop() if components else ""
        for name in components:
            if name == ".":
                continue
            _check_name_length(name, path)
            directory = nodes[current]
            assert isinstance(directory, DirNode)
            if name == "..":
                current = directory.parent
                if current not in nodes:  # above a removed directory (through its descriptor)
                    raise _error(errno.ENOENT, path)
                continue
            number = directory.entries.get(name)
            if number is None:
                raise _error(errno.ENOENT, path)
            if not isinstance(nodes[number], DirNode):
                raise _error(errno.ENOTDIR, path)
            current = number
        if last == "" or last == ".":
            return _Resolved(current, last, current, trailing_slash)
        if check_last:  # rename walks both parents before it looks up either name (`_check_rename`)
            _check_name_length(last, path)
        directory = nodes[current]
        assert isinstance(directory, DirNode)
        if last == "..":
            if directory.parent not in nodes:
                raise _error(errno.ENOENT, path)
            return _Resolved(directory.parent, last, directory.parent, trailing_slash)
        return _Resolved(current, last, directory.entries.get(last), trailing_slash)

    def _existing(self, path: str, dir_fd: int | None, call: str) -> int:
        """The inode `path` names: ENOENT when none, ENOTDIR for "file/"."""
        resolved = self._resolve(path, dir_fd, call)
        number = resolved.inode
        if number is None:
            raise _error(errno.ENOENT, path)
        if resolved.trailing_slash and isinstance(self.tree.nodes[number], FileNode):
            raise _error(errno.ENOTDIR, path)
        return number

    def _node_of(self, path: str | int, dir_fd: int | None, call: str) -> tuple[int, Node]:
        """The inode and node of a path, or of a descriptor when `path` is an int."""
        if isinstance(path, int):
            description = self._description(path)
            return description.inode, description.node
        number = self._existing(path, dir_fd, call)
        return number, self.tree.nodes[number]

    def _directory_of(self, path: str | int, call: str) -> DirNode:
        """The directory `path` (or directory descriptor) names: ENOTDIR for a file."""
        _number, node = self._node_of(path, None, call)
        if not isinstance(node, DirNode):
            raise _error(errno.ENOTDIR, path)
        return node

    # -- faults ------------------------------------------------------------------------

    def _operation_fault(self, faults: FaultInjector, operation: str, path: str, probability: float) -> None:
        """EIO for `operation` (and keep raising it when persistent), as SimIo does."""
        if probability <= 0.0 and not faults.persistent_errors and not faults.forced:
            return  # nothing can fire: no draw
        key = (operation, path)
        if key in faults.persistent_errors:
            raise _error(errno.EIO, path)
        if faults.draw(f"operation_errors.{operation}", probability):
            if faults.draw("operation_errors.persistent", faults.plan.operation_errors.persistent_probability):
                faults.persistent_errors.add(key)
            raise _error(errno.EIO, path)

    def _write_faults(self, faults: FaultInjector, path: str, growth_bytes: int) -> None:
        """EIO, EROFS or ENOSPC for a write or truncate that grows files by `growth_bytes`."""
        if faults.quiet and not faults.persistent_errors:
            return
        plan = faults.plan
        self._operation_fault(faults, "write", path, plan.operation_errors.write_probability)
        if faults.draw("permission_errors.write", plan.permission_errors.write_probability):
            raise _error(errno.EROFS, path)
        if growth_bytes > 0:
            capacity = plan.disk_full.capacity_bytes
            full = bool(capacity) and self.tree.file_bytes_total() + growth_bytes > capacity
            if faults.draw("disk_full", 1.0 if full else 0.0) or full:
                raise _error(errno.ENOSPC, path)

    # -- open --------------------------------------------------------------------------

    def open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        """os.open: a new descriptor (see the module docstring for flags and errnos)."""
        self.tree.tick()
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise UnmodelledCall("os.open(O_TMPFILE)")
        if flags & os.O_CREAT and flags & os.O_DIRECTORY:
            raise _error(errno.EINVAL, path)
        writes = flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
        faults = self.faults
        if faults is not None and not (faults.quiet and not faults.persistent_errors):
            absolute = self._absolute(path, dir_fd)
            self._operation_fault(faults, "open", absolute, faults.plan.operation_errors.open_probability)
            if writes and faults.draw("permission_errors.open", faults.plan.permission_errors.open_probability):
                raise _error(errno.EACCES, path)
        resolved = self._resolve(path, dir_fd, "os.open")
        number = resolved.inode
        if flags & os.O_CREAT:
            number = self._open_creating(path, dir_fd, flags, mode, resolved)
        elif number is None:
            raise _error(errno.ENOENT, path)
        node = self.tree.nodes[number]
        if isinstance(node, DirNode):
            if writes or flags & (os.O_CREAT | os.O_TRUNC):
                raise _error(errno.EISDIR, path)
        else:
            if resolved.trailing_slash or flags & os.O_DIRECTORY:
                raise _error(errno.ENOTDIR, path)
            if flags & os.O_TRUNC and node.data:  # Linux truncates even with O_RDONLY
                self._commit(
                    (Truncate(number, 0),), lambda: f"open({self._show(path, dir_fd)!r}, {_flag_names(flags)})"
                )
        description = _Description(number, node, flags, self._absolute(path, dir_fd))
        self.tree.pin(number)
        return self._allocate_fd(description)

    def _open_creating(self, path: str, dir_fd: int | None, flags: int, mode: int, resolved: _Resolved) -> int:
        """open with O_CREAT: the inode opened, created (and recorded) when missing."""
        if resolved.trailing_slash and resolved.name not in _SPECIAL_NAMES:
            raise _error(errno.EISDIR, path)
        if resolved.name in _SPECIAL_NAMES:
            raise _error(errno.EEXIST if flags & os.O_EXCL else errno.EISDIR, path)
        if resolved.inode is not None:
            if flags & os.O_EXCL:
                raise _error(errno.EEXIST, path)
            return resolved.inode
        parent = self.tree.nodes[resolved.parent]
        if not parent.linked:
            raise _error(errno.ENOENT, path)  # creating in a removed directory
        number = self.tree.new_inode_number()
        create = Create(resolved.parent, resolved.name, number, mode & ~self.umask & 0o7777)
        self._commit((create,), lambda: f"open({self._show(path, dir_fd)!r}, {_flag_names(flags)}, {oct(mode)})")
        return number

    # -- data --------------------------------------------------------------------------

    def read(self, fd: int, size: int) -> bytes:
        """os.read at the description's position (advancing it). EINVAL for a negative
        size, EBADF (not open, or not open for reading), EISDIR for a directory."""
        if size < 0:
            raise _error(errno.EINVAL)
        description = self._readable(fd)
        position = description.position
        node = description.node
        assert isinstance(node, FileNode)
        data = bytes(node.data[position : position + size])
        description.position = position + len(data)
        return data

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        """os.pread: like read at `offset`, leaving the position alone (EINVAL for a
        negative offset)."""
        if size < 0 or offset < 0:  # Linux checks both before the descriptor
            raise _error(errno.EINVAL)
        description = self._readable(fd)
        node = description.node
        assert isinstance(node, FileNode)
        return bytes(node.data[offset : offset + size])

    def _readable(self, fd: int) -> _Description:
        description = self._description(fd)
        self.tree.tick()
        if not description.readable:
            raise _error(errno.EBADF)
        if description.is_directory:
            raise _error(errno.EISDIR)
        faults = self.faults
        if faults is not None and not (faults.quiet and not faults.persistent_errors):
            self._operation_fault(faults, "read", description.path, faults.plan.operation_errors.read_probability)
        return description

    def write(self, fd: int, data: bytes) -> int:
        """os.write at the position (at the end with O_APPEND), advancing it; returns the
        byte count. EBADF (not open for writing), EIO/EROFS/ENOSPC from faults."""
        payload = _as_bytes(data)
        description = self._writable(fd)
        node = description.node
        assert isinstance(node, FileNode)
        offset = len(node.data) if description.flags & os.O_APPEND else description.position
        self._write_at(description, offset, payload, "write")
        description.position = offset + len(payload)
        return len(payload)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """os.pwrite at `offset`, leaving the position alone; with O_APPEND Linux writes
        at the end whatever `offset` says. EINVAL for a negative offset."""
        payload = _as_bytes(data)
        if offset < 0:  # Linux checks it before the descriptor
            raise _error(errno.EINVAL)
        description = self._writable(fd)
        node = description.node
        assert isinstance(node, FileNode)
        if description.flags & os.O_APPEND:
            offset = len(node.data)
        self._write_at(description, offset, payload, "pwrite")
        return len(payload)

    def _writable(self, fd: int) -> _Description:
        description = self._description(fd)
        self.tree.tick()
        if not description.writable:
            raise _error(errno.EBADF)
        return description

    def _write_at(self, description: _Description, offset: int, payload: bytes, call: str) -> None:
        """Record the write of `payload` at `offset`: Truncate to the new size first when
        it ends past the end; Sync after it on an O_SYNC/O_DSYNC description."""
        size = len(payload)
        if not size:
            return
        node = description.node
        assert isinstance(node, FileNode)
        end = offset + size
        growth = end - len(node.data)
        if self.faults is not None:
            self._write_faults(self.faults, description.path, growth)
        inode = description.inode
        write = Write(inode, offset, payload)
        ops: tuple[MicroOp, ...] = (Truncate(inode, end), write) if growth > 0 else (write,)

        def describe() -> str:
            return f"{call}(fd -> {self._show(description.path)!r}, {size} bytes at {offset})"

        if description.sync_data_only is not None:
            if self._sync_gate_fires():  # the write's own sync failed: EIO, the data dropped
                self._commit((*ops, DropDirty(inode)), describe)
                raise _error(errno.EIO)
            ops = (*ops, Sync(inode, description.sync_data_only))
        self._commit(ops, describe)

    def _sync_gate_fires(self) -> bool:
        """fsyncgate for one sync (explicit, or a write's through O_SYNC/O_DSYNC)."""
        faults = self.faults
        if faults is None or (faults.quiet and not faults.persistent_errors):
            return False
        return faults.draw("fsync_gate", faults.plan.fsync_gate.probability)

    def lseek(self, fd: int, position: int, how: int) -> int:
        """os.lseek: SEEK_SET/CUR/END, and SEEK_DATA/SEEK_HOLE (no holes are modelled:
        data everywhere before the end; ENXIO at or past it). EINVAL for a bad `how` or a
        negative result."""
        description = self._description(fd)
        self.tree.tick()
        node = description.node
        size = len(node.data) if isinstance(node, FileNode) else EXT4_DIRECTORY_END
        if how == os.SEEK_SET:
            new = position
        elif how == os.SEEK_CUR:
            new = description.position + position
        elif how == os.SEEK_END:
            new = size + position
            if description.is_directory and new > EXT4_DIRECTORY_END:
                raise _error(errno.EINVAL)  # past ext4's end of a directory: the sum overflows
        elif how in (os.SEEK_DATA, os.SEEK_HOLE) and not description.is_directory:
            if position < 0 or position >= size:
                raise _error(errno.ENXIO)
            new = position if how == os.SEEK_DATA else size
        else:
            raise _error(errno.EINVAL)
        if new < 0:
            raise _error(errno.EINVAL)
        description.position = new
        return new

    def ftruncate(self, fd: int, size: int) -> None:
        """os.ftruncate: cut or extend (zeros). EINVAL for a negative size or a
        descriptor not open for writing (Linux), EBADF when not open (a negative size is
        EINVAL first, as Linux checks it before the descriptor)."""
        if size < 0:
            raise _error(errno.EINVAL)
        description = self._description(fd)
        self.tree.tick()
        if not description.writable:
            raise _error(errno.EINVAL)
        self._truncate(description.inode, description.path, size)

    def truncate(self, path: str, size: int) -> None:
        """os.truncate of a path: EINVAL (negative size, checked first), ENOENT,
        ENOTDIR, EISDIR."""
        self.tree.tick()
        if size < 0:
            raise _error(errno.EINVAL, path)
        number = self._existing(path, None, "os.truncate")
        if isinstance(self.tree.nodes[number], DirNode):
            raise _error(errno.EISDIR, path)
        self._truncate(number, self._absolute(path, None), size)

    def _truncate(self, number: int, path: str, size: int) -> None:
        node = self.tree.nodes[number]
        assert isinstance(node, FileNode)
        if self.faults is not None:
            self._write_faults(self.faults, path, size - len(node.data))
        if size != len(node.data):
            self._commit((Truncate(number, size),), lambda: f"truncate({self._show(path)!r}, {size})")

    # -- durability --------------------------------------------------------------------

    def fsync(self, fd: int) -> None:
        """os.fsync: records Sync (of a directory too). EBADF; EIO from faults (with
        `fsync_gate`, after recording DropDirty: the dirty data is gone for good)."""
        self._sync(fd, data_only=False)

    def sync(self) -> None:
        """os.sync: every file and directory of the tree is written back; records a Sync
        of each inode reachable or open, in number order (the simulated disk has no
        failed writeback to report: os.sync returns nothing)."""
        self.tree.tick()
        inodes = sorted(self.tree.nodes)
        self._commit([Sync(inode) for inode in inodes], lambda: "sync()")

    def fdatasync(self, fd: int) -> None:
        """os.fdatasync: records Sync(data_only=True); errors as fsync."""
        self._sync(fd, data_only=True)

    def _sync(self, fd: int, data_only: bool) -> None:
        description = self._description(fd)
        self.tree.tick()
        inode = description.inode
        call = "fdatasync" if data_only else "fsync"
        faults = self.faults
        if faults is not None and not (faults.quiet and not faults.persistent_errors):
            plan = faults.plan
            self._operation_fault(faults, "sync", description.path, plan.operation_errors.sync_probability)
            if self._sync_gate_fires():
                self._commit((DropDirty(inode),), lambda: f"{call}(fd -> {self._show(description.path)!r}) failed")
                raise _error(errno.EIO)
        self._commit((Sync(inode, data_only),), lambda: f"{call}(fd -> {self._show(description.path)!r})")

    # -- metadata ----------------------------------------------------------------------

    def _stat_of(self, number: int, node: Node) -> os.stat_result:
        if isinstance(node, FileNode):
            size = len(node.data)
            mode = stat.S_IFREG | node.mode
            links = 1 if node.linked else 0
        else:
            size = DIRECTORY_SIZE_BYTES if node.linked else 0
            mode = stat.S_IFDIR | node.mode
            links = 2 + self.tree.subdirectory_count(node) if node.linked else 0
        blocks = (size + BLOCK_BYTES - 1) // BLOCK_BYTES * (BLOCK_BYTES // 512)
        atime, mtime, ctime = node.atime_ns, node.mtime_ns, node.ctime_ns
        return os.stat_result(
            (
                *(mode, number, SIM_DEVICE, links, 0, 0, size),
                *(atime // 1_000_000_000, mtime // 1_000_000_000, ctime // 1_000_000_000),
                *(atime / 1e9, mtime / 1e9, ctime / 1e9),
                *(atime, mtime, ctime, BLOCK_BYTES, blocks, 0),
            )
        )

    def fstat(self, fd: int) -> os.stat_result:
        """os.fstat (works on an unlinked file: st_nlink 0). EBADF."""
        description = self._description(fd)
        self.tree.tick()
        return self._stat_of(description.inode, description.node)

    def stat(self, path: str, *, dir_fd: int | None = None, follow_symlinks: bool = True) -> os.stat_result:
        """os.stat (no symlinks are modelled, so `follow_symlinks` changes nothing).
        ENOENT, ENOTDIR."""
        self.tree.tick()
        if path.startswith("/") and not self.owns_path(path) and self.reserves_path(normal := posixpath.normpath(path)):
            if self._root_slash.startswith(normal.rstrip("/") + "/"):
                return self._stat_of(0, DirNode(0o755, 0, CLOCK_EPOCH_NS))  # an ancestor of the root
            raise _error(errno.ENOENT, path)  # beside the root: nothing is there (creating it is refused)
        number = self._existing(path, dir_fd, "os.stat")
        return self._stat_of(number, self.tree.nodes[number])

    def lstat(self, path: str, *, dir_fd: int | None = None) -> os.stat_result:
        """os.lstat: stat (there are no symlinks)."""
        return self.stat(path, dir_fd=dir_fd)

    def chmod(self, path: str | int, mode: int, *, dir_fd: int | None = None) -> None:
        """os.chmod (an int is a descriptor: fchmod); records Chmod. ENOENT, ENOTDIR."""
        self.tree.tick()
        number, _node = self._node_of(path, dir_fd, "os.chmod")
        shown = self._show(path, dir_fd) if isinstance(path, str) else self._show(self._description(path).path)
        self._commit((Chmod(number, mode & 0o7777),), lambda: f"chmod({shown!r}, {oct(mode)})")

    def access(self, path: str, mode: int, *, dir_fd: int | None = None) -> bool:
        """os.access for root: True when the path exists (X_OK also needs a directory
        or some execute bit); False on any error, as os.access."""
        self.tree.tick()
        if mode & ~(os.R_OK | os.W_OK | os.X_OK):
            return False
        try:
            number = self._existing(path, dir_fd, "os.access")
        except OSError:
            return False
        node = self.tree.nodes[number]
        return not mode & os.X_OK or isinstance(node, DirNode) or bool(node.mode & 0o111)

    def utime(
        self,
        path: str | int,
        times: tuple[float, float] | None = None,
        *,
        ns: tuple[int, int] | None = None,
        dir_fd: int | None = None,
    ) -> None:
        """os.utime: set access and modification times (now, on the virtual clock, when
        neither `times` nor `ns` is given). ValueError for both; errors carry no
        filename, as os.utime's."""
        now = self.tree.tick()
        if times is not None and ns is not None:
            raise ValueError("utime: you may specify either 'times' or 'ns' but not both")
        if times is not None:
            if not isinstance(times, tuple) or len(times) != 2:
                raise TypeError("utime: 'times' must be either a tuple of two ints or None")
            atime_ns, mtime_ns = (_seconds_to_ns(value) for value in times)
        elif ns is not None:
            if not isinstance(ns, tuple) or len(ns) != 2:
                raise TypeError("utime: 'ns' must be a tuple of two ints")
            atime_ns, mtime_ns = ns
        else:
            atime_ns = mtime_ns = now
        try:
            number, _node = self._node_of(path, dir_fd, "os.utime")
        except OSError as error:
            raise _error(error.errno or errno.EIO) from None
        self.tree.set_times(number, atime_ns, mtime_ns)

    # -- directory entries -------------------------------------------------------------

    def mkdir(self, path: str, mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        """os.mkdir; records Mkdir. EEXIST (also for "." and the root), ENOENT, ENOTDIR."""
        self.tree.tick()
        resolved = self._resolve(path, dir_fd, "os.mkdir")
        if resolved.name in _SPECIAL_NAMES or resolved.inode is not None:
            raise _error(errno.EEXIST, path)
        if not self.tree.nodes[resolved.parent].linked:
            raise _error(errno.ENOENT, path)
        number = self.tree.new_inode_number()
        op = Mkdir(resolved.parent, resolved.name, number, mode & ~self.umask & 0o1777)
        self._commit((op,), lambda: f"mkdir({self._show(path, dir_fd)!r})")

    def unlink(self, path: str, *, dir_fd: int | None = None) -> None:
        """os.unlink/os.remove; records Unlink. ENOENT, EISDIR (a directory, ".", "d/"),
        ENOTDIR ("file/"), EIO from faults."""
        self.tree.tick()
        resolved = self._resolve(path, dir_fd, "os.unlink")
        if resolved.name in _SPECIAL_NAMES:
            raise _error(errno.EISDIR, path)
        number = resolved.inode
        if number is None:
            raise _error(errno.ENOENT, path)
        if isinstance(self.tree.nodes[number], DirNode):
            raise _error(errno.EISDIR, path)
        if resolved.trailing_slash:
            raise _error(errno.ENOTDIR, path)
        self._entry_fault("unlink", path, dir_fd)
        op = Unlink(resolved.parent, resolved.name, number)
        self._commit((op,), lambda: f"unlink({self._show(path, dir_fd)!r})")

    def rmdir(self, path: str, *, dir_fd: int | None = None) -> None:
        """os.rmdir; records Rmdir. EINVAL ("."), ENOTEMPTY (".." or not empty), EBUSY
        (the root), ENOENT, ENOTDIR, EIO from faults (`operation_errors.unlink`)."""
        self.tree.tick()
        resolved = self._resolve(path, dir_fd, "os.rmdir")
        special = {"": errno.EBUSY, ".": errno.EINVAL, "..": errno.ENOTEMPTY}.get(resolved.name)
        if special is not None:
            raise _error(special, path)
        number = resolved.inode
        if number is None:
            raise _error(errno.ENOENT, path)
        node = self.tree.nodes[number]
        if not isinstance(node, DirNode):
            raise _error(errno.ENOTDIR, path)
        if node.entries:
            raise _error(errno.ENOTEMPTY, path)
        self._entry_fault("unlink", path, dir_fd)
        op = Rmdir(resolved.parent, resolved.name, number)
        self._commit((op,), lambda: f"rmdir({self._show(path, dir_fd)!r})")

    def _entry_fault(self, operation: str, path: str, dir_fd: int | None) -> None:
        faults = self.faults
        if faults is not None and not (faults.quiet and not faults.persistent_errors):
            probability = getattr(faults.plan.operation_errors, f"{operation}_probability")
            assert isinstance(probability, float)
            self._operation_fault(faults, operation, self._absolute(path, dir_fd), probability)

    def rename(self, source: str, target: str, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None) -> None:
        """os.rename/os.replace; records Unlink (or Rmdir) of an existing target, then
        Rename. Errors name both paths: ENOENT, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL (a
        directory into its own subtree), EBUSY (".", "..", the root), EXDEV (a target
        outside the simulated root), EIO from faults."""
        self.tree.tick()
        for path in (source, target):
            if path.startswith("/") and not self.owns_path(normal := posixpath.normpath(path)):
                if self.reserves_path(normal):
                    raise UnmodelledCall("os.rename", f"{path!r} is outside the simulated root {self.root!r}")
                raise _error(errno.EXDEV, source, target)  # one side is on the real disk
        try:
            old = self._resolve(source, src_dir_fd, "os.rename", check_last=False)
            new = self._resolve(target, dst_dir_fd, "os.rename", check_last=False)
        except OSError as error:
            raise _error(error.errno or errno.EIO, source, target) from None
        self._check_rename(old, new, source, target)
        if old.inode == new.inode:
            return  # the same entry (no hard links): nothing to do
        assert old.inode is not None
        self._entry_fault("rename", source, src_dir_fd)
        ops: list[MicroOp] = []
        if new.inode is not None:
            replaced_is_directory = isinstance(self.tree.nodes[new.inode], DirNode)
            removal = Rmdir if replaced_is_directory else Unlink
            ops.append(removal(new.parent, new.name, new.inode))
        ops.append(Rename(old.parent, old.name, new.parent, new.name, old.inode))
        self._commit(ops, lambda: f"rename({self._show(source, src_dir_fd)!r}, {self._show(target, dst_dir_fd)!r})")

    def _check_rename(self, old: _Resolved, new: _Resolved, source: str, target: str) -> None:
        """Linux's checks of renameat2, in its order."""
        if old.name in _SPECIAL_NAMES or new.name in _SPECIAL_NAMES:
            raise _error(errno.EBUSY, source, target)
        # both parents were walked; now the source's final name is looked up, then the target's
        if _name_too_long(old.name):
            raise _error(errno.ENAMETOOLONG, source, target)
        if old.inode is None:
            raise _error(errno.ENOENT, source, target)
        if _name_too_long(new.name):
            raise _error(errno.ENAMETOOLONG, source, target)
        nodes = self.tree.nodes
        moved = nodes[old.inode]
        if isinstance(moved, FileNode) and (old.trailing_slash or new.trailing_slash):
            raise _error(errno.ENOTDIR, source, target)
        if isinstance(moved, DirNode) and self.tree.is_ancestor(old.inode, new.parent):
            raise _error(errno.EINVAL, source, target)  # a directory into its own subtree
        if new.inode is None:
            if not nodes[new.parent].linked:
                raise _error(errno.ENOENT, source, target)
            return
        replaced = nodes[new.inode]
        if old.inode == new.inode:
            return
        if isinstance(replaced, DirNode) and self.tree.is_ancestor(new.inode, old.parent):
            raise _error(errno.ENOTEMPTY, source, target)  # the target contains the source
        if isinstance(moved, DirNode) and isinstance(replaced, FileNode):
            raise _error(errno.ENOTDIR, source, target)
        if isinstance(moved, FileNode) and isinstance(replaced, DirNode):
            raise _error(errno.EISDIR, source, target)
        if isinstance(replaced, DirNode) and replaced.entries:
            raise _error(errno.ENOTEMPTY, source, target)

    def replace(
        self, source: str, target: str, *, src_dir_fd: int | None = None, dst_dir_fd: int | None = None
    ) -> None:
        """os.replace: the same as rename on POSIX."""
        self.rename(source, target, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    def listdir(self, path: str | int) -> list[str]:
        """os.listdir, sorted by name (an int is a directory descriptor; a removed
        directory lists nothing). ENOENT, ENOTDIR."""
        self.tree.tick()
        return sorted(self._directory_of(path, "os.listdir").entries)

    def scandir_entries(self, path: str | int) -> list[tuple[str, int, bool]]:
        """(name, inode, is_dir) of each entry, sorted by name; errors as listdir."""
        self.tree.tick()
        entries = self._directory_of(path, "os.scandir").entries
        nodes = self.tree.nodes
        return [(name, entries[name], isinstance(nodes[entries[name]], DirNode)) for name in sorted(entries)]

    # -- copies and locks --------------------------------------------------------------

    def sendfile(self, out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        """os.sendfile between two simulated descriptors: up to `count` bytes from `in_fd`
        (at `offset`, or at its position, advancing it, when None) written to `out_fd` as
        `write` does. EBADF (either not open, in not readable, out not writable), EINVAL
        (in is a directory, out has O_APPEND, negative offset)."""
        source = self._description(in_fd)
        destination = self._description(out_fd)
        if not source.readable or not destination.writable:
            raise _error(errno.EBADF)
        if source.is_directory or destination.flags & os.O_APPEND or (offset is not None and offset < 0):
            raise _error(errno.EINVAL)
        data = self.read(in_fd, count) if offset is None else self.pread(in_fd, count, offset)
        self._write_at(destination, destination.position, data, "sendfile")
        destination.position += len(data)
        return len(data)

    def flock(self, fd: int, operation: int) -> None:
        """fcntl.flock: LOCK_SH/LOCK_EX (| LOCK_NB) or LOCK_UN, held by the open file
        description (dup'd descriptors share it). Converting a lock first drops the old
        one, as Linux does. EINVAL for a bad operation; BlockingIOError (EWOULDBLOCK) for a
        LOCK_NB conflict; EDEADLK for a blocking one (it would wait forever here)."""
        description = self._description(fd)
        self.tree.tick()
        kind = operation & ~fcntl.LOCK_NB
        if kind not in (fcntl.LOCK_SH, fcntl.LOCK_EX, fcntl.LOCK_UN):
            raise _error(errno.EINVAL)
        holders = self._flocks.setdefault(description.inode, {})
        current = holders.get(description)
        if current == kind:
            return
        holders.pop(description, None)
        if kind == fcntl.LOCK_UN:
            return
        for holder, held in holders.items():
            if holder is not description and fcntl.LOCK_EX in (held, kind):
                break
        else:
            holders[description] = kind
            return
        if operation & fcntl.LOCK_NB:
            raise _error(errno.EWOULDBLOCK)
        name = "LOCK_EX" if kind == fcntl.LOCK_EX else "LOCK_SH"
        raise OSError(
            errno.EDEADLK,
            f"flock({name}) of {self._show(description.path)!r} would wait forever: another open file "
            "description holds a conflicting lock and the simulation is single-threaded",
        )

    def lockf(self, fd: int, command: int, length: int = 0, start: int = 0, whence: int = 0) -> None:
        """fcntl.lockf (LOCK_UN, or LOCK_SH/LOCK_EX | LOCK_NB): POSIX record locks of one
        process never conflict, so it succeeds. EBADF (not open; LOCK_SH needs a readable
        descriptor, LOCK_EX a writable one); ValueError for an unknown command, as
        fcntl.lockf."""
        description = self._description(fd)
        self.tree.tick()
        if command == fcntl.LOCK_UN:
            return
        if command & fcntl.LOCK_SH:
            if not description.readable:
                raise _error(errno.EBADF)
        elif command & fcntl.LOCK_EX:
            if not description.writable:
                raise _error(errno.EBADF)
        else:
            raise ValueError("unrecognized lockf argument")

    def fcntl(self, fd: int, command: int, argument: int = 0) -> int:
        """fcntl.fcntl: F_GETFD/F_SETFD (FD_CLOEXEC), F_GETFL/F_SETFL (Linux's visible and
        settable flags), F_DUPFD/F_DUPFD_CLOEXEC, and F_FULLFSYNC as fsync. Any other
        command raises UnmodelledCall. EBADF."""
        description = self._description(fd)
        if command == fcntl.F_GETFD:
            return 0 if fd in self._inheritable else fcntl.FD_CLOEXEC
        if command == fcntl.F_SETFD:
            self.set_inheritable(fd, not argument & fcntl.FD_CLOEXEC)
            return 0
        if command == fcntl.F_GETFL:
            return (description.flags & ~_OPEN_ONLY_FLAGS) | _KERNEL_LARGEFILE
        if command == fcntl.F_SETFL:
            description.flags = (description.flags & ~_SETFL_FLAGS) | (argument & _SETFL_FLAGS)
            return 0
        if command in (fcntl.F_DUPFD, fcntl.F_DUPFD_CLOEXEC):
            description.references += 1
            new_fd = self._allocate_fd(description, minimum=argument)
            if command == fcntl.F_DUPFD:
                self._inheritable.add(new_fd)
            return new_fd
        if command == F_FULLFSYNC:
            self.fsync(fd)
            return 0
        raise UnmodelledCall(f"fcntl.fcntl(fd, {command})")


_FLAG_NAMES = (
    "O_APPEND",
    "O_CREAT",
    "O_EXCL",
    "O_TRUNC",
    "O_DIRECTORY",
    "O_SYNC",
    "O_DSYNC",
    "O_NONBLOCK",
    "O_NOFOLLOW",
    "O_CLOEXEC",
)


def _flag_names(flags: int) -> str:
    """`O_WRONLY|O_CREAT|O_TRUNC` for call descriptions."""
    access = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}
    names = [access.get(flags & os.O_ACCMODE, str(flags & os.O_ACCMODE))]
    for name in _FLAG_NAMES:
        value = getattr(os, name)
        if flags & value == value and not (name == "O_DSYNC" and flags & os.O_SYNC == os.O_SYNC):
            names.append(name)
    return "|".join(names)


def _seconds_to_ns(seconds: float) -> int:
    """Seconds as nanoseconds, rounded down as os.utime does."""
    if isinstance(seconds, int):
        return seconds * 1_000_000_000
    fraction, whole = math.modf(seconds)
    nanoseconds = math.floor(fraction * 1e9)
    if nanoseconds < 0:
        nanoseconds += 1_000_000_000
        whole -= 1
    return int(whole) * 1_000_000_000 + nanoseconds
