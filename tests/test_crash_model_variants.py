"""Broken variants of the crash-state model, each shown to let a real bug escape.

The explorer promises that a program which leans on durability it never asked for is
caught. Each rule of the persistence model (`io_backends/sim/posix/ops.py`) and each
kind of crash state carries part of that promise, so each variant below weakens one,
and a target with exactly that bug must pass under the variant and fail under the real
model: the tests that expect these targets to fail are the checks that bite.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from io_backends.sim.posix.ops import ENTRY_OPS, MicroOp
from scenarios import crash_states
from scenarios.crash_check import target_from_functions
from scenarios.crash_states import CrashState
from scenarios.target import explore


def _entries_durable_at_once(real: Callable[[Sequence[MicroOp]], list[int | None]]) -> Callable[..., object]:
    def durable_indexes(ops: Sequence[MicroOp]) -> list[int | None]:
        durable_at = real(ops)
        return [
            index if isinstance(op, ENTRY_OPS) else at
            for index, (op, at) in enumerate(zip(ops, durable_at, strict=True))
        ]

    return durable_indexes


def _no_tears(_recording: object) -> Iterator[CrashState]:
    return iter(())


def _overwrite_a_sector_and_a_half_in_place(root: Path, ack: Callable[[object], None]) -> None:
    """A durable 768 B record, then rewritten in place and fsynced: old or new only if
    the write cannot tear."""
    path = root / "record"
    for content, mode in ((b"a" * 768, "wb"), (b"b" * 768, "r+b")):
        with open(path, mode) as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        directory = os.open(root, os.O_RDONLY)
        os.fsync(directory)
        os.close(directory)
        ack(content[:1].decode())


def _old_or_new(root: Path, acked: list[object], pending: object) -> None:
    if acked:
        data = (root / "record").read_bytes()
        assert data in (b"a" * 768, b"b" * 768), f"a mix of old and new: {data.count(b'a')} a, {data.count(b'b')} b"


def _replace_without_directory_fsync(root: Path, ack: Callable[[object], None]) -> None:
    """write-temp, fsync, rename, and no fsync of the directory (the README's example)."""
    for version in ("1", "2"):
        temporary = root / "settings.tmp"
        with open(temporary, "w") as file:
            file.write(version)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, root / "settings")
        ack(version)


def _newest(root: Path, acked: list[object], pending: object) -> None:
    if acked:
        assert (root / "settings").read_text() in (acked[-1], pending)


@pytest.mark.parametrize(
    ("variant", "attribute", "make", "workload", "check"),
    [
        # rule 2: a rename is durable only after an fsync of its directory
        (
            "entries durable at once",
            "_durable_indexes",
            lambda: _entries_durable_at_once(crash_states._durable_indexes),
            _replace_without_directory_fsync,
            _newest,
        ),
        # torn writes: only sector subsets show that an in-place rewrite is not atomic
        ("writes never tear", "_tears", lambda: _no_tears, _overwrite_a_sector_and_a_half_in_place, _old_or_new),
    ],
)
def test_each_weakened_rule_lets_its_bug_escape(
    variant: str,
    attribute: str,
    make: Callable[[], object],
    workload: Callable[[Path, Callable[[object], None]], None],
    check: Callable[[Path, list[object], object], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buggy = target_from_functions(workload, check)
    assert not explore(buggy, "alice").passed, "the bug must be caught under the real model"
    monkeypatch.setattr(crash_states, attribute, make())
    crash_states._ANALYSES.clear()
    crash_states._PREFIX_TREES.clear()
    escaped = explore(buggy, "alice")
    crash_states._ANALYSES.clear()
    crash_states._PREFIX_TREES.clear()
    assert escaped.passed, f"under {variant!r} the bug should escape: {[f.error for f in escaped.failures][:3]}"


def test_without_omissions_a_missing_directory_fsync_escapes() -> None:
    """Reordering (ALICE's omissions): every prefix state keeps the rename, so only
    dropping it while later operations survive shows the directory was never synced."""
    buggy = target_from_functions(_replace_without_directory_fsync, _newest)
    assert explore(buggy, "prefix").passed
    assert not explore(buggy, "alice").passed
