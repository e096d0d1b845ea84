"""Crash states of a recorded run: what a power loss may leave on disk, by the persistence model.

A workload runs once on the simulated disk (see `scenarios.target`); its `Recording` is
the list of micro-operations it issued (`io_backends.sim.posix.ops`), each with the
`file:line` that issued it, and the acknowledgements (`Ack`) it made. This module turns
that list into crash states and builds the disk image of each one. It does no I/O and
interposes nothing: it is pure, so it is fast and its answers are facts about the
recording.

A `CrashState` is:

- a crash point `p`: the operations `ops[:p]` were issued, the rest never were;
- a set of dropped operations, each issued (`< p`) and not yet durable at `p` (the
  persistence model's rules 1-2, `forced`): rule 3 lets any of them be lost while later
  ones survive (ALICE's reordering);
- at most one torn write: a `Write` not durable at `p` of which only some sectors (of
  512 B or 4 KiB) reached the platter, the others holding their old bytes or garbage.

Operations lost by rule 4 (a failed fsync dropped them, `DropDirty`) are kept by no
state: they are left out of every image, whatever the state says.

Ids (`CrashState.id`, parsed back by `parse_state_id`, so `--crash-state ID` rebuilds one
state without enumerating anything):

- `p12`: crash after the first 12 operations, everything issued kept;
- `p12-o5` / `p12-o3.5`: the same with operation 5 (and 3) dropped;
- `p12-t5.512.s0110`: operation 5 torn at 512 B sectors; of its four sectors the 2nd and
  3rd persisted, the others kept their old bytes (`g0110`: the others hold garbage, bytes
  derived from the id, so a state always builds the same image); long sector maps are
  written as runs: `s1x100_0x1_1x947`.

Exploration (`enumerate_states`): `prefix` is every crash point that changes something;
`alice` adds every single omission of an operation not yet durable, with later ones
kept, and torn versions of each multi-sector write not yet durable; `random` draws
seeded random states. Above a budget, a seeded sample keeps the prefix states first.
Identical states (same image, same acknowledgements) are checked once (`Deduplicator`).

Deliberately not modelled: a partial `Truncate`, a torn directory operation, reordering
of the sectors inside one write beyond a subset, and data reaching the disk from a page
cache eviction after a failed fsync (rule 4 says it is gone for good).
"""

from __future__ import annotations

import bisect
import hashlib
import random
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from io_backends.sim.posix.fs import DirNode, FileNode, Image, Tree
from io_backends.sim.posix.ops import (
    DATA_OPS,
    ENTRY_OPS,
    ROOT_INODE,
    Ack,
    CallSite,
    Chmod,
    Create,
    DropDirty,
    MicroOp,
    Mkdir,
    Recording,
    Rename,
    Rmdir,
    Sync,
    Truncate,
    Unlink,
    Write,
    directories_named,
)

Explore = Literal["prefix", "alice", "random"]
EXPLORE_MODES: tuple[Explore, ...] = ("prefix", "alice", "random")

# The sector sizes a write may tear at: a disk's logical sector, and the page / physical
# sector most file systems and SSDs write atomically.
SECTOR_SIZES_BYTES = (512, 4096)
# Per torn write and sector size, at most this many sector prefixes and this many
# single missing sectors are enumerated, spread over the write: a 1 MiB write has 2048
# sectors of 512 B, and each boundary is one more state per crash point, nearly all
# alike to a checker (a checksum catches one bad sector or several the same way).
TORN_VARIANTS_PER_KIND_MAX = 8
# The default of `enumerate_states(budget=...)`: states built and checked per exploration.
DEFAULT_BUDGET_STATES = 5000
# Random states drawn by `--explore random` without a count.
DEFAULT_RANDOM_STATES = 200
# Draws without a new state after which random exploration stops early (a small
# recording has fewer distinct states than asked).
RANDOM_FRUITLESS_DRAWS_MAX = 1000
# Consecutive kept operations `describe` shows in full; longer runs are summarized.
DESCRIBE_KEPT_RUN_MAX = 6

_STATE_ID = re.compile(r"p(\d+)(?:-o(\d+(?:\.\d+)*))?(?:-t(\d+)\.(\d+)\.([sg])([01x_\d]+))?")
_MASK_RUN = re.compile(r"([01])x(\d+)")


class CrashStateError(ValueError):
    """A crash state id that does not parse, or a state the recording cannot have
    (a dropped operation already durable, a tear of something that is not a write)."""


# ---------------------------------------------------------------- states and their ids


@dataclass(frozen=True)
class Tear:
    """Operation `op_index`, a `Write`, torn at `sector_bytes` sectors: `persisted[k]` says
    whether the k-th sector the write covers (counted from the one holding its first
    byte) reached the disk. The others keep their old bytes, or hold garbage."""

    op_index: int
    sector_bytes: int
    persisted: tuple[bool, ...]
    garbage: bool = False

    def mask_text(self) -> str:
        """The sector map as written in ids: `0110`, or runs `1x100_0x1_1x947` when shorter."""
        bits = "".join("1" if bit else "0" for bit in self.persisted)
        runs: list[str] = []
        for bit in bits:
            if runs and runs[-1][0] == bit:
                runs[-1] = f"{bit}x{int(runs[-1][2:]) + 1}"
            else:
                runs.append(f"{bit}x1")
        run_text = "_".join(runs)
        return run_text if len(run_text) < len(bits) else bits

    @property
    def text(self) -> str:
        return f"t{self.op_index}.{self.sector_bytes}.{'g' if self.garbage else 's'}{self.mask_text()}"


