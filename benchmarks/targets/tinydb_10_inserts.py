"""Benchmark-only crash-test target: TinyDB's default `JSONStorage` with exactly 10 inserts.

The workload the speed benchmark (`benchmarks/bench_crash_states.py`) names "TinyDB with
10 inserts": ten `insert` calls, each acknowledged as "insert NAME" right after TinyDB
returns. The check and the promise are those of `tests/targets/tinydb_jsonstorage.py`
(imported by path, not copied): after a crash, `db.json` opens with TinyDB and holds
exactly the documents of the acknowledged inserts, plus possibly the one in flight.
"""

from __future__ import annotations

import importlib.util
import pathlib
from collections.abc import Callable
from types import ModuleType
from typing import cast

from tinydb import TinyDB

# The target whose check (and file name) this one reuses.
JSONSTORAGE_PATH = pathlib.Path(__file__).resolve().parents[2] / "tests" / "targets" / "tinydb_jsonstorage.py"


def _import_by_path(path: pathlib.Path) -> ModuleType:
    """The module in the file at `path`, imported with importlib alone: not through
    `scenarios.target.load_target`, so the traditional way's fresh process imports no
    more than TinyDB and the two target files. Raises ImportError if it cannot load."""
    spec = importlib.util.spec_from_file_location(f"_tinydb_jsonstorage_for_{__name__}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_JSONSTORAGE = _import_by_path(JSONSTORAGE_PATH)
FILE_NAME = cast(str, _JSONSTORAGE.FILE_NAME)
# Ten inserts: the size of the workload issue 9 asks the benchmark to measure.
INSERTED_NAMES = tuple(f"document{index:02d}" for index in range(10))


def workload(root: pathlib.Path, ack: Callable[[object], None]) -> None:
    """Insert ten documents, acknowledging each as "insert NAME" right after TinyDB returns."""
    with TinyDB(str(root / FILE_NAME)) as database:
        for name in INSERTED_NAMES:
            database.insert({"name": name, "note": f"document {name}"})
            ack(f"insert {name}")


def check(root: pathlib.Path, acked: list[object], pending: object | None) -> None:
    """`tests/targets/tinydb_jsonstorage.py`'s check: reopen db.json with TinyDB and raise
    AssertionError unless it holds the acknowledged documents (with or without the
    pending one); a JSONDecodeError from TinyDB propagates."""
    jsonstorage_check = cast(Callable[[pathlib.Path, list[object], object], None], _JSONSTORAGE.check)
    jsonstorage_check(root, acked, pending)
