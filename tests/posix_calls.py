"""The call vocabulary of the POSIX differential conformance test (issue 9, point 2).

A `Call` is one file-system call a program can make (`os.open`, `os.replace`,
`open(...).write`, `pathlib.Path.glob`, `shutil.rmtree`, `tempfile.mkstemp`, ...) as
plain data, so hypothesis can generate, print and shrink sequences of them. `World.run`
performs a sequence with the plain standard-library functions against one root
directory and returns what a program could observe. The test runs the same code against
a real temporary directory and against the simulated root (under `interpose`) and
requires the two observations to be equal.

What is compared:
- return values: bytes and strings read, counts written, offsets, booleans, sorted
  listings, `walk` and `glob` results, returned paths (with the root replaced by
  "<root>");
- of a stat result: the file type and permission bits of `st_mode`, and `st_size` and
  `st_nlink` of regular files;
- of an exception: its type name, errno and message (the root replaced by "<root>");
- after the last call, the whole tree: every path, its kind, mode and content.

What is deliberately not compared: times, inode numbers, `st_dev`, the size and link
count of directories (ext4 reports 4096, tmpfs counts entries), descriptor numbers (a
descriptor is named by its slot; a number CPython puts in an error's filename reads as
"<fd>"), seeks in a directory other than to its start (ext4 gives hash cookies, tmpfs
entry counts), and the random part of temporary names (tempfile's "tmp" and 8 random
characters read as "<tmp>"). A few sequences are not run to the end of a call that
cannot end (`copytree` into its own subtree), and say so in the observation.
"""

from __future__ import annotations

import fcntl
import io
import math
import os
import pathlib
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from hypothesis import strategies as st

DESCRIPTOR_SLOTS = 3  # few slots, so calls keep meeting the same descriptors
FILE_SLOTS = 2  # file objects open at once; each one is closed at the end of a run
INVALID_DESCRIPTOR = 999_999  # no process here has it open, below the simulated range (1 << 20)
TREE_DEPTH_MAX = 6  # the generated paths nest 3 deep; temporary directories add one
BYTES_PER_CALL = 3  # 16.7 million choices: more than shapes x arguments (os.open: 70 x 52,650)
SETUP_CALLS_MIN = 2  # files and directories made before the generated calls, so fewer calls meet an empty root
SETUP_CALLS_MAX = 6  # enough for a file in each top name and the nested directories
OPENING_CALLS_MAX = 3  # descriptors and file objects opened before the generated calls
BODY_CALLS_MIN = 3  # hypothesis favours short lists; a sequence needs a few calls to meet itself
OPEN_WEIGHT = 4  # an open is drawn this many times as often as another call: most calls need a descriptor
LONG_NAME_SHOWN_MAX = 40  # a longer name of one repeated letter is shown as 'n' * 256
LARGE_REPEAT = 700  # a repeated write of ~9 KB crosses io.DEFAULT_BUFFER_SIZE (8 KiB)

NAMES = ("a", "b", "c", "d", "d/e", "d/a", "d/e/b", "a/b")  # "a/b": a path through a file, often
ODD_NAMES = ("a/", "d/", "d/.", "d/e/..", "a/..", "./a", "d//e", "d/../b")  # the kernel walks them as written
STRANGE_NAMES = ("\u00e9", "n" * 255, "n" * 256, "a\0b")  # non-ASCII, longest, too long (ENAMETOOLONG), NUL
CALL_NAMES = (*NAMES, *NAMES, *ODD_NAMES, *STRANGE_NAMES)  # what os-level calls get: mostly plain names
READ_NAMES = ("", *CALL_NAMES)  # "" is the root: listed, opened, stat'ed, never removed
GLOB_PATTERNS = ("*", "**/*", "d/*", "*/b", "?")
SHUTIL_COPIES = ("copyfile", "copy", "copy2", "move", "copytree")
FORMS = ("str", "str", "str", "bytes", "pathlib")

Observation = object
_TEMPORARY_NAME = re.compile(r"tmp[a-z0-9_]{8}")  # tempfile's names: "tmp" and 8 random characters


# -- arguments ----------------------------------------------------------------------


@dataclass(frozen=True)
class PathArgument:
    """A path relative to the run's root, passed as `form` ("str", "bytes", "pathlib")."""

    relative: str
    form: str = "str"

    def __repr__(self) -> str:
        repeated = len(self.relative) > LONG_NAME_SHOWN_MAX and len(set(self.relative)) == 1
        text = self.relative[:1] if repeated else self.relative
        shown = repr(text.encode()) if self.form == "bytes" else repr(text)
        if repeated:
            shown = f"{shown} * {len(self.relative)}"
        return f"Path({shown})" if self.form == "pathlib" else shown


class OpenFlags(int):
    """`os.open` flags, shown by name so a falsifying example reads like code."""

    def __repr__(self) -> str:
        names = [{os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}[self & os.O_ACCMODE]]
        for name in ("O_CREAT", "O_EXCL", "O_TRUNC", "O_APPEND", "O_DIRECTORY"):
            if self & getattr(os, name):
                names.append(name)
        return "|".join(names)


