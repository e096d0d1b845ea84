"""Interposition: unmodified Python code runs on a `PosixView` for one root and on the real OS elsewhere.

`interpose(view)` replaces, for the duration of a `with` block, the functions of `os`
(and `posix`, the same objects), `io.open`/`_io.open`/`builtins.open`, `fcntl.flock`,
`lockf`, `fcntl` and `ioctl`, and `mmap.mmap` by routers. A router sends a call to the
view when it names a simulated path (in the root's top directory, `/kvsim` for
`/kvsim/root`, after making relative paths absolute against the real working directory:
the view answers for the root and its ancestors and refuses the rest, see
`PosixView.reserves_path`) or a simulated descriptor (a number >= `SIM_FD_BASE`), or a
path relative to a simulated `dir_fd`; anything else goes to the saved real function
with the same arguments, so pytest, hypothesis, imports and real temporary files are
unaffected. The pass-through costs one substring test on the path. A path holding a NUL
goes to the real function too, which refuses it before any system call.

Reaching code that captured references early (as pyfakefs does, the only idea taken
from it): after patching the modules, every loaded module's globals, the class
dictionaries of the classes it defines and the default arguments of its functions
(`tempfile._TemporaryFileCloser.close(self, unlink=_os.unlink)`) are scanned for objects
identical to a replaced original, and replaced in turn (class attributes as
`staticmethod`, so a router does not become a bound method). A `sys.meta_path` finder
scans modules imported while active the same way. On exit everything is put back
exactly: each slot changed is restored (when it still holds what was put there), and
a last scan replaces any router still referenced by a module with its original.

Guards: every other `os` function that takes a path or a descriptor (`link`,
`symlink`, `readlink`, `chdir`, `chown`, `statvfs`, `getxattr`, `posix_fallocate`,
`copy_file_range`, `readv`, `dup2`, `execv`, ...) raises `UnmodelledCall` naming the call
when it gets a simulated argument; so does `mmap.mmap` on a simulated descriptor.
`os.listxattr` of a simulated path is [] (no extended attributes), so `shutil.copy2`
works. `os.open` with `O_TMPFILE` on a simulated directory is EOPNOTSUPP, the answer of
a file system without it, so `tempfile.TemporaryFile` falls back to a named file.

Not reached, and why nothing reaches the real disk anyway: objects built by C code
(`io.FileIO(path)` called directly, `sqlite3`, `dbm.gnu`), references held in instance
attributes, closures or containers. `interpose` refuses a root that exists on the real
disk, so such a stray call fails with ENOENT instead of touching real files.

tempfile's random names come from a sequence seeded with `TEMPFILE_NAME_SEED` while
active (reseeded when `Interposition.view` is swapped), so a workload's temporary
names are the same in every run.
"""

from __future__ import annotations

import _io
import builtins
import contextlib
import errno
import fcntl
import importlib.machinery
import io
import mmap
import os
import posix
import random
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import UnmodelledCall
from .files import SimScandirIterator, sim_open, sim_scandir, simulated_path
from .view import SIM_FD_BASE, PosixView

TEMPFILE_NAME_SEED = 0  # any fixed number: names only need to repeat from run to run
_OWN_PACKAGE = __name__.rpartition(".")[0]
_O_TMPFILE_BIT = getattr(os, "O_TMPFILE", 0) & ~os.O_DIRECTORY  # __O_TMPFILE: O_TMPFILE without O_DIRECTORY

_ACTIVE: Interposition | None = None  # at most one interposition at a time

_real_io_open = io.open
_ROUTED_OS_NAMES = (
    *("open", "close", "read", "write", "pread", "pwrite", "lseek", "ftruncate", "truncate", "fsync"),
    *("fdatasync", "dup", "fstat", "stat", "lstat", "rename", "replace", "unlink", "remove", "mkdir"),
    *("rmdir", "listdir", "scandir", "chmod", "fchmod", "access", "utime", "sendfile", "listxattr"),
    *("isatty", "get_inheritable", "set_inheritable", "get_blocking", "set_blocking", "device_encoding"),
    "sync",
)
# The real functions, saved when this module is imported ("fcntl.flock", "io.open", "mmap.mmap").
_REAL: dict[str, Any] = {name: getattr(os, name) for name in _ROUTED_OS_NAMES if hasattr(os, name)}
_REAL.update({f"fcntl.{name}": getattr(fcntl, name) for name in ("flock", "lockf", "fcntl", "ioctl")})
_REAL.update({"io.open": io.open, "mmap.mmap": mmap.mmap})
Target = tuple[str | int, int | None]  # what the view gets: its path (or a descriptor), and a dir_fd


def _text(path: Any) -> str | None:
    """`path` (str, bytes or PathLike) as str; None when it is none of these."""
    if type(path) is str:
        return path
    try:
        value = os.fspath(path)
    except TypeError:
        return None
    return value if isinstance(value, str) else os.fsdecode(value)


def _shown(path: Any) -> Any:
    """The filename a real call's OSError carries for `path`: the path after fspath."""
    try:
        return os.fspath(path)
    except TypeError:
        return path


