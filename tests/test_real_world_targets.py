"""Unmodified third-party code crash-tested on the simulated disk (issue 9, point 5).

The five targets in tests/targets/ each state the promise their library makes and the
library lines it depends on. Two layers of tests:

- real-disk sanity: each workload runs on a real temporary directory without a crash,
  and its check must then pass with everything acknowledged (a check that fails here
  is a broken check, not a finding);
- crash-state exploration on the simulated disk (below): the atomicwrites control
  passes every crash state; TinyDB, persist-queue, dbm.dumb and shelve have crash
  states that break their promise, and the failure names the library line responsible.
"""

from __future__ import annotations

import dbm.dumb
import importlib
import inspect
import os
import pathlib
from collections.abc import Callable
from types import ModuleType

import persistqueue.queue
import pytest
import tinydb.storages

from scenarios.crash_states import acknowledged, responsible_sites
from scenarios.target import Exploration, StateResult, explore, failure_report, load_target, summary_line

TARGETS_DIRECTORY = pathlib.Path(__file__).parent / "targets"
TARGET_NAMES = ("atomicwrites_control", "tinydb_jsonstorage", "persistqueue_queue", "dbm_dumb", "shelve_dumb")


def import_target(name: str) -> ModuleType:
    """The target module tests/targets/NAME.py, imported as a package module."""
    return importlib.import_module(f"tests.targets.{name}")


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_target_keeps_every_promise_without_a_crash(name: str, tmp_path: pathlib.Path) -> None:
    target = import_target(name)
    acked: list[object] = []
    target.workload(tmp_path, acked.append)
    assert acked, "the workload acknowledged nothing"
    target.check(tmp_path, acked, None)


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_check_rejects_a_missing_acknowledged_value(name: str, tmp_path: pathlib.Path) -> None:
    """The check is not vacuous: on an empty directory it must fail for a workload whose
    acknowledgements it is told about (every target's first operation adds data)."""
    target = import_target(name)
    recorded_directory = tmp_path / "recorded"
    recorded_directory.mkdir()
    recorded: list[object] = []
    target.workload(recorded_directory, recorded.append)
    empty_directory = tmp_path / "empty"
    empty_directory.mkdir()
    with pytest.raises(AssertionError):
        target.check(empty_directory, recorded[:1], None)


# ---------------------------------------------------------------- crash-state exploration

# Every state the ALICE exploration enumerates for these workloads (at most about 1,100,
# shelve's) fits, so nothing is sampled and each test checks all of them in about 1 s.
BUDGET_STATES = 2000


def explore_target(name: str) -> Exploration:
    """Record tests/targets/NAME.py once on the simulated disk and check every crash
    state (prefixes, single omissions, torn writes). The workload itself must run
    without an error and without a call the POSIX view does not model."""
    exploration = explore(load_target(TARGETS_DIRECTORY / f"{name}.py"), "alice", budget=BUDGET_STATES)
    assert exploration.recorded.workload_error is None, exploration.recorded.workload_traceback
    assert not exploration.unmodelled, failure_report(exploration, exploration.unmodelled[0])
    # Sampling would return exactly BUDGET_STATES states: fewer means all were checked.
    assert exploration.enumerated < BUDGET_STATES, "the budget sampled the states: raise BUDGET_STATES"
    return exploration


def library_line(function: Callable[..., object], fragment: str) -> str:
    """`file:line` of the first line of `function`'s source containing `fragment`, in the
    installed version (so the tests follow the library's line numbers, not hard-code them)."""
    lines, first_line = inspect.getsourcelines(function)
    path = os.path.realpath(inspect.getsourcefile(function) or "")
    for offset, line in enumerate(lines):
        if fragment in line:
            return f"{path}:{first_line + offset}"
    raise AssertionError(f"{fragment!r} is not in {function.__qualname__} any more: update the target")


def responsible_lines(exploration: Exploration, result: StateResult) -> set[str]:
    """The `file:line`s the engine holds responsible for a failing state, paths resolved."""
    found = set()
    for responsibility in responsible_sites(exploration.recording, result.state):
        path, _, line = responsibility.site.rpartition(":")
        found.add(f"{os.path.realpath(path)}:{line}")
    return found


def acknowledged_losses(exploration: Exploration) -> list[StateResult]:
    """The failing states in which something was already acknowledged (a broken promise,
    not only a crash during the very first operation), most minimal first."""
    return [result for result in exploration.failures if acknowledged(exploration.recording, result.state)[0]]


def last_issued_call(exploration: Exploration, result: StateResult) -> str:
    """The os-level call of the last operation issued before the state's crash point."""
    return exploration.recording.sites[result.state.point - 1].call


