"""File objects and directory entries over a `PosixView`: the twins of `io.open` and `os.scandir`.

`sim_open` builds the same stack `io.open` builds (a raw file, a buffer, a text wrapper)
over `SimRawIO`, a raw file whose every call goes to the view's descriptor table, so
buffering, newline translation and encodings are the standard library's own code.
`sim_scandir` returns an iterator of `SimDirEntry` objects that behave like
`os.DirEntry` (the simulated disk has no symbolic links, so `is_symlink()` is False).

What is deliberately not copied from the real objects: an unclosed `SimRawIO` does not
emit `ResourceWarning` when collected (it still closes its descriptor), and a
`SimDirEntry` is not an instance of `os.DirEntry` (that type cannot be subclassed);
code that tests `isinstance(entry, os.DirEntry)` falls back to `os.stat(entry)`, which
works through the entry's `__fspath__`.

Closing a file makes nothing durable: `close()` is not `fsync` (persistence rule 3 in
`ops.py`).
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import stat
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, cast

from .errors import UnmodelledCall

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

    from .view import PosixView

Opener = Callable[[Any, int], int]

# What `st_blksize` reports when the view's `stat_result` leaves it out: ext4's block
# size, so buffered writes are cut into the chunks they would be on a usual Linux disk.
SIMULATED_BLOCK_SIZE_BYTES = 4096

_real_getcwd = os.getcwd
_real_close = os.close


def resolve_path(path: str | bytes) -> str:
    """The absolute, normalized form of `path`, relative paths taken from the real
    working directory (the simulated root never contains it)."""
    text = os.fsdecode(path) if isinstance(path, bytes) else path
    if not text.startswith("/"):
        text = f"{_real_getcwd()}/{text}"
    normalized = posixpath.normpath(text)
    if normalized.startswith("//"):  # POSIX may treat "//" specially; Linux does not
        normalized = "/" + normalized.lstrip("/")
    return normalized


def simulated_path(view: PosixView, path: str | bytes) -> str | None:
    """The absolute path to hand `view` for `path` (relative paths are taken from the
    real working directory), or None when it is not the view's root or under it.

    The path goes to the view as written when it starts with the root and no ".."
    climbs above the root, so the view walks every component itself as the kernel
    does ("a/.." is ENOENT when "a" is missing; "file/" is ENOTDIR); otherwise it is
    normalized first, keeping a trailing "/"."""
    text = os.fsdecode(path) if isinstance(path, bytes) else path
    absolute = text if text.startswith("/") else f"{_real_getcwd()}/{text}"
    if view.owns_path(absolute) and ("/.." not in absolute or _stays_below_root(absolute[len(view.root) :])):
        return _without_null(absolute)
    normalized = resolve_path(absolute)
    if not view.owns_path(normalized):
        return normalized if view.reserves_path(normalized) else None  # the view refuses it
    return _without_null(normalized + "/" if absolute.endswith("/") and not normalized.endswith("/") else normalized)


def _without_null(path: str) -> str | None:
    """None for a path with a NUL in it: the real function gets it and refuses it in its
    argument conversion, before any system call, with CPython's own message (which
    depends on the argument's type and name: "embedded null byte", "rename: embedded
    null character in dst", ...)."""
    return None if "\0" in path else path


def _stays_below_root(rest: str) -> bool:
    """Whether the components after the root ("/a/../b") never climb above it."""
    depth = 0
    for component in rest.split("/"):
        if component == "..":
            depth -= 1
            if depth < 0:
                return False
        elif component not in ("", "."):
            depth += 1
    return True


