"""The io_uring backend: `kv.io.Io` on Linux io_uring through the `liburing` binding.

Data path. `open`, `read`, `write`, `sync`, `truncate` and `close` each prepare one
submission queue entry (SQE) and return a pending `Future`; nothing reaches the kernel
until someone calls `result()` on a pending future (or the submission queue is full).
`result()` calls `_drive`, which submits every queued SQE in one `io_uring_enter`,
waits for at least one completion, reaps every completion (CQE) that is ready and
completes the matching futures. Each SQE carries an integer `user_data` key into a dict
of in-flight operations, and every buffer the kernel reads or writes (write data, read
bytearrays, encoded paths) stays referenced there until its CQE is reaped. A short
write is resubmitted for the remainder, so `write` writes all of its data or fails.

Ordering (invariant 3 of `kv.io`). A sync must start after every earlier write and
truncate on its file has completed. When the only such operation still outstanding is
the SQE queued right before the sync (not yet submitted), that SQE gets IOSQE_IO_LINK,
so the kernel starts the fsync when the write completes; if the write fails, the kernel
cancels the fsync (-ECANCELED) and the sync fails with that `IoError`. When more
writes/truncates on the file are outstanding (queued earlier or already in flight), the
fsync gets IOSQE_IO_DRAIN: it starts after every earlier SQE of the ring completed.
A sync whose predecessor completed short (and was continued with another SQE) is issued
again behind the remainder, so it always covers all bytes. `truncate` always drains, so
it stays ordered with the writes around it (a write at the cut point must not overtake
it); `close` drains behind the outstanding operations on its file. Directory operations
(`rename`, `unlink`, `mkdir`, `sync_dir`, `listdir`, `lock`) are the blocking backend's
`PathOperations`; `size` is `os.fstat` after the file's queued writes.

Probe. `probe()` says whether io_uring works here without risking the caller: it checks
that `liburing` is installed (without importing it), reads
/proc/sys/kernel/io_uring_disabled, then creates a ring in a child process that writes
a file through the ring and reaps the completion. A child killed by a signal (SIGILL
from a wheel built for newer CPUs) or exiting non-zero (EPERM from a seccomp filter)
makes the probe report unavailable with the reason. KV_IO_URING_DISABLE=1 forces
"unavailable". The answer is cached per process (`probe.cache_clear()` resets it).

A `UringIo` is not thread-safe: one ring, driven by whoever waits on a future.
Call `shutdown()` to wait for in-flight operations and release the ring.
"""

from __future__ import annotations

import errno
import functools
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from io_backends._oserror import io_error, io_error_from_errno
from io_backends.blocking import PathOperations, call_now
from kv.errors import IoError
from kv.io import File, Future, Io, OpenMode

__all__ = ["RING_ENTRIES", "Probe", "UringIo", "probe"]

T = TypeVar("T")

# Submission queue size: how many operations are queued before a forced submit. 256 lets
# a burst of small writes go to the kernel in one io_uring_enter while the rings stay a
# few tens of KiB; the kernel rounds it up to a power of two.
RING_ENTRIES = 256
# The kernel sizes the completion queue at twice the submission queue. Keeping at most
# that many operations unreaped means completions never overflow it.
COMPLETION_QUEUE_FACTOR = 2
# One SQE carries at most this many bytes (the length field is 32 bits and Linux caps a
# single read/write just under 2 GiB); longer writes continue in further SQEs.
TRANSFER_SIZE_MAX_BYTES = 1 << 30
# A write that keeps completing short, or a sync re-issued behind short writes this many
# times, is a kernel or device that makes no progress: fail it with EIO.
RETRY_ROUNDS_MAX = 1 << 16
PROBE_TIMEOUT_SECONDS = 30
DISABLE_VARIABLE = "KV_IO_URING_DISABLE"
IO_URING_DISABLED_PATH = "/proc/sys/kernel/io_uring_disabled"
IO_URING_GROUP_PATH = "/proc/sys/kernel/io_uring_group"

