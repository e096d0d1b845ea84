"""`benchmarks/bench_server.py` runs every server it compares (a smoke test in a tiny
configuration: no rate is asserted; the figures are for the README and the notes)."""

from __future__ import annotations

import shutil

import pytest

from benchmarks import bench_server


@pytest.mark.skipif(
    shutil.which("redis-benchmark") is None or shutil.which("redis-server") is None,
    reason="redis-server and redis-tools are not installed (apt-get install -y redis-server redis-tools)",
)
def test_every_row_and_every_floor_server_gets_a_rate() -> None:
    rates = bench_server.measure(requests=500, rounds=1)
    assert len(rates) == len(bench_server.PAIRS) * len(bench_server.ROWS)
    assert all(ours > 0 and theirs > 0 for ours, theirs in rates.values())
    floor = bench_server.measure_floor(requests=500, rounds=1)
    assert set(floor) == {(name, clients) for name in bench_server.FLOOR_SERVERS for clients in (1, 50)}
    assert all(rate > 0 for rate in floor.values())
