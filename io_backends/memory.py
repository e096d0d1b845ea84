"""An in-process backend: files held in dicts, nothing on disk, the real clock.

`kv.connect("memory://")` runs the real `Store` on it, so an in-memory store has exactly
the embedded store's semantics (TTLs follow `time.time()`, as on disk) and vanishes when
it is closed. There is no crash to survive: `sync` and `sync_dir` only check their
argument, and every write is "durable" at once. Every future is complete when returned.

POSIX behaviour kept (the conformance suite checks it): opening a missing file for
reading, or any file in a missing directory, is ENOENT; mode `x` on an existing file is
EEXIST; writing through a read-only handle, or using a closed one, is EBADF; a negative
offset or size is EINVAL, as `pread`/`pwrite`/`ftruncate` say; an unlinked
file stays readable through the handles already open on it; `rename` replaces its
destination; `lock` creates the lock file and a second holder gets EWOULDBLOCK.

One `MemoryIo` is one file system: two stores opened on the same `MemoryIo` and path
see the same files (and the lock keeps a second writer out); two `MemoryIo`s share
nothing. Not thread-safe, like the store.
"""

from __future__ import annotations

import errno
import os
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from kv.errors import IoError
from kv.io import File, Future, Io, OpenMode

T = TypeVar("T")


@dataclass(eq=False)
class _Inode:
    data: bytearray = field(default_factory=bytearray)


@dataclass(eq=False)
class _Handle:
    inode: _Inode
    writable: bool
    lock_path: str | None = None  # set for the handle `lock` returned
    closed: bool = False


def _failure(code: int, operation: str, path: str | None) -> IoError:
    return IoError(code, os.strerror(code), path, operation)


def _call(operation: str, path: str | None, function: Callable[[], T]) -> Future[T]:
    """Run `function` now; its `IoError` becomes a failed future."""
    try:
        return Future.completed(function())
    except IoError as error:
        error.operation = error.operation or operation
        return Future.failed(error)


