"""Crash states checked per second: in process (ours) beside the traditional way (ALICE's).

    python benchmarks/bench_crash_states.py [--states N] [--workload NAME ...] [--rounds N] [--seed N] [--profile]

One process, one core. For each workload (default: TinyDB with 10 inserts, and the
standard library's `dbm.dumb`), the target is recorded once, its `alice` crash states are
enumerated and deduplicated (the same list serves both ways), then:

1. in process (ours): every unique state is checked as `explore` checks it: build its
   image from the recording, mount a fresh `PosixView` of it in one interposition, run
   the target's `check`. The rate is unique states over the wall time of that loop (the
   median of `--rounds` rounds; recording, enumeration, deduplication and entering the
   interposition excluded). A second column includes them: unique states over the time
   of recording + enumerating + deduplicating + one round with its interposition.
2. the traditional way (as ALICE does): a seeded sample of `--states` of the same unique
   states (sampled because a process per state is slow), each built, materialized into a
   fresh `tempfile.mkdtemp` directory (its directories and files with their modes),
   checked by a fresh `python -c` process that imports the target file by path and calls
   `check(Path(dir), acked, pending)` (the promises passed as JSON), and removed. The
   rate counts all of that: building, writing, the process, removing.

Both ways must agree on every sampled state: the same verdict and, for a failure, the
same exception type; a disagreement would mean the POSIX view differs from the real disk
for that library. Targets (reported, not asserted): 1,000 states/s/core in process, and
50x the traditional way. `--profile` also runs one in-process checking loop under
cProfile and prints the top functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io as text_io
import json
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from io_backends.sim.posix.fs import Image, Tree
from io_backends.sim.posix.interpose import interpose
from io_backends.sim.posix.ops import Recording
from io_backends.sim.posix.view import PosixView
from scenarios.crash_states import CrashState, Deduplicator, acknowledged, build_image, enumerate_states
from scenarios.target import DEFAULT_ROOT, StateResult, Target, check_state, load_target, record

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {
    "tinydb_10_inserts": ROOT / "benchmarks" / "targets" / "tinydb_10_inserts.py",
    "dbm_dumb": ROOT / "tests" / "targets" / "dbm_dumb.py",
    "persistqueue_queue": ROOT / "tests" / "targets" / "persistqueue_queue.py",
}
DEFAULT_WORKLOADS = ("tinydb_10_inserts", "dbm_dumb")
# A fresh process per state costs tens of milliseconds: 30 states keep the traditional
# way near a second per workload, and the whole script well under a minute.
DEFAULT_SAMPLE_STATES = 30
# The checking loop of a small workload lasts tens of milliseconds: nine rounds make its
# median steady without lengthening the run.
DEFAULT_ROUNDS = 9
TARGET_STATES_PER_SECOND = 1_000
TARGET_RATIO = 50
# A check of a small workload takes well under a second; a minute means it hung.
CHECK_PROCESS_TIMEOUT_SECONDS = 60
# Fresh interpreters started to time a bare `python -c pass`: enough for a steady mean.
BARE_STARTS = 10
PROFILE_LINES = 15

# The traditional way's checker: a fresh interpreter imports the target by path (as a
# user's own script would, with importlib alone) and prints one verdict line.
CHECK_PROGRAM = """
import importlib.util, json, sys
from pathlib import Path
target_path, directory, promises = sys.argv[1:]
spec = importlib.util.spec_from_file_location("crash_target", target_path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
acked, pending = json.loads(promises)
try:
    module.check(Path(directory), acked, pending)
except Exception as error:
    print("failed", type(error).__name__)
else:
    print("passed")
"""

Verdict = tuple[str, str]  # ("passed", "") or ("failed", "AssertionError"), ("unmodelled", ...)


@dataclass(frozen=True)
class Prepared:
    """A workload recorded once, its `alice` states enumerated and deduplicated."""

    name: str
    target: Target
    recording: Recording
    enumerated: int
    unique: list[CrashState]
    seconds: float  # recording + enumeration + deduplication


@dataclass(frozen=True)
class Row:
    """One workload's figures."""

    prepared: Prepared
    in_process_rate: float  # unique states per second, checking loop only
    end_to_end_rate: float  # unique states per second, recording and enumeration included
    traditional_rate: float  # sampled states per second, a fresh process each
    sampled: int
    disagreements: list[str]  # "state id: in process (...), traditional (...)"

    @property
    def ratio(self) -> float:
        return self.in_process_rate / self.traditional_rate


def prepare(name: str) -> Prepared:
    """Load and record the workload `name`, enumerate its `alice` states and keep the
    first of each identical kind (what `explore` checks)."""
    target = load_target(WORKLOADS[name])
    started = time.perf_counter()
    recording = record(target).recording
    states = enumerate_states(recording, "alice")
    deduplicator = Deduplicator(recording)
    unique = [state for state in states if deduplicator.first(state, build_image(recording, state))]
    return Prepared(name, target, recording, len(states), unique, time.perf_counter() - started)


def _verdict(result: StateResult) -> Verdict:
    error_type = (result.error or "").partition(":")[0]
    return (result.verdict, error_type)


def check_round(prepared: Prepared, profile: cProfile.Profile | None = None) -> tuple[float, float, dict[str, Verdict]]:
    """Check every unique state in process once: (seconds of the checking loop, seconds
    with entering and leaving the interposition, the verdict of each state by id). With
    `profile`, the loop (only) runs under it."""
    verdicts: dict[str, Verdict] = {}
    started = time.perf_counter()
    with interpose(PosixView(DEFAULT_ROOT, Tree())) as interposition:
        if profile is not None:
            profile.enable()
        loop_started = time.perf_counter()
        for state in prepared.unique:
            verdicts[state.id] = _verdict(check_state(prepared.target, prepared.recording, state, interposition))
        loop_seconds = time.perf_counter() - loop_started
        if profile is not None:
            profile.disable()
    return loop_seconds, time.perf_counter() - started, verdicts


def check_in_process(prepared: Prepared, rounds: int) -> tuple[float, float, dict[str, Verdict]]:
    """(states/s of the checking loop, the median of `rounds`; states/s of recording,
    enumeration, deduplication and the first round together; the verdicts). Raises
    `AssertionError` if two rounds disagree (the check must be deterministic)."""
    loops: list[float] = []
    first: tuple[float, dict[str, Verdict]] | None = None
    for _ in range(rounds):
        loop_seconds, round_seconds, verdicts = check_round(prepared)
        loops.append(loop_seconds)
        if first is None:
            first = (round_seconds, verdicts)
        assert verdicts == first[1], f"{prepared.name}: two in-process rounds gave different verdicts"
    assert first is not None, "at least one round"
    count = len(prepared.unique)
    return count / statistics.median(loops), count / (prepared.seconds + first[0]), first[1]


def materialize(image: Image, directory: Path) -> None:
    """Write `image` under the real `directory`: its directories, its files with their
    bytes and modes, then the directories' modes (deepest first, so a read-only directory
    is made read-only after its files are in)."""
    for path, _mode in image.directories:
        (directory / path).mkdir(parents=True, exist_ok=True)
    for path, data, mode in image.files:
        file_path = directory / path
        file_path.parent.mkdir(parents=True, exist_ok=True)
        file_path.write_bytes(data)
        os.chmod(file_path, mode)
    for path, mode in sorted(image.directories, reverse=True):
        os.chmod(directory / path, mode)


def promises_json(acked: list[object], pending: object | None) -> str:
    """`[acked, pending]` as JSON. Raises `ValueError` when they do not survive the round
    trip unchanged (the child would be told something else than the in-process check)."""
    text = json.dumps([acked, pending])
    if json.loads(text) != [acked, pending]:
        raise ValueError(f"promises {acked!r}, {pending!r} do not survive JSON unchanged")
    return text


def check_in_fresh_process(target_path: Path, directory: Path, promises: str) -> Verdict:
    """Run `CHECK_PROGRAM` in a fresh interpreter on `directory`; its verdict. Raises
    `RuntimeError` when the child does not print one (the harness broke, not the check)."""
    completed = subprocess.run(
        [sys.executable, "-c", CHECK_PROGRAM, str(target_path), str(directory), promises],
        capture_output=True,
        text=True,
        timeout=CHECK_PROCESS_TIMEOUT_SECONDS,
        check=False,
    )
    words = completed.stdout.split()
    if completed.returncode != 0 or not words or words[0] not in ("passed", "failed"):
        raise RuntimeError(f"the check process gave no verdict (exit {completed.returncode}): {completed.stderr}")
    return (words[0], words[1] if len(words) > 1 else "")


def check_traditionally(prepared: Prepared, sample: list[CrashState]) -> tuple[float, dict[str, Verdict]]:
    """(states/s, verdicts) of the traditional way on `sample`: per state, build the
    image, materialize it into a fresh temporary directory, check it in a fresh process,
    remove the directory; all of it timed."""
    verdicts: dict[str, Verdict] = {}
    started = time.perf_counter()
    for state in sample:
        image = build_image(prepared.recording, state)
        promises = promises_json(*acknowledged(prepared.recording, state))
        directory = Path(tempfile.mkdtemp(prefix=f"crash-state-{prepared.name}-"))
        try:
            materialize(image, directory)
            verdicts[state.id] = check_in_fresh_process(prepared.target.path, directory, promises)
        finally:
            shutil.rmtree(directory)
    return len(sample) / (time.perf_counter() - started), verdicts


def measure(name: str, sample_size: int, rounds: int, seed: int) -> Row:
    """Both ways on workload `name`, and where they disagree."""
    prepared = prepare(name)
    in_process_rate, end_to_end_rate, in_process = check_in_process(prepared, rounds)
    chosen = sorted(random.Random(seed).sample(range(len(prepared.unique)), min(sample_size, len(prepared.unique))))
    sample = [prepared.unique[index] for index in chosen]
    traditional_rate, traditional = check_traditionally(prepared, sample)
    disagreements = [
        f"{state.id}: in process {in_process[state.id]}, traditional {traditional[state.id]}"
        for state in sample
        if in_process[state.id] != traditional[state.id]
    ]
    return Row(prepared, in_process_rate, end_to_end_rate, traditional_rate, len(sample), disagreements)


def bare_start_milliseconds() -> float:
    """The mean wall time of a fresh `python -c pass`: the floor of one traditional check."""
    started = time.perf_counter()
    for _ in range(BARE_STARTS):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - started) / BARE_STARTS * 1000


