"""Atomic batches: several writes that commit as one frame, all or nothing.

    with store.batch() as batch:
        batch.set(b"a", b"1", ttl=60)
        batch.delete(b"b")
        batch.expire(b"c", 10)
    batch.results  # [True, <whether b existed>, <whether c existed>]

Rules (the store's `_commit_batch` serves them):

1. Queueing writes nothing and reads nothing: `set`, `delete` and `expire` check their
   arguments at once (a bad one raises in the block, so the batch is abandoned) and are
   kept in order.
2. When the block exits normally the store reads `io.now()` once, before any I/O, and
   works out each key's final state in queued order (`net_effect`): a set replaces,
   a delete removes, an expire applies to the value an earlier write of the batch left
   or, failing that, to the stored one (a time not in the future deletes, as Redis).
   A TTL counts from that one reading of the clock.
3. Each key that ends up changed becomes one record: a SET of its final value and
   expiry, or a DELETE when it ends absent and the store holds it. The records go into
   one frame, so after a crash all of them exist or none (a frame is atomic). A batch
   whose records do not fit in one frame raises `BatchTooLarge` with nothing written;
   one that changes nothing writes nothing.
4. The frame is committed as any write of the durability mode is: in `always` mode the
   block's exit returns once it is durable; in `batch` and `none` modes it is staged
   with the other pending writes (one frame still: it is never split).
5. If the block raises, nothing is written. A batch commits once; it cannot be reused.

Writes made on the store itself inside the block are not part of the batch: they
happen at once, and the batch applies after them.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, NamedTuple

from kv.errors import BatchTooLarge, InvalidArgument
from kv.limits import FRAME_PAYLOAD_SIZE_MAX_BYTES
from kv.record import RECORD_HEADER_SIZE

if TYPE_CHECKING:
    from kv.store import Store

# A batch never queues more writes than a frame could hold records: each record costs at
# least its header, so a longer queue is refused at once rather than after the block.
BATCH_QUEUED_WRITES_MAX = FRAME_PAYLOAD_SIZE_MAX_BYTES // RECORD_HEADER_SIZE

Verb = Literal["set", "delete", "expire"]


class Queued(NamedTuple):
    """One queued write: `set` (value, and its expiry: `relative_ms` from the commit's
    clock or `absolute_ms`, neither for none), `delete`, or `expire` (`relative_ms`)."""

    verb: Verb
    key: bytes
    value: bytes = b""
    relative_ms: int | None = None
    absolute_ms: int | None = None


# A key's final state: (value, expiry_ms; 0 for none), or None when it ends absent.
Final = tuple[bytes, int] | None
# One record a batch writes: key, value (None: a delete) and expiry_ms (0: none).
BatchRecord = tuple[bytes, bytes | None, int]


def net_effect(
    queued: list[Queued],
    now_ms: int,
    exists: Callable[[bytes], bool],
    stored: Callable[[bytes], tuple[bytes, int]],
) -> tuple[dict[bytes, Final], list[bool]]:
    """Each touched key's final state (in order of first touch) and each queued write's
    answer (a set: True; a delete or an expire: whether the key existed), at `now_ms`.

    `exists(key)` says whether the store holds `key` (unexpired) at `now_ms`;
    `stored(key)` is its value and expiry (called only for a key that exists, when an
    expire needs it; it may read the disk and raise `CorruptionDetected`/`IoError`)."""
    final: dict[bytes, Final] = {}
    results: list[bool] = []
    for write in queued:
        key = write.key
        if write.verb == "set":
            expiry_ms = now_ms + write.relative_ms if write.relative_ms is not None else write.absolute_ms or 0
            final[key] = None if expiry_ms and expiry_ms <= now_ms else (write.value, expiry_ms)
            results.append(True)
            continue
        present = final[key] is not None if key in final else exists(key)
        results.append(present)
        if not present:
            final.setdefault(key, None)
        elif write.verb == "delete":
            final[key] = None
        else:
            assert write.relative_ms is not None
            current = final.get(key) or stored(key)
            expiry_ms = now_ms + write.relative_ms
            final[key] = (current[0], expiry_ms) if expiry_ms > now_ms else None
    return final, results


def records_size_bytes(records: list[BatchRecord]) -> int:
    """The frame payload the records of a batch take."""
    return sum(RECORD_HEADER_SIZE + len(key) + (0 if value is None else len(value)) for key, value, _ in records)


def check_fits(records: list[BatchRecord]) -> None:
    """Raise `BatchTooLarge` unless the records fit in one frame."""
    size = records_size_bytes(records)
    if size > FRAME_PAYLOAD_SIZE_MAX_BYTES:
        raise BatchTooLarge(f"batch needs {size} bytes; one frame holds {FRAME_PAYLOAD_SIZE_MAX_BYTES}")


class Batch:
    """Writes queued for one atomic commit (see the module docstring). Made by
    `Store.batch()`; use it as a context manager."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queued: list[Queued] = []
        self._finished = False
        self.results: list[bool] | None = None  # each write's answer, once committed

    def _queue(self, write: Queued) -> None:
        if self._finished:
            raise InvalidArgument("this batch has already been committed or abandoned; start a new one")
        if len(self._queued) >= BATCH_QUEUED_WRITES_MAX:
            raise BatchTooLarge(f"a batch queues at most {BATCH_QUEUED_WRITES_MAX} writes")
        self._queued.append(write)

    def set(
        self, key: bytes | str, value: bytes | str, *, ttl: float | None = None, expire_at: float | None = None
    ) -> None:
        """Queue `store.set(key, value, ttl=, expire_at=)`. Raises at once what `set`
        raises for its arguments (`KeyTooLarge`, `ValueTooLarge`, `InvalidArgument`)."""
        from kv.store import _check_key, _check_value, _expiry_from

        key_bytes, value_bytes = _check_key(key), _check_value(value)
        if ttl is not None and expire_at is not None:
            raise InvalidArgument("ttl and expire_at exclude each other")
        offset_ms = _expiry_from(0, ttl, None) if ttl is not None else None  # validates
        absolute_ms = _expiry_from(0, None, expire_at) if expire_at is not None else None
        self._queue(Queued("set", key_bytes, value_bytes, offset_ms, absolute_ms))

    def delete(self, key: bytes | str) -> None:
        """Queue `store.delete(key)`; its answer is whether the key existed."""
        from kv.store import _check_key

        self._queue(Queued("delete", _check_key(key)))

    def expire(self, key: bytes | str, seconds: float) -> None:
        """Queue `store.expire(key, seconds)`: counted from the commit's clock; a time
        not in the future deletes the key. Its answer is whether the key existed."""
        from kv.store import _check_key, _milliseconds

        self._queue(Queued("expire", _check_key(key), relative_ms=_milliseconds(seconds, "seconds")))

    def __len__(self) -> int:
        return len(self._queued)

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Commit when the block exited normally; abandon the batch otherwise. Raises
        what the commit raises (`BatchTooLarge`, `StoreReadOnly`, `IoError`, ...)."""
        if self._finished:
            return
        self._finished = True
        queued, self._queued = self._queued, []
        if kind is None:
            self.results = self._store._commit_batch(queued)