def test_atomicwrites_control_passes_every_crash_state() -> None:
    exploration = explore_target("atomicwrites_control")
    assert exploration.passed, failure_report(exploration, exploration.failures[0])
    assert exploration.unique >= 10, summary_line(exploration)
    # Not vacuous: torn versions of the 731-byte temporary file were built and checked.
    assert any(result.state.tear is not None for result in exploration.results), summary_line(exploration)


def test_tinydb_jsonstorage_breaks_its_promise() -> None:
    exploration = explore_target("tinydb_jsonstorage")
    losses = acknowledged_losses(exploration)
    assert losses, summary_line(exploration)
    lines = set().union(*(responsible_lines(exploration, result) for result in losses))
    # touch() creates db.json and nothing fsyncs the directory: the file can vanish.
    touch_line = library_line(tinydb.storages.touch, "open(path, 'a')")
    assert touch_line in lines, sorted(lines)
    # The truncate after the fsync is never made durable: an acknowledged remove can
    # leave the old tail behind, and the file no longer parses.
    truncate_line = library_line(tinydb.storages.JSONStorage.write, "self._handle.truncate()")
    truncated = [result for result in losses if truncate_line in responsible_lines(exploration, result)]
    assert truncated, sorted(lines)
    assert any("remove" in str(acknowledged(exploration.recording, result.state)[0]) for result in truncated)
    # Even with no reordering at all (a prefix), the in-place rewrite loses the database.
    flush_line = library_line(tinydb.storages.JSONStorage.write, "self._handle.flush()")
    prefixes = [result for result in losses if result.state.is_prefix]
    assert any(flush_line in responsible_lines(exploration, result) for result in prefixes), summary_line(exploration)


def test_persistqueue_queue_breaks_its_promise() -> None:
    exploration = explore_target("persistqueue_queue")
    # Queue.__del__ (queue.py:286-290) raises AttributeError when __init__ failed on the
    # damaged queue it was asked to open: the explorer counts those, pytest sees none.
    assert exploration.unraisable > 0
    losses = acknowledged_losses(exploration)
    assert losses, summary_line(exploration)
    lines = set().union(*(responsible_lines(exploration, result) for result in losses))
    # put() appends and flushes the item without fsync ...
    flush_line = library_line(persistqueue.queue.Queue._put, "self.headf.flush()")
    # ... and the metadata is replaced with no fsync of the file before nor the directory after.
    replace_line = library_line(persistqueue.queue.atomic_rename, "os.replace(src, dst)")
    assert {flush_line, replace_line} <= lines, sorted(lines)
    # The queue can become unreadable, not only shorter (persist-queue#180's symptom).
    errors = {str(result.error).partition(":")[0] for result in losses}
    assert errors & {"UnpicklingError", "EOFError"}, errors


@pytest.mark.parametrize(("name", "base_name"), [("dbm_dumb", "db"), ("shelve_dumb", "shelf")])
def test_dbm_dumb_loses_every_key_between_rename_and_rewrite_of_its_index(name: str, base_name: str) -> None:
    """dbm.dumb (alone and under shelve) loses acknowledged keys even in a prefix state,
    with no reordering: `_commit` renames the index to .bak and rewrites it, and open()
    never reads .bak. The call site is the target's `sync()` line (the innermost frame
    outside the standard library) and, since dbm.dumb is a library of the standard
    library, the line inside it (`CallSite.library`): dumb.py's rename."""
    exploration = explore_target(name)
    losses = acknowledged_losses(exploration)
    assert losses, summary_line(exploration)
    rename_call = f"rename('{base_name}.dir', '{base_name}.bak')"
    in_rename_window = [
        result for result in losses if result.state.is_prefix and last_issued_call(exploration, result) == rename_call
    ]
    assert in_rename_window, [result.state.id for result in losses]
    commit = vars(dbm.dumb._Database)["_commit"]
    commit_rename_line = library_line(commit, "self._os.rename(self._dirfile, self._bakfile)")
    target_sync_line = library_line(import_target(name).workload, ".sync()")
    window = in_rename_window[0]
    site = exploration.recording.sites[window.state.point - 1]
    path, _, line = site.site.rpartition(":")
    assert f"{os.path.realpath(path)}:{line}" == target_sync_line, failure_report(exploration, window)
    path, _, line = site.library.rpartition(":")
    assert f"{os.path.realpath(path)}:{line}" == commit_rename_line, failure_report(exploration, window)
    assert f"(in {site.library})" in failure_report(exploration, window)
    # close() commits once more after the last sync(): a crash there loses every key,
    # all of them acknowledged, with nothing in flight.
    assert any(acknowledged(exploration.recording, result.state)[1] is None for result in in_rename_window)
    # The check saw an empty database although a key was acknowledged.
    assert any("AssertionError" in str(result.error) for result in in_rename_window), failure_report(
        exploration, window
    )