def profile_report(prepared: Prepared) -> str:
    """The checking loop of one in-process round of `prepared` under cProfile: the top
    functions by cumulative time, then by own time."""
    profile = cProfile.Profile()
    check_round(prepared, profile)
    stream = text_io.StringIO()
    profile_statistics = pstats.Stats(profile, stream=stream).strip_dirs()
    profile_statistics.sort_stats("cumulative").print_stats(PROFILE_LINES)
    profile_statistics.sort_stats("tottime").print_stats(PROFILE_LINES)
    title = f"profile of one in-process checking loop of {prepared.name} ({len(prepared.unique)} states):"
    return f"{title}\n{stream.getvalue()}"


HEADER = (
    f"{'workload':<20} {'micro-ops':>9} {'enumerated':>10} {'unique':>6} {'in-process/s/core':>17} "
    f"{'incl. record+enum/s':>19} {'traditional/s':>13} {'sampled':>7} {'ratio':>7} {'disagree':>8}"
)


def row_text(row: Row) -> list[str]:
    """The table row of `row` and its targets line."""
    prepared = row.prepared
    figures = (
        f"{prepared.name:<20} {len(prepared.recording.ops):>9,} {prepared.enumerated:>10,} {len(prepared.unique):>6,} "
        f"{row.in_process_rate:>17,.0f} {row.end_to_end_rate:>19,.0f} {row.traditional_rate:>13,.1f} "
        f"{row.sampled:>7} {row.ratio:>6,.1f}x {len(row.disagreements):>8}"
    )
    rate_status = "met" if row.in_process_rate >= TARGET_STATES_PER_SECOND else "not met"
    ratio_status = "met" if row.ratio >= TARGET_RATIO else "not met"
    targets = (
        f"  targets: {TARGET_STATES_PER_SECOND:,} states/s/core in process: {rate_status}; "
        f"{TARGET_RATIO}x the traditional way: {ratio_status}"
    )
    return [figures, targets, *(f"  DISAGREEMENT {line}" for line in row.disagreements)]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--states", type=int, default=DEFAULT_SAMPLE_STATES, help="traditional sample size")
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS), help="repeatable")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="in-process rounds (median)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the traditional sample")
    parser.add_argument("--profile", action="store_true", help="also cProfile one in-process checking loop")
    arguments = parser.parse_args()
    if arguments.states < 1 or arguments.rounds < 1:
        parser.error("--states and --rounds must be at least 1")
    return arguments


def main() -> None:
    arguments = parse_arguments()
    names: list[str] = arguments.workload or list(DEFAULT_WORKLOADS)
    options = f"--states {arguments.states} --rounds {arguments.rounds} --seed {arguments.seed}"
    loads = ", ".join(f"{load:.2f}" for load in os.getloadavg())
    print(f"bench_crash_states {options} {' '.join(f'--workload {name}' for name in names)}")
    print(f"  python {sys.version.split()[0]}, load average {loads}, {os.cpu_count()} cores")
    print(HEADER)
    rows = [measure(name, arguments.states, arguments.rounds, arguments.seed) for name in names]
    for row in rows:
        print("\n".join(row_text(row)))
    print(f"a bare `python -c pass` takes {bare_start_milliseconds():.1f} ms (the floor of one traditional check)")
    if arguments.profile:
        for row in rows:
            print(profile_report(row.prepared))


if __name__ == "__main__":
    main()
