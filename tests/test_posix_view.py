"""The POSIX view of the simulated disk (`io_backends.sim.posix.view` and `fs`).

Most calls are checked differentially: the same action runs on a real temporary
directory through `os`/`fcntl` and on a `PosixView` through its methods, from the same
starting tree, and the results, the errors (type, errno, filenames) and the trees left
behind must be identical. The rest checks what only the simulation has: the micro-ops a
call records (ALICE's split), strict and replay application of ops, images and their
digests, and inline faults.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from io_backends.sim.faults import DiskFull, FaultInjector, FaultPlan, OperationErrors
from io_backends.sim.posix.errors import UnmodelledCall
from io_backends.sim.posix.fs import CLOCK_EPOCH_NS, Image, Tree
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
from io_backends.sim.posix.view import SIM_FD_BASE, PosixView

ROOT = "/kvsim/root"
UMASK = 0o022  # the view's default; the real side runs under the same one

# -- the differential harness ----------------------------------------------------------


class RealOs:
    """The real calls under the view's method names; closes what it opened."""

    def __init__(self) -> None:
        self.fds: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        fd = os.open(path, flags, mode, dir_fd=dir_fd)
        self.fds.add(fd)
        return fd

    def dup(self, fd: int) -> int:
        new = os.dup(fd)
        self.fds.add(new)
        return new

    def close(self, fd: int) -> None:
        os.close(fd)
        self.fds.discard(fd)

    def listdir(self, path: str | int) -> list[str]:
        return sorted(os.listdir(path))

    def flock(self, fd: int, operation: int) -> None:
        fcntl.flock(fd, operation)

    def lockf(self, fd: int, command: int, length: int = 0, start: int = 0, whence: int = 0) -> None:
        fcntl.lockf(fd, command, length, start, whence)

    def fcntl(self, fd: int, command: int, argument: int = 0) -> int:
        result = fcntl.fcntl(fd, command, argument)
        assert isinstance(result, int)
        return result

    def close_all(self) -> None:
        for fd in sorted(self.fds):
            os.close(fd)
        self.fds.clear()


Action = Callable[[Any, str], object]


def outcome(api: Any, root: str, action: Action) -> tuple[object, ...]:
    """What `action` did: its value, or its error with filenames relative to `root`."""

    def relative(name: object) -> object:
        if isinstance(name, int):
            return "<fd>"
        if isinstance(name, str) and (name == root or name.startswith(root + "/")):
            return "<root>" + name[len(root) :]
        return name

    try:
        return ("ok", action(api, root))
    except OSError as error:
        code = errno.errorcode.get(error.errno or 0)
        return ("error", type(error).__name__, code, relative(error.filename), relative(error.filename2))
    except (ValueError, TypeError) as error:
        return ("error", type(error).__name__, str(error))


def real_image(root: str) -> Image:
    """The `Image` of a real directory (the same canonical form as `Tree.image`)."""
    files: list[tuple[str, bytes, int]] = []
    directories: list[tuple[str, int]] = []
    for directory, names, file_names in os.walk(root):
        relative = os.path.relpath(directory, root)
        prefix = "" if relative == "." else relative + "/"
        for name in names:
            directories.append((prefix + name, os.stat(os.path.join(directory, name)).st_mode & 0o7777))
        for name in file_names:
            path = os.path.join(directory, name)
            files.append((prefix + name, Path(path).read_bytes(), os.stat(path).st_mode & 0o7777))
    return Image(files=tuple(sorted(files)), directories=tuple(sorted(directories)))


def populate(api: Any, root: str) -> None:
    """The starting tree of every differential case: f (b"abc"), d/sub/, e/ (empty)."""
    api.mkdir(root + "/d")
    api.mkdir(root + "/d/sub")
    api.mkdir(root + "/e")
    fd = api.open(root + "/f", os.O_WRONLY | os.O_CREAT, 0o644)
    api.write(fd, b"abc")
    api.close(fd)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(UMASK)
    yield
    os.umask(old)


class Both:
    """Runs one action on a real directory and on a view, from the same tree."""

    def __init__(self, tmp_path: Path) -> None:
        self.real_root = str(tmp_path / "real")
        os.mkdir(self.real_root)
        self.real = RealOs()
        self.view = PosixView(ROOT)
        populate(self.real, self.real_root)
        populate(self.view, ROOT)

    def run(self, action: Action) -> tuple[object, ...]:
        """Both outcomes, asserted equal, and the trees left behind, asserted equal."""
        try:
            real = outcome(self.real, self.real_root, action)
        finally:
            self.real.close_all()
        simulated = outcome(self.view, ROOT, action)
        assert simulated == real
        assert self.view.tree.image() == real_image(self.real_root)
        return real


@pytest.fixture
def both(tmp_path: Path, umask: None) -> Both:
    return Both(tmp_path)


def opened(api: Any, path: str, flags: int, mode: int = 0o777) -> tuple[int, int]:
    """Open, report (file type, size), close."""
    fd = api.open(path, flags, mode)
    try:
        status = api.fstat(fd)
        return (stat.S_IFMT(status.st_mode), status.st_size)
    finally:
        api.close(fd)


def status_of(api: Any, path: str) -> tuple[int, int, int, int]:
    """The stat fields both sides agree on (directory sizes differ between file systems)."""
    status = api.stat(path)
    size = status.st_size if stat.S_ISREG(status.st_mode) else -1
    return (status.st_mode, size, status.st_nlink, status.st_uid)


def closed_fd(api: Any, root: str) -> int:
    fd = api.open(root + "/f", os.O_RDONLY)
    api.close(fd)
    return int(fd)


RDONLY, WRONLY, RDWR, CREAT, EXCL, TRUNC = os.O_RDONLY, os.O_WRONLY, os.O_RDWR, os.O_CREAT, os.O_EXCL, os.O_TRUNC

OPEN_CASES: dict[str, Action] = {
    "missing": lambda api, r: opened(api, r + "/missing", RDONLY),
    "file with slash": lambda api, r: opened(api, r + "/f/", RDONLY),
    "create with slash": lambda api, r: opened(api, r + "/new/", CREAT | WRONLY),
    "create file with slash": lambda api, r: opened(api, r + "/f/", CREAT | RDONLY),
    "directory for writing": lambda api, r: opened(api, r + "/d", WRONLY),
    "directory read-write": lambda api, r: opened(api, r + "/d", RDWR),
    "directory O_CREAT": lambda api, r: opened(api, r + "/d", CREAT | RDONLY),
    "directory O_TRUNC": lambda api, r: opened(api, r + "/d", TRUNC | RDONLY),
    "directory O_EXCL": lambda api, r: opened(api, r + "/d", CREAT | EXCL | RDONLY),
    "dot O_CREAT": lambda api, r: opened(api, r + "/d/.", CREAT | WRONLY),
    "dot O_EXCL": lambda api, r: opened(api, r + "/d/.", CREAT | EXCL | RDONLY),
    "file O_EXCL": lambda api, r: opened(api, r + "/f", CREAT | EXCL | WRONLY),
    "O_CREAT|O_DIRECTORY": lambda api, r: opened(api, r + "/new", CREAT | os.O_DIRECTORY | RDONLY),
    "file O_DIRECTORY": lambda api, r: opened(api, r + "/f", os.O_DIRECTORY),
    "under a file": lambda api, r: opened(api, r + "/f/x", RDONLY),
    "create under a file": lambda api, r: opened(api, r + "/f/x", CREAT | WRONLY),
    "create under missing": lambda api, r: opened(api, r + "/zz/x", CREAT | WRONLY),
    "create": lambda api, r: opened(api, r + "/new", CREAT | WRONLY, 0o640),
    "create exclusive": lambda api, r: opened(api, r + "/new", CREAT | EXCL | RDWR),
    "truncate": lambda api, r: opened(api, r + "/f", WRONLY | TRUNC),
    "truncate read-only (Linux truncates)": lambda api, r: opened(api, r + "/f", RDONLY | TRUNC),
    "directory": lambda api, r: opened(api, r + "/d", RDONLY),
    "directory O_DIRECTORY slash": lambda api, r: opened(api, r + "/d/", RDONLY | os.O_DIRECTORY),
    "dot dot": lambda api, r: opened(api, r + "/d/sub/..", RDONLY),
    "flags O_CLOEXEC O_NOFOLLOW O_NONBLOCK": lambda api, r: opened(
        api, r + "/f", RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    ),
}


