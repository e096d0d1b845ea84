"""Campaigns on a Dask cluster (`sim_runner --cluster`): a `LocalCluster` on loopback
gives the same per-seed trace hashes as `--jobs 1`, through `run_campaign` (what the
command line calls) and through the command line itself; a broken store fails there as
here, with its timeline replayed on the cluster; without dask, `--cluster` is a usage error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scenarios.campaign import Campaign, CampaignResult, Shard, UsageError, run_campaign
from scenarios.cluster import batch_seeds, connect, dask_available

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_NAMES = ("crash", "corruption")
SEEDS = range(0, 6)
OPERATIONS = 200

needs_dask = pytest.mark.skipif(not dask_available(), reason="dask[distributed] is not installed (extra [cluster])")


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    if not dask_available():
        pytest.skip("dask[distributed] is not installed (extra [cluster])")
    from distributed import LocalCluster

    make_cluster: Any = LocalCluster  # untyped
    cluster = make_cluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1")
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def _hashes(result: CampaignResult) -> list[tuple[str, int, str, str | None]]:
    return [
        (outcome.scenario, outcome.seed, outcome.verdict, outcome.result.trace_hash if outcome.result else None)
        for outcome in result.outcomes
    ]


def test_a_cluster_campaign_gives_the_trace_hashes_of_one_job(scheduler_address: str) -> None:
    heard: list[tuple[str, int]] = []
    on_cluster = run_campaign(
        Campaign(SCENARIO_NAMES, SEEDS, operations=OPERATIONS, cluster=scheduler_address),
        lambda outcome: heard.append((outcome.scenario, outcome.seed)),
    )
    local = run_campaign(Campaign(SCENARIO_NAMES, SEEDS, operations=OPERATIONS))
    assert _hashes(on_cluster) == _hashes(local)
    assert len(_hashes(local)) == 12 and all(trace for *_, trace in _hashes(local))
    assert sorted(heard) == sorted((name, seed) for name in SCENARIO_NAMES for seed in SEEDS)  # streamed, each once


def test_the_command_line_runs_on_the_cluster_with_the_same_hashes(scheduler_address: str, tmp_path: Path) -> None:
    arguments = ["--scenario", "crash", "--seeds", "0-3", "--ops", str(OPERATIONS), "--report-dir", str(tmp_path)]
    command = [sys.executable, str(ROOT / "sim_runner.py"), *arguments, "--cluster", scheduler_address]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"cluster={scheduler_address}" in completed.stdout.splitlines()[0]
    document: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())
    from_cli = [(entry["scenario"], entry["seed"], entry["trace_hash"]) for entry in document["seeds"]]
    local = run_campaign(Campaign(("crash",), range(0, 4), operations=OPERATIONS))
    assert from_cli == [(name, seed, trace) for name, seed, _, trace in _hashes(local)]
    assert document["campaign"]["cluster"] == scheduler_address


def test_shards_and_swarm_on_the_cluster_match_one_job(scheduler_address: str) -> None:
    local_campaign = Campaign(SCENARIO_NAMES, SEEDS, operations=OPERATIONS, shard=Shard(2, 3), swarm=True)
    on_cluster = run_campaign(replace(local_campaign, cluster=scheduler_address))
    local = run_campaign(local_campaign)
    assert _hashes(on_cluster) == _hashes(local) and len(_hashes(local)) == 4


def test_a_time_budget_stops_sending_batches(scheduler_address: str) -> None:
    ticks = iter(range(1000))  # each read of the clock: one more second
    campaign = Campaign(("crash",), range(0, 100), operations=50, cluster=scheduler_address, time_budget_seconds=5)
    result = run_campaign(campaign, clock=lambda: float(next(ticks)))
    assert result.stopped_by == "time budget"
    seeds = [outcome.seed for outcome in result.outcomes]
    assert seeds == list(range(len(seeds))) and 0 < len(seeds) < 100  # whole batches, in seed order
    assert len(seeds) % batch_seeds(100, threads=2) == 0


def break_commits() -> None:
    """Run on each worker: acknowledge before sync (the crash scenario catches it)."""
    import kv.store

    original = kv.store.Store._commit

    def commit_without_sync(self: kv.store.Store, sync: bool) -> None:
        original(self, sync=False)

    kv.store.Store._commit = commit_without_sync  # type: ignore[method-assign]


def test_a_broken_store_fails_on_the_cluster_as_here_with_timelines(
    scheduler_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client

    campaign = Campaign(("crash",), range(0, 6), operations=OPERATIONS, cluster=scheduler_address)
    with Client(scheduler_address) as client:  # type: ignore[no-untyped-call]
        client.run(break_commits)
        try:
            on_cluster = run_campaign(campaign)
        finally:
            client.restart()  # fresh workers: the store unbroken again
    import kv.store

    original = kv.store.Store._commit
    monkeypatch.setattr(kv.store.Store, "_commit", lambda self, sync: original(self, sync=False))
    local = run_campaign(Campaign(("crash",), range(0, 6), operations=OPERATIONS))
    assert on_cluster.exit_code == 1 and on_cluster.of("failed")
    assert _hashes(on_cluster) == _hashes(local)
    assert all(outcome.result and outcome.result.timeline for outcome in on_cluster.of("failed"))


def test_small_campaigns_are_spread_over_every_thread() -> None:
    assert batch_seeds(runs_planned=1000, threads=8) == 4
    assert batch_seeds(runs_planned=6, threads=4) == 2
    assert batch_seeds(runs_planned=1, threads=4) == 1


@needs_dask
def test_no_scheduler_at_the_address_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="cannot reach a Dask scheduler"):
        connect("tcp://127.0.0.1:1", runs_planned=1, timeout_seconds=1)


def test_without_dask_cluster_is_a_usage_error_naming_the_extra() -> None:
    code = (
        "import runpy, sys; sys.modules['distributed'] = None; "
        f"sys.argv = ['sim_runner', '--cluster', 'tcp://127.0.0.1:1', '--seed', '1']; "
        f"runpy.run_path({str(ROOT / 'sim_runner.py')!r}, run_name='__main__')"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=environment)
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "[cluster]" in completed.stderr and not completed.stdout