def _fd_view(fd: Any) -> PosixView | None:
    """The active view when `fd` is a simulated descriptor, else None."""
    state = _ACTIVE
    if state is not None and isinstance(fd, int) and fd >= SIM_FD_BASE:
        return state._view
    return None


def _descriptor(file: Any) -> Any:
    """What `fcntl.flock`/`os.fsync` accept: an int, or an object with fileno()."""
    if isinstance(file, int):
        return file
    fileno = getattr(file, "fileno", None)
    return file if fileno is None else fileno()


class Interposition:
    """The routing state of one `interpose` block; `view` may be reassigned at any time
    (the explorer checks thousands of crash states without re-patching)."""

    def __init__(self, view: PosixView) -> None:
        self._view = view
        self._probe = _probe(view)
        self._slots: list[_Slot] = []
        self._finder: _ScanningFinder | None = None
        self._saved_names: object = None
        self._supports: list[tuple[set[Any], Any]] = []

    @property
    def view(self) -> PosixView:
        return self._view

    @view.setter
    def view(self, view: PosixView) -> None:
        if view.root != self._view.root:
            _check_root(view)
        self._view = view
        self._probe = _probe(view)
        _seed_tempfile_names()

    def owned(self, text: str) -> str | None:
        """The view's path for `text` when it is simulated (see `simulated_path`)."""
        if self._probe not in text:  # the fast pass-through: the root's last name is absent
            return None
        return simulated_path(self._view, text)

    def locate(self, path: Any, dir_fd: Any = None) -> tuple[str, int | None] | None:
        """Where a path argument (not a descriptor) goes: the view's path and dir_fd, or
        None for the real OS. An absolute path ignores `dir_fd`, as the kernel does."""
        text = _text(path)
        if text is None:
            return None
        if dir_fd is None or text.startswith("/"):
            owned = self.owned(text)
            return None if owned is None else (owned, None)
        if isinstance(dir_fd, int) and dir_fd >= SIM_FD_BASE:
            return (text, dir_fd)
        return None

    def locate_or_fd(self, path: Any, dir_fd: Any = None) -> Target | None:
        """`locate`, for the calls that also take a descriptor in place of a path."""
        if isinstance(path, int):
            return (path, None) if path >= SIM_FD_BASE else None
        return self.locate(path, dir_fd)

    def simulated(self, value: Any) -> bool:
        """Whether a guarded call's argument is a simulated descriptor or path."""
        if isinstance(value, int):
            return value >= SIM_FD_BASE
        text = _text(value)
        return text is not None and self.owned(text) is not None


def _probe(view: PosixView) -> str:
    """A substring every path in the root's top directory contains, however it is
    spelled: that directory's name (`kvsim` for `/kvsim/root`; the view answers for the
    whole directory, `PosixView.reserves_path`). A relative path can only reach it by
    naming it, since the real working directory is never inside it."""
    return view.root.split("/")[1]


def _check_root(view: PosixView) -> None:
    """Raises ValueError unless the root is absolute, normalized, not "/" and absent
    from the real disk (so a call that escapes interposition cannot touch real files)."""
    root = view.root
    if not root.startswith("/") or root == "/" or os.path.normpath(root) != root:
        raise ValueError(f"the simulated root must be an absolute normalized path other than '/': {root!r}")
    if os.path.lexists(root):
        raise ValueError(f"the simulated root {root!r} exists on the real disk; choose a path that does not")


def _seed_tempfile_names() -> None:
    """tempfile's candidate names, from a sequence seeded with TEMPFILE_NAME_SEED."""
    sequence: Any = getattr(tempfile, "_RandomNameSequence")()  # noqa: B009  (private, not in the stubs)
    sequence._rng = random.Random(TEMPFILE_NAME_SEED)
    sequence._rng_pid = os.getpid()
    setattr(tempfile, "_name_sequence", sequence)  # noqa: B010


def _named(error: OSError, filename: Any, filename2: Any = None) -> OSError:
    """`error` with the filenames a real call would show (what the caller passed)."""
    if error.filename is filename and error.filename2 is filename2:
        return error
    if filename is None or (filename2 is None and error.filename2 is not None):
        # an attribute set to None would print as ": None"; only the constructor omits it
        fresh = OSError(error.errno, error.strerror, *(() if filename is None else (filename, None, filename2)))
        fresh.__traceback__ = error.__traceback__
        return fresh
    error.filename = filename
    if filename2 is not None:
        error.filename2 = filename2
    return error


# -- routers: the os functions on paths ------------------------------------------------------


def _open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
    state = _ACTIVE
    if state is not None:
        where = state.locate(path, dir_fd)
        if where is not None:
            if flags & _O_TMPFILE_BIT:
                raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP), _shown(path))
            try:
                return state._view.open(where[0], flags, mode, dir_fd=where[1])
            except OSError as error:
                raise _named(error, _shown(path)) from None
    return _REAL["open"](path, flags, mode, dir_fd=dir_fd)  # type: ignore[no-any-return]