_OPEN_FLAGS: dict[str, int] = {
    "r": os.O_RDONLY,
    "w": os.O_RDWR | os.O_CREAT,
    "x": os.O_RDWR | os.O_CREAT | os.O_EXCL,
}
_FILE_PERMISSIONS = 0o644
# Operations a later sync of the same file must wait for.
_ORDERED_NAMES = frozenset(("write", "truncate"))
# The binding takes `&buffer[0]`, so a zero-length transfer still points at one byte.
_EMPTY_WRITE_BUFFER = b"\0"


# ---------------------------------------------------------------------------------------
# Probe


@dataclass(frozen=True)
class Probe:
    """Whether io_uring works in this process, and why not when it does not."""

    available: bool
    reason: str


# Run in a child process: a crash there (SIGILL, seccomp kill) cannot take the caller down.
_PROBE_CHILD_CODE = r"""
import os, sys, tempfile
import liburing as L

ring = L.io_uring()
L.io_uring_queue_init(8, ring)
try:
    probe = L.io_uring_get_probe_ring(ring)
    if probe.ops_len is None:
        sys.exit("io_uring_get_probe_ring failed")
    needed = ("OPENAT", "READ", "WRITE", "FSYNC", "CLOSE", "NOP")
    missing = [name for name in needed if not L.io_uring_opcode_supported(probe, getattr(L, "IORING_OP_" + name))]
    L.io_uring_free_probe(probe)
    if missing:
        sys.exit("kernel lacks io_uring opcodes: " + ", ".join(missing))
    cqe = L.io_uring_cqe()
    with tempfile.TemporaryFile() as scratch:
        sqe = L.io_uring_get_sqe(ring)
        L.io_uring_prep_nop(sqe)
        L.io_uring_sqe_set_data64(sqe, 1)
        sqe = L.io_uring_get_sqe(ring)
        L.io_uring_prep_write(sqe, scratch.fileno(), b"probe", 5, 0)
        L.io_uring_sqe_set_data64(sqe, 2)
        L.io_uring_submit_and_wait(ring, 2)
        results = {}
        while L.io_uring_peek_cqe(ring, cqe) == 0:
            results[L.io_uring_cqe_get_data64(cqe)] = cqe.res
            L.io_uring_cqe_seen(ring, cqe)
        if results != {1: 0, 2: 5}:
            sys.exit(f"unexpected io_uring completions {results!r}")
        if os.pread(scratch.fileno(), 5, 0) != b"probe":
            sys.exit("an io_uring write did not reach the file")
finally:
    L.io_uring_queue_exit(ring)
print("ok")
"""


@functools.cache
def probe() -> Probe:
    """Whether the io_uring backend can run here (cached per process; never raises)."""
    try:
        return _probe_uncached()
    except Exception as error:  # the probe must never crash its caller
        return Probe(False, f"io_uring probe failed: {error!r}")


def _probe_uncached() -> Probe:
    if os.environ.get(DISABLE_VARIABLE, "") not in ("", "0"):
        return Probe(False, f"disabled by {DISABLE_VARIABLE}={os.environ[DISABLE_VARIABLE]}")
    if not sys.platform.startswith("linux"):
        return Probe(False, f"io_uring is Linux only (platform {sys.platform})")
    if importlib.util.find_spec("liburing") is None:
        return Probe(False, "liburing is not installed (pip install '.[uring]')")
    refusal = _sysctl_refusal()
    if refusal:
        return Probe(False, refusal)
    return _probe_child()


def _sysctl_refusal() -> str:
    """Why the io_uring_disabled sysctl forbids us a ring, or "" when it allows one."""
    disabled = _read_integer(IO_URING_DISABLED_PATH)
    if disabled is None or disabled == 0:
        return ""
    if disabled >= 2:
        return f"io_uring is disabled for every process (kernel.io_uring_disabled={disabled})"
    if os.geteuid() == 0:
        return ""
    group = _read_integer(IO_URING_GROUP_PATH)
    if group is not None and group >= 0 and group in os.getgroups():
        return ""
    return "kernel.io_uring_disabled=1 and this process is neither root nor in kernel.io_uring_group"


