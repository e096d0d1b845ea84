"""Shared fixtures: every backend by name, each with a fresh directory."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from io_backends import make_io
from io_backends.sim import SimIo
from kv.io import Io

_counter = itertools.count()


def uring_unavailable_reason() -> str | None:
    try:
        from io_backends.uring import probe
    except ImportError as error:
        return f"io_backends.uring cannot be imported: {error}"
    result = probe()
    return None if result.available else result.reason


@dataclass
class Backend:
    io: Io
    directory: str

    def path(self, name: str) -> str:
        return f"{self.directory}/{name}"


def _make_backend(name: str, tmp_path: Path) -> Backend:
    if name == "uring":
        reason = uring_unavailable_reason()
        if reason is not None:
            pytest.skip(f"io_uring unavailable here: {reason}")
    if name == "sim":
        io = make_io("sim", seed=next(_counter))
        directory = "/data"
        io.mkdir(directory).result()
        return Backend(io, directory)
    if name == "memory":
        io = make_io("memory")
        io.mkdir("/data").result()
        return Backend(io, "/data")
    return Backend(make_io(name), str(tmp_path))


@pytest.fixture(params=["blocking", "uring", "sim", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made = _make_backend(request.param, tmp_path)
    yield made
    made.io.shutdown()


@pytest.fixture
def sim() -> SimIo:
    io = SimIo(seed=next(_counter))
    return io