def _stat(path: Any, *, dir_fd: Any = None, follow_symlinks: bool = True) -> os.stat_result:
    state = _ACTIVE
    if state is not None:
        where = state.locate_or_fd(path, dir_fd)
        if where is not None:
            target, target_dir_fd = where
            try:
                if isinstance(target, int):
                    return state._view.fstat(target)
                return state._view.stat(target, dir_fd=target_dir_fd, follow_symlinks=follow_symlinks)
            except OSError as error:
                raise _named(error, _shown(path)) from None
    return _REAL["stat"](path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)  # type: ignore[no-any-return]


def _lstat(path: Any, *, dir_fd: Any = None) -> os.stat_result:
    state = _ACTIVE
    if state is not None:
        where = state.locate(path, dir_fd)
        if where is not None:
            try:
                return state._view.lstat(where[0], dir_fd=where[1])
            except OSError as error:
                raise _named(error, _shown(path)) from None
    return _REAL["lstat"](path, dir_fd=dir_fd)  # type: ignore[no-any-return]


def _make_entry_call(name: str) -> Callable[..., None]:
    """A router for `unlink`, `remove` and `rmdir`: (path, *, dir_fd=None)."""
    method = "unlink" if name == "remove" else name

    def entry_call(path: Any, *, dir_fd: Any = None) -> None:
        state = _ACTIVE
        if state is not None:
            where = state.locate(path, dir_fd)
            if where is not None:
                try:
                    return getattr(state._view, method)(where[0], dir_fd=where[1])  # type: ignore[no-any-return]
                except OSError as error:
                    raise _named(error, _shown(path)) from None
        return _REAL[name](path, dir_fd=dir_fd)  # type: ignore[no-any-return]

    entry_call.__name__ = entry_call.__qualname__ = name
    return entry_call


def _mkdir(path: Any, mode: int = 0o777, *, dir_fd: Any = None) -> None:
    state = _ACTIVE
    if state is not None:
        where = state.locate(path, dir_fd)
        if where is not None:
            try:
                return state._view.mkdir(where[0], mode, dir_fd=where[1])
            except OSError as error:
                raise _named(error, _shown(path)) from None
    return _REAL["mkdir"](path, mode, dir_fd=dir_fd)  # type: ignore[no-any-return]


def _make_rename(name: str) -> Callable[..., None]:
    """A router for `rename` and `replace`. One simulated and one real path: EXDEV, as
    between two file systems (so `shutil.move` copies instead)."""

    def rename(src: Any, dst: Any, *, src_dir_fd: Any = None, dst_dir_fd: Any = None) -> None:
        state = _ACTIVE
        if state is not None:
            source = state.locate(src, src_dir_fd)
            target = state.locate(dst, dst_dir_fd)
            if (source is not None or target is not None) and not _has_null(src, dst):
                if source is None or target is None:
                    raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), _shown(src), None, _shown(dst))
                try:
                    state._view.rename(source[0], target[0], src_dir_fd=source[1], dst_dir_fd=target[1])
                    return
                except OSError as error:
                    raise _named(error, _shown(src), _shown(dst)) from None
        return _REAL[name](src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)  # type: ignore[no-any-return]

    rename.__name__ = rename.__qualname__ = name
    return rename


def _has_null(*paths: Any) -> bool:
    """Whether a path argument holds a NUL: the real call then refuses it before any
    system call (with CPython's message), so it goes there."""
    return any("\0" in text for text in map(_text, paths) if text is not None)


def _listdir(path: Any = None) -> list[Any]:
    state = _ACTIVE
    if state is not None and path is not None:
        where = state.locate_or_fd(path)
        if where is not None:
            try:
                names = state._view.listdir(where[0])
            except OSError as error:
                raise (error if isinstance(path, int) else _named(error, _shown(path))) from None
            return [os.fsencode(name) for name in names] if isinstance(_shown(path), bytes) else names
    return _REAL["listdir"](path)  # type: ignore[no-any-return]


def _scandir(path: Any = None) -> Any:
    state = _ACTIVE
    if state is not None and path is not None:
        where = state.locate_or_fd(path)
        if where is not None:
            shown = None if isinstance(path, int) else _shown(path)
            iterator: SimScandirIterator = sim_scandir(state._view, where[0], shown)
            return iterator
    return _REAL["scandir"](path)


def _chmod(path: Any, mode: int, *, dir_fd: Any = None, follow_symlinks: bool = True) -> None:
    state = _ACTIVE
    if state is not None:
        where = state.locate_or_fd(path, dir_fd)
        if where is not None:
            try:
                return state._view.chmod(where[0], mode, dir_fd=where[1])
            except OSError as error:
                raise _named(error, _shown(path)) from None
    return _REAL["chmod"](path, mode, dir_fd=dir_fd, follow_symlinks=follow_symlinks)  # type: ignore[no-any-return]


def _fchmod(fd: Any, mode: int) -> None:
    view = _fd_view(fd)
    if view is not None:
        return view.chmod(fd, mode)
    return _REAL["fchmod"](fd, mode)  # type: ignore[no-any-return]


def _access(
    path: Any, mode: int, *, dir_fd: Any = None, effective_ids: bool = False, follow_symlinks: bool = True
) -> bool:
    state = _ACTIVE
    if state is not None:
        where = state.locate(path, dir_fd)
        if where is not None:
            return state._view.access(where[0], mode, dir_fd=where[1])
    real = _REAL["access"]
    return real(path, mode, dir_fd=dir_fd, effective_ids=effective_ids, follow_symlinks=follow_symlinks)  # type: ignore[no-any-return]


