"""kv: an embeddable, log-structured key-value store written sans-I/O.

    import kv
    with kv.open("data") as store:
        store.set(b"user:1", b"ada")
        store.get(b"user:1")  # b"ada"

`kv.connect(url)` gives one client API over memory://, file:///path and redis://host:port
(see `kv.client`).

Every disk operation goes through a `kv.io.Io` backend (io_uring, blocking, or the
simulator); see `kv.io` for the contract.
"""

from kv.client import Client, ClientBatch, connect
from kv.errors import (
    BatchTooLarge,
    ConnectionFailed,
    CorruptionDetected,
    InvalidArgument,
    IoError,
    KeyTooLarge,
    KvError,
    ServerError,
    StoreClosed,
    StoreLocked,
    StoreReadOnly,
    ValueTooLarge,
    WrongType,
)
from kv.io import File, Future, Io
from kv.recovery import Corruption, RecoveryReport, TornTail
from kv.store import DURABILITY_MODES, Durability, Stats, Store, VerifyReport, open  # noqa: A004 - kv.open is the entry point

__all__ = [
    "DURABILITY_MODES",
    "BatchTooLarge",
    "Client",
    "ClientBatch",
    "ConnectionFailed",
    "Corruption",
    "CorruptionDetected",
    "Durability",
    "File",
    "Future",
    "InvalidArgument",
    "Io",
    "IoError",
    "KeyTooLarge",
    "KvError",
    "RecoveryReport",
    "ServerError",
    "Stats",
    "Store",
    "StoreClosed",
    "StoreLocked",
    "StoreReadOnly",
    "TornTail",
    "ValueTooLarge",
    "VerifyReport",
    "WrongType",
    "connect",
    "open",
]