def _read_integer(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as stream:
            return int(stream.read().strip())
    except (OSError, ValueError):
        return None


def _probe_child() -> Probe:
    try:
        completed = subprocess.run(
            [sys.executable, "-c", _PROBE_CHILD_CODE],
            timeout=PROBE_TIMEOUT_SECONDS,
            capture_output=True,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Probe(False, f"the io_uring probe child did not finish within {PROBE_TIMEOUT_SECONDS} s")
    except OSError as error:
        return Probe(False, f"could not start the io_uring probe child: {error}")
    if completed.returncode < 0:
        return Probe(False, f"the io_uring probe child was killed by {_signal_name(-completed.returncode)}")
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines() or [f"exit status {completed.returncode}"]
        return Probe(False, f"the io_uring probe child failed: {lines[-1]}")
    return Probe(True, "io_uring works")


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    if number == signal.SIGILL:
        return f"{name} (the liburing wheel may use CPU instructions this machine lacks)"
    return name


# ---------------------------------------------------------------------------------------
# Backend


def _load_liburing() -> Any:
    """The `liburing` module, imported on first use; it has no stubs, so it is `Any`."""
    return importlib.import_module("liburing")


def _invalid(operation: str, path: str) -> Future[Any]:
    return Future.failed(io_error_from_errno(errno.EINVAL, operation, path))


def _descriptor(file: File) -> int:
    assert isinstance(file.handle, int), file
    return file.handle


@dataclass(eq=False, slots=True)
class _Operation:
    """One queued or in-flight call: its future, the buffers the kernel uses, its state."""

    name: str
    path: str
    future: Future[Any]
    descriptor: int
    complete: Callable[[_Operation, int], None]  # handles one CQE result
    keep_alive: object = None  # buffer or encoded path the kernel reads or writes
    offset: int = 0
    size: int = 0  # read: bytes asked; truncate: the new length
    remaining: memoryview | bytes | None = None  # write: the bytes not written yet
    mode: OpenMode = "r"
    sync_flags: int = 0
    rounds: int = 0
    short: bool = False  # a write that completed short and continued in another SQE
    failed: bool = False
    dependencies: tuple[_Operation, ...] = ()  # sync: writes/truncates it must follow


class UringIo(PathOperations):
    """`kv.io.Io` on io_uring: queued SQEs, submitted in batches when a result is needed."""

    name = "uring"

    def __init__(self, ring_entries: int = RING_ENTRIES) -> None:
        self._liburing = liburing = _load_liburing()
        self._ring: Any = liburing.io_uring()
        try:
            liburing.io_uring_queue_init(ring_entries, self._ring)
        except OSError as error:
            raise io_error(error, "io_uring_queue_init", None) from error
        self._ring_open = True
        self._cqe: Any = liburing.io_uring_cqe()
        self._in_flight_max = ring_entries * COMPLETION_QUEUE_FACTOR
        self._in_flight: dict[int, _Operation] = {}
        # Per file descriptor, every operation not completed yet (insertion ordered).
        self._outstanding: dict[int, dict[_Operation, None]] = {}
        self._user_data_last = 0
        self._completed_count = 0
        # The SQE prepared last and not submitted yet: a sync right behind it may link.
        self._last_sqe: Any = None
        self._last_operation: _Operation | None = None
        self._ftruncate_supported = self._opcode_supported(liburing.IORING_OP_FTRUNCATE)
        self._bind_hot_functions(liburing)

    def _bind_hot_functions(self, liburing: Any) -> None:
        self._get_sqe = liburing.io_uring_get_sqe
        self._set_data64 = liburing.io_uring_sqe_set_data64
        self._get_data64 = liburing.io_uring_cqe_get_data64
        self._peek_cqe = liburing.io_uring_peek_cqe
        self._cqe_seen = liburing.io_uring_cqe_seen
        self._prep_write = liburing.io_uring_prep_write
        self._prep_read = liburing.io_uring_prep_read

    def _opcode_supported(self, opcode: int) -> bool:
        ring_probe = self._liburing.io_uring_get_probe_ring(self._ring)
        if ring_probe.ops_len is None:  # NULL probe: asking it would dereference NULL
            return False
        try:
            return bool(self._liburing.io_uring_opcode_supported(ring_probe, opcode))
        finally:
            self._liburing.io_uring_free_probe(ring_probe)

    # -- the Io protocol: data path through the ring ----------------------------------

    def open(self, path: str, mode: OpenMode) -> Future[File]:
        encoded = os.fsencode(path)
        if b"\0" in encoded:  # the binding would silently cut the path at the NUL
            return _invalid("open", path)
        operation = self._operation("open", path, -1, self._complete_open)
        operation.keep_alive = encoded
        operation.mode = mode
        return self._launch(operation, self._start_open)

    def read(self, file: File, offset: int, size: int) -> Future[bytes]:
        if offset < 0 or size < 0:  # io_uring reads offset -1 as "current position"
            return _invalid("read", file.path)
        operation = self._operation("read", file.path, _descriptor(file), self._complete_read)
        operation.offset = offset
        operation.size = min(size, TRANSFER_SIZE_MAX_BYTES)  # fewer bytes is a legal short read
        return self._launch(operation, self._start_read)

    def write(self, file: File, offset: int, data: bytes) -> Future[None]:
        if offset < 0:
            return _invalid("write", file.path)
        operation = self._operation("write", file.path, _descriptor(file), self._complete_write)
        operation.offset = offset
        # A private copy of mutable buffers, like a blocking pwrite taking its bytes now.
        operation.remaining = data if isinstance(data, bytes) else bytes(data)
        return self._launch(operation, self._start_write)

    def sync(self, file: File, data_only: bool = True) -> Future[None]:
        operation = self._operation("sync", file.path, _descriptor(file), self._complete_sync)
        operation.sync_flags = self._liburing.IORING_FSYNC_DATASYNC if data_only else 0
        return self._launch(operation, self._start_sync)

    def truncate(self, file: File, size: int) -> Future[None]:
        descriptor = _descriptor(file)
        if not self._ftruncate_supported:  # kernels before 6.9: after the queued writes, then os
            self._settle(descriptor)
            return call_now("truncate", file.path, lambda: os.ftruncate(descriptor, size))
        operation = self._operation("truncate", file.path, descriptor, self._complete_truncate)
        operation.size = size
        return self._launch(operation, self._start_truncate)

    def close(self, file: File) -> Future[None]:
        operation = self._operation("close", file.path, _descriptor(file), self._complete_plain)
        return self._launch(operation, self._start_close)

    # -- the Io protocol: size (the directory operations come from PathOperations) ----------

    def size(self, file: File) -> Future[int]:
        descriptor = _descriptor(file)
        self._settle(descriptor)  # report the size the queued writes and truncates leave
        return call_now("size", file.path, lambda: os.fstat(descriptor).st_size)

    # -- lifecycle -------------------------------------------------------------------

    def shutdown(self) -> None:
        """Wait for every queued and in-flight operation, then exit the ring (idempotent)."""
        self._drain()
        self.close_ring()

    def close_ring(self) -> None:
        """Exit the ring (io_uring_queue_exit). Waits for in-flight operations first, since
        the kernel would otherwise still write into buffers this object is about to drop."""
        if not self._ring_open:
            return
        self._drain()
        self._ring_open = False
        self._liburing.io_uring_queue_exit(self._ring)

    def _drain(self) -> None:
        while self._in_flight:
            self._drive()

    # -- queueing ----------------------------------------------------------------------

    def _operation(
        self, name: str, path: str, descriptor: int, complete: Callable[[_Operation, int], None]
    ) -> _Operation:
        return _Operation(name, path, Future(drive=self._drive), descriptor, complete)

    def _launch(self, operation: _Operation, start: Callable[[_Operation], None]) -> Future[Any]:
        if not self._ring_open:
            return Future.failed(io_error_from_errno(errno.EBADF, operation.name, operation.path))
        if operation.descriptor >= 0:
            self._outstanding.setdefault(operation.descriptor, {})[operation] = None
        start(operation)
        return operation.future

    def _next_sqe(self) -> Any:
        """A free SQE, submitting (and reaping) to make room when the rings are full."""
        if len(self._in_flight) >= self._in_flight_max:
            self._submit_and_reap(wait_count=1)
        sqe = self._get_sqe(self._ring)
        for _ in range(RETRY_ROUNDS_MAX):
            if sqe:
                return sqe
            self._submit_and_reap(wait_count=1 if self._in_flight else 0)
            sqe = self._get_sqe(self._ring)
        raise io_error_from_errno(errno.EBUSY, "io_uring_get_sqe", None)

    def _track(self, sqe: Any, operation: _Operation, flags: int = 0) -> None:
        self._user_data_last += 1
        user_data = self._user_data_last
        self._set_data64(sqe, user_data)
        if flags:
            self._liburing.io_uring_sqe_set_flags(sqe, flags)
        self._in_flight[user_data] = operation
        self._last_sqe = sqe
        self._last_operation = operation

    def _start_open(self, operation: _Operation) -> None:
        sqe = self._next_sqe()
        flags = _OPEN_FLAGS[operation.mode] | os.O_CLOEXEC
        self._liburing.io_uring_prep_openat(
            sqe, operation.keep_alive, flags, _FILE_PERMISSIONS, self._liburing.AT_FDCWD
        )
        self._track(sqe, operation)

    def _start_read(self, operation: _Operation) -> None:
        sqe = self._next_sqe()
        buffer = bytearray(max(operation.size, 1))
        operation.keep_alive = buffer
        self._prep_read(sqe, operation.descriptor, buffer, operation.size, operation.offset)
        self._track(sqe, operation)

    def _start_write(self, operation: _Operation) -> None:
        sqe = self._next_sqe()
        remaining = operation.remaining
        assert remaining is not None
        count = min(len(remaining), TRANSFER_SIZE_MAX_BYTES)
        buffer = remaining if count else _EMPTY_WRITE_BUFFER
        self._prep_write(sqe, operation.descriptor, buffer, count, operation.offset)
        self._track(sqe, operation)

    def _start_sync(self, operation: _Operation) -> None:
        sqe = self._next_sqe()  # may submit the batch: decide link or drain only after it
        outstanding = self._outstanding.get(operation.descriptor, ())
        earlier = tuple(other for other in outstanding if other.name in _ORDERED_NAMES)
        operation.dependencies = earlier
        flags = 0
        if len(earlier) == 1 and earlier[0] is self._last_operation:
            self._link_last_sqe()
        elif earlier:
            flags = self._liburing.IOSQE_IO_DRAIN
        self._liburing.io_uring_prep_fsync(sqe, operation.descriptor, operation.sync_flags)
        self._track(sqe, operation, flags)

    def _link_last_sqe(self) -> None:
        sqe = self._last_sqe
        self._liburing.io_uring_sqe_set_flags(sqe, sqe.flags | self._liburing.IOSQE_IO_LINK)

    def _start_truncate(self, operation: _Operation) -> None:
        sqe = self._next_sqe()
        self._liburing.io_uring_prep_ftruncate(sqe, operation.descriptor, operation.size)
        # Drained: a truncate runs after every earlier SQE and before every later one, as a
        # blocking ftruncate would; io_uring punts it to a worker, where it could overtake
        # writes. Truncates are rare, so the stall costs little.
        self._track(sqe, operation, self._liburing.IOSQE_IO_DRAIN)

    def _start_close(self, operation: _Operation) -> None:
        sqe = self._next_sqe()
        others = len(self._outstanding.get(operation.descriptor, ())) > 1
        self._liburing.io_uring_prep_close(sqe, operation.descriptor)
        self._track(sqe, operation, self._liburing.IOSQE_IO_DRAIN if others else 0)

    # -- driving -----------------------------------------------------------------------

    def _drive(self) -> None:
        """Submit what is queued, wait, reap; returns after at least one future completed."""
        completed_before = self._completed_count
        while self._completed_count == completed_before:
            assert self._in_flight, "uring: a pending future with nothing queued or in flight"
            self._submit_and_reap(wait_count=1)

    def _settle(self, descriptor: int) -> None:
        """Drive until no write or truncate on `descriptor` is outstanding."""
        while any(other.name in _ORDERED_NAMES for other in self._outstanding.get(descriptor, ())):
            self._drive()

    def _submit_and_reap(self, wait_count: int) -> None:
        self._last_sqe = None  # submitted SQEs can no longer take a link flag
        self._last_operation = None
        try:
            self._liburing.io_uring_submit_and_wait(self._ring, wait_count)
        except (InterruptedError, BlockingIOError):
            pass  # EINTR or EAGAIN: the caller loops and submits again
        except OSError as error:
            if error.errno != errno.EBUSY:
                raise io_error(error, "io_uring_submit", None) from error
        self._reap()

    def _reap(self) -> None:
        ring, cqe = self._ring, self._cqe
        while self._peek_cqe(ring, cqe) == 0:
            user_data = self._get_data64(cqe)
            result = cqe.res
            self._cqe_seen(ring, cqe)  # read everything first: a handler may reap again
            operation = self._in_flight.pop(user_data)
            operation.complete(operation, result)

    # -- completions -------------------------------------------------------------------

    def _finish(self, operation: _Operation, value: object) -> None:
        self._forget(operation)
        operation.future.set_result(value)
        self._completed_count += 1

    def _fail(self, operation: _Operation, number: int) -> None:
        self._fail_with(operation, io_error_from_errno(number, operation.name, operation.path))

    def _fail_with(self, operation: _Operation, error: IoError) -> None:
        self._forget(operation)
        operation.failed = True
        operation.future.set_error(error)
        self._completed_count += 1

    def _forget(self, operation: _Operation) -> None:
        outstanding = self._outstanding.get(operation.descriptor)
        if outstanding is not None:
            outstanding.pop(operation, None)
            if not outstanding:
                del self._outstanding[operation.descriptor]
        operation.keep_alive = None
        operation.remaining = None

    def _complete_plain(self, operation: _Operation, result: int) -> None:
        if result < 0:
            self._fail(operation, -result)
        else:
            self._finish(operation, None)

    def _complete_open(self, operation: _Operation, result: int) -> None:
        if result < 0:
            self._fail(operation, -result)
        else:
            self._finish(operation, File(operation.path, operation.mode, result))

    def _complete_read(self, operation: _Operation, result: int) -> None:
        if result < 0:
            self._fail(operation, -result)
            return
        buffer = operation.keep_alive
        assert isinstance(buffer, bytearray)
        self._finish(operation, bytes(memoryview(buffer)[:result]))

    def _complete_write(self, operation: _Operation, result: int) -> None:
        remaining = operation.remaining
        assert remaining is not None
        if result < 0:
            self._fail(operation, -result)
        elif result >= len(remaining):
            self._finish(operation, None)
        elif result == 0 or operation.rounds >= RETRY_ROUNDS_MAX:
            self._fail(operation, errno.EIO)  # the kernel keeps writing nothing
        else:
            operation.rounds += 1
            operation.short = True
            operation.remaining = memoryview(remaining)[result:]
            operation.offset += result
            self._start_write(operation)

    def _complete_truncate(self, operation: _Operation, result: int) -> None:
        if result != -errno.EINVAL:
            self._complete_plain(operation, result)
            return
        try:  # no IORING_OP_FTRUNCATE after all, or a bad length: let os say which
            os.ftruncate(operation.descriptor, operation.size)
        except OSError as error:
            self._fail_with(operation, io_error(error, operation.name, operation.path))
        else:
            self._finish(operation, None)

    def _complete_sync(self, operation: _Operation, result: int) -> None:
        dependencies = operation.dependencies
        canceled = result == -errno.ECANCELED
        if canceled and any(other.failed for other in dependencies):
            self._fail(operation, errno.ECANCELED)  # the linked write before it failed
        elif (result >= 0 or canceled) and any(other.short or not other.future.done() for other in dependencies):
            self._sync_again(operation)  # a predecessor continued in another SQE: cover it too
        elif result < 0:
            self._fail(operation, -result)
        else:
            self._finish(operation, None)

    def _sync_again(self, operation: _Operation) -> None:
        if operation.rounds >= RETRY_ROUNDS_MAX:
            self._fail(operation, errno.EIO)
            return
        operation.rounds += 1
        self._start_sync(operation)


_: type[Io] = UringIo