@dataclass(frozen=True)
class CrashState:
    """A crash after `ops[:point]` were issued, with the operations `dropped` (sorted)
    lost and at most one `tear`. Construction checks the shape (sorted, in range) and
    raises `CrashStateError`; `validate` checks it against a recording."""

    point: int
    dropped: tuple[int, ...] = ()
    tear: Tear | None = None

    def __post_init__(self) -> None:
        if self.point < 0:
            raise CrashStateError(f"crash point {self.point} is negative")
        if list(self.dropped) != sorted(set(self.dropped)) or any(i < 0 or i >= self.point for i in self.dropped):
            raise CrashStateError(f"dropped operations {self.dropped} must be distinct, sorted and < {self.point}")
        tear = self.tear
        if tear is not None and (not 0 <= tear.op_index < self.point or tear.op_index in self.dropped):
            raise CrashStateError(f"torn operation {tear.op_index} must be issued (< {self.point}) and not dropped")

    @property
    def id(self) -> str:
        words = [f"p{self.point}"]
        if self.dropped:
            words.append("o" + ".".join(str(index) for index in self.dropped))
        if self.tear is not None:
            words.append(self.tear.text)
        return "-".join(words)

    @property
    def is_prefix(self) -> bool:
        """Everything issued before the crash point is kept (no reordering, no tear)."""
        return not self.dropped and self.tear is None

    @property
    def changes(self) -> int:
        """How far the state is from its prefix: drops plus tears (minimality, second key)."""
        return len(self.dropped) + (self.tear is not None)

    def __str__(self) -> str:
        return self.id


def parse_state_id(text: str) -> CrashState:
    """The `CrashState` whose id is `text` (`p12`, `p12-o5.7`, `p12-t5.512.g0110`, ...).

    Raises `CrashStateError` when `text` is not an id. It does not check the state
    against a recording: `validate` does."""
    match = _STATE_ID.fullmatch(text.strip())
    if match is None:
        raise CrashStateError(
            f"bad crash state id {text!r}: expected pN, pN-oI.J, pN-tI.SECTOR.sBITS or pN-oI-tJ.SECTOR.gBITS"
        )
    point_text, dropped_text, torn_text, sector_text, kind, mask_text = match.groups()
    dropped = tuple(int(index) for index in dropped_text.split(".")) if dropped_text else ()
    tear = None
    if torn_text is not None:
        sector_bytes = int(sector_text)
        if sector_bytes not in SECTOR_SIZES_BYTES:
            raise CrashStateError(f"bad sector size {sector_bytes} in {text!r}: choose from {SECTOR_SIZES_BYTES}")
        tear = Tear(int(torn_text), sector_bytes, _parse_mask(mask_text, text), garbage=kind == "g")
    return CrashState(int(point_text), dropped, tear)


def _parse_mask(mask_text: str, text: str) -> tuple[bool, ...]:
    if set(mask_text) <= {"0", "1"}:
        return tuple(bit == "1" for bit in mask_text)
    bits: list[bool] = []
    for run in mask_text.split("_"):
        match = _MASK_RUN.fullmatch(run)
        if match is None or int(match.group(2)) < 1:
            raise CrashStateError(f"bad sector map {mask_text!r} in {text!r}: expected bits (0110) or runs (1x3_0x1)")
        bits.extend([match.group(1) == "1"] * int(match.group(2)))
    return tuple(bits)


# ---------------------------------------------------------------- the persistence model


@dataclass(frozen=True)
class Analysis:
    """What the persistence model says about each operation of one recording, computed
    once (`analyze`): every function below asks it instead of rescanning the recording."""

    durable_at: tuple[int | None, ...]  # per op: index of the Sync that makes it durable (rules 1-2), or None
    lost_by: dict[int, int]  # rule 4: op index -> index of the DropDirty that lost it
    changes: tuple[int, ...]  # indexes of the ops that change the tree (not Sync, DropDirty, Ack)
    acks: tuple[int, ...]  # indexes of the Ack ops
    points: tuple[int, ...]  # crash points that change something: 0 and after each change or Ack
    rename_unlinks: dict[int, int]  # rename index -> the destination Unlink bound to it (rename is atomic)
    # Write index -> the file offset from which it lands in space its call allocated (past
    # the file's size before the call); a torn write holds garbage only there: a sector it
    # overwrites keeps its old bytes or gets the new ones, never random ones.
    fresh_from: dict[int, int] = field(default_factory=dict)
    # inode -> the mode its `Create` gave it (a file replayed without its Create keeps it)
    create_modes: dict[int, int] = field(default_factory=dict)

    def forced(self, point: int) -> set[int]:
        """The operations issued before `point` that are durable there (rules 1-2)."""
        return {index for index in self.changes[: self.changes_issued(point)] if self._durable(index, point)}

    def unforced(self, point: int) -> list[int]:
        """The changes issued before `point` that a crash there may lose (rule 3), in
        order; those lost by rule 4 excluded (no state keeps them)."""
        return [
            index
            for index in self.changes[: self.changes_issued(point)]
            if index not in self.lost_by and not self._durable(index, point)
        ]

    def acks_before(self, point: int) -> int:
        """How many Acks were issued before `point`."""
        return _count_below(self.acks, point)

    def _durable(self, index: int, point: int) -> bool:
        durable = self.durable_at[index]
        return durable is not None and durable < point

    def changes_issued(self, point: int) -> int:
        """How many changes were issued before `point`."""
        return _count_below(self.changes, point)


def _count_below(indexes: tuple[int, ...], point: int) -> int:
    """How many of the sorted `indexes` are < `point`."""
    return bisect.bisect_left(indexes, point)


