"""Interposition: unmodified stdlib code runs on the simulated root; the real OS elsewhere.

Each routed API is exercised on a simulated root that does not exist on the real disk
(so a call that leaked would fail with ENOENT, and the tests check the root is still
absent afterwards); real paths are checked to reach the real disk; aliases captured
before and during interposition are followed and restored.
"""

from __future__ import annotations

import builtins
import dbm.dumb
import errno
import fcntl
import importlib
import io
import itertools
import mmap
import os
import pathlib
import posix
import shelve
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, cast

import pytest

from io_backends.sim.posix import interpose as interpose_module
from io_backends.sim.posix.errors import UnmodelledCall
from io_backends.sim.posix.files import SimRawIO, sim_open
from io_backends.sim.posix.interpose import Interposition, interpose
from io_backends.sim.posix.ops import Create, Recording, Sync
from io_backends.sim.posix.view import SIM_FD_BASE, PosixView

_roots = itertools.count()


def _new_root() -> str:
    root = f"/kvsim-interpose-test-{os.getpid()}-{next(_roots)}/root"
    assert not os.path.lexists(root)
    return root


@pytest.fixture
def view() -> PosixView:
    return PosixView(_new_root())


@pytest.fixture
def active(view: PosixView) -> Iterator[tuple[Interposition, Path]]:
    with interpose(view) as interposition:
        yield interposition, Path(view.root)
    assert not os.path.lexists(view.root), "the simulated root reached the real disk"


def _files(view: PosixView) -> dict[str, bytes]:
    return {path: content for path, content, _mode in view.tree.image().files}


# -- os ----------------------------------------------------------------------------------------


def test_os_file_calls(active: tuple[Interposition, Path]) -> None:
    interposition, root = active
    path = str(root / "data.bin")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    assert fd >= SIM_FD_BASE
    assert os.write(fd, b"hello world") == 11
    assert os.pwrite(fd, b"W", 6) == 1
    assert os.lseek(fd, 0, os.SEEK_SET) == 0
    assert os.read(fd, 5) == b"hello"
    assert os.pread(fd, 5, 6) == b"World"
    os.ftruncate(fd, 8)
    os.fsync(fd)
    os.fdatasync(fd)
    assert os.fstat(fd).st_size == 8
    copy = os.dup(fd)
    assert os.lseek(copy, 0, os.SEEK_CUR) == os.lseek(fd, 0, os.SEEK_CUR)
    os.close(copy)
    assert not os.isatty(fd)
    assert not os.get_inheritable(fd)
    os.close(fd)
    with pytest.raises(OSError) as closed:
        os.close(fd)
    assert closed.value.errno == errno.EBADF
    os.truncate(path, 5)
    assert os.stat(path).st_size == 5
    assert os.lstat(path).st_size == 5
    assert _files(interposition.view) == {"data.bin": b"hello"}


def test_os_directory_calls(active: tuple[Interposition, Path]) -> None:
    _interposition, root = active
    os.makedirs(root / "a" / "b")
    os.makedirs(root / "a" / "b", exist_ok=True)
    os.mkdir(root / "c")
    (root / "a" / "f").write_bytes(b"1")
    os.rename(root / "a" / "f", root / "a" / "g")
    os.replace(root / "a" / "g", root / "c" / "h")
    assert sorted(os.listdir(root)) == ["a", "c"]
    with os.scandir(root / "c") as entries:
        (entry,) = list(entries)
    assert (entry.name, entry.path, entry.is_file(), entry.is_dir(), entry.is_symlink()) == (
        "h",
        str(root / "c" / "h"),
        True,
        False,
        False,
    )
    assert entry.stat().st_size == 1
    assert entry.inode() == entry.stat().st_ino
    walked = [(top, sorted(dirs), sorted(names)) for top, dirs, names in os.walk(root)]
    assert walked == [
        (str(root), ["a", "c"], []),
        (str(root / "a"), ["b"], []),
        (str(root / "a" / "b"), [], []),
        (str(root / "c"), [], ["h"]),
    ]
    os.chmod(root / "c" / "h", 0o600)
    assert os.stat(root / "c" / "h").st_mode & 0o777 == 0o600
    assert os.access(root / "c" / "h", os.R_OK)
    assert not os.access(root / "missing", os.F_OK)
    assert os.path.exists(root / "c") and os.path.isdir(root / "c") and os.path.isfile(root / "c" / "h")
    assert os.path.getsize(root / "c" / "h") == 1
    assert not os.path.exists(root / "missing") and not os.path.islink(root / "c" / "h")
    os.remove(root / "c" / "h")
    os.rmdir(root / "c")
    os.rmdir(root / "a" / "b" / ".." / "b")
    assert os.listdir(root) == ["a"]


