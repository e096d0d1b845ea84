"""The portable backend: plain `os` calls; every future is complete when returned.

`write` loops `os.pwrite` until all bytes are written, `read` is one `os.pread`,
`sync` is `os.fdatasync` (or `os.fsync` with `data_only=False`), `sync_dir` fsyncs the
directory, `lock` is `fcntl.flock(LOCK_EX | LOCK_NB)` on a lock file.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from typing import TypeVar

from io_backends._oserror import io_error
from kv.io import File, Future, Io, OpenMode

T = TypeVar("T")

_OPEN_FLAGS: dict[str, int] = {
    "r": os.O_RDONLY,
    "w": os.O_RDWR | os.O_CREAT,
    "x": os.O_RDWR | os.O_CREAT | os.O_EXCL,
}
_FILE_PERMISSIONS = 0o644
# A pwrite that keeps writing zero bytes would loop forever; the kernel never does it
# for regular files, so a few rounds are plenty.
_WRITE_ROUNDS_MAX = 1 << 16


def call_now(operation: str, path: str | None, function: Callable[[], T]) -> Future[T]:
    try:
        return Future.completed(function())
    except OSError as error:
        return Future.failed(io_error(error, operation, path))


def _fd(file: File) -> int:
    assert isinstance(file.handle, int), file
    return file.handle


def write_all(fd: int, offset: int, data: bytes) -> None:
    """`os.pwrite` until every byte is written (short writes are legal in POSIX)."""
    view = memoryview(data)
    written = os.pwrite(fd, view, offset)
    rounds = 0
    while written < len(view):
        rounds += 1
        assert rounds < _WRITE_ROUNDS_MAX, "pwrite made no progress"
        written += os.pwrite(fd, view[written:], offset + written)


class PathOperations:
    """The directory-level half of `kv.io.Io` as plain blocking `os` calls, shared by
    every real backend (io_uring has no better way to fsync a directory or take a lock).
    """

    def rename(self, source: str, destination: str) -> Future[None]:
        return call_now("rename", source, lambda: os.rename(source, destination))

    def unlink(self, path: str) -> Future[None]:
        return call_now("unlink", path, lambda: os.unlink(path))

    def mkdir(self, path: str) -> Future[None]:
        return call_now("mkdir", path, lambda: os.makedirs(path, exist_ok=True))

    def sync_dir(self, path: str) -> Future[None]:
        return call_now("sync_dir", path, lambda: sync_directory(path))

    def listdir(self, path: str) -> Future[list[str]]:
        return call_now("listdir", path, lambda: sorted(os.listdir(path)))

    def lock(self, path: str) -> Future[File]:
        return call_now("lock", path, lambda: lock_file(path))

    def now(self) -> float:
        return time.time()


class BlockingIo(PathOperations):
    """`kv.io.Io` on plain blocking system calls."""

    name = "blocking"

    def open(self, path: str, mode: OpenMode) -> Future[File]:
        return call_now(
            "open", path, lambda: File(path, mode, os.open(path, _OPEN_FLAGS[mode] | os.O_CLOEXEC, _FILE_PERMISSIONS))
        )

    def read(self, file: File, offset: int, size: int) -> Future[bytes]:
        return call_now("read", file.path, lambda: os.pread(_fd(file), size, offset))

    def write(self, file: File, offset: int, data: bytes) -> Future[None]:
        return call_now("write", file.path, lambda: write_all(_fd(file), offset, data))

    def sync(self, file: File, data_only: bool = True) -> Future[None]:
        function = os.fdatasync if data_only else os.fsync
        return call_now("sync", file.path, lambda: function(_fd(file)))

    def truncate(self, file: File, size: int) -> Future[None]:
        return call_now("truncate", file.path, lambda: os.ftruncate(_fd(file), size))

    def close(self, file: File) -> Future[None]:
        return call_now("close", file.path, lambda: os.close(_fd(file)))

    def size(self, file: File) -> Future[int]:
        return call_now("size", file.path, lambda: os.fstat(_fd(file)).st_size)

    def shutdown(self) -> None:
        """Nothing is ever in flight."""


def sync_directory(path: str) -> None:
    """fsync a directory so the entries created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_file(path: str) -> File:
    """Open `path` and take an exclusive, non-blocking `flock`; closing releases it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_PERMISSIONS)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return File(path, "w", fd)


_: type[Io] = BlockingIo