class Mode(int):
    """Permission bits, shown in octal."""

    def __repr__(self) -> str:
        return oct(self)


class AccessMode(int):
    """An `os.access` mode, shown by name."""

    def __repr__(self) -> str:
        if self == os.F_OK:
            return "F_OK"
        return "|".join(name for name in ("R_OK", "W_OK", "X_OK") if self & getattr(os, name))


@dataclass(frozen=True)
class Call:
    """One call: `name` says which (see `World`), `arguments` are its inputs."""

    name: str
    arguments: tuple[object, ...]

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(repr(argument) for argument in self.arguments)})"


# -- shapes and strategies ----------------------------------------------------------
#
# Drawing each argument separately costs hypothesis ~0.1 ms a draw, more than the calls
# themselves take (a list of integers: 4 ms an example; one byte string: 1.5 ms). So a
# sequence is one drawn byte string, and each `BYTES_PER_CALL` bytes of it one call,
# decoded in mixed radix into a `CallShape`'s name and one value from each argument's
# finite set of options. Hypothesis still shrinks: shorter strings (fewer calls) and
# smaller bytes (the first shapes, the first options); a falsifying example prints the
# decoded calls.


def _paths(names: Sequence[str] = CALL_NAMES, forms: Sequence[str] = FORMS) -> tuple[PathArgument, ...]:
    return tuple(PathArgument(name, form) for name in names for form in forms)


def _library_paths(names: Sequence[str] = CALL_NAMES) -> tuple[PathArgument, ...]:
    return _paths(names, ("str", "pathlib"))


def _string_paths(names: Sequence[str] = NAMES) -> tuple[PathArgument, ...]:
    return _paths(names, ("str",))


def _flag_sets() -> tuple[OpenFlags, ...]:
    extras = (os.O_CREAT, os.O_EXCL, os.O_TRUNC, os.O_APPEND, os.O_DIRECTORY)
    subsets = [sum(flag for index, flag in enumerate(extras) if chosen >> index & 1) for chosen in range(32)]
    small = [subset for subset in subsets if bin(subset).count("1") <= 3]
    return tuple(OpenFlags(access | subset) for access in (os.O_RDONLY, os.O_WRONLY, os.O_RDWR) for subset in small)


SLOTS = tuple(range(DESCRIPTOR_SLOTS))
FILE_SLOT_NUMBERS = tuple(range(FILE_SLOTS))
SIZES = (-1, 0, 1, 2, 3, 5, 8, 13, 10_000)
OFFSETS = (-2, 0, 0, 1, 3, 7, 12, 20)
WHENCES = (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END)
BOOLEANS = (False, True)
DATA = (
    b"",
    b"a",
    b"b",
    b"ab",
    b"\n",
    b"a\nb",
    b"a\r\nb\r",
    b"\r",
    b"\xe9",
    b"\xe9\n\0",
    b"abcdefgh",
    b"0123456789abcdef",
    b"ab\n" * LARGE_REPEAT * 4,  # 8,400 bytes: more than io.DEFAULT_BUFFER_SIZE (8 KiB)
)
FLAGS = _flag_sets()
CREATING_FLAGS = tuple(
    OpenFlags(access | os.O_CREAT | extra)
    for access in (os.O_WRONLY, os.O_RDWR, os.O_RDWR)
    for extra in (0, 0, os.O_TRUNC, os.O_APPEND, os.O_EXCL)
)
_ROOT_ONLY_MODES = (0o644, 0o600, 0o444, 0o000, 0o4755) if os.geteuid() == 0 else ()  # root ignores them
CHMOD_MODES = tuple(Mode(mode) for mode in (0o755, 0o700, 0o777, 0o751, *_ROOT_ONLY_MODES))
CREATE_MODES = tuple(Mode(mode) for mode in (0o644, 0o600, 0o666, 0o777, 0o755))
ACCESS_MODES = tuple(AccessMode(mode) for mode in (os.F_OK, os.R_OK, os.W_OK, os.X_OK, os.R_OK | os.W_OK))
FILE_MODES = tuple(base + plus for base in ("r", "w", "a", "x") for plus in ("", "+"))
ENCODINGS = (None, "utf-8", "latin-1")
NEWLINES = (None, "", "\n", "\r", "\r\n")
FLOCK_OPERATIONS = (fcntl.LOCK_SH | fcntl.LOCK_NB, fcntl.LOCK_EX | fcntl.LOCK_NB, fcntl.LOCK_UN)  # never blocks
RELATIVE_NAMES = ("a", "b", "e", "e/b", "a/", ".", "..", "e/..", "x")  # relative to a dir_fd (or to nothing)
AT_CALLS = ("stat", "lstat", "unlink", "rmdir", "mkdir", "access")  # the calls taking dir_fd, as `at` runs them
TEMPORARY_PARENTS = _library_paths(("", "d", "a"))


