"""The oracle: what the simulator checks, as pure functions of what happened.

It holds the history of one run (every acknowledged operation, every value ever
written, what each read returned) and is handed, as data, each answer of the store,
each recovery (its report and the state it recovered) and what the simulated disk knows
it damaged. It never touches a store, a disk or a clock: the harness
(`scenarios.runner.Harness`) drives the store and feeds it. Each check raises
`Violation`; `scenarios.promises` maps every promise the store documents to one of them.

Verified (the check's name, then what it demands):

- `check_read`: every `get` returns what the model holds; for a key whose value is
  unknown (an earlier read failed, or a reported loss), a value once written for it or
  nothing.
- `check_answer`: an operation's answer (a conditional set's "written", an expire's or
  a persist's "existed", a ttl read's PTTL, TTL and PEXPIRETIME) is what the model says
  at the operation's start, unless one of its keys has a value the oracle cannot vouch for.
- `check_scan`: a `scan` returns its pairs strictly in byte order (descending when
  reversed), each inside its range and prefix, at most its limit, each value as
  `check_read` demands; and, when no key whose value is unknown falls in the range,
  exactly the model's keys in that order up to the limit (a key that may expire while
  the scan reads values, one the model gives an expiry, may be missing).
- `check_cursor_scan`: a whole cursor scan returns every key of the model at least once,
  each step in byte order past the step before, and no key the model lacks.
- `check_read_only_open`: a read-only open beside the open writer made no call that
  could change the disk (no lock, no write, sync, rename, unlink), and saw a state the
  writer's files can hold: the model in `always` mode, else the model before some of the
  writes not yet known durable (keys with an expiry, which may lapse while it reads,
  and keys whose value is unknown are not compared; where a media fault was ever on,
  only that its values were once written: damage the writer has not read yet may cut
  the reader's replay short, which its report states).
- `check_error`: a store error is a typed `KvError`, and only where a fault is on (or it
  is the `StoreReadOnly` that follows a failed write).
- `check_recovered`: after a crash, a failed write or a failed open, the recovered state
  is the acknowledged state, or that plus the one operation in flight, whole (durability;
  atomicity of `set_many`). In `batch` and `none` modes it may also be the state before
  the acknowledged writes not yet known durable, no shorter than the mode's promise:
  everything before a successful `flush`, `compact` or close, and in `batch` mode every
  write that started more than `BATCH_INTERVAL_MS_MAX` of virtual time before, or more
  than `BATCH_OPERATIONS_MAX` counted writes before, the newest acknowledged one.
- `check_explained`: a loss beyond those outcomes must be reported (a corruption or a
  torn tail in the recovery report) and explained: some reported corruption, and a torn
  tail that took an acknowledged write, points at bytes the disk really damaged (its
  damage ledger, as it was when the open began or as faults fired since). A transient
  read fault is not damage. In `always` mode each damaged torn tail takes at most one
  frame, and only one acknowledged since the last recovery: every open records the log
  durable to its end (`kv.opening`, rule 3), so older frames are protected. Two losses
  no store can see are accepted unreported, and counted: the zeros a lost write leaves
  at the log's tail, and a loss where the file system took the directory entries of
  both the CLEAN marker (the record of the newest segment) and a data file.
- `check_not_invented`: every value the store returns was once written for that key.
- `check_no_false_alarm`: recovery and `verify()` report no damage where no media fault
  was injected.
- `observe_read_only`, then at the next recovery: in `always` mode, a value a read-only store returned after its
  write failed (the write's own value) is still there after the next crash, or its loss
  is reported and explained.
- `check_verify`: `verify()` reports a data file exactly when the damage ledger holds
  damage in the bytes it checked.
- `check_loss_counted`: a recovery that lost acknowledged keys reports at least as many
  records lost.
- `check_salvage_names_older_values`: after a salvage (`on_corruption="salvage"`) that
  reported a loss, a key whose value is not the acknowledged one is named in the report
  (lost, or at risk: an older value kept). Not checked after a re-reported repair
  journal, which names no keys.
- `check_locked`: a second open of an open store fails with `StoreLocked`.
- `check_quarantine`: every file a repair says it quarantined exists under `quarantine/`.
- `check_idempotent`: recovery that runs again, with no new damage, gives the same state.
- `delivered`, then `check_recovered` (the `server` scenario, `scenarios.server`): a
  success reply of `kv serve` leaves only after the sync of its window, so once one is
  delivered every write executed so far must survive a crash (replies sent before the
  group commit's flush, or a read answered while a window is open, break it).
- `check_failed_window`: a group-commit window whose flush failed delivered only error
  replies.
- `check_refused`: a request the server's ACL refuses (the `server` scenario's
  restricted user, `scenarios.server`) got a refusal; the harness applies nothing of
  it, so a refused write that landed anyway fails a later `check_read` or
  `check_recovered`.
- `check_liveness`: with faults off, a clean close and reopen give the model.

Expiry (TTLs on the store's clock): a model value may be an `Expiring`, and the model
is read as a store reads it (`scenarios.operations.visible`). The harness tells the
oracle when each operation starts (`at`): the store reads `io.now()` before any I/O of
a call, so the model pruned at that moment is exactly what its reads see, and a TTL
counts from it. A recovery is judged at the moment the harness listed the store's keys
(`Recovered.at_us`), expiries included (an expiry lost or moved by recovery is a
changed state). Reading the values takes I/O, so virtual time passes: a key listed
then that expired before its value was read (`Recovered.expired_while_read`) is judged
by its presence and expiry at the listing, its value unseen. That is the only
tolerance, and it is exact: nothing else is accepted at the boundary.

Deliberately not checked: how much a media fault destroyed past the damage it points at
(point-in-time recovery drops the rest of a damaged log; only that the loss was reported,
explained and nothing invented), how many operations a torn group-commit frame in `batch`
and `none` modes held, the exact text of errors, and performance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kv.errors import KvError, StoreLocked, StoreReadOnly
from kv.files import classify
from kv.limits import BATCH_INTERVAL_MS_MAX, BATCH_OPERATIONS_MAX
from kv.log import segment_name
from kv.opening import QUARANTINE_DIRECTORY
from kv.recovery import Corruption, RecoveryReport
from kv.store import Durability
from scenarios.operations import (
    ListValue,
    Model,
    Operation,
    OperationKind,
    ReadOnlyView,
    ScanRequest,
    expired,
    expiry_of,
    kind_of,
    visible,
)
from scenarios.operations import invented as invented_value
from scenarios.workload import apply

# In `always` mode, how many acknowledged frames the oracle lets damaged torn tails take
# at one recovery (each torn tail takes one: one per crash inside the recovery before).
FRAMES_TAKEABLE_MAX = 8


class Violation(Exception):
    """An invariant the store promised did not hold."""


class DamageLedger(Protocol):
    """What the simulated disk knows it altered (`SimIo.damaged`)."""

    def damaged(self, path: str, start: int, end: int) -> bool: ...

    def damaged_in(self, directory: str, nested: bool) -> bool: ...

    def entries_lost(self, directory: str) -> list[str]: ...


@dataclass(frozen=True)
class Recovered:
    """One recovery, as data: what the store reported and what it holds now."""

    report: RecoveryReport
    state: Model  # every readable key and its value (faults paused while reading)
    unreadable: Sequence[bytes]  # keys whose read raised a typed error
    in_flight: Operation | None  # the operation a crash or failure interrupted, if any
    directory: str  # the store's directory (to name its files in the damage ledger)
    # Lost or misdirected writes the disk fired before the crash this recovery follows
    # (so far, when no crash preceded it): at the log's tail they leave zeros that read
    # as free space, which no single-disk store can see, and only a crash shows them.
    silent_write_faults: int = 0
    quarantined_present: frozenset[str] = frozenset()  # "quarantine/NAME" for each file found there
    at_us: int = 0  # the clock when the harness listed the keys (the state is the store's then)
    # keys listed then that expired before their value was read: key -> the expiry listed
    expired_while_read: dict[bytes, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How a recovery was judged: the legal outcome it matched, or an accepted loss."""

    # "acknowledged", "in flight", "unsynced", "torn", "reported loss", "silent tail loss",
    # "marker entry loss"
    kind: str
    writes_lost: int = 0
    keys_lost: int = 0


