"""One client API over three backends: `kv.connect(url)`.

    import kv
    with kv.connect("memory://") as client:            # in process, nothing on disk
        client.set(b"session:1", b"ada", ttl=30)
        client.get(b"session:1")                        # b"ada"
    kv.connect("file:///var/lib/app/data")              # the embedded store in that directory
    kv.connect("redis://127.0.0.1:6379/0")              # `kv serve`, Redis or Valkey

URLs:

- `memory://`: a new, private store held in this process's memory (`io_backends.memory`:
  the real `Store` on files in dicts, the real clock), gone when the client closes. No
  disk is touched.
- `file:///absolute/path` (or `file://localhost/...`): `kv.open` of that directory,
  created when missing. `?durability=always|batch|none` picks the mode (default always).
- `redis://[[user]:password@]host[:port][/0]`, `rediss://...` (TLS), `unix:///path.sock`:
  a RESP server (`kv serve`, Redis, Valkey) through the `redis` client package
  (`pip install kv-sim[redis]`), found through the `kv.clients` entry point group so
  `kv` imports no network code. redis-py's URL options work (`?socket_timeout=5`); the
  default timeouts are 10 s. `connect` pings the server, so a server that cannot be
  reached raises `ConnectionFailed` at once.

Every backend takes keys and values as `bytes` (a `str` is encoded as UTF-8, a
`bytearray` or `memoryview` copied) and returns `bytes`; anything else (an int, say)
raises `InvalidArgument`. Keys and values are held to the embedded
store's limits on every backend (`kv.limits.KEY_SIZE_MAX_BYTES`,
`VALUE_SIZE_MAX_BYTES`: `KeyTooLarge`, `ValueTooLarge`), so data moves between backends.
Every backend raises the same `kv.errors` types (see `Client`). A client is not
thread-safe: give each thread its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import parse_qs, unquote, urlsplit

from kv.errors import InvalidArgument, KvError
from kv.limits import KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES
from kv.store import DURABILITY_MODES, Store
from kv.store import open as open_store

__all__ = ["CLIENT_ENTRY_POINT_GROUP", "Client", "ClientBatch", "StoreClient", "connect"]

Key = bytes | str
Value = bytes | str

CLIENT_ENTRY_POINT_GROUP = "kv.clients"
# The directory a memory:// store lives in, inside its own private MemoryIo.
_MEMORY_DIRECTORY = "/memory"


class ClientBatch(Protocol):
    """Writes queued in a `with` block, applied all together when it exits normally.

    `set`, `delete` and `expire` check their arguments at once (a bad one raises in the
    block) and write nothing until the exit. On a normal exit every queued write is
    applied at once, in order: no other client sees some of them and not others
    (embedded: one frame of the log, so after a crash too; Redis and `kv serve`:
    MULTI/EXEC). If the block raises, nothing is written. `results` is then each write's
    answer, in order (`set`: True; `delete`, `expire`: whether the key existed); None
    before the commit or after an abandoned block.

    The exit raises what the writes would raise one by one. Only `expire` of a list can
    fail once the arguments passed their checks: the embedded store then raises
    `WrongType` with nothing written; `kv serve` raises `WrongType` too, but EXEC has
    no rollback, so the batch's other writes were applied; Redis sets the expiry.
    """

    results: list[bool] | None

    def set(self, key: Key, value: Value, *, ttl: float | None = None) -> None: ...
    def delete(self, key: Key) -> None: ...
    def expire(self, key: Key, seconds: float) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None: ...


class Client(Protocol):
    """The API every backend of `kv.connect` offers, with the same answers and errors.

    Times are seconds (float), at millisecond resolution (rounded to the nearest ms).
    Every method raises `StoreClosed` after `close()`, `InvalidArgument` (or its leaves
    `KeyTooLarge`, `ValueTooLarge`) for a bad argument, `WrongType` for a string method
    on a list or a list method on a string, `StoreReadOnly` when the store (or server)
    refuses writes, `IoError` and `CorruptionDetected` for the store's disk (a server's
    IOERR and CORRUPTION replies included), `ConnectionFailed` when a server cannot be
    reached, and `ServerError` for any other error reply of a server.
    """

    url: str

    def get(self, key: Key) -> bytes | None:
        """The string stored under `key`, or None when it is missing or expired."""
        ...

    def set(self, key: Key, value: Value, *, ttl: float | None = None) -> None:
        """Store `value` under `key` (replacing a string or a list). With `ttl` the key
        expires that many seconds from now (it must be at least 1 ms, else
        `InvalidArgument`); without it the key has no expiry (an earlier one is dropped)."""
        ...

    def delete(self, key: Key) -> bool:
        """Remove `key` (string or list); True when it existed."""
        ...

    def getdel(self, key: Key) -> bytes | None:
        """Remove `key` and return the string it held (None, nothing written, when missing)."""
        ...

    def exists(self, key: Key) -> bool:
        """Whether `key` holds a string or a list (and has not expired)."""
        ...

    def expire(self, key: Key, seconds: float) -> bool:
        """Make the string at `key` expire `seconds` from now; True when the key existed.
        A time not in the future deletes the key. On a list: the embedded store raises
        `WrongType`, Redis and `kv serve` differ (see the README)."""
        ...

    def ttl(self, key: Key) -> float | None:
        """Seconds until `key` expires (ms resolution, at least 0.0); `math.inf` when it
        exists with no expiry; None when it does not exist."""
        ...

    def rpush(self, key: Key, *values: Value) -> int:
        """Append `values` in order to the list at `key` (created when missing); the new
        length. At least one value (`InvalidArgument`)."""
        ...

    def lpush(self, key: Key, *values: Value) -> int:
        """Prepend `values` one after another (the last ends up first); the new length."""
        ...

    def lpop(self, key: Key) -> bytes | None:
        """Remove and return the list's first element; None when there is no list
        (a list whose last element is popped no longer exists). `rpush` + `lpop` is a
        FIFO queue."""
        ...

    def rpop(self, key: Key) -> bytes | None:
        """Remove and return the list's last element; None when there is no list."""
        ...

    def llen(self, key: Key) -> int:
        """The list's length; 0 when missing."""
        ...

    def lrange(self, key: Key, start: int = 0, stop: int = -1) -> list[bytes]:
        """Elements `start` to `stop`, both included, negative ones counted from the end
        (the default is the whole list); [] when missing."""
        ...

    def scan(self, prefix: Key = b"", *, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """`(key, value)` of every string whose key starts with `prefix`, in ascending
        byte order of the keys, at most `limit` of them (None: all). Lists are left out
        (they have no one value). Not a snapshot: a key written or deleted during the
        scan may or may not appear; one that stays is returned exactly once. Embedded:
        O(log n + k) on the ordered index. Redis/`kv serve`: SCAN MATCH over the whole
        keyspace, sorted here, then MGET, so O(n) and the sorting costs memory."""
        ...

    def batch(self) -> ClientBatch:
        """A `ClientBatch` to use as a context manager (see it)."""
        ...

    def close(self) -> None:
        """Release the store or the connection; idempotent. A memory:// store is gone."""
        ...

    def __enter__(self) -> Self: ...
    def __exit__(self, *_: object) -> None: ...


def as_bytes(data: object, what: str) -> bytes:
    """Keys and values as every backend takes them: bytes, or str as UTF-8."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise InvalidArgument(f"{what} must be bytes or str, not {type(data).__name__}")


class StoreClient:
    """`Client` over a `Store` in this process: memory:// and file://."""

    def __init__(self, url: str, store: Store, owns_io: bool) -> None:
        self.url = url
        self.store = store
        self._owns_io = owns_io  # memory://: the client made the MemoryIo, so it shuts it down

    def get(self, key: Key) -> bytes | None:
        return self.store.get(as_bytes(key, "key"))

    def set(self, key: Key, value: Value, *, ttl: float | None = None) -> None:
        self.store.set(as_bytes(key, "key"), as_bytes(value, "value"), ttl=ttl)

    def delete(self, key: Key) -> bool:
        return self.store.delete(as_bytes(key, "key"))

    def getdel(self, key: Key) -> bytes | None:
        return self.store.getdel(as_bytes(key, "key"))

    def exists(self, key: Key) -> bool:
        return self.store.exists(as_bytes(key, "key"))

    def expire(self, key: Key, seconds: float) -> bool:
        return self.store.expire(as_bytes(key, "key"), seconds)

    def ttl(self, key: Key) -> float | None:
        return ttl_from_milliseconds(self.store.pttl(as_bytes(key, "key")))

    def rpush(self, key: Key, *values: Value) -> int:
        return self.store.rpush(as_bytes(key, "key"), *(as_bytes(value, "value") for value in values))

    def lpush(self, key: Key, *values: Value) -> int:
        return self.store.lpush(as_bytes(key, "key"), *(as_bytes(value, "value") for value in values))

    def lpop(self, key: Key) -> bytes | None:
        return self.store.lpop(as_bytes(key, "key"))

    def rpop(self, key: Key) -> bytes | None:
        return self.store.rpop(as_bytes(key, "key"))

    def llen(self, key: Key) -> int:
        return self.store.llen(as_bytes(key, "key"))

    def lrange(self, key: Key, start: int = 0, stop: int = -1) -> list[bytes]:
        return self.store.lrange(as_bytes(key, "key"), start, stop)

    def scan(self, prefix: Key = b"", *, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        prefix_bytes = as_bytes(prefix, "prefix")
        return list(self.store.scan(prefix=prefix_bytes or None, limit=limit))

    def batch(self) -> ClientBatch:
        return self.store.batch()

    def close(self) -> None:
        try:
            self.store.close()
        finally:
            if self._owns_io:
                self.store.io.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def ttl_from_milliseconds(remaining_ms: int) -> float | None:
    """`Client.ttl`'s answer from Redis PTTL's (-2 missing, -1 no expiry)."""
    if remaining_ms == -2:
        return None
    if remaining_ms == -1:
        return math.inf
    return max(remaining_ms, 0) / 1000


def _memory(url: str) -> Client:
    from kv.io import make_io

    io = make_io("memory")
    try:
        store = open_store(_MEMORY_DIRECTORY, io=io)
    except BaseException:
        io.shutdown()
        raise
    return StoreClient(url, store, owns_io=True)


def _file(url: str) -> Client:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidArgument(f"a file:// URL names a local directory, not host {parts.netloc!r}: {url}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise InvalidArgument(f"a file:// URL needs an absolute path (file:///dir): {url}")
    query = parse_qs(parts.query)
    durability = query.pop("durability", ["always"])[-1]
    if query:
        raise InvalidArgument(f"unknown option(s) {', '.join(sorted(query))} in {url}; file:// takes durability=")
    if durability not in DURABILITY_MODES:
        raise InvalidArgument(f"durability must be one of {', '.join(DURABILITY_MODES)}, not {durability!r}")
    return StoreClient(url, open_store(path, durability=durability), owns_io=False)


def _remote(url: str) -> Client:
    """A RESP server's client, built by the `kv.clients` entry point called `redis`."""
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=CLIENT_ENTRY_POINT_GROUP, name="redis"):
        try:
            factory: Callable[..., Client] = entry_point.load()
        except ImportError as error:
            raise KvError(f"redis:// needs the redis package (pip install 'kv-sim[redis]'): {error}") from error
        return factory(url, key_size_max_bytes=KEY_SIZE_MAX_BYTES, value_size_max_bytes=VALUE_SIZE_MAX_BYTES)
    raise KvError(f"no client for {url} is installed (entry point group {CLIENT_ENTRY_POINT_GROUP!r}, name 'redis')")


_SCHEMES: dict[str, Callable[[str], Client]] = {
    "memory": _memory,
    "file": _file,
    "redis": _remote,
    "rediss": _remote,
    "unix": _remote,
}


def connect(url: str) -> Client:
    """A `Client` for `url` (see the module docstring for the schemes).

    Raises `InvalidArgument` for a URL it cannot use, what `kv.open` raises for
    file:// (`StoreLocked`, `CorruptionDetected`, `IoError`), `ConnectionFailed` when a
    server cannot be reached, and `KvError` when the redis:// client is not installed.
    """
    if not isinstance(url, str):
        raise InvalidArgument(f"url must be a str, not {type(url).__name__}")
    scheme, separator, _rest = url.partition(":")
    opener = _SCHEMES.get(scheme.lower()) if separator else None
    if opener is None:
        raise InvalidArgument(f"cannot connect to {url!r}: the URL must start with {', '.join(_SCHEMES)}://")
    if scheme.lower() == "memory" and url.lower() not in ("memory:", "memory://"):
        raise InvalidArgument(f"memory:// takes nothing after it (each client is its own store): {url!r}")
    return opener(url)


_: type[Client] = StoreClient