def _durable_indexes(ops: Sequence[MicroOp]) -> list[int | None]:
    """Per op, the first later Sync that makes it durable: of its inode for a data op
    (rule 1), of a directory it names for an entry op (rule 2)."""
    durable_at: list[int | None] = [None] * len(ops)
    next_sync: dict[int, int] = {}
    next_full_sync: dict[int, int] = {}
    for index in range(len(ops) - 1, -1, -1):
        op = ops[index]
        if isinstance(op, Sync):
            next_sync[op.inode] = index
            if not op.data_only:
                next_full_sync[op.inode] = index
        elif isinstance(op, Chmod):  # metadata: fsync makes it durable, fdatasync does not
            durable_at[index] = next_full_sync.get(op.inode)
        elif isinstance(op, DATA_OPS):
            durable_at[index] = next_sync.get(op.inode)
        elif isinstance(op, ENTRY_OPS):
            candidates = [next_sync[inode] for inode in directories_named(op) if inode in next_sync]
            durable_at[index] = min(candidates) if candidates else None
    return durable_at


def _lost_indexes(ops: Sequence[MicroOp], durable_at: list[int | None]) -> dict[int, int]:
    """Rule 4: for each `DropDirty(X)`, every earlier data operation on X not durable
    before it is lost for good. Returns op index -> index of the DropDirty."""
    lost_by: dict[int, int] = {}
    for index, op in enumerate(ops):
        if not isinstance(op, DropDirty):
            continue
        for earlier in range(index):
            before, durable = ops[earlier], durable_at[earlier]
            if not isinstance(before, DATA_OPS) or before.inode != op.inode:
                continue
            if durable is None or durable > index:
                lost_by.setdefault(earlier, index)
    return lost_by


def _rename_unlinks(recording: Recording) -> dict[int, int]:
    """rename index -> index of the `Unlink` (or `Rmdir`) of its destination recorded just before it by
    the same call (same `CallSite`). A rename is atomic (the destination names the old
    file or the new one, never nothing), so the two are one unit: no crash point between
    them, dropped together, and the unlink applied only when the rename applies. An
    explicit `os.unlink` before an `os.rename` is two calls and stays two units."""
    ops, sites = recording.ops, recording.sites
    bound: dict[int, int] = {}
    for index in range(1, len(ops)):
        op, before = ops[index], ops[index - 1]
        if (
            isinstance(op, Rename)
            and isinstance(before, Unlink | Rmdir)  # over a file, or over an empty directory
            and (before.parent, before.name) == (op.target_parent, op.target_name)
            and sites[index - 1] == sites[index]
        ):
            bound[index] = index - 1
    return bound


def analyze(recording: Recording) -> Analysis:
    """The persistence model applied to `recording` (rules 1-4 of `ops.py`). Cached for
    the last few recordings, keyed by identity and length (a recording only grows)."""
    for cached_recording, length, analysis in _ANALYSES:
        if cached_recording is recording and length == len(recording.ops):
            return analysis
    ops = recording.ops
    durable_at = _durable_indexes(ops)
    lost_by = _lost_indexes(ops, durable_at)
    for index in lost_by:
        durable_at[index] = None
    rename_unlinks = _rename_unlinks(recording)
    for rename_index, unlink_index in rename_unlinks.items():  # one call: durable together
        durables = [durable for i in (rename_index, unlink_index) if (durable := durable_at[i]) is not None]
        durable_at[rename_index] = durable_at[unlink_index] = min(durables) if durables else None
    changes = tuple(i for i, op in enumerate(ops) if isinstance(op, DATA_OPS + ENTRY_OPS))
    acks = tuple(i for i, op in enumerate(ops) if isinstance(op, Ack))
    inside_a_call = {unlink_index + 1 for unlink_index in rename_unlinks.values()}
    points = {0} | {i + 1 for i, op in enumerate(ops) if isinstance(op, DATA_OPS + ENTRY_OPS + (Ack,))}
    analysis = Analysis(
        tuple(durable_at),
        lost_by,
        changes,
        acks,
        tuple(sorted(points - inside_a_call)),
        rename_unlinks,
        _fresh_offsets(recording),
        {op.inode: op.mode for op in ops if isinstance(op, Create)},
    )
    _ANALYSES.insert(0, (recording, len(ops), analysis))
    del _ANALYSES[_ANALYSES_KEPT:]
    return analysis


def _fresh_offsets(recording: Recording) -> dict[int, int]:
    """`Analysis.fresh_from`: per Write, where newly allocated space starts. The size
    before a write's call is the size before the Truncate that extended the file for it
    (the same call site, just before), else the size before the write."""
    initial = Tree.from_image(recording.initial)
    sizes = {number: len(node.data) for number, node in initial.nodes.items() if isinstance(node, FileNode)}
    ops, sites = recording.ops, recording.sites
    fresh: dict[int, int] = {}
    before_call = 0
    for index, op in enumerate(ops):
        if isinstance(op, Truncate):
            before_call = sizes.get(op.inode, 0)
            sizes[op.inode] = op.size
        elif isinstance(op, Write):
            previous = ops[index - 1] if index else None
            same_call = (
                isinstance(previous, Truncate) and previous.inode == op.inode and sites[index - 1] == sites[index]
            )
            allocated = before_call if same_call else sizes.get(op.inode, 0)
            end = op.offset + len(op.data)
            fresh[index] = min(max(op.offset, allocated), end)
            sizes[op.inode] = max(sizes.get(op.inode, 0), end)
    return fresh


# A few recordings' analyses, most recent first (an exploration asks thousands of times).
_ANALYSES_KEPT = 4
_ANALYSES: list[tuple[Recording, int, Analysis]] = []


def forced(recording: Recording, point: int) -> set[int]:
    """The indexes of the operations durable at crash point `point` (rules 1-2): no crash
    state at that point may drop them."""
    return analyze(recording).forced(point)


