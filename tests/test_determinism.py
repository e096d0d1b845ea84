"""Same seed, same run: the simulated disk's final state and clock hash the same in two
processes with different PYTHONHASHSEED."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import kv
from io_backends.sim import SimIo, SimulatedCrash

ROOT = Path(__file__).resolve().parent.parent


def trace_hash(seed: int) -> str:
    """Run a seeded workload with a crash and a recovery; hash everything observable."""
    rng = random.Random(seed)
    io = SimIo(seed=seed)
    digest = hashlib.sha256()
    store = kv.open("/db", io=io, segment_size_target_bytes=1024, durability="batch")
    io.crash_at_operation = 150
    try:
        for step in range(2000):
            key = f"k{rng.randrange(50)}"
            if rng.random() < 0.8:
                store.set(key, f"{step}" * rng.randrange(1, 20))
            else:
                store.delete(key)
            if step % 300 == 299:
                store.compact()
        store.close()
    except SimulatedCrash:
        digest.update(b"crashed")
    with kv.open("/db", io=io) as reopened:
        digest.update(reopened.recovery.summary().encode())
        for stored_key in reopened.keys():
            digest.update(stored_key + b"=" + (reopened.get(stored_key) or b""))
    for path in sorted(io.disk.directories):
        for name, number in sorted(io.disk.directories[path].entries.items()):
            digest.update(f"{path}/{name}".encode() + bytes(io.disk.inodes[number].durable))
    digest.update(f"{io.clock_us} {io.operations_completed}".encode())
    return digest.hexdigest()


def test_same_seed_same_hash_across_processes_and_hash_seeds() -> None:
    hashes = []
    for hash_seed in ("1", "987654"):
        environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
        code = "from tests.test_determinism import trace_hash; print(trace_hash(42))"
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT, check=True
        )
        hashes.append(result.stdout.strip())
    assert hashes[0] == hashes[1] == trace_hash(42)
    assert trace_hash(43) != hashes[0]


# Fields of a target run's results.json that measure the run rather than describe it.
TIMING_FIELDS = {"started_at", "elapsed_seconds"}
TIMING_COUNTS = {"seconds", "states_per_second"}


def _target_results(hash_seed: str, report_directory: Path) -> dict[str, object]:
    """`sim_runner --target` on persist-queue (temporary file names, dicts, sets of
    inodes inside) under `hash_seed`; its results.json without the timings."""
    target = ROOT / "tests" / "targets" / "persistqueue_queue.py"
    command = [
        sys.executable,
        str(ROOT / "sim_runner.py"),
        "--target",
        str(target),
        "--report-dir",
        str(report_directory),
    ]
    environment = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT, check=False, timeout=120)
    document = json.loads((report_directory / "results.json").read_text())
    counts = {key: value for key, value in document.pop("counts").items() if key not in TIMING_COUNTS}
    return {**{key: value for key, value in document.items() if key not in TIMING_FIELDS}, "counts": counts}


def test_a_target_run_gives_the_same_states_and_failures_under_any_hash_seed(tmp_path: Path) -> None:
    first = _target_results("1", tmp_path / "first")
    second = _target_results("987654", tmp_path / "second")
    assert first["failures"], "persist-queue is expected to fail some crash states"
    assert first == second
