"""The one error of the POSIX view that is not an `OSError`.

A call the view does not model (`mmap`, `os.symlink`, `os.link`, `os.chdir`, ...) on a
simulated path or descriptor raises `UnmodelledCall`, naming the call. It is a
`NotImplementedError`, not an `OSError`, on purpose: code under test often catches
`OSError` and carries on, and a gap in the model must never pass for a disk's answer, nor
silently reach the real disk.
"""

from __future__ import annotations


class UnmodelledCall(NotImplementedError):
    """`call` is not modelled by the POSIX view of the simulated disk."""

    def __init__(self, call: str, detail: str = "") -> None:
        self.call = call
        message = f"{call} is not modelled by the simulated disk's POSIX view"
        super().__init__(f"{message}: {detail}" if detail else message)
