"""One conformance suite for `kv.connect`: every test runs on memory://, file://, a
`kv serve` subprocess and a real `redis-server` subprocess, and expects the same answers
and the same `kv.errors` types from each (the contract is `kv.client.Client`).

The two servers start once per module on free loopback ports and are stopped after it
(redis-server with `--save '' --appendonly no`, so it writes nothing); each test then
works under its own key prefix. Where `redis-server` is not installed its parameter is
skipped, saying so. TTLs are a few hundred ms, so the whole module takes seconds.
"""

from __future__ import annotations

import math
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions

import kv
from io_backends.redis_client import RedisBatch, RedisClient, _translated
from kv.batch import Batch
from kv.client import Client, ClientBatch, StoreClient
from kv.errors import (
    ConnectionFailed,
    CorruptionDetected,
    InvalidArgument,
    IoError,
    KeyTooLarge,
    PermissionDenied,
    ServerError,
    StoreClosed,
    StoreReadOnly,
    ValueTooLarge,
    WrongType,
)
from kv.limits import KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES
from tests.test_acl import _redis_server
from tests.test_server import server

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server")
START_SECONDS_MAX = 20
# A TTL long enough to outlive a slow test step, short enough to wait out.
SHORT_TTL_SECONDS = 0.3
BACKENDS = ["memory", "file", "kv-serve", "redis-server"]

