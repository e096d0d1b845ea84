"""`benchmarks/bench_crash_states.py` runs and prints every row, and both ways agree (a
smoke test: no timing is asserted; the figures are for the closing note)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("tinydb_10_inserts", "dbm_dumb")


def test_bench_crash_states_prints_every_row_with_no_disagreement() -> None:
    arguments = ["--states", "3", "--rounds", "1", *(word for name in WORKLOADS for word in ("--workload", name))]
    completed = subprocess.run(
        [sys.executable, "benchmarks/bench_crash_states.py", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = completed.stdout.splitlines()
    for name in WORKLOADS:
        [row] = [line for line in lines if line.startswith(f"{name} ")]
        operations, enumerated, unique, in_process, end_to_end, traditional, sampled, ratio, disagreements = re.findall(
            r"[\d,.]+", row.removeprefix(name)
        )
        assert int(operations.replace(",", "")) > 0 and int(unique.replace(",", "")) > 0, row
        assert int(enumerated.replace(",", "")) >= int(unique.replace(",", "")), row
        for rate in (in_process, end_to_end, traditional, ratio):
            assert float(rate.replace(",", "")) > 0, row
        assert (sampled, disagreements) == ("3", "0"), row
    targets = [line for line in lines if line.startswith("  targets: 1,000 states/s/core in process: ")]
    assert len(targets) == len(WORKLOADS), lines
    assert not [line for line in lines if "DISAGREEMENT" in line]