@dataclass(frozen=True)
class CallShape:
    """A call by name and, for each argument, the finite set of values it may take."""

    name: str
    options: tuple[tuple[object, ...], ...]

    def combinations(self) -> int:
        return math.prod(len(values) for values in self.options)

    def decode(self, number: int) -> Call:
        """The call whose arguments `number` picks, in mixed radix (any int is valid)."""
        arguments = []
        for values in self.options:
            number, index = divmod(number, len(values))
            arguments.append(values[index])
        return Call(self.name, tuple(arguments))


def _shape(name: str, *options: Sequence[object]) -> CallShape:
    return CallShape(name, tuple(tuple(values) for values in options))


def _open_shapes(names: Sequence[str] = READ_NAMES) -> list[CallShape]:
    """`open()` of binary and of text file objects, in every mode, buffering and newline."""
    binary_modes = [mode + "b" for mode in FILE_MODES]
    binary = _shape("open", FILE_SLOT_NUMBERS, _paths(names), binary_modes, (-1, -1, 0, 4, 64), [None], [None])
    text = _shape("open", FILE_SLOT_NUMBERS, _paths(names), FILE_MODES, (-1, -1, 1, 4, 64), ENCODINGS, NEWLINES)
    return [binary, text]


def descriptor_calls() -> list[CallShape]:
    """os-level calls on descriptors: open with every flag mix, read, write, seek, sync."""
    return [
        *[_shape("os.open", SLOTS, _paths(READ_NAMES), FLAGS, CREATE_MODES)] * OPEN_WEIGHT,
        _shape("os.read", SLOTS, SIZES),
        _shape("os.write", SLOTS, DATA, BOOLEANS),
        _shape("os.pread", SLOTS, SIZES, OFFSETS),
        _shape("os.pwrite", SLOTS, DATA, OFFSETS),
        _shape("os.lseek", SLOTS, OFFSETS, WHENCES),
        _shape("os.close", SLOTS),
        _shape("os.ftruncate", SLOTS, OFFSETS),
        _shape("os.fsync", SLOTS),
        _shape("os.fdatasync", SLOTS),
        _shape("os.dup", SLOTS, SLOTS),
        _shape("os.fstat", SLOTS),
        _shape("os.listdir(fd)", SLOTS),
        _shape("os.fdopen", FILE_SLOT_NUMBERS, SLOTS, ("rb", "wb", "r+b", "ab", "r", "w", "a+")),
        _shape("fcntl.flock", SLOTS, FLOCK_OPERATIONS),
        _shape("os.stat(fd)", SLOTS),
        _shape("os.fchmod", SLOTS, CHMOD_MODES),
        _shape("os.truncate(fd)", SLOTS, OFFSETS),
        _shape("os.scandir(fd)", SLOTS),
        _shape("at", AT_CALLS, SLOTS, RELATIVE_NAMES),
        _shape("os.open(dir_fd)", SLOTS, SLOTS, RELATIVE_NAMES, FLAGS),
    ]


def namespace_calls() -> list[CallShape]:
    """os-level calls on paths: the directory tree and its errors."""
    return [
        _shape("os.truncate", _paths(), OFFSETS),
        _shape("os.stat", _paths(READ_NAMES)),
        _shape("os.lstat", _paths(READ_NAMES)),
        _shape("os.rename", _paths(), _paths()),
        *[_shape("os.replace", _paths(), _paths())] * 2,
        _shape("os.unlink", _paths()),
        _shape("os.remove", _paths()),
        *[_shape("os.mkdir", _paths(), CREATE_MODES)] * 2,
        _shape("os.makedirs", _paths(), BOOLEANS),
        _shape("os.rmdir", _paths()),
        _shape("os.listdir", _paths(READ_NAMES)),
        _shape("os.scandir", _paths(READ_NAMES)),
        _shape("os.walk", _paths(READ_NAMES)),
        _shape("os.chmod", _paths(), CHMOD_MODES),
        _shape("os.access", _paths(READ_NAMES), ACCESS_MODES),
        _shape("os.path", ("exists", "isfile", "isdir", "getsize"), _paths(READ_NAMES)),
        _shape("create", _string_paths(), DATA),
    ]


def file_object_calls() -> list[CallShape]:
    """`open()` in every mode and the methods of the file objects it returns."""
    return [
        *_open_shapes() * OPEN_WEIGHT,
        _shape("file.write", FILE_SLOT_NUMBERS, DATA),
        _shape("file.read", FILE_SLOT_NUMBERS, SIZES),
        _shape("file.readline", FILE_SLOT_NUMBERS),
        _shape("file.seek", FILE_SLOT_NUMBERS, OFFSETS, WHENCES),
        _shape("file.tell", FILE_SLOT_NUMBERS),
        _shape("file.truncate", FILE_SLOT_NUMBERS, (None, *OFFSETS)),
        _shape("file.flush", FILE_SLOT_NUMBERS),
        _shape("file.close", FILE_SLOT_NUMBERS),
        _shape("file.attributes", FILE_SLOT_NUMBERS),
        _shape("file.readinto", FILE_SLOT_NUMBERS, SIZES[1:]),
        _shape("file.readlines", FILE_SLOT_NUMBERS),
        _shape("file.writelines", FILE_SLOT_NUMBERS, DATA),
        _shape("file.fileno", FILE_SLOT_NUMBERS, ("os.read", "os.fsync", "os.fstat", "os.lseek")),
    ]


