"""A run as data: every decision of one seed, so it can be replayed, shrunk and saved.

A seeded run draws its decisions from the seed (which operation comes next, when a
crash is planned, whether recovery crashes); a `Schedule` holds those decisions
explicitly. Replaying a schedule (`scenarios.runner.run_schedule`) drives the same
oracle; the simulated disk's own choices (completion order, which faults fire) still
come from `sim_seed`, so a schedule replays exactly, and a shrunk schedule (fewer
steps, fewer faults) is again a deterministic run.

The JSON form (a replay file) is documented in `reports/README.md`. Keys and values are
stored as text decoded as latin-1, which round-trips any bytes and keeps ASCII readable.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from io_backends.sim.faults import FaultPlan
from kv.store import Durability
from scenarios.operations import KINDS, KindError, Operation, kind_of

# 2: each step draws the disk's decisions from its own stream; 3: an operation's other
# arguments are a list of their own (a pause's length was a key "us=N" before)
FORMAT_VERSION = 3
FORMATS_READ = (1, 2, 3)
_PAUSE_LENGTH_PREFIX = "us="  # formats 1 and 2


class ScheduleError(ValueError):
    """A replay file that is not a valid schedule."""


@dataclass(frozen=True)
class Step:
    """One workload operation and the decisions taken while it ran.

    `crash_after_ios`: the power fails once this many simulated I/Os of this step have
    completed (0: before its first; a count past the step's last I/O carries over into
    the next steps). `recovery_crashes`: for each
    recovery attempt during this step, in order, the I/O count into the open at which
    it crashes, or None; attempts past the end of the tuple do not crash. `forced`: fault
    draw names whose next opportunity fires for certain, from the start of this step
    (a seed's forced first firing of its scenario's defining faults).
    """

    operation: Operation
    crash_after_ios: int | None = None
    recovery_crashes: tuple[int | None, ...] = ()
    forced: tuple[str, ...] = ()
    stream: int | None = None  # the disk's RNG stream for this step (its number when recorded)


@dataclass(frozen=True)
class Schedule:
    scenario: str
    seed: int  # the seed the schedule was recorded from (for the record)
    sim_seed: int  # the simulated disk's RNG: completion order, fault draws
    faults: FaultPlan
    steps: tuple[Step, ...]
    durability: Durability = "always"
    segment_size_target_bytes: int = 16 * 1024
    # Each step's disk decisions come from its own RNG stream (`SimIo.begin_stream`,
    # numbered by `Step.stream`), so deleting steps does not move later faults. False
    # for a format-1 replay file: one stream for the whole run.
    streams: bool = True
    opening_crashes: tuple[int | None, ...] = ()  # recovery attempts of the first open
    closing_crashes: tuple[int | None, ...] = ()  # recovery attempts of the liveness phase

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION if self.streams else 1,
            "scenario": self.scenario,
            "seed": self.seed,
            "sim_seed": self.sim_seed,
            "durability": self.durability,
            "segment_size_target_bytes": self.segment_size_target_bytes,
            "faults": {name: asdict(getattr(self.faults, name)) for name in self.faults.enabled()},
            "opening_crashes": list(self.opening_crashes),
            "closing_crashes": list(self.closing_crashes),
            "steps": [_step_to_json(step) for step in self.steps],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def from_json(cls, document: Any) -> Schedule:
        """Parse a replay document; raises `ScheduleError` with what is wrong."""
        try:
            if document.get("format") not in FORMATS_READ:
                raise ScheduleError(f"unsupported replay format {document.get('format')!r} (expected {FORMAT_VERSION})")
            version = document["format"]
            return cls(
                scenario=str(document["scenario"]),
                seed=int(document["seed"]),
                sim_seed=int(document["sim_seed"]),
                faults=_plan_from_json(document["faults"]),
                steps=tuple(_step_from_json(step, version) for step in document["steps"]),
                durability=document.get("durability", "always"),
                segment_size_target_bytes=int(document.get("segment_size_target_bytes", 16 * 1024)),
                opening_crashes=_crashes(document.get("opening_crashes", [])),
                closing_crashes=_crashes(document.get("closing_crashes", [])),
                streams=version >= 2,
            )
        except ScheduleError:
            raise
        except KindError as error:
            raise ScheduleError(str(error)) from None
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise ScheduleError(f"not a replay schedule: {type(error).__name__}: {error}") from None

    @classmethod
    def loads(cls, text: str) -> Schedule:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ScheduleError(f"not JSON: {error}") from None
        return cls.from_json(document)

    def size(self) -> tuple[int, int, int]:
        """How big it is, for shrinking: steps, faults on, planned crashes."""
        crashes = sum(step.crash_after_ios is not None for step in self.steps)
        return len(self.steps), len(self.faults.enabled()), crashes

    def with_steps(self, steps: tuple[Step, ...]) -> Schedule:
        return replace(self, steps=steps)


def _step_to_json(step: Step) -> dict[str, Any]:
    encoded = kind_of(step.operation).to_json(step.operation)
    if step.crash_after_ios is not None:
        encoded["crash_after_ios"] = step.crash_after_ios
    if step.recovery_crashes:
        encoded["recovery_crashes"] = list(step.recovery_crashes)
    if step.forced:
        encoded["forced"] = list(step.forced)
    if step.stream is not None:
        encoded["stream"] = step.stream
    return encoded


def _step_from_json(encoded: Any, version: int) -> Step:
    kind = encoded["op"]
    if kind not in KINDS:
        raise ScheduleError(f"unknown operation {kind!r} (known: {', '.join(KINDS)})")
    if version < 3 and kind == "pause" and "arguments" not in encoded:
        encoded = _pause_from_format_2(encoded)
    crash = encoded.get("crash_after_ios")
    forced = encoded.get("forced", [])
    if not isinstance(forced, list) or not all(isinstance(name, str) for name in forced):
        raise ScheduleError(f"'forced' must be a list of fault names, not {forced!r}")
    crashes = _crashes(encoded.get("recovery_crashes", []))
    stream = encoded.get("stream")
    return Step(
        KINDS[kind].from_json(encoded),
        None if crash is None else int(crash),
        crashes,
        tuple(forced),
        None if stream is None else int(stream),
    )


def _pause_from_format_2(encoded: dict[str, Any]) -> dict[str, Any]:
    """A pause of format 1 or 2 carried its length as a key "us=N": an argument now."""
    lengths = [
        int(key[len(_PAUSE_LENGTH_PREFIX) :]) for key, _ in encoded["changes"] if key.startswith(_PAUSE_LENGTH_PREFIX)
    ]
    return {**encoded, "changes": [], "arguments": lengths[:1]}


def _crashes(values: Any) -> tuple[int | None, ...]:
    return tuple(None if value is None else int(value) for value in values)


def _plan_from_json(encoded: Any) -> FaultPlan:
    known = {item.name: item for item in fields(FaultPlan)}
    settings = {}
    for name, parameters in encoded.items():
        if name not in known:
            raise ScheduleError(f"unknown fault {name!r} (known: {', '.join(known)})")
        fault_type = type(getattr(FaultPlan(), name))
        try:
            settings[name] = fault_type(**parameters)
        except TypeError as error:
            raise ScheduleError(f"fault {name}: {error}") from None
    return replace(FaultPlan(), **settings)
