"""The same balance file, replaced atomically: write a temporary file, fsync it, rename it
over the old one, fsync the directory, and only then acknowledge.

Every crash state must pass: the file holds the newest acknowledged balance or the one in
flight, never a mix, never nothing once something was promised.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

BALANCES = ("100", "250", "75")


def replace_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def workload(root: Path, ack: Callable[[object], None]) -> None:
    for balance in BALANCES:
        replace_atomically(root / "balance.txt", balance)
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
