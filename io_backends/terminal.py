"""What the `kv` REPL needs from the operating system and `kv/` may not ask for itself
(it imports no `os`): where the line-editing history is kept.

Reached through the `kv.io_backends` entry point `history_path`, as the Io backends
are through `make_io`, so `kv` names no backend module.
"""

from __future__ import annotations

import os

HISTORY_FILE_NAME = ".kv_history"  # beside redis-cli's ~/.rediscli_history
HISTORY_FILE_VARIABLE = "KV_HISTFILE"  # as redis-cli's REDISCLI_HISTFILE


def history_path() -> str | None:
    """`$KV_HISTFILE` when set (empty: keep no history file), else `~/.kv_history`;
    None when there is no home directory to put it in."""
    configured = os.environ.get(HISTORY_FILE_VARIABLE)
    if configured is not None:
        return configured or None
    home = os.path.expanduser("~")
    if home == "~":
        return None
    return os.path.join(home, HISTORY_FILE_NAME)