@dataclass(frozen=True)
class _RawMode:
    """What a raw mode string ("r", "w+", "x", ...) asks for, and its `os.open` flags."""

    readable: bool
    writable: bool
    created: bool
    appending: bool
    truncating: bool

    @classmethod
    def parse(cls, mode: str) -> _RawMode:
        """Raises ValueError for what `io.FileIO` rejects."""
        if not set(mode) <= set("xrwab+") or len(set(mode)) != len(mode):
            raise ValueError(f"invalid mode: {mode}")
        if sum(letter in "rwax" for letter in mode) != 1:
            raise ValueError("Must have exactly one of create/read/write/append mode and at most one plus")
        updating = "+" in mode
        return cls(
            readable="r" in mode or updating,
            writable="r" not in mode or updating,
            created="x" in mode,
            appending="a" in mode,
            truncating="w" in mode,
        )

    def flags(self) -> int:
        """The flags `io.FileIO` passes to `os.open` (or to an opener) for this mode."""
        flags = os.O_CLOEXEC
        if self.created:
            flags |= os.O_EXCL | os.O_CREAT
        elif self.truncating:
            flags |= os.O_CREAT | os.O_TRUNC
        elif self.appending:
            flags |= os.O_APPEND | os.O_CREAT
        if self.readable and self.writable:
            return flags | os.O_RDWR
        return flags | (os.O_RDONLY if self.readable else os.O_WRONLY)

    def name(self) -> str:
        """`FileIO.mode`: "rb", "rb+", "wb", "ab", "ab+", "xb", "xb+"."""
        plus = "+" if self.readable and self.writable else ""
        if self.created:
            return "xb" + ("+" if self.readable else "")
        if self.appending:
            return "ab" + ("+" if self.readable else "")
        if self.readable:
            return "rb" + plus
        return "wb"


class SimRawIO(io.RawIOBase):
    """A raw binary file (the twin of `io.FileIO`) over a simulated descriptor.

    `file` is a simulated descriptor or a path the view owns (str or bytes; relative
    paths are taken from the real working directory). Every read, write, seek and
    truncate is one call on the view, so the recording sees what a real program's
    system calls would be. Raises what `io.FileIO` raises: OSError from the view
    (with `filename` set to `file`), IsADirectoryError for a directory, ValueError
    for a bad mode or `closefd=False` with a path.
    """

    name: Any

    def __init__(
        self,
        file: int | str | bytes,
        mode: str = "r",
        closefd: bool = True,
        opener: Opener | None = None,
        *,
        view: PosixView,
    ) -> None:
        super().__init__()
        self._view = view
        self._fd = -1
        self._closefd = closefd
        self._mode = _RawMode.parse(mode)
        owned = not isinstance(file, int)
        fd = self._open(file, opener) if owned else cast(int, file)
        if fd < 0:
            raise ValueError("negative file descriptor")
        try:
            status = view.fstat(fd)
            if stat.S_ISDIR(status.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), file)
            block_size = getattr(status, "st_blksize", None)
            self._block_size = block_size if isinstance(block_size, int) and block_size > 1 else 0
            if not self._block_size:
                self._block_size = SIMULATED_BLOCK_SIZE_BYTES
            if self._mode.appending:
                view.lseek(fd, 0, os.SEEK_END)
        except BaseException:
            if owned:
                view.close(fd)
            raise
        self.name = file
        self._fd = fd

    def _open(self, file: int | str | bytes, opener: Opener | None) -> int:
        """The descriptor for a path: the view's `open`, or the caller's opener."""
        if not self._closefd:
            raise ValueError("Cannot use closefd=False with file name")
        flags = self._mode.flags()
        if opener is None:
            try:
                return self._view.open(self._target(cast("str | bytes", file)), flags, 0o666)
            except OSError as error:
                error.filename = file
                raise
        fd = opener(file, flags)
        if not isinstance(fd, int):
            raise TypeError("expected integer from opener")
        if fd < 0:
            raise OSError("Negative file descriptor")
        if not self._view.owns_fd(fd):
            _real_close(fd)
            raise UnmodelledCall("open", "the opener returned a real descriptor for a simulated path")
        return fd

    def _target(self, file: str | bytes) -> str:
        """The view's path for `file`; UnmodelledCall when it is outside the root."""
        target = simulated_path(self._view, file)
        if target is None:
            raise UnmodelledCall("open", f"{file!r} is outside the simulated root {self._view.root!r}")
        return target

    def __repr__(self) -> str:
        if self.closed:
            return "<SimRawIO [closed]>"
        return f"<SimRawIO name={self.name!r} mode={self.mode!r} closefd={self._closefd!r}>"

    @property
    def mode(self) -> str:
        return self._mode.name()

    @property
    def closefd(self) -> bool:
        return self._closefd

    @property
    def block_size_bytes(self) -> int:
        """The buffer size `sim_open` uses by default (`st_blksize`)."""
        return self._block_size

    def _require_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _require_readable(self) -> None:
        self._require_open()
        if not self._mode.readable:
            raise io.UnsupportedOperation("File not open for reading")

    def _require_writable(self) -> None:
        self._require_open()
        if not self._mode.writable:
            raise io.UnsupportedOperation("File not open for writing")

    def read(self, size: int | None = -1, /) -> bytes:
        self._require_readable()
        if size is None or size < 0:
            return self.readall()
        return self._view.read(self._fd, size)

    def readall(self) -> bytes:
        self._require_readable()
        chunks: list[bytes] = []
        while True:
            position = self._view.lseek(self._fd, 0, os.SEEK_CUR)
            remaining = self._view.fstat(self._fd).st_size - position
            chunk = self._view.read(self._fd, max(remaining, io.DEFAULT_BUFFER_SIZE))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        self._require_readable()
        view = memoryview(buffer).cast("B")
        data = self._view.read(self._fd, len(view))
        view[: len(data)] = data
        return len(data)

    def write(self, data: ReadableBuffer, /) -> int:
        self._require_writable()
        # A copy: a buffered writer's memoryview is only valid during this call.
        return self._view.write(self._fd, bytes(data))

    def seek(self, position: int, whence: int = os.SEEK_SET, /) -> int:
        if isinstance(position, float):
            raise TypeError("an integer is required")
        self._require_open()
        return self._view.lseek(self._fd, position, whence)

    def tell(self) -> int:
        self._require_open()
        return self._view.lseek(self._fd, 0, os.SEEK_CUR)

    def truncate(self, size: int | None = None, /) -> int:
        self._require_writable()
        if size is None:
            size = self.tell()
        self._view.ftruncate(self._fd, size)
        return size

    def close(self) -> None:
        """Close the descriptor (when `closefd`); makes nothing durable."""
        if self.closed:
            return
        try:
            if self._closefd and self._fd >= 0:
                self._view.close(self._fd)
        finally:
            super().close()

    def fileno(self) -> int:
        self._require_open()
        return self._fd

    def isatty(self) -> bool:
        self._require_open()
        return False

    def readable(self) -> bool:
        self._require_open()
        return self._mode.readable

    def writable(self) -> bool:
        self._require_open()
        return self._mode.writable

    def seekable(self) -> bool:
        self._require_open()
        return True

    def __getstate__(self) -> object:
        raise TypeError(f"cannot pickle {type(self).__name__!r} object")


