"""fsyncgate on the CLEAN marker: a marker whose sync failed is still in the page cache,
so the next open (no crash between) reads back a value no sync stored. Every open
rewrites and syncs its marker (rule 2, rule 3), so a crash after it cannot bring back
the older marker (found by the state machine: two acknowledged frames cut as torn tails
under an older marker)."""

from __future__ import annotations

import pytest

import kv
from io_backends.sim import SimIo
from kv.errors import IoError
from kv.files import CLEAN_MARKER_NAME, decode_clean_marker

STORE = "/store"


def _durable_marker(io: SimIo) -> tuple[int, int] | None:
    inode = io.disk.lookup(f"{STORE}/{CLEAN_MARKER_NAME}")
    assert inode is not None
    return decode_clean_marker(bytes(inode.durable))


def test_an_open_makes_a_marker_whose_sync_failed_durable() -> None:
    io = SimIo(seed=0)
    store = kv.open(STORE, io=io, durability="always")
    store.set(b"k", b"v" * 40)  # synced: no sync is left for close but the marker's
    io.faults.force("fsync_gate")
    with pytest.raises(IoError):
        store.close()
    length = _durable_marker(io)
    reopened = kv.open(STORE, io=io, durability="always")
    marker = _durable_marker(io)
    assert marker is not None and marker != length and marker[1] > 0, (length, marker)
    reopened.close()
