"""The POSIX view of the simulated disk: unmodified Python code on a crashable file tree.

- `ops`: the micro-operations every change is made of, and the persistence model.
- `fs`: the file tree (`Tree`) and its immutable snapshots (`Image`).
- `view`: `PosixView`, descriptors and os-level calls with Linux's errnos, recording
  micro-operations with the `file:line` that issued them.
- `files`: file objects (`sim_open`, the twin of `io.open`) and directory entries.
- `interpose`: routes `os`, `io`, `builtins.open`, `fcntl`, `mmap` calls on simulated
  paths and descriptors to a `PosixView`; everything else reaches the real OS.
"""

from io_backends.sim.posix.errors import UnmodelledCall
from io_backends.sim.posix.fs import Image, Tree
from io_backends.sim.posix.ops import CallSite, MicroOp, Recording
from io_backends.sim.posix.view import PosixView

# `interpose` (the function) is not re-exported: it would shadow the submodule of its name.
__all__ = ["CallSite", "Image", "MicroOp", "PosixView", "Recording", "Tree", "UnmodelledCall"]
