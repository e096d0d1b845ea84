"""Differential conformance of the POSIX view (issue 9, point 2): real disk versus simulated.

Hypothesis generates sequences of file-system calls (`tests.posix_calls` says which, and
what is compared). Each sequence runs twice with the same code and the same relative
paths: once with the plain standard library against a fresh real temporary directory,
and once against a fresh simulated root, a new `PosixView` swapped into the active
`interpose` block. The two observations must be equal: return values, stat fields,
exception types, errnos and messages, and the final tree.

Five tests draw from different families of calls; together they run
`EXAMPLES_PER_TEST * 5` >= 5,000 sequences (the issue's done-when line), and each test
asserts it ran its share. A mismatch prints the sequence and both observations side by
side; hypothesis shrinks it to a minimal reproduction first.

Two more tests keep the differential honest: the real side observes the same with and
without interposition (so real runs inside the block are plain standard-library runs,
and nothing in the observations is random), and views with a deliberate bug are caught.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings

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
SELF_CHECK_EXAMPLES = 300  # it guards the normalization and the pass-through, not the view
MUTANT_EXAMPLES_MAX = 1_000  # a deliberately broken view must be caught well within this
FAST_REAL_BASE = "/dev/shm"  # a tmpfs on Linux; see `real_base`
SIMULATED_ROOT = "/kvsim-differential-root"  # not on the real disk: a leak reads as ENOENT

ViewFactory = Callable[[str], PosixView]  # a root -> a fresh view (PosixView, or a broken one)

FAMILIES: dict[str, list[list[CallShape]]] = {
    "descriptors": [descriptor_calls(), namespace_calls()],
    "namespace": [namespace_calls()],
    "file_objects": [file_object_calls(), descriptor_calls()[:6]],
    "libraries": [library_calls(), namespace_calls()],
    "everything": [descriptor_calls(), namespace_calls(), file_object_calls(), library_calls()],
}


def _settings(examples: int, shrink: bool = True) -> settings:
    """Deterministic runs (the same sequences every time), no example database."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink] if shrink else [Phase.generate],
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


def _run_simulated(interposition: Interposition, calls: Sequence[Call], make_view: ViewFactory) -> list[Observation]:
    """`calls` on a fresh simulated root: the interposition's view is swapped, not re-made."""
    view = make_view(SIMULATED_ROOT)
    interposition.view = view
    return World(view.root).run(calls)


def _differential(
    family: str, base: Path, make_view: ViewFactory = PosixView, examples: int = EXAMPLES_PER_TEST
) -> int:
    """Run `examples` sequences of `family` in both worlds; the number run. Raises
    AssertionError (after shrinking) at the first sequence the worlds disagree on.

    Interposition is entered once for the whole test (entering scans every loaded module,
    ~0.1 s). The real run happens inside it too, on a real path the routers pass through
    unchanged; `test_passing_through_changes_nothing` checks that they do."""
    roots = _real_runs(base)
    count = 0

    @_settings(examples, shrink=make_view is PosixView)
    @given(sequences(FAMILIES[family], CALLS_PER_SEQUENCE_MAX))
    def check(calls: list[Call]) -> None:
        nonlocal count
        real = _run_real(next(roots), calls)
        simulated = _run_simulated(interposition, calls, make_view)
        assert real == simulated, "the simulated root differs from the real disk:\n" + _render(calls, real, simulated)
        count += 1

    with interpose(PosixView(SIMULATED_ROOT)) as interposition:
        check()
    return count


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_simulated_root_matches_the_real_disk(family: str, real_base: Path) -> None:
    assert _differential(family, real_base) >= EXAMPLES_PER_TEST


def test_passing_through_changes_nothing(real_base: Path) -> None:
    """A real run observes the same twice without interposition and once inside it: so
    the normalization hides every difference that is not the file system's (roots,
    descriptor numbers, random names), and the routers pass real calls through unchanged
    (the differential test runs its real side inside interposition). Hypothesis draws
    the sequences outside; they are replayed inside one block."""
    roots = _real_runs(real_base)
    runs: list[tuple[list[Call], list[Observation]]] = []

    @_settings(SELF_CHECK_EXAMPLES)
    @given(sequences(FAMILIES["everything"], CALLS_PER_SEQUENCE_MAX))
    def check(calls: list[Call]) -> None:
        plain, again = _run_real(next(roots), calls), _run_real(next(roots), calls)
        assert plain == again, "the real disk is not deterministic here:\n" + _render(calls, plain, again)
        runs.append((calls, plain))

    check()
    assert len(runs) >= SELF_CHECK_EXAMPLES
    with interpose(PosixView(SIMULATED_ROOT)):
        for calls, plain in runs:
            passed_through = _run_real(next(roots), calls)
            message = "interposition changed a real call:\n" + _render(calls, plain, passed_through)
            assert plain == passed_through, message


class _AppendIgnored(PosixView):
    """A view that forgets O_APPEND: writes land at the position, not at the end."""

    def open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        return super().open(path, flags & ~os.O_APPEND, mode, dir_fd=dir_fd)


class _TruncateIgnored(PosixView):
    """A view that forgets O_TRUNC: `open(path, "w")` keeps the old bytes."""

    def open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        return super().open(path, flags & ~os.O_TRUNC, mode, dir_fd=dir_fd)


class _ExclusiveIgnored(PosixView):
    """A view that forgets O_EXCL: creating an existing file succeeds."""

    def open(self, path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        return super().open(path, flags & ~os.O_EXCL, mode, dir_fd=dir_fd)


MUTANTS = [(_AppendIgnored, "descriptors"), (_TruncateIgnored, "file_objects"), (_ExclusiveIgnored, "namespace")]


@pytest.mark.parametrize(("make_view", "family"), MUTANTS)
def test_a_broken_view_is_caught(make_view: ViewFactory, family: str, real_base: Path) -> None:
    """The differential can fail: a view with one forgotten flag disagrees with the real
    disk within `MUTANT_EXAMPLES_MAX` sequences."""
    with pytest.raises(AssertionError, match="the simulated root differs from the real disk"):
        _differential(family, real_base, make_view, MUTANT_EXAMPLES_MAX)
