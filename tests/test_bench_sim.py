"""`benchmarks/bench_sim.py` runs and prints every row and ratio (a smoke test in a tiny
configuration: no timing is asserted; the figures are for the README and the closing
note). Its `FreeIo` passes for an `Io`: the store round-trips through it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import kv
from benchmarks.bench_sim import FreeIo

ROOT = Path(__file__).resolve().parent.parent
CEILINGS = (
    "perfect, store and sim only (no oracle)",
    "perfect, store on FreeIo (no oracle)",
    "store.set, always, on the sim",
    "store.set, always, on an Io that costs nothing",
)
RATIOS = (
    "store on sim (perfect) / store.set on an Io that costs nothing",
    "full harness on perfect / store on sim (perfect)",
    "perfect workload: store on sim / store on FreeIo",
    "store.set, always: on sim / on an Io that costs nothing",
)


def test_bench_sim_prints_every_row_and_ratio_and_no_seed_fails() -> None:
    completed = subprocess.run(
        [sys.executable, "benchmarks/bench_sim.py", "--seeds", "2", "--ops", "100", "--rounds", "1", "--ceiling"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    lines = completed.stdout.splitlines()
    for name in ("perfect", "comprehensive"):
        [row] = [line for line in lines if line.startswith(f"{name} ")]
        rate, io_rate, seeds, failed = re.findall(r"[\d,]+", row.removeprefix(name))
        assert int(rate.replace(",", "")) > 0 and int(io_rate.replace(",", "")) > 0
        assert seeds == "2" and int(failed) <= 2
        # The benchmark times the harness; whether a seed passes is the scenario tests'
        # business, except on `perfect`, where a failure would mean a broken benchmark.
        assert name != "perfect" or failed == "0", row
    assert any(line.startswith("  target 200,000 ops/s on perfect: ") for line in lines)
    # --ceiling: a row per part made free (its patches name real attributes, or it raises)
    freed = lines[lines.index(next(line for line in lines if line.startswith("--ceiling: "))) + 1 :]
    assert len(freed) == 5 and all(re.search(r" \d+\.\d\dx$", line) for line in freed), freed
    for ceiling in CEILINGS:
        [row] = [line for line in lines if line.startswith(ceiling)]
        assert re.search(r"[1-9][\d,]* ops/s$", row), row
    for label in RATIOS:
        [row] = [line for line in lines if line.startswith(f"  {label} ")]
        ratio = re.search(r" (\d+\.\d\d)x", row)
        assert ratio is not None and float(ratio.group(1)) > 0, row
    targets = [line for line in lines if "   target 0." in line]
    assert [line.split()[-1] in ("met", "missed") for line in targets] == [True, True], targets


def test_free_io_keeps_what_the_store_writes_across_a_reopen() -> None:
    io = FreeIo()
    with kv.open("/store", io=io, segment_size_target_bytes=4096) as store:
        store.set_many({b"k%d" % index: b"v" * index for index in range(200)})  # several segments
        store.delete(b"k1")
        store.compact()
    with kv.open("/store", io=io) as store:
        assert store.get(b"k1") is None and store.get(b"k199") == b"v" * 199
        assert len(store.keys()) == 199 and store.verify().ok