@pytest.mark.parametrize("name", sorted(OPEN_CASES))
def test_open_matches_linux(both: Both, name: str) -> None:
    both.run(OPEN_CASES[name])


def _write_then_read(api: Any, root: str, flags: int, *chunks: bytes | bytearray | memoryview) -> tuple[object, ...]:
    fd = api.open(root + "/f", flags)
    written = [api.write(fd, chunk) for chunk in chunks]
    position = api.lseek(fd, 0, os.SEEK_CUR)
    api.close(fd)
    fd = api.open(root + "/f", RDONLY)
    data = api.read(fd, 100)
    api.close(fd)
    return (written, position, data)


def _holes(api: Any, root: str) -> object:
    fd = api.open(root + "/f", RDWR)
    api.lseek(fd, 10, os.SEEK_SET)
    api.write(fd, b"Z")
    return api.pread(fd, 100, 0)


def _pwrite_append(api: Any, root: str) -> object:
    fd = api.open(root + "/f", WRONLY | os.O_APPEND)
    written = api.pwrite(fd, b"XY", 0)  # Linux appends anyway
    return (written, api.lseek(fd, 0, os.SEEK_CUR), api.fstat(fd).st_size)


def _reads(api: Any, root: str) -> object:
    fd = api.open(root + "/f", RDONLY)
    first = api.read(fd, 2)
    rest = api.read(fd, 10)
    end = api.read(fd, 10)
    middle = api.pread(fd, 1, 1)
    past = api.pread(fd, 5, 50)
    return (first, rest, end, middle, past, api.lseek(fd, 0, os.SEEK_CUR))


def _seeks(api: Any, root: str) -> object:
    fd = api.open(root + "/f", RDONLY)
    return (
        api.lseek(fd, 1, os.SEEK_SET),
        api.lseek(fd, 1, os.SEEK_CUR),
        api.lseek(fd, -1, os.SEEK_END),
        api.lseek(fd, 5, os.SEEK_END),
        api.lseek(fd, 0, os.SEEK_DATA),
        api.lseek(fd, 1, os.SEEK_HOLE),
    )


def _on_fd(path: str, flags: int, call: Callable[[Any, int], object]) -> Action:
    def action(api: Any, root: str) -> object:
        return call(api, api.open(root + path, flags))

    return action


DATA_CASES: dict[str, Action] = {
    "write then read": lambda api, r: _write_then_read(api, r, WRONLY, b"xy"),
    "write past the end": lambda api, r: _write_then_read(api, r, WRONLY, b"12", b"3456"),
    "append": lambda api, r: _write_then_read(api, r, WRONLY | os.O_APPEND, b"de", b"fg"),
    "zero-length write": lambda api, r: _write_then_read(api, r, WRONLY, b""),
    "write a memoryview": lambda api, r: _write_then_read(api, r, RDWR, memoryview(b"mv")),
    "write a bytearray": lambda api, r: _write_then_read(api, r, RDWR, bytearray(b"ba")),
    "holes read as zeros": _holes,
    "pwrite with O_APPEND": _pwrite_append,
    "reads": _reads,
    "seeks": _seeks,
    "write read-only": _on_fd("/f", RDONLY, lambda api, fd: api.write(fd, b"x")),
    "write nothing read-only": _on_fd("/f", RDONLY, lambda api, fd: api.write(fd, b"")),
    "read write-only": _on_fd("/f", WRONLY, lambda api, fd: api.read(fd, 1)),
    "read a directory": _on_fd("/d", RDONLY, lambda api, fd: api.read(fd, 1)),
    "pread a directory": _on_fd("/d", RDONLY, lambda api, fd: api.pread(fd, 1, 0)),
    "write a directory": _on_fd("/d", RDONLY, lambda api, fd: api.write(fd, b"x")),
    "read negative": _on_fd("/f", RDONLY, lambda api, fd: api.read(fd, -1)),
    "pread negative offset": _on_fd("/f", RDONLY, lambda api, fd: api.pread(fd, 1, -1)),
    "pwrite negative offset": _on_fd("/f", WRONLY, lambda api, fd: api.pwrite(fd, b"x", -1)),
    # Linux checks a negative offset or size before the descriptor (differential finding F2)
    "pread negative offset of a directory": _on_fd("/d", RDONLY, lambda api, fd: api.pread(fd, 1, -1)),
    "pwrite negative offset read-only": _on_fd("/f", RDONLY, lambda api, fd: api.pwrite(fd, b"x", -1)),
    "pread negative offset closed": lambda api, r: api.pread(closed_fd(api, r), 1, -1),
    "ftruncate negative closed": lambda api, r: api.ftruncate(closed_fd(api, r), -2),
    "lseek negative": _on_fd("/f", RDONLY, lambda api, fd: api.lseek(fd, -1, os.SEEK_SET)),
    "lseek bad whence": _on_fd("/f", RDONLY, lambda api, fd: api.lseek(fd, 0, 7)),
    "SEEK_DATA past the end": _on_fd("/f", RDONLY, lambda api, fd: api.lseek(fd, 10, os.SEEK_DATA)),
    "SEEK_HOLE past the end": _on_fd("/f", RDONLY, lambda api, fd: api.lseek(fd, 10, os.SEEK_HOLE)),
    "lseek a directory": _on_fd("/d", RDONLY, lambda api, fd: api.lseek(fd, 5, os.SEEK_SET)),
    "ftruncate read-only": _on_fd("/f", RDONLY, lambda api, fd: api.ftruncate(fd, 0)),
    "ftruncate negative": _on_fd("/f", RDWR, lambda api, fd: api.ftruncate(fd, -1)),
    "ftruncate a directory": _on_fd("/d", RDONLY, lambda api, fd: api.ftruncate(fd, 0)),
    "ftruncate extends": _on_fd("/f", RDWR, lambda api, fd: (api.ftruncate(fd, 6), api.pread(fd, 9, 0))),
    "ftruncate cuts": _on_fd("/f", RDWR, lambda api, fd: (api.ftruncate(fd, 1), api.pread(fd, 9, 0))),
    "fsync a file": _on_fd("/f", RDONLY, lambda api, fd: (api.fsync(fd), api.fdatasync(fd))),
    "fsync a directory": _on_fd("/d", RDONLY, lambda api, fd: (api.fsync(fd), api.fdatasync(fd))),
    "truncate a path": lambda api, r: (api.truncate(r + "/f", 2), status_of(api, r + "/f")),
    "truncate a directory": lambda api, r: api.truncate(r + "/d", 0),
    "truncate missing": lambda api, r: api.truncate(r + "/zz", 0),
    "truncate negative": lambda api, r: api.truncate(r + "/zz", -1),
    "truncate with slash": lambda api, r: api.truncate(r + "/f/", 0),
    # NAME_MAX is 255 bytes of UTF-8 per component, checked as the walk reaches it (F7)
    "mkdir a 255-byte name": lambda api, r: (api.mkdir(r + "/" + "n" * 255), api.listdir(r)),
    "mkdir a 256-byte name": lambda api, r: api.mkdir(r + "/" + "n" * 256),
    "stat a name of 128 two-byte letters": lambda api, r: api.stat(r + "/" + "\u00e9" * 128),
    "a long name below a missing directory": lambda api, r: api.stat(r + "/zz/" + "n" * 256),
    "a long directory name on the way": lambda api, r: api.stat(r + "/" + "n" * 256 + "/f"),
    # rename walks both parents, then looks up the source's name, then the target's (F9, F11)
    "rename a long name into a file": lambda api, r: api.rename(r + "/" + "n" * 256, r + "/f/e"),
    "rename a long name below a missing directory": lambda api, r: api.rename(r + "/" + "n" * 256, r + "/zz/../b"),
    "rename a missing file onto a long name": lambda api, r: api.rename(r + "/zz", r + "/" + "n" * 256),
    "rename a file onto a long name": lambda api, r: api.rename(r + "/f", r + "/" + "n" * 256),
    "close twice": lambda api, r: api.close(closed_fd(api, r)),
    "fsync closed": lambda api, r: api.fsync(closed_fd(api, r)),
    "read closed": lambda api, r: api.read(closed_fd(api, r), 1),
    "dup closed": lambda api, r: api.dup(closed_fd(api, r)),
    "fstat closed": lambda api, r: api.fstat(closed_fd(api, r)),
}