class MemoryIo:
    """`kv.io.Io` over dictionaries (see the module docstring)."""

    name = "memory"

    def __init__(self) -> None:
        self._files: dict[str, _Inode] = {}
        self._directories: set[str] = {"/"}
        self._locked: set[str] = set()

    # -- paths ---------------------------------------------------------------------------

    @staticmethod
    def _normal(path: str) -> str:
        normal = posixpath.normpath(posixpath.join("/", path))
        return "/" + normal.lstrip("/")  # normpath keeps a leading "//"; the kernel reads it as "/"

    def _parent_exists(self, path: str, operation: str) -> None:
        if posixpath.dirname(path) not in self._directories:
            raise _failure(errno.ENOENT, operation, path)

    def _handle(self, file: File, operation: str, write: bool = False, *counts: int) -> _Handle:
        """The open handle of `file` (EBADF when closed, or read-only for a write); EINVAL
        when one of `counts` (an offset, a size) is negative."""
        if any(count < 0 for count in counts):
            raise _failure(errno.EINVAL, operation, file.path)
        handle = file.handle
        assert isinstance(handle, _Handle), file
        if handle.closed or (write and not handle.writable):
            raise _failure(errno.EBADF, operation, file.path)
        return handle

    # -- files -----------------------------------------------------------------------------

    def _open(self, path: str, mode: OpenMode) -> File:
        normal = self._normal(path)
        if normal in self._directories:
            raise _failure(errno.EISDIR, "open", path)
        inode = self._files.get(normal)
        if inode is None:
            if mode == "r":
                raise _failure(errno.ENOENT, "open", path)
            self._parent_exists(normal, "open")
            inode = self._files[normal] = _Inode()
        elif mode == "x":
            raise _failure(errno.EEXIST, "open", path)
        return File(path, mode, _Handle(inode, writable=mode != "r"))

    def open(self, path: str, mode: OpenMode) -> Future[File]:
        return _call("open", path, lambda: self._open(path, mode))

    def read(self, file: File, offset: int, size: int) -> Future[bytes]:
        def read() -> bytes:
            return bytes(self._handle(file, "read", False, offset, size).inode.data[offset : offset + size])

        return _call("read", file.path, read)

    def write(self, file: File, offset: int, data: bytes) -> Future[None]:
        def write() -> None:
            stored = self._handle(file, "write", True, offset).inode.data
            if offset > len(stored):
                stored.extend(bytes(offset - len(stored)))
            stored[offset : offset + len(data)] = data

        return _call("write", file.path, write)

    def sync(self, file: File, data_only: bool = True) -> Future[None]:
        def sync() -> None:
            self._handle(file, "sync")  # nothing to make durable: only check the handle

        return _call("sync", file.path, sync)

    def truncate(self, file: File, size: int) -> Future[None]:
        def truncate() -> None:
            stored = self._handle(file, "truncate", True, size).inode.data
            if size < len(stored):
                del stored[size:]
            else:
                stored.extend(bytes(size - len(stored)))

        return _call("truncate", file.path, truncate)

    def close(self, file: File) -> Future[None]:
        def close() -> None:
            handle = self._handle(file, "close")
            handle.closed = True
            if handle.lock_path is not None:
                self._locked.discard(handle.lock_path)

        return _call("close", file.path, close)

    def size(self, file: File) -> Future[int]:
        return _call("size", file.path, lambda: len(self._handle(file, "size").inode.data))

    # -- directories -----------------------------------------------------------------------

    def _rename(self, source: str, destination: str) -> None:
        old, new = self._normal(source), self._normal(destination)
        if old not in self._files:
            raise _failure(errno.ENOENT, "rename", source)
        self._parent_exists(new, "rename")
        if new in self._directories:
            raise _failure(errno.EISDIR, "rename", destination)
        self._files[new] = self._files.pop(old)

    def rename(self, source: str, destination: str) -> Future[None]:
        return _call("rename", source, lambda: self._rename(source, destination))

    def _unlink(self, path: str) -> None:
        if self._files.pop(self._normal(path), None) is None:
            raise _failure(errno.ENOENT, "unlink", path)

    def unlink(self, path: str) -> Future[None]:
        return _call("unlink", path, lambda: self._unlink(path))

    def _mkdir(self, path: str) -> None:
        normal = self._normal(path)
        while normal not in self._directories:
            if normal in self._files:
                raise _failure(errno.EEXIST, "mkdir", path)
            self._directories.add(normal)
            normal = posixpath.dirname(normal)

    def mkdir(self, path: str) -> Future[None]:
        return _call("mkdir", path, lambda: self._mkdir(path))

    def _existing_directory(self, path: str, operation: str) -> str:
        normal = self._normal(path)
        if normal not in self._directories:
            raise _failure(errno.ENOTDIR if normal in self._files else errno.ENOENT, operation, path)
        return normal

    def sync_dir(self, path: str) -> Future[None]:
        def sync_dir() -> None:
            self._existing_directory(path, "sync_dir")

        return _call("sync_dir", path, sync_dir)

    def _listdir(self, path: str) -> list[str]:
        directory = self._existing_directory(path, "listdir")
        entries = [*self._files, *self._directories]
        inside = (entry for entry in entries if entry != "/" and posixpath.dirname(entry) == directory)
        return sorted(map(posixpath.basename, inside))

    def listdir(self, path: str) -> Future[list[str]]:
        return _call("listdir", path, lambda: self._listdir(path))

    def _lock(self, path: str) -> File:
        normal = self._normal(path)
        if normal in self._locked:
            raise _failure(errno.EWOULDBLOCK, "lock", path)
        file = self._open(path, "w")
        assert isinstance(file.handle, _Handle)
        file.handle.lock_path = normal
        self._locked.add(normal)
        return file

    def lock(self, path: str) -> Future[File]:
        return _call("lock", path, lambda: self._lock(path))

    def now(self) -> float:
        """The real clock (seconds since the epoch), as the disk backends read it."""
        return time.time()

    def shutdown(self) -> None:
        """Nothing is ever in flight."""


_: type[Io] = MemoryIo