def _truncate(path: Any, length: int) -> None:
    state = _ACTIVE
    if state is not None:
        where = state.locate_or_fd(path)
        if where is not None:
            target = where[0]
            try:
                if isinstance(target, int):
                    return state._view.ftruncate(target, length)
                return state._view.truncate(target, length)
            except OSError as error:
                raise (error if isinstance(path, int) else _named(error, _shown(path))) from None
    return _REAL["truncate"](path, length)  # type: ignore[no-any-return]


def _utime(*args: Any, **kwargs: Any) -> None:
    state = _ACTIVE
    if state is not None:
        path = args[0] if args else kwargs.get("path")
        where = state.locate_or_fd(path, kwargs.get("dir_fd"))
        if where is not None:
            rest = {key: value for key, value in kwargs.items() if key != "path"}
            return _utime_simulated(state._view, where, *args[1:], **rest)
    return _REAL["utime"](*args, **kwargs)  # type: ignore[no-any-return]


def _utime_simulated(
    view: PosixView,
    where: Target,
    times: tuple[float, float] | None = None,
    *,
    ns: tuple[int, int] | None = None,
    dir_fd: Any = None,
    follow_symlinks: bool = True,
) -> None:
    """os.utime's arguments, bound, on the view (its errors carry no filename, as os.utime's)."""
    view.utime(where[0], times, ns=ns, dir_fd=where[1])


def _listxattr(path: Any = None, *, follow_symlinks: bool = True) -> list[str]:
    state = _ACTIVE
    if state is not None and path is not None and state.locate_or_fd(path) is not None:
        return []  # the simulated disk has no extended attributes
    return _REAL["listxattr"](path, follow_symlinks=follow_symlinks)  # type: ignore[no-any-return]


# -- routers: the os functions on descriptors --------------------------------------------------


def _make_fd_call(name: str, *, accepts_fileno: bool = False) -> Callable[..., Any]:
    """A router for a call whose first argument is a descriptor and whose view method has
    the same name and arguments (`read`, `write`, `pread`, `lseek`, `fstat`, ...). Its
    errors carry no filename, as the real ones."""
    real = _REAL[name]

    def fd_call(fd: Any, *args: Any) -> Any:
        number = _descriptor(fd) if accepts_fileno else fd
        view = _fd_view(number)
        if view is None:
            return real(number, *args)
        try:
            return getattr(view, name)(number, *args)
        except OSError as error:
            raise _named(error, None) from None

    fd_call.__name__ = fd_call.__qualname__ = name
    return fd_call


def _sendfile(out_fd: Any, in_fd: Any, offset: Any, count: int) -> int:
    """os.sendfile; between a simulated and a real descriptor it is a read then a write
    (what the kernel would move), so shutil.copyfile works across the two."""
    out_view, in_view = _fd_view(out_fd), _fd_view(in_fd)
    if out_view is None and in_view is None:
        return _REAL["sendfile"](out_fd, in_fd, offset, count)  # type: ignore[no-any-return]
    if out_view is not None and in_view is not None:
        return out_view.sendfile(out_fd, in_fd, offset, count)
    data = _read(in_fd, count) if offset is None else _pread(in_fd, count, offset)
    return _write(out_fd, data)  # type: ignore[no-any-return]


def _make_fd_flag_call(name: str, simulated: Callable[[PosixView, int, tuple[Any, ...]], Any]) -> Callable[..., Any]:
    """A router for isatty, get/set_inheritable, get/set_blocking, device_encoding."""
    real = _REAL[name]

    def fd_flag_call(fd: Any, *args: Any) -> Any:
        view = _fd_view(fd)
        if view is None:
            return real(fd, *args)
        return simulated(view, fd, args)

    fd_flag_call.__name__ = fd_flag_call.__qualname__ = name
    return fd_flag_call


def _must_be_open(view: PosixView, fd: int) -> None:
    """EBADF unless `fd` is open in `view`."""
    view.fd_flags(fd)


def _blocking(view: PosixView, fd: int, args: tuple[Any, ...]) -> bool:
    _must_be_open(view, fd)
    return True


def _set_blocking(view: PosixView, fd: int, args: tuple[Any, ...]) -> None:
    _must_be_open(view, fd)  # a regular file never blocks: the flag changes nothing


def _device_encoding(view: PosixView, fd: int, args: tuple[Any, ...]) -> None:
    return None  # not a terminal


def _isatty(view: PosixView, fd: int, args: tuple[Any, ...]) -> bool:
    return False


# -- routers: fcntl, io.open, mmap ---------------------------------------------------------------


def _flock(fd: Any, operation: int) -> None:
    number = _descriptor(fd)
    view = _fd_view(number)
    if view is None:
        return _REAL["fcntl.flock"](fd, operation)  # type: ignore[no-any-return]
    return view.flock(number, operation)