@pytest.mark.parametrize("name", sorted(DATA_CASES))
def test_data_calls_match_linux(both: Both, name: str) -> None:
    both.run(DATA_CASES[name])


def _rename_status(api: Any, root: str, source: str, target: str) -> object:
    api.rename(root + source, root + target)
    return api.listdir(root)


ENTRY_CASES: dict[str, Action] = {
    "unlink": lambda api, r: (api.unlink(r + "/f"), api.listdir(r)),
    "unlink a directory": lambda api, r: api.unlink(r + "/d"),
    "unlink file slash": lambda api, r: api.unlink(r + "/f/"),
    "unlink directory slash": lambda api, r: api.unlink(r + "/d/"),
    "unlink dot": lambda api, r: api.unlink(r + "/d/."),
    "unlink missing": lambda api, r: api.unlink(r + "/zz"),
    "unlink missing slash": lambda api, r: api.unlink(r + "/zz/"),
    "rmdir": lambda api, r: (api.rmdir(r + "/e"), api.listdir(r)),
    "rmdir slash": lambda api, r: (api.rmdir(r + "/e/"), api.listdir(r)),
    "rmdir a file": lambda api, r: api.rmdir(r + "/f"),
    "rmdir not empty": lambda api, r: api.rmdir(r + "/d"),
    "rmdir dot": lambda api, r: api.rmdir(r + "/d/."),
    "rmdir dot dot": lambda api, r: api.rmdir(r + "/d/sub/.."),
    "rmdir file slash": lambda api, r: api.rmdir(r + "/f/"),
    "rmdir missing": lambda api, r: api.rmdir(r + "/zz"),
    "mkdir": lambda api, r: (api.mkdir(r + "/new"), status_of(api, r + "/new")),
    "mkdir mode": lambda api, r: (api.mkdir(r + "/new", 0o1777), status_of(api, r + "/new")),
    "mkdir slash": lambda api, r: api.mkdir(r + "/new/"),
    "mkdir over a file": lambda api, r: api.mkdir(r + "/f"),
    "mkdir over a file slash": lambda api, r: api.mkdir(r + "/f/"),
    "mkdir dot": lambda api, r: api.mkdir(r + "/d/."),
    "mkdir under a file": lambda api, r: api.mkdir(r + "/f/x"),
    "mkdir under missing": lambda api, r: api.mkdir(r + "/zz/x"),
    "rename": lambda api, r: _rename_status(api, r, "/f", "/g"),
    "rename over a file": lambda api, r: (opened(api, r + "/g", CREAT | WRONLY), _rename_status(api, r, "/f", "/g")),
    "rename into a directory": lambda api, r: _rename_status(api, r, "/f", "/d/sub/f"),
    "rename a directory": lambda api, r: _rename_status(api, r, "/d", "/e2/"),
    "rename over an empty directory": lambda api, r: _rename_status(api, r, "/e", "/d/sub"),
    "rename onto itself": lambda api, r: _rename_status(api, r, "/f", "/f"),
    "rename a directory onto itself": lambda api, r: _rename_status(api, r, "/d", "/d"),
    "replace": lambda api, r: (api.replace(r + "/f", r + "/e2"), api.listdir(r)),
    "rename missing": lambda api, r: _rename_status(api, r, "/zz", "/yy"),
    "rename a file over a directory": lambda api, r: _rename_status(api, r, "/f", "/d"),
    "rename a directory over a file": lambda api, r: _rename_status(api, r, "/d", "/f"),
    "rename over a non-empty directory": lambda api, r: _rename_status(api, r, "/e", "/d"),
    "rename into its own subtree": lambda api, r: _rename_status(api, r, "/d", "/d/sub/x"),
    "rename onto its ancestor": lambda api, r: _rename_status(api, r, "/d/sub", "/d"),
    "rename dot": lambda api, r: _rename_status(api, r, "/d/.", "/x"),
    "rename dot dot": lambda api, r: _rename_status(api, r, "/d/..", "/x"),
    "rename onto dot": lambda api, r: _rename_status(api, r, "/e", "/d/."),
    "rename a file to a slash": lambda api, r: _rename_status(api, r, "/f", "/g/"),
    "rename a file with a slash": lambda api, r: _rename_status(api, r, "/f/", "/g"),
    "rename under missing": lambda api, r: _rename_status(api, r, "/f", "/zz/g"),
    "rename under a file": lambda api, r: _rename_status(api, r, "/f", "/f/g"),
    "rename missing under a file": lambda api, r: _rename_status(api, r, "/zz", "/f/g"),
    "listdir": lambda api, r: (api.listdir(r), api.listdir(r + "/d"), api.listdir(r + "/e")),
    "listdir a file": lambda api, r: api.listdir(r + "/f"),
    "listdir missing": lambda api, r: api.listdir(r + "/zz"),
    "listdir a file descriptor": lambda api, r: api.listdir(api.open(r + "/f", RDONLY)),
    "listdir a directory descriptor": lambda api, r: api.listdir(api.open(r + "/d", RDONLY)),
}


@pytest.mark.parametrize("name", sorted(ENTRY_CASES))
def test_entry_calls_match_linux(both: Both, name: str) -> None:
    both.run(ENTRY_CASES[name])


