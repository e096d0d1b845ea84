"""MULTI / EXEC / DISCARD for one connection of `kv serve`, sans-I/O: the queue.

    transaction = Transaction()
    transaction.begin()                            # MULTI
    transaction.queue([b"SET", b"k", b"v"])        # +QUEUED (nothing runs yet)
    queued, doomed = transaction.end()             # EXEC: the session runs `queued`

The session (`kv.session`) decides what is queued and runs EXEC, as Redis 7.0 does:

1. After MULTI every command is checked as if it were to run now (its name and arity,
   authentication, the user's rights, and what a transaction may not hold: SHUTDOWN
   and SAVE, as in Redis, and COMPACT and EXIT, kv's own, since COMPACT syncs a frame
   in the middle of the EXEC and EXIT closes the connection)
   and then queued, replied `QUEUED`, connection commands (CLIENT, AUTH, HELLO, ...)
   included. A command refused by a check gets its error and dooms the transaction:
   EXEC then replies `EXECABORT` and runs nothing. QUIT is not queued: it closes.
2. A refused EXEC (a wrong number of arguments, no right to run it) ends the
   transaction with `EXECABORT` naming the reason.
3. EXEC runs the queued commands back to back, no other connection's command between
   them (the server runs one session at a time), each checked against the user's
   rights again (a queued AUTH may have changed the user), and replies with the array
   of their replies. A command that fails at run time (WRONGTYPE, say) gets its error
   in the array; the others still run (Redis has no rollback either).
4. DISCARD drops the queue. MULTI inside MULTI, and EXEC or DISCARD outside, are errors
   and change nothing.
5. A transaction holds at most TRANSACTION_COMMANDS_MAX commands and
   TRANSACTION_BYTES_MAX bytes of arguments (Redis has no bound but its memory): a
   command past either is refused, which dooms the transaction.

Crash atomicity: EXEC runs its commands inside `Store.holding()`, so no bound of the
buffered store (the frame-size target, `batch` mode's operations and time) commits a
frame between them, whatever other clients' writes the buffer held before; the
window's flush (or the bound at the block's end) writes them in one frame, and recovery
applies a frame whole. So they survive a crash all or none as long as they include no
list command (a list command writes and syncs its own frame, with whatever the buffer
held) and fit in one frame (within a largest record of FRAME_PAYLOAD_SIZE_MAX_BYTES). The simulator's
`server` scenario checks it (`scenarios.promises`: `server_exec_atomic`). WATCH is not
supported.
"""

from __future__ import annotations

from dataclasses import dataclass

from kv.replies import ErrorReply, Reply, SimpleString, error

QUEUED = SimpleString("QUEUED")
EXEC_ABORT = ErrorReply("EXECABORT", "Transaction discarded because of previous errors.")
TRANSACTION_VERBS = frozenset({b"multi", b"exec", b"discard"})

# Rule 5: a queue is memory the client chose; these bound it (about 100 MiB of SETs of
# 100-byte values at the command bound).
TRANSACTION_COMMANDS_MAX = 100_000
TRANSACTION_BYTES_MAX = 256 * 1024 * 1024
TRANSACTION_TOO_LONG = error(
    f"a transaction holds at most {TRANSACTION_COMMANDS_MAX} commands and "
    f"{TRANSACTION_BYTES_MAX // (1024 * 1024)} MiB of arguments"
)


@dataclass
class Transaction:
    """One connection's transaction state: `queued` is None outside MULTI."""

    queued: list[list[bytes]] | None = None
    doomed: bool = False
    queued_bytes: int = 0

    @property
    def active(self) -> bool:
        """Between MULTI and its EXEC or DISCARD."""
        return self.queued is not None

    def begin(self) -> None:
        assert self.queued is None, "MULTI inside MULTI is the session's error"
        self.queued, self.doomed, self.queued_bytes = [], False, 0

    def queue(self, argv: list[bytes]) -> Reply:
        """Queue a command that passed the session's checks (rule 1), or refuse it past
        the bounds (rule 5)."""
        assert self.queued is not None, "queue only inside MULTI"
        size = sum(map(len, argv))
        if len(self.queued) >= TRANSACTION_COMMANDS_MAX or self.queued_bytes + size > TRANSACTION_BYTES_MAX:
            self.doomed = True
            return TRANSACTION_TOO_LONG
        self.queued.append(argv)
        self.queued_bytes += size
        return QUEUED

    def end(self) -> tuple[list[list[bytes]], bool]:
        """EXEC or DISCARD (or a refused EXEC): the queued commands and whether a
        refused command doomed them; the connection is outside MULTI again."""
        assert self.queued is not None, "end only inside MULTI"
        ended = self.queued, self.doomed
        self.queued, self.doomed, self.queued_bytes = None, False, 0
        return ended

    def doom(self) -> None:
        """A command was refused inside MULTI (rule 1): EXEC will run nothing."""
        if self.queued is not None:
            self.doomed = True