def _lockf(fd: Any, cmd: int, len: int = 0, start: int = 0, whence: int = 0) -> Any:  # noqa: A002  (fcntl's names)
    number = _descriptor(fd)
    view = _fd_view(number)
    if view is None:
        return _REAL["fcntl.lockf"](fd, cmd, len, start, whence)
    return view.lockf(number, cmd, len, start, whence)


def _fcntl(fd: Any, cmd: int, arg: Any = 0) -> Any:
    number = _descriptor(fd)
    view = _fd_view(number)
    if view is None:
        return _REAL["fcntl.fcntl"](fd, cmd, arg)
    if not isinstance(arg, int):
        raise UnmodelledCall("fcntl.fcntl", "a buffer argument on a simulated descriptor")
    return view.fcntl(number, cmd, arg)


def _open_file(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[Any, int], int] | None = None,
) -> Any:
    """io.open: sim_open for a simulated descriptor or path; the real open otherwise, but
    an opener that returns a simulated descriptor (one using a simulated dir_fd) gets a
    simulated file object over it."""
    state = _ACTIVE
    if state is not None:
        if isinstance(file, int):
            simulated = file >= SIM_FD_BASE
        else:
            text = _text(file)
            simulated = text is not None and state.owned(text) is not None
        if simulated:
            return sim_open(file, mode, buffering, encoding, errors, newline, closefd, opener, view=state._view)
        if opener is not None:
            return _open_with_opener(state, file, mode, buffering, encoding, errors, newline, closefd, opener)
    return _real_io_open(file, mode, buffering, encoding, errors, newline, closefd, opener)