def test_errors_carry_the_callers_filename(active: tuple[Interposition, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _interposition, root = active
    with pytest.raises(FileNotFoundError) as missing:
        os.stat(root / "missing")
    assert missing.value.filename == str(root / "missing")
    monkeypatch.chdir(root.parent.parent.parent)  # "/": a relative path reaches the root
    relative = os.path.relpath(root / "missing", "/")
    with pytest.raises(FileNotFoundError) as relative_missing:
        open(relative)  # noqa: SIM115  (raises)
    assert relative_missing.value.filename == relative
    with pytest.raises(FileExistsError) as exists:
        os.mkdir(root)
    assert exists.value.errno == errno.EEXIST and exists.value.filename == str(root)
    (root / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        os.stat(f"{root}/f/")
    with pytest.raises(OSError) as bad_fd:
        os.read(SIM_FD_BASE + 12345, 1)
    assert bad_fd.value.errno == errno.EBADF and bad_fd.value.filename is None
    with pytest.raises(FileNotFoundError) as renamed:
        os.rename(root / "nope", root / "other")
    assert (renamed.value.filename, renamed.value.filename2) == (str(root / "nope"), str(root / "other"))


def test_dir_fd_calls(active: tuple[Interposition, Path]) -> None:
    _interposition, root = active
    os.mkdir(root / "d")
    directory = os.open(root / "d", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = os.open("f", os.O_WRONLY | os.O_CREAT, dir_fd=directory)
        os.write(fd, b"abc")
        os.close(fd)
        assert os.stat("f", dir_fd=directory).st_size == 3
        assert os.listdir(directory) == ["f"]
        with os.scandir(directory) as entries:
            assert [(entry.name, entry.path, entry.stat().st_size) for entry in entries] == [("f", "f", 3)]
        os.rename("f", "g", src_dir_fd=directory, dst_dir_fd=directory)
        with open("g", "rb", opener=lambda name, flags: os.open(name, flags, dir_fd=directory)) as stream:
            assert (stream.read(), stream.name) == (b"abc", "g")
        os.unlink("g", dir_fd=directory)
        os.fsync(directory)
    finally:
        os.close(directory)
    assert os.listdir(root / "d") == []


def test_bytes_paths(active: tuple[Interposition, Path]) -> None:
    _interposition, root = active
    broot = os.fsencode(root)
    with open(broot + b"/x", "wb") as stream:
        stream.write(b"1")
        assert stream.name == broot + b"/x"
    assert os.listdir(broot) == [b"x"]
    with os.scandir(broot) as entries:
        assert [(entry.name, entry.path) for entry in entries] == [(b"x", broot + b"/x")]
    assert list(os.walk(broot)) == [(broot, [], [b"x"])]
    assert os.path.exists(broot + b"/x")


@pytest.mark.parametrize(
    "call",
    [
        lambda root: open(root / "a\0b", "x+"),  # noqa: SIM115 (it raises before opening)
        lambda root: os.rmdir(f"{root}/a\0b"),
        lambda root: os.replace(f"{root}/a\0b", root / "c"),
        lambda root: os.stat(os.fsencode(root) + b"/a\0b"),
    ],
)
def test_an_embedded_null_byte_is_refused_as_cpython_does(
    call: Callable[[Path], object], active: tuple[Interposition, Path]
) -> None:
    """CPython's path converter raises ValueError before any system call, with its own
    message (findings F8, F10): the real call gets such a path and refuses it."""
    _interposition, root = active
    with pytest.raises(ValueError, match=r"embedded null (byte|character in (path|src))"):
        call(root)
    assert not (root / "a\0b").exists()  # pathlib's exists() swallows that ValueError, as on a real disk
    assert os.listdir(root) == []


def test_the_roots_top_directory_never_reaches_the_real_disk(active: tuple[Interposition, Path]) -> None:
    """A path beside the root (a lock file next to the data, `root.parent / "x"`) is the
    view's too: its ancestors are directories, nothing else is there, and creating
    anything there is refused (helper review: such a file was written to the real disk)."""
    _interposition, root = active
    top = Path("/" + root.parts[1])
    assert root.parent.is_dir() and top.is_dir() and not (root.parent / "lock").exists()
    for call in (
        lambda: (root.parent / "lock").write_text("x"),
        lambda: os.mkdir(top / "sibling"),
        lambda: os.listdir(root.parent),
        lambda: os.replace(root / "missing", root.parent / "moved"),
    ):
        with pytest.raises(UnmodelledCall, match="outside the simulated root"):
            call()
    with pytest.raises(FileNotFoundError):  # the real disk, asked directly
        interpose_module._REAL["lstat"](str(top))


def test_os_sync_makes_the_simulated_disk_durable(active: tuple[Interposition, Path]) -> None:
    """os.sync takes no path, so no router saw it (review: it made nothing durable)."""
    interposition, root = active
    interposition.view.recording = recording = Recording([], [], interposition.view.tree.image())
    (root / "f").write_text("x")
    os.sync()
    synced = {op.inode for op in recording.ops if isinstance(op, Sync)}
    created = [op for op in recording.ops if isinstance(op, Create)]
    assert created and {created[0].inode, created[0].parent} <= synced


def test_unknown_and_cross_device(active: tuple[Interposition, Path], tmp_path: Path) -> None:
    _interposition, root = active
    (tmp_path / "real").write_text("real")
    with pytest.raises(OSError) as cross:
        os.rename(tmp_path / "real", root / "moved")
    assert cross.value.errno == errno.EXDEV
    shutil.move(str(tmp_path / "real"), str(root / "moved"))  # falls back to copy + unlink
    assert (root / "moved").read_text() == "real" and not (tmp_path / "real").exists()


# -- open, pathlib, shutil, tempfile, fcntl -----------------------------------------------------------

_MODES: list[tuple[str, dict[str, Any]]] = [
    ("w", {}),
    ("w", {"newline": "\r\n"}),
    ("w", {"encoding": "utf-16"}),
    ("w", {"encoding": "ascii", "errors": "replace"}),
    ("w", {"buffering": 1}),
    ("wb", {"buffering": 0}),
    ("wb", {"buffering": 3}),
    ("a", {}),
    ("ab+", {}),
    ("r+", {}),
    ("w+", {}),
    ("x", {}),
    ("rb", {}),
    ("r", {"newline": ""}),
]


def _open_scenario(base: Path, mode: str, options: dict[str, Any]) -> list[object]:
    """What one mode does to a file holding "line one\\nline two\\n" (or to no file for "x")."""
    path = base / "file.txt"
    if "x" not in mode:
        path.write_bytes(b"line one\r\nline two\n")
    seen: list[object] = []
    with open(path, mode, **options) as stream:
        kind = "FileIO" if isinstance(stream, SimRawIO) else type(stream).__name__  # the raw file's twin
        seen.append((stream.mode, kind, stream.readable(), stream.writable()))
        if stream.readable():
            seen.append(stream.read())
            stream.seek(0)
        if stream.writable():
            seen.append(stream.write(b"caf\xc3\xa9\n" if "b" in mode else "café\n"))
            seen.append(stream.tell())
    seen.append(path.read_bytes())
    return seen


@pytest.mark.parametrize(("mode", "options"), _MODES)
def test_open_matches_the_real_open(mode: str, options: dict[str, Any], tmp_path: Path, view: PosixView) -> None:
    expected = _open_scenario(tmp_path, mode, options)
    with interpose(view):
        assert _open_scenario(Path(view.root), mode, options) == expected


def test_open_details(active: tuple[Interposition, Path]) -> None:
    _interposition, root = active
    with open(root / "t.txt", "w", buffering=1) as stream:
        stream.write("a\n")  # line buffered: reaches the view at once
        assert (root / "t.txt").read_text() == "a\n"
        assert stream.line_buffering
    with open(root / "t.txt", "rb", buffering=0) as raw:
        assert isinstance(raw, SimRawIO) and raw.mode == "rb" and raw.read() == b"a\n"
    fd = os.open(root / "t.txt", os.O_RDONLY)
    with os.fdopen(fd) as stream:
        assert (stream.read(), stream.name) == ("a\n", fd)
    fd = os.open(root / "t.txt", os.O_RDONLY)
    with open(fd, "rb", closefd=False) as stream:
        assert stream.read() == b"a\n"
    os.close(fd)
    with pytest.raises(FileExistsError):
        open(root / "t.txt", "x")  # noqa: SIM115  (raises)
    with pytest.raises(IsADirectoryError):
        open(root)  # noqa: SIM115  (raises)
    with pytest.raises(ValueError, match="closefd"):
        open(root / "t.txt", closefd=False)  # noqa: SIM115  (raises)
    with pytest.raises(ValueError, match="text and binary"):
        open(root / "t.txt", "rbt")  # noqa: SIM115  (raises)
    with io.open(root / "t.txt", "rb") as stream:  # noqa: UP020  (io.open is patched too)
        assert stream.read() == b"a\n"


def test_sim_open_without_interposition(view: PosixView) -> None:
    with sim_open(view.root + "/direct.txt", "w", view=view) as stream:
        stream.write("direct")
    assert _files(view) == {"direct.txt": b"direct"}
    assert not os.path.lexists(view.root)


def test_pathlib(active: tuple[Interposition, Path]) -> None:
    _interposition, root = active
    (root / "p" / "q").mkdir(parents=True)
    (root / "p" / "q").mkdir(parents=True, exist_ok=True)
    (root / "p" / "a.txt").write_text("text")
    (root / "p" / "q" / "b.txt").write_bytes(b"bytes")
    assert (root / "p" / "a.txt").read_text() == "text"
    assert (root / "p" / "q" / "b.txt").read_bytes() == b"bytes"
    assert sorted(path.name for path in (root / "p").iterdir()) == ["a.txt", "q"]
    assert [path.name for path in (root / "p").glob("*.txt")] == ["a.txt"]
    assert sorted(path.name for path in root.rglob("*.txt")) == ["a.txt", "b.txt"]
    assert (root / "p").is_dir() and (root / "p" / "a.txt").is_file() and (root / "p" / "a.txt").exists()
    assert (root / "p" / "a.txt").stat().st_size == 4
    moved = (root / "p" / "a.txt").rename(root / "p" / "c.txt")
    (root / "p" / "q" / "b.txt").replace(root / "p" / "c.txt")
    assert moved.read_bytes() == b"bytes"
    with moved.open("a") as stream:
        stream.write("!")
    moved.touch()
    moved.unlink()
    assert not moved.exists()
    assert (root / "p").resolve() == root / "p"


def test_shutil(active: tuple[Interposition, Path], tmp_path: Path) -> None:
    interposition, root = active
    (root / "src").mkdir()
    (root / "src" / "f").write_bytes(b"x" * 10_000)
    (root / "src" / "sub").mkdir()
    (root / "src" / "sub" / "g").write_text("g")
    shutil.copyfile(root / "src" / "f", root / "copyfile")
    shutil.copy(root / "src" / "f", root / "copy")
    shutil.copy2(root / "src" / "f", root / "copy2")
    shutil.copytree(root / "src", root / "tree")
    shutil.move(str(root / "copy"), str(root / "tree" / "moved"))
    (tmp_path / "real.bin").write_bytes(b"real")
    shutil.copyfile(tmp_path / "real.bin", root / "from_real")  # sendfile from a real descriptor
    shutil.copy2(root / "src" / "f", tmp_path / "to_real")  # and to a real one
    assert (tmp_path / "to_real").read_bytes() == b"x" * 10_000
    assert os.stat(root / "copy2").st_mtime_ns == os.stat(root / "src" / "f").st_mtime_ns  # copystat
    shutil.rmtree(root / "src")
    files = _files(interposition.view)
    assert files == {
        "copy2": b"x" * 10_000,
        "copyfile": b"x" * 10_000,
        "from_real": b"real",
        "tree/f": b"x" * 10_000,
        "tree/moved": b"x" * 10_000,
        "tree/sub/g": b"g",
    }


def test_tempfile(active: tuple[Interposition, Path]) -> None:
    interposition, root = active
    fd, name = tempfile.mkstemp(dir=root, suffix=".tmp")
    os.write(fd, b"1")
    os.close(fd)
    with tempfile.NamedTemporaryFile(dir=root) as named:
        named.write(b"2")
        named.flush()
        assert os.path.getsize(named.name) == 1
    assert not os.path.exists(named.name)
    with tempfile.NamedTemporaryFile("w", dir=root, delete=False) as kept:
        kept.write("3")
    with tempfile.TemporaryFile(dir=root) as anonymous:
        anonymous.write(b"4")
        anonymous.seek(0)
        assert anonymous.read() == b"4"
    with tempfile.TemporaryDirectory(dir=root) as directory:
        (Path(directory) / "inner").write_text("5")
    assert not os.path.exists(directory)
    assert sorted(_files(interposition.view)) == sorted(os.path.basename(path) for path in (name, kept.name))


def _tempfile_names(view: PosixView) -> list[str]:
    with interpose(view):
        names = []
        for _ in range(3):
            fd, name = tempfile.mkstemp(dir=view.root)
            os.close(fd)
            names.append(name[len(view.root) :])
        names.append(tempfile.mkdtemp(dir=view.root)[len(view.root) :])
        return names


def test_tempfile_names_are_deterministic() -> None:
    saved = tempfile.__dict__.get("_name_sequence")
    first = _tempfile_names(PosixView(_new_root()))
    assert first == _tempfile_names(PosixView(_new_root()))
    assert len(set(first)) == 4
    assert tempfile.__dict__.get("_name_sequence") is saved


def test_fcntl(active: tuple[Interposition, Path]) -> None:
    _interposition, root = active
    with open(root / "lock", "wb") as first, open(root / "lock", "rb") as second:
        fcntl.flock(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            fcntl.flock(second.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(first, fcntl.LOCK_UN)
        fcntl.flock(second, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.lockf(first, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(first, fcntl.LOCK_UN)
        first.write(b"data")
        first.flush()
        assert fcntl.fcntl(first.fileno(), 51) == 0  # F_FULLFSYNC: an fsync
        assert fcntl.fcntl(first, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY


def test_dbm_dumb_and_shelve(active: tuple[Interposition, Path]) -> None:
    interposition, root = active
    with dbm.dumb.open(str(root / "db"), "c") as database:
        database[b"key"] = b"value"
    with dbm.dumb.open(str(root / "db"), "r") as database:
        assert database[b"key"] == b"value"
    writable = cast("MutableMapping[bytes, bytes]", dbm.dumb.open(str(root / "shelf"), "c"))  # noqa: SIM115  (the shelf closes it)
    with shelve.Shelf[Any](writable) as shelf:
        shelf["list"] = [1, 2, 3]
    readable = cast("MutableMapping[bytes, bytes]", dbm.dumb.open(str(root / "shelf"), "r"))  # noqa: SIM115  (the shelf closes it)
    with shelve.Shelf[Any](readable) as shelf:
        assert shelf["list"] == [1, 2, 3]
    assert {"db.dat", "db.dir", "shelf.dat", "shelf.dir"} <= set(_files(interposition.view))


# -- unmodelled calls, real paths, swapping ---------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda root: os.link(root / "f", root / "g"),
        lambda root: os.symlink(root / "f", root / "g"),
        lambda root: os.readlink(root / "f"),
        lambda root: os.chdir(root),
        lambda root: os.statvfs(root),
        lambda root: os.chown(root / "f", 0, 0),
        lambda root: os.getxattr(root / "f", "user.x"),
    ],
)
def test_unmodelled_path_calls_raise(call: Callable[[Path], object], active: tuple[Interposition, Path]) -> None:
    _interposition, root = active
    (root / "f").write_text("x")
    with pytest.raises(UnmodelledCall):
        call(root)


def test_unmodelled_descriptor_calls_raise(active: tuple[Interposition, Path]) -> None:
    _interposition, root = active
    with open(root / "f", "wb+") as stream:
        stream.write(b"x" * 4096)
        stream.flush()
        with pytest.raises(UnmodelledCall, match=r"mmap\.mmap"):
            mmap.mmap(stream.fileno(), 0)
        for call in (
            lambda: os.posix_fallocate(stream.fileno(), 0, 10),
            lambda: os.dup2(stream.fileno(), 100),
            lambda: os.writev(stream.fileno(), [b"x"]),
            lambda: fcntl.ioctl(stream, 0),
        ):
            with pytest.raises(UnmodelledCall):
                call()
    anonymous = mmap.mmap(-1, 16)  # a real map still works
    anonymous.close()


def test_real_paths_pass_through(active: tuple[Interposition, Path], tmp_path: Path) -> None:
    _interposition, _root = active
    (tmp_path / "real.txt").write_text("on the real disk")
    os.link(tmp_path / "real.txt", tmp_path / "hard")
    with tempfile.NamedTemporaryFile(dir=tmp_path, delete=False) as named:
        named.write(b"real temp")
    fd = os.open(tmp_path / "raw", os.O_WRONLY | os.O_CREAT)
    assert fd < SIM_FD_BASE
    os.write(fd, b"raw")
    os.close(fd)
    importlib.invalidate_caches()
    import json  # noqa: F401  (imports still work)

    real_files = {"real.txt": "on the real disk", "hard": "on the real disk", "raw": "raw"}
    for name, content in real_files.items():
        assert (tmp_path / name).read_text() == content


def test_real_files_survive_exit(view: PosixView, tmp_path: Path) -> None:
    with interpose(view):
        (tmp_path / "written.txt").write_text("real")
    with builtins.open(tmp_path / "written.txt") as stream:  # the real open, after exit
        assert stream.read() == "real"
    assert _files(view) == {}


def test_view_can_be_swapped(view: PosixView) -> None:
    other = PosixView(view.root)
    with interpose(view) as interposition:
        Path(view.root, "first").write_text("1")
        interposition.view = other
        assert not Path(view.root, "first").exists()
        Path(view.root, "second").write_text("2")
    assert _files(view) == {"first": b"1"} and _files(other) == {"second": b"2"}


def test_refusals(view: PosixView, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exists on the real disk"), interpose(PosixView(str(tmp_path))):
        pass
    with interpose(view), pytest.raises(RuntimeError, match="already active"), interpose(PosixView(_new_root())):
        pass
    assert os.open is interpose_module._REAL["open"]


# -- aliases ----------------------------------------------------------------------------------------------

_ALIAS_SOURCE = """
import os
from os import replace
from os import stat as captured_stat
opener = open

class Store:
    _replace = os.replace
    _static = staticmethod(os.stat)

    def save(self, path, unlink=os.unlink):
        with opener(path + ".tmp", "w") as stream:
            stream.write("saved")
        self._replace(path + ".tmp", path)
        return captured_stat(path).st_size, unlink
"""


def _write_module(directory: Path, name: str) -> None:
    (directory / f"{name}.py").write_text(_ALIAS_SOURCE)


def _check_aliases(module: Any, root: str) -> None:
    size, unlink = module.Store().save(root + "/saved")
    assert size == 5
    assert module.replace(root + "/saved", root + "/again") is None
    assert module.Store._static(root + "/again").st_size == 5
    unlink(root + "/again")


def _assert_restored(module: Any) -> None:
    real = interpose_module._REAL
    assert module.replace is real["replace"] and module.captured_stat is real["stat"]
    assert module.opener is real["io.open"]
    assert module.Store.__dict__["_replace"] is real["replace"]
    assert module.Store.__dict__["_static"].__func__ is real["stat"]
    assert module.Store.save.__defaults__ == (real["unlink"],)


def test_aliases_before_and_during(view: PosixView, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    stem = f"interpose_alias_{next(_roots)}"
    _write_module(tmp_path, f"{stem}_before")
    _write_module(tmp_path, f"{stem}_during")
    before = importlib.import_module(f"{stem}_before")
    try:
        with interpose(view):
            _check_aliases(before, view.root)
            during = importlib.import_module(f"{stem}_during")
            _check_aliases(during, view.root)
        _assert_restored(before)
        _assert_restored(during)
    finally:
        for name in (f"{stem}_before", f"{stem}_during"):
            sys.modules.pop(name, None)


def test_exit_restores_everything(view: PosixView) -> None:
    patched = [(os, "open"), (posix, "open"), (os, "stat"), (os, "link"), (io, "open"), (builtins, "open")]
    patched += [(fcntl, "flock"), (mmap, "mmap"), (os, "scandir"), (pathlib.os, "replace")]  # type: ignore[attr-defined]
    before = {(module.__name__, name): getattr(module, name) for module, name in patched}
    supports = (set(os.supports_fd), set(os.supports_dir_fd), set(os.supports_follow_symlinks))
    meta_path = list(sys.meta_path)
    defaults = tempfile._TemporaryFileCloser.close.__defaults__  # type: ignore[attr-defined]
    with interpose(view):
        assert os.open is not before[("os", "open")] and builtins.open is io.open
        assert tempfile._TemporaryFileCloser.close.__defaults__ != defaults  # type: ignore[attr-defined]
        assert os.stat in os.supports_dir_fd
    assert {(module.__name__, name): getattr(module, name) for module, name in patched} == before
    for key, value in before.items():
        assert getattr(sys.modules[key[0]], key[1]) is value
    assert (set(os.supports_fd), set(os.supports_dir_fd), set(os.supports_follow_symlinks)) == supports
    assert sys.meta_path == meta_path
    assert tempfile._TemporaryFileCloser.close.__defaults__ == defaults  # type: ignore[attr-defined]


def test_pass_through_is_cheap(active: tuple[Interposition, Path], tmp_path: Path) -> None:
    """A routed call on a real path costs one substring test more than the real call;
    only its correctness is asserted here (timings are not stable on shared machines)."""
    _interposition, _root = active
    for _ in range(100):
        assert os.stat(tmp_path).st_ino == os.lstat(tmp_path).st_ino
