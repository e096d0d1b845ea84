"""The redis:// backend of `kv.connect`: `kv.client.Client` over redis-py.

Talks to any RESP server: `kv serve`, Redis, Valkey. `kv.connect` finds it through the
`kv.clients` entry point called `redis` (so `kv` imports no network code) and passes the
embedded store's key and value limits, which this client enforces before sending, so
every backend refuses the same sizes.

Commands used: GET, SET (PX for a ttl), DEL, GETDEL, EXISTS, PEXPIRE, PTTL, RPUSH, LPUSH,
LPOP, RPOP, LLEN, LRANGE, SCAN MATCH + MGET, and MULTI/EXEC for a batch (a redis-py
transaction pipeline). Errors become `kv.errors` types in one place (`_translated`):
WRONGTYPE -> WrongType, READONLY -> StoreReadOnly, IOERR -> IoError (EIO),
CORRUPTION -> CorruptionDetected, NOPERM -> PermissionDenied, "invalid expire time" and
other argument errors -> InvalidArgument, a lost or refused connection (timeouts, wrong
password, too many clients) -> ConnectionFailed, any other error reply -> ServerError.

The URL is `redis://[[user]:password@]host[:port][/db][?options]`, redis-py's options
(`socket_timeout=2`, ...) but those that would change what the methods return
(`decode_responses` makes values `str`); a db that is not a number is refused. Errors
show the URL with its password hidden.
"""

from __future__ import annotations

import errno
import math
import re
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import redis
import redis.exceptions

from kv.client import as_bytes, ttl_from_milliseconds
from kv.errors import (
    ConnectionFailed,
    CorruptionDetected,
    InvalidArgument,
    IoError,
    KeyTooLarge,
    KvError,
    PermissionDenied,
    ServerError,
    StoreClosed,
    StoreReadOnly,
    ValueTooLarge,
    WrongType,
)

# redis-py's own default is to wait forever; a client of a store should fail instead.
TIMEOUT_SECONDS_DEFAULT = 10.0
# Keys asked for per SCAN step and per MGET: Redis's docs suggest COUNT in the hundreds
# to thousands; both bound the size of one reply.
SCAN_COUNT = 1000
MGET_KEYS_MAX = 1000
# A SCAN of n keys takes about n / SCAN_COUNT steps; a server whose cursor never comes
# back to 0 (a bug) would loop forever. 2**32 keys / SCAN_COUNT steps is far past any
# keyspace this client would sort in memory.
SCAN_STEPS_MAX = (1 << 32) // SCAN_COUNT
_GLOB_SPECIALS = frozenset(b"*?[]\\")
# redis-py URL options that make replies `str` (the client's contract is bytes).
_OPTIONS_REFUSED = frozenset({"decode_responses", "encoding", "encoding_errors"})
_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)[^@/]*@")  # scheme://user:PASSWORD@
# redis-py prefixes an error of a pipelined command with where it came from.
_PIPELINE_NOTE = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: ", re.DOTALL)


def _milliseconds(seconds: object, what: str) -> int:
    """`seconds` in whole ms, rounded to the nearest, as the embedded store rounds."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or math.isnan(seconds):
        raise InvalidArgument(f"{what} must be a number of seconds, not {seconds!r}")
    if math.isinf(seconds):
        raise InvalidArgument(f"invalid expire time: {what} is infinite")
    return round(seconds * 1000)


def _ttl_milliseconds(ttl: float) -> int:
    milliseconds = _milliseconds(ttl, "ttl")
    if milliseconds <= 0:
        raise InvalidArgument(f"invalid expire time: ttl must be at least 1 ms, not {ttl!r} s")
    return milliseconds


def _glob_escaped(prefix: bytes) -> bytes:
    """`prefix` as a SCAN MATCH pattern that matches exactly the keys starting with it."""
    return b"".join(b"\\" + bytes([byte]) if byte in _GLOB_SPECIALS else bytes([byte]) for byte in prefix) + b"*"


def _response_error(error: redis.exceptions.ResponseError) -> KvError:
    """The `kv.errors` type of an error reply (redis-py strips the codes it knows)."""
    if isinstance(error, redis.exceptions.ReadOnlyError):
        return StoreReadOnly(str(error))
    if isinstance(error, redis.exceptions.NoPermissionError):  # (a wrong password is a ConnectionError)
        return PermissionDenied(str(error))
    text = _PIPELINE_NOTE.sub("", str(error), count=1)
    code, _space, message = text.partition(" ")
    if code == "WRONGTYPE":
        return WrongType(message)
    if code == "IOERR":
        return IoError(errno.EIO, message, operation="server")
    if code == "CORRUPTION":
        return CorruptionDetected(message)
    lowered = text.lower()
    if "invalid expire time" in lowered or "not an integer" in lowered or "out of range" in lowered:
        return InvalidArgument(text)
    if code.isupper() and code.isalpha():
        return ServerError(text, code)
    return ServerError(text)


def _without_password(url: str) -> str:
    """`url` with its password, if any, as `***` (for error messages; works on URLs
    `urllib` cannot split too)."""
    return _PASSWORD.sub(r"\1***@", url, count=1)


def _check_url(url: str) -> None:
    """InvalidArgument for a URL redis-py would take in a way that breaks the contract:
    an option that turns replies into `str`, or a db that is not a number (redis-py
    would use db 0)."""
    shown = _without_password(url)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:  # an unbalanced [ of an IPv6 host, ...
        raise InvalidArgument(f"cannot use {shown!r}: {error}") from None
    refused = sorted(set(urllib.parse.parse_qs(parts.query)) & _OPTIONS_REFUSED)
    if refused:
        raise InvalidArgument(f"cannot use {shown!r}: kv.connect returns bytes; {', '.join(refused)} is refused")
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise InvalidArgument(f"cannot use {shown!r}: the database must be a number, not {database!r}")


@contextmanager
def _translated() -> Iterator[None]:
    """Raise redis-py's exceptions as `kv.errors` ones (see the module docstring)."""
    try:
        yield
    except redis.exceptions.AuthenticationError as error:
        raise ConnectionFailed(f"the server refused the login: {error}") from error
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise ConnectionFailed(f"the server cannot be reached: {error}") from error
    except redis.exceptions.ResponseError as error:
        raise _response_error(error) from error
    except redis.exceptions.DataError as error:
        raise InvalidArgument(str(error)) from error
    except redis.exceptions.RedisError as error:
        raise ServerError(str(error)) from error