def lost(recording: Recording) -> dict[int, int]:
    """Rule 4: operation index -> index of the failed fsync (`DropDirty`) that lost it."""
    return dict(analyze(recording).lost_by)


def validate(recording: Recording, state: CrashState) -> None:
    """Raise `CrashStateError` unless `state` is one the recording can have: the crash
    point within it, every dropped operation a change not durable there (nor lost by
    rule 4, which every state drops anyway), the torn one a multi-sector `Write` not
    durable there, with one flag per sector it covers and not all of them persisted."""
    ops, analysis = recording.ops, analyze(recording)
    if state.point > len(ops):
        raise CrashStateError(f"{state.id}: crash point {state.point} is past the {len(ops)} operations recorded")
    if state.point - 1 in analysis.rename_unlinks.values():
        raise CrashStateError(f"{state.id}: crash point {state.point} is inside one rename call")
    unforced = set(analysis.unforced(state.point))
    for index in state.dropped:
        if index not in unforced:
            raise CrashStateError(f"{state.id}: operation {index} ({_op_text(ops[index])}) cannot be dropped there")
    if _with_bound_unlinks(analysis, set(state.dropped)) != state.dropped:
        raise CrashStateError(f"{state.id}: a rename over an existing name and its unlink drop together, or not")
    tear = state.tear
    if tear is None:
        return
    op = ops[tear.op_index]
    if not isinstance(op, Write) or tear.op_index not in unforced:
        raise CrashStateError(f"{state.id}: operation {tear.op_index} ({_op_text(op)}) cannot be torn there")
    sectors = sector_count(op, tear.sector_bytes)
    if len(tear.persisted) != sectors or all(tear.persisted) or sectors < 2:
        raise CrashStateError(
            f"{state.id}: operation {tear.op_index} covers {sectors} sectors of {tear.sector_bytes} B; "
            f"the sector map needs one bit per sector, not all 1, and at least 2 sectors"
        )


def sector_count(op: Write, sector_bytes: int) -> int:
    """How many `sector_bytes` sectors the write covers (0 for an empty write)."""
    if not op.data:
        return 0
    return (op.offset + len(op.data) - 1) // sector_bytes - op.offset // sector_bytes + 1


# ---------------------------------------------------------------- enumeration


def enumerate_states(
    recording: Recording,
    explore: Explore = "alice",
    budget: int = DEFAULT_BUDGET_STATES,
    seed: int = 0,
    random_count: int | None = None,
) -> list[CrashState]:
    """The crash states to check, deterministic for a given recording and seed (see
    `plan_states`, which also counts the states the budget left out)."""
    return plan_states(recording, explore, budget, seed, random_count)[0]


def plan_states(
    recording: Recording,
    explore: Explore = "alice",
    budget: int = DEFAULT_BUDGET_STATES,
    seed: int = 0,
    random_count: int | None = None,
) -> tuple[list[CrashState], int]:
    """(the crash states to check, how many the exploration mode allows in all).

    `prefix`: every crash point that changes something (`Analysis.points`), everything
    issued kept. `alice`: those, then for each point every single omission of an
    operation not yet durable there (later ones kept), then torn versions of each
    multi-sector write not yet durable (`torn_states`). `random`: `random_count` (default
    `DEFAULT_RANDOM_STATES`) seeded random states (`random_states`). Above `budget`
    states, a seeded sample (`sample_states`), so the count can exceed the list. Raises
    `ValueError` on an unknown mode or a budget < 1."""
    if explore not in EXPLORE_MODES:
        raise ValueError(f"unknown exploration {explore!r}: choose from {', '.join(EXPLORE_MODES)}")
    if budget < 1:
        raise ValueError(f"the budget must be at least 1 state, not {budget}")
    if explore == "random":
        count = DEFAULT_RANDOM_STATES if random_count is None else random_count
        drawn = random_states(recording, count, seed)
        return sample_states(drawn, budget, seed), len(drawn)
    prefixes = prefix_states(recording)
    if explore == "prefix":
        return sample_states(prefixes, budget, seed), len(prefixes)

    def others() -> Iterator[CrashState]:
        yield from _omissions(recording)
        yield from _tears(recording)

    # Streamed, not listed: a recording of thousands of operations has millions of
    # omissions, of which only `budget` are kept.
    return _sample_parts(prefixes, others, budget, seed)


def parse_explore(text: str) -> tuple[Explore, int | None]:
    """`prefix`, `alice`, `random` or `random:N` -> (mode, N or None). Raises `ValueError`."""
    name, colon, count_text = text.partition(":")
    for mode in EXPLORE_MODES:
        if name == mode and (not colon or mode == "random"):
            if not colon:
                return mode, None
            if count_text.isdigit() and int(count_text) >= 1:
                return mode, int(count_text)
    raise ValueError(f"bad exploration {text!r}: expected prefix, alice, random or random:N with N >= 1")


def prefix_states(recording: Recording) -> list[CrashState]:
    """One state per crash point, everything issued kept."""
    return [CrashState(point) for point in analyze(recording).points]


def omission_states(recording: Recording) -> list[CrashState]:
    """At each crash point, each operation not yet durable dropped alone (`_omissions`)."""
    return list(_omissions(recording))


def _omissions(recording: Recording) -> Iterator[CrashState]:
    """At each crash point, each operation not yet durable dropped alone (ALICE's
    reordering); a rename over an existing name drops with its destination's unlink. The
    last issued one is skipped: dropping it gives the previous prefix."""
    analysis = analyze(recording)
    bound_unlinks = set(analysis.rename_unlinks.values())
    for point in analysis.points:
        for index in analysis.unforced(point):
            if index == point - 1 or index in bound_unlinks:
                continue
            unlink = analysis.rename_unlinks.get(index)
            yield CrashState(point, (index,) if unlink is None else (unlink, index))


