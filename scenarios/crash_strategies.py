"""Hypothesis strategies for a workload's parameters, for tests that use `crash_check`.

Draw the parameters, close the workload over them, and let `crash_check` explore it;
when a state fails, hypothesis shrinks the parameters to the smallest that still fail:

    @crash_settings(max_examples=20)
    @given(payload=payloads())
    def test_overwrite_in_place(crash_check, payload):
        def workload(root, ack): ...  # uses payload
        crash_check(workload, check)

- `payloads()`: bytes whose sizes lean toward the sector boundaries where a write tears
  (511, 512, 513, 4095, 4096, 4097 bytes), shrinking toward short and all-zero;
- `file_names()`: one path component that every file system takes, shrinking toward `a`;
- `balances()`: lists of short distinct texts, the values a workload acknowledges one by
  one, shrinking toward fewer.

`crash_settings(...)` gives the `hypothesis.settings` such tests need: no deadline (one
example explores many crash states), and no `explain` phase, which traces every line
while it replays a failing example (the explorer runs tens of thousands of lines per
example; traced, shrinking a failure took minutes instead of seconds).

Importing this module needs hypothesis (the `test` extra).
"""

from __future__ import annotations

from typing import Any

from hypothesis import Phase, settings
from hypothesis import strategies as st

from scenarios.crash_states import SECTOR_SIZES_BYTES

__all__ = ["balances", "crash_settings", "file_names", "payloads"]

# Sizes around each sector boundary: one byte short of a sector, exactly one, one more.
BOUNDARY_SIZES_BYTES: tuple[int, ...] = tuple(
    sorted({size + delta for size in SECTOR_SIZES_BYTES for delta in (-1, 0, 1)})
)
# Two pages: past every boundary above, still a fast recording.
PAYLOAD_SIZE_MAX_BYTES = 2 * max(SECTOR_SIZES_BYTES)
# Long enough to read, short enough for any file system (255 bytes is the usual limit).
FILE_NAME_LENGTH_MAX = 16
# A handful of promises: enough to interleave, few enough to explore in a moment.
BALANCES_MAX = 5


def payloads(max_size_bytes: int = PAYLOAD_SIZE_MAX_BYTES) -> st.SearchStrategy[bytes]:
    """Bytes of up to `max_size_bytes`, half the time of a size next to a sector boundary
    (those not above `max_size_bytes`). Raises `ValueError` for a negative size."""
    if max_size_bytes < 0:
        raise ValueError(f"max_size_bytes must be >= 0, not {max_size_bytes}")
    boundaries = [size for size in BOUNDARY_SIZES_BYTES if size <= max_size_bytes]
    any_size = st.binary(max_size=max_size_bytes)
    if not boundaries:
        return any_size
    sized = st.sampled_from(boundaries).flatmap(lambda size: st.binary(min_size=size, max_size=size))
    return any_size | sized


def file_names() -> st.SearchStrategy[str]:
    """A file name of lowercase letters, digits, `-`, `_` and `.`, never `.` or `..`."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_."
    name = st.text(alphabet, min_size=1, max_size=FILE_NAME_LENGTH_MAX)
    return name.filter(lambda text: text not in (".", ".."))


def balances(max_count: int = BALANCES_MAX) -> st.SearchStrategy[list[str]]:
    """1 to `max_count` distinct short decimal texts (`"0"`, `"17"`, ...)."""
    return st.lists(st.integers(0, 10**6).map(str), min_size=1, max_size=max_count, unique=True)


def crash_settings(**overrides: Any) -> settings:
    """`hypothesis.settings` for a test that calls `crash_check` per example: no deadline,
    every phase but `explain` (see the module docstring); `overrides` are passed on
    (`max_examples=20`, ...)."""
    phases = tuple(phase for phase in Phase if phase is not Phase.explain)
    return settings(deadline=None, phases=phases, **overrides)