class RedisClient:
    """`kv.client.Client` over one RESP server (see the module docstring)."""

    def __init__(self, url: str, key_size_max_bytes: int, value_size_max_bytes: int) -> None:
        self.url = url
        self._key_size_max_bytes = key_size_max_bytes
        self._value_size_max_bytes = value_size_max_bytes
        self._closed = False
        _check_url(url)
        try:
            self._redis: redis.Redis = redis.Redis.from_url(
                url, socket_timeout=TIMEOUT_SECONDS_DEFAULT, socket_connect_timeout=TIMEOUT_SECONDS_DEFAULT
            )
        except ValueError as error:  # a port redis-py cannot parse
            shown = str(error).replace(url, _without_password(url))
            raise InvalidArgument(f"cannot use {_without_password(url)!r}: {shown}") from None
        try:
            with _translated():
                self._redis.ping()
        except TypeError as error:  # redis-py hands unknown ?options to its connection class
            self._redis.close()
            raise InvalidArgument(f"cannot use {_without_password(url)!r}: {error}") from None
        except BaseException:
            self._redis.close()
            raise

    # -- arguments ----------------------------------------------------------------------

    def _key(self, key: object) -> bytes:
        if self._closed:
            raise StoreClosed("the client is closed")
        key_bytes = as_bytes(key, "key")
        if len(key_bytes) > self._key_size_max_bytes:
            raise KeyTooLarge(f"key is {len(key_bytes)} bytes; the limit is {self._key_size_max_bytes}")
        return key_bytes

    def _value(self, value: object) -> bytes:
        value_bytes = as_bytes(value, "value")
        if len(value_bytes) > self._value_size_max_bytes:
            raise ValueTooLarge(f"value is {len(value_bytes)} bytes; the limit is {self._value_size_max_bytes}")
        return value_bytes

    def _values(self, values: tuple[object, ...]) -> list[bytes]:
        if not values:
            raise InvalidArgument("a push needs at least one value")
        return [self._value(value) for value in values]

    def _call(self, command: str, *arguments: Any) -> Any:
        """Run one redis-py method, errors translated."""
        with _translated():
            return getattr(self._redis, command)(*arguments)

    # -- strings ------------------------------------------------------------------------

    def get(self, key: bytes | str) -> bytes | None:
        value: bytes | None = self._call("get", self._key(key))
        return value

    def set(self, key: bytes | str, value: bytes | str, *, ttl: float | None = None) -> None:
        key_bytes, value_bytes = self._key(key), self._value(value)
        milliseconds = None if ttl is None else _ttl_milliseconds(ttl)
        with _translated():
            self._redis.set(key_bytes, value_bytes, px=milliseconds)

    def delete(self, key: bytes | str) -> bool:
        return bool(self._call("delete", self._key(key)))

    def getdel(self, key: bytes | str) -> bytes | None:
        value: bytes | None = self._call("getdel", self._key(key))
        return value

    def exists(self, key: bytes | str) -> bool:
        return bool(self._call("exists", self._key(key)))

    def expire(self, key: bytes | str, seconds: float) -> bool:
        return bool(self._call("pexpire", self._key(key), _milliseconds(seconds, "seconds")))

    def ttl(self, key: bytes | str) -> float | None:
        return ttl_from_milliseconds(int(self._call("pttl", self._key(key))))

    # -- lists --------------------------------------------------------------------------

    def rpush(self, key: bytes | str, *values: bytes | str) -> int:
        key_bytes = self._key(key)
        return int(self._call("rpush", key_bytes, *self._values(values)))

    def lpush(self, key: bytes | str, *values: bytes | str) -> int:
        key_bytes = self._key(key)
        return int(self._call("lpush", key_bytes, *self._values(values)))

    def lpop(self, key: bytes | str) -> bytes | None:
        value: bytes | None = self._call("lpop", self._key(key))
        return value

    def rpop(self, key: bytes | str) -> bytes | None:
        value: bytes | None = self._call("rpop", self._key(key))
        return value

    def llen(self, key: bytes | str) -> int:
        return int(self._call("llen", self._key(key)))

    def lrange(self, key: bytes | str, start: int = 0, stop: int = -1) -> list[bytes]:
        key_bytes = self._key(key)
        if type(start) is not int or type(stop) is not int:
            raise InvalidArgument(f"start and stop must be ints, not {start!r}, {stop!r}")
        return list(self._call("lrange", key_bytes, start, stop))

    # -- scan ---------------------------------------------------------------------------

    def _keys_with_prefix(self, prefix: bytes) -> list[bytes]:
        """Every key starting with `prefix`, sorted (SCAN may return a key twice)."""
        found: set[bytes] = set()
        cursor = 0
        pattern = _glob_escaped(prefix)
        for _ in range(SCAN_STEPS_MAX):
            cursor, page = self._call("scan", cursor, pattern, SCAN_COUNT)
            found.update(key for key in page if key.startswith(prefix))
            if int(cursor) == 0:
                return sorted(found)
        raise ServerError(f"SCAN did not finish in {SCAN_STEPS_MAX} steps")

    def scan(self, prefix: bytes | str = b"", *, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        if self._closed:
            raise StoreClosed("the client is closed")
        prefix_bytes = as_bytes(prefix, "prefix")
        if limit is not None and (type(limit) is not int or limit < 0):
            raise InvalidArgument(f"limit must be a non-negative int or None, not {limit!r}")
        if limit == 0:
            return []
        keys = self._keys_with_prefix(prefix_bytes)
        pairs: list[tuple[bytes, bytes]] = []
        for start in range(0, len(keys), MGET_KEYS_MAX):
            chunk = keys[start : start + MGET_KEYS_MAX]
            values: list[bytes | None] = self._call("mget", chunk)
            # None: a list (MGET answers nil for one), or a key deleted since the SCAN
            pairs.extend((key, value) for key, value in zip(chunk, values, strict=True) if value is not None)
            if limit is not None and len(pairs) >= limit:
                return pairs[:limit]
        return pairs

    # -- batch and lifecycle ------------------------------------------------------------

    def batch(self) -> RedisBatch:
        if self._closed:
            raise StoreClosed("the client is closed")
        return RedisBatch(self)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._redis.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class RedisBatch:
    """`kv.client.ClientBatch` as one MULTI/EXEC (a redis-py transaction pipeline): the
    writes are queued here, sent only when the block exits normally, and the server runs
    them back to back with no other client's command between them."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._queued: list[tuple[str, tuple[Any, ...]]] = []
        self._finished = False
        self.results: list[bool] | None = None

    def _queue(self, command: str, *arguments: Any) -> None:
        if self._finished:
            raise InvalidArgument("this batch has already been committed or abandoned; start a new one")
        self._queued.append((command, arguments))

    def set(self, key: bytes | str, value: bytes | str, *, ttl: float | None = None) -> None:
        key_bytes, value_bytes = self._client._key(key), self._client._value(value)
        self._queue("set", key_bytes, value_bytes, None if ttl is None else _ttl_milliseconds(ttl))

    def delete(self, key: bytes | str) -> None:
        self._queue("delete", self._client._key(key))

    def expire(self, key: bytes | str, seconds: float) -> None:
        self._queue("pexpire", self._client._key(key), _milliseconds(seconds, "seconds"))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Send MULTI, the writes and EXEC when the block exited normally (nothing
        otherwise). Raises the translated error of the transaction."""
        if self._finished:
            return
        self._finished = True
        queued, self._queued = self._queued, []
        if kind is not None or not queued:
            self.results = [] if kind is None else None
            return
        if self._client._closed:
            raise StoreClosed("the client is closed")
        with _translated(), self._client._redis.pipeline(transaction=True) as pipeline:
            for command, arguments in queued:
                if command == "set":
                    pipeline.set(arguments[0], arguments[1], px=arguments[2])
                else:
                    getattr(pipeline, command)(*arguments)
            replies = pipeline.execute(raise_on_error=False)
            failures = [reply for reply in replies if isinstance(reply, Exception)]
            if failures:  # the others were applied: EXEC has no rollback
                raise failures[0]
        self.results = [bool(reply) for reply in replies]


def connect(url: str, key_size_max_bytes: int, value_size_max_bytes: int) -> RedisClient:
    """The `kv.clients` entry point `redis`: a connected client for `url`."""
    return RedisClient(url, key_size_max_bytes, value_size_max_bytes)
