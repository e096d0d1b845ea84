"""`sim_runner --target FILE.py` and the `crash_check` fixture: exit codes, the first line
with `repro:`, `--crash-state` replays, the artifacts, usage errors, and hypothesis
shrinking a workload's parameters. Every run is the command as a user runs it, in a
subprocess (nothing imports `sim_runner`: it is the CLI only), and the fixture is tried
through pytester as a user's test file."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from scenarios.crash_check import CrashCheck
from scenarios.crash_strategies import balances, crash_settings
from scenarios.target_faults import INLINE_FAULTS

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "tests" / "targets"
REWRITE = TARGETS / "rewrite_in_place.py"
ATOMIC = TARGETS / "atomic_replace.py"


def run_main(*arguments: str) -> tuple[int, list[str], str]:
    """`sim_runner` in a subprocess, as a user runs it: (exit code, stdout lines, stderr)."""
    command = [sys.executable, str(ROOT / "sim_runner.py"), *arguments]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    return completed.returncode, completed.stdout.splitlines(), completed.stderr


def repro_of(lines: list[str]) -> str:
    """The `repro:` command of the first failure report in `lines`."""
    return next(line for line in lines if line.startswith("  repro: ")).removeprefix("  repro: ")


@pytest.fixture(scope="module")
def rewrite_reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[str], Path]:
    """One exploration of the target that rewrites in place, its reports kept."""
    directory = tmp_path_factory.mktemp("rewrite")
    code, lines, _ = run_main("--target", str(REWRITE), "--report-dir", str(directory))
    return code, lines, directory


def test_rewriting_in_place_fails_with_the_minimal_state_and_its_line(
    rewrite_reports: tuple[int, list[str], Path],
) -> None:
    code, lines, _directory = rewrite_reports
    assert code == 1
    assert lines[0] == (
        f"sim_runner: target={REWRITE} explore=alice budget=20000 seed=0 faults=none "
        f"repro: sim_runner --target {REWRITE} --explore alice --budget 20000 --seed 0"
    )
    assert lines[1].startswith("recorded ") and "the workload returned" in lines[1]
    report = "\n".join(lines)
    assert "FAIL crash state p" in report and "rewrite_in_place.py:19" in report  # the write_text line
    assert "responsible:" in report and repro_of(lines).startswith(f"sim_runner --target {REWRITE} --crash-state p")
    counts = next(line for line in lines if line.startswith("states: enumerated "))
    assert "unique" in counts and "checked" in counts and "states/s" in counts
    assert any(line.startswith("and ") and "other failing states" in line for line in lines)
    assert lines[-1].startswith("FAILED in ")


def test_the_minimal_state_replays_to_the_same_verdict(rewrite_reports: tuple[int, list[str], Path]) -> None:
    _code, lines, _directory = rewrite_reports
    words = repro_of(lines).split()[1:]
    error = next(line for line in lines if line.startswith("FAIL crash state ")).split(": ", 1)[1]
    code, replayed, _err = run_main(*words)
    assert code == 1
    assert replayed[0].endswith(f"repro: {' '.join(['sim_runner', *words])}")
    assert replayed[1].startswith(f"FAIL crash state {words[-1]}: ") and replayed[1].endswith(error)
    assert replayed[-1] == "FAILED"


def test_a_passing_state_replays_with_its_operations_and_exit_0() -> None:
    code, lines, _err = run_main("--target", str(REWRITE), "--crash-state", "p1")
    assert code == 0
    assert lines[1] == "PASS crash state p1: the check passed" and "  operations:" in lines
    assert lines[-1] == "passed"


def test_atomic_replace_passes_every_state(tmp_path: Path) -> None:
    code, lines, _err = run_main("--target", str(ATOMIC), "--report-dir", str(tmp_path))
    assert code == 0, "\n".join(lines)
    assert lines[-1].startswith("passed in ") and "failed 0 in" in lines[-3]
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["exit_code"] == 0 and document["failures"] == []
    assert document["counts"]["unique"] == document["counts"]["checked"] > 0
    junit = ElementTree.parse(tmp_path / "junit.xml").getroot()
    assert junit.get("tests") == "1" and junit.get("failures") == "0"


def test_inline_faults_run_and_a_fault_the_workload_reports_is_no_failure(tmp_path: Path) -> None:
    # Seed 2 gives the disk a capacity of 1 byte: the first write fails with ENOSPC.
    arguments = ("--target", str(ATOMIC), "--faults", "disk_full", "--seed", "2", "--report-dir", str(tmp_path))
    code, lines, _err = run_main(*arguments)
    assert code == 0, "\n".join(lines)
    assert lines[0].endswith("--seed 2 --faults disk_full") and "No space left on device" in lines[1]
    assert "final state (no crash, inline faults on): passed" in lines


BROKEN_TARGETS = {
    "unmodelled": "import os\ndef workload(root, ack):\n    os.symlink(root / 'a', root / 'b')\n",
    "raising": "def workload(root, ack):\n    raise RuntimeError('the workload is broken')\n",
}


@pytest.mark.parametrize("kind", sorted(BROKEN_TARGETS))
def test_no_verdict_is_a_harness_failure_with_exit_3_and_the_traceback(kind: str, tmp_path: Path) -> None:
    target = tmp_path / f"{kind}.py"
    target.write_text(BROKEN_TARGETS[kind] + "def check(root, acked, pending):\n    pass\n")
    code, lines, err = run_main("--target", str(target), "--report-dir", str(tmp_path / "reports"))
    assert code == 3
    assert any(line.startswith("harness failure: ") for line in lines) and lines[-1].startswith("HARNESS FAILED")
    assert "Traceback (most recent call last)" in err
    assert ("UnmodelledCall" if kind == "unmodelled" else "RuntimeError: the workload is broken") in err
    junit = ElementTree.parse(tmp_path / "reports" / "junit.xml").getroot()
    assert junit.get("errors") == "1"


def test_a_workload_raising_under_inline_faults_is_checked_not_a_harness_failure(tmp_path: Path) -> None:
    target = tmp_path / "raising.py"
    target.write_text(BROKEN_TARGETS["raising"] + "def check(root, acked, pending):\n    pass\n")
    code, lines, _err = run_main("--target", str(target), "--faults", "fsync_gate", "--report-dir", str(tmp_path))
    assert code == 0, "\n".join(lines)


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--target", "no/such/file.py"], "no target file"),
        (["--target", str(REWRITE), "--explore", "bogus"], "--explore"),
        (["--target", str(REWRITE), "--explore", "random:0"], "--explore"),
        (["--target", str(REWRITE), "--budget", "0"], "--budget"),
        (["--target", str(REWRITE), "--seed", "-1"], "--seed"),
        (["--target", str(REWRITE), "--crash-state", "q7"], "--crash-state"),
        (["--target", str(REWRITE), "--crash-state", "p999"], "past the"),
        (["--target", str(REWRITE), "--faults", "nope"], ", ".join(INLINE_FAULTS)),
        (["--target", str(REWRITE), "--scenario", "crash"], "cannot be combined with --scenario"),
        (["--target", str(REWRITE), "--shrink"], "--shrink"),
        (["--target", str(REWRITE), "--replay", "x.json"], "--replay"),
        (["--target", str(REWRITE), "--crash-state", "p1", "--budget", "5"], "do not apply"),
        (["--explore", "alice"], "need --target"),
    ],
)
def test_usage_errors_exit_2_with_a_message(arguments: list[str], message: str, tmp_path: Path) -> None:
    code, _lines, err = run_main(*arguments, "--report-dir", str(tmp_path))
    assert code == 2
    assert message in err


def test_a_target_without_check_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "half.py"
    target.write_text("def workload(root, ack):\n    pass\n")
    code, lines, err = run_main("--target", str(target))
    assert code == 2 and "check(...)" in err and not lines


WRITES_AND_ACKS = "def workload(root, ack):\n    (root / 'f').write_text('x')\n    ack('x')\n"
CHECKS_NOTHING = "def check(root, acked, pending):\n    pass\n"


@pytest.mark.parametrize(
    ("source", "code", "message"),
    [
        # a check that exits has not said a state is sound: that state fails
        (
            "import sys\n" + WRITES_AND_ACKS + "def check(root, acked, pending):\n"
            "    if not (root / 'f').exists():\n        sys.exit(0)\n",
            1,
            "SystemExit: 0",
        ),
        # sys.exit() in the workload ends the workload, not sim_runner
        ("import sys\n" + WRITES_AND_ACKS + "    sys.exit(0)\n" + CHECKS_NOTHING, 3, "SystemExit: 0"),
        ("raise SystemExit(0)\n", 2, "failed to import: SystemExit: 0"),
        ("def workload(root):\n    pass\n" + CHECKS_NOTHING, 2, "workload must take 2 arguments: workload(root, ack)"),
        (WRITES_AND_ACKS + "def check(root):\n    pass\n", 2, "check must take 3 arguments"),
    ],
    ids=["exit-in-check", "exit-in-workload", "exit-at-import", "workload-signature", "check-signature"],
)
def test_a_target_that_exits_or_takes_the_wrong_arguments_never_passes(
    source: str, code: int, message: str, tmp_path: Path
) -> None:
    target = tmp_path / "target.py"
    target.write_text(source)
    returned, lines, err = run_main("--target", str(target), "--report-dir", str(tmp_path / "reports"))
    assert returned == code, (lines, err)
    assert message in "\n".join(lines) + err


def test_a_budget_that_leaves_states_out_says_so(tmp_path: Path) -> None:
    """helper review: `--budget 10` checked 10 of 34 states and said only "passed"."""
    code, lines, _err = run_main("--target", str(ATOMIC), "--budget", "5", "--report-dir", str(tmp_path))
    assert code == 0
    [counts] = [line for line in lines if line.startswith("states: ")]
    possible = int(counts.split("a seeded sample of ")[1].split(" possible")[0].replace(",", ""))
    assert possible > 5 and f"--budget 5 left {possible - 5:,} unchecked" in counts
    document = json.loads((tmp_path / "results.json").read_text())
    assert (document["counts"]["possible"], document["counts"]["enumerated"]) == (possible, 5)
    code, lines, _err = run_main("--target", str(ATOMIC), "--report-dir", str(tmp_path))
    assert code == 0 and not any("seeded sample" in line for line in lines)


def test_the_command_line_as_a_user_runs_it(tmp_path: Path) -> None:
    """In a subprocess, from the repository: exit code 1, the repro line first."""
    command = [sys.executable, str(ROOT / "sim_runner.py"), "--target", "tests/targets/rewrite_in_place.py"]
    command += ["--explore", "prefix", "--report-dir", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120, env=dict(os.environ))
    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    repro = "sim_runner --target tests/targets/rewrite_in_place.py --explore prefix --budget 20000 --seed 0"
    assert first.endswith(f"repro: {repro}")


# ---------------------------------------------------------------- artifacts


def test_results_json_lists_every_failing_state_with_its_operations(
    rewrite_reports: tuple[int, list[str], Path],
) -> None:
    _code, lines, directory = rewrite_reports
    document: dict[str, Any] = json.loads((directory / "results.json").read_text())
    assert document["format"] == "sim_runner.target_results/1" and document["exit_code"] == 1
    assert document["repro"] == lines[0].split("repro: ", 1)[1]
    counts = document["counts"]
    assert len(document["failures"]) == counts["failed"] > 1
    operations = document["operations"]
    assert len(operations) == counts["operations"]
    assert all({"index", "kind", "call", "site"} <= set(operation) for operation in operations)
    first = document["failures"][0]
    assert first["repro"] == repro_of(lines) and first["error"]
    for failure in document["failures"]:
        issued = set(failure["kept"]) | set(failure["dropped"])
        assert issued <= set(range(failure["crash_point"]))
        assert failure["responsible"] and all(":" in item["site"] for item in failure["responsible"])
    assert any(failure["dropped"] for failure in document["failures"])


def test_junit_has_a_testcase_per_failing_state_and_html_their_operations(
    rewrite_reports: tuple[int, list[str], Path],
) -> None:
    _code, _lines, directory = rewrite_reports
    failures = json.loads((directory / "results.json").read_text())["failures"]
    root = ElementTree.parse(directory / "junit.xml").getroot()
    assert root.get("failures") == str(len(failures)) and root.get("tests") == str(len(failures) + 1)
    names = [case.get("name") for case in root.iter("testcase")]
    assert names[1:] == [f"crash state {failure['id']}" for failure in failures]
    first = next(root.iter("failure"))
    assert first.get("type") == "PromiseBroken" and "repro: sim_runner --target" in (first.text or "")
    page = html.unescape((directory / "report.html").read_text())
    assert f"crash state {failures[0]['id']}" in page and "rewrite_in_place.py:19" in page


# ---------------------------------------------------------------- pytest: the fixture, hypothesis


def workload_overwriting(payload: bytes) -> Callable[[Path, Callable[[object], None]], None]:
    """Write zeros, make them durable, then overwrite them in place with `payload` (no fsync)."""

    def workload(root: Path, ack: Callable[[object], None]) -> None:
        path = root / "data.bin"
        with open(path, "wb") as file:
            file.write(bytes(len(payload)))
            file.flush()
            os.fsync(file.fileno())
        directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(directory)
        os.close(directory)
        ack("zeros")
        with open(path, "r+b") as file:
            file.write(payload)
        ack("payload")

    return workload


def check_old_or_new(payload: bytes) -> Callable[[Path, list[object], object], None]:
    def check(root: Path, acked: list[object], pending: object) -> None:
        if not acked:
            return
        data = (root / "data.bin").read_bytes()
        assert data in (bytes(len(payload)), payload), f"a mix of old and new: {len(data)} bytes"

    return check


def test_a_write_tears_only_past_one_sector(crash_check: CrashCheck) -> None:
    """A write within one 512 B sector is atomic here; one byte more and it may tear (the
    sector it did not reach keeps its old bytes: an overwrite never leaves garbage)."""
    for size_bytes, passes in ((512, True), (513, False)):
        payload = b"\xff" * size_bytes
        exploration = crash_check.explore(workload_overwriting(payload), check_old_or_new(payload))
        assert exploration.passed is passes, size_bytes
    [torn, *_others] = exploration.failures
    assert torn.state.tear is not None and torn.state.tear.sector_bytes == 512


def test_hypothesis_shrinks_the_drawn_values_of_a_broken_workload(crash_check: CrashCheck) -> None:
    """Rewriting a file in place without fsync loses a promise whatever is written (the
    file's creation may be lost after the first `ack`): hypothesis shrinks the drawn
    balances to one, the simplest (`balances()` shrinks toward `["0"]`)."""
    failing: list[list[str]] = []

    @crash_settings(max_examples=5, database=None, derandomize=True)
    @given(values=balances(3))
    def rewrite_in_place(values: list[str]) -> None:
        def workload(root: Path, ack: Callable[[object], None]) -> None:
            for value in values:
                (root / "balance.txt").write_text(value)
                ack(value)

        def check(root: Path, acked: list[object], pending: object) -> None:
            if acked:
                assert (root / "balance.txt").read_text() in (acked[-1], pending)

        try:
            crash_check(workload, check)
        except AssertionError:
            failing.append(values)
            raise

    with pytest.raises(AssertionError, match="FAIL crash state"):
        rewrite_in_place()
    # Hypothesis replays the minimal example last. On a loaded machine its shrinker may
    # stop one step early (seen once: ["0", "1"]), so allow that step, no more.
    assert failing[-1][0] == "0" and len(failing[-1]) <= 2, failing[-1]


def test_the_fixture_passes_atomic_code_and_reports_a_broken_promise(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=f"""
        import importlib.util, pytest
        from hypothesis import given
        from scenarios.crash_strategies import balances, crash_settings

        def load(name):
            spec = importlib.util.spec_from_file_location(name, {str(TARGETS)!r} + "/" + name + ".py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module

        def test_atomic(crash_check):
            target = load("atomic_replace")
            exploration = crash_check(target.workload, target.check)
            assert exploration.unique > 0

        def test_rewrite(crash_check):
            target = load("rewrite_in_place")
            crash_check(target.workload, target.check)

        @crash_settings(max_examples=2)
        @given(values=balances(3))
        def test_drawn(crash_check, values):
            target = load("atomic_replace")
            def workload(root, ack):
                for value in values:
                    target.replace_atomically(root / "balance.txt", value)
                    ack(value)
            crash_check(workload, target.check)
        """
    )
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:fakefs", "--sim-seed", "5")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: FAIL crash state p*",
            "*rewrite_in_place.py:19*",
            "*repro: CrashCheck(seed=*).state(workload, check, 'p*')*",
            "reproduce: pytest test_user.py::test_rewrite --sim-seed 5 --sim-scenario perfect",
        ]
    )


def test_a_failing_state_replays_from_a_test(crash_check: CrashCheck) -> None:
    payload = b"\xff" * 600
    exploration = crash_check.explore(workload_overwriting(payload), check_old_or_new(payload))
    [first, *_others] = exploration.failures
    with pytest.raises(AssertionError, match=first.state.id):
        crash_check.state(workload_overwriting(payload), check_old_or_new(payload), first.state.id)
    assert crash_check.state(workload_overwriting(payload), check_old_or_new(payload), "p1").passed