# The outcomes that accept a loss beyond the legal ones (reported and explained, or one no
# store can see, counted).
LOSSES_ACCEPTED = ("reported loss", "silent tail loss", "marker entry loss")


def _marker_and_data_lost(ledger: DamageLedger, directory: str) -> bool:
    """The file system took the CLEAN marker's entry, and with it what names the newest
    segment (`kv.opening`, rule 3), and a data file's entry too: when the newest segments
    went (in crashes with no open between), or every file did, nothing on disk shows
    they existed (documented gap; the loss is accepted unreported, and counted)."""
    lost = classify(ledger.entries_lost(directory))
    return lost.clean_marker and bool(lost.segments or lost.compacted)


def _without(state: Model, keys: frozenset[bytes] | set[bytes]) -> Model:
    return {key: value for key, value in state.items() if key not in keys}


def _same_state(found: Model, expected: Model) -> bool:
    """The same keys, values and expiries."""
    if found != expected:  # values compare as bytes: expiries apart
        return False
    return all(expiry_of(value) == expiry_of(expected[key]) for key, value in found.items())


def _difference(expected: Model, found: Model) -> str:
    """Per key, expected versus actual (at most five of each kind)."""
    missing = sorted(set(expected) - set(found))[:5]
    extra = sorted(set(found) - set(expected))[:5]
    changed = sorted(
        key
        for key in found
        if key in expected and (found[key] != expected[key] or expiry_of(found[key]) != expiry_of(expected[key]))
    )[:5]
    parts = [f"missing {key!r} (expected {expected[key]!r:.40})" for key in missing]
    parts += [f"changed {key!r}: expected {expected[key]!r:.40}, found {found[key]!r:.40}" for key in changed]
    parts += [f"unexpected {key!r} = {found[key]!r:.40}" for key in extra]
    return "; ".join(parts) or "no difference"


