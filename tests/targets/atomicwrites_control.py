"""Crash-test target, the control: `atomicwrites.atomic_write` (atomicwrites 1.4.1).

Promise checked (the library's README: "atomic file writes", and its docstrings: the
target is replaced by the complete new file in one step): after a crash, `config.txt`
holds exactly the last acknowledged content or, if the write in flight had reached its
rename, the complete new content; never a mix, never an empty or missing file once a
version was acknowledged.

Why it holds (atomicwrites/__init__.py, installed version 1.4.1), every step ordered by
an fsync before the next one could be made durable:
- :186 `tempfile.mkstemp(dir=<directory of the target>)` creates the temporary file;
- :194 `io.open(name, mode)`, the caller writes, :199 `f.flush()` and
  :200 `_proper_fsync(f.fileno())` (an alias of os.fsync taken at import, :35) make the
  data durable before the rename;
- :55 `os.rename(src, dst)` replaces the target (overwrite=True; the default
  overwrite=False uses os.link at :59, which the simulated disk does not model);
- :48-52 `_sync_directory`: `os.open(directory, 0)`, fsync, close make the rename durable
  before `atomic_write` returns, hence before `ack`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from atomicwrites import atomic_write

FILE_NAME = "config.txt"
# Three versions: the middle one spans three 512-byte sectors, so torn writes of the
# temporary file are explored too (they must never become visible).
VERSION_REPEATS = (1, 40, 2)


def content_of(version: int) -> str:
    """The full text written as `version`, distinct per version and self-describing."""
    return f"version {version}: " + f"line of version {version}\n" * VERSION_REPEATS[version]


def workload(root: pathlib.Path, ack: Callable[[object], None]) -> None:
    """Replace `config.txt` once per version with `atomic_write(..., overwrite=True)`,
    acknowledging the version number after each `with` block returns."""
    path = root / FILE_NAME
    for version in range(len(VERSION_REPEATS)):
        with atomic_write(str(path), overwrite=True) as handle:
            handle.write(content_of(version))
        ack(version)


def check(root: pathlib.Path, acked: list[object], pending: object | None) -> None:
    """Raise AssertionError unless `config.txt` is the last acknowledged version or the
    complete version in flight (or absent when nothing was acknowledged)."""
    path = root / FILE_NAME
    allowed: list[str] = []
    if acked:
        allowed.append(content_of(_version(acked[-1])))
    if pending is not None:
        allowed.append(content_of(_version(pending)))
    if not path.exists():
        assert not acked, f"{FILE_NAME} is missing although version {acked[-1]} was acknowledged"
        return
    content = path.read_text()
    assert content in allowed, (
        f"{FILE_NAME} holds {content[:40]!r}... ({len(content)} chars), "
        f"not the complete version acknowledged last ({acked[-1:]}) or in flight ({pending})"
    )


def _version(value: object) -> int:
    """An acknowledged value back as the version number it is."""
    assert isinstance(value, int), f"unexpected acknowledgement {value!r}"
    return value
