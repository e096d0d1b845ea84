"""`benchmarks/bench_sim.py` runs and prints every row (a smoke test: no timing is
asserted; the figures are for the README)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_sim_prints_every_row_and_no_seed_fails() -> None:
    completed = subprocess.run(
        [sys.executable, "benchmarks/bench_sim.py", "--seeds", "2", "--ops", "100"],
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
        assert (seeds, failed) == ("2", "0")
    assert any(line.startswith("  target 200,000 ops/s on perfect: ") for line in lines)
    for ceiling in ("perfect, store and sim only (no oracle)", "store.set, always, on an Io that costs nothing"):
        [row] = [line for line in lines if line.startswith(ceiling)]
        assert re.search(r"[1-9][\d,]* ops/s$", row), row