def torn_states(recording: Recording) -> list[CrashState]:
    """Torn versions of each multi-sector write not yet durable (`_tears`)."""
    return list(_tears(recording))


def _tears(recording: Recording) -> Iterator[CrashState]:
    """For each multi-sector `Write` not yet durable, at the crash point right after it
    (in flight) and at the last point where it is still not durable (the most promises
    made): sector prefixes and single missing sectors, at 512 B and 4 KiB, each with the
    missing sectors stale and, where the write allocated space, as garbage."""
    analysis, ops = analyze(recording), recording.ops
    for index in analysis.changes:
        op = ops[index]
        if not isinstance(op, Write) or index in analysis.lost_by:
            continue
        durable = analysis.durable_at[index]
        last = len(ops) if durable is None else durable
        candidates = [point for point in analysis.points if index < point <= last]
        # garbage only where the write allocated space (an overwrite keeps old or new bytes)
        garbages = (False, True) if analysis.fresh_from[index] < op.offset + len(op.data) else (False,)
        for point in sorted({candidates[0], candidates[-1]}):
            for sector_bytes in SECTOR_SIZES_BYTES:
                for persisted in tear_masks(sector_count(op, sector_bytes)):
                    for garbage in garbages:
                        yield CrashState(point, (), Tear(index, sector_bytes, persisted, garbage))


def tear_masks(sectors: int) -> list[tuple[bool, ...]]:
    """The sector maps enumerated for a write of `sectors` sectors: persisted prefixes
    (1 .. sectors-1 sectors), then each single sector missing, each kind spread over at
    most `TORN_VARIANTS_PER_KIND_MAX` choices; none for fewer than 2 sectors."""
    if sectors < 2:
        return []
    masks = [tuple(k < kept for k in range(sectors)) for kept in _spread(range(1, sectors))]
    masks += [tuple(k != missing for k in range(sectors)) for missing in _spread(range(sectors))]
    return list(dict.fromkeys(masks))  # ordered dedupe: the last single missing is the longest prefix


def _spread(choices: range) -> list[int]:
    """At most `TORN_VARIANTS_PER_KIND_MAX` of `choices`, evenly spread, first and last included."""
    if len(choices) <= TORN_VARIANTS_PER_KIND_MAX:
        return list(choices)
    step = (len(choices) - 1) / (TORN_VARIANTS_PER_KIND_MAX - 1)
    return sorted({choices[round(k * step)] for k in range(TORN_VARIANTS_PER_KIND_MAX)})


def random_states(recording: Recording, count: int, seed: int) -> list[CrashState]:
    """`count` distinct seeded random states (fewer when the recording has fewer): a
    random crash point, each operation not yet durable there dropped with a probability
    drawn per state, and with probability 1/2 a random tear of a kept multi-sector write."""
    analysis, ops = analyze(recording), recording.ops
    rng = random.Random(seed)
    states: dict[str, CrashState] = {}
    fruitless = 0
    while len(states) < count and fruitless < RANDOM_FRUITLESS_DRAWS_MAX:
        point = rng.choice(analysis.points)
        unforced = analysis.unforced(point)
        drop_probability = rng.random()
        chosen = {index for index in unforced if rng.random() < drop_probability}
        dropped = _with_bound_unlinks(analysis, chosen)
        tear = _random_tear(ops, [index for index in unforced if index not in dropped], rng)
        state = CrashState(point, dropped, tear)
        if state.id in states:
            fruitless += 1
        else:
            states[state.id] = state
            fruitless = 0
    return list(states.values())


def _with_bound_unlinks(analysis: Analysis, chosen: set[int]) -> tuple[int, ...]:
    """`chosen` as a sorted drop list where a rename and its destination unlink go together
    (the rename decides)."""
    bound_unlinks = set(analysis.rename_unlinks.values())
    dropped = {index for index in chosen if index not in bound_unlinks}
    dropped |= {analysis.rename_unlinks[index] for index in dropped if index in analysis.rename_unlinks}
    return tuple(sorted(dropped))


def _random_tear(ops: Sequence[MicroOp], kept: list[int], rng: random.Random) -> Tear | None:
    if rng.random() < 0.5:
        return None
    choices = [
        (index, sector_bytes)
        for index in kept
        for sector_bytes in SECTOR_SIZES_BYTES
        if isinstance(op := ops[index], Write) and sector_count(op, sector_bytes) >= 2
    ]
    if not choices:
        return None
    index, sector_bytes = rng.choice(choices)
    op = ops[index]
    assert isinstance(op, Write)
    sectors = sector_count(op, sector_bytes)
    persisted = tuple(rng.random() < 0.5 for _ in range(sectors))
    if all(persisted):
        persisted = (*persisted[:-1], False)
    return Tear(index, sector_bytes, persisted, garbage=rng.random() < 0.5)


def sample_states(states: list[CrashState], budget: int, seed: int) -> list[CrashState]:
    """`states` when they fit in `budget`; otherwise a seeded sample of `budget` of them:
    every prefix state first (cheapest, and the most telling), sampled among themselves
    only if they alone exceed the budget, then a sample of the others. Each part keeps
    the enumeration order, so the result is deterministic."""
    prefixes = [state for state in states if state.is_prefix]
    others = [state for state in states if not state.is_prefix]
    if len(states) <= budget:
        return list(states)  # the order given, prefix states or not
    return _sample_parts(prefixes, lambda: iter(others), budget, seed)[0]