def library_calls() -> list[CallShape]:
    """pathlib, shutil and tempfile: the calls real programs make through libraries."""
    return [
        _shape("Path.read_text", _string_paths(READ_NAMES), ("utf-8", "latin-1")),
        _shape("Path.read_bytes", _string_paths(READ_NAMES)),
        _shape("Path.write_text", _string_paths(), DATA, (None, "", "\n", "\r\n")),
        _shape("Path.write_bytes", _string_paths(), DATA),
        _shape("Path.iterdir", _string_paths(READ_NAMES)),
        _shape("Path.glob", _string_paths(("", "d")), GLOB_PATTERNS),
        _shape("Path.mkdir", _string_paths(), BOOLEANS, BOOLEANS),
        _shape("Path.unlink", _string_paths(), BOOLEANS),
        _shape("Path.touch", _string_paths(), BOOLEANS),
        _shape("Path.replace", _string_paths(), _library_paths()),
        _shape("Path.stat", _string_paths(READ_NAMES)),
        *[_shape("shutil", SHUTIL_COPIES, _library_paths(), _library_paths())] * 2,
        _shape("shutil.rmtree", _library_paths()),
        _shape("tempfile.mkstemp", SLOTS, TEMPORARY_PARENTS, _string_paths()),
        _shape("tempfile.NamedTemporaryFile", TEMPORARY_PARENTS, DATA),
        _shape("tempfile.TemporaryDirectory", TEMPORARY_PARENTS),
        _shape("tempfile.TemporaryFile", TEMPORARY_PARENTS, DATA),
    ]


def setup_calls() -> list[CallShape]:
    """A few files and directories to start from, so fewer calls meet an empty root."""
    return [
        _shape("create", _string_paths(("a", "b", "c")), DATA),
        _shape("os.makedirs", _string_paths(("d", "d/e")), [True]),
        _shape("create", _string_paths(("d/a", "d/e/b")), DATA),
    ]


def opening_calls() -> list[CallShape]:
    """Opens of descriptors and file objects that mostly succeed, before the body uses them."""
    creatable = ("a", "b", "c", "d/a")
    return [_shape("os.open", SLOTS, _paths(creatable), CREATING_FLAGS, CREATE_MODES), *_open_shapes(creatable)]


def _scramble(number: int) -> int:
    """A bijection of the 24-bit numbers that spreads runs of equal bytes (hypothesis
    draws many zeros) over all the shapes; a zero still decodes to one fixed call."""
    mask = (1 << (8 * BYTES_PER_CALL)) - 1
    number = ((number ^ (number >> 12)) * 0x9E3779 + 0x5BD1E9) & mask  # odd multiplier: invertible
    return (number ^ (number >> 11)) & mask


