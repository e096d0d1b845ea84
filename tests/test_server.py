"""`kv serve` with real clients: redis-py (RESP2 and RESP3), Debian's redis-cli and
redis-benchmark, raw sockets for the limits, and SIGKILL mid-load for crash safety.

Each test starts the server in a subprocess on a free loopback port (`--port 0`; the
server prints the port it got) and stops it. The redis-cli and redis-benchmark tests
skip, saying why, where `redis-tools` is not installed (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
REDIS_CLI = shutil.which("redis-cli")
REDIS_BENCHMARK = shutil.which("redis-benchmark")
needs_redis_tools = pytest.mark.skipif(
    REDIS_CLI is None or REDIS_BENCHMARK is None,
    reason="redis-cli and redis-benchmark are not installed (apt-get install -y redis-tools)",
)
START_SECONDS_MAX = 20


@contextmanager
def server(directory: Path, *options: str) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """`kv serve DIR --port 0 --io blocking OPTIONS`, its port once it listens, and the process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kv", "serve", str(directory), "--port", "0", "--io", "blocking", *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r":(\d+) durability", line)
        assert found, f"no listening line: {line!r} {process.stderr.read() if process.stderr else ''}"
        yield int(found.group(1)), process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=START_SECONDS_MAX)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _client(port: int, protocol: int = 2, **options: object) -> redis.Redis:
    options.setdefault("socket_timeout", 10)
    return redis.Redis(port=port, protocol=protocol, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_runs_every_kind_of_command(tmp_path: Path, protocol: int) -> None:
    with server(tmp_path / "db") as (port, _process):
        client = _client(port, protocol)
        assert client.ping() is True
        assert client.set("k", b"\xff\x00v") is True and client.get("k") == b"\xff\x00v"
        assert client.set("k", "x", nx=True) is None and client.set("n", "1", nx=True) is True
        assert client.incr("n") == 2 and client.incrby("n", 40) == 42 and client.decr("n") == 41
        assert client.getdel("n") == b"41" and client.get("n") is None
        assert client.set("t", "v", ex=100) is True and client.ttl("t") == 100 and client.persist("t") is True
        assert client.expire("t", 50) is True and 0 < client.pttl("t") <= 50_000
        assert client.mset({"a": "1", "b": "2"}) is True and client.mget("a", "zz", "b") == [b"1", None, b"2"]
        assert client.rpush("q", "a", "b", "c") == 3 and client.lpush("q", "z") == 4
        assert client.lrange("q", 0, -1) == [b"z", b"a", b"b", b"c"] and client.llen("q") == 4
        assert client.lpop("q") == b"z" and client.rpop("q") == b"c" and client.lpop("q", 5) == [b"a", b"b"]
        assert client.lpop("q") is None
        assert client.exists("a", "b", "nope") == 2 and client.delete("a", "nope") == 1
        assert sorted(client.keys("*")) == [b"b", b"k", b"t"] and client.dbsize() == 3
        assert sorted(client.scan_iter(count=1)) == [b"b", b"k", b"t"]
        assert client.echo("hi") == b"hi" and client.type("b") == b"string"
        assert "keyspace" in {section.lower() for section in client.info("keyspace")} or client.info("keyspace")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            client.rpush("k", "x")
        with pytest.raises(redis.ResponseError, match="unknown command"):
            client.execute_command("NOPE")  # type: ignore[no-untyped-call]
        assert client.client_setname("me") is True and client.client_getname() in ("me", b"me")
        assert isinstance(client.client_id(), int) and client.select(0) is True
        pipe = client.pipeline(transaction=False)
        for index in range(200):
            pipe.set(f"p{index}", index)
        assert all(pipe.execute())
        assert client.get("p199") == b"199"


@needs_redis_tools
def test_redis_cli_and_redis_benchmark_talk_to_it(tmp_path: Path) -> None:
    assert REDIS_CLI is not None and REDIS_BENCHMARK is not None
    with server(tmp_path / "db") as (port, _process):
        session = b"SET k v\nGET k\nRPUSH q a b\nLRANGE q 0 -1\nTTL k\nINCR k\nPING\n"
        out = subprocess.run([REDIS_CLI, "-p", str(port)], input=session, capture_output=True, timeout=30).stdout
        assert out == b"OK\nv\n2\na\nb\n-1\nERR value is not an integer or out of range\n\nPONG\n"
        bench = subprocess.run(
            [REDIS_BENCHMARK, "-p", str(port), "-t", "set,get", "-n", "2000", "-c", "10", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        rates = re.findall(r"(SET|GET): ([\d.]+) requests per second", bench.stdout)
        assert {name for name, _ in rates} == {"SET", "GET"}, bench.stdout + bench.stderr
        assert _client(port).dbsize() >= 2


def test_a_password_is_needed_before_any_command(tmp_path: Path) -> None:
    with server(tmp_path / "db", "--requirepass", "s3cret") as (port, _process):
        with pytest.raises(redis.AuthenticationError):
            _client(port).get("k")
        with pytest.raises(redis.AuthenticationError):
            _client(port, password="wrong").ping()
        client = _client(port, password="s3cret")
        assert client.set("k", "v") and client.get("k") == b"v"
        assert _client(port, 3, password="s3cret").get("k") == b"v"  # HELLO 3 AUTH default s3cret


def test_protected_mode_refuses_an_open_bind_without_a_password(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "kv", "serve", str(tmp_path / "db"), "--bind", "0.0.0.0", "--port", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1 and "protected mode" in completed.stderr
    assert not (tmp_path / "db").exists()


def _raw(port: int, data: bytes, read_until_closed: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(data)
        chunks = []
        while read_until_closed:
            chunk = connection.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "reply"),
    [
        (b"*1\r\n$107374182400\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),  # a 100 GB bulk
        (b"*99999999\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n+GET\r\n", b"-ERR Protocol error: expected '$', got '+'\r\n"),
        (b'SET "a b\r\n', b"-ERR Protocol error: unbalanced quotes in request\r\n"),
        (b"*2\r\n$3\r\nGET\r\n$1\r\nkXY", b"-ERR Protocol error: invalid bulk length\r\n"),
    ],
    ids=["huge-bulk", "huge-array", "not-a-bulk", "unbalanced-quotes", "bad-bulk-end"],
)
def test_malformed_requests_get_an_error_and_a_close_and_lose_nothing(
    tmp_path: Path, request_bytes: bytes, reply: bytes
) -> None:
    with server(tmp_path / "db") as (port, _process):
        assert _client(port).set("kept", "v")
        assert _raw(port, b"PING\r\n" + request_bytes) == b"+PONG\r\n" + reply
        assert _client(port).get("kept") == b"v"


def test_max_clients_and_the_idle_timeout(tmp_path: Path) -> None:
    with server(tmp_path / "db", "--maxclients", "1", "--timeout", "0.5") as (port, _process):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
            first.sendall(b"PING\r\n")
            assert first.recv(100) == b"+PONG\r\n"
            assert _raw(port, b"") == b"-ERR max number of clients reached\r\n"
            started = time.monotonic()
            assert first.recv(100) == b""  # closed by the idle timeout
            assert time.monotonic() - started < 5
        assert _client(port).ping()


def test_writes_from_many_clients_share_syncs(tmp_path: Path) -> None:
    clients, writes = 20, 50
    with server(tmp_path / "db") as (port, _process):

        def write(index: int) -> None:
            client = _client(port)
            for number in range(writes):
                client.set(f"c{index}:{number}", "v")

        threads = [threading.Thread(target=write, args=(index,)) for index in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        info = _client(port).info("stats")
        assert _client(port).dbsize() == clients * writes
        assert 0 < int(info["syncs"]) < clients * writes  # group commit: fewer syncs than writes


@pytest.mark.parametrize("kill_after_seconds", [0.3, 0.8, 1.5])
def test_every_acknowledged_write_survives_sigkill(tmp_path: Path, kill_after_seconds: float) -> None:
    directory = tmp_path / "db"
    acknowledged: dict[str, list[bytes]] = {}
    pushed: dict[int, list[bytes]] = {}
    stop = threading.Event()

    def load(index: int, port: int) -> None:
        client = _client(port, socket_timeout=5)
        mine: list[bytes] = []
        acknowledged[f"w{index}"] = mine
        queue: list[bytes] = []
        pushed[index] = queue
        number = 0
        with pytest.raises(redis.ConnectionError):
            while not stop.is_set():
                value = b"%d:%d" % (index, number)
                client.set(b"w%d:%d" % (index, number), value)
                mine.append(value)
                client.rpush(b"q%d" % index, value)
                queue.append(value)
                number += 1
            raise redis.ConnectionError("stopped")

    with server(directory) as (port, process):
        threads = [threading.Thread(target=load, args=(index, port)) for index in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(kill_after_seconds)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    with server(directory) as (port, _process):
        client = _client(port)
        for index in range(4):
            for number, value in enumerate(acknowledged[f"w{index}"]):
                assert client.get(b"w%d:%d" % (index, number)) == value
            queue = client.lrange(b"q%d" % index, 0, -1)
            assert queue[: len(pushed[index])] == pushed[index]  # every acknowledged push, in order
            assert len(queue) <= len(pushed[index]) + 1  # at most the one in flight, whole
        assert sum(len(values) for values in acknowledged.values()) > 0