def _sample_parts(
    prefixes: list[CrashState], others: Callable[[], Iterator[CrashState]], budget: int, seed: int
) -> tuple[list[CrashState], int]:
    """`sample_states` over prefix states and a stream of the others that can be walked
    twice (once to count, once to pick), so only the chosen states are ever held; and
    how many there are in all."""
    others_count = sum(1 for _ in others())
    total = len(prefixes) + others_count
    if total <= budget:
        return prefixes + list(others()), total
    rng = random.Random(seed)
    if len(prefixes) >= budget:
        return [prefixes[i] for i in sorted(rng.sample(range(len(prefixes)), budget))], total
    chosen = set(rng.sample(range(others_count), budget - len(prefixes)))
    return prefixes + [state for position, state in enumerate(others()) if position in chosen], total


# ---------------------------------------------------------------- images


def build_image(recording: Recording, state: CrashState) -> Image:
    """The disk after the crash `state`: the initial image with every kept operation
    applied in order (`Tree.apply(strict=False)`: an operation whose inode or entry a
    dropped one never made is skipped), the torn write with only its persisted sectors
    (and garbage in the others when the state says so). Operations lost by rule 4 are
    never applied.

    Every state agrees with the prefix of its crash point up to its first dropped or torn
    operation, so that part starts from a cached tree (`_PrefixTrees`), not from scratch."""
    analysis, ops = analyze(recording), recording.ops
    deviations = [*state.dropped, *([state.tear.op_index] if state.tear is not None else [])]
    common = analysis.changes_issued(min(deviations, default=state.point))
    tree = _prefix_trees(recording, analysis).tree(common)
    dropped = set(state.dropped)
    tear = state.tear
    for index in analysis.changes[common : analysis.changes_issued(state.point)]:
        if index in dropped or index in analysis.lost_by:
            continue
        op = ops[index]
        if tear is not None and index == tear.op_index:
            assert isinstance(op, Write), (state.id, op)
            for piece in torn_pieces(op, tear, state.id, analysis.fresh_from.get(index)):
                tree.apply(piece, strict=False)
        else:
            _apply(tree, ops, index, analysis)
    return tree.image()


def _apply(tree: Tree, ops: Sequence[MicroOp], index: int, analysis: Analysis) -> None:
    """Replay change `index`; the unlink bound to a rename applies only if the rename will."""
    if index + 1 not in analysis.rename_unlinks or _rename_fits(tree, ops[index + 1]):
        tree.apply(ops[index], strict=False)


# Bytes of file data the cached prefix trees of one recording may hold: enough for
# every prefix of a small workload, and a bound for a large one (older trees are evicted).
PREFIX_TREES_BYTES_MAX = 64 * 1024 * 1024


@dataclass
class _PrefixTrees:
    """Trees after the first `count` changes of a recording (those lost by rule 4 left
    out), cached by `count`; `tree(count)` returns a fresh copy the caller may change.
    Trees, not images: `Tree.from_image` renumbers inodes, and the ops name inodes."""

    recording: Recording
    analysis: Analysis
    trees: dict[int, Tree] = field(default_factory=dict)
    sizes_bytes: dict[int, int] = field(default_factory=dict)

    def tree(self, count: int) -> Tree:
        if count in self.trees:
            return _copy_tree(self.trees[count])
        start = max((cached for cached in self.trees if cached <= count), default=None)
        tree = Tree.from_image(self.recording.initial) if start is None else _copy_tree(self.trees[start])
        tree.unnamed_modes = self.analysis.create_modes
        ops, analysis = self.recording.ops, self.analysis
        for index in analysis.changes[(start or 0) : count]:
            if index not in analysis.lost_by:
                _apply(tree, ops, index, analysis)
        self._keep(count, tree)
        return _copy_tree(tree) if count in self.trees else tree

    def _keep(self, count: int, tree: Tree) -> None:
        size_bytes = tree.file_bytes_total()
        if size_bytes > PREFIX_TREES_BYTES_MAX:
            return
        while self.trees and sum(self.sizes_bytes.values()) + size_bytes > PREFIX_TREES_BYTES_MAX:
            oldest = next(iter(self.trees))
            del self.trees[oldest], self.sizes_bytes[oldest]
        self.trees[count] = tree
        self.sizes_bytes[count] = size_bytes


def _copy_tree(tree: Tree) -> Tree:
    """A copy of `tree`'s nodes that shares nothing mutable with it (times and pins, which
    no image holds, are not copied faithfully)."""
    copy = Tree()
    copy.next_inode = tree.next_inode
    copy.clock_ns = tree.clock_ns
    copy.unnamed_modes = tree.unnamed_modes
    nodes: dict[int, FileNode | DirNode] = {}
    for number, node in tree.nodes.items():
        if isinstance(node, FileNode):
            nodes[number] = FileNode(node.mode, node.mtime_ns, bytearray(node.data))
        else:
            directory = DirNode(node.mode, node.parent, node.mtime_ns)
            directory.entries = dict(node.entries)
            nodes[number] = directory
        nodes[number].linked = node.linked
    copy.nodes = nodes
    return copy


def _prefix_trees(recording: Recording, analysis: Analysis) -> _PrefixTrees:
    cached = _PREFIX_TREES.get(id(analysis))
    if cached is None or cached.analysis is not analysis:
        cached = _PrefixTrees(recording, analysis)
        _PREFIX_TREES.clear()  # one recording's trees at a time: they are the memory
        _PREFIX_TREES[id(analysis)] = cached
    return cached


_PREFIX_TREES: dict[int, _PrefixTrees] = {}


def _rename_fits(tree: Tree, op: MicroOp) -> bool:
    """Whether replaying rename `op` will move something (so the unlink bound to it applies)."""
    assert isinstance(op, Rename), op
    return tree.rename_moves(op)


