"""Failures that explain themselves, on the console and in report.html: the FAIL line's
`shrink:` command, the piped progress line every few seconds, a closed pipe that ends
quietly with the run's real exit code, and a page that opens with the violations, links
each failed seed from the scenario table and highlights the steps before a violation."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.campaign import Campaign, CampaignResult, SeedOutcome
from scenarios.reports import LEAD_UP_LINES, PlainConsole, html_report
from scenarios.runner import SeedResult

ROOT = Path(__file__).resolve().parent.parent
BROKEN = (
    "import runpy, sys, kv.store; original = kv.store.Store._commit; "
    "kv.store.Store._commit = lambda self, sync: original(self, sync=False); "
    "sys.argv = ['sim_runner', *sys.argv[1:]]; "
    f"runpy.run_path({str(ROOT / 'sim_runner.py')!r}, run_name='__main__')"
)


def _command(*arguments: str, broken: bool = False) -> list[str]:
    if broken:
        return [sys.executable, "-c", BROKEN, *arguments]
    return [sys.executable, str(ROOT / "sim_runner.py"), *arguments]


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _outcome(scenario: str, seed: int, violation: str = "", timeline: list[str] | None = None) -> SeedOutcome:
    result = SeedResult(
        scenario,
        seed,
        100,
        passed=not violation,
        violation=violation,
        trace_hash=f"{seed:016x}",
        timeline=timeline or [],
    )
    return SeedOutcome(scenario, seed, 100, 0.5, result)


def test_the_fail_line_prints_the_shrink_command() -> None:
    campaign = Campaign(("crash",), range(0, 3), operations=100, swarm=True)
    out = io.StringIO()
    console = PlainConsole(campaign, out, io.StringIO())
    console.seed_finished(_outcome("crash", 1, violation="missing [b'k0']"))
    lines = out.getvalue().splitlines()
    assert lines == [
        "FAIL crash seed=1: missing [b'k0']",
        "  repro: sim_runner --scenario crash --seed 1 --ops 100 --swarm",
        "  shrink: sim_runner --scenario crash --seed 1 --ops 100 --swarm --shrink",
    ]


def test_the_printed_shrink_command_runs_as_printed(tmp_path: Path) -> None:
    arguments = ("--scenario", "crash", "--seeds", "0-5", "--ops", "200", "--report-dir", str(tmp_path))
    completed = subprocess.run(
        _command(*arguments, broken=True), capture_output=True, text=True, cwd=ROOT, env=_environment(), timeout=300
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    shrink = next(line for line in completed.stdout.splitlines() if line.startswith("  shrink: "))
    words = shrink.removeprefix("  shrink: sim_runner ").split()
    assert words[-1] == "--shrink"
    shrunk = subprocess.run(
        _command(*words, "--time-budget", "20", "--report-dir", str(tmp_path), broken=True),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_environment(),
        timeout=300,
    )
    assert shrunk.returncode == 1, shrunk.stdout + shrunk.stderr
    assert "shrunk from" in shrunk.stdout and "replay file:" in shrunk.stdout


def test_piped_output_prints_a_progress_line_every_few_seconds_not_per_seed() -> None:
    campaign = Campaign(("crash",), range(0, 20), operations=100)
    seconds = iter(float(tick) for tick in range(0, 1000, 2))  # each seed takes two seconds
    out = io.StringIO()
    console = PlainConsole(campaign, out, io.StringIO(), clock=lambda: next(seconds), progress_interval_seconds=5)
    console.begin()
    for seed in range(20):
        console.seed_finished(_outcome("crash", seed, violation="boom" if seed == 4 else ""))
    progress = [line for line in out.getvalue().splitlines() if line.startswith("progress:")]
    assert 3 <= len(progress) <= 10  # 40 s of seeds, one line per 5 s or so, none for the last seed
    assert progress[0] == "progress: 3/20 runs, 0 failed, 6s elapsed"
    assert progress[-1].startswith("progress: 18/20 runs, 1 failed")
    done = [int(re.findall(r"(\d+)/20", line)[0]) for line in progress]
    assert done == sorted(done) and len(set(done)) == len(done)


@pytest.mark.parametrize(("broken", "exit_code"), [(False, 0), (True, 1)])
def test_a_closed_pipe_ends_quietly_with_the_real_exit_code(broken: bool, exit_code: int, tmp_path: Path) -> None:
    arguments = ("--scenario", "crash", "--seeds", "0-7", "--ops", "300", "--report-dir", str(tmp_path))
    with subprocess.Popen(
        _command(*arguments, broken=broken),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_environment(),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        process.stdout.close()  # as `| head -1` does
        stderr = process.stderr.read()
        assert process.wait(timeout=300) == exit_code
    assert first.startswith("sim_runner: scenarios=crash")
    assert stderr == ""
    assert (tmp_path / "results.json").exists()  # the run went on to its end


def _failed_result() -> CampaignResult:
    timeline = [f"t={step}us step {step} set k{step}" for step in range(50)]
    timeline += ["t=50us VIOLATION missing [b'k3']", "t=51us end"]
    campaign = Campaign(("crash", "corruption"), range(0, 3), operations=100)
    outcomes = [
        _outcome("crash", 0),
        _outcome("crash", 1, violation="missing [b'k3']", timeline=timeline),
        _outcome("crash", 2),
        _outcome("corruption", 0),
        _outcome("corruption", 1),
        _outcome("corruption", 2, violation="wrong value for b'k9'"),
    ]
    return CampaignResult(campaign, outcomes, 1.0, 0.0)


def test_the_report_opens_with_the_violations_linked_to_their_seeds() -> None:
    page = html_report(_failed_result())
    violations = page.index("Violations (2)")
    assert violations < page.index("<h2>Scenarios</h2>") < page.index("<h2>Failed seeds</h2>")
    assert violations < page.index("Started ")
    for anchor in ("crash-1", "corruption-2"):
        assert page.count(f"href='#{anchor}'") == 3  # from the violations, the scenario table, the seed table
        assert f"id='{anchor}'" in page
    assert "href='#crash-0'" not in page and "id='crash-0'" not in page
    assert "sim_runner --scenario crash --seed 1 --ops 100 --shrink" in page


def test_the_steps_before_the_violation_are_highlighted() -> None:
    page = html_report(_failed_result())
    lead = re.findall(r"<span class='lead'>([^<]*)</span>", page)
    assert lead == [f"t={step}us step {step} set k{step}" for step in range(50 - LEAD_UP_LINES, 50)]
    assert re.findall(r"<span class='violation'>([^<]*)</span>", page) == ["t=50us VIOLATION missing [b&#x27;k3&#x27;]"]
    assert "t=51us end" in page and "<span class='lead'>t=51us" not in page