def _unlinked_stays_usable(api: Any, root: str) -> object:
    fd = api.open(root + "/g", CREAT | RDWR)
    api.unlink(root + "/g")
    written = api.write(fd, b"hello")
    return (written, api.pread(fd, 10, 0), api.fstat(fd).st_nlink, api.listdir(root))


def _removed_directory_fd(api: Any, root: str) -> object:
    fd = api.open(root + "/e", RDONLY)
    api.rmdir(root + "/e")
    api.fsync(fd)
    status = api.fstat(fd)
    listed = api.listdir(fd)
    try:
        api.open("y", CREAT | WRONLY, dir_fd=fd)
    except FileNotFoundError as error:
        return (status.st_nlink, listed, error.filename)
    raise AssertionError("created a file in a removed directory")


def _dir_fd_calls(api: Any, root: str) -> object:
    fd = api.open(root + "/d", RDONLY)
    api.mkdir("made", dir_fd=fd)
    file_fd = api.open("made/x", CREAT | WRONLY, dir_fd=fd)
    api.write(file_fd, b"via dir_fd")
    api.rename("made/x", "made/y", src_dir_fd=fd, dst_dir_fd=fd)
    api.unlink("sub/../made/y", dir_fd=fd)
    api.rmdir("made", dir_fd=fd)
    return (api.listdir(root + "/d"), api.stat("sub", dir_fd=fd).st_nlink)


def _dir_fd_of_a_file(api: Any, root: str) -> object:
    return api.open("x", RDONLY, dir_fd=api.open(root + "/f", RDONLY))


def _dup_shares_offset(api: Any, root: str) -> object:
    fd = api.open(root + "/f", RDWR)
    copy = api.dup(fd)
    first = api.read(fd, 1)
    second = api.read(copy, 1)
    api.close(fd)
    api.write(copy, b"Z")
    return (first, second, api.pread(copy, 9, 0), api.lseek(copy, 0, os.SEEK_CUR))


def _stat_fields(api: Any, root: str) -> object:
    return (
        status_of(api, root + "/f"),
        status_of(api, root + "/d"),
        status_of(api, root + "/e"),
        status_of(api, root),
        api.lstat(root + "/f").st_size,
    )


def _chmods(api: Any, root: str) -> object:
    api.chmod(root + "/f", 0o600)
    api.chmod(root + "/d", 0o700)
    fd = api.open(root + "/e", RDONLY)
    api.chmod(fd, 0o711)
    return (status_of(api, root + "/f"), status_of(api, root + "/d"), status_of(api, root + "/e"))


def _access(api: Any, root: str) -> object:
    return tuple(
        api.access(root + path, mode)
        for path, mode in [
            ("/f", os.F_OK),
            ("/f", os.R_OK | os.W_OK),
            ("/f", os.X_OK),
            ("/d", os.X_OK),
            ("/zz", os.F_OK),
            ("/f/x", os.F_OK),
            ("/f/", os.F_OK),
            ("/d/", os.F_OK),
        ]
    )


def _utimes(api: Any, root: str) -> object:
    api.utime(root + "/f", ns=(1_000_000_001, 2_000_000_002))
    first = api.stat(root + "/f")
    api.utime(root + "/d", (3.5, 4.25))
    second = api.stat(root + "/d")
    return (first.st_atime_ns, first.st_mtime_ns, second.st_atime_ns, second.st_mtime_ns)


def _fcntl_flags(api: Any, root: str) -> object:
    fd = api.open(root + "/g", CREAT | WRONLY | os.O_SYNC | os.O_NONBLOCK | os.O_CLOEXEC | TRUNC)
    before = api.fcntl(fd, fcntl.F_GETFL)
    api.fcntl(fd, fcntl.F_SETFL, os.O_APPEND | RDWR | TRUNC)
    after = api.fcntl(fd, fcntl.F_GETFL)
    cloexec = api.fcntl(fd, fcntl.F_GETFD)
    api.fcntl(fd, fcntl.F_SETFD, 0)
    return (oct(before), oct(after), cloexec, api.fcntl(fd, fcntl.F_GETFD))


def _sendfile(api: Any, root: str) -> object:
    source = api.open(root + "/f", RDONLY)
    target = api.open(root + "/g", CREAT | WRONLY)
    first = api.sendfile(target, source, None, 2)
    second = api.sendfile(target, source, 0, 10)
    return (first, second, api.lseek(source, 0, os.SEEK_CUR), api.lseek(target, 0, os.SEEK_CUR))


MORE_CASES: dict[str, Action] = {
    "an unlinked file stays usable": _unlinked_stays_usable,
    "a removed directory's descriptor": _removed_directory_fd,
    "dir_fd calls": _dir_fd_calls,
    "dir_fd of a file": _dir_fd_of_a_file,
    "dir_fd closed": lambda api, r: api.stat("x", dir_fd=closed_fd(api, r)),
    "dir_fd with an absolute path": lambda api, r: api.stat(r + "/f", dir_fd=-1).st_size,  # dir_fd ignored
    "dup shares the offset": _dup_shares_offset,
    "stat fields": _stat_fields,
    "stat with slash": lambda api, r: api.stat(r + "/f/"),
    "stat missing": lambda api, r: api.stat(r + "/zz"),
    "stat under a file": lambda api, r: api.stat(r + "/f/x"),
    "chmod": _chmods,
    "chmod missing": lambda api, r: api.chmod(r + "/zz", 0o600),
    "chmod with slash": lambda api, r: api.chmod(r + "/f/", 0o600),
    "access": _access,
    "utime": _utimes,
    "utime missing": lambda api, r: api.utime(r + "/zz"),
    "utime both": lambda api, r: api.utime(r + "/f", (1, 1), ns=(1, 1)),
    "fcntl flags": _fcntl_flags,
    "sendfile": _sendfile,
    "sendfile to read-only": lambda api, r: api.sendfile(api.open(r + "/f", RDONLY), api.open(r + "/f", RDONLY), 0, 1),
    "sendfile with O_APPEND": lambda api, r: api.sendfile(
        api.open(r + "/f", WRONLY | os.O_APPEND), api.open(r + "/f", RDONLY), 0, 1
    ),
}


@pytest.mark.parametrize("name", sorted(MORE_CASES))
def test_more_calls_match_linux(both: Both, name: str) -> None:
    both.run(MORE_CASES[name])


# -- locks -------------------------------------------------------------------------------


def _flock_action(fd: int, operation: int) -> Action:
    return lambda api, _root: api.flock(fd, operation)


def _flock_conversion(api: Any, root: str) -> object:
    """Two descriptions share; converting one to exclusive fails and drops its lock."""
    first = api.open(root + "/f", RDONLY)
    second = api.open(root + "/f", RDONLY)
    api.flock(first, fcntl.LOCK_SH)
    api.flock(second, fcntl.LOCK_SH | fcntl.LOCK_NB)
    results: list[object] = []
    for fd, operation in [
        (first, fcntl.LOCK_EX | fcntl.LOCK_NB),  # conflicts with second: EWOULDBLOCK, first's lock dropped
        (second, fcntl.LOCK_EX | fcntl.LOCK_NB),  # so second may take it
        (first, fcntl.LOCK_SH | fcntl.LOCK_NB),  # conflicts with second's exclusive lock
    ]:
        results.append(outcome(api, root, _flock_action(fd, operation)))
    copy = api.dup(second)
    api.close(second)  # the dup keeps the description, and its lock
    results.append(outcome(api, root, lambda a, r: a.flock(first, fcntl.LOCK_SH | fcntl.LOCK_NB)))
    api.close(copy)  # the last descriptor: the lock goes
    results.append(outcome(api, root, lambda a, r: a.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)))
    api.flock(first, fcntl.LOCK_UN)
    api.flock(first, fcntl.LOCK_UN | fcntl.LOCK_NB)
    return results


