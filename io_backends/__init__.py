"""Implementations of `kv.io.Io`, chosen in one place: `make_io`.

Names: `"blocking"` (plain `os` calls), `"uring"` (io_uring through liburing),
`"sim"` (the seeded in-memory simulated disk), `"memory"` (files in dicts, the real
clock: `kv.connect("memory://")`) and `"auto"` (uring when the probe
passes, else blocking with one warning line on stderr).
"""

from __future__ import annotations

import sys
from typing import Any

from kv.errors import KvError
from kv.io import Io

BACKEND_NAMES = ("auto", "blocking", "uring", "sim", "memory")


class BackendUnavailable(KvError):
    """The backend asked for cannot run here (for example io_uring is disabled)."""


def make_io(name: str = "auto", **options: Any) -> Io:
    """Build the backend called `name`.

    Raises `ValueError` for an unknown name and `BackendUnavailable` when `"uring"` is
    forced where the probe fails.
    """
    if name == "blocking":
        from io_backends.blocking import BlockingIo

        return BlockingIo(**options)
    if name == "sim":
        from io_backends.sim import SimIo

        return SimIo(**options)
    if name == "memory":
        from io_backends.memory import MemoryIo

        return MemoryIo(**options)
    if name in ("uring", "auto"):
        from io_backends.uring import UringIo, probe

        result = probe()
        if result.available:
            return UringIo(**options)
        if name == "uring":
            raise BackendUnavailable(f"io_uring is unavailable here: {result.reason}")
        print(f"kv: io_uring unavailable ({result.reason}); using the blocking backend", file=sys.stderr)
        from io_backends.blocking import BlockingIo

        return BlockingIo()
    raise ValueError(f"unknown io backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
