"""The I/O contract: the only way `kv` touches a disk or a clock.

Every call returns a `Future`; `future.result()` drives the backend until that future
completes, then returns its value or raises its error. A backend may complete futures at
once (blocking), queue them and submit in batches (io_uring), or complete them in a
seeded order after virtual latency (the simulator).

Invariants every backend keeps (the conformance suite in `tests/` checks them):

1. Errors are `kv.errors.IoError` with a POSIX `errno`, never a bare `OSError`.
2. `write` writes all of `data` or fails; `read` returns at most `size` bytes and fewer
   only at end of file or on a short read (callers loop, see `read_exact`).
3. Ordering: `sync(file)` completes only after every `write`/`truncate` on that file
   issued before it has completed, and makes all of them durable. Nothing else is
   ordered: independent operations may complete in any order.
4. Durability: written bytes are durable only after a `sync` of their file succeeded;
   a created, renamed or unlinked directory entry is durable only after `sync_dir` of
   its directory succeeded. A failed `sync` makes no promise about any earlier write
   (fsyncgate: the kernel may have dropped the dirty pages), so callers never retry and
   trust.
5. `lock(path)` takes an exclusive advisory lock held until the returned file is closed;
   a second holder gets `IoError` with errno `EWOULDBLOCK`/`EAGAIN`.
6. `now()` is the only clock the store reads (virtual in the simulator): seconds as a
   float.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Generic, Literal, Protocol, TypeVar

from kv.errors import IoError

__all__ = ["File", "Future", "Io", "IoError", "OpenMode", "close_quietly", "make_io", "read_exact"]

T = TypeVar("T")

OpenMode = Literal["r", "w", "x"]
"""`"r"` read only, the file must exist; `"w"` read and write, created when missing,
never truncated; `"x"` read and write, created, fails with EEXIST when it exists."""

_PENDING = 0
_DONE = 1
_FAILED = 2

# A `result()` loop that needs more driver steps than this is a backend bug: every step
# must complete at least one operation, and no backend queues this many.
_DRIVE_STEPS_MAX = 1_000_000


class Future(Generic[T]):
    """The eventual value (or error) of one I/O call.

    A backend creates it with a `drive` callable that advances the backend by at least
    one completion; `result()` calls it until this future is done.
    """

    __slots__ = ("_drive", "_error", "_state", "_value")

    def __init__(self, drive: Callable[[], None] | None = None) -> None:
        self._state = _PENDING
        self._value: T | None = None
        self._error: BaseException | None = None
        self._drive = drive

    @classmethod
    def completed(cls, value: T) -> Future[T]:
        future: Future[T] = cls()
        future._state = _DONE
        future._value = value
        return future

    @classmethod
    def failed(cls, error: BaseException) -> Future[T]:
        future: Future[T] = cls()
        future._state = _FAILED
        future._error = error
        return future

    def done(self) -> bool:
        return self._state != _PENDING

    def set_result(self, value: T) -> None:
        assert self._state == _PENDING, "a future completes once"
        self._state = _DONE
        self._value = value

    def set_error(self, error: BaseException) -> None:
        assert self._state == _PENDING, "a future completes once"
        self._state = _FAILED
        self._error = error

    def result(self) -> T:
        """Drive the backend until this future completes; return or raise its outcome."""
        if self._state == _PENDING:
            drive = self._drive
            assert drive is not None, "a pending future needs a driver"
            drive()  # often enough: the backend completes this future first
            if self._state == _PENDING:
                for _ in range(_DRIVE_STEPS_MAX):
                    drive()
                    if self._state != _PENDING:
                        break
                else:
                    raise AssertionError("backend made no progress on a pending future")
        if self._state == _FAILED:
            assert self._error is not None
            raise self._error
        return self._value  # type: ignore[return-value]


class File:
    """An open file: the path it was opened with, the mode, and the backend's handle.

    Only the backend that opened it interprets `handle`.
    """

    __slots__ = ("handle", "mode", "path")

    def __init__(self, path: str, mode: OpenMode, handle: object) -> None:
        self.path = path
        self.mode = mode
        self.handle = handle

    def __repr__(self) -> str:
        return f"File({self.path!r}, {self.mode!r})"


class Io(Protocol):
    """What the store asks of a disk. See the module docstring for the invariants."""

    name: str

    def open(self, path: str, mode: OpenMode) -> Future[File]: ...
    def read(self, file: File, offset: int, size: int) -> Future[bytes]: ...
    def write(self, file: File, offset: int, data: bytes) -> Future[None]: ...
    def sync(self, file: File, data_only: bool = True) -> Future[None]: ...
    def truncate(self, file: File, size: int) -> Future[None]: ...
    def close(self, file: File) -> Future[None]: ...
    def size(self, file: File) -> Future[int]: ...
    def rename(self, source: str, destination: str) -> Future[None]: ...
    def unlink(self, path: str) -> Future[None]: ...
    def mkdir(self, path: str) -> Future[None]:
        """Create a directory (and missing parents); an existing one is fine."""
        ...

    def sync_dir(self, path: str) -> Future[None]: ...
    def listdir(self, path: str) -> Future[list[str]]:
        """Names in a directory, sorted."""
        ...

    def lock(self, path: str) -> Future[File]: ...
    def now(self) -> float: ...
    def shutdown(self) -> None:
        """Wait for in-flight operations and release the backend (a ring, say). Idempotent."""
        ...


# Bound on read retries after short reads: each retry must return at least one byte, so
# this only guards against a backend that keeps returning tiny pieces forever.
_SHORT_READS_MAX = 64


def read_exact(io: Io, file: File, offset: int, size: int) -> bytes:
    """Read `size` bytes at `offset`, looping over short reads.

    Returns fewer than `size` bytes only when the file ends first.
    Raises `IoError` from the backend.
    """
    data = io.read(file, offset, size).result()
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    for _ in range(_SHORT_READS_MAX):
        more = io.read(file, offset + got, size - got).result()
        if not more:
            break
        parts.append(more)
        got += len(more)
        if got == size:
            break
    return b"".join(parts)


def close_quietly(io: Io, file: File) -> None:
    """Close `file` after an earlier error, which is the one worth reporting."""
    with contextlib.suppress(IoError):
        io.close(file).result()


ENTRY_POINT_GROUP = "kv.io_backends"


def make_io(name: str = "auto", **options: object) -> Io:
    """Build a backend by name without importing it.

    `kv` never imports a backend: backends plug in through the `kv.io_backends` entry
    point group, whose `make_io` entry builds one by name (this distribution registers
    `io_backends:make_io`). Raises `KvError` when no backend is installed, and whatever
    the factory raises for an unknown or unavailable name.
    """
    from importlib.metadata import entry_points

    from kv.errors import KvError

    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name="make_io"):
        factory: Callable[..., Io] = entry_point.load()
        return factory(name, **options)
    raise KvError("no Io backend is installed (entry point group 'kv.io_backends'); pass io= to kv.open")
