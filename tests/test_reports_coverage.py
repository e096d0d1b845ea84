"""Per-seed fault and coverage reporting: results.json carries each seed's faults,
defining faults, crashes per method and marks, and per scenario their totals; the
console names the faults that fired and where crashes landed, warns about seeds that
exercised none of their scenario's defining faults, and lists the marks no seed reached."""

from __future__ import annotations

import html
import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import kv.marks
import scenarios.campaign
from scenarios.campaign import Campaign, CampaignResult, run_campaign
from scenarios.registry import SCENARIOS, Scenario
from scenarios.reports import PlainConsole, html_report, write_artifacts
from scenarios.runner import SeedResult

ROOT = Path(__file__).resolve().parent.parent

FAKE = {  # seed -> what the fake runner reports for it
    0: SeedResult(
        "fake",
        0,
        100,
        crashes=4,
        trace_hash="0" * 16,
        faults={"torn_write": (2, 50, 0.04), "lost_write": (0, 50, 0.01)},
        crashes_by_method={"open": 1, "set": 3},
        marks={"torn_tail_cut": 2},
    ),
    1: SeedResult(
        "fake",
        1,
        100,
        crashes=2,
        trace_hash="1" * 16,
        faults={"torn_write": (1, 40, 0.04), "lost_write": (3, 40, 0.01)},
        crashes_by_method={"set": 1, "compact": 1},
        marks={"hint_ignored": 1},
    ),
}


@pytest.fixture
def fake_result(monkeypatch: pytest.MonkeyPatch) -> CampaignResult:
    def fake_run_seed(scenario: Scenario, seed: int, operations: int, keep_timeline: bool) -> SeedResult:
        return replace(FAKE[seed])

    monkeypatch.setattr(scenarios.campaign, "run_seed", fake_run_seed)
    monkeypatch.setitem(SCENARIOS, "fake", Scenario("fake", "declares no defining faults"))
    monkeypatch.setattr(kv.marks, "MARKS", {"torn_tail_cut": "a", "spanning_damage": "b", "hint_ignored": "c"})
    return run_campaign(Campaign(("fake",), range(0, 2), operations=100))


def _finish(result: CampaignResult) -> list[str]:
    out = io.StringIO()
    PlainConsole(result.campaign, out, io.StringIO()).finish(result, [])
    return out.getvalue().splitlines()


def test_results_json_has_per_seed_faults_crashes_by_method_and_marks(
    fake_result: CampaignResult, tmp_path: Path
) -> None:
    write_artifacts(fake_result, tmp_path)
    document: dict[str, Any] = json.loads((tmp_path / "results.json").read_text())
    first, second = document["seeds"]
    assert first["faults"]["torn_write"] == {"fired": 2, "opportunities": 50, "configured_probability": 0.04}
    assert first["crashes_by_method"] == {"open": 1, "set": 3} and second["marks"] == {"hint_ignored": 1}
    assert first["defining_faults"] == {}  # the scenario declares none
    [scenario] = document["scenarios"]
    assert scenario["crashes_by_method"] == {"compact": 1, "open": 1, "set": 4}
    assert scenario["faults_fired_by_name"] == {"lost_write": 3, "torn_write": 3}
    assert document["marks"] == {"torn_tail_cut": 2, "spanning_damage": 0, "hint_ignored": 1}
    assert document["marks_not_reached"] == ["spanning_damage"]


def test_the_summary_names_faults_crashes_per_method_and_unreached_marks(fake_result: CampaignResult) -> None:
    lines = _finish(fake_result)
    assert lines[0].startswith("fake         2/2 seeds passed  crashes 6")
    assert lines[1:4] == [
        "  faults fired: lost_write 3, torn_write 3",
        "  crashes in: compact 1, open 1, set 4",
        "marks not reached: spanning_damage",
    ]


def test_all_marks_reached_says_so(fake_result: CampaignResult, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kv.marks, "MARKS", {"torn_tail_cut": "a", "hint_ignored": "c"})
    assert "marks: all 2 reached" in _finish(fake_result)
    monkeypatch.setattr(kv.marks, "MARKS", {})
    assert not [line for line in _finish(fake_result) if line.startswith("marks")]


def test_the_report_shows_faults_per_seed_and_crashes_per_method(fake_result: CampaignResult) -> None:
    page = html.unescape(html_report(fake_result))
    assert "<td class='text'>lost_write 0</td>" not in page
    assert "<td class='text'>torn_write 2</td>" in page  # seed 0: what fired, nothing else
    assert "<td class='text'>lost_write 3, torn_write 1</td>" in page
    assert "<td class='text'>compact 1, open 1, set 4</td>" in page  # the scenario row
    assert "marks not reached: spanning_damage" in page


def test_a_seed_that_fires_none_of_its_defining_faults_is_warned_about(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built here: a scenario whose defining fault is switched off, and one whose fires."""
    blind = Scenario("blind", "test", operations=150, defining_faults=("bit_flip.on_write", "read_corruption"))
    fed = replace(
        SCENARIOS["comprehensive"], name="fed", operations=150, defining_faults=("short_read", "operation_errors.")
    )
    monkeypatch.setitem(SCENARIOS, "blind", blind)
    monkeypatch.setitem(SCENARIOS, "fed", fed)
    result = run_campaign(Campaign(("blind", "fed"), range(0, 3)))
    assert result.exit_code == 0
    lines = _finish(result)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert warnings == [
        f"warning: seed {seed} of blind exercised none of its defining faults: bit_flip.on_write, read_corruption"
        for seed in range(3)
    ]
    fed_seeds = [outcome.result for outcome in result.outcomes if outcome.scenario == "fed" and outcome.result]
    assert fed_seeds and all(sum(scenarios.campaign.defining_faults_fired(seed).values()) for seed in fed_seeds)
    assert lines[-1].startswith("passed in")
    assert "seed 1 of blind exercised none" in html.unescape(html_report(result))


def test_the_runners_own_defining_fault_counts_win() -> None:
    result = SeedResult("corruption", 1, 10, faults={"bit_flip.on_write": (5, 9, 0.5)}, defining_faults={"x": 0})
    assert scenarios.campaign.defining_faults_fired(result) == {"x": 0}


def test_a_one_seed_run_names_the_faults_that_fired(tmp_path: Path) -> None:
    command = [
        sys.executable,
        str(ROOT / "sim_runner.py"),
        "--scenario",
        "comprehensive",
        "--seed",
        "2",
        "--ops",
        "150",
    ]
    completed = subprocess.run([*command, "--report-dir", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    [seed] = json.loads((tmp_path / "results.json").read_text())["seeds"]
    fired = {name: count["fired"] for name, count in seed["faults"].items() if count["fired"]}
    assert len(fired) >= 3  # this seed fires several kinds of fault
    expected = "  faults fired: " + ", ".join(f"{name} {count}" for name, count in sorted(fired.items()))
    assert expected in completed.stdout.splitlines()
