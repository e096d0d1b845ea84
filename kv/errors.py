"""The one exception tree of `kv`.

Errors say whose fault they are (the h11 habit):

- `InvalidArgument` and its leaves: the caller passed something the store refuses
  (also a `ValueError`). Nothing was written.
- `CorruptionDetected`: bytes on disk failed a check. Carries the recovery report.
- `IoError`: the operating system (or the simulated disk) failed an operation. Carries
  `errno`, the operation name and the path. Also an `OSError`.
- `StoreReadOnly`, `StoreLocked`, `StoreClosed`: the store's lifecycle refuses the call.
- `ConnectionFailed`, `ServerError`: a `kv.connect("redis://...")` client lost its server,
  or the server answered with an error no other type names.

A broken invariant inside the store is an `AssertionError`, never one of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kv.recovery import RecoveryReport


class KvError(Exception):
    """Base of every error the store raises on purpose."""


class InvalidArgument(KvError, ValueError):
    """The caller's input was refused before anything was written."""


class KeyTooLarge(InvalidArgument):
    """A key is longer than `kv.limits.KEY_SIZE_MAX_BYTES`."""


class ValueTooLarge(InvalidArgument):
    """A value is longer than `kv.limits.VALUE_SIZE_MAX_BYTES`."""


class BatchTooLarge(InvalidArgument):
    """A `set_many` or a `batch()` does not fit in one frame (`FRAME_PAYLOAD_SIZE_MAX_BYTES`)."""


class NotAnInteger(InvalidArgument):
    """`incr` found a value that is not a signed 64-bit decimal integer, or the sum
    would leave that range (nothing was written)."""


class WrongType(KvError, TypeError):
    """The key holds a list where a string was expected, or a string where a list was
    (Redis's WRONGTYPE); nothing was written."""


class CorruptionDetected(KvError):
    """Stored bytes failed a checksum or structural check.

    `report` (when the error comes from opening a store) says which segment, which
    offset and which log sequence numbers were lost.
    """

    def __init__(self, message: str, report: RecoveryReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class IoError(KvError, OSError):
    """An I/O operation failed. `errno` is the POSIX error number (ENOSPC, EIO, ...).

    Every backend raises this, never a bare `OSError`, so callers can rely on one type.
    """

    def __init__(self, errno: int, message: str, path: str | None = None, operation: str = "") -> None:
        super().__init__(errno, message, path)
        self.operation = operation

    def __str__(self) -> str:
        where = f" on {self.filename!r}" if self.filename is not None else ""
        return f"{self.operation or 'io'} failed{where}: [errno {self.errno}] {self.strerror}"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.errno, self.strerror, self.filename, self.operation))


class StoreReadOnly(KvError):
    """The store refused a write: it was opened read-only, or an earlier write or sync
    failed (no retry-and-trust; reopen the store to recover from what is durable)."""


class StoreLocked(KvError):
    """Another writer holds the store's lock."""


class StoreClosed(KvError):
    """The store was closed."""


class ConnectionFailed(KvError, ConnectionError):
    """A `kv.connect` client could not reach its server, lost the connection, timed
    out or was refused (a wrong password, too many clients). Whether a write sent just
    before it was applied is unknown."""


class PermissionDenied(KvError, PermissionError):
    """The server's ACL does not let this client's user run the command or touch one of
    its keys (Redis's NOPERM). Nothing of the command ran; the connection stays usable."""


class ServerError(KvError):
    """A server answered with an error no other type of this tree names (Redis's OOM,
    say). `code` is the reply's first word (ERR, OOM, ...)."""

    def __init__(self, message: str, code: str = "ERR") -> None:
        super().__init__(message)
        self.code = code