LOCK_CASES: dict[str, Action] = {
    "flock conversions": _flock_conversion,
    "flock bad operation": _on_fd("/f", RDONLY, lambda api, fd: api.flock(fd, fcntl.LOCK_NB)),
    "flock shared and unlock": _on_fd("/f", RDONLY, lambda api, fd: api.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_UN)),
    "flock a directory": _on_fd("/d", RDONLY, lambda api, fd: api.flock(fd, fcntl.LOCK_EX)),
    "flock twice": _on_fd("/f", RDONLY, lambda api, fd: (api.flock(fd, fcntl.LOCK_EX), api.flock(fd, fcntl.LOCK_EX))),
    "lockf exclusive read-only": _on_fd("/f", RDONLY, lambda api, fd: api.lockf(fd, fcntl.LOCK_EX)),
    "lockf shared write-only": _on_fd("/f", WRONLY, lambda api, fd: api.lockf(fd, fcntl.LOCK_SH)),
    "lockf unknown": _on_fd("/f", RDWR, lambda api, fd: api.lockf(fd, fcntl.LOCK_NB)),
    "lockf": lambda api, r: _lockf_calls(api, r),
}


def _lockf_calls(api: Any, root: str) -> object:
    """Record locks of one process never conflict, even between two descriptions."""
    fd = api.open(root + "/f", RDWR)
    other = api.open(root + "/f", RDWR)
    return (
        api.lockf(fd, fcntl.LOCK_EX),
        api.lockf(other, fcntl.LOCK_EX | fcntl.LOCK_NB),
        api.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, 0, 0),
        api.lockf(fd, fcntl.LOCK_UN),
    )


@pytest.mark.parametrize("name", sorted(LOCK_CASES))
def test_locks_match_linux(both: Both, name: str) -> None:
    both.run(LOCK_CASES[name])


def test_a_blocking_flock_conflict_raises_edeadlk() -> None:
    view = _view_with_file()
    first = view.open(ROOT + "/f", RDONLY)
    second = view.open(ROOT + "/f", RDONLY)
    view.flock(first, fcntl.LOCK_EX)
    with pytest.raises(OSError, match="wait forever") as raised:
        view.flock(second, fcntl.LOCK_SH)
    assert raised.value.errno == errno.EDEADLK
    with pytest.raises(BlockingIOError) as blocked:
        view.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert blocked.value.errno == errno.EWOULDBLOCK
    view.flock(view.dup(first), fcntl.LOCK_EX)  # the same description: no conflict


# -- recorded micro-operations -----------------------------------------------------------


def _view_with_file(content: bytes = b"abc", recording: bool = False) -> PosixView:
    tree = Tree.from_image(Image(files=(("f", content, 0o644),), directories=(("d", 0o755),)))
    view = PosixView(ROOT, tree=tree)
    if recording:
        view.recording = Recording([], [], tree.image())
    return view


def _recorded(view: PosixView) -> list[MicroOp]:
    assert view.recording is not None
    return list(view.recording.ops)


def _fresh_ops(view: PosixView, call: Callable[[], object]) -> list[MicroOp]:
    assert view.recording is not None
    before = len(view.recording.ops)
    call()
    return view.recording.ops[before:]


def test_writes_record_alice_split() -> None:
    view = _view_with_file(recording=True)
    file_inode = view.tree.find("f")
    assert file_inode is not None
    fd = view.open(ROOT + "/f", RDWR)
    assert _fresh_ops(view, lambda: view.write(fd, b"x")) == [Write(file_inode, 0, b"x")]  # inside
    assert _fresh_ops(view, lambda: view.write(fd, b"yzw")) == [  # starts inside, ends past
        Truncate(file_inode, 4),
        Write(file_inode, 1, b"yzw"),
    ]
    assert _fresh_ops(view, lambda: view.write(fd, b"")) == []
    assert view.recording is not None
    assert [site.call for site in view.recording.sites[-2:]] == ["write(fd -> 'f', 3 bytes at 1)"] * 2
    assert _fresh_ops(view, lambda: view.pwrite(fd, b"!", 10)) == [  # past the end: a hole
        Truncate(file_inode, 11),
        Write(file_inode, 10, b"!"),
    ]
    append = view.open(ROOT + "/f", WRONLY | os.O_APPEND)
    assert _fresh_ops(view, lambda: view.write(append, b"end")) == [
        Truncate(file_inode, 14),
        Write(file_inode, 11, b"end"),
    ]
    assert view.pread(fd, 20, 0) == b"xyzw" + bytes(6) + b"!end"


def test_open_o_trunc_records_a_truncate_only_when_non_empty() -> None:
    view = _view_with_file(recording=True)
    file_inode = view.tree.find("f")
    assert file_inode is not None
    assert _fresh_ops(view, lambda: view.open(ROOT + "/f", WRONLY | TRUNC)) == [Truncate(file_inode, 0)]
    assert _fresh_ops(view, lambda: view.open(ROOT + "/f", WRONLY | TRUNC)) == []
    created = _fresh_ops(view, lambda: view.open(ROOT + "/d/new", WRONLY | CREAT | TRUNC, 0o666))
    directory = view.tree.find("d")
    assert created == [Create(directory or 0, "new", view.tree.next_inode - 1, 0o644)]
    assert view.recording is not None
    assert view.recording.sites[-1].call == "open('d/new', O_WRONLY|O_CREAT|O_TRUNC, 0o666)"
    assert view.recording.sites[-2].call == "open('f', O_WRONLY|O_TRUNC)"


def test_synchronous_writes_record_a_sync() -> None:
    view = _view_with_file(recording=True)
    file_inode = view.tree.find("f")
    assert file_inode is not None
    synchronous = view.open(ROOT + "/f", WRONLY | os.O_SYNC)
    assert _fresh_ops(view, lambda: view.write(synchronous, b"S")) == [Write(file_inode, 0, b"S"), Sync(file_inode)]
    data_synchronous = view.open(ROOT + "/f", WRONLY | os.O_DSYNC)
    assert _fresh_ops(view, lambda: view.write(data_synchronous, b"D")) == [
        Write(file_inode, 0, b"D"),
        Sync(file_inode, data_only=True),
    ]


def test_syncs_of_files_and_directories_record_a_sync() -> None:
    view = _view_with_file(recording=True)
    directory = view.open(ROOT + "/d", RDONLY)
    file = view.open(ROOT + "/f", RDONLY)
    directory_inode, file_inode = view.tree.find("d"), view.tree.find("f")
    assert directory_inode is not None and file_inode is not None
    assert _fresh_ops(view, lambda: view.fsync(directory)) == [Sync(directory_inode)]
    assert _fresh_ops(view, lambda: view.fdatasync(file)) == [Sync(file_inode, data_only=True)]
    assert _fresh_ops(view, lambda: view.close(file)) == []  # close makes nothing durable