def _calls(shapes: Sequence[CallShape], size_max: int, size_min: int = 0) -> st.SearchStrategy[list[Call]]:
    """Lists of `size_min` to `size_max` calls of `shapes`, each decoded from 3 drawn bytes."""
    assert len(shapes) * max(shape.combinations() for shape in shapes) <= 1 << (8 * BYTES_PER_CALL)

    def decode(raw: bytes) -> list[Call]:
        calls = []
        for start in range(0, len(raw) - BYTES_PER_CALL + 1, BYTES_PER_CALL):
            number = _scramble(int.from_bytes(raw[start : start + BYTES_PER_CALL], "little"))
            calls.append(shapes[number % len(shapes)].decode(number // len(shapes)))
        return calls

    return st.binary(min_size=size_min * BYTES_PER_CALL, max_size=size_max * BYTES_PER_CALL).map(decode)


def sequences(families: Sequence[list[CallShape]], size_max: int) -> st.SearchStrategy[list[Call]]:
    """A setup, a few opens, then 3 to `size_max` calls drawn from the given families."""
    body = _calls([shape for family in families for shape in family], size_max, size_min=BODY_CALLS_MIN)
    return st.builds(
        lambda setup, opens, calls: setup + opens + calls,
        _calls(setup_calls(), SETUP_CALLS_MAX, size_min=SETUP_CALLS_MIN),
        _calls(opening_calls(), OPENING_CALLS_MAX),
        body,
    )


# -- running ------------------------------------------------------------------------


def _is_directory(fd: int) -> bool:
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    except OSError:
        return False  # the call itself will say why


def _relative_name(name: str) -> str:
    """`name`, or "<tmp>" for one of tempfile's random names."""
    return "<tmp>" if _TEMPORARY_NAME.fullmatch(name) else name


class World:
    """One root directory and the descriptors and file objects of one run of calls.

    The same `World` code runs in the real and the simulated world; only `root` differs.
    Observations never contain the root, descriptor numbers or random names.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self.descriptors: list[int | None] = [None] * DESCRIPTOR_SLOTS
        self.stale: list[int | None] = [None] * DESCRIPTOR_SLOTS  # closed numbers, for EBADF
        self.files: list[IO[Any] | None] = [None] * FILE_SLOTS

    def run(self, calls: Sequence[Call]) -> list[Observation]:
        """Perform `calls` in order, then close everything and read back the tree."""
        observations: list[Observation] = []
        try:
            for call in calls:
                observations.append(self.perform(call))
        finally:
            observations.append(("close all", self.close_all()))
        observations.append(("tree", self.tree()))
        return observations

    def perform(self, call: Call) -> Observation:
        """One call's observation: its normalized return value or exception."""
        method: Callable[..., object] = getattr(self, "call_" + re.sub(r"\W+", "_", call.name).strip("_"))
        try:
            return self.normalize(method(*call.arguments))
        except Exception as error:  # any exception is an observation to compare, not a failure here
            return self.describe(error)

    # -- normalization ----------------------------------------------------------------

    def path(self, argument: PathArgument) -> Any:  # str, bytes or Path, as the sequence chose
        text = f"{self.root}/{argument.relative}" if argument.relative else self.root
        if argument.form == "bytes":
            return os.fsencode(text)
        if argument.form == "pathlib":
            return pathlib.Path(text)
        return text

    def text_path(self, argument: PathArgument) -> str:
        return f"{self.root}/{argument.relative}" if argument.relative else self.root

    def hide_root(self, text: str) -> str:
        """`text` with the root shown as "<root>" and random temporary names as "<tmp>"."""
        return _TEMPORARY_NAME.sub("<tmp>", text.replace(self.root, "<root>"))

    def describe(self, error: BaseException) -> Observation:
        """An exception as its type name, errno and message (a descriptor number that
        CPython puts in `filename` for `listdir(fd)` and the like reads as "<fd>")."""
        message = str(error)
        filename = getattr(error, "filename", None)
        if isinstance(filename, int) and message.endswith(f": {filename}"):
            message = message[: -len(str(filename))] + "<fd>"
        return ("raise", type(error).__name__, getattr(error, "errno", None), self.hide_root(message))

    def normalize(self, value: object) -> Observation:
        if isinstance(value, os.stat_result):
            return self.stat_fields(value)
        if isinstance(value, str):
            return self.hide_root(value)
        if isinstance(value, bytes) and value.startswith(os.fsencode(self.root)):
            return ("bytes path", self.hide_root(os.fsdecode(value)))
        if isinstance(value, bytes) and _TEMPORARY_NAME.fullmatch(os.fsdecode(value)):
            return b"<tmp>"  # a bytes name from listdir or scandir
        if isinstance(value, pathlib.PurePath):
            return ("Path", self.hide_root(str(value)))
        if isinstance(value, list | tuple):
            return tuple(self.normalize(item) for item in value)
        return value

    @staticmethod
    def stat_fields(result: os.stat_result) -> Observation:
        regular = stat.S_ISREG(result.st_mode)
        return (
            "stat",
            stat.S_IFMT(result.st_mode),
            oct(stat.S_IMODE(result.st_mode)),
            result.st_size if regular else None,
            result.st_nlink if regular else None,
        )

    # -- descriptors -------------------------------------------------------------------

    def held(self) -> set[int]:
        numbers = {number for number in self.descriptors if number is not None}
        for file in self.files:
            if file is not None and not file.closed:
                numbers.add(file.fileno())
        return numbers

    def occupied(self, slot: int) -> int:
        """`slot`, or when it never held a descriptor the first slot that did (fewer idle calls)."""
        if self.descriptors[slot] is not None or self.stale[slot] is not None:
            return slot
        for other in range(DESCRIPTOR_SLOTS):
            if self.descriptors[other] is not None or self.stale[other] is not None:
                return other
        return slot

    def descriptor(self, slot: int) -> int | None:
        """The live descriptor of `slot`; else its closed number (EBADF), if no one reuses it."""
        slot = self.occupied(slot)
        live = self.descriptors[slot]
        if live is not None:
            return live
        stale = self.stale[slot]
        if stale is None:
            return None
        return stale if stale not in self.held() else INVALID_DESCRIPTOR

    def store(self, slot: int, number: int) -> str:
        self.release(slot)
        self.descriptors[slot] = number
        self.stale[slot] = None
        return "fd"

    def release(self, slot: int) -> None:
        live = self.descriptors[slot]
        if live is not None:
            self.descriptors[slot] = None
            self.stale[slot] = None
            os.close(live)

    def on_descriptor(self, slot: int, action: Callable[[int], object]) -> object:
        number = self.descriptor(slot)
        return "no descriptor" if number is None else action(number)

    def call_os_open(self, slot: int, path: PathArgument, flags: int, mode: int) -> object:
        self.release(slot)
        return self.store(slot, os.open(self.path(path), flags, mode))

    def call_os_close(self, slot: int) -> object:
        slot = self.occupied(slot)
        number = self.descriptor(slot)
        if number is None:
            return "no descriptor"
        if self.descriptors[slot] is not None:
            self.descriptors[slot] = None
            self.stale[slot] = number
        os.close(number)
        return None

    def call_os_read(self, slot: int, size: int) -> object:
        return self.on_descriptor(slot, lambda fd: os.read(fd, size))

    def call_os_write(self, slot: int, data: bytes, as_memoryview: bool) -> object:
        return self.on_descriptor(slot, lambda fd: os.write(fd, memoryview(data) if as_memoryview else data))

    def call_os_pread(self, slot: int, size: int, offset: int) -> object:
        return self.on_descriptor(slot, lambda fd: os.pread(fd, size, offset))

    def call_os_pwrite(self, slot: int, data: bytes, offset: int) -> object:
        return self.on_descriptor(slot, lambda fd: os.pwrite(fd, data, offset))

    def call_os_lseek(self, slot: int, position: int, how: int) -> object:
        def lseek(fd: int) -> object:
            if _is_directory(fd) and (position != 0 or how == os.SEEK_END):
                return "not compared: a directory's offsets are the file system's (ext4: hash cookies)"
            return os.lseek(fd, position, how)

        return self.on_descriptor(slot, lseek)

    def call_os_ftruncate(self, slot: int, size: int) -> object:
        return self.on_descriptor(slot, lambda fd: os.ftruncate(fd, size))

    def call_os_fsync(self, slot: int) -> object:
        return self.on_descriptor(slot, os.fsync)

    def call_os_fdatasync(self, slot: int) -> object:
        return self.on_descriptor(slot, os.fdatasync)

    def call_os_fstat(self, slot: int) -> object:
        return self.on_descriptor(slot, os.fstat)

    def call_os_listdir_fd(self, slot: int) -> object:
        return self.on_descriptor(slot, lambda fd: sorted(os.listdir(fd)))

    def call_fcntl_flock(self, slot: int, operation: int) -> object:
        return self.on_descriptor(slot, lambda fd: fcntl.flock(fd, operation))

    def call_os_fdopen(self, file_slot: int, slot: int, mode: str) -> object:
        """A file object over the descriptor of `slot`, which it then owns (closefd)."""
        number = self.descriptor(slot)
        if number is None:
            return "no descriptor"
        closed = self.close_file(file_slot)
        try:
            self.files[file_slot] = os.fdopen(number, mode, encoding=None if "b" in mode else "utf-8")
        except Exception as error:  # the descriptor stays the slot's: whether it is open is for later calls
            return (closed, self.describe(error))
        if self.descriptors[slot] == number:
            self.descriptors[slot] = None
        return (closed, "file")

    def call_os_stat_fd(self, slot: int) -> object:
        return self.on_descriptor(slot, os.stat)

    def call_os_fchmod(self, slot: int, mode: int) -> object:
        return self.on_descriptor(slot, lambda fd: os.fchmod(fd, mode))

    def call_os_truncate_fd(self, slot: int, size: int) -> object:
        return self.on_descriptor(slot, lambda fd: os.truncate(fd, size))

    def call_os_scandir_fd(self, slot: int) -> object:
        def scandir(fd: int) -> object:
            with os.scandir(fd) as iterator:
                return sorted((entry.name, entry.path, entry.is_dir(), entry.is_file()) for entry in iterator)

        return self.on_descriptor(slot, scandir)

    def call_at(self, function: str, slot: int, name: str) -> object:
        """`function(name, dir_fd=...)`: a path relative to the directory descriptor of `slot`."""

        def at(fd: int) -> object:
            if function == "access":
                return os.access(name, os.F_OK, dir_fd=fd)
            return getattr(os, function)(name, dir_fd=fd)

        return self.on_descriptor(slot, at)

    def call_os_open_dir_fd(self, slot: int, directory_slot: int, name: str, flags: int) -> object:
        directory = self.descriptor(directory_slot)
        if directory is None:
            return "no descriptor"
        self.release(slot)
        return self.store(slot, os.open(name, flags, 0o644, dir_fd=directory))

    def call_os_dup(self, source: int, target: int) -> object:
        number = self.descriptor(source)
        if number is None:
            return "no descriptor"
        duplicate = os.dup(number)
        return self.store(target, duplicate)

    # -- paths -------------------------------------------------------------------------

    def call_os_truncate(self, path: PathArgument, size: int) -> None:
        os.truncate(self.path(path), size)

    def call_os_stat(self, path: PathArgument) -> object:
        return os.stat(self.path(path))

    def call_os_lstat(self, path: PathArgument) -> object:
        return os.lstat(self.path(path))

    def call_os_rename(self, source: PathArgument, target: PathArgument) -> None:
        os.rename(self.path(source), self.path(target))

    def call_os_replace(self, source: PathArgument, target: PathArgument) -> None:
        os.replace(self.path(source), self.path(target))

    def call_os_unlink(self, path: PathArgument) -> None:
        os.unlink(self.path(path))

    def call_os_remove(self, path: PathArgument) -> None:
        os.remove(self.path(path))

    def call_os_mkdir(self, path: PathArgument, mode: int) -> None:
        os.mkdir(self.path(path), mode)

    def call_os_makedirs(self, path: PathArgument, exist_ok: bool) -> None:
        os.makedirs(self.path(path), exist_ok=exist_ok)

    def call_os_rmdir(self, path: PathArgument) -> None:
        os.rmdir(self.path(path))

    def call_os_listdir(self, path: PathArgument) -> object:
        return sorted(os.listdir(self.path(path)))

    def call_os_scandir(self, path: PathArgument) -> object:
        entries = []
        with os.scandir(self.path(path)) as iterator:
            for entry in iterator:
                size = entry.stat().st_size if entry.is_file() else None
                entries.append((entry.name, entry.path, entry.is_dir(), entry.is_file(), entry.is_symlink(), size))
        return sorted(entries, key=repr)

    def call_os_walk(self, path: PathArgument) -> object:
        return sorted(((top, sorted(dirs), sorted(files)) for top, dirs, files in os.walk(self.path(path))), key=repr)

    def call_os_chmod(self, path: PathArgument, mode: int) -> None:
        os.chmod(self.path(path), mode)

    def call_os_access(self, path: PathArgument, mode: int) -> object:
        return os.access(self.path(path), mode)

    def call_os_path(self, function: str, path: PathArgument) -> object:
        result = getattr(os.path, function)(self.path(path))
        if function == "getsize" and os.path.isdir(self.path(path)):
            return "not compared: the size of a directory"
        return result

    def call_create(self, path: PathArgument, data: bytes) -> object:
        with open(self.text_path(path), "wb") as file:
            return file.write(data)

    # -- file objects ------------------------------------------------------------------

    def close_file(self, slot: int) -> object:
        file = self.files[slot]
        self.files[slot] = None
        if file is None:
            return None
        try:
            file.close()
        except Exception as error:  # a failed flush on close is an observation
            return self.describe(error)
        return "closed"

    def call_open(
        self, slot: int, path: PathArgument, mode: str, buffering: int, encoding: str | None, newline: str | None
    ) -> object:
        closed = self.close_file(slot)
        try:
            self.files[slot] = open(  # noqa: SIM115  # closed by close_file or close_all
                self.path(path), mode, buffering, encoding=encoding, newline=newline
            )
        except Exception as error:  # the open's own error, next to the earlier close's
            return (closed, self.describe(error))
        return (closed, "file")

    def on_file(self, slot: int, action: Callable[[IO[Any]], object]) -> object:
        """`action` on the file object of `slot`, or of the first slot that holds one."""
        file = self.files[slot] or next((other for other in self.files if other is not None), None)
        return "no file" if file is None else action(file)

    def call_file_write(self, slot: int, data: bytes) -> object:
        def write(file: IO[Any]) -> object:
            return file.write(data.decode("latin-1") if isinstance(file, io.TextIOBase) else data)

        return self.on_file(slot, write)

    def call_file_read(self, slot: int, size: int) -> object:
        return self.on_file(slot, lambda file: file.read(size))

    def call_file_readline(self, slot: int) -> object:
        return self.on_file(slot, lambda file: file.readline())

    def call_file_seek(self, slot: int, offset: int, whence: int) -> object:
        return self.on_file(slot, lambda file: file.seek(offset, whence))

    def call_file_tell(self, slot: int) -> object:
        return self.on_file(slot, lambda file: file.tell())

    def call_file_truncate(self, slot: int, size: int | None) -> object:
        return self.on_file(slot, lambda file: file.truncate(size))

    def call_file_flush(self, slot: int) -> object:
        return self.on_file(slot, lambda file: file.flush())

    def call_file_close(self, slot: int) -> object:
        return self.on_file(slot, lambda file: file.close())

    def call_file_readinto(self, slot: int, size: int) -> object:
        def readinto(file: IO[Any]) -> object:
            buffer = bytearray(size)
            count = file.readinto(buffer)  # type: ignore[attr-defined]  # binary files only; text raises
            return (count, bytes(buffer))

        return self.on_file(slot, readinto)

    def call_file_readlines(self, slot: int) -> object:
        return self.on_file(slot, lambda file: file.readlines())

    def call_file_writelines(self, slot: int, data: bytes) -> object:
        def writelines(file: IO[Any]) -> object:
            lines = data.splitlines(keepends=True)
            file.writelines([line.decode("latin-1") for line in lines] if isinstance(file, io.TextIOBase) else lines)
            return None

        return self.on_file(slot, writelines)

    def call_file_fileno(self, slot: int, function: str) -> object:
        """An os-level call on a file object's descriptor, under its buffer."""

        def on_descriptor(file: IO[Any]) -> object:
            fd = file.fileno()
            if function == "os.read":
                return os.read(fd, 5)
            if function == "os.lseek":
                return os.lseek(fd, 0, os.SEEK_CUR)
            if function == "os.fsync":
                os.fsync(fd)
                return None
            return os.fstat(fd)

        return self.on_file(slot, on_descriptor)

    def call_file_attributes(self, slot: int) -> object:
        def attributes(file: IO[Any]) -> object:
            flags = (file.closed, file.readable(), file.writable(), file.seekable()) if not file.closed else ()
            name = "<fd>" if isinstance(file.name, int) else file.name  # os.fdopen: the descriptor number
            return (name, file.mode, getattr(file, "encoding", None), flags)

        return self.on_file(slot, attributes)

    # -- libraries ---------------------------------------------------------------------

    def call_Path_read_text(self, path: PathArgument, encoding: str) -> object:
        return pathlib.Path(self.text_path(path)).read_text(encoding=encoding)

    def call_Path_read_bytes(self, path: PathArgument) -> object:
        return pathlib.Path(self.text_path(path)).read_bytes()

    def call_Path_write_text(self, path: PathArgument, data: bytes, newline: str | None) -> object:
        return pathlib.Path(self.text_path(path)).write_text(data.decode("latin-1"), "utf-8", newline=newline)

    def call_Path_write_bytes(self, path: PathArgument, data: bytes) -> object:
        return pathlib.Path(self.text_path(path)).write_bytes(data)

    def call_Path_iterdir(self, path: PathArgument) -> object:
        return sorted(str(child) for child in pathlib.Path(self.text_path(path)).iterdir())

    def call_Path_glob(self, path: PathArgument, pattern: str) -> object:
        return sorted(str(child) for child in pathlib.Path(self.text_path(path)).glob(pattern))

    def call_Path_mkdir(self, path: PathArgument, parents: bool, exist_ok: bool) -> None:
        pathlib.Path(self.text_path(path)).mkdir(parents=parents, exist_ok=exist_ok)

    def call_Path_unlink(self, path: PathArgument, missing_ok: bool) -> None:
        pathlib.Path(self.text_path(path)).unlink(missing_ok=missing_ok)

    def call_Path_touch(self, path: PathArgument, exist_ok: bool) -> None:
        pathlib.Path(self.text_path(path)).touch(exist_ok=exist_ok)

    def call_Path_replace(self, source: PathArgument, target: PathArgument) -> object:
        return pathlib.Path(self.text_path(source)).replace(self.path(target))

    def call_Path_stat(self, path: PathArgument) -> object:
        return pathlib.Path(self.text_path(path)).stat()

    def call_shutil(self, function: str, source: PathArgument, target: PathArgument) -> object:
        if function == "copytree" and os.path.normpath(target.relative).startswith(
            f"{os.path.normpath(source.relative)}/"
        ):
            return "not run: copytree into its own subtree copies until the path is too long"
        return getattr(shutil, function)(self.text_path(source), self.path(target))

    def call_shutil_rmtree(self, path: PathArgument) -> None:
        shutil.rmtree(self.path(path))

    def call_tempfile_mkstemp(self, slot: int, directory: PathArgument, target: PathArgument) -> object:
        self.release(slot)
        number, name = tempfile.mkstemp(dir=self.path(directory))
        self.store(slot, number)
        shown = os.path.join(os.path.dirname(name), _relative_name(os.path.basename(name)))
        os.replace(name, self.text_path(target))
        return shown

    def call_tempfile_NamedTemporaryFile(self, directory: PathArgument, data: bytes) -> object:
        with tempfile.NamedTemporaryFile(dir=self.path(directory)) as file:
            file.write(data)
            file.flush()
            file.seek(0)
            return (file.read(), sorted(map(_relative_name, os.listdir(os.path.dirname(file.name)))))

    def call_tempfile_TemporaryDirectory(self, directory: PathArgument) -> object:
        with tempfile.TemporaryDirectory(dir=self.path(directory)) as name:
            with open(os.path.join(name, "x"), "wb") as file:
                file.write(b"x")
            return (_relative_name(os.path.basename(name)), os.listdir(name))

    def call_tempfile_TemporaryFile(self, directory: PathArgument, data: bytes) -> object:
        with tempfile.TemporaryFile(dir=self.path(directory)) as file:
            file.write(data)
            file.seek(0)
            return (file.read(), sorted(map(_relative_name, os.listdir(self.path(directory)))))

    # -- the end of a run --------------------------------------------------------------

    def close_all(self) -> list[Observation]:
        """Close every file object and descriptor still open; what each close said."""
        results: list[Observation] = [self.close_file(slot) for slot in range(FILE_SLOTS)]
        for slot in range(DESCRIPTOR_SLOTS):
            try:
                self.release(slot)
            except OSError as error:
                results.append(self.describe(error))
        return results

    def tree(self) -> list[Observation]:
        """Every path under the root with its kind, permission bits and content, sorted."""
        return sorted(self._entries(self.root, "", 0), key=repr)

    def _entries(self, directory: str, relative: str, depth: int) -> Iterator[Observation]:
        assert depth <= TREE_DEPTH_MAX, f"the tree nests deeper than the calls can make it: {relative}"
        with os.scandir(directory) as iterator:
            names = sorted(entry.name for entry in iterator)
        for name in names:
            path = os.path.join(directory, name)
            shown = f"{relative}{_relative_name(name)}"
            result = os.lstat(path)
            mode = oct(stat.S_IMODE(result.st_mode))
            if stat.S_ISDIR(result.st_mode):
                yield (shown, "directory", mode)
                yield from self._entries(path, shown + "/", depth + 1)
            else:
                with open(path, "rb") as file:
                    yield (shown, stat.S_IFMT(result.st_mode), mode, result.st_size, result.st_nlink, file.read())
