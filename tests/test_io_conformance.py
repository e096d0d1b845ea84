"""One conformance suite for every `kv.io.Io` backend (blocking, io_uring, simulated).

Each test states one clause of the contract in `kv/io.py`.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

import pytest

from kv.errors import IoError
from kv.io import Future, read_exact
from tests.conftest import Backend


def test_write_then_read_returns_the_bytes(backend: Backend) -> None:
    file = backend.io.open(backend.path("a"), "w").result()
    backend.io.write(file, 0, b"hello world").result()
    assert backend.io.read(file, 0, 11).result() == b"hello world"
    assert backend.io.read(file, 6, 100).result() == b"world"
    assert backend.io.read(file, 11, 10).result() == b""
    assert backend.io.size(file).result() == 11
    backend.io.close(file).result()


def test_write_past_end_fills_with_zeros(backend: Backend) -> None:
    file = backend.io.open(backend.path("a"), "w").result()
    backend.io.write(file, 4, b"xy").result()
    assert read_exact(backend.io, file, 0, 6) == b"\0\0\0\0xy"


def test_many_queued_writes_then_one_sync(backend: Backend) -> None:
    file = backend.io.open(backend.path("a"), "w").result()
    chunk = bytes(range(100))
    futures = [backend.io.write(file, index * 100, chunk) for index in range(500)]
    sync = backend.io.sync(file)
    sync.result()
    assert all(future.done() for future in futures), "sync completed before earlier writes"
    for future in futures:
        assert future.result() is None
    assert read_exact(backend.io, file, 0, 50_000) == chunk * 500


def test_large_write_is_whole(backend: Backend) -> None:
    file = backend.io.open(backend.path("big"), "w").result()
    data = bytes(range(256)) * 40_000  # 10 MB
    backend.io.write(file, 0, data).result()
    backend.io.sync(file, data_only=False).result()
    assert read_exact(backend.io, file, 0, len(data)) == data


def test_truncate_shrinks_and_grows(backend: Backend) -> None:
    file = backend.io.open(backend.path("a"), "w").result()
    backend.io.write(file, 0, b"abcdef").result()
    backend.io.truncate(file, 3).result()
    assert backend.io.size(file).result() == 3
    backend.io.truncate(file, 5).result()
    assert read_exact(backend.io, file, 0, 5) == b"abc\0\0"


def test_open_modes(backend: Backend) -> None:
    io = backend.io
    with pytest.raises(IoError) as missing:
        io.open(backend.path("missing"), "r").result()
    assert missing.value.errno == errno.ENOENT
    assert isinstance(missing.value, OSError)
    io.close(io.open(backend.path("made"), "x").result()).result()
    with pytest.raises(IoError) as exists:
        io.open(backend.path("made"), "x").result()
    assert exists.value.errno == errno.EEXIST
    file = io.open(backend.path("made"), "w").result()
    io.write(file, 0, b"keep").result()
    io.close(file).result()
    reopened = io.open(backend.path("made"), "w").result()
    assert io.read(reopened, 0, 4).result() == b"keep", "mode w must not truncate"


def test_write_to_read_only_handle_fails_typed(backend: Backend) -> None:
    io = backend.io
    io.close(io.open(backend.path("a"), "w").result()).result()
    file = io.open(backend.path("a"), "r").result()
    with pytest.raises(IoError) as failure:
        io.write(file, 0, b"x").result()
    assert failure.value.errno == errno.EBADF


def test_rename_unlink_listdir(backend: Backend) -> None:
    io = backend.io
    io.close(io.open(backend.path("b"), "w").result()).result()
    io.close(io.open(backend.path("a"), "w").result()).result()
    io.mkdir(backend.path("sub/deeper")).result()
    io.mkdir(backend.path("sub")).result()  # existing is fine
    assert io.listdir(backend.directory).result() == ["a", "b", "sub"]
    io.rename(backend.path("a"), backend.path("c")).result()
    io.sync_dir(backend.directory).result()
    assert io.listdir(backend.directory).result() == ["b", "c", "sub"]
    io.unlink(backend.path("b")).result()
    assert io.listdir(backend.directory).result() == ["c", "sub"]
    with pytest.raises(IoError) as missing:
        io.unlink(backend.path("b")).result()
    assert missing.value.errno == errno.ENOENT
    with pytest.raises(IoError) as missing_source:
        io.rename(backend.path("nope"), backend.path("x")).result()
    assert missing_source.value.errno == errno.ENOENT
    with pytest.raises(IoError):
        io.listdir(backend.path("nope")).result()


def test_rename_replaces_destination(backend: Backend) -> None:
    io = backend.io
    for name, content in (("new", b"new"), ("old", b"old")):
        file = io.open(backend.path(name), "w").result()
        io.write(file, 0, content).result()
        io.close(file).result()
    io.rename(backend.path("new"), backend.path("old")).result()
    file = io.open(backend.path("old"), "r").result()
    assert io.read(file, 0, 10).result() == b"new"


def test_lock_is_exclusive_until_closed(backend: Backend) -> None:
    io = backend.io
    held = io.lock(backend.path("LOCK")).result()
    with pytest.raises(IoError) as contended:
        io.lock(backend.path("LOCK")).result()
    assert contended.value.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    io.close(held).result()
    io.close(io.lock(backend.path("LOCK")).result()).result()


def test_closed_handle_fails_typed(backend: Backend) -> None:
    io = backend.io
    file = io.open(backend.path("a"), "w").result()
    io.close(file).result()
    with pytest.raises(IoError) as failure:
        io.read(file, 0, 1).result()
    assert failure.value.errno == errno.EBADF


def test_now_is_a_clock(backend: Backend) -> None:
    first = backend.io.now()
    backend.io.sync_dir(backend.directory).result()
    assert isinstance(first, float)
    assert backend.io.now() >= first


def test_futures_complete_once_and_report(backend: Backend) -> None:
    future = backend.io.listdir(backend.directory)
    assert future.result() == future.result()
    assert Future.completed(3).result() == 3
    with pytest.raises(IoError):
        Future.failed(IoError(errno.EIO, "boom")).result()


def test_a_negative_offset_or_size_is_einval(backend: Backend) -> None:
    io = backend.io
    file = io.open(backend.path("a"), "w").result()
    io.write(file, 0, b"abcdef").result()
    calls: list[Callable[[], Future[Any]]] = [
        lambda: io.read(file, -2, 2),
        lambda: io.read(file, 0, -1),
        lambda: io.write(file, -2, b"XY"),
        lambda: io.truncate(file, -1),
    ]
    for call in calls:
        with pytest.raises(IoError) as failure:
            call().result()
        assert failure.value.errno == errno.EINVAL
    assert read_exact(io, file, 0, 6) == b"abcdef", "a refused call changes nothing"
    io.close(file).result()