def test_rename_over_a_target_records_its_removal_first() -> None:
    view = _view_with_file(recording=True)
    tree = view.tree
    view.close(view.open(ROOT + "/g", CREAT | WRONLY))
    view.mkdir(ROOT + "/empty")
    f, g, d, empty = (tree.find(name) for name in ("f", "g", "d", "empty"))
    assert f is not None and g is not None and d is not None and empty is not None
    assert _fresh_ops(view, lambda: view.replace(ROOT + "/f", ROOT + "/g")) == [
        Unlink(ROOT_INODE, "g", g),
        Rename(ROOT_INODE, "f", ROOT_INODE, "g", f),
    ]
    assert _fresh_ops(view, lambda: view.rename(ROOT + "/d", ROOT + "/empty")) == [
        Rmdir(ROOT_INODE, "empty", empty),
        Rename(ROOT_INODE, "d", ROOT_INODE, "empty", d),
    ]
    assert _fresh_ops(view, lambda: view.rename(ROOT + "/g", ROOT + "/g")) == []
    assert _fresh_ops(view, lambda: view.rename(ROOT + "/g", ROOT + "/empty/h")) == [Rename(ROOT_INODE, "g", d, "h", f)]


def test_entry_and_metadata_calls_record_their_ops() -> None:
    view = _view_with_file(recording=True)
    f = view.tree.find("f")
    assert f is not None
    made = _fresh_ops(view, lambda: view.mkdir(ROOT + "/m", 0o700))
    new = view.tree.find("m")
    assert new is not None
    assert made == [Mkdir(ROOT_INODE, "m", new, 0o700)]
    assert _fresh_ops(view, lambda: view.chmod(ROOT + "/f", 0o100600)) == [Chmod(f, 0o600)]
    assert _fresh_ops(view, lambda: view.rmdir(ROOT + "/m")) == [Rmdir(ROOT_INODE, "m", new)]
    assert _fresh_ops(view, lambda: view.unlink(ROOT + "/f")) == [Unlink(ROOT_INODE, "f", f)]
    assert _fresh_ops(view, lambda: view.ack("promise")) == [Ack("promise")]
    assert _fresh_ops(view, lambda: (view.stat(ROOT), view.listdir(ROOT), view.access(ROOT, 0))) == []


def test_each_op_names_the_call_and_the_line_that_made_it() -> None:
    view = _view_with_file(recording=True)
    fd = view.open(ROOT + "/f", WRONLY | os.O_APPEND)
    line = sys._getframe().f_lineno + 1
    view.write(fd, b"12345")
    assert view.recording is not None
    sites = view.recording.sites[-2:]
    assert sites[0] is sites[1]  # the Truncate and the Write of one call share it
    assert sites[0].call == "write(fd -> 'f', 5 bytes at 3)"
    assert sites[0].site == f"{__file__}:{line}"


def test_the_call_site_skips_standard_library_frames() -> None:
    """A call made by the standard library (contextlib here, running a callback) is
    attributed to the nearest frame outside it."""
    import contextlib

    view = _view_with_file(recording=True)
    stack = contextlib.ExitStack()
    stack.callback(view.mkdir, ROOT + "/x")
    line = sys._getframe().f_lineno + 1
    stack.close()
    assert view.recording is not None
    assert view.recording.sites[-1] == CallSite("mkdir('x')", f"{__file__}:{line}")


def test_no_recording_records_nothing_and_still_applies() -> None:
    view = _view_with_file()
    fd = view.open(ROOT + "/f", WRONLY | os.O_APPEND)
    view.write(fd, b"d")
    assert view.recording is None
    assert view.tree.image().file("f") == b"abcd"


# -- the tree: strict and replay application ---------------------------------------------


def _replay(ops: list[MicroOp], image: Image | None = None) -> Tree:
    tree = Tree() if image is None else Tree.from_image(image)
    for op in ops:
        tree.apply(op, strict=False)
    return tree


# The tree of the strict and replay tests: d (inode 2) holding sub (3) holding x (4);
# f (5, b"abc"); numbered in sorted path order.
NESTED = Image(files=(("d/sub/x", b"x", 0o644), ("f", b"abc", 0o644)), directories=(("d", 0o755), ("d/sub", 0o700)))


@pytest.mark.parametrize(
    "op",
    [
        Write(5, 0, b"toolong"),
        Write(99, 0, b""),
        Create(ROOT_INODE, "f", 50),
        Create(77, "x", 50),
        Mkdir(ROOT_INODE, "d", 50),
        Unlink(ROOT_INODE, "f", 99),
        Unlink(ROOT_INODE, "d", 2),
        Rmdir(ROOT_INODE, "d", 2),
        Rmdir(ROOT_INODE, "f", 5),
        Rename(ROOT_INODE, "f", ROOT_INODE, "d", 5),
        Rename(ROOT_INODE, "zz", ROOT_INODE, "y", 5),
        Rename(ROOT_INODE, "d", 3, "x", 2),
        Truncate(99, 0),
        Chmod(99, 0o600),
    ],
    ids=repr,
)
def test_strict_apply_asserts_preconditions(op: MicroOp) -> None:
    tree = Tree.from_image(NESTED)
    assert [tree.find(path) for path in ("d", "d/sub", "d/sub/x", "f")] == [2, 3, 4, 5]
    with pytest.raises(AssertionError):
        tree.apply(op)
    tree.apply(op, strict=False)  # replay never asserts


def test_replay_skips_what_no_longer_fits() -> None:
    tree = _replay(
        [
            Write(99, 0, b"gone"),  # no such inode
            Create(77, "x", 50),  # no such parent
            Unlink(ROOT_INODE, "f", 99),  # the entry names another inode
            Rmdir(ROOT_INODE, "f", 2),  # likewise
            Rename(ROOT_INODE, "zz", ROOT_INODE, "y", 5),  # no such source entry
            Rename(ROOT_INODE, "d", 3, "loop", 2),  # into its own subtree
            Truncate(99, 0),
            Chmod(99, 0o600),
            Sync(5),
            DropDirty(5),
            Ack("value"),
        ],
        NESTED,
    )
    assert tree.image() == NESTED


def test_replay_extends_replaces_and_removes() -> None:
    tree = _replay(
        [
            Write(5, 5, b"!"),  # f: past the end, zeros between
            Create(ROOT_INODE, "g", 50),
            Create(ROOT_INODE, "g", 51),  # over an existing name: replaced
            Rename(ROOT_INODE, "f", ROOT_INODE, "g", 5),  # over g
            Rmdir(ROOT_INODE, "d", 2),  # not empty: its children go too
            Write(4, 0, b"unreachable"),  # d/sub/x went with d: the write applies to it, unnamed
        ],
        NESTED,
    )
    assert tree.image() == Image(files=(("g", b"abc\0\0!", 0o644),), directories=())
    assert set(tree.nodes) == {ROOT_INODE, 4, 5}
    assert tree.new_inode_number() == 52  # above every number the ops used


