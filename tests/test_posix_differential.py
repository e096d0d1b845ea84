"""Differential conformance of the POSIX view (issue 9, point 2): real disk versus simulated.

Hypothesis generates sequences of file-system calls (`tests.posix_calls` says which, and
what is compared). Each sequence runs twice with the same code and the same relative
paths: once with the plain standard library against a fresh real temporary directory,
with no interposition, and once inside `interpose(PosixView(root))` against a fresh
simulated root. The two observations must be equal: return values, stat fields,
exception types, errnos and messages, and the final tree.

Five tests draw from different families of calls; together they run
`EXAMPLES_PER_TEST * 5` >= 5,000 sequences (the issue's done-when line), and each test
asserts it ran its share. A mismatch prints the sequence and both observations side by
side; hypothesis shrinks it to a minimal reproduction first.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from io_backends.sim.posix.interpose import Interposition, interpose
from io_backends.sim.posix.view import PosixView
from tests.posix_calls import (
    Call,
    CallShape,
    Observation,
    World,
    descriptor_calls,
    file_object_calls,
    library_calls,
    namespace_calls,
    sequences,
)

EXAMPLES_PER_TEST = 1_000  # 5 tests: the issue asks for at least 5,000 generated sequences
CALLS_PER_SEQUENCE_MAX = 20  # long enough to build a tree and break it, short enough to shrink
SELF_CHECK_EXAMPLES = 100  # each enters interposition (~0.1 s); it guards the normalization and the pass-through
FAST_REAL_BASE = "/dev/shm"  # a tmpfs on Linux; see `real_base`
SIMULATED_ROOT = "/kvsim-differential-root"  # not on the real disk: a leak reads as ENOENT

FAMILIES: dict[str, list[list[CallShape]]] = {
    "descriptors": [descriptor_calls(), namespace_calls()],
    "namespace": [namespace_calls()],
    "file_objects": [file_object_calls(), descriptor_calls()[:6]],
    "libraries": [library_calls(), namespace_calls()],
    "everything": [descriptor_calls(), namespace_calls(), file_object_calls(), library_calls()],
}


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def _render(calls: Sequence[Call], real: list[Observation], simulated: list[Observation]) -> str:
    """The sequence with both worlds' observations, the first difference marked."""
    lines = []
    labels = [repr(call) for call in calls] + ["<close all>", "<tree>"]
    marked = False
    for label, expected, actual in itertools.zip_longest(labels, real, simulated):
        differs = expected != actual
        marker = ">>" if differs and not marked else "  "
        marked = marked or differs
        lines.append(f"{marker} {label}\n     real: {expected!r}\n      sim: {actual!r}")
    return "\n".join(lines)


@pytest.fixture
def real_base(tmp_path: Path) -> Iterator[Path]:
    """Where the real roots go: a tmpfs when there is one, else pytest's tmp_path.

    The errnos are the kernel's VFS either way. tmpfs because ext4 mounted with
    `discard` (as here) takes ~3.7 ms per rmdir, which would make 5,000 sequences take
    minutes; what differs between the two (directory sizes, directory offsets) is not
    compared."""
    if not (os.path.isdir(FAST_REAL_BASE) and os.access(FAST_REAL_BASE, os.W_OK)):
        yield tmp_path
        return
    base = Path(tempfile.mkdtemp(prefix="posix-differential-", dir=FAST_REAL_BASE))
    try:
        yield base
    finally:
        shutil.rmtree(base)


def _real_runs(base: Path) -> Iterator[str]:
    """Fresh real root directories under `base`, one per example."""
    for number in itertools.count():
        root = base / f"example{number}"
        root.mkdir()
        yield str(root)


def _run_real(root: str, calls: Sequence[Call]) -> list[Observation]:
    try:
        return World(root).run(calls)
    finally:
        shutil.rmtree(root)


def _run_simulated(interposition: Interposition, calls: Sequence[Call]) -> list[Observation]:
    """`calls` on a fresh simulated root: the interposition's view is swapped, not re-made."""
    view = PosixView(SIMULATED_ROOT)
    interposition.view = view
    return World(view.root).run(calls)


def _differential(family: str, base: Path) -> int:
    """Run `EXAMPLES_PER_TEST` sequences of `family` in both worlds; the number run.

    Interposition is entered once for the whole test (entering scans every loaded module,
    ~0.1 s). The real run happens inside it too, on a real path the routers pass through
    unchanged; `test_passing_through_changes_nothing` checks that they do."""
    roots = _real_runs(base)
    count = 0

    @_settings(EXAMPLES_PER_TEST)
    @given(sequences(FAMILIES[family], CALLS_PER_SEQUENCE_MAX))
    def check(calls: list[Call]) -> None:
        nonlocal count
        real = _run_real(next(roots), calls)
        simulated = _run_simulated(interposition, calls)
        assert real == simulated, "the simulated root differs from the real disk:\n" + _render(calls, real, simulated)
        count += 1

    with interpose(PosixView(SIMULATED_ROOT)) as interposition:
        check()
    return count


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_simulated_root_matches_the_real_disk(family: str, real_base: Path) -> None:
    assert _differential(family, real_base) >= EXAMPLES_PER_TEST


def test_passing_through_changes_nothing(real_base: Path) -> None:
    """A real run observes the same without interposition, inside it, and again without:
    so the normalization hides every difference that is not the file system's (roots,
    descriptor numbers, random names), and the routers pass real calls through unchanged
    (the differential test runs its real side inside interposition)."""
    roots = _real_runs(real_base)
    count = 0

    @_settings(SELF_CHECK_EXAMPLES)
    @given(sequences(FAMILIES["everything"], CALLS_PER_SEQUENCE_MAX))
    def check(calls: list[Call]) -> None:
        nonlocal count
        plain = _run_real(next(roots), calls)
        with interpose(PosixView(SIMULATED_ROOT)):
            passed_through = _run_real(next(roots), calls)
        again = _run_real(next(roots), calls)
        assert plain == again, "the real disk is not deterministic here:\n" + _render(calls, plain, again)
        assert plain == passed_through, "interposition changed a real call:\n" + _render(calls, plain, passed_through)
        count += 1

    check()
    assert count >= SELF_CHECK_EXAMPLES