def torn_pieces(op: Write, tear: Tear, state_id: str, fresh_from: int | None = None) -> list[Write]:
    """The writes a torn `op` amounts to: its persisted sectors' bytes, and for the
    missing ones garbage when `tear.garbage` (deterministic: from `state_id`) in the
    space the write allocated (from `fresh_from`, default its offset: all of it), else
    nothing (they keep their old bytes). Raises `CrashStateError` when the sector map
    does not match the write."""
    fresh = op.offset if fresh_from is None else fresh_from
    sector_bytes = tear.sector_bytes
    if len(tear.persisted) != sector_count(op, sector_bytes):
        raise CrashStateError(f"{state_id}: the sector map has {len(tear.persisted)} bits for {op}")
    first_sector = op.offset // sector_bytes
    end = op.offset + len(op.data)
    pieces = []
    garbage_stream = hashlib.shake_256(state_id.encode()).digest(len(op.data)) if tear.garbage else b""
    for position, persisted in enumerate(tear.persisted):
        start = max(op.offset, (first_sector + position) * sector_bytes)
        stop = min(end, (first_sector + position + 1) * sector_bytes)
        if persisted:
            pieces.append(Write(op.inode, start, op.data[start - op.offset : stop - op.offset]))
        elif tear.garbage and max(start, fresh) < stop:
            start = max(start, fresh)
            pieces.append(Write(op.inode, start, garbage_stream[start - op.offset : stop - op.offset]))
    return pieces


def acknowledged(recording: Recording, state: CrashState) -> tuple[list[object], object | None]:
    """(the values acknowledged before the crash point, the value in flight): what the
    check is told was promised. The value in flight is the first Ack's at or after the
    point; after the last Ack of a run that stopped early under inline faults, the next
    value a fault-free run acknowledged (`Recording.planned`); otherwise None."""
    analysis = analyze(recording)
    count = analysis.acks_before(state.point)
    acked = [_ack_value(recording.ops[index]) for index in analysis.acks[:count]]
    pending: object | None = None
    if count < len(analysis.acks):
        pending = _ack_value(recording.ops[analysis.acks[count]])
    elif recording.planned is not None and count < len(recording.planned):
        pending = recording.planned[count]
    return acked, pending


def _ack_value(op: MicroOp) -> object:
    assert isinstance(op, Ack), op
    return op.value


@dataclass
class Deduplicator:
    """Identical states are checked once: two states with the same image digest and the
    same number of acknowledgements (which fixes both `acked` and `pending`) give the
    check the same input. `first` says whether a state is the first of its kind;
    `represented[id]` counts the states each first one stands for (itself included)."""

    recording: Recording
    represented: dict[str, int] = field(default_factory=dict)
    _first_by_key: dict[tuple[str, int], str] = field(default_factory=dict)

    def first(self, state: CrashState, image: Image) -> bool:
        key = (image.digest(), analyze(self.recording).acks_before(state.point))
        first_id = self._first_by_key.setdefault(key, state.id)
        self.represented[first_id] = self.represented.get(first_id, 0) + 1
        return first_id == state.id


def dedupe(recording: Recording, states: Iterable[CrashState]) -> list[tuple[CrashState, int]]:
    """The distinct states among `states`, in order, each with how many states it stands for."""
    deduplicator = Deduplicator(recording)
    firsts = [state for state in states if deduplicator.first(state, build_image(recording, state))]
    return [(state, deduplicator.represented[state.id]) for state in firsts]


# ---------------------------------------------------------------- explaining a state


@dataclass(frozen=True)
class Responsibility:
    """A source line that made a crash state possible (ALICE's "static vulnerability"):
    `site` is `file:line`, `op_index` the operation (None for none in particular)."""

    site: str
    op_index: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.site}: {self.reason}"


def op_status(recording: Recording, state: CrashState, index: int) -> str:
    """What `state` did with operation `index`: `kept`, `DROPPED`, `TORN`, `LOST` (rule 4),
    `issued` (a Sync, DropDirty or Ack before the crash) or `not issued`."""
    op = recording.ops[index]
    if index >= state.point:
        return "not issued"
    if not isinstance(op, DATA_OPS + ENTRY_OPS):
        return "issued"
    if index in analyze(recording).lost_by:
        return "LOST"
    if index in state.dropped:
        return "DROPPED"
    if state.tear is not None and state.tear.op_index == index:
        return "TORN"
    return "kept"


def describe(recording: Recording, state: CrashState) -> list[str]:
    """One line per disk operation (Acks left out): its index, what `state` did with it
    (`op_status`; a tear names the sectors that persisted), the micro-operation, and the
    call and `file:line` that issued it. Runs of more than `DESCRIBE_KEPT_RUN_MAX`
    unremarkable lines (kept or issued; not issued) are summarized in one line."""
    names = inode_names(recording)
    lines: list[str] = []
    run: list[str] = []
    run_kind = ""
    for index, op in enumerate(recording.ops):
        if isinstance(op, Ack):
            continue
        status = op_status(recording, state, index)
        line = _describe_line(recording.sites[index], index, status, op, names, state)
        kind = {"kept": "kept", "issued": "kept", "not issued": "not issued"}.get(status, "")
        if kind != run_kind:
            lines += _collapsed(run, run_kind)
            run, run_kind = [], kind
        run.append(line)
    return lines + _collapsed(run, run_kind)


def _describe_line(
    site: CallSite, index: int, status: str, op: MicroOp, names: dict[int, str], state: CrashState
) -> str:
    if status == "TORN" and state.tear is not None:
        tear = state.tear
        persisted = [str(k) for k, bit in enumerate(tear.persisted) if bit]
        kind = "garbage" if tear.garbage else "old bytes"
        sectors = ",".join(persisted) or "none"
        status = f"TORN (sectors {sectors} of {len(tear.persisted)} x {tear.sector_bytes} B persisted, the rest {kind})"
    return f"#{index:<4} {status:<10} {_op_text(op, names):<40} {site.call}  at {site.where()}"