_: type[Client] = RedisClient  # the redis:// backend satisfies the contract
_store_batch: type[ClientBatch] = Batch  # and so does the embedded store's batch
_redis_batch: type[ClientBatch] = RedisBatch


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_ping(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_SECONDS_MAX
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with redis.Redis(port=port, socket_timeout=1) as probe:
                probe.ping()
                return True
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=START_SECONDS_MAX)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="module")
def redis_server_url() -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    for _attempt in range(3):  # the free port may be taken between the probe and the bind
        port = _free_port()
        arguments = ["--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1"]
        process = subprocess.Popen([REDIS_SERVER, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if _wait_for_ping(port, process):
                yield f"redis://127.0.0.1:{port}/0"
                return
        finally:
            _stop(process)
    pytest.fail("redis-server did not start on a free port in 3 attempts")


@pytest.fixture(scope="module")
def kv_serve_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("kv-serve")
    command = [sys.executable, "-m", "kv", "serve", str(directory), "--port", "0", "--io", "blocking"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        found = re.search(r":(\d+) durability", line)
        assert found, f"kv serve printed no listening line: {line!r}"
        yield f"redis://127.0.0.1:{found.group(1)}/0"
    finally:
        _stop(process)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "file":
        return f"file://{tmp_path}/store"
    fixture = "kv_serve_url" if request.param == "kv-serve" else "redis_server_url"
    served: str = request.getfixturevalue(fixture)
    return served


@pytest.fixture
def client(url: str) -> Iterator[Client]:
    with kv.connect(url) as connected:
        yield connected


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> Callable[[str], bytes]:
    """Keys under the test's own prefix (the servers are shared by the module's tests)."""
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)

    def key(name: str) -> bytes:
        return f"{prefix}:{name}".encode()

    return key


# -- strings ------------------------------------------------------------------------------


def test_set_get_delete_exists(client: Client, ns: Callable[[str], bytes]) -> None:
    assert client.get(ns("a")) is None
    client.set(ns("a"), b"1")
    client.set(ns("b").decode(), "two")  # str in, UTF-8 bytes stored
    assert client.get(ns("a")) == b"1"
    assert client.get(ns("b")) == b"two"
    assert client.exists(ns("a")) and not client.exists(ns("missing"))
    client.set(ns("a"), b"\x00\xff binary")
    assert client.get(ns("a")) == b"\x00\xff binary"
    assert client.delete(ns("a")) is True
    assert client.delete(ns("a")) is False
    assert client.get(ns("a")) is None


def test_getdel_returns_the_value_and_removes_it(client: Client, ns: Callable[[str], bytes]) -> None:
    client.set(ns("k"), b"v")
    assert client.getdel(ns("k")) == b"v"
    assert client.getdel(ns("k")) is None
    assert not client.exists(ns("k"))


def test_ttl_answers(client: Client, ns: Callable[[str], bytes]) -> None:
    assert client.ttl(ns("missing")) is None
    client.set(ns("forever"), b"v")
    assert client.ttl(ns("forever")) == math.inf
    client.set(ns("soon"), b"v", ttl=5)
    remaining = client.ttl(ns("soon"))
    assert remaining is not None and 4.0 < remaining <= 5.0
    client.set(ns("soon"), b"v")  # a set without ttl drops the expiry
    assert client.ttl(ns("soon")) == math.inf
    assert client.expire(ns("forever"), 2.5) is True
    remaining = client.ttl(ns("forever"))
    assert remaining is not None and 2.0 < remaining <= 2.5
    assert client.expire(ns("missing"), 10) is False


def test_keys_expire_in_real_time(client: Client, ns: Callable[[str], bytes]) -> None:
    client.set(ns("set-ttl"), b"v", ttl=SHORT_TTL_SECONDS)
    client.set(ns("expired"), b"v")
    assert client.expire(ns("expired"), SHORT_TTL_SECONDS) is True
    assert client.get(ns("set-ttl")) == b"v" and client.get(ns("expired")) == b"v"
    time.sleep(SHORT_TTL_SECONDS + 0.15)
    for name in ("set-ttl", "expired"):
        assert client.get(ns(name)) is None
        assert not client.exists(ns(name))
        assert client.ttl(ns(name)) is None
        assert client.delete(ns(name)) is False


def test_expire_not_in_the_future_deletes(client: Client, ns: Callable[[str], bytes]) -> None:
    client.set(ns("zero"), b"v")
    client.set(ns("negative"), b"v")
    assert client.expire(ns("zero"), 0) is True
    assert client.expire(ns("negative"), -5) is True
    assert client.get(ns("zero")) is None and client.get(ns("negative")) is None


# -- lists ------------------------------------------------------------------------------


def test_lists_as_a_fifo_queue(client: Client, ns: Callable[[str], bytes]) -> None:
    queue = ns("queue")
    assert client.lpop(queue) is None and client.llen(queue) == 0 and client.lrange(queue) == []
    assert client.rpush(queue, b"job1", b"job2") == 2
    assert client.rpush(queue, "job3") == 3
    assert client.llen(queue) == 3
    assert client.lrange(queue) == [b"job1", b"job2", b"job3"]
    assert [client.lpop(queue) for _ in range(3)] == [b"job1", b"job2", b"job3"]
    assert client.lpop(queue) is None
    assert not client.exists(queue), "a list whose last element is popped is gone"


def test_lists_from_both_ends(client: Client, ns: Callable[[str], bytes]) -> None:
    stack = ns("stack")
    assert client.lpush(stack, b"a", b"b", b"c") == 3  # the last ends up first
    assert client.lrange(stack) == [b"c", b"b", b"a"]
    assert client.lrange(stack, 1, 1) == [b"b"]
    assert client.lrange(stack, -2, -1) == [b"b", b"a"]
    assert client.lrange(stack, 5, 10) == []
    assert client.rpop(stack) == b"a"
    assert client.lpop(stack) == b"c"
    assert client.llen(stack) == 1
    assert client.delete(stack) is True
    assert client.llen(stack) == 0


def test_wrong_type_errors_write_nothing(client: Client, ns: Callable[[str], bytes]) -> None:
    client.set(ns("string"), b"v")
    client.rpush(ns("list"), b"x")
    for call in (
        lambda: client.get(ns("list")),
        lambda: client.getdel(ns("list")),
        lambda: client.rpush(ns("string"), b"y"),
        lambda: client.lpush(ns("string"), b"y"),
        lambda: client.lpop(ns("string")),
        lambda: client.rpop(ns("string")),
        lambda: client.llen(ns("string")),
        lambda: client.lrange(ns("string")),
    ):
        with pytest.raises(WrongType):
            call()
    assert client.get(ns("string")) == b"v"
    assert client.lrange(ns("list")) == [b"x"]
    client.set(ns("list"), b"now a string")  # set replaces a list, as Redis's SET
    assert client.get(ns("list")) == b"now a string"


# -- scan -------------------------------------------------------------------------------


def test_scan_returns_strings_with_the_prefix_in_key_order(client: Client, ns: Callable[[str], bytes]) -> None:
    for name in ("b", "a", "c", "a2", "a1"):
        client.set(ns(f"p:{name}"), name.encode())
    client.rpush(ns("p:list"), b"x")  # lists are left out
    client.set(ns("q:other"), b"o")
    pairs = client.scan(ns("p:"))
    assert pairs == [(ns(f"p:{name}"), name.encode()) for name in ("a", "a1", "a2", "b", "c")]
    assert client.scan(ns("p:"), limit=2) == pairs[:2]
    assert client.scan(ns("p:"), limit=0) == []
    assert client.scan(ns("nothing:")) == []
    assert (ns("q:other"), b"o") in client.scan(ns(""))


def test_scan_prefix_is_literal_not_a_pattern(client: Client, ns: Callable[[str], bytes]) -> None:
    special = ns("g*[x]?\\")
    client.set(special + b"1", b"1")
    client.set(ns("gAAAx]Z\\") + b"1", b"no")  # would match if * ? [ ] were a pattern
    assert client.scan(special) == [(special + b"1", b"1")]


def test_scan_of_many_keys_is_sorted_and_complete(client: Client, ns: Callable[[str], bytes]) -> None:
    with client.batch() as batch:
        for index in range(1500, 0, -1):
            batch.set(ns(f"many:{index:05d}"), b"%d" % index)
    pairs = client.scan(ns("many:"))
    assert [key for key, _value in pairs] == [ns(f"many:{index:05d}") for index in range(1, 1501)]


# -- batch ------------------------------------------------------------------------------


def test_batch_commits_every_write_and_reports_each(client: Client, ns: Callable[[str], bytes]) -> None:
    client.set(ns("old"), b"o")
    client.set(ns("timed"), b"t")
    with client.batch() as batch:
        batch.set(ns("new"), b"n")
        batch.set(ns("short"), b"s", ttl=60)
        batch.delete(ns("old"))
        batch.delete(ns("never"))
        batch.expire(ns("timed"), 30)
        batch.expire(ns("never"), 30)
        assert client.get(ns("new")) is None, "nothing is written before the block exits"
        assert client.get(ns("old")) == b"o"
    assert batch.results == [True, True, True, False, True, False]
    assert client.get(ns("new")) == b"n" and client.get(ns("old")) is None
    remaining = client.ttl(ns("short"))
    assert remaining is not None and 59 < remaining <= 60
    remaining = client.ttl(ns("timed"))
    assert remaining is not None and 29 < remaining <= 30


def test_a_batch_whose_block_raises_writes_nothing(client: Client, ns: Callable[[str], bytes]) -> None:
    client.set(ns("kept"), b"k")
    with pytest.raises(RuntimeError, match="changed my mind"), client.batch() as batch:
        batch.set(ns("a"), b"1")
        batch.delete(ns("kept"))
        raise RuntimeError("changed my mind")
    assert batch.results is None
    assert client.get(ns("a")) is None and client.get(ns("kept")) == b"k"
    with pytest.raises(InvalidArgument), client.batch() as failing:
        failing.set(ns("b"), b"2")
        failing.set(ns("c"), b"3", ttl=0)  # refused at once: the block is abandoned
    assert client.get(ns("b")) is None


def test_a_batch_is_seen_whole_by_another_client(url: str, ns: Callable[[str], bytes]) -> None:
    """While one client commits batches that set two keys to the same new value, another
    reads both in one MGET (atomic on the server) and must never see them differ: a
    batch sent as separate SETs would show the first key ahead of the second."""
    if url == "memory://" or url.startswith("file:"):
        pytest.skip("one process holds an embedded store: there is no second client to look")
    x, y = ns("x"), ns("y")
    seen: list[list[bytes | None]] = []
    done = threading.Event()

    def read() -> None:
        with redis.Redis.from_url(url, socket_timeout=10) as reader:
            while not done.is_set():
                seen.append(reader.mget(x, y))

    with kv.connect(url) as writer:
        writer.set(x, b"0")
        writer.set(y, b"0")
        reading = threading.Thread(target=read)
        reading.start()
        try:
            for round_ in range(1, 300):
                with writer.batch() as batch:
                    batch.set(x, b"%d" % round_)
                    batch.set(y, b"%d" % round_)
        finally:
            done.set()
            reading.join(timeout=30)
    assert len(seen) > 10, "the reader read while the batches ran"
    assert all(first == second for first, second in seen), [pair for pair in seen if pair[0] != pair[1]][:3]


def test_an_empty_batch_writes_nothing(client: Client) -> None:
    with client.batch() as batch:
        pass
    assert batch.results == []


# -- arguments, closing, connecting -------------------------------------------------------


def test_bad_arguments_raise_invalid_argument(client: Client, ns: Callable[[str], bytes]) -> None:
    bad_calls: list[Callable[[], object]] = [
        lambda: client.set(ns("a"), 5),  # type: ignore[arg-type]
        lambda: client.get(7),  # type: ignore[arg-type]
        lambda: client.set(ns("a"), b"v", ttl=0),
        lambda: client.set(ns("a"), b"v", ttl=-1),
        lambda: client.set(ns("a"), b"v", ttl=0.0001),
        lambda: client.rpush(ns("list")),
        lambda: client.expire(ns("a"), "soon"),  # type: ignore[arg-type]
        lambda: client.expire(ns("a"), math.nan),
        lambda: client.lrange(ns("list"), "0", 1),  # type: ignore[arg-type]
        lambda: client.scan(ns(""), limit=-1),
    ]
    for call in bad_calls:
        with pytest.raises(InvalidArgument):
            call()
    with pytest.raises(KeyTooLarge):
        client.set(b"k" * (KEY_SIZE_MAX_BYTES + 1), b"v")
    with pytest.raises(ValueTooLarge):
        client.set(ns("a"), b"v" * (VALUE_SIZE_MAX_BYTES + 1))
    assert not client.exists(ns("a")) and not client.exists(ns("list"))


def test_a_closed_client_refuses_every_call(url: str, ns: Callable[[str], bytes]) -> None:
    client = kv.connect(url)
    client.set(ns("a"), b"1")
    client.close()
    client.close()  # idempotent
    for call in (
        lambda: client.get(ns("a")),
        lambda: client.set(ns("a"), b"2"),
        lambda: client.delete(ns("a")),
        lambda: client.ttl(ns("a")),
        lambda: client.rpush(ns("l"), b"x"),
        lambda: client.lpop(ns("l")),
        lambda: client.scan(ns("")),
        lambda: client.batch(),
    ):
        with pytest.raises(StoreClosed):
            call()
    with kv.connect(url) as again:
        value = again.get(ns("a"))
        assert value == (None if url == "memory://" else b"1")  # memory:// is gone with its client


def test_connection_failures_are_typed() -> None:
    with pytest.raises(ConnectionFailed):
        kv.connect(f"redis://127.0.0.1:{_free_port()}/0?socket_connect_timeout=2")


def test_redis_urls_that_would_break_the_contract_are_refused_without_showing_the_password() -> None:
    port = _free_port()
    for bad in (
        f"redis://u:hunter2@127.0.0.1:{port}/0?decode_responses=true",
        f"redis://u:hunter2@127.0.0.1:{port}/abc",
        "redis://u:hunter2@127.0.0.1:notaport/0",
        "redis://u:hunter2@[::1/0",
        f"redis://u:hunter2@127.0.0.1:{port}/0?no_such_option=1",
    ):
        with pytest.raises(InvalidArgument) as refused:
            kv.connect(bad)
        assert "hunter2" not in str(refused.value) and "u:***@" in str(refused.value), refused.value


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install -y redis-server)")
def test_a_command_the_acl_refuses_raises_permission_denied_and_the_client_goes_on(tmp_path: Path) -> None:
    acl_file = tmp_path / "users.acl"
    acl_file.write_text("user default off\nuser carol on >pw ~app:* +@all\n")
    with _redis_server(acl_file) as redis_port, server(tmp_path / "db", "--acl-file", str(acl_file)) as (kv_port, _):
        for port in (redis_port, kv_port):
            with kv.connect(f"redis://carol:pw@127.0.0.1:{port}/0") as client:
                with pytest.raises(PermissionDenied, match="no permissions to access one of the keys"):
                    client.set(b"other", b"v")
                client.set(b"app:1", b"v")
                assert client.get(b"app:1") == b"v"
            with pytest.raises(ConnectionFailed, match="refused the login"):
                kv.connect(f"redis://carol:wrong@127.0.0.1:{port}/0")


def test_urls_that_cannot_be_used(tmp_path: Path) -> None:
    for bad in (
        "ftp://example.com/x",
        "no-scheme",
        "memory://shared",
        "file://otherhost/data",
        "file:relative/path",
        f"file://{tmp_path}/s?durability=sometimes",
        f"file://{tmp_path}/s?color=blue",
        "redis://127.0.0.1:notaport/0",
        "redis://127.0.0.1:6379/0?socket_timeout=soon",
    ):
        with pytest.raises(InvalidArgument):
            kv.connect(bad)


def test_file_urls_open_the_embedded_store(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store?durability=batch"
    with kv.connect(url) as client:
        client.set(b"k", b"v")
        assert isinstance(client, StoreClient) and client.store.durability == "batch"
    with kv.open(str(tmp_path / "store")) as store:
        assert store.get(b"k") == b"v"


def test_memory_urls_touch_no_disk() -> None:
    with kv.connect("memory://") as first, kv.connect("memory://") as second:
        assert isinstance(first, StoreClient) and first.store.io.name == "memory"
        first.set(b"k", b"v")
        assert second.get(b"k") is None, "each memory:// client is its own store"


def test_error_replies_map_to_kv_errors() -> None:
    """The translation of redis-py's exceptions, for the replies a healthy server in a
    test does not give (READONLY from a replica, IOERR and CORRUPTION from `kv serve`)."""
    cases: list[tuple[redis.exceptions.RedisError, type[Exception]]] = [
        (redis.exceptions.ReadOnlyError("You can't write against a read only replica."), StoreReadOnly),
        (redis.exceptions.ResponseError("WRONGTYPE Operation against a key"), WrongType),
        (redis.exceptions.ResponseError("IOERR the write could not be made durable"), IoError),
        (redis.exceptions.ResponseError("CORRUPTION record failed its checksum"), CorruptionDetected),
        (redis.exceptions.ResponseError("invalid expire time in 'set' command"), InvalidArgument),
        (redis.exceptions.AuthenticationError("invalid password"), ConnectionFailed),
        (redis.exceptions.NoPermissionError("this user has no permissions"), PermissionDenied),
        (redis.exceptions.TimeoutError("Timeout reading from socket"), ConnectionFailed),
        (redis.exceptions.DataError("Invalid input of type: 'dict'"), InvalidArgument),
        (redis.exceptions.OutOfMemoryError("command not allowed when used memory > 'maxmemory'"), ServerError),
        (redis.exceptions.ResponseError("unknown command 'FOO'"), ServerError),
    ]
    for error, expected in cases:
        with pytest.raises(expected), _translated():
            raise error


def test_expire_on_a_list_is_the_one_documented_difference(
    request: pytest.FixtureRequest, client: Client, ns: Callable[[str], bytes]
) -> None:
    """README "Where they differ": the embedded store (and so `kv serve`) rewrites a
    string to change its expiry and refuses a list; Redis sets a list's expiry."""
    client.rpush(ns("list"), b"x")
    if request.node.callspec.params["url"] == "redis-server":
        assert client.expire(ns("list"), 60) is True
        remaining = client.ttl(ns("list"))
        assert remaining is not None and 59 < remaining <= 60
    else:
        with pytest.raises(WrongType):
            client.expire(ns("list"), 60)
        assert client.ttl(ns("list")) == math.inf
    assert client.lrange(ns("list")) == [b"x"]


def test_a_batch_expiring_a_list(request: pytest.FixtureRequest, client: Client, ns: Callable[[str], bytes]) -> None:
    """The same difference inside a batch: all or nothing on the embedded store, EXEC's
    no-rollback on `kv serve`, the expiry set on Redis."""
    client.rpush(ns("list"), b"x")
    kind = request.node.callspec.params["url"]
    batch = client.batch()
    if kind == "redis-server":
        with batch:
            batch.set(ns("s"), b"1")
            batch.expire(ns("list"), 60)
        assert batch.results == [True, True]
        return
    with pytest.raises(WrongType), batch:
        batch.set(ns("s"), b"1")
        batch.expire(ns("list"), 60)
    assert client.get(ns("s")) == (b"1" if kind == "kv-serve" else None)


def _start_redis_server(*extra: str) -> tuple[int, subprocess.Popen[bytes]]:
    """A redis-server of the test's own (stop it with `_stop`)."""
    assert REDIS_SERVER is not None
    for _attempt in range(3):
        port = _free_port()
        arguments = ["--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1", *extra]
        process = subprocess.Popen([REDIS_SERVER, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if _wait_for_ping(port, process):
            return port, process
        _stop(process)
    pytest.fail("redis-server did not start on a free port in 3 attempts")


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install -y redis-server)")
def test_a_server_that_goes_away_raises_connection_failed() -> None:
    port, process = _start_redis_server()
    try:
        client = kv.connect(f"redis://127.0.0.1:{port}/0?socket_timeout=2&socket_connect_timeout=2")
        client.set(b"k", b"v")
    finally:
        _stop(process)
    with pytest.raises(ConnectionFailed):
        client.get(b"k")
    client.close()


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed (apt-get install -y redis-server)")
def test_a_read_only_replica_and_a_read_only_store_raise_store_read_only(redis_server_url: str, tmp_path: Path) -> None:
    primary_port = redis_server_url.rsplit(":", 1)[1].split("/")[0]
    port, process = _start_redis_server("--replicaof", "127.0.0.1", primary_port)
    try:
        with kv.connect(f"redis://127.0.0.1:{port}/0") as replica, pytest.raises(StoreReadOnly):
            replica.set(b"k", b"v")
    finally:
        _stop(process)
    kv.open(str(tmp_path / "store")).close()
    with StoreClient("file://", kv.open(str(tmp_path / "store"), read_only=True), owns_io=False) as client:
        with pytest.raises(StoreReadOnly):
            client.set(b"k", b"v")
        with pytest.raises(StoreReadOnly), client.batch() as batch:
            batch.set(b"k", b"v")
