"""Our RESP request parser (`kv.resp.RequestParser`) against hiredis' `Reader` (C), in one
run: should the server use hiredis?

    python benchmarks/bench_resp.py [--commands N] [--rounds N]

The input is what redis-benchmark sends: N pipelined `SET key:<i> <100 bytes>` commands
(arrays of bulk strings), fed in 16 KiB pieces as a socket would deliver them. Commands
parsed per second, the median round's, and the ratio ours/hiredis. hiredis parses the
same arrays of bulk strings (it is a reply parser, and a request is one such reply)
but has none of the server's limits: no announced-length check before buffering, no
query-buffer limit, no inline commands; the ratio says what those cost next to C.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hiredis

from kv.resp import RequestParser

PIECE_BYTES = 16 * 1024


def _stream(commands: int) -> bytes:
    value = b"v" * 100
    return b"".join(
        b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$100\r\n%s\r\n" % (len(key), key, value)
        for key in (b"key:%d" % index for index in range(commands))
    )


def ours(stream: bytes) -> int:
    parser = RequestParser()
    parsed = 0
    for start in range(0, len(stream), PIECE_BYTES):
        parser.feed(stream[start : start + PIECE_BYTES])
        while parser.next() is not None:
            parsed += 1
    return parsed


def theirs(stream: bytes) -> int:
    reader = hiredis.Reader()
    parsed = 0
    for start in range(0, len(stream), PIECE_BYTES):
        reader.feed(stream[start : start + PIECE_BYTES])
        while reader.gets() is not False:
            parsed += 1
    return parsed


def measure(parse: Callable[[bytes], int], stream: bytes, commands: int, rounds: int) -> float:
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        assert parse(stream) == commands
        seconds.append(time.perf_counter() - started)
    return commands / statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args(argv)
    stream = _stream(arguments.commands)
    rate_ours = measure(ours, stream, arguments.commands, arguments.rounds)
    rate_theirs = measure(theirs, stream, arguments.commands, arguments.rounds)
    print(f"kv.resp.RequestParser  {rate_ours:>14,.0f} commands/s")
    print(f"hiredis.Reader         {rate_theirs:>14,.0f} commands/s")
    print(f"ours / hiredis: {rate_ours / rate_theirs:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