def test_replay_of_a_rename_carries_a_file_whose_create_was_dropped() -> None:
    """write-temp, fsync, rename with the temporary's Create lost: the rename still names
    the synced data at the target (one directory change carries the inode, as in disk.py),
    and the destination's bound Unlink is not needed for it to replace the old file."""
    tree = _replay(
        [
            Truncate(60, 3),  # Create(ROOT_INODE, "f.tmp", 60) was dropped
            Write(60, 0, b"new"),
            Rename(ROOT_INODE, "f.tmp", ROOT_INODE, "f", 60),
        ],
        NESTED,
    )
    assert tree.image().file("f") == b"new"
    assert tree.lookup(ROOT_INODE, "f.tmp") is None
    assert not tree.rename_moves(Rename(ROOT_INODE, "f.tmp", ROOT_INODE, "h", 61))  # nothing to carry


def test_a_recording_replays_to_the_live_tree_strictly_and_not() -> None:
    initial = Image(files=(("data.json", b"{}", 0o644),), directories=(("logs", 0o755),))
    view = PosixView(ROOT, tree=Tree.from_image(initial), recording=Recording([], [], initial))
    fd = view.open(ROOT + "/data.json.tmp", CREAT | WRONLY | TRUNC, 0o600)
    view.write(fd, b'{"a": 1}' * 100)
    view.fsync(fd)
    view.close(fd)
    view.replace(ROOT + "/data.json.tmp", ROOT + "/data.json")
    view.mkdir(ROOT + "/logs/old")
    assert view.recording is not None
    before_unlink = len(view.recording.ops)
    log = view.open(ROOT + "/logs/old/1", CREAT | RDWR | os.O_APPEND)
    view.write(log, b"line\n")
    view.unlink(ROOT + "/logs/old/1")
    view.write(log, b"after unlink\n")
    view.close(log)
    view.rename(ROOT + "/logs/old", ROOT + "/old")
    view.chmod(ROOT + "/old", 0o700)
    live = view.tree.image()
    replayed = _replay(view.recording.ops, initial)
    assert replayed.image() == live
    # Strictly, up to the writes through the descriptor of an unlinked file (a replayed
    # tree pins nothing: such writes fit only the live tree, and replay skips them).
    strictly = Tree.from_image(initial)
    for op in view.recording.ops[:before_unlink]:
        strictly.apply(op)
    assert strictly.image() == _replay(view.recording.ops[:before_unlink], initial).image()
    with pytest.raises(AssertionError):
        for op in view.recording.ops[before_unlink:]:
            strictly.apply(op)
    assert live.files == (("data.json", b'{"a": 1}' * 100, 0o600),)


def test_an_unlinked_file_is_freed_at_its_last_close() -> None:
    view = _view_with_file()
    fd = view.open(ROOT + "/f", RDONLY)
    copy = view.dup(fd)
    inode = view.tree.find("f")
    assert inode is not None
    view.unlink(ROOT + "/f")
    view.close(fd)
    assert inode in view.tree.nodes
    assert view.read(copy, 10) == b"abc"
    view.close(copy)
    assert inode not in view.tree.nodes


# -- images -----------------------------------------------------------------------------


SAMPLE = Image(
    files=(("a/b.json", b"{}", 0o644), ("a/\udcff", b"raw", 0o600), ("z", b"", 0o755)),
    directories=(("a", 0o755), ("a/c", 0o700)),
)


def test_an_image_round_trips_through_a_tree() -> None:
    tree = Tree.from_image(SAMPLE)
    assert tree.image() == SAMPLE
    assert Tree.from_image(tree.image()).image() == SAMPLE
    assert Tree().image() == Image.empty()
    numbers = [tree.find(path) for path in ("a", "a/b.json", "a/c", "a/\udcff", "z")]
    assert numbers == [2, 3, 4, 5, 6]  # sorted paths, from ROOT_INODE + 1
    assert tree.new_inode_number() == 7


def test_from_image_creates_missing_parents() -> None:
    tree = Tree.from_image(Image(files=(("x/y/z", b"1", 0o644),), directories=()))
    assert tree.image() == Image(files=(("x/y/z", b"1", 0o644),), directories=(("x", 0o755), ("x/y", 0o755)))


def test_trees_from_one_image_are_independent() -> None:
    first, second = Tree.from_image(SAMPLE), Tree.from_image(SAMPLE)
    first.apply(Write(3, 0, b"[]"))
    assert second.image() == SAMPLE
    assert SAMPLE.files[0][1] == b"{}"


def test_digests_are_stable_across_processes_and_hash_seeds() -> None:
    here = SAMPLE.digest()
    assert SAMPLE.digest() == here
    program = (
        "from io_backends.sim.posix.fs import Image\n"
        f"print(Image(files={SAMPLE.files!r}, directories={SAMPLE.directories!r}).digest())\n"
    )
    for seed in ("0", "12345"):
        completed = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert completed.stdout.strip() == here


@pytest.mark.parametrize(
    "other",
    [
        Image(files=(("ab", b"", 0o644),), directories=()),
        Image(files=(("a", b"b", 0o644),), directories=()),
        Image(files=(("a", b"", 0o600),), directories=()),
        Image(files=(), directories=(("a", 0o644),)),
        Image.empty(),
    ],
)
def test_different_images_have_different_digests(other: Image) -> None:
    image = Image(files=(("a", b"", 0o644),), directories=())
    assert image.digest() != other.digest()


# -- the view's own rules ----------------------------------------------------------------


def test_ownership_of_paths_and_descriptors() -> None:
    view = PosixView(ROOT + "/")
    assert view.root == ROOT
    assert view.owns_path(ROOT) and view.owns_path(ROOT + "/a/b")
    assert not view.owns_path(ROOT + "x") and not view.owns_path("/kvsim")
    fd = view.open(ROOT, RDONLY)
    assert fd >= SIM_FD_BASE and view.owns_fd(fd) and not view.owns_fd(3)
    assert view.fd_path(fd) == ROOT and view.fd_flags(fd) == RDONLY
    view.close(fd)
    with pytest.raises(OSError) as raised:
        view.close(fd)
    assert raised.value.errno == errno.EBADF
    assert view.open(ROOT, RDONLY) == fd  # the lowest free number again


def test_calls_it_does_not_model_say_so() -> None:
    view = PosixView(ROOT)
    with pytest.raises(UnmodelledCall, match="outside the simulated root"):
        view.stat("/etc/passwd")
    with pytest.raises(UnmodelledCall, match="O_TMPFILE"):
        view.open(ROOT, os.O_TMPFILE | RDWR)
    with pytest.raises(UnmodelledCall, match="fcntl"):
        view.fcntl(view.open(ROOT, RDONLY), fcntl.F_GETLK)
    with pytest.raises(OSError) as raised:
        view.rename(ROOT, "/tmp/elsewhere")
    assert raised.value.errno == errno.EXDEV


def test_root_directory_calls() -> None:
    view = PosixView(ROOT)
    for call, number in [(view.rmdir, errno.EBUSY), (view.mkdir, errno.EEXIST), (view.unlink, errno.EISDIR)]:
        with pytest.raises(OSError) as raised:
            call(ROOT)
        assert raised.value.errno == number
    with pytest.raises(OSError) as raised:
        view.rename(ROOT, ROOT + "/x")
    assert raised.value.errno == errno.EBUSY
    assert view.listdir(ROOT) == [] and view.stat(ROOT + "/..").st_ino == ROOT_INODE  # ".." stops at the root