class _SimulatedDescriptor(Exception):
    """An opener gave a simulated descriptor for a real path: leave the real open."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self.fd = fd


def _open_with_opener(
    state: Interposition,
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
    opener: Callable[[Any, int], int],
) -> Any:
    def checked_opener(name: Any, flags: int) -> int:
        fd = opener(name, flags)
        if isinstance(fd, int) and fd >= SIM_FD_BASE:
            raise _SimulatedDescriptor(fd)
        return fd

    try:
        return _real_io_open(file, mode, buffering, encoding, errors, newline, closefd, checked_opener)
    except _SimulatedDescriptor as escaped:
        try:
            stream = sim_open(escaped.fd, mode, buffering, encoding, errors, newline, True, view=state._view)
        except BaseException:
            state._view.close(escaped.fd)
            raise
        raw: Any = getattr(stream, "buffer", stream)
        raw = getattr(raw, "raw", raw)
        raw.name = _shown(file)
        return stream


class _GuardedMmap(mmap.mmap):
    """mmap.mmap, refusing a simulated descriptor (memory maps are not modelled)."""

    def __new__(cls, fileno: int, *args: Any, **kwargs: Any) -> _GuardedMmap:
        if _fd_view(fileno) is not None:
            raise UnmodelledCall("mmap.mmap", "memory maps of simulated files are not modelled")
        return super().__new__(cls, fileno, *args, **kwargs)


# -- guards: every other call taking a path or a descriptor -------------------------------------

# name -> (positions of path/descriptor arguments, their keyword names). Only the names the
# platform has are guarded.
_GUARDED_OS: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    "link": ((0, 1), ("src", "dst", "src_dir_fd", "dst_dir_fd")),
    "symlink": ((0, 1), ("src", "dst", "dir_fd")),
    "readlink": ((0,), ("path", "dir_fd")),
    "chdir": ((0,), ("path",)),
    "fchdir": ((0,), ("fd",)),
    "chroot": ((0,), ("path",)),
    "chown": ((0,), ("path", "dir_fd")),
    "lchown": ((0,), ("path",)),
    "fchown": ((0,), ("fd",)),
    "chflags": ((0,), ("path",)),
    "lchflags": ((0,), ("path",)),
    "lchmod": ((0,), ("path",)),
    "mkfifo": ((0,), ("path", "dir_fd")),
    "mknod": ((0,), ("path", "dir_fd")),
    "statvfs": ((0,), ("path",)),
    "fstatvfs": ((0,), ("fd",)),
    "pathconf": ((0,), ("path",)),
    "fpathconf": ((0,), ("fd",)),
    "getxattr": ((0,), ("path",)),
    "setxattr": ((0,), ("path",)),
    "removexattr": ((0,), ("path",)),
    "posix_fallocate": ((0,), ("fd",)),
    "posix_fadvise": ((0,), ("fd",)),
    "copy_file_range": ((0, 1), ("src", "dst")),
    "splice": ((0, 1), ("src", "dst")),
    "readv": ((0,), ("fd",)),
    "writev": ((0,), ("fd",)),
    "preadv": ((0,), ("fd",)),
    "pwritev": ((0,), ("fd",)),
    "dup2": ((0, 1), ("fd", "fd2")),
    "lockf": ((0,), ("fd",)),
    "execv": ((0,), ("path",)),
    "execve": ((0,), ("path",)),
    "posix_spawn": ((0,), ("path",)),
    "posix_spawnp": ((0,), ("path",)),
    "ttyname": ((0,), ("fd",)),
    "tcgetpgrp": ((0,), ("fd",)),
    "tcsetpgrp": ((0,), ("fd",)),
    "get_terminal_size": ((0,), ("fd",)),
    "login_tty": ((0,), ("fd",)),
    "setns": ((0,), ("fd",)),
    "eventfd_read": ((0,), ("fd",)),
    "eventfd_write": ((0,), ("fd",)),
}
_GUARDED_FCNTL: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {"ioctl": ((0,), ("fd",))}


def _make_guard(
    call: str, real: Callable[..., Any], positions: tuple[int, ...], keywords: tuple[str, ...], files: bool = False
) -> Callable[..., Any]:
    """A function that raises UnmodelledCall(call) for a simulated argument and calls
    `real` otherwise (`files`: the call also takes objects with fileno(), as fcntl's)."""

    def guard(*args: Any, **kwargs: Any) -> Any:
        state = _ACTIVE
        if state is not None:
            values = [args[index] for index in positions if index < len(args)]
            values += [kwargs[key] for key in keywords if key in kwargs]
            if files:
                values = [_descriptor(value) for value in values]
            if any(state.simulated(value) for value in values):
                raise UnmodelledCall(call)
        return real(*args, **kwargs)

    guard.__name__ = guard.__qualname__ = call.rpartition(".")[2]
    return guard


# -- what is patched --------------------------------------------------------------------------

_read = _make_fd_call("read")
_pread = _make_fd_call("pread")
_write = _make_fd_call("write")


def _sync() -> None:
    """os.sync: while active, writes back the simulated disk (the real one is left to
    the kernel: what a test observes of it does not depend on a sync)."""
    state = _ACTIVE
    if state is not None:
        state._view.sync()
        return
    _REAL["sync"]()


_OS_ROUTERS: dict[str, Callable[..., Any]] = {
    "sync": _sync,
    "open": _open,
    "close": _make_fd_call("close"),
    "read": _read,
    "write": _write,
    "pread": _pread,
    "pwrite": _make_fd_call("pwrite"),
    "lseek": _make_fd_call("lseek"),
    "ftruncate": _make_fd_call("ftruncate"),
    "truncate": _truncate,
    "fsync": _make_fd_call("fsync", accepts_fileno=True),
    "fdatasync": _make_fd_call("fdatasync", accepts_fileno=True),
    "dup": _make_fd_call("dup"),
    "fstat": _make_fd_call("fstat"),
    "stat": _stat,
    "lstat": _lstat,
    "rename": _make_rename("rename"),
    "replace": _make_rename("replace"),
    "unlink": _make_entry_call("unlink"),
    "remove": _make_entry_call("remove"),
    "mkdir": _mkdir,
    "rmdir": _make_entry_call("rmdir"),
    "listdir": _listdir,
    "scandir": _scandir,
    "chmod": _chmod,
    "fchmod": _fchmod,
    "access": _access,
    "utime": _utime,
    "sendfile": _sendfile,
    "listxattr": _listxattr,
    "isatty": _make_fd_flag_call("isatty", _isatty),
    "get_inheritable": _make_fd_call("get_inheritable"),
    "set_inheritable": _make_fd_call("set_inheritable"),
    "get_blocking": _make_fd_flag_call("get_blocking", _blocking),
    "set_blocking": _make_fd_flag_call("set_blocking", _set_blocking),
    "device_encoding": _make_fd_flag_call("device_encoding", _device_encoding),
}
_NAMED_ROUTERS: tuple[Callable[..., Any], ...] = (
    *(_open, _stat, _lstat, _mkdir, _listdir, _scandir, _chmod, _fchmod, _access, _truncate, _utime),
    *(_sendfile, _listxattr, _flock, _lockf, _fcntl),
)
for _function in _NAMED_ROUTERS:
    _function.__name__ = _function.__qualname__ = _function.__name__.lstrip("_")
_open_file.__name__ = _open_file.__qualname__ = "open"


def _patch_plan() -> list[tuple[types.ModuleType, str, Any, Any]]:
    """(module, attribute, original, replacement) for every module attribute replaced."""
    plan: list[tuple[types.ModuleType, str, Any, Any]] = []
    routers = {name: router for name, router in _OS_ROUTERS.items() if name in _REAL}
    for name, (positions, keywords) in _GUARDED_OS.items():
        if hasattr(os, name):
            routers[name] = _make_guard(f"os.{name}", getattr(os, name), positions, keywords)
    for module in (os, posix):
        for name, router in routers.items():
            original = _REAL.get(name, getattr(os, name))
            if getattr(module, name, None) is original:
                plan.append((module, name, original, router))
    for module in (io, _io, builtins):
        plan.append((module, "open", _REAL["io.open"], _open_file))
    fcntl_routers: dict[str, Any] = {"flock": _flock, "lockf": _lockf, "fcntl": _fcntl}
    fcntl_routers["ioctl"] = _make_guard("fcntl.ioctl", _REAL["fcntl.ioctl"], (0,), ("fd",), files=True)
    for name, router in fcntl_routers.items():
        plan.append((fcntl, name, _REAL[f"fcntl.{name}"], router))
    plan.append((mmap, "mmap", _REAL["mmap.mmap"], _GuardedMmap))
    return plan


_PLAN = _patch_plan()
_PATCHED_MODULES = tuple({id(module): module for module, _name, _original, _router in _PLAN}.values())
# id(original) -> (original, replacement), and the reverse, for the alias scans.
_REPLACEMENT_OF: dict[int, tuple[Any, Any]] = {id(original): (original, router) for _m, _n, original, router in _PLAN}
_ORIGINAL_OF: dict[int, tuple[Any, Any]] = {id(router): (router, original) for _m, _n, original, router in _PLAN}


# -- alias scans ----------------------------------------------------------------------------------


@dataclass
class _Slot:
    """One place an interposition changed: a module namespace (a dict), a class or a
    function (its `__defaults__`/`__kwdefaults__`), and what to put back there on exit
    (only when it still holds `ours`: someone else may have changed it since)."""

    owner: Any
    key: str
    restore: Any
    ours: Any

    def undo(self) -> None:
        owner = self.owner
        if isinstance(owner, dict):
            if owner.get(self.key) is self.ours:
                owner[self.key] = self.restore
            return
        current = owner.__dict__.get(self.key) if isinstance(owner, type) else getattr(owner, self.key)
        if current is self.ours:
            with contextlib.suppress(AttributeError, TypeError):
                setattr(owner, self.key, self.restore)


def _identical(table: dict[int, tuple[Any, Any]], value: Any) -> tuple[Any, Any] | None:
    """The table's pair for `value` itself (not merely an object with the same id)."""
    pair = table.get(id(value))
    return pair if pair is not None and pair[0] is value else None


def _class_attribute(router: Any) -> Any:
    """How a router is stored in a class: a function would become a method, so it is
    wrapped in staticmethod (the builtins it replaces never bind)."""
    return staticmethod(router) if isinstance(router, types.FunctionType) else router


class _AliasScan:
    """One pass over modules. `install`: originals become replacements (and routers found
    in classes become staticmethods), each change recorded in `slots`. Otherwise:
    routers left anywhere become their originals again."""

    def __init__(self, install: bool, slots: list[_Slot]) -> None:
        self._install = install
        self._slots = slots
        self._table = _REPLACEMENT_OF if install else _ORIGINAL_OF
        # ids worth a closer look (most values are none of these: one set test each)
        self._hits = set(_REPLACEMENT_OF) | set(_ORIGINAL_OF) if install else set(_ORIGINAL_OF)

    def all_modules(self) -> None:
        """Every loaded module except this package's and the patched modules themselves."""
        for name, module in list(sys.modules.items()):
            if not isinstance(module, types.ModuleType) or name == _OWN_PACKAGE:
                continue
            if name.startswith(_OWN_PACKAGE + ".") or any(module is patched for patched in _PATCHED_MODULES):
                continue
            self.module(module)

    def _swap(self, value: Any) -> Any:
        pair = _identical(self._table, value)
        return value if pair is None else pair[1]

    def module(self, module: types.ModuleType) -> None:
        """The module's globals, its classes' dictionaries, its functions' defaults."""
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            return
        module_name = namespace.get("__name__")
        hits, function_type = self._hits, types.FunctionType
        for key, value in list(namespace.items()):
            if id(value) in hits:
                self._module_value(namespace, key, value)
            elif type(value) is function_type:
                if value.__defaults__ or value.__kwdefaults__:
                    self._defaults(value)
            elif isinstance(value, type) and getattr(value, "__module__", None) == module_name:
                self._class(value)

    def _module_value(self, namespace: dict[str, Any], key: str, value: Any) -> None:
        replacement = self._swap(value)
        if replacement is not value:
            namespace[key] = replacement
            if self._install:
                self._slots.append(_Slot(namespace, key, value, replacement))
        elif self._install and (router := _identical(_ORIGINAL_OF, value)) is not None:
            # imported while active: `from os import replace` already got the router
            self._slots.append(_Slot(namespace, key, router[1], value))

    def _class_value(self, value: Any) -> tuple[Any, Any] | None:
        """(new value, value to restore) for one class attribute, or None to leave it."""
        inner = value.__func__ if isinstance(value, staticmethod) else None
        if self._install:
            pair = _identical(_REPLACEMENT_OF, value)
            if pair is not None:
                return _class_attribute(pair[1]), value
            pair = _identical(_REPLACEMENT_OF, inner) if inner is not None else None
            if pair is not None:
                return staticmethod(pair[1]), value
            pair = _identical(_ORIGINAL_OF, value)
            if pair is not None and isinstance(value, types.FunctionType):
                return staticmethod(value), pair[1]  # a router captured by a class made while active
            pair = _identical(_ORIGINAL_OF, inner) if inner is not None else None
            if pair is not None:
                return value, staticmethod(pair[1])  # staticmethod(router), made while active
            return None
        pair = _identical(_ORIGINAL_OF, value)
        if pair is not None:
            return pair[1], value
        pair = _identical(_ORIGINAL_OF, inner) if inner is not None else None
        return None if pair is None else (staticmethod(pair[1]), value)

    def _class(self, cls: type) -> None:
        hits, function_type = self._hits, types.FunctionType
        for key, value in list(vars(cls).items()):
            kind = type(value)
            if id(value) in hits or (kind is staticmethod and id(value.__func__) in hits):
                self._class_attribute(cls, key, value)
            elif kind is function_type:
                if value.__defaults__ or value.__kwdefaults__:
                    self._defaults(value)
            elif (kind is staticmethod or kind is classmethod) and type(value.__func__) is function_type:
                self._defaults(value.__func__)

    def _class_attribute(self, cls: type, key: str, value: Any) -> None:
        change = self._class_value(value)
        if change is None:
            return
        try:
            setattr(cls, key, change[0])
        except (AttributeError, TypeError):
            return
        if self._install:
            self._slots.append(_Slot(cls, key, change[1], change[0]))

    def _defaults(self, function: types.FunctionType) -> None:
        """Default arguments that captured an original (`def close(self, unlink=_os.unlink)`)."""
        table = self._table
        defaults = function.__defaults__
        if defaults and not table.keys().isdisjoint(map(id, defaults)):
            swapped = tuple(self._swap(value) for value in defaults)
            function.__defaults__ = swapped
            if self._install:
                self._slots.append(_Slot(function, "__defaults__", defaults, swapped))
        keyword_defaults = function.__kwdefaults__
        if keyword_defaults and not table.keys().isdisjoint(map(id, keyword_defaults.values())):
            swapped_keywords = {key: self._swap(value) for key, value in keyword_defaults.items()}
            function.__kwdefaults__ = swapped_keywords
            if self._install:
                self._slots.append(_Slot(function, "__kwdefaults__", keyword_defaults, swapped_keywords))


# -- modules imported while active ---------------------------------------------------------------


class _ScanningLoader:
    """A loader that runs another loader's module, then scans it for aliases. Anything
    else (get_source, get_resource_reader, ...) is the wrapped loader's."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        state = _ACTIVE
        if state is not None:
            _AliasScan(True, state._slots).module(module)

    def __getattr__(self, name: str) -> Any:
        if name == "_loader":
            raise AttributeError(name)
        return getattr(self._loader, name)


class _ScanningFinder:
    """First on sys.meta_path while active: finds nothing itself, asks the finders after
    it, and wraps the loader of the spec found in a `_ScanningLoader`."""

    def find_spec(self, fullname: str, path: Any, target: types.ModuleType | None = None) -> Any:
        for finder in list(sys.meta_path):
            if isinstance(finder, _ScanningFinder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is None:
                continue
            loader = spec.loader
            if loader is not None and hasattr(loader, "exec_module") and not isinstance(loader, _ScanningLoader):
                spec.loader = _ScanningLoader(loader)
            return spec
        return None

    def invalidate_caches(self) -> None:
        """Nothing cached here."""


# -- the context manager --------------------------------------------------------------------------


@contextlib.contextmanager
def interpose(view: PosixView) -> Iterator[Interposition]:
    """Route calls on `view.root` and on simulated descriptors to `view` (see the module
    docstring) until the block ends; yields the `Interposition` (its `view` may be
    swapped). Raises ValueError for a root that is not absolute and normalized or that
    exists on the real disk, RuntimeError when already active (swap `.view` instead) or
    when a patched function was replaced by someone else (pyfakefs, a mock)."""
    global _ACTIVE
    if _ACTIVE is not None:
        raise RuntimeError("interpose() is already active; assign Interposition.view instead of nesting")
    _check_root(view)
    for module, name, original, _router in _PLAN:
        if getattr(module, name) is not original:
            raise RuntimeError(f"{module.__name__}.{name} was replaced by someone else; cannot interpose")
    interposition = Interposition(view)
    try:
        _start(interposition)
        _ACTIVE = interposition
        yield interposition
    finally:
        _ACTIVE = None
        _stop(interposition)


def _start(interposition: Interposition) -> None:
    """Patch the modules, add the routers to os.supports_*, scan for aliases, seed
    tempfile's names and install the import hook."""
    slots = interposition._slots
    for module, name, original, router in _PLAN:
        namespace = module.__dict__
        namespace[name] = router
        slots.append(_Slot(namespace, name, original, router))
    for supported in (os.supports_fd, os.supports_dir_fd, os.supports_follow_symlinks, os.supports_effective_ids):
        for function in list(supported):
            pair = _identical(_REPLACEMENT_OF, function)
            if pair is not None and pair[1] not in supported:
                supported.add(pair[1])
                interposition._supports.append((supported, pair[1]))
    _AliasScan(True, slots).all_modules()
    interposition._saved_names = tempfile.__dict__.get("_name_sequence")
    _seed_tempfile_names()
    interposition._finder = _ScanningFinder()
    sys.meta_path.insert(0, interposition._finder)


def _stop(interposition: Interposition) -> None:
    """Undo `_start` exactly, then turn any router still referenced back into its original."""
    finder = interposition._finder
    if finder is not None and finder in sys.meta_path:
        sys.meta_path.remove(finder)
    setattr(tempfile, "_name_sequence", interposition._saved_names)  # noqa: B010
    for slot in reversed(interposition._slots):
        slot.undo()
    interposition._slots.clear()
    for supported, router in interposition._supports:
        supported.discard(router)
    interposition._supports.clear()
    _AliasScan(False, []).all_modules()
