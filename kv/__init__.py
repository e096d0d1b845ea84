"""kv: an embeddable, log-structured key-value store written sans-I/O.

    import kv
    with kv.open("data") as store:
        store.set(b"user:1", b"ada")
        store.get(b"user:1")  # b"ada"

Every disk operation goes through a `kv.io.Io` backend (io_uring, blocking, or the
simulator); see `kv.io` for the contract.
"""

from kv.errors import (
    BatchTooLarge,
    CorruptionDetected,
    InvalidArgument,
    IoError,
    KeyTooLarge,
    KvError,
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
    "Stats",
    "Store",
    "StoreClosed",
    "StoreLocked",
    "StoreReadOnly",
    "TornTail",
    "ValueTooLarge",
    "VerifyReport",
    "WrongType",
    "open",
]