def _collapsed(run: list[str], kind: str) -> list[str]:
    if not kind or len(run) <= DESCRIBE_KEPT_RUN_MAX:
        return run
    shown = DESCRIBE_KEPT_RUN_MAX // 2
    return [*run[:shown], f"      ... {len(run) - 2 * shown} more operations {kind} ...", *run[-shown:]]


def responsible_sites(recording: Recording, state: CrashState) -> list[Responsibility]:
    """The source lines that let `state` happen: each dropped or torn operation's site
    (with the site of the first Ack made after it and before the crash, which promised
    what was not yet durable), and each operation lost to a failed fsync with that fsync's
    site. For a prefix state with nothing lost, the site of the last change before the
    crash: the state it leaves on disk is one a crash there gives without any reordering."""
    analysis, ops, sites = analyze(recording), recording.ops, recording.sites
    names = inode_names(recording)
    found: list[Responsibility] = []
    for index in state.dropped:
        found.append(
            Responsibility(sites[index].responsible, index, f"{_op_text(ops[index], names)} was lost: not durable")
        )
        found += _premature_ack(recording, index, state.point)
    if state.tear is not None:
        index = state.tear.op_index
        found.append(
            Responsibility(sites[index].responsible, index, f"{_op_text(ops[index], names)} tore: not durable")
        )
        found += _premature_ack(recording, index, state.point)
    for index, drop_index in sorted(analysis.lost_by.items()):
        if index < state.point:
            reason = f"{_op_text(ops[index], names)} was lost when the fsync at {sites[drop_index].site} failed"
            found.append(Responsibility(sites[index].responsible, index, reason))
    if not found:
        issued = analysis.changes[: analysis.changes_issued(state.point)]
        if issued:
            last = issued[-1]
            reason = f"{_op_text(ops[last], names)}, the last change before the crash, left this state on disk"
            found.append(Responsibility(sites[last].responsible, last, reason))
    return list(dict.fromkeys(found))


def _premature_ack(recording: Recording, index: int, point: int) -> list[Responsibility]:
    """The first Ack after operation `index` and before `point`: a promise made before it was durable."""
    analysis = analyze(recording)
    for ack_index in analysis.acks[: analysis.acks_before(point)]:
        if ack_index > index:
            value = _ack_value(recording.ops[ack_index])
            reason = f"acknowledged {value!r} before operation #{index} was durable (no fsync in between)"
            return [Responsibility(recording.sites[ack_index].site, ack_index, reason)]
    return []


def inode_names(recording: Recording) -> dict[int, str]:
    """inode -> a readable path relative to the root, from the entries the recording made
    (the first name each inode had; inodes of the initial image that were never named
    by an operation are left out)."""
    parents: dict[int, tuple[int, str]] = {}
    for op in recording.ops:
        if isinstance(op, Create | Mkdir):
            parents.setdefault(op.inode, (op.parent, op.name))
        elif isinstance(op, Rename):
            parents.setdefault(op.inode, (op.target_parent, op.target_name))
        elif isinstance(op, Unlink | Rmdir):
            parents.setdefault(op.inode, (op.parent, op.name))
    return {inode: _path_of(inode, parents) for inode in parents}


def _path_of(inode: int, parents: dict[int, tuple[int, str]]) -> str:
    parts: list[str] = []
    seen: set[int] = set()
    while inode in parents and inode not in seen:
        seen.add(inode)
        inode, name = parents[inode]
        parts.append(name)
    prefix = "" if inode == ROOT_INODE else f"<inode {inode}>/"
    return prefix + "/".join(reversed(parts))


def _op_text(op: MicroOp, names: dict[int, str] | None = None) -> str:
    """A micro-operation in words, its inodes named by their paths (relative to the
    simulated root) when `names` knows them."""

    def name(inode: int) -> str:
        if inode == ROOT_INODE:
            return "the root directory"
        known = (names or {}).get(inode)
        return repr(known) if known is not None else f"inode {inode}"

    def entry(parent: int, entry_name: str) -> str:
        directory = "" if parent == ROOT_INODE else (names or {}).get(parent)
        if directory is None:
            return f"{entry_name!r} in inode {parent}"
        return repr(f"{directory}/{entry_name}" if directory else entry_name)

    if isinstance(op, Write):
        return f"write {len(op.data)} B at {op.offset} of {name(op.inode)}"
    if isinstance(op, Truncate):
        return f"truncate {name(op.inode)} to {op.size} B"
    if isinstance(op, Chmod):
        return f"chmod {name(op.inode)} {op.mode:o}"
    if isinstance(op, Create | Mkdir):
        return f"{'create' if isinstance(op, Create) else 'mkdir'} {entry(op.parent, op.name)}"
    if isinstance(op, Unlink | Rmdir):
        return f"{'unlink' if isinstance(op, Unlink) else 'rmdir'} {entry(op.parent, op.name)}"
    if isinstance(op, Rename):
        source, target = entry(op.source_parent, op.source_name), entry(op.target_parent, op.target_name)
        return f"rename {source} to {target}"
    if isinstance(op, Sync):
        return f"{'fdatasync' if op.data_only else 'fsync'} {name(op.inode)}"
    if isinstance(op, DropDirty):
        return f"failed fsync dropped the dirty data of {name(op.inode)}"
    return f"ack {op.value!r}"


def changes_in(recording: Recording, state: CrashState) -> Iterator[int]:
    """The indexes of the changes `state` keeps (those `build_image` applies), in order."""
    analysis = analyze(recording)
    dropped = set(state.dropped)
    for index in analysis.changes[: analysis.changes_issued(state.point)]:
        if index not in dropped and index not in analysis.lost_by:
            yield index
