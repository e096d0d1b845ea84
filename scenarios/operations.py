"""The operation registry: every kind of workload operation, defined once.

An operation is data (`Operation`: its kind, the keys it touches with the values it
writes, and any further arguments). Each kind is one `OperationKind` in `KINDS`, which
knows everything the harness needs of it:

- `draw`: make one in a seeded workload (`scenarios.workload.Workload`);
- `apply`: the model after it (`scenarios.workload.apply`); `apply_at` too, for a kind
  whose effect depends on the clock (a TTL counts from the store's `io.now()` when the
  operation starts, which the harness knows);
- `run`: do it on a store (`scenarios.workload.run_operation`);
- `check`: what the oracle checks of its answer (a `get`'s value, a `verify`'s report);
- `describe`: one line of a timeline (the trace hash takes the operation itself);
- `to_json` / `from_json`: its form in a replay file (`scenarios.schedule`);
- `simpler`: smaller variants, for the shrinker (`scenarios.shrink`);
- `strategy`: a hypothesis strategy (`scenarios.strategies.operations`, the state machine).

The class flags say how the oracle and the harness treat a kind: `writes` (it changes
keys: the model moves, a crash may leave it in flight), `syncs` (it returns only once
every earlier write is durable), `reads` (a plain read: when it fails the store stays
usable), `skips_when_absent` (a write the store acknowledges without writing when none
of its keys exists), `idles` (virtual time passes, nothing is asked of the store) and
`reopens` (a clean close and open, which planned crashes may hit).

Expiry: a model value that expires is an `Expiring` (bytes, with its absolute
`expiry_ms`); `visible(model, now_ms)` is the model as a store reads it at `now_ms`
(Redis's rule: a key is gone once the clock is past its expiry). The oracle prunes its
model with it as each operation starts and judges recoveries by it at the moment the
harness read the store.

Adding an operation: give the store its method, then add one `OperationKind` here. A
kind's `default_weight` is its weight in a `WorkloadMix` that does not name it; new kinds
default to 0, so an existing scenario draws exactly what it drew before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Set
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

from kv.errors import NotAnInteger, WrongType
from kv.io import File, Future, Io, OpenMode
from kv.store import INT64_MAX, INT64_MIN, Store, VerifyReport, parse_int64
from kv.store import open as open_store

if TYPE_CHECKING:
    import random

    from hypothesis import strategies as st

Model = dict[bytes, bytes]
Changes = dict[bytes, bytes | None]
Argument = int | bytes
# Values shown in a timeline are cut to this many characters.
VALUE_SHOWN_CHARS_MAX = 24
# A timeline line names at most this many of an operation's keys.
KEYS_SHOWN_MAX = 3


class Expiring(bytes):
    """A model value that expires at `expiry_ms` (absolute ms of the store's clock).
    Equal to the plain bytes it holds: where the expiry matters, compare `expiry_of`."""

    expiry_ms: int

    def __new__(cls, value: bytes, expiry_ms: int) -> Expiring:
        assert expiry_ms > 0, expiry_ms
        made = super().__new__(cls, value)
        made.expiry_ms = expiry_ms
        return made

    def __repr__(self) -> str:
        return f"{bytes(self)!r}@{self.expiry_ms}ms"

    def __reduce__(self) -> tuple[type[Expiring], tuple[bytes, int]]:
        return (Expiring, (bytes(self), self.expiry_ms))


class ListValue(bytes):
    """A model value that is a list: its `elements`, head first. As bytes it is their
    length-prefixed encoding behind a marker no workload string starts with, so two
    lists (and a list and a string) compare as their contents do."""

    elements: tuple[bytes, ...]

    def __new__(cls, elements: tuple[bytes, ...]) -> ListValue:
        made = super().__new__(cls, b"\x00list" + b"".join(b"%d:%s" % (len(element), element) for element in elements))
        made.elements = elements
        return made

    def __repr__(self) -> str:
        return f"list{list(self.elements)!r}"

    def __reduce__(self) -> tuple[type[ListValue], tuple[tuple[bytes, ...]]]:
        return (ListValue, (self.elements,))


def list_elements(value: bytes | None) -> tuple[bytes, ...]:
    """A model value's list elements (none for a missing key)."""
    return value.elements if type(value) is ListValue else ()


def read_value(store: Store, key: bytes) -> bytes | None:
    """A key's value as the model holds it: its string, or its list as a `ListValue`."""
    try:
        return store.get(key)
    except WrongType:
        elements = tuple(store.lrange(key, 0, -1))
        return ListValue(elements) if elements else None


def expiry_of(value: bytes) -> int:
    """A model value's expiry in ms, 0 for none."""
    return value.expiry_ms if type(value) is Expiring else 0


def expired(value: bytes, now_ms: int) -> bool:
    """Whether a model value is gone at `now_ms` (Redis: once the clock is past it)."""
    return type(value) is Expiring and now_ms > value.expiry_ms


def visible(model: Model, now_ms: int) -> Model:
    """The model as a store reads it at `now_ms`: expired keys dropped (`model` itself
    when none is)."""
    if Expiring not in set(map(type, model.values())):  # in C: no Python call per value
        return model
    if not any(expired(value, now_ms) for value in model.values()):
        return model
    return {key: value for key, value in model.items() if not expired(value, now_ms)}


class Operation(NamedTuple):
    """One operation: `kind` (a key of `KINDS`), the keys it touches (each mapped to the
    value it writes, or None: a delete, or a key it only reads) and its other arguments
    (a pause's length, ...)."""

    kind: str
    changes: Changes
    arguments: tuple[Argument, ...] = ()


class Drawing(Protocol):
    """What a kind's `draw` may ask of the workload drawing it."""

    rng: random.Random
    step: int  # the number of the operation being drawn (values are stamped with it)

    @property
    def batch_size_max(self) -> int: ...

    def key(self) -> bytes: ...

    def below(self, bound: int) -> int:
        """`rng.randrange(bound)`, drawing the same."""
        ...

    def value(self, stamp: bytes, key: bytes = b"") -> bytes: ...


class Checker(Protocol):
    """What a kind's `check` may ask of the harness (which asks the oracle)."""

    def check_read(self, key: bytes, value: bytes | None) -> None: ...

    def check_verify(self, report: VerifyReport) -> None: ...

    def check_answer(self, operation: Operation, answer: object, expected: Callable[[Model], object]) -> None:
        """`answer` must be `expected(model)` of the model before `operation`, unless
        one of its keys has a value the oracle cannot vouch for."""
        ...

    @property
    def now_ms(self) -> int:
        """The store's clock (ms of `io.now()`) as the operation being checked started."""
        ...

    def check_scan(self, request: ScanRequest, answer: list[tuple[bytes, bytes]]) -> None:
        """A `scan`'s pairs: in order, in range, the model's (see `Oracle.check_scan`)."""
        ...

    def check_cursor_scan(self, steps: list[list[bytes]]) -> None:
        """A whole cursor scan's steps: every key present returned at least once."""
        ...

    def check_read_only_open(self, view: ReadOnlyView) -> None:
        """What a read-only open beside the writer saw and did (`Oracle.check_read_only_open`)."""
        ...


class KindError(ValueError):
    """An operation that its kind does not accept (a bad replay file, a bad argument)."""


def shown(value: bytes | None) -> str:
    """A value for a timeline: its repr, cut to VALUE_SHOWN_CHARS_MAX characters."""
    if value is None:
        return "None"
    text = repr(value)
    return text if len(text) <= VALUE_SHOWN_CHARS_MAX else f"{text[: VALUE_SHOWN_CHARS_MAX - 1]}…({len(value)}B)"


def _text(key: bytes) -> str:
    return key.decode(errors="replace")


class OperationKind:
    """The defaults every kind starts from: an operation of no keys that changes
    nothing, checks nothing and has nothing simpler."""

    name: ClassVar[str]
    default_weight: ClassVar[float] = 0.0
    writes: ClassVar[bool] = False
    syncs: ClassVar[bool] = False
    idles: ClassVar[bool] = False
    reopens: ClassVar[bool] = False
    reads = False  # a plain read: when it fails, an open store stays usable
    # a write the store acknowledges without writing when none of its keys is present
    skips_when_absent: ClassVar[bool] = False
    # its effect depends on its keys' values: one whose value is unknown stays unknown
    conditional: ClassVar[bool] = False
    key_count: ClassVar[tuple[int, int | None]] = (0, 0)  # keys it takes: at least, at most (None: any)
    values: ClassVar[bool] = False  # its keys carry values (else they map to None)
    # hypothesis draws it (`strategy`, from `key_count` and `values`)
    drawn_by_hypothesis: ClassVar[bool] = False
    # the values it may write are not in its changes but derive from the model (`values_written`)
    derives_values: ClassVar[bool] = False

    def draw(self, drawing: Drawing) -> Operation:
        """No keys, or one key mapped to None (as `key_count` says); kinds with values
        or arguments draw their own."""
        if self.key_count == (1, 1) and not self.values:
            return Operation(self.name, {drawing.key(): None})
        assert self.key_count == (0, 0), f"{self.name} draws its own operations"
        return Operation(self.name, {})

    def apply(self, model: Model, operation: Operation) -> Model:
        return model

    def apply_at(self, model: Model, operation: Operation, now_ms: int) -> Model:
        """`apply` for an operation that started at `now_ms` of the store's clock (on a
        model already `visible` then); only kinds that read the clock override it."""
        return self.apply(model, operation)

    def writes_now(self, model: Model, unknown: Set[bytes], operation: Operation) -> bool | None:
        """Whether the store writes a frame for it in this state: True, False, or None
        when a key whose value is unknown decides (only writes are asked)."""
        if not self.skips_when_absent:
            return True
        if any(key in model and key not in unknown for key in operation.changes):
            return True
        return None if any(key in unknown for key in operation.changes) else False

    def values_written(
        self, operation: Operation, model: Model, written: Mapping[bytes, Set[bytes]], unknown: Set[bytes]
    ) -> Iterator[bytes]:
        """For a kind that `derives_values`: every value it may store for its one key,
        given the model before it (not yet pruned of expired keys), the values once
        written per key and the keys whose value is unknown."""
        return iter(())

    def run(self, store: Store, operation: Operation) -> object:
        """Do it; return what the oracle checks (`check`), or None."""
        return None

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        return None

    def describe(self, operation: Operation) -> str:
        return f"{self.name} {b' '.join(sorted(operation.changes)[:KEYS_SHOWN_MAX]).decode(errors='replace')}".rstrip()

    def simpler(self, operation: Operation, index: int) -> Iterator[Operation]:
        return iter(())

    def strategy(
        self, keys: st.SearchStrategy[bytes], values: st.SearchStrategy[bytes], batch_size_max: int
    ) -> st.SearchStrategy[Operation] | None:
        """A hypothesis strategy for it (from `key_count` and `values`), or None when
        hypothesis does not draw it (`drawn_by_hypothesis`)."""
        if not self.drawn_by_hypothesis:
            return None
        from hypothesis import strategies as st

        least, most = self.key_count
        if most == 0:
            return st.just(Operation(self.name, {}))
        if self.values:
            size_max = batch_size_max if most is None else most
            changes: st.SearchStrategy[Changes] = st.dictionaries(
                keys, values, min_size=max(least, 1), max_size=size_max
            )
            return changes.map(lambda drawn: Operation(self.name, drawn))
        assert self.key_count == (1, 1), self.key_count
        return keys.map(lambda key: Operation(self.name, {key: None}))

    # -- the replay file -----------------------------------------------------------------

    def to_json(self, operation: Operation) -> dict[str, Any]:
        encoded: dict[str, Any] = {
            "op": self.name,
            "changes": [
                [key.decode("latin-1"), None if value is None else value.decode("latin-1")]
                for key, value in operation.changes.items()
            ],
        }
        if operation.arguments:
            encoded["arguments"] = [
                argument if isinstance(argument, int) else argument.decode("latin-1")
                for argument in operation.arguments
            ]
        return encoded

    def from_json(self, encoded: Mapping[str, Any]) -> Operation:
        """Parse its replay form (`to_json`); raises `KindError` with what is wrong."""
        changes = {_latin1(key): None if value is None else _latin1(value) for key, value in encoded["changes"]}
        arguments = tuple(_argument(argument) for argument in encoded.get("arguments", []))
        operation = Operation(self.name, changes, arguments)
        self.validate(operation)
        return operation

    def validate(self, operation: Operation) -> None:
        """Raise `KindError` unless the store could be asked to do `operation`."""
        least, most = self.key_count
        count = len(operation.changes)
        if count < least or (most is not None and count > most):
            raise KindError(f"{self.name} takes {least}..{most if most is not None else 'any'} keys, not {count}")
        carried = [value is not None for value in operation.changes.values()]
        if any(carried) != self.values or (self.values and not all(carried)):
            raise KindError(f"{self.name}: its keys {'need' if self.values else 'take no'} values")
        if operation.arguments:
            raise KindError(f"{self.name} takes no arguments, not {list(operation.arguments)}")


def _latin1(text: Any) -> bytes:
    if not isinstance(text, str):
        raise KindError(f"expected a string, got {text!r}")
    return text.encode("latin-1")


def _argument(argument: Any) -> Argument:
    if isinstance(argument, bool) or not isinstance(argument, int | str):
        raise KindError(f"an argument is a number or a string, not {argument!r}")
    return argument if isinstance(argument, int) else argument.encode("latin-1")


# -- the kinds ---------------------------------------------------------------------------


def _apply_changes(model: Model, operation: Operation) -> Model:
    result = dict(model)
    for key, value in operation.changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


class _Write(OperationKind):
    """A kind that writes its keys' values (None: deletes the key)."""

    writes = True

    def apply(self, model: Model, operation: Operation) -> Model:
        return _apply_changes(model, operation)

    def describe(self, operation: Operation) -> str:
        changes = operation.changes
        listed = [f"{_text(key)}={shown(value)}" for key, value in sorted(changes.items())[:KEYS_SHOWN_MAX]]
        more = f" (+{len(changes) - KEYS_SHOWN_MAX} keys)" if len(changes) > KEYS_SHOWN_MAX else ""
        return f"{self.name} {' '.join(listed)}{more}"

    def simpler(self, operation: Operation, index: int) -> Iterator[Operation]:
        changes = operation.changes
        if any(value is not None and len(value) > 1 for value in changes.values()):
            # Short but still distinct per step, so a stale value is still told apart.
            short = {key: None if value is None else f"v{index}".encode() for key, value in changes.items()}
            if short != changes:
                yield operation._replace(changes=short)


class SetKind(_Write):
    name = "set"
    drawn_by_hypothesis = True
    default_weight = 0.45
    key_count = (1, 1)
    values = True

    def draw(self, drawing: Drawing) -> Operation:
        key = drawing.key()
        return Operation(self.name, {key: drawing.value(b"%d:" % drawing.step, key)})

    def run(self, store: Store, operation: Operation) -> object:
        [(key, value)] = operation.changes.items()
        assert value is not None
        store.set(key, value)
        return None


class DeleteKind(_Write):
    name = "delete"
    drawn_by_hypothesis = True
    default_weight = 0.15
    skips_when_absent = True
    key_count = (1, 1)

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        store.delete(key)
        return None


class GetDelKind(DeleteKind):
    """Redis GETDEL: the value (checked as a `get`), and the key removed."""

    name = "getdel"
    default_weight = 0.0

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        return store.getdel(key)

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        assert result is None or isinstance(result, bytes)
        [key] = operation.changes
        checker.check_read(key, result)


class _ConditionalSet(SetKind):
    """A `set` that writes only when its key is absent (`only_if_missing`, Redis NX) or
    present (`only_if_present`, XX); the store answers whether it wrote."""

    default_weight = 0.0
    conditional = True
    if_present: ClassVar[bool]

    def apply(self, model: Model, operation: Operation) -> Model:
        [key] = operation.changes
        return super().apply(model, operation) if (key in model) == self.if_present else model

    def writes_now(self, model: Model, unknown: Set[bytes], operation: Operation) -> bool | None:
        [key] = operation.changes
        return None if key in unknown else (key in model) == self.if_present

    def run(self, store: Store, operation: Operation) -> object:
        [(key, value)] = operation.changes.items()
        assert value is not None
        return store.set(key, value, only_if_missing=not self.if_present, only_if_present=self.if_present)

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        checker.check_answer(operation, result, lambda model: (key in model) == self.if_present)


class SetIfMissingKind(_ConditionalSet):
    name = "set_if_missing"
    if_present = False


class SetIfPresentKind(_ConditionalSet):
    name = "set_if_present"
    if_present = True


class SetManyKind(_Write):
    name = "set_many"
    drawn_by_hypothesis = True
    default_weight = 0.15
    key_count = (1, None)
    values = True

    def draw(self, drawing: Drawing) -> Operation:
        stamp = b"%d:" % drawing.step
        changes: Changes = {}
        for _ in range(1 + drawing.below(drawing.batch_size_max)):  # `rng.randrange(1, max + 1)`
            key = drawing.key()  # drawn before its value, as always
            changes[key] = drawing.value(stamp, key)
        return Operation(self.name, changes)

    def run(self, store: Store, operation: Operation) -> object:
        store.set_many({key: value for key, value in operation.changes.items() if value is not None})
        return None

    def simpler(self, operation: Operation, index: int) -> Iterator[Operation]:
        items = list(operation.changes.items())
        if len(items) > 1:
            for drop in range(len(items)):
                yield operation._replace(changes=dict(items[:drop] + items[drop + 1 :]))
        yield from super().simpler(operation, index)


class GetKind(OperationKind):
    name = "get"
    drawn_by_hypothesis = True
    default_weight = 0.2
    reads = True
    key_count = (1, 1)

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        return store.get(key)

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        assert result is None or isinstance(result, bytes)
        [key] = operation.changes
        checker.check_read(key, result)


class _Sync(OperationKind):
    """A kind that returns only once every earlier write is durable."""

    syncs = True
    drawn_by_hypothesis = True


class FlushKind(_Sync):
    name = "flush"
    default_weight = 0.03

    def run(self, store: Store, operation: Operation) -> object:
        store.flush()
        return None


class CompactKind(_Sync):
    name = "compact"
    default_weight = 0.02

    def run(self, store: Store, operation: Operation) -> object:
        store.compact()
        return None


class GroupCommitKind(_Sync):
    """The end of one window of `kv serve` (`kv.group_commit`): one flush for every
    session with replies waiting, then their replies. The `server` scenario runs it
    through the group commit (`scenarios.server`); on a plain store it is a flush."""

    name = "group_commit"
    drawn_by_hypothesis = False

    def run(self, store: Store, operation: Operation) -> object:
        store.flush()
        return None


class VerifyKind(OperationKind):
    """`stats()`, then `verify()`, whose report the oracle compares with the damage the
    disk knows it left."""

    name = "verify"

    def run(self, store: Store, operation: Operation) -> object:
        store.stats()
        return store.verify()

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        assert isinstance(result, VerifyReport)
        checker.check_verify(result)


# A plain pause lasts this long: virtual time passes with no request (an idle client),
# so time bounds such as `batch` mode's sync deadline come into play.
PAUSE_US = 4_000


class PauseKind(OperationKind):
    """Idle: the harness moves the virtual clock (PAUSE_US, or its one argument, in us)."""

    name = "pause"
    idles = True

    def describe(self, operation: Operation) -> str:
        return f"pause us={pause_length(operation)}" if operation.arguments else "pause"

    def validate(self, operation: Operation) -> None:
        arguments = operation.arguments
        if operation.changes or len(arguments) > 1 or (arguments and not _positive(arguments[0])):
            raise KindError(f"pause takes no keys and at most one positive length in us, not {operation!r}")


def pause_length(operation: Operation) -> int:
    """How long a pause (or a clock jump) idles, in us: its argument, else PAUSE_US."""
    assert kind_of(operation).idles, operation.kind
    [length] = operation.arguments or (PAUSE_US,)
    assert isinstance(length, int), length
    return length


def _positive(argument: Argument) -> bool:
    return isinstance(argument, int) and argument > 0


# -- expiry (TTL on the store's clock) ---------------------------------------------------

# TTLs drawn: short ones (a few operations long, so expiry lands between and inside
# operations), and long ones that only a clock jump or a long run reaches.
TTL_SHORT_MS_MAX = 20
TTL_LONG_MS_MAX = 3_000
TTL_SHORT_PROBABILITY = 0.5
# A clock jump idles this long at most (past most long TTLs), in us.
CLOCK_JUMP_US_MAX = 4_000_000


def _ttl_ms(drawing: Drawing) -> int:
    rng = drawing.rng
    if rng.random() < TTL_SHORT_PROBABILITY:
        return rng.randint(1, TTL_SHORT_MS_MAX)
    return rng.randint(TTL_SHORT_MS_MAX + 1, TTL_LONG_MS_MAX)


def _one_int_argument(kind: OperationKind, operation: Operation, least: int) -> int:
    arguments = operation.arguments
    if len(arguments) != 1 or not isinstance(arguments[0], int) or arguments[0] < least:
        raise KindError(f"{kind.name} takes one int argument of at least {least} (ms), not {list(arguments)}")
    return arguments[0]


class SetTtlKind(SetKind):
    """`set(key, value, ttl=)`: the key expires its argument's ms after the operation
    starts (the store reads `io.now()` before any I/O of the call)."""

    name = "set_ttl"
    default_weight = 0.0

    def draw(self, drawing: Drawing) -> Operation:
        key = drawing.key()
        return Operation(self.name, {key: drawing.value(b"%d:" % drawing.step, key)}, (_ttl_ms(drawing),))

    def apply_at(self, model: Model, operation: Operation, now_ms: int) -> Model:
        [(key, value)] = operation.changes.items()
        assert value is not None
        return {**model, key: Expiring(value, now_ms + ttl_argument(operation))}

    def run(self, store: Store, operation: Operation) -> object:
        [(key, value)] = operation.changes.items()
        assert value is not None
        store.set(key, value, ttl=ttl_argument(operation) / 1000)
        return None

    def describe(self, operation: Operation) -> str:
        return f"{super().describe(operation)} ttl_ms={ttl_argument(operation)}"

    def validate(self, operation: Operation) -> None:
        super().validate(operation._replace(arguments=()))
        _one_int_argument(self, operation, 1)

    drawn_by_hypothesis = False  # the state machine's model has no clock


def ttl_argument(operation: Operation) -> int:
    [ttl_ms] = operation.arguments
    assert isinstance(ttl_ms, int), ttl_ms
    return ttl_ms


class _ExpiryWrite(OperationKind):
    """A write of a key's expiry alone (the store writes its value again): what it does
    depends on whether the key exists, so a key whose value is unknown stays unknown."""

    writes = True
    conditional = True
    key_count = (1, 1)

    def changes_expiry(self, model: Model, key: bytes) -> bool:
        return key in model

    def writes_now(self, model: Model, unknown: Set[bytes], operation: Operation) -> bool | None:
        [key] = operation.changes
        return None if key in unknown else self.changes_expiry(model, key)

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        checker.check_answer(operation, result, lambda model: self.changes_expiry(model, key))


class ExpireKind(_ExpiryWrite):
    """`expire(key, seconds)`: its argument in ms from the operation's start; 0 (not in
    the future) deletes the key, as Redis EXPIRE does. Answers whether the key existed."""

    name = "expire"
    # Of the expires drawn, this many delete (a time not in the future).
    DELETING_PROBABILITY: ClassVar[float] = 0.1

    def draw(self, drawing: Drawing) -> Operation:
        ttl_ms = 0 if drawing.rng.random() < self.DELETING_PROBABILITY else _ttl_ms(drawing)
        return Operation(self.name, {drawing.key(): None}, (ttl_ms,))

    def apply_at(self, model: Model, operation: Operation, now_ms: int) -> Model:
        [key] = operation.changes
        if key not in model:
            return model
        ttl_ms = ttl_argument(operation)
        if ttl_ms <= 0:
            return {name: value for name, value in model.items() if name != key}
        return {**model, key: Expiring(model[key], now_ms + ttl_ms)}

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        return store.expire(key, ttl_argument(operation) / 1000)

    def describe(self, operation: Operation) -> str:
        return f"{super().describe(operation)} ttl_ms={ttl_argument(operation)}"

    def validate(self, operation: Operation) -> None:
        super().validate(operation._replace(arguments=()))
        _one_int_argument(self, operation, 0)


class PersistKind(_ExpiryWrite):
    """`persist(key)`: the key's expiry removed; answers whether it had one."""

    name = "persist"

    def changes_expiry(self, model: Model, key: bytes) -> bool:
        return key in model and expiry_of(model[key]) != 0

    def apply_at(self, model: Model, operation: Operation, now_ms: int) -> Model:
        [key] = operation.changes
        if not self.changes_expiry(model, key):
            return model
        return {**model, key: bytes(model[key])}

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        return store.persist(key)


def ttl_answers(model: Model, key: bytes, now_ms: int) -> tuple[int, int, int]:
    """What `pttl`, `ttl` and `pexpiretime` answer for `key` at `now_ms` (Redis's
    -2 for a missing key, -1 for one without expiry; TTL rounds to the nearest second)."""
    if key not in model:
        return (-2, -2, -2)
    expiry_ms = expiry_of(model[key])
    if not expiry_ms:
        return (-1, -1, -1)
    remaining_ms = expiry_ms - now_ms
    return (remaining_ms, (remaining_ms + 500) // 1000, expiry_ms)


class TtlKind(OperationKind):
    """A read of a key's expiry: `pttl`, `ttl` and `pexpiretime`, checked against the
    model at the operation's start (none of the three does I/O, so all three read the
    clock the harness saw)."""

    name = "ttl"
    reads = True
    key_count = (1, 1)

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        return (store.pttl(key), store.ttl(key), store.pexpiretime(key))

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        now_ms = checker.now_ms
        checker.check_answer(operation, result, lambda model: ttl_answers(model, key, now_ms))


class ClockJumpKind(PauseKind):
    """Idle for up to CLOCK_JUMP_US_MAX (its argument, in us): the clock jumps past
    expiries with nothing asked of the store (a suspended client, a long night)."""

    name = "clock_jump"

    def draw(self, drawing: Drawing) -> Operation:
        return Operation(self.name, {}, (drawing.rng.randint(1, CLOCK_JUMP_US_MAX),))

    def describe(self, operation: Operation) -> str:
        return f"clock_jump us={pause_length(operation)}"

    def validate(self, operation: Operation) -> None:
        if operation.changes:
            raise KindError(f"clock_jump takes no keys, not {operation!r}")
        _one_int_argument(self, operation, 1)


class ReopenKind(OperationKind):
    """A clean close and open (the harness does both; planned crashes may hit either)."""

    name = "reopen"
    reopens = True


# -- lists (queues) ------------------------------------------------------------------------

# List operations draw their keys from these (apart from the string keys, so no write of
# one kind meets a value of the other: `WrongType` is the store's, tested apart).
LIST_KEYS = (b"queue0", b"queue1", b"queue2")
# A push appends this many elements at most, in one frame.
PUSH_ELEMENTS_MAX = 4


def _list_key(drawing: Drawing) -> bytes:
    return LIST_KEYS[drawing.below(len(LIST_KEYS))]


def push_elements(operation: Operation) -> tuple[bytes, ...]:
    """The elements a push appends, in order: its value, stamped with their index."""
    [(_key, stamp)] = operation.changes.items()
    assert stamp is not None
    [count] = operation.arguments or (1,)
    assert isinstance(count, int)
    return tuple(b"%s.%d" % (stamp, index) for index in range(count))


def invented(value: bytes, written: Set[bytes]) -> bool:
    """Whether a value the store returned for a key was never written to it: for a
    list, whether one of its elements was never pushed (`written` holds the pushes'
    stamps, as for any write its `changes` values)."""
    if type(value) is ListValue:
        return any(element.rpartition(b".")[0] not in written for element in value.elements)
    return value not in written


class _Push(OperationKind):
    """`rpush`/`lpush(key, *elements)`: all of them or none after a crash, durable on
    return in every mode (with every write before it). What it writes depends on the
    list already there, so an unknown list stays unknown."""

    writes = True
    syncs = True
    conditional = True
    key_count = (1, 1)
    values = True
    right: ClassVar[bool]

    def draw(self, drawing: Drawing) -> Operation:
        count = 1 + drawing.below(PUSH_ELEMENTS_MAX)
        return Operation(self.name, {_list_key(drawing): b"%d" % drawing.step}, (count,))

    def apply(self, model: Model, operation: Operation) -> Model:
        [key] = operation.changes
        elements = list_elements(model.get(key))
        for element in push_elements(operation):
            elements = (*elements, element) if self.right else (element, *elements)
        return {**model, key: ListValue(elements)}

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        push = store.rpush if self.right else store.lpush
        return push(key, *push_elements(operation))

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        length = len(push_elements(operation))
        checker.check_answer(operation, result, lambda model: len(list_elements(model.get(key))) + length)

    def describe(self, operation: Operation) -> str:
        [key] = operation.changes
        return f"{self.name} {_text(key)} {' '.join(shown(element) for element in push_elements(operation))}"

    def validate(self, operation: Operation) -> None:
        super().validate(operation._replace(arguments=()))
        _one_int_argument(self, operation, 1)


class RPushKind(_Push):
    name = "rpush"
    right = True


class LPushKind(_Push):
    name = "lpush"
    right = False


class _Pop(OperationKind):
    """`lpop`/`rpop(key)`: the element at one end, checked against the model; durable
    on return in every mode, so no crash brings it back. No list: nothing written (and
    nothing synced)."""

    writes = True
    syncs = True
    conditional = True
    skips_when_absent = True
    key_count = (1, 1)
    left: ClassVar[bool]

    def draw(self, drawing: Drawing) -> Operation:
        return Operation(self.name, {_list_key(drawing): None})

    def apply(self, model: Model, operation: Operation) -> Model:
        [key] = operation.changes
        elements = list_elements(model.get(key))
        if not elements:
            return model
        rest = elements[1:] if self.left else elements[:-1]
        if rest:
            return {**model, key: ListValue(rest)}
        return {name: value for name, value in model.items() if name != key}

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        return store.lpop(key) if self.left else store.rpop(key)

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        checker.check_answer(operation, result, lambda model: self.end(list_elements(model.get(key))))

    def end(self, elements: tuple[bytes, ...]) -> bytes | None:
        if not elements:
            return None
        return elements[0] if self.left else elements[-1]


class LPopKind(_Pop):
    name = "lpop"
    left = True


class RPopKind(_Pop):
    name = "rpop"
    left = False


class LRangeKind(OperationKind):
    """`lrange(key, 0, -1)`: the whole list, read as a `get` is (checked as one)."""

    name = "lrange"
    reads = True
    key_count = (1, 1)

    def draw(self, drawing: Drawing) -> Operation:
        return Operation(self.name, {_list_key(drawing): None})

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        elements = store.lrange(key, 0, -1)
        return ListValue(tuple(elements)) if elements else None

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        assert result is None or isinstance(result, ListValue)
        [key] = operation.changes
        checker.check_read(key, result)


class LLenKind(OperationKind):
    """`llen(key)`: the list's length, checked against the model's."""

    name = "llen"
    reads = True
    key_count = (1, 1)

    def draw(self, drawing: Drawing) -> Operation:
        return Operation(self.name, {_list_key(drawing): None})

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        return store.llen(key)

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        checker.check_answer(operation, result, lambda model: len(list_elements(model.get(key))))


# -- counters (Redis INCR, INCRBY, DECRBY) ----------------------------------------------

# Of the incrs drawn, this many add 1 (Redis INCR); the others add INCRBY_MAGNITUDE_MAX
# at most either way (DECRBY too). Small steps keep the values an unknown key may hold
# (every once-written integer plus each step) few.
INCR_BY_ONE_PROBABILITY = 0.5
INCRBY_MAGNITUDE_MAX = 9
NOT_AN_INTEGER = "not an integer"  # what an incr answers when the store refuses it


def _incremented(model: Model, key: bytes, by: int) -> bytes | None:
    """The value `incr(key, by)` stores on `model` (an int64 sum, in decimal), or None
    when the store refuses it (not an integer, or out of range): Redis's rules."""
    base = parse_int64(bytes(model[key])) if key in model else 0
    if base is None or not INT64_MIN <= base + by <= INT64_MAX:
        return None
    return b"%d" % (base + by)


class IncrKind(OperationKind):
    """`incr(key, by)`: the key's integer plus its argument (0 when the key is absent),
    stored and answered; refused (NotAnInteger, nothing written) for a value that is not
    an int64 or a sum out of range. The key keeps its expiry, as Redis INCR does."""

    name = "incr"
    writes = True
    conditional = True
    derives_values = True
    key_count = (1, 1)

    def draw(self, drawing: Drawing) -> Operation:
        key = drawing.key()
        rng = drawing.rng
        by = 1 if rng.random() < INCR_BY_ONE_PROBABILITY else rng.randint(-INCRBY_MAGNITUDE_MAX, INCRBY_MAGNITUDE_MAX)
        return Operation(self.name, {key: None}, (by,))

    def apply(self, model: Model, operation: Operation) -> Model:
        [key] = operation.changes
        value = _incremented(model, key, incr_argument(operation))
        if value is None:
            return model
        expiry_ms = expiry_of(model[key]) if key in model else 0
        return {**model, key: Expiring(value, expiry_ms) if expiry_ms else value}

    def writes_now(self, model: Model, unknown: Set[bytes], operation: Operation) -> bool | None:
        [key] = operation.changes
        return None if key in unknown else _incremented(model, key, incr_argument(operation)) is not None

    def values_written(
        self, operation: Operation, model: Model, written: Mapping[bytes, Set[bytes]], unknown: Set[bytes]
    ) -> Iterator[bytes]:
        """What it may store: the sum on the model's value, or on nothing (an expired
        key), or, for a key whose value is unknown, on any integer once written for it."""
        [key] = operation.changes
        by = incr_argument(operation)
        bases: list[Model] = [model, {}]
        if key in unknown:
            bases += [{key: value} for value in written.get(key, ())]
        for base in bases:
            value = _incremented(base, key, by)
            if value is not None:
                yield value

    def run(self, store: Store, operation: Operation) -> object:
        [key] = operation.changes
        by = incr_argument(operation)
        try:
            return store.incr(key) if by == 1 else store.incr(key, by)
        except NotAnInteger:
            return NOT_AN_INTEGER

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        [key] = operation.changes
        by = incr_argument(operation)

        def expected(model: Model) -> object:
            value = _incremented(model, key, by)
            return NOT_AN_INTEGER if value is None else int(value)

        checker.check_answer(operation, result, expected)

    def describe(self, operation: Operation) -> str:
        return f"{super().describe(operation)} by={incr_argument(operation)}"

    def validate(self, operation: Operation) -> None:
        super().validate(operation._replace(arguments=()))
        arguments = operation.arguments
        if len(arguments) != 1 or not isinstance(arguments[0], int):
            raise KindError(f"incr takes one int argument (the increment), not {list(arguments)}")


def incr_argument(operation: Operation) -> int:
    [by] = operation.arguments
    assert isinstance(by, int), by
    return by


# -- atomic batches (`store.batch()`) ----------------------------------------------------

# A batch drawn holds this many writes, on at most BATCH_KEYS_MAX keys (few, so that its
# writes meet: a set then an expire of the same key, a delete then a set).
BATCH_WRITES_MIN = 2
BATCH_WRITES_MAX = 5
BATCH_KEYS_MAX = 3
# How a batch's writes are drawn: set, delete, expire (the rest); a set carries a TTL so often.
BATCH_SET_PROBABILITY = 0.5
BATCH_DELETE_PROBABILITY = 0.25
BATCH_SET_TTL_PROBABILITY = 0.2
BATCH_VERBS = (b"set", b"delete", b"expire")


class BatchWrite(NamedTuple):
    """One write of a batch: `verb` (set, delete, expire), its key, a set's value, and
    `ttl_ms` (a set's TTL, 0 for none; an expire's, 0 deletes)."""

    verb: bytes
    key: bytes
    value: bytes = b""
    ttl_ms: int = 0


def batch_writes(operation: Operation) -> list[BatchWrite]:
    """A batch's writes, from its arguments (four per write); raises `KindError`."""
    arguments = operation.arguments
    if not arguments or len(arguments) % 4:
        raise KindError(f"batch takes writes of four arguments (verb, key, value, ttl_ms), not {list(arguments)}")
    writes = []
    for start in range(0, len(arguments), 4):
        verb, key, value, ttl_ms = arguments[start : start + 4]
        well_formed = isinstance(key, bytes) and isinstance(value, bytes) and isinstance(ttl_ms, int) and ttl_ms >= 0
        if verb not in BATCH_VERBS or not well_formed or (verb != b"set" and value):
            raise KindError(f"batch: a bad write {[verb, key, value, ttl_ms]}")
        assert isinstance(verb, bytes) and isinstance(key, bytes) and isinstance(value, bytes)
        assert isinstance(ttl_ms, int)
        writes.append(BatchWrite(verb, key, value, ttl_ms))
    return writes


def batch_operation(writes: list[BatchWrite]) -> Operation:
    """The operation of these writes: its changes map each key to the value its last
    set stores (what the batch may write for it), or None."""
    changes: Changes = {}
    for write in writes:
        if write.verb == b"set" or write.key not in changes:
            changes[write.key] = write.value if write.verb == b"set" else None
    return Operation("batch", changes, tuple(argument for write in writes for argument in write))


def batch_effect(model: Model, writes: list[BatchWrite], now_ms: int) -> tuple[Model, list[bool]]:
    """The model after the writes, in order, at `now_ms` (on a model `visible` then),
    and each write's answer (a set: True; a delete, an expire: whether the key existed)."""
    result = dict(model)
    answers = []
    for write in writes:
        key = write.key
        if write.verb == b"set":
            result[key] = Expiring(write.value, now_ms + write.ttl_ms) if write.ttl_ms else write.value
            answers.append(True)
            continue
        answers.append(key in result)
        if key not in result:
            continue
        if write.verb == b"delete" or write.ttl_ms <= 0:
            del result[key]
        else:
            result[key] = Expiring(result[key], now_ms + write.ttl_ms)
    return result, answers


class BatchKind(OperationKind):
    """`with store.batch() as b:` sets (some with a TTL), deletes and expires of a few
    keys, committed as one frame: the model takes all of them or, after a crash in it,
    none. Answers each write's result (a delete's or an expire's "existed")."""

    name = "batch"
    writes = True
    conditional = True  # a delete's or an expire's effect depends on whether its key exists
    key_count = (1, None)

    def draw(self, drawing: Drawing) -> Operation:
        rng = drawing.rng
        keys = [drawing.key() for _ in range(rng.randint(1, BATCH_KEYS_MAX))]
        writes = []
        for _ in range(rng.randint(BATCH_WRITES_MIN, BATCH_WRITES_MAX)):
            key = keys[drawing.below(len(keys))]
            draw = rng.random()
            if draw < BATCH_SET_PROBABILITY:
                ttl_ms = _ttl_ms(drawing) if rng.random() < BATCH_SET_TTL_PROBABILITY else 0
                writes.append(BatchWrite(b"set", key, drawing.value(b"%d:" % drawing.step, key), ttl_ms))
            elif draw < BATCH_SET_PROBABILITY + BATCH_DELETE_PROBABILITY:
                writes.append(BatchWrite(b"delete", key))
            else:
                ttl_ms = 0 if rng.random() < ExpireKind.DELETING_PROBABILITY else _ttl_ms(drawing)
                writes.append(BatchWrite(b"expire", key, b"", ttl_ms))
        return batch_operation(writes)

    def apply_at(self, model: Model, operation: Operation, now_ms: int) -> Model:
        return batch_effect(model, batch_writes(operation), now_ms)[0]

    def writes_now(self, model: Model, unknown: Set[bytes], operation: Operation) -> bool | None:
        """True when some key surely ends changed (a record); None when a key whose
        value is unknown decides; else False (nothing exists to delete or expire)."""
        writes = batch_writes(operation)
        after = batch_effect(model, writes, 0)[0]  # whether a key ends present does not depend on the clock
        first_verbs: dict[bytes, bytes] = {}
        for write in writes:
            first_verbs.setdefault(write.key, write.verb)
        undecided = False
        for key, first_verb in first_verbs.items():
            if key in unknown and (first_verb != b"set" or key not in after):
                undecided = True
            elif key in after or key in model:
                return True
        return None if undecided else False

    def run(self, store: Store, operation: Operation) -> object:
        with store.batch() as batch:
            for write in batch_writes(operation):
                if write.verb == b"set":
                    batch.set(write.key, write.value, ttl=write.ttl_ms / 1000 if write.ttl_ms else None)
                elif write.verb == b"delete":
                    batch.delete(write.key)
                else:
                    batch.expire(write.key, write.ttl_ms / 1000)
        assert batch.results is not None
        return tuple(batch.results)

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        now_ms = checker.now_ms
        writes = batch_writes(operation)
        checker.check_answer(operation, result, lambda model: tuple(batch_effect(model, writes, now_ms)[1]))

    def describe(self, operation: Operation) -> str:
        parts = []
        for write in batch_writes(operation):
            text = f"{write.verb.decode()} {_text(write.key)}"
            if write.verb == b"set":
                text += f"={shown(write.value)}"
            if write.ttl_ms or write.verb == b"expire":
                text += f" ttl_ms={write.ttl_ms}"
            parts.append(text)
        return f"batch [{'; '.join(parts)}]"

    def simpler(self, operation: Operation, index: int) -> Iterator[Operation]:
        writes = batch_writes(operation)
        if len(writes) > 1:
            for drop in range(len(writes)):
                yield batch_operation(writes[:drop] + writes[drop + 1 :])
        short = [write._replace(value=f"v{index}".encode()) if len(write.value) > 1 else write for write in writes]
        if short != writes:
            yield batch_operation(short)

    def validate(self, operation: Operation) -> None:
        if batch_operation(batch_writes(operation)) != operation:
            raise KindError(f"batch: its changes {operation.changes!r:.80} are not those of its writes")


# -- ordered scans (`scan`, `scan_cursor`) ------------------------------------------------

# How a scan is drawn: each bound, a prefix and a limit present so often; a limit up to
# SCAN_LIMIT_MAX; a cursor scan's count up to SCAN_COUNT_MAX (small: several steps).
SCAN_BOUND_PROBABILITY = 0.5
SCAN_PREFIX_PROBABILITY = 0.3
SCAN_LIMIT_PROBABILITY = 0.4
SCAN_LIMIT_MAX = 10
SCAN_COUNT_MAX = 8
# A cursor scan takes at most this many steps more than its keys need (a bound on the loop).
CURSOR_STEPS_SPARE = 2
SCAN_FIELDS = (b"start", b"stop", b"prefix", b"reverse", b"limit")


class ScanRequest(NamedTuple):
    """What a `scan` asks: `start <= key < stop`, keys starting with `prefix`, in
    descending order when `reverse`, at most `limit` (None: unbounded)."""

    start: bytes | None = None
    stop: bytes | None = None
    prefix: bytes | None = None
    reverse: bool = False
    limit: int | None = None

    def covers(self, key: bytes) -> bool:
        if (self.start is not None and key < self.start) or (self.stop is not None and key >= self.stop):
            return False
        return self.prefix is None or key.startswith(self.prefix)

    def arguments(self) -> tuple[Argument, ...]:
        """Its form as an operation's arguments: (field name, value) pairs, set fields only."""
        pairs: list[Argument] = []
        for name, value in zip(SCAN_FIELDS, self, strict=True):
            if value is not None and value is not False:
                pairs += [name, int(value) if isinstance(value, bool) else value]
        return tuple(pairs)


def scan_request(operation: Operation) -> ScanRequest:
    """A scan's request, from its arguments; raises `KindError`."""
    arguments = operation.arguments
    fields: dict[bytes, Argument] = {}
    for index in range(0, len(arguments) - 1, 2):
        name, value = arguments[index : index + 2]
        if not isinstance(name, bytes) or name not in SCAN_FIELDS or name in fields:
            raise KindError(f"scan: a bad or repeated field {name!r}")
        fields[name] = value
    start, stop, prefix = (fields.get(name) for name in SCAN_FIELDS[:3])
    reverse, limit = fields.get(b"reverse", 0), fields.get(b"limit")
    bounds = [bound for bound in (start, stop, prefix) if bound is not None]
    limit_ok = limit is None or (isinstance(limit, int) and limit >= 0)
    bounds_ok = all(isinstance(bound, bytes) for bound in bounds)
    if len(arguments) % 2 or not bounds_ok or reverse not in (0, 1) or not limit_ok:
        raise KindError(
            f"scan takes (field, value) pairs of {[name.decode() for name in SCAN_FIELDS]}, not {arguments}"
        )
    assert (start is None or isinstance(start, bytes)) and (stop is None or isinstance(stop, bytes))
    assert (prefix is None or isinstance(prefix, bytes)) and (limit is None or isinstance(limit, int))
    return ScanRequest(start, stop, prefix, reverse == 1, limit)


class ScanKind(OperationKind):
    """`scan(start=, stop=, prefix=, reverse=, limit=)`: the live pairs in byte order
    (descending when reversed), checked against the model's keys in that order."""

    name = "scan"
    reads = True

    def draw(self, drawing: Drawing) -> Operation:
        rng = drawing.rng
        start = drawing.key() if rng.random() < SCAN_BOUND_PROBABILITY else None
        stop = drawing.key() if rng.random() < SCAN_BOUND_PROBABILITY else None
        prefix = None
        if rng.random() < SCAN_PREFIX_PROBABILITY:
            key = drawing.key()
            prefix = key[: rng.randint(0, len(key))]
        limit = rng.randint(0, SCAN_LIMIT_MAX) if rng.random() < SCAN_LIMIT_PROBABILITY else None
        request = ScanRequest(start, stop, prefix, rng.random() < 0.5, limit)
        return Operation(self.name, {}, request.arguments())

    def run(self, store: Store, operation: Operation) -> object:
        start, stop, prefix, reverse, limit = scan_request(operation)
        return list(store.scan(start, stop, prefix=prefix, reverse=reverse, limit=limit))

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        assert isinstance(result, list)
        checker.check_scan(scan_request(operation), result)

    def describe(self, operation: Operation) -> str:
        request = scan_request(operation)
        shown_fields = [
            f"{name}={value!r}"
            for name, value in zip(ScanRequest._fields, request, strict=True)
            if value is not None and value is not False
        ]
        return f"scan {' '.join(shown_fields)}".rstrip()

    def validate(self, operation: Operation) -> None:
        if operation.changes:
            raise KindError(f"scan takes no keys, not {sorted(operation.changes)[:3]}")
        scan_request(operation)


class ScanCursorKind(OperationKind):
    """A whole cursor scan (`scan_cursor` from 0 until it answers 0), `count` keys a
    step (its one argument): every key present is returned at least once."""

    name = "scan_cursor"
    reads = True

    def draw(self, drawing: Drawing) -> Operation:
        return Operation(self.name, {}, (drawing.rng.randint(1, SCAN_COUNT_MAX),))

    def run(self, store: Store, operation: Operation) -> object:
        count = _one_int_argument(self, operation, 1)
        steps: list[list[bytes]] = []
        cursor = 0
        for _ in range(len(store) // count + CURSOR_STEPS_SPARE):
            cursor, keys = store.scan_cursor(cursor, count)
            steps.append(keys)
            if cursor == 0:
                return steps
        raise AssertionError(f"a cursor scan of {len(store)} keys, {count} a step, did not end")

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        assert isinstance(result, list)
        checker.check_cursor_scan(result)

    def describe(self, operation: Operation) -> str:
        return f"scan_cursor count={_one_int_argument(self, operation, 1)}"

    def validate(self, operation: Operation) -> None:
        if operation.changes:
            raise KindError(f"scan_cursor takes no keys, not {sorted(operation.changes)[:3]}")
        _one_int_argument(self, operation, 1)


# -- a read-only open beside the writer (`kv.open(read_only=True)`) ------------------------


class WriteWitness:
    """An `Io` that passes every call to `io` and remembers each one that could change
    the disk (a write, sync, truncate, rename, unlink, mkdir, lock, or an open for
    writing), as "operation path"."""

    def __init__(self, io: Io) -> None:
        self.io = io
        self.name = io.name
        self.writes: list[str] = []

    def open(self, path: str, mode: OpenMode) -> Future[File]:
        if mode != "r":
            self.writes.append(f"open({mode}) {path}")
        return self.io.open(path, mode)

    def read(self, file: File, offset: int, size: int) -> Future[bytes]:
        return self.io.read(file, offset, size)

    def write(self, file: File, offset: int, data: bytes) -> Future[None]:
        self.writes.append(f"write {file.path}")
        return self.io.write(file, offset, data)

    def sync(self, file: File, data_only: bool = True) -> Future[None]:
        self.writes.append(f"sync {file.path}")
        return self.io.sync(file, data_only)

    def truncate(self, file: File, size: int) -> Future[None]:
        self.writes.append(f"truncate {file.path}")
        return self.io.truncate(file, size)

    def close(self, file: File) -> Future[None]:
        return self.io.close(file)

    def size(self, file: File) -> Future[int]:
        return self.io.size(file)

    def rename(self, source: str, destination: str) -> Future[None]:
        self.writes.append(f"rename {source}")
        return self.io.rename(source, destination)

    def unlink(self, path: str) -> Future[None]:
        self.writes.append(f"unlink {path}")
        return self.io.unlink(path)

    def mkdir(self, path: str) -> Future[None]:
        self.writes.append(f"mkdir {path}")
        return self.io.mkdir(path)

    def sync_dir(self, path: str) -> Future[None]:
        self.writes.append(f"sync_dir {path}")
        return self.io.sync_dir(path)

    def listdir(self, path: str) -> Future[list[str]]:
        return self.io.listdir(path)

    def lock(self, path: str) -> Future[File]:
        self.writes.append(f"lock {path}")
        return self.io.lock(path)

    def now(self) -> float:
        return self.io.now()

    def shutdown(self) -> None:
        """The store it serves does not own the backend: nothing to release."""


class ReadOnlyView(NamedTuple):
    """What a read-only open saw (every key it listed whose value it could read, and
    those that expired before it got to them) and the disk-changing calls it made."""

    state: Model
    expired_while_read: tuple[bytes, ...]
    writes: tuple[str, ...]


class ReadOnlyOpenKind(OperationKind):
    """`kv.open(path, read_only=True)` on the open writer's disk: it must take no lock,
    change nothing, and see what the writer committed (in `always` mode the model; in
    the buffered modes the model before some of the writes not yet known durable)."""

    name = "read_only_open"
    reads = True

    def run(self, store: Store, operation: Operation) -> object:
        witness = WriteWitness(store.io)
        reader = open_store(store.path, io=witness, read_only=True)
        state: Model = {}
        expired_while_read: list[bytes] = []
        try:
            for key in reader.keys():
                value = read_value(reader, key)
                if value is None:
                    expired_while_read.append(key)
                else:
                    state[key] = value
        finally:
            reader.close()
        return ReadOnlyView(state, tuple(expired_while_read), tuple(witness.writes))

    def check(self, checker: Checker, operation: Operation, result: object) -> None:
        assert isinstance(result, ReadOnlyView)
        checker.check_read_only_open(result)


KINDS: dict[str, OperationKind] = {
    kind.name: kind
    for kind in (
        SetKind(),
        DeleteKind(),
        SetManyKind(),
        GetKind(),
        FlushKind(),
        CompactKind(),
        VerifyKind(),
        PauseKind(),
        ReopenKind(),
        GetDelKind(),
        SetIfMissingKind(),
        SetIfPresentKind(),
        SetTtlKind(),
        ExpireKind(),
        PersistKind(),
        TtlKind(),
        ClockJumpKind(),
        RPushKind(),
        LPushKind(),
        LPopKind(),
        RPopKind(),
        LRangeKind(),
        LLenKind(),
        IncrKind(),
        BatchKind(),
        ScanKind(),
        ScanCursorKind(),
        ReadOnlyOpenKind(),
        GroupCommitKind(),
    )
}
WRITE_KINDS = tuple(name for name, kind in KINDS.items() if kind.writes)


def kind_of(operation: Operation) -> OperationKind:
    """The definition of `operation`'s kind; raises `KindError` for an unknown one."""
    try:
        return KINDS[operation.kind]
    except KeyError:
        raise KindError(f"unknown operation {operation.kind!r} (known: {', '.join(KINDS)})") from None
