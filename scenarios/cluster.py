"""Campaigns on a Dask distributed cluster (`sim_runner --cluster tcp://HOST:8786`).

The cluster is only an executor: `connect` returns the `Workers` that `run_campaign`
feeds, so the progress display, the time budget, shards, swarm, the replay of failing
seeds with their timeline and the artifacts are the same code as a local run. Seeds
travel `SEEDS_PER_TASK` to a task (`run_batch`), so the scheduler's cost per task
(about a millisecond) is shared by a few runs of tens of milliseconds or more, and the
trace hashes equal `--jobs 1`'s because each run depends only on its task.

The workers import `scenarios` and `kv` themselves (functions travel by name, not by
value): start them from a checkout of the same commit as the client, with the same
dependencies. Dask is an optional extra (`pip install 'kv-sim[cluster]'`); without it,
or without a scheduler at the address, `connect` raises `UsageError`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from scenarios.campaign import UsageError, Workers

# Seeds per cluster task: a few, so scheduling overhead stays small, yet enough tasks
# that every worker thread has some and a time budget is not overshot by much.
SEEDS_PER_TASK = 4
# Batches kept in flight per worker thread: one running, one queued so no thread idles.
BATCHES_IN_FLIGHT_PER_THREAD = 2
# How long to wait for the scheduler to answer before calling the address unusable.
CONNECT_TIMEOUT_SECONDS = 10


def dask_available() -> bool:
    """Whether `dask.distributed` imports (the `[cluster]` extra is installed and works)."""
    try:
        importlib.import_module("distributed")
    except ImportError:
        return False
    return True


class ClusterExecutor(Executor):
    """A `concurrent.futures.Executor` over a `distributed.Client`; `shutdown` closes the client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.inner: Executor = client.get_executor(pure=False)  # every run is a new task, never deduplicated

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        try:
            self.inner.shutdown(wait=wait and not cancel_futures)
        finally:
            self.client.close()


def batch_seeds(runs_planned: int, threads: int) -> int:
    """Seeds per task: `SEEDS_PER_TASK`, fewer when the campaign is too small to feed every thread."""
    return max(1, min(SEEDS_PER_TASK, math.ceil(runs_planned / max(1, threads))))


def connect(address: str, runs_planned: int, timeout_seconds: float = CONNECT_TIMEOUT_SECONDS) -> Workers:
    """The workers of the cluster whose scheduler is at `address`; raises `UsageError`."""
    if not dask_available():
        raise UsageError("--cluster needs dask.distributed: pip install 'kv-sim[cluster]' (or 'dask[distributed]')")
    import distributed

    make_client: Any = distributed.Client  # untyped: its calls would each need an ignore under --strict
    try:
        client = make_client(address, timeout=timeout_seconds)
    except (OSError, ValueError) as error:  # TimeoutError and refused connections are OSErrors
        raise UsageError(f"--cluster {address}: cannot reach a Dask scheduler there ({error})") from None
    threads = sum(client.nthreads().values())
    if threads == 0:
        client.close()
        raise UsageError(f"--cluster {address}: the scheduler has no workers")
    return Workers(ClusterExecutor(client), threads * BATCHES_IN_FLIGHT_PER_THREAD, batch_seeds(runs_planned, threads))
