"""Seeded operation workloads and the model they are checked against.

An operation is data: a kind and the key changes it makes. The model is a plain dict
replayed from operations; the store is driven with `run_operation`.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from itertools import accumulate

from kv.store import Store

# (kind, {key: value or None for a delete}); kinds: set, delete, set_many, get, flush,
# compact, verify, pause, reopen (a clean close and open, which crashes may hit)
Operation = tuple[str, dict[bytes, bytes | None]]
Model = dict[bytes, bytes]
WRITE_KINDS = ("set", "delete", "set_many")
# A "pause": this much virtual time passes with no request (an idle client), so time
# bounds such as `batch` mode's sync deadline come into play. The harness moves the clock.
PAUSE_US = 4_000


@dataclass(frozen=True)
class WorkloadMix:
    """Relative weights of each operation kind and the shape of keys and values."""

    set_weight: float = 0.45
    delete_weight: float = 0.15
    set_many_weight: float = 0.15
    get_weight: float = 0.2
    flush_weight: float = 0.03
    compact_weight: float = 0.02
    verify_weight: float = 0.0
    pause_weight: float = 0.0
    reopen_weight: float = 0.0
    key_count: int = 64
    value_size_max_bytes: int = 256
    batch_size_max: int = 8

    def kinds(self) -> tuple[list[str], list[float]]:
        return (
            ["set", "delete", "set_many", "get", "flush", "compact", "verify", "pause", "reopen"],
            [
                self.set_weight,
                self.delete_weight,
                self.set_many_weight,
                self.get_weight,
                self.flush_weight,
                self.compact_weight,
                self.verify_weight,
                self.pause_weight,
                self.reopen_weight,
            ],
        )


@dataclass
class Workload:
    mix: WorkloadMix
    rng: random.Random
    step: int = 0
    _kinds: list[str] = field(init=False)
    _cumulative_weights: list[float] = field(init=False)
    _keys: list[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self._kinds, weights = self.mix.kinds()
        self._cumulative_weights = list(accumulate(weights))
        self._keys = [f"key{index:04d}".encode() for index in range(self.mix.key_count)]

    def _key(self) -> bytes:
        return self._keys[self.rng.randrange(len(self._keys))]

    def _value(self, stamp: bytes) -> bytes:
        size = self.rng.randrange(self.mix.value_size_max_bytes + 1)
        return (stamp * (size // len(stamp) + 1))[:size]

    def _kind(self) -> str:
        """`rng.choices(kinds, weights)[0]`, drawing the same, without rebuilding the
        cumulative weights on every call (this runs once per operation)."""
        cumulative = self._cumulative_weights
        return self._kinds[bisect(cumulative, self.rng.random() * cumulative[-1], 0, len(cumulative) - 1)]

    def next(self) -> Operation:
        self.step += 1
        kind = self._kind()
        if kind == "set":
            return (kind, {self._key(): self._value(b"%d:" % self.step)})
        if kind in ("delete", "get"):
            return (kind, {self._key(): None})
        if kind == "set_many":
            stamp = b"%d:" % self.step
            return (
                kind,
                {self._key(): self._value(stamp) for _ in range(self.rng.randrange(1, self.mix.batch_size_max + 1))},
            )
        return (kind, {})


def apply(model: Model, operation: Operation) -> Model:
    """The model after `operation` (a new dict; reads change nothing)."""
    kind, changes = operation
    if kind not in ("set", "delete", "set_many"):
        return model
    result = dict(model)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def run_operation(store: Store, operation: Operation) -> bytes | None:
    """Drive the store with one operation; return what a `get` read."""
    kind, changes = operation
    if kind == "set":
        [(key, value)] = changes.items()
        assert value is not None
        store.set(key, value)
    elif kind == "delete":
        [key] = changes
        store.delete(key)
    elif kind == "set_many":
        store.set_many({key: value for key, value in changes.items() if value is not None})
    elif kind == "get":
        [key] = changes
        return store.get(key)
    elif kind == "flush":
        store.flush()
    elif kind == "verify":
        store.stats()
        return b"ok" if store.verify().ok else b"damaged"
    elif kind in ("pause", "reopen"):
        pass  # the driver moves the clock, or closes and opens the store itself
    else:
        assert kind == "compact", kind
        store.compact()
    return None


def read_state(store: Store) -> Model:
    """Every key and value the store returns now."""
    state = {}
    for key in store.keys():
        value = store.get(key)
        assert value is not None, key
        state[key] = value
    return state
