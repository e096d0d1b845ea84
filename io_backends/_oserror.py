"""Turn a bare `OSError` into the contract's typed `IoError` (shared by real backends)."""

from __future__ import annotations

import os

from kv.errors import IoError


def io_error(error: OSError, operation: str, path: str | None) -> IoError:
    """The typed error for `error`; keeps errno, names the operation and the path."""
    number = error.errno if error.errno is not None else 0
    message = error.strerror or (os.strerror(number) if number else str(error))
    return IoError(number, message, path, operation)


def io_error_from_errno(number: int, operation: str, path: str | None) -> IoError:
    """The typed error for a raw errno (io_uring reports `-errno` in a completion)."""
    return IoError(number, os.strerror(number), path, operation)