@dataclass(frozen=True)
class _OpenMode:
    """A parsed `open()` mode: the raw file's mode and which wrappers go on top."""

    raw: str
    binary: bool
    updating: bool
    reading: bool

    @classmethod
    def parse(cls, mode: str, encoding: str | None, errors: str | None, newline: str | None) -> _OpenMode:
        """Raises the ValueError `io.open` raises for the same arguments."""
        letters = set(mode)
        if letters - set("axrwb+t") or len(mode) > len(letters):
            raise ValueError(f"invalid mode: {mode!r}")
        creating, reading, writing, appending = ("x" in letters, "r" in letters, "w" in letters, "a" in letters)
        binary = "b" in letters
        if "t" in letters and binary:
            raise ValueError("can't have text and binary mode at once")
        if creating + reading + writing + appending > 1:
            raise ValueError("must have exactly one of create/read/write/append mode")
        if not (creating or reading or writing or appending):
            raise ValueError("Must have exactly one of create/read/write/append mode and at most one plus")
        for value, what in ((encoding, "an encoding"), (errors, "an errors"), (newline, "a newline")):
            if binary and value is not None:
                raise ValueError(f"binary mode doesn't take {what} argument")
        raw = "".join(letter for letter in "xrwa" if letter in letters) + ("+" if "+" in letters else "")
        return cls(raw=raw, binary=binary, updating="+" in letters, reading=reading)


def sim_open(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Opener | None = None,
    *,
    view: PosixView,
) -> IO[Any]:
    """Open `file` (a simulated descriptor, or a str/bytes/PathLike path the view owns)
    on the simulated disk, as `io.open` would: the same arguments, the same wrappers,
    the same errors (OSError with the errno Linux gives, ValueError/TypeError for bad
    arguments)."""
    if not isinstance(file, int):
        file = os.fspath(file)
    if not isinstance(file, str | bytes | int):
        raise TypeError(f"invalid file: {file!r}")
    if not isinstance(mode, str):
        raise TypeError(f"invalid mode: {mode!r}")
    if not isinstance(buffering, int):
        raise TypeError(f"invalid buffering: {buffering!r}")
    parsed = _OpenMode.parse(mode, encoding, errors, newline)
    if parsed.binary and buffering == 1:
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, the default buffer size will be used",
            RuntimeWarning,
            stacklevel=2,
        )
    raw = SimRawIO(file, parsed.raw, closefd, opener, view=view)
    try:
        return _wrap(raw, parsed, mode, buffering, encoding, errors, newline)
    except BaseException:
        raw.close()
        raise


