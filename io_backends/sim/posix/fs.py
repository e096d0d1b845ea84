"""The file tree behind the POSIX view: inodes, directories, and the one way to change them.

`Tree` holds numbered nodes: a `FileNode` (a `bytearray` of data, permission bits,
times) or a `DirNode` (an `entries` dict from name to inode number, its parent, permission
bits, times). Every change of files and directories is a micro-operation from `ops.py`
applied by `Tree.apply`, so the live view (which records what it applies) and the
explorer (which replays a chosen subset of a recording onto the initial image) change a
tree in exactly the same way:

- `apply(op, strict=True)` is the live path: the view already checked the call's
  preconditions and raised the `OSError` a real system would, so a violated precondition
  here is a bug and is asserted;
- `apply(op, strict=False)` is replay: an op that no longer fits (its parent directory or
  inode is gone, its source entry names another inode) is skipped; `Write` past the end
  extends with zeros; `Create`/`Mkdir`/`Rename` onto an existing name replace the entry;
  `Rmdir` removes the entry even if the directory is not empty (its children become
  unreachable and are dropped). Inodes exist apart from their names, as in
  `io_backends/sim/disk.py`: a data op on a file whose `Create` was dropped applies to
  that file, unnamed, and a `Rename` carries its inode, so it names such a file at the
  target (`rename_moves`), as one directory change carries the inode number there.

`Image` is an immutable, canonical snapshot of what is reachable from the root (paths,
contents, permission bits; no times and no inode numbers), with a digest that is the same
in every process. `Tree.from_image` numbers inodes deterministically (sorted paths), so a
recording made on `Tree.from_image(image)` replays onto another `Tree.from_image(image)`.

Times come from a virtual clock (`Tree.clock_ns`), which the view advances by a fixed step
per call (`tick`); nothing here reads the wall clock. Times are not part of an `Image`
(they are not part of the persistence model), so `set_times` (utime) is the one change
made outside `apply`.

Nodes of unlinked files and removed directories are dropped from `Tree.nodes`, unless
pinned: the view pins every inode an open descriptor refers to, so an unlinked file stays
readable and writable through its descriptor (and the ops it records still apply).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from io_backends.sim.posix.ops import (
    ROOT_INODE,
    Ack,
    Chmod,
    Create,
    DropDirty,
    MicroOp,
    Mkdir,
    Rename,
    Rmdir,
    Sync,
    Truncate,
    Unlink,
    Write,
)

# The virtual clock starts at a fixed instant (2023-11-14T22:13:20Z) so that stat times
# are the same in every run, and advances this much per call so that successive calls
# see distinct, increasing times (1 ms: coarse enough to read, fine enough never to wrap).
CLOCK_EPOCH_NS = 1_700_000_000_000_000_000
CLOCK_STEP_NS = 1_000_000

ROOT_MODE = 0o755
PERMISSION_BITS = 0o7777  # what a node's `mode` holds: permissions, setuid/setgid/sticky; never the type

# How an `Image`'s digest is laid out (little-endian): a record kind byte, then lengths
# and mode, then the path and (for files) the content. Fixed widths make the encoding
# unambiguous, so two different images never share an encoding.
_DIRECTORY_RECORD = struct.Struct("<cII")  # b"D", path length, mode
_FILE_RECORD = struct.Struct("<cIIQ")  # b"F", path length, mode, content length
_DIGEST_BYTES = 20


def _encode_path(path: str) -> bytes:
    """A path's bytes as the OS would see them (undecodable bytes survive as surrogates)."""
    return path.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Image:
    """An immutable, canonical snapshot of the tree reachable from the root.

    `files` are (relative path "a/b.json", content, permission bits), sorted by path;
    `directories` are (relative path, permission bits), sorted, the root ("") excluded.
    Two trees with the same reachable content have equal images and equal digests.
    """

    files: tuple[tuple[str, bytes, int], ...]
    directories: tuple[tuple[str, int], ...]

    def digest(self) -> str:
        """A hex blake2b digest of a canonical encoding: deterministic across processes
        and `PYTHONHASHSEED` (computed once per image, then cached)."""
        cached = self.__dict__.get("_digest")
        if cached is not None:
            assert isinstance(cached, str)
            return cached
        hasher = hashlib.blake2b(digest_size=_DIGEST_BYTES)
        for path, mode in self.directories:
            encoded = _encode_path(path)
            hasher.update(_DIRECTORY_RECORD.pack(b"D", len(encoded), mode))
            hasher.update(encoded)
        for path, data, mode in self.files:
            encoded = _encode_path(path)
            hasher.update(_FILE_RECORD.pack(b"F", len(encoded), mode, len(data)))
            hasher.update(encoded)
            hasher.update(data)
        digest = hasher.hexdigest()
        self.__dict__["_digest"] = digest  # frozen: bypass __setattr__ for the cache only
        return digest

    @classmethod
    def empty(cls) -> Image:
        """The image of a tree holding only its root."""
        return cls(files=(), directories=())

    def file(self, path: str) -> bytes | None:
        """The content of the file at relative `path`, or None (a linear scan: for tests
        and reports, not hot paths)."""
        for name, data, _mode in self.files:
            if name == path:
                return data
        return None


