"""`benchmarks/bench_catch.py` runs and prints its table (a smoke test in a tiny
configuration: no timing is asserted; the figures are for the closing note)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Two variants caught on an early seed of a cheap scenario at few operations.
VARIANTS = ("no_sync_dir_for_new_segments", "corruption_as_torn_tail")


def run_bench(*arguments: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "benchmarks/bench_catch.py", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return completed.stdout.splitlines()


def test_bench_catch_prints_a_row_per_variant_and_the_summary() -> None:
    lines = run_bench(*(word for name in VARIANTS for word in ("--variant", name)), "--ops", "300", "--seeds", "20")
    for name in VARIANTS:
        [row] = [line for line in lines if line.startswith(f"{name} ")]
        _variant, scenario, seed, seeds, seconds, per_seed, real = row.split()[:7]
        assert scenario in ("crash", "corruption") and int(seeds) == int(seed) + 1, row
        assert float(seconds) > 0 and float(per_seed) > 0, row
        assert real == "pass", row  # the real store passes the seed that caught the variant
    assert [line.split()[0] for line in lines if line.split()[0] in ("median", "maximum")] == ["median", "maximum"]
    assert any(line.startswith("  target every variant within 30 CPU s: ") for line in lines)
    assert any(line.startswith("  target median at most 2 CPU s: ") for line in lines)


def test_bench_catch_reports_an_uncaught_variant_as_a_lower_bound() -> None:
    """With no operations to run, no seed can fail: the row says so and the target is missed."""
    lines = run_bench("--variant", "ack_before_sync", "--ops", "0", "--seeds", "2")
    [row] = [line for line in lines if line.startswith("ack_before_sync ")]
    assert row.split()[2:4] == ["none", "2"] and row.split()[4].startswith(">"), row
    assert "(not caught)" in row
    assert "  target every variant within 30 CPU s: missed (ack_before_sync: not caught)" in lines