def _wrap(
    raw: SimRawIO,
    parsed: _OpenMode,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
) -> IO[Any]:
    """The buffer and text layers `io.open` puts over a raw file."""
    line_buffering = buffering == 1
    if buffering < 0 or buffering == 1:
        buffering = raw.block_size_bytes
    if buffering == 0:
        if parsed.binary:
            return cast(IO[Any], raw)
        raise ValueError("can't have unbuffered text I/O")
    buffer: io.BufferedIOBase
    if parsed.updating:
        buffer = io.BufferedRandom(raw, buffering)
    elif not parsed.reading:
        buffer = io.BufferedWriter(raw, buffering)
    else:
        buffer = io.BufferedReader(raw, buffering)
    if parsed.binary:
        return cast(IO[Any], buffer)
    text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
    text.mode = mode  # type: ignore[misc]  # io.open sets it too; typeshed calls it read-only
    return text


class SimDirEntry:
    """One entry of a simulated directory listing, like `os.DirEntry`.

    `name` and `path` are str or bytes as the listed path was; `path` joins the listed
    path as the caller gave it (or is the bare name when a descriptor was listed).
    `is_dir`, `is_file`, `is_symlink` and `inode` need no call (as `d_type` makes them
    free on Linux); `stat()` asks the view once and caches, raising its OSError.
    """

    __slots__ = ("_dir_fd", "_inode", "_is_dir", "_stat", "_target", "_view", "name", "path")

    def __init__(
        self,
        view: PosixView,
        name: str | bytes,
        path: str | bytes,
        inode: int,
        is_dir: bool,
        target: str,
        dir_fd: int | None,
    ) -> None:
        self._view = view
        self.name = name
        self.path = path
        self._inode = inode
        self._is_dir = is_dir
        self._target = target
        self._dir_fd = dir_fd
        self._stat: os.stat_result | None = None

    def inode(self) -> int:
        return self._inode

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._is_dir

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return not self._is_dir

    def is_symlink(self) -> bool:
        return False

    def is_junction(self) -> bool:
        return False

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """The entry's status (the same with or without following: no symlinks)."""
        if self._stat is None:
            try:
                self._stat = self._view.stat(self._target, dir_fd=self._dir_fd, follow_symlinks=follow_symlinks)
            except OSError as error:
                error.filename = self.path
                raise
        return self._stat

    def __fspath__(self) -> Any:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class SimScandirIterator:
    """The iterator `os.scandir` returns, over a listing taken when it was made; also a
    context manager. After `close()` it yields nothing more."""

    def __init__(self, entries: list[SimDirEntry]) -> None:
        self._entries: Iterator[SimDirEntry] | None = iter(entries)

    def __iter__(self) -> SimScandirIterator:
        return self

    def __next__(self) -> SimDirEntry:
        if self._entries is None:
            raise StopIteration
        return next(self._entries)

    def close(self) -> None:
        self._entries = None

    def __enter__(self) -> SimScandirIterator:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def sim_scandir(view: PosixView, target: str | int, shown: str | bytes | None) -> SimScandirIterator:
    """`os.scandir` on the simulated disk. `target` is the view's absolute path or a
    simulated directory descriptor; `shown` is the path as the caller passed it
    (after `os.fspath`), None for a descriptor. Raises the view's OSError (with the
    caller's path as `filename`)."""
    try:
        listing = view.scandir_entries(target)
    except OSError as error:
        if shown is not None:  # a descriptor's errors are the view's (Linux's) own
            error.filename = shown
        raise
    as_bytes = isinstance(shown, bytes)
    entries = []
    for name, inode, is_dir in listing:
        shown_name: str | bytes = os.fsencode(name) if as_bytes else name
        if shown is None:
            shown_path: str | bytes = shown_name
        else:
            shown_path = os.path.join(shown, shown_name)  # type: ignore[arg-type]
        if isinstance(target, int):
            entries.append(SimDirEntry(view, shown_name, shown_path, inode, is_dir, name, target))
        else:
            entries.append(SimDirEntry(view, shown_name, shown_path, inode, is_dir, f"{target}/{name}", None))
    return SimScandirIterator(entries)
