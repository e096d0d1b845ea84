"""A target that keeps a balance in one file and rewrites it in place, without fsync.

`Path.write_text` truncates the file, then writes: a crash in between leaves it empty,
and since nothing is synced, the newest acknowledged balance may not be on disk at all.
The explorer must fail it and name the `write_text` line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

BALANCES = ("100", "250", "75")


def workload(root: Path, ack: Callable[[object], None]) -> None:
    path = root / "balance.txt"
    for balance in BALANCES:
        path.write_text(balance)  # the vulnerable line: in place, no fsync
        ack(balance)


def check(root: Path, acked: list[object], pending: object | None) -> None:
    """Once a balance was acknowledged, the file holds the newest acknowledged one or the
    one in flight (before the first acknowledgement, nothing was promised)."""
    if not acked:
        return
    path = root / "balance.txt"
    allowed = {*acked[-1:], *([] if pending is None else [pending])}
    text = path.read_text()
    assert text in allowed, f"balance.txt holds {text!r}; acknowledged {acked}, in flight {pending!r}"
