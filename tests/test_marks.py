"""Coverage marks (`kv.marks`): one table, one call site per mark, free when off,
counted when recording. (That the default campaign reaches them is
`tests/test_default_campaign.py`.)"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

import kv
from io_backends.sim import SimIo
from kv import marks
from kv.marks import MARKS, mark, recording

ROOT = Path(__file__).resolve().parent.parent


def _mark_calls() -> list[tuple[str, int, ast.Call]]:
    """Every call of `mark(...)` in kv/: (file, line, call)."""
    calls = []
    for path in sorted((ROOT / "kv").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "mark":
                calls.append((str(path.relative_to(ROOT)), node.lineno, node))
    return calls


def test_every_mark_call_names_one_entry_of_the_table_and_each_entry_has_one_call() -> None:
    names: Counter[str] = Counter()
    for where, line, call in _mark_calls():
        [argument] = call.args
        assert isinstance(argument, ast.Constant) and isinstance(argument.value, str), f"{where}:{line}"
        assert not call.keywords, f"{where}:{line}"
        names[argument.value] += 1
    assert set(names) == set(MARKS), f"not in MARKS {set(names) - set(MARKS)}, never called {set(MARKS) - set(names)}"
    assert [name for name, count in names.items() if count != 1] == []
    assert len(MARKS) >= 15 and all(MARKS.values())


def test_mark_outside_recording_changes_nothing() -> None:
    mark("torn_tail_cut")
    assert marks._hits is None
    with recording() as hits:
        assert hits == Counter()


def test_mark_inside_recording_counts_and_the_counter_stops_at_the_block_end() -> None:
    with recording() as hits:
        mark("torn_tail_cut")
        mark("torn_tail_cut")
        mark("quarantine_written")
    mark("torn_tail_cut")
    assert hits == Counter({"torn_tail_cut": 2, "quarantine_written": 1})
    assert marks._hits is None


def test_recording_does_not_nest() -> None:
    with recording(), pytest.raises(AssertionError, match="nest"), recording():
        pass
    assert marks._hits is None


def test_an_unknown_mark_is_refused_while_recording() -> None:
    with recording(), pytest.raises(AssertionError, match="unknown mark"):
        mark("no_such_mark")


def _open_with_a_torn_tail(io: SimIo) -> kv.Store:
    """A store whose newest segment ends in garbage after its last frame (a torn write)."""
    with kv.open("/store", io=io) as store:
        store.set(b"k", b"v")
        assert store._log is not None
        segment, end = store._log.file.path, store._log.write_offset
    file = io.open(segment, "w").result()
    io.write(file, end, b"\x01" * 100).result()
    io.sync(file).result()
    io.close(file).result()
    return kv.open("/store", io=io)


def test_a_real_rare_path_is_counted_only_while_recording() -> None:
    with _open_with_a_torn_tail(SimIo(seed=1)) as store:  # not recording: nothing counted anywhere
        assert len(store.recovery.torn_tails) == 1
    with recording() as hits, _open_with_a_torn_tail(SimIo(seed=1)) as store:
        assert len(store.recovery.torn_tails) == 1
    assert hits["torn_tail_cut"] == 1
