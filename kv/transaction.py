"""MULTI / EXEC / DISCARD for one connection of `kv serve`, sans-I/O.

    transaction = Transaction()
    transaction.handle(store, [b"MULTI"])          # +OK
    transaction.handle(store, [b"SET", b"k", b"v"])  # +QUEUED (nothing runs yet)
    transaction.handle(store, [b"EXEC"])           # *1 +OK, and whether a command wrote

What Redis does, and so this:

1. MULTI starts queueing; every command after it (but EXEC and DISCARD) is checked
   (name and arity) and queued, replied `QUEUED`. A command that fails the check is
   answered with its error and dooms the transaction: EXEC then replies `EXECABORT`
   and runs nothing.
2. EXEC runs the queued commands back to back, no other connection's command between
   them (the server runs one session at a time), and replies with the array of their
   replies. A command that fails at run time (WRONGTYPE, say) gets its error in the
   array; the others still run (Redis has no rollback either).
3. DISCARD drops the queue. MULTI inside MULTI, and EXEC or DISCARD outside, are errors
   and change nothing.

Crash atomicity: the server makes the tick's writes durable together (group commit),
so EXEC's writes are one write and one fsync; recovery applies a frame whole, so they
survive a crash all or none as long as they fit in one frame and include no list
command (a list command writes and syncs its own frame). WATCH is not supported.
"""

from __future__ import annotations

from dataclasses import dataclass

from kv.commands import COMMANDS, Flag
from kv.replies import OK, Array, ErrorReply, Reply, SimpleString, error
from kv.store import Store

QUEUED = SimpleString("QUEUED")
EXEC_ABORT = ErrorReply("EXECABORT", "Transaction discarded because of previous errors.")
TRANSACTION_VERBS = frozenset({b"multi", b"exec", b"discard"})


@dataclass
class Transaction:
    """One connection's transaction state: `queued` is None outside MULTI."""

    queued: list[list[bytes]] | None = None
    doomed: bool = False

    def takes(self, name: bytes) -> bool:
        """Whether `handle` answers the command called `name` (lower case)."""
        return name in TRANSACTION_VERBS or self.queued is not None

    def handle(self, store: Store, argv: list[bytes]) -> tuple[Reply, bool]:
        """The reply to `argv` (which `takes`), and whether it wrote to the store."""
        name = argv[0].lower()
        if name == b"multi":
            if self.queued is not None:
                return error("MULTI calls can not be nested"), False
            self.queued, self.doomed = [], False
            return OK, False
        if name in (b"exec", b"discard"):
            return self._finish(store, name, argv)
        assert self.queued is not None
        command = COMMANDS.resolve(argv)
        if isinstance(command, ErrorReply):
            self.doomed = True
            return command, False
        self.queued.append(argv)
        return QUEUED, False

    def _finish(self, store: Store, name: bytes, argv: list[bytes]) -> tuple[Reply, bool]:
        if self.queued is None:
            return error(f"{name.decode().upper()} without MULTI"), False
        if len(argv) != 1:
            return error(f"wrong number of arguments for '{name.decode()}' command"), False
        queued, doomed = self.queued, self.doomed
        self.queued, self.doomed = None, False
        if name == b"discard":
            return OK, False
        if doomed:
            return EXEC_ABORT, False
        replies = tuple(COMMANDS.execute(store, command) for command in queued)
        wrote = any(_writes(command) for command in queued)
        return Array(replies), wrote


def _writes(argv: list[bytes]) -> bool:
    command = COMMANDS.resolve(argv)
    return not isinstance(command, ErrorReply) and Flag.WRITE in command.flags
