"""Group commit for `kv serve`, sans-I/O: one flush for every session that has replies waiting.

    group = GroupCommit(store, flushes=True)        # `always` mode: the store runs buffered
    tick = session.receive(data)
    if group.received(session, tick) == "now":     # nothing written, nothing waiting
        send(session, session.take_replies())
    ...                                             # once per event-loop turn:
    group.commit(send)                              # one flush, then every waiting reply

The promise (`io_backends.server` runs it, the simulator's `server` scenario checks it):

1. A session's replies wait for the window's commit when its bytes wrote, or when any
   session is already waiting (a read may have seen a write of the window that is not
   durable yet). Only a session that wrote nothing while nobody waits is answered at once:
   in `always` mode every write before it was made durable by an earlier commit (in
   `batch` mode it may not be yet, which that mode's bounds allow).
2. `commit` runs one `store.flush()` for the whole window (`flushes`: `always` mode;
   in `batch` mode the store syncs by its own bounds and the commit only delivers).
3. Only after that flush returned does any reply of the window leave (`deliver`).
4. If the flush fails, the store is read-only from then on (the store's rule) and every
   reply of the window is the error instead: nothing of that window is acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from kv.errors import KvError
from kv.replies import Reply
from kv.session import Session, Tick
from kv.store import Store

# What `received` decided: answer at once, wait (the window was open), or wait and open it.
Received = Literal["now", "wait", "opened"]
# deliver(session, replies, close after them)
Deliver = Callable[[Session, Sequence[Reply], bool], None]


@dataclass(eq=False)
class GroupCommit:
    store: Store
    flushes: bool = True  # `always` mode: the window's writes are made durable here
    waiting: dict[Session, bool] = field(default_factory=dict)  # -> close after the replies
    syncs: int = 0  # flushes that succeeded
    failure: KvError | None = None  # the last window's failed flush, if it failed

    def received(self, session: Session, tick: Tick) -> Received:
        """Rule 1: whether `session`'s replies (after `tick`) wait for the commit."""
        if not (tick.wrote or self.waiting):
            return "now"
        opened = not self.waiting
        self.waiting[session] = self.waiting.get(session, False) or tick.close
        return "opened" if opened else "wait"

    def commit(self, deliver: Deliver) -> None:
        """Rules 2-4: one flush for the window, then each waiting session's replies
        (or, when the flush failed, as many errors) through `deliver`."""
        waiting, self.waiting = self.waiting, {}
        self.failure = None
        failure = ""
        if self.flushes and waiting:
            try:
                self.store.flush()
                self.syncs += 1
            except KvError as error:
                self.failure = error
                failure = f"the write could not be made durable: {error}"
        for session, close in waiting.items():
            deliver(session, session.take_replies(self.failure is None, failure), close)
