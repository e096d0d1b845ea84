"""The inline faults `sim_runner --target ... --faults NAME[,NAME...]` can switch on.

A target's workload is recorded once; with inline faults on, its calls on the simulated
disk fail now and then, as a real disk's do, and the workload must answer with an
exception, never by losing acknowledged data silently (the explorer checks every crash
state of the recording, and its final state too). Only the fault families that make
sense for POSIX code are offered, each with one fixed setting (a `FaultPlan` field, as in
`io_backends/sim/faults.py`); every decision comes from the run's seed (`--seed`).

| name | what fails | setting |
|---|---|---|
| `operation_errors` | EIO on open, read, write, fsync, rename, unlink | 5% per call each |
| `disk_full` | ENOSPC once the files would hold more than the capacity | 1 B to 64 KiB, drawn from the seed |
| `permission_errors` | EACCES on open for writing, EROFS on write | 5% per call each |
| `fsync_gate` | an fsync fails with EIO and drops the dirty pages (fsyncgate) | 20% per fsync |

The odds are high on purpose: a small target makes tens of calls, so a fault of 5% per
call fires in most seeds and rarely in all of them; fsyncs are fewer, hence 20%. A disk's
capacity only matters against what the workload writes, so each seed picks one of
`DISK_FULL_CAPACITIES_BYTES`: across seeds, the disk fills at the first byte, in the
middle and near the end of a small workload.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from io_backends.sim.faults import DiskFull, FaultPlan, FsyncGate, OperationErrors, PermissionErrors

# 5% per call: a target's tens of calls see about one error per seed (see the table).
CALL_ERROR_PROBABILITY = 0.05
# fsyncs are rarer than calls; one in five fails.
FSYNC_GATE_PROBABILITY = 0.2
# From "the first byte written fails" to "a few files of a small store fit": one per seed.
DISK_FULL_CAPACITIES_BYTES: tuple[int, ...] = (1, 16, 256, 4096, 65536)

INLINE_FAULTS: dict[str, object] = {
    "operation_errors": OperationErrors(
        open_probability=CALL_ERROR_PROBABILITY,
        read_probability=CALL_ERROR_PROBABILITY,
        write_probability=CALL_ERROR_PROBABILITY,
        sync_probability=CALL_ERROR_PROBABILITY,
        rename_probability=CALL_ERROR_PROBABILITY,
        unlink_probability=CALL_ERROR_PROBABILITY,
    ),
    "disk_full": DiskFull(capacity_bytes=DISK_FULL_CAPACITIES_BYTES[0]),  # the capacity: see `fault_plan`
    "permission_errors": PermissionErrors(
        open_probability=CALL_ERROR_PROBABILITY, write_probability=CALL_ERROR_PROBABILITY
    ),
    "fsync_gate": FsyncGate(probability=FSYNC_GATE_PROBABILITY),
}
"""Each inline fault by its `FaultPlan` field name, with the setting `--faults` uses."""


class UnknownFault(ValueError):
    """A fault name that is not one of `INLINE_FAULTS` (the message lists them)."""


def parse_fault_names(text: str) -> tuple[str, ...]:
    """`"disk_full,fsync_gate"` -> the names, in order, each once. Raises `UnknownFault`
    for an empty list or a name not in `INLINE_FAULTS`."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",")))
    _check_known(names or ("",))
    return names


def fault_plan(names: Iterable[str], seed: int = 0) -> FaultPlan | None:
    """The `FaultPlan` with the named inline faults on, or None for no names; `disk_full`
    gets the capacity `seed` picks from `DISK_FULL_CAPACITIES_BYTES`. Raises
    `UnknownFault` for a name not in `INLINE_FAULTS`."""
    chosen = tuple(names)
    if not chosen:
        return None
    _check_known(chosen)
    faults: dict[str, Any] = {name: INLINE_FAULTS[name] for name in chosen}
    if "disk_full" in faults:
        faults["disk_full"] = DiskFull(capacity_bytes=random.Random(seed).choice(DISK_FULL_CAPACITIES_BYTES))
    return FaultPlan(**faults)


def _check_known(names: tuple[str, ...]) -> None:
    unknown = [name for name in names if name not in INLINE_FAULTS]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise UnknownFault(f"unknown fault {listed}: choose from {', '.join(INLINE_FAULTS)}")