def test_fullfsync_is_an_fsync() -> None:
    view = _view_with_file(recording=True)
    fd = view.open(ROOT + "/f", RDONLY)
    inode = view.tree.find("f")
    assert _fresh_ops(view, lambda: view.fcntl(fd, 51)) == [Sync(inode or 0)]


def test_times_come_from_the_virtual_clock() -> None:
    def run() -> list[int]:
        view = PosixView(ROOT)
        fd = view.open(ROOT + "/f", CREAT | WRONLY)
        first = view.fstat(fd).st_mtime_ns
        view.write(fd, b"x")
        return [first, view.fstat(fd).st_mtime_ns, view.stat(ROOT).st_mtime_ns]

    times = run()
    assert times == run()
    assert CLOCK_EPOCH_NS < times[0] < times[1]
    assert times[1] - CLOCK_EPOCH_NS < 10**9  # a few steps, nowhere near the wall clock


def test_scandir_entries() -> None:
    view = _view_with_file()
    assert view.scandir_entries(ROOT) == [("d", view.tree.find("d"), True), ("f", view.tree.find("f"), False)]
    with pytest.raises(NotADirectoryError):
        view.scandir_entries(ROOT + "/f")


# -- inline faults ---------------------------------------------------------------------


def _faulty_view(plan: FaultPlan | None = None) -> tuple[PosixView, FaultInjector]:
    faults = FaultInjector(plan or FaultPlan(), random.Random(7))
    view = _view_with_file(recording=True)
    view.faults = faults
    return view, faults


def _forced(name: str, call: Callable[[PosixView], object], number: int) -> PosixView:
    """Force fault `name` and check that `call` fails with `number` and changes nothing."""
    view, faults = _faulty_view()
    before = view.tree.image()
    assert view.recording is not None
    recorded = len(view.recording.ops)
    faults.force(name)
    with pytest.raises(OSError) as raised:
        call(view)
    assert raised.value.errno == number
    assert view.tree.image() == before
    assert name not in faults.forced  # it fired
    if name != "fsync_gate":
        assert len(view.recording.ops) == recorded
    return view


FAULT_CASES: list[tuple[str, Callable[[PosixView], object], int]] = [
    ("operation_errors.open", lambda v: v.open(ROOT + "/f", RDONLY), errno.EIO),
    ("operation_errors.open", lambda v: v.open(ROOT + "/new", CREAT | WRONLY), errno.EIO),
    ("permission_errors.open", lambda v: v.open(ROOT + "/f", WRONLY | TRUNC), errno.EACCES),
    ("operation_errors.read", lambda v: v.read(v.open(ROOT + "/f", RDONLY), 3), errno.EIO),
    ("operation_errors.write", lambda v: v.write(v.open(ROOT + "/f", WRONLY), b"x"), errno.EIO),
    ("operation_errors.write", lambda v: v.ftruncate(v.open(ROOT + "/f", WRONLY), 0), errno.EIO),
    ("permission_errors.write", lambda v: v.write(v.open(ROOT + "/f", WRONLY), b"x"), errno.EROFS),
    ("disk_full", lambda v: v.write(v.open(ROOT + "/f", WRONLY | os.O_APPEND), b"more"), errno.ENOSPC),
    ("operation_errors.sync", lambda v: v.fsync(v.open(ROOT + "/f", RDONLY)), errno.EIO),
    ("fsync_gate", lambda v: v.fdatasync(v.open(ROOT + "/f", RDONLY)), errno.EIO),
    ("operation_errors.rename", lambda v: v.rename(ROOT + "/f", ROOT + "/g"), errno.EIO),
    ("operation_errors.unlink", lambda v: v.unlink(ROOT + "/f"), errno.EIO),
    ("operation_errors.unlink", lambda v: v.rmdir(ROOT + "/d"), errno.EIO),
]


@pytest.mark.parametrize(
    ("name", "call", "number"), FAULT_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(FAULT_CASES)]
)
def test_a_forced_fault_fails_the_call_and_changes_nothing(
    name: str, call: Callable[[PosixView], object], number: int
) -> None:
    _forced(name, call, number)


def test_fsync_gate_records_drop_dirty() -> None:
    view = _forced("fsync_gate", lambda v: v.fsync(v.open(ROOT + "/f", RDONLY)), errno.EIO)
    assert view.recording is not None
    inode = view.tree.find("f") or 0
    assert view.recording.ops[-1:] == [DropDirty(inode)]
    view.fsync(view.open(ROOT + "/f", RDONLY))  # the next one succeeds
    assert view.recording.ops[-2:] == [DropDirty(inode), Sync(inode)]


def test_fsync_gate_fails_the_sync_of_an_o_dsync_write() -> None:
    """A write through O_DSYNC is a write and its fdatasync: fsyncgate can fail that sync
    too (review: it never drew the fault). The data reached the page cache, then was
    dropped: the recording says so, and the write raises EIO."""
    view, faults = _faulty_view()
    fd = view.open(ROOT + "/f", WRONLY | os.O_DSYNC)
    faults.force("fsync_gate")
    with pytest.raises(OSError) as raised:
        view.write(fd, b"new")
    assert raised.value.errno == errno.EIO
    assert view.recording is not None
    inode = view.tree.find("f") or 0
    assert view.recording.ops[-2:] == [Write(inode, 0, b"new"), DropDirty(inode)]


def test_a_permission_fault_on_open_waits_for_an_open_for_writing() -> None:
    view, faults = _faulty_view()
    faults.force("permission_errors.open")
    view.close(view.open(ROOT + "/f", RDONLY))
    with pytest.raises(PermissionError):
        view.open(ROOT + "/f", RDWR)


def test_disk_full_past_the_capacity() -> None:
    view, _faults = _faulty_view(FaultPlan(disk_full=DiskFull(capacity_bytes=10)))
    fd = view.open(ROOT + "/f", WRONLY | os.O_APPEND)
    assert view.write(fd, b"1234567") == 7  # 3 + 7 = 10 bytes: fits
    with pytest.raises(OSError) as raised:
        view.write(fd, b"8")
    assert raised.value.errno == errno.ENOSPC
    overwriting = view.open(ROOT + "/f", WRONLY)
    view.pwrite(overwriting, b"over", 0)  # overwriting needs no space
    view.close(overwriting)
    view.unlink(ROOT + "/f")
    view.close(fd)  # the last descriptor of the unlinked file: its space comes back
    assert view.write(view.open(ROOT + "/g", CREAT | WRONLY), b"0123456789") == 10


def test_a_persistent_operation_error_recurs() -> None:
    plan = FaultPlan(operation_errors=OperationErrors(unlink_probability=1.0, persistent_probability=1.0))
    view, faults = _faulty_view(plan)
    for _ in range(2):
        with pytest.raises(OSError):
            view.unlink(ROOT + "/f")
    faults.plan = FaultPlan()
    with pytest.raises(OSError, match="Input/output"):
        view.unlink(ROOT + "/f")
    assert view.tree.find("f") is not None


def test_faults_off_draw_nothing() -> None:
    view, faults = _faulty_view()
    state = faults.rng.getstate()
    fd = view.open(ROOT + "/g", CREAT | RDWR)
    view.write(fd, b"x" * 100)
    view.fsync(fd)
    view.rename(ROOT + "/g", ROOT + "/h")
    view.unlink(ROOT + "/h")
    assert faults.rng.getstate() == state
    assert faults.counts == {}