@dataclass
class Oracle:
    """The legal-state model of one run and every check on it (see the module docstring)."""

    durability: Durability = "always"
    salvage: bool = False  # the store opens damaged data with on_corruption="salvage"
    media: bool = False  # a fault that damages data was ever on
    faulty: bool = False  # any fault was ever on (damage may outlive the faults)
    model: Model = field(default_factory=dict)
    written: dict[bytes, set[bytes]] = field(default_factory=dict)  # every value ever written per key
    unknown: set[bytes] = field(default_factory=set)  # keys whose value is unknown until rewritten
    # always mode: the model before each frame acknowledged since the last recovery,
    # newest last (at most `FRAMES_TAKEABLE_MAX`): what a damaged tail may take, one
    # frame per torn tail, since every open records its log durable (rule 3)
    before_frames: list[Model] = field(default_factory=list)
    # batch and none modes: (the model before it, the virtual clock when it started)
    # for each acknowledged write not yet known durable, oldest first
    # and the keys whose value was unknown before it
    unsynced: list[tuple[Model, int, frozenset[bytes]]] = field(default_factory=list)
    # batch and none modes: the model before each acknowledged write, the whole run
    history: list[Model] = field(default_factory=list)
    silent_write_faults_checked: int = 0  # lost or misdirected writes already accounted for
    # always mode: values a read-only store returned for its failed write, until recovery
    observed: dict[bytes, bytes | None] = field(default_factory=dict)
    now_us: int = 0  # the store's clock when the current operation started (`at`)
    read_at_us: int = 0  # the clock when the last recovered state was listed

    def at(self, started_us: int) -> None:
        """An operation starts at `started_us` of the store's clock: the model is what
        a read sees then (expired keys are gone; time only moves forward)."""
        self.now_us = started_us
        self.model = visible(self.model, started_us // 1000)

    # -- history ---------------------------------------------------------------------

    def starting(self, operation: Operation, kind: OperationKind | None = None) -> None:
        """An operation (of `kind`, when the caller has it) is about to run: remember the
        values it may write."""
        kind = kind or kind_of(operation)
        if kind.writes:
            written = self.written
            for key, value in operation.changes.items():
                if value is not None:
                    values = written.get(key)
                    if values is None:
                        written[key] = {value}
                    else:
                        values.add(value)
            if kind.derives_values:  # an incr: its value derives from the key's
                [key] = operation.changes
                derived = set(kind.values_written(operation, self.model, written, self.unknown))
                written.setdefault(key, set()).update(derived)

    def acknowledged(self, operation: Operation, started_us: int, kind: OperationKind | None = None) -> None:
        """The store returned from `operation` (a write, flush, compact or read; of
        `kind`, when the caller has it)."""
        if kind is None:
            kind = kind_of(operation)
        if kind.writes:
            unknown = self.unknown
            unknown_before = frozenset(unknown) if self.durability != "always" else frozenset()
            if unknown and not kind.conditional:
                unknown.difference_update(operation.changes)
            writes = kind.writes_now(self.model, unknown, operation)
            if writes is not False:  # `writes_a_frame`
                self._frame_written()
                if self.durability != "always":
                    self.history.append(self.model)
                    self._acknowledged_unsynced(operation, started_us, unknown_before)
            if kind.syncs and writes is True:  # a write synced with everything before it
                self.unsynced.clear()
        elif kind.syncs:  # it synced every earlier write before returning
            self.unsynced.clear()
        self.model = apply(self.model, operation, started_us // 1000)

    def _frame_written(self) -> None:
        """A frame was acknowledged (or an in-flight one made it) after `self.model`."""
        frames = self.before_frames
        frames.append(self.model)
        if len(frames) > FRAMES_TAKEABLE_MAX:
            del frames[0]

    def synced(self) -> None:
        """A clean close synced every acknowledged write."""
        self.unsynced.clear()

    def delivered(self, replies_ok: Sequence[bool]) -> None:
        """The server delivered replies (`replies_ok`: which are not errors): a success
        reply leaves only after the sync of its window, so every write the store has
        executed is acknowledged as durable from then on (`check_recovered` holds it)."""
        if any(replies_ok):
            self.unsynced.clear()

    def check_failed_window(self, flush_failed: bool, replies_ok: Sequence[bool]) -> None:
        """A group-commit window whose flush failed delivered only error replies."""
        successes = sum(replies_ok)
        if flush_failed and successes:
            raise Violation(
                f"a group commit's flush failed (the store is read-only after it), yet {successes} of the "
                f"window's {len(replies_ok)} replies were delivered as successes: nothing of it is durable"
            )

    def check_refused(self, request: str, refused: bool) -> None:
        """A request the ACL refuses (its user may not run the command or touch a key)
        was refused. The caller applies nothing of it: the model stays as it was."""
        if not refused:
            raise Violation(
                f"{request}: the user may not run it (a command or a key its ACL rules refuse), "
                "yet its reply is not a refusal (NOPERM)"
            )

    def writes_a_frame(self, operation: Operation) -> bool:
        """False for a write the store acknowledges without writing (a delete of an absent
        key, a conditional set whose condition failed): then the last frame in the log is
        still the previous write's. True when an unknown value decides."""
        return kind_of(operation).writes_now(self.model, self.unknown, operation) is not False

    def _acknowledged_unsynced(self, operation: Operation, started_us: int, unknown_before: frozenset[bytes]) -> None:
        """A write acknowledged in batch or none mode: it may be lost in a crash, with
        every later one, until the mode's promise makes it durable (and the keys it made
        known again are unknown once more if it is lost)."""
        unsynced = self.unsynced
        unsynced.append((self.model, started_us, unknown_before))
        # Counted only when it surely wrote: counting one that did not would make the
        # oracle believe the store synced earlier than it did.
        counted = kind_of(operation).writes_now(self.model, self.unknown, operation) is True
        if self.durability != "batch" or not counted:
            return
        # The store checks its batch bounds on every write it counts (a delete of an
        # absent key is not one). It syncs once BATCH_INTERVAL_MS_MAX passed since its
        # last sync, and every unsynced write started after that sync: so writes that
        # started that long before this one are durable (1 us spare for float rounding).
        horizon_us = started_us - BATCH_INTERVAL_MS_MAX * 1000 - 1
        durable = 0
        while durable < len(unsynced) and unsynced[durable][1] <= horizon_us:
            durable += 1
        # At most BATCH_OPERATIONS_MAX - 1 counted writes stay unsynced.
        durable = max(durable, len(unsynced) - (BATCH_OPERATIONS_MAX - 1))
        del unsynced[:durable]

    def known(self, model: Model) -> Model:
        """The part of a state the oracle can vouch for: keys whose value it knows."""
        return {key: value for key, value in model.items() if key not in self.unknown}

    # -- answers ---------------------------------------------------------------------

    def check_read(self, key: bytes, value: bytes | None) -> None:
        if key in self.unknown:  # a key whose read failed earlier: any value once written, or none
            if value is not None:
                self.check_not_invented({key: value})
        elif value != self.model.get(key):
            raise Violation(f"get({key!r}) returned {value!r:.80}, the model holds {self.model.get(key)!r:.80}")

    def check_answer(self, operation: Operation, answer: object, expected: Callable[[Model], object]) -> None:
        """An operation's answer (a conditional set's "written") is what the model says,
        unless one of its keys has a value the oracle cannot vouch for."""
        if any(key in self.unknown for key in operation.changes):
            return
        wanted = expected(self.model)
        if answer != wanted:
            keys = sorted(operation.changes)[:3]
            raise Violation(f"{operation.kind} {keys} answered {answer!r:.60}, the model says {wanted!r:.60}")

    def check_scan(self, request: ScanRequest, answer: Sequence[tuple[bytes, bytes]]) -> None:
        """A scan's answer (see the module docstring): order, range, limit, values, and
        the model's keys in order where no unknown key is in the range."""
        keys = [key for key, _value in answer]
        if keys != sorted(set(keys), reverse=request.reverse):
            raise Violation(f"scan {request} returned keys out of order or twice: {keys[:6]}")
        outside = [key for key in keys if not request.covers(key)]
        if outside or (request.limit is not None and len(keys) > request.limit):
            raise Violation(f"scan {request} returned {len(keys)} keys, {outside[:3]} outside its range or limit")
        for key, value in answer:
            self.check_read(key, value)
        if any(request.covers(key) for key in self.unknown):
            return
        strings = (key for key, value in self.model.items() if type(value) is not ListValue)  # scan reads strings
        wanted = sorted((key for key in strings if request.covers(key)), reverse=request.reverse)
        position = 0
        for key in keys:  # a subsequence of the model's keys, skipping only expiring ones
            while wanted[position] != key:  # present: check_read found it in the model
                self._scan_may_skip(request, wanted[position], keys)
                position += 1
            position += 1
        if request.limit is None or len(keys) < request.limit:
            for key in wanted[position:]:
                self._scan_may_skip(request, key, keys)

    def _scan_may_skip(self, request: ScanRequest, key: bytes, keys: list[bytes]) -> None:
        """A scan left out `key`, which the model holds: only an expiring key may go
        (it can expire while the scan reads the values before it)."""
        if not expiry_of(self.model[key]):
            raise Violation(f"scan {request} returned {keys[:6]} and left out {key!r}, which the model holds")

    def check_cursor_scan(self, steps: Sequence[Sequence[bytes]]) -> None:
        """A whole cursor scan: each step ascending and past the last; every model key
        (none expires meanwhile: it does no I/O) returned, and none the model lacks."""
        returned = [key for step in steps for key in step]
        if returned != sorted(set(returned)):
            raise Violation(f"a cursor scan returned keys out of order or twice: {returned[:6]}")
        invented = [key for key in returned if key not in self.model and key not in self.unknown]
        missing = [key for key in self.model if key not in returned and key not in self.unknown]
        if invented or missing:
            raise Violation(
                f"a cursor scan of {len(steps)} steps returned {invented[:3]}, which the model lacks, and "
                f"missed {sorted(missing)[:3]}, which it holds"
            )

    def check_read_only_open(self, view: ReadOnlyView) -> None:
        """A read-only open's calls and state (see the module docstring)."""
        if view.writes:
            raise Violation(f"a read-only open changed the disk: {', '.join(view.writes[:4])}")
        self.check_not_invented(view.state)
        if self.media:
            return  # damage the writer has not met yet may cut the reader's replay (it reports, nothing more)
        candidates = [(self.model, frozenset[bytes]())] + [(model, unknown) for model, _, unknown in self.unsynced]
        for candidate, unknown in candidates:
            if self._seen_by_reader(view, candidate, self.unknown | unknown):
                return
        raise Violation(
            "a read-only open beside the writer saw a state its files cannot hold: "
            + _difference(self.known(self.model), self.known(view.state))
        )

    @staticmethod
    def _seen_by_reader(view: ReadOnlyView, candidate: Model, unknown: set[bytes]) -> bool:
        """`view.state` is `candidate` on every key outside `unknown` that has no expiry
        (one with an expiry is present with its value, or gone)."""
        for key in {*view.state, *candidate, *view.expired_while_read} - unknown:
            wanted = candidate.get(key)
            if wanted is not None and expiry_of(wanted):
                if key in view.state and view.state[key] != wanted:
                    return False
            elif view.state.get(key) != wanted:
                return False
        return True

    def check_error(self, kind: str, error: BaseException) -> None:
        if not isinstance(error, KvError):
            raise Violation(f"{kind} raised an untyped {type(error).__name__}: {error}") from error
        if not self.faulty and not isinstance(error, StoreReadOnly):
            raise Violation(f"{kind} raised {type(error).__name__} with every fault off: {error}")

    def check_not_invented(self, state: Model) -> None:
        invented = [key for key, value in state.items() if invented_value(value, self.written.get(key, set()))]
        if invented:
            raise Violation(f"the store returned values never written for keys {invented[:5]}")

    def observe_read_only(self, key: bytes, value: bytes | None, in_flight: Operation, now_us: int = 0) -> None:
        """A read-only store (its write `in_flight` failed) answered `get(key)` at
        `now_us`. In `always` mode, if it returned the failed write's own value, that
        value must survive the next crash: a read never returns data a crash can take away."""
        self.check_not_invented({key: value} if value is not None else {})
        if key in self.unknown:
            return  # the oracle cannot vouch for its value (an earlier read failed, or a reported loss)
        now_ms = max(now_us, self.now_us) // 1000
        acknowledged = visible(self.model, now_ms).get(key)
        if value != acknowledged:
            failed = visible(apply(self.model, in_flight, self.now_us // 1000), now_ms).get(key)
            if value != failed and not in_flight.arguments and value == in_flight.changes.get(key, acknowledged):
                failed = value  # a conditional write's value, whatever its condition said (no TTL)
            if value != failed:
                raise Violation(
                    f"after a failed {in_flight.kind}, get({key!r}) returned {value!r:.60}: neither the "
                    f"acknowledged value {acknowledged!r:.60} nor the failed write's"
                )
            if self.durability == "always":
                self.observed[key] = failed

    def check_verify(
        self,
        ok: bool,
        problem_files: Iterable[str],
        checked: dict[str, int],
        ledger: DamageLedger | None,
        data_files: Iterable[str] = (),
    ) -> None:
        """`verify()` reported damage in `problem_files` after checking `checked` (path ->
        bytes checked from offset 0): it checked every data file of the store
        (`data_files`), and reported exactly the files the ledger has damage in."""
        skipped = sorted(set(data_files) - set(checked))
        if skipped:
            raise Violation(f"verify() said {'ok' if ok else 'damaged'} without reading {skipped[:3]}")
        problems = set(problem_files)
        if problems and not self.media:
            raise Violation(f"verify() found damage where no media fault was injected: {sorted(problems)[:3]}")
        if ledger is None:
            return  # no ledger: only the false alarm above can be judged
        damaged = {path for path, size in checked.items() if ledger.damaged(path, 0, size)}
        unexplained = problems - damaged
        if unexplained:
            raise Violation(f"verify() reported {sorted(unexplained)[:3]}, which hold no damage")
        missed = damaged - problems
        if missed:
            raise Violation(f"verify() said {'ok' if ok else 'damaged'} but missed the damage in {sorted(missed)[:3]}")

    # -- recovery --------------------------------------------------------------------

    def check_recovered(self, recovered: Recovered, ledger: DamageLedger | None) -> Outcome:
        """Judge one recovery; on success the model is what the store holds now."""
        report = recovered.report
        if report.corruptions and not self.media:
            raise Violation(f"corruption reported where no media fault was injected: {report.summary()}")
        if recovered.unreadable and not self.faulty:
            raise Violation(f"keys {list(recovered.unreadable)[:5]} cannot be read with every fault off")
        self.check_not_invented(recovered.state)
        self.check_quarantine(report, recovered.quarantined_present)
        self.unknown.update(recovered.unreadable)
        self.read_at_us = recovered.at_us
        outcome = self._legal_outcome(recovered, ledger)
        if outcome is None:
            outcome = self.check_explained(recovered, ledger)
        self._check_reads_survive(recovered, outcome)
        self.unsynced.clear()  # what recovery found is on the disk
        self.before_frames.clear()  # the open recorded its log durable (rule 3)
        return outcome

    def _torn_by_damage(self, recovered: Recovered, ledger: DamageLedger | None) -> int:
        """How many reported torn tails the disk damaged: only those may take acknowledged
        writes (a crash alone tears only what was never acknowledged, or never synced).
        More than one when crashes inside recovery let damage reach one last frame after
        another (an earlier open's torn tail, reported again, then the frame before it)."""
        if not (recovered.report.torn_tails and self.media):
            return 0
        if named := [tail.segment_id for tail in recovered.report.torn_tails if tail.segment_id <= 0]:
            raise Violation(f"the recovery report names a torn tail in segment {named[0]}, which no log has")
        if ledger is None:
            return len(recovered.report.torn_tails)
        return sum(
            ledger.damaged(f"{recovered.directory}/{segment_name(tail.segment_id)}", tail.offset, 1 << 62)
            for tail in recovered.report.torn_tails
        )

    def _legal_candidates(self, recovered: Recovered, ledger: DamageLedger | None) -> list[tuple[Model, str, int]]:
        """(a legal state, how it comes about, how many acknowledged writes it lacks)."""
        legal: list[tuple[Model, str, int]] = [(self.model, "acknowledged", 0)]
        if recovered.in_flight is not None:
            legal.append((apply(self.model, recovered.in_flight, self.now_us // 1000), "in flight", 0))
        unsynced = self.unsynced  # batch and none modes: unsynced writes may be lost, newest first
        legal += [(unsynced[-count][0], "unsynced", count) for count in range(1, len(unsynced) + 1)]
        if torn := self._torn_by_damage(recovered, ledger):  # a damaged last frame is reported as torn
            if self.durability == "always":  # each holds one operation acknowledged since the last open
                frames = self.before_frames
                legal += [(frames[-count], "torn", count) for count in range(1, min(torn, len(frames)) + 1)]
            else:  # it holds the writes of one group commit, which the oracle cannot see:
                history = self.history  # any prefix (weaker: how much was lost is not checked)
                legal += [(history[-count], "torn", count) for count in range(1, len(history) + 1)]
        return legal

    @staticmethod
    def _agrees(recovered: Recovered, candidate: Model, unknown: set[bytes] | frozenset[bytes]) -> bool:
        """The recovered state is `candidate` as read when the keys were listed, for
        every key outside `unknown` (a key that expired while the values were read:
        present then, with the same expiry)."""
        seen = _without(visible(candidate, recovered.at_us // 1000), unknown)
        for key, expiry_ms in recovered.expired_while_read.items():
            if key in unknown:
                continue
            if key not in seen or expiry_of(seen[key]) != expiry_ms:
                return False
            del seen[key]
        return _same_state(_without(recovered.state, unknown), seen)

    def _legal_outcome(self, recovered: Recovered, ledger: DamageLedger | None) -> Outcome | None:
        in_flight = recovered.in_flight
        for candidate, kind, writes_lost in self._legal_candidates(recovered, ledger):
            if kind == "unsynced":  # keys known only through the lost writes are unknown again
                unknown = self.unknown | self.unsynced[-writes_lost][2]
                if not self._agrees(recovered, candidate, unknown):
                    continue
                self.unknown = set(unknown)
            elif not self._agrees(recovered, candidate, self.unknown):
                continue
            # the in-flight write made it: in batch and none modes its frame is the last one
            # a torn tail may take (in always mode the open protects every frame, rule 3)
            frame_made_it = kind == "in flight" and in_flight is not None and self.writes_a_frame(in_flight)
            if frame_made_it and self.durability != "always":
                self.history.append(self.model)
            if kind == "torn" and candidate is not self.model:
                kind = "torn loss"  # the torn last frame took an acknowledged operation
            self.model = candidate
            return Outcome(kind, writes_lost)
        return None

    def check_explained(self, recovered: Recovered, ledger: DamageLedger | None) -> Outcome:
        """No legal outcome matched: accept the loss only if the store reported it and
        the damage it reports is on the disk."""
        report = recovered.report
        model = visible(self.model, recovered.at_us // 1000)
        if recovered.silent_write_faults > self.silent_write_faults_checked and not report.corruptions:
            # A lost write of the last frames leaves zeros that read as free space: no
            # single-disk store can see it (documented gap). Counted, not hidden.
            self.silent_write_faults_checked = recovered.silent_write_faults
            return self._accept(recovered, "silent tail loss")
        if not report.corruptions and ledger is not None and _marker_and_data_lost(ledger, recovered.directory):
            return self._accept(recovered, "marker entry loss")
        if not (self.media and report.corruptions):  # a torn tail excuses only what `_legal_candidates` allows
            raise Violation(
                "the recovered state is not a legal outcome and no loss was reported: "
                + _difference(self.known(model), self.known(recovered.state))
            )
        if ledger is not None and not any(
            self._points_at_damage(c, recovered.directory, ledger) for c in report.corruptions
        ):
            raise Violation(
                f"recovery reported corruption ({report.corruptions[0].file_name} at offset "
                f"{report.corruptions[0].offset}) and lost data, but the disk holds no damage there "
                "(a transient fault is not damage): " + _difference(self.known(model), self.known(recovered.state))
            )
        self.check_loss_counted(recovered)
        if self.salvage:
            self.check_salvage_names_older_values(recovered)
        return self._accept(recovered, "reported loss")

    def check_salvage_names_older_values(self, recovered: Recovered) -> None:
        """Salvage keeps what point-in-time repair gives up, so its state is no prefix:
        every key it returns must hold the model's value (or the in-flight operation's,
        or, past a reported torn tail, the value before the last acknowledged write),
        unless the report names the key as lost or at risk (`Corruption.keys_at_risk`:
        it may have lost a newer value, and an older one is kept). A repair journal
        re-reported from an earlier open that did not finish names no keys: then the
        earlier open's loss is said only in words, and nothing is checked."""
        report = recovered.report
        if any(corruption.file_name.startswith(QUARANTINE_DIRECTORY + "/") for corruption in report.corruptions):
            return
        named = {key for corruption in report.corruptions for key in (*corruption.keys_at_risk, *corruption.keys_lost)}
        now_ms = recovered.at_us // 1000
        candidates = [self.model]
        if recovered.in_flight is not None:
            candidates.append(apply(self.model, recovered.in_flight, self.now_us // 1000))
        if report.torn_tails:
            candidates += self.before_frames
        seen = [visible(candidate, now_ms) for candidate in candidates]
        for key, value in recovered.state.items():
            if key in named or key in self.unknown or key in recovered.expired_while_read:
                continue
            if any(key in state and _same_state({key: value}, {key: state[key]}) for state in seen):
                continue
            raise Violation(
                f"salvage returned {key!r} = {value!r:.40}, not the acknowledged {seen[0].get(key)!r:.40}, "
                "and its report names no loss of that key"
            )

    def check_loss_counted(self, recovered: Recovered) -> None:
        """Each acknowledged key gone (not merely unreadable) lost at least one record:
        the report's count of lost records is no smaller. (Torn tails, and damage with
        no readable lsn after it, cannot be counted: then the check is skipped.)"""
        report = recovered.report
        if report.torn_tails or not all(corruption.count_known for corruption in report.corruptions):
            return
        if self.durability != "always" or recovered.silent_write_faults:
            return  # unsynced or lost (never stored) writes may be gone too, and no report can count them
        gone = set(self.known(visible(self.model, recovered.at_us // 1000))) - set(recovered.state)
        gone -= {*recovered.unreadable, *recovered.expired_while_read}
        if recovered.in_flight is not None:  # the interrupted operation may have landed: its deletes are no loss
            gone -= set(recovered.in_flight.changes)
        if len(gone) > report.records_lost:
            raise Violation(
                f"recovery reported {report.records_lost} records lost, but {len(gone)} acknowledged keys "
                f"are gone: {sorted(gone)[:5]}"
            )

    @staticmethod
    def _points_at_damage(corruption: Corruption, directory: str, ledger: DamageLedger) -> bool:
        """The disk held damage that explains the corruption: in its file at or after its
        offset, or in another of the store's files (damage at the end of one segment is
        reported as the lsn gap it leaves at the start of the next); for a re-reported
        journal of an earlier repair, anywhere in the store, quarantine included."""
        if corruption.file_name.startswith(QUARANTINE_DIRECTORY + "/"):
            return ledger.damaged_in(directory, nested=True)
        if ledger.damaged(f"{directory}/{corruption.file_name}", corruption.offset, 1 << 62):
            return True
        return ledger.damaged_in(directory, nested=False)

    def _accept(self, recovered: Recovered, kind: str) -> Outcome:
        lost = set(self.known(visible(self.model, recovered.at_us // 1000))) - set(recovered.state)
        lost -= set(recovered.expired_while_read)
        self.unknown.update(lost)  # reported lost: they may come back if the damage was transient
        self.model = dict(recovered.state)  # the store's word is the model now
        return Outcome(kind, keys_lost=len(lost))

    def _check_reads_survive(self, recovered: Recovered, outcome: Outcome) -> None:
        observed, self.observed = self.observed, {}
        if outcome.kind in LOSSES_ACCEPTED:
            return  # a reported, explained loss may take what a read returned too
        at_ms = recovered.at_us // 1000
        taken = {
            key: value
            for key, value in observed.items()
            if recovered.state.get(key) != value
            and not (value is not None and expired(value, at_ms))
            and key not in recovered.expired_while_read
        }
        if taken:
            key, value = next(iter(taken.items()))
            raise Violation(
                f"a read-only store returned {key!r} = {value!r:.60} after its write failed, and the next "
                f"recovery does not have it ({recovered.state.get(key)!r:.60}): a read returned data a crash took away"
            )

    def check_locked(self, error: KvError | None) -> None:
        """A second open of an open store raised `error` (None: it opened)."""
        if not isinstance(error, StoreLocked):
            raise Violation(f"a second open of the open store gave {type(error).__name__}, not StoreLocked")

    def check_quarantine(self, report: RecoveryReport, present: frozenset[str]) -> None:
        missing = [name for name in report.quarantined if name not in present]
        if missing:
            raise Violation(f"repair reported quarantining {missing[:3]}, which are not under quarantine/")

    def check_idempotent(self, before: Model, outcome: Outcome) -> None:
        """Recovering again (no new damage accepted) changed nothing."""
        at_ms = self.read_at_us // 1000  # the second recovery's state, as read then
        changed = not _same_state(visible(self.model, at_ms), visible(before, at_ms))
        if changed and outcome.kind not in (*LOSSES_ACCEPTED, "torn loss"):
            raise Violation("recovery is not idempotent: " + _difference(before, self.model))

    def check_liveness(
        self,
        state: Model,
        unreadable: Sequence[bytes],
        at_us: int | None = None,
        expired_while_read: dict[bytes, int] | None = None,
    ) -> None:
        """With faults off, a clean close and reopen gave the model (read at `at_us`,
        as `Recovered` is: default the current operation's start)."""
        self.check_not_invented(state)
        at = self.now_us if at_us is None else at_us
        read = Recovered(RecoveryReport(), state, unreadable, None, "", 0, frozenset(), at, expired_while_read or {})
        if not self._agrees(read, self.model, self.unknown) or set(unreadable) - self.unknown:
            raise Violation(
                "with faults off, a clean close and reopen did not give the model: "
                + _difference(self.known(visible(self.model, read.at_us // 1000)), self.known(state))
            )
