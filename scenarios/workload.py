"""Seeded operation workloads and the model they are checked against.

An operation is data (`scenarios.operations.Operation`); each kind is defined once in
`scenarios.operations.KINDS`, which draws, models and runs it. The model is a plain dict
replayed from operations (`apply`); the store is driven with `run_operation`.

Edges (`WorkloadMix`'s edge fields, all off by default: a mix without them draws
exactly what it drew before they existed): empty and maximal values, values whose
record reaches the buffered frame target, `set_many` batches that fill a frame to
`FRAME_PAYLOAD_SIZE_MAX_BYTES` or hold thousands of keys, bursts of more than
`BATCH_OPERATIONS_MAX` writes with no pause, idle pauses longer than
`BATCH_INTERVAL_MS_MAX`, and colliding keys (the empty key, keys that share prefixes,
a key of `KEY_SIZE_MAX_BYTES`).
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from itertools import accumulate

from kv.limits import (
    BATCH_INTERVAL_MS_MAX,
    BATCH_OPERATIONS_MAX,
    FRAME_PAYLOAD_SIZE_MAX_BYTES,
    FRAME_PAYLOAD_SIZE_TARGET_BYTES,
    KEY_SIZE_MAX_BYTES,
    VALUE_SIZE_MAX_BYTES,
)
from kv.record import RECORD_HEADER_SIZE
from kv.store import Store
from scenarios.operations import KINDS, PAUSE_US, WRITE_KINDS, Model, Operation, kind_of, pause_length, read_value

__all__ = [
    "EDGE_KEYS",
    "KINDS",
    "PAUSE_US",
    "WRITE_KINDS",
    "Model",
    "Operation",
    "Workload",
    "WorkloadMix",
    "apply",
    "below",
    "pause_operation",
    "pause_us",
    "read_state",
    "run_operation",
    "weighted",
]

# Keys that collide or nearly do: the empty key, keys sharing a prefix (one a prefix of
# the next, one differing in a NUL byte), and the longest key the store accepts.
BURST_KEY_SIZE_MAX_BYTES = 64
EDGE_KEYS: tuple[bytes, ...] = (b"", b"p", b"p\x00", b"pp", b"p" * 255, b"p" * KEY_SIZE_MAX_BYTES)


@dataclass(frozen=True)
class WorkloadMix:
    """Relative weights of each operation kind and the shape of keys and values."""

    # Each kind's weight, where it differs from the kind's `default_weight` (`weighted`).
    weights: tuple[tuple[str, float], ...] = ()
    key_count: int = 64
    value_size_max_bytes: int = 256
    batch_size_max: int = 8
    # -- edges (see the module docstring); per value:
    empty_value_probability: float = 0.0
    maximal_value_probability: float = 0.0  # VALUE_SIZE_MAX_BYTES
    target_frame_value_probability: float = 0.0  # its record is FRAME_PAYLOAD_SIZE_TARGET_BYTES, +-1
    # per operation, instead of the kind drawn from the weights:
    full_frame_probability: float = 0.0  # a set_many of FRAME_PAYLOAD_SIZE_MAX_BYTES exactly
    many_keys_probability: float = 0.0  # a set_many of up to `many_keys_max` keys
    many_keys_max: int = 4096
    burst_probability: float = 0.0  # BATCH_OPERATIONS_MAX + 1..burst_extra_writes_max writes, no pause
    burst_extra_writes_max: int = 100
    long_pause_probability: float = 0.0  # idle for 1..5 times BATCH_INTERVAL_MS_MAX, and a bit
    edge_keys: bool = False  # EDGE_KEYS join the key space

    def edge_weights(self) -> tuple[float, float, float, float]:
        """Per-operation probabilities of the edge operations, in `_edge` order."""
        return (
            self.full_frame_probability,
            self.many_keys_probability,
            self.burst_probability,
            self.long_pause_probability,
        )

    def __post_init__(self) -> None:
        unknown = sorted({name for name, _ in self.weights} - set(KINDS))
        if unknown:
            raise ValueError(f"weights for unknown operation kinds {unknown} (known: {', '.join(KINDS)})")

    def weight(self, kind: str) -> float:
        return dict(self.weights).get(kind, KINDS[kind].default_weight)

    def kinds(self) -> tuple[list[str], list[float]]:
        """Every kind (in `KINDS` order) and its weight."""
        return list(KINDS), [self.weight(kind) for kind in KINDS]


def weighted(**weights: float) -> tuple[tuple[str, float], ...]:
    """`WorkloadMix.weights` from keyword arguments: `weighted(pause=0.05, reopen=0.01)`."""
    return tuple(weights.items())


def below(rng: random.Random, bound: int) -> int:
    """`rng.randrange(bound)` for `bound > 0`, drawing the same bits in the same order
    (CPython's `Random._randbelow_with_getrandbits`) without `randrange`'s argument
    checks and the calls between: it runs for every key, value and batch drawn."""
    bits = bound.bit_length()
    value = rng.getrandbits(bits)
    while value >= bound:
        value = rng.getrandbits(bits)
    return value


@dataclass
class Workload:
    mix: WorkloadMix
    rng: random.Random
    step: int = 0
    _kinds: list[str] = field(init=False)
    _cumulative_weights: list[float] = field(init=False)
    _keys: list[bytes] = field(init=False)
    _queued: list[Operation] = field(init=False, default_factory=list)  # a burst's next writes, last first
    _edges: bool = field(init=False)
    _edge_values: bool = field(init=False)

    def __post_init__(self) -> None:
        self._kinds, weights = self.mix.kinds()
        self._cumulative_weights = list(accumulate(weights))
        self._keys = [f"key{index:04d}".encode() for index in range(self.mix.key_count)]
        if self.mix.edge_keys:
            self._keys += EDGE_KEYS
        self._edges = any(self.mix.edge_weights())
        mix = self.mix
        self._edge_values = bool(
            mix.empty_value_probability or mix.maximal_value_probability or mix.target_frame_value_probability
        )

    @property
    def batch_size_max(self) -> int:
        return self.mix.batch_size_max

    def below(self, bound: int) -> int:
        return below(self.rng, bound)

    def key(self) -> bytes:
        return self._keys[below(self.rng, len(self._keys))]

    def value(self, stamp: bytes, key: bytes = b"") -> bytes:
        size = self._edge_value_size(key) if self._edge_values else None
        if size is None:
            size = below(self.rng, self.mix.value_size_max_bytes + 1)
        return (stamp * (size // len(stamp) + 1))[:size]

    def _edge_value_size(self, key: bytes) -> int | None:
        """An edge size for the next value (one draw), or None for an ordinary one."""
        mix = self.mix
        draw = self.rng.random()
        if draw < mix.empty_value_probability:
            return 0
        draw -= mix.empty_value_probability
        if draw < mix.maximal_value_probability:
            return VALUE_SIZE_MAX_BYTES
        draw -= mix.maximal_value_probability
        if draw < mix.target_frame_value_probability:
            return FRAME_PAYLOAD_SIZE_TARGET_BYTES - RECORD_HEADER_SIZE - len(key) + self.rng.randint(-1, 1)
        return None

    def _kind(self) -> str:
        """`rng.choices(kinds, weights)[0]`, drawing the same, without rebuilding the
        cumulative weights on every call (this runs once per operation)."""
        cumulative = self._cumulative_weights
        return self._kinds[bisect(cumulative, self.rng.random() * cumulative[-1], 0, len(cumulative) - 1)]

    def next(self) -> Operation:
        if self._queued:
            return self._queued.pop()
        self.step += 1
        if self._edges and (edge := self._edge()) is not None:
            return edge
        return KINDS[self._kind()].draw(self)

    def _edge(self) -> Operation | None:
        """One draw: an edge operation (the first of a burst), or None for an ordinary one."""
        draw = self.rng.random()
        for make, probability in zip(
            (self._full_frame, self._many_keys, self._burst, self._long_pause), self.mix.edge_weights(), strict=True
        ):
            if draw < probability:
                return make()
            draw -= probability
        return None

    def _full_frame(self) -> Operation:
        """A set_many whose frame payload is FRAME_PAYLOAD_SIZE_MAX_BYTES exactly: three
        maximal values and one that takes the rest."""
        keys = [b"frame-%d" % index for index in range(4)]
        overhead = sum(map(len, keys)) + RECORD_HEADER_SIZE * len(keys)
        last = FRAME_PAYLOAD_SIZE_MAX_BYTES - overhead - 3 * VALUE_SIZE_MAX_BYTES
        assert 0 <= last <= VALUE_SIZE_MAX_BYTES, last
        stamp = b"%d:" % self.step
        sizes = (VALUE_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES, last)
        return Operation(
            "set_many",
            {key: (stamp * (size // len(stamp) + 1))[:size] for key, size in zip(keys, sizes, strict=True)},
        )

    def _many_keys(self) -> Operation:
        """A set_many of many small values over many keys (beyond the usual key space)."""
        count = self.rng.randint(1, self.mix.many_keys_max)
        stamp = b"%d" % self.step
        return Operation("set_many", {b"many%06d" % index: stamp for index in range(count)})

    def _burst(self) -> Operation:
        """More writes than BATCH_OPERATIONS_MAX, back to back (no pause, no read)."""
        count = BATCH_OPERATIONS_MAX + self.rng.randint(1, self.mix.burst_extra_writes_max)
        # Short keys only: a burst of 16 KiB keys would fill a frame (the byte bound) long
        # before it reached the operation bound it is meant to cross.
        keys = [key for key in self._keys if len(key) <= BURST_KEY_SIZE_MAX_BYTES]
        burst: list[Operation] = []
        for index in range(count):
            key = keys[self.rng.randrange(len(keys))]
            burst.append(Operation("set", {key: b"%d.%d" % (self.step, index)}))
        burst.reverse()
        self._queued = burst
        return self._queued.pop()

    def _long_pause(self) -> Operation:
        """Idle for longer than BATCH_INTERVAL_MS_MAX (one to five times it, and 1 us)."""
        return pause_operation(BATCH_INTERVAL_MS_MAX * 1000 * self.rng.randint(1, 5) + 1)


def pause_operation(microseconds: int) -> Operation:
    """A pause of this length (a plain `Operation("pause", {})` lasts PAUSE_US)."""
    return Operation("pause", {}, (microseconds,))


def pause_us(operation: Operation) -> int:
    """How long a pause operation idles: its length argument, else PAUSE_US."""
    return pause_length(operation)


def apply(model: Model, operation: Operation, now_ms: int = 0) -> Model:
    """The model after `operation`, started at `now_ms` of the store's clock (a new
    dict; reads change nothing; only TTLs read the clock)."""
    return kind_of(operation).apply_at(model, operation, now_ms)


def run_operation(store: Store, operation: Operation) -> object:
    """Drive the store with one operation; return what its kind checks (what a `get`
    read, a `verify`'s report), else None."""
    return kind_of(operation).run(store, operation)


def read_state(store: Store) -> Model:
    """Every key and value the store returns now."""
    state = {}
    for key in store.keys():
        value = read_value(store, key)
        assert value is not None, key
        state[key] = value
    return state