class FileNode:
    """A regular file: its bytes (the page cache: what every reader sees now), its
    permission bits, its times, and whether a directory entry names it (`linked`)."""

    __slots__ = ("atime_ns", "ctime_ns", "data", "linked", "mode", "mtime_ns")

    def __init__(self, mode: int, time_ns: int, data: bytearray | None = None) -> None:
        self.data = bytearray() if data is None else data
        self.mode = mode
        self.atime_ns = time_ns
        self.mtime_ns = time_ns
        self.ctime_ns = time_ns
        self.linked = True


class DirNode:
    """A directory: name -> inode number, the inode of its parent (the root is its own
    parent), permission bits, times, and whether it is still linked (`linked`)."""

    __slots__ = ("atime_ns", "ctime_ns", "entries", "linked", "mode", "mtime_ns", "parent")

    def __init__(self, mode: int, parent: int, time_ns: int) -> None:
        self.entries: dict[str, int] = {}
        self.mode = mode
        self.parent = parent
        self.atime_ns = time_ns
        self.mtime_ns = time_ns
        self.ctime_ns = time_ns
        self.linked = True


Node = FileNode | DirNode


class Tree:
    """Numbered inodes reachable from `ROOT_INODE`; changed only by `apply` (see the
    module docstring for strict and replay semantics)."""

    def __init__(self) -> None:
        """Only the root directory: inode `ROOT_INODE`, mode 0o755."""
        self.clock_ns = CLOCK_EPOCH_NS
        self.nodes: dict[int, Node] = {ROOT_INODE: DirNode(ROOT_MODE, ROOT_INODE, CLOCK_EPOCH_NS)}
        self.next_inode = ROOT_INODE + 1
        self.pinned: dict[int, int] = {}  # inode -> open descriptions referring to it
        # Replay: the mode each file was created with, for a file whose `Create` was
        # dropped but whose data was kept (`_unnamed_file`); set by the explorer.
        self.unnamed_modes: dict[int, int] = {}

    # -- snapshots -------------------------------------------------------------------

    @classmethod
    def from_image(cls, image: Image) -> Tree:
        """A tree holding `image`; inodes numbered in sorted path order from
        `ROOT_INODE + 1` (a parent missing from `image.directories` is created, 0o755)."""
        tree = cls()
        nodes = tree.nodes
        time_ns = tree.clock_ns
        directories: dict[str, int] = {"": ROOT_INODE}
        items: list[tuple[str, bytes | None, int]] = [(path, None, mode) for path, mode in image.directories]
        items.extend(image.files)
        items.sort(key=_path_of_item)
        for path, data, mode in items:
            head, _, name = path.rpartition("/")
            parent = directories.get(head)
            if parent is None:
                parent = tree._implicit_directory(head, directories)
            number = tree.next_inode
            tree.next_inode = number + 1
            parent_node = nodes[parent]
            assert isinstance(parent_node, DirNode), path
            parent_node.entries[name] = number
            if data is None:
                nodes[number] = DirNode(mode, parent, time_ns)
                directories[path] = number
            else:
                nodes[number] = FileNode(mode, time_ns, bytearray(data))
        return tree

    def _implicit_directory(self, path: str, directories: dict[str, int]) -> int:
        """Create directory `path` (and its missing parents) for `from_image`."""
        head, _, name = path.rpartition("/")
        parent = directories.get(head)
        if parent is None:
            parent = self._implicit_directory(head, directories)
        number = self.new_inode_number()
        parent_node = self.nodes[parent]
        assert isinstance(parent_node, DirNode), path
        parent_node.entries[name] = number
        self.nodes[number] = DirNode(ROOT_MODE, parent, self.clock_ns)
        directories[path] = number
        return number

    def image(self) -> Image:
        """What is reachable from the root, as an immutable `Image`."""
        files: list[tuple[str, bytes, int]] = []
        directories: list[tuple[str, int]] = []
        nodes = self.nodes
        pending: list[tuple[str, DirNode]] = []
        root = nodes[ROOT_INODE]
        assert isinstance(root, DirNode)
        pending.append(("", root))
        while pending:
            prefix, directory = pending.pop()
            for name, number in directory.entries.items():
                node = nodes[number]
                path = prefix + name
                if isinstance(node, FileNode):
                    files.append((path, bytes(node.data), node.mode))
                else:
                    directories.append((path, node.mode))
                    pending.append((path + "/", node))
        files.sort()
        directories.sort()
        return Image(files=tuple(files), directories=tuple(directories))

    # -- queries ---------------------------------------------------------------------

    def new_inode_number(self) -> int:
        """A number no inode of this tree (nor of any replay of its recording) uses."""
        number = self.next_inode
        self.next_inode = number + 1
        return number

    def lookup(self, parent: int, name: str) -> int | None:
        """The inode `name` names in directory `parent`, or None (also when `parent` is
        missing or not a directory)."""
        node = self.nodes.get(parent)
        if isinstance(node, DirNode):
            return node.entries.get(name)
        return None

    def find(self, path: str) -> int | None:
        """The inode at relative `path` ("a/b.json"; "" is the root), or None. Plain
        components only: no ".", "..", or empty components."""
        number: int | None = ROOT_INODE
        if path:
            for name in path.split("/"):
                number = self.lookup(number, name) if number is not None else None
        return number

    def node(self, number: int) -> Node:
        """The node `number`; raises KeyError when there is none."""
        return self.nodes[number]

    def file(self, number: int) -> FileNode:
        """The file `number`; asserts it is one."""
        node = self.nodes[number]
        assert isinstance(node, FileNode), number
        return node

    def directory(self, number: int) -> DirNode:
        """The directory `number`; asserts it is one."""
        node = self.nodes[number]
        assert isinstance(node, DirNode), number
        return node

    def is_ancestor(self, ancestor: int, number: int) -> bool:
        """True when directory `ancestor` is `number` or one of its parents."""
        nodes = self.nodes
        seen = 0
        while True:
            if number == ancestor:
                return True
            node = nodes.get(number)
            if not isinstance(node, DirNode) or number == ROOT_INODE or seen > len(nodes):
                return False
            number = node.parent
            seen += 1

    def file_bytes_total(self) -> int:
        """The bytes held by every file still present (linked, or open while unlinked)."""
        return sum(len(node.data) for node in self.nodes.values() if isinstance(node, FileNode))

    def subdirectory_count(self, directory: DirNode) -> int:
        """How many entries of `directory` are directories (for st_nlink)."""
        nodes = self.nodes
        return sum(1 for number in directory.entries.values() if isinstance(nodes.get(number), DirNode))

    # -- time and pins (not part of the persistence model) ----------------------------

    def tick(self) -> int:
        """Advance the virtual clock one step (once per call of the view); the new time."""
        self.clock_ns += CLOCK_STEP_NS
        return self.clock_ns

    def set_times(self, number: int, atime_ns: int, mtime_ns: int) -> None:
        """utime: set a node's access and modification times (its change time is now)."""
        node = self.nodes[number]
        node.atime_ns = atime_ns
        node.mtime_ns = mtime_ns
        node.ctime_ns = self.clock_ns

    def pin(self, number: int) -> None:
        """An open description refers to `number`: keep it when it is unlinked."""
        self.pinned[number] = self.pinned.get(number, 0) + 1

    def unpin(self, number: int) -> None:
        """An open description of `number` closed; drop the node if it was the last one
        and no entry names it any more."""
        left = self.pinned[number] - 1
        if left:
            self.pinned[number] = left
            return
        del self.pinned[number]
        node = self.nodes.get(number)
        if node is not None and not node.linked:
            del self.nodes[number]

    # -- the one mutation path --------------------------------------------------------

    def apply(self, op: MicroOp, strict: bool = True) -> None:
        """Apply one micro-operation (see the module docstring for `strict`). With
        `strict`, a violated precondition raises AssertionError (a bug in the caller)."""
        _APPLIERS[type(op)](self, op, strict)

    def _drop(self, number: int) -> None:
        """An entry naming `number` is gone: drop the node (kept while pinned), and, for
        a directory, whatever it still contains (replay only: live rmdir is of empty)."""
        node = self.nodes.get(number)
        if node is None:
            return
        node.linked = False
        node.ctime_ns = self.clock_ns
        if isinstance(node, DirNode):
            children = list(node.entries.values())
            node.entries.clear()
            for child in children:
                self._drop(child)
        if number not in self.pinned:
            del self.nodes[number]

    def _parent_for_entry(self, parent: int, name: str, strict: bool) -> DirNode | None:
        """The directory that is to get a new entry `name`; None when replay must skip.
        An existing entry of that name is replaced (replay only; asserted absent live)."""
        node = self.nodes.get(parent)
        if strict:
            assert isinstance(node, DirNode) and node.linked and name not in node.entries, (parent, name)
            return node
        if not isinstance(node, DirNode):
            return None
        old = node.entries.pop(name, None)
        if old is not None:
            self._drop(old)
        return node

    def _create(self, op: Create, strict: bool) -> None:
        self._link_new(op, lambda time_ns: FileNode(op.mode, time_ns), strict)

    def _mkdir(self, op: Mkdir, strict: bool) -> None:
        self._link_new(op, lambda time_ns: DirNode(op.mode, op.parent, time_ns), strict)

    def _link_new(self, op: Create | Mkdir, make: Callable[[int], Node], strict: bool) -> None:
        """A new node (`make(now)`) linked as `op.name` in `op.parent`."""
        if not strict and op.inode in self.nodes:
            return
        assert op.inode not in self.nodes, op
        parent = self._parent_for_entry(op.parent, op.name, strict)
        if parent is None:
            return
        time_ns = self.clock_ns
        self.nodes[op.inode] = make(time_ns)
        parent.entries[op.name] = op.inode
        parent.mtime_ns = parent.ctime_ns = time_ns
        self._reserve(op.inode)

    def _reserve(self, number: int) -> None:
        """Keep `new_inode_number` above every number an op brought in."""
        if number >= self.next_inode:
            self.next_inode = number + 1

    def _remove_entry(self, op: Unlink | Rmdir, strict: bool) -> None:
        parent = self.nodes.get(op.parent)
        if strict:
            assert isinstance(parent, DirNode) and parent.entries.get(op.name) == op.inode, op
            node = self.nodes[op.inode]
            assert isinstance(node, FileNode if isinstance(op, Unlink) else DirNode), op
            assert isinstance(node, FileNode) or not node.entries, op
        elif not isinstance(parent, DirNode) or parent.entries.get(op.name) != op.inode:
            return
        del parent.entries[op.name]
        parent.mtime_ns = parent.ctime_ns = self.clock_ns
        self._drop(op.inode)

    def rename_moves(self, op: Rename) -> bool:
        """Whether replaying `op` changes the tree: the target directory exists and the
        source entry still names `op.inode`, or `op.inode` is a file no entry names (its
        `Create` was dropped), which the rename carries to the target."""
        target = self.nodes.get(op.target_parent)
        moved = self.nodes.get(op.inode)
        if not isinstance(target, DirNode) or moved is None:
            return False
        if isinstance(moved, FileNode) and not moved.linked:
            return True
        source = self.nodes.get(op.source_parent)
        return (
            isinstance(source, DirNode)
            and source.entries.get(op.source_name) == op.inode
            # a directory never moves into its own subtree (replay could otherwise detach it)
            and not (isinstance(moved, DirNode) and self.is_ancestor(op.inode, op.target_parent))
        )

    def _rename(self, op: Rename, strict: bool) -> None:
        nodes = self.nodes
        source = nodes.get(op.source_parent)
        target = nodes.get(op.target_parent)
        moved = nodes.get(op.inode)
        fits = self.rename_moves(op)
        if strict:
            assert fits and isinstance(source, DirNode) and source.entries.get(op.source_name) == op.inode, op
            assert isinstance(target, DirNode) and target.linked, op
            assert op.target_name not in target.entries or (source is target and op.source_name == op.target_name), op
        if not fits:
            return
        assert isinstance(target, DirNode) and moved is not None
        if source is target and op.source_name == op.target_name and moved.linked:
            return
        if isinstance(source, DirNode) and source.entries.get(op.source_name) == op.inode:
            del source.entries[op.source_name]
        else:
            source = target  # an unnamed file carried by the rename (replay only)
            moved.linked = True
        old = target.entries.pop(op.target_name, None)
        if old is not None:
            self._drop(old)
        target.entries[op.target_name] = op.inode
        if isinstance(moved, DirNode):
            moved.parent = op.target_parent
        time_ns = self.clock_ns
        source.mtime_ns = source.ctime_ns = target.mtime_ns = target.ctime_ns = moved.ctime_ns = time_ns

    def _write(self, op: Write, strict: bool) -> None:
        node = self.nodes.get(op.inode)
        if strict:
            assert isinstance(node, FileNode) and op.offset + len(op.data) <= len(node.data), op
        elif not isinstance(node, FileNode):
            node = self._unnamed_file(op.inode)
            if node is None:
                return
        data = node.data
        offset = op.offset
        if offset > len(data):
            data.extend(bytes(offset - len(data)))
        data[offset : offset + len(op.data)] = op.data
        node.mtime_ns = node.ctime_ns = self.clock_ns

    def _truncate(self, op: Truncate, strict: bool) -> None:
        node = self.nodes.get(op.inode)
        if strict:
            assert isinstance(node, FileNode) and op.size >= 0, op
        elif not isinstance(node, FileNode):
            node = self._unnamed_file(op.inode)
            if node is None:
                return
        data = node.data
        if op.size <= len(data):
            del data[op.size :]
        else:
            data.extend(bytes(op.size - len(data)))
        node.mtime_ns = node.ctime_ns = self.clock_ns

    def _chmod(self, op: Chmod, strict: bool) -> None:
        node = self.nodes.get(op.inode)
        if strict:
            assert node is not None, op
        elif node is None:
            return
        node.mode = op.mode & PERMISSION_BITS
        node.ctime_ns = self.clock_ns

    def _unnamed_file(self, number: int) -> FileNode | None:
        """Replay of a data op on a file the tree lacks: its `Create` was dropped, so it
        is an empty file no entry names (a later `Rename` may name it). None when the
        number belongs to a directory."""
        if number in self.nodes:
            return None
        node = FileNode(self.unnamed_modes.get(number, 0o644), self.clock_ns)
        node.linked = False
        self.nodes[number] = node
        self._reserve(number)
        return node

    def _nothing(self, op: MicroOp, strict: bool) -> None:
        """Sync, DropDirty and Ack change no state (they matter to the explorer)."""


def _path_of_item(item: tuple[str, bytes | None, int]) -> str:
    return item[0]


_APPLIERS: dict[type, Callable[[Tree, Any, bool], None]] = {
    Create: Tree._create,
    Mkdir: Tree._mkdir,
    Unlink: Tree._remove_entry,
    Rmdir: Tree._remove_entry,
    Rename: Tree._rename,
    Write: Tree._write,
    Truncate: Tree._truncate,
    Chmod: Tree._chmod,
    Sync: Tree._nothing,
    DropDirty: Tree._nothing,
    Ack: Tree._nothing,
}
