"""`benchmarks/bench_lists.py` runs and prints every row with a rate and a ratio (a
smoke test: no timing is asserted; the figures are for the closing note)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_lists_prints_every_group_and_ratio() -> None:
    completed = subprocess.run(
        [sys.executable, "benchmarks/bench_lists.py", "--operations", "50", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = completed.stdout.splitlines()
    for group in ("queue, durable", "list vs string ops", "sets, durability none"):
        assert any(line.startswith(group) for line in lines), completed.stdout
    rates = [line for line in lines if line.endswith("ops/s") or "ops/s " in line]
    assert len(rates) == 7, completed.stdout
    ratios = re.findall(r": (\d+\.\d\d)x", completed.stdout)
    assert len(ratios) == 4 and all(float(ratio) > 0 for ratio in ratios), completed.stdout
