"""`sim_runner --merge DIR...`: shard reports merged give the unsharded run's report;
reports that disagree on a run are refused; a merged failure keeps its timeline."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import pytest

from scenarios.campaign import Campaign, Shard, UsageError, run_campaign
from scenarios.merge import merge
from scenarios.reports import write_artifacts

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("crash", "corruption")
SEEDS = range(0, 5)


def _sim_runner(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "sim_runner.py"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)


def _document(directory: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((directory / "results.json").read_text())
    return document


def _runs(directory: Path) -> list[tuple[Any, ...]]:
    keys = ("scenario", "seed", "verdict", "trace_hash", "operations", "crashes", "faults")
    return [tuple(json.dumps(entry[key]) for key in keys) for entry in _document(directory)["seeds"]]


@pytest.fixture(scope="module")
def shard_reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The unsharded run and its two shards, each written as a run writes them."""
    whole, first, second = (tmp_path_factory.mktemp(name) for name in ("whole", "shard1", "shard2"))
    write_artifacts(run_campaign(Campaign(NAMES, SEEDS, operations=150)), whole)
    for index, directory in ((1, first), (2, second)):
        write_artifacts(run_campaign(Campaign(NAMES, SEEDS, operations=150, shard=Shard(index, 2))), directory)
    return whole, first, second


def test_two_shards_merged_equal_the_unsharded_run(shard_reports: tuple[Path, Path, Path], tmp_path: Path) -> None:
    whole, first, second = shard_reports
    assert _runs(first) and _runs(second) and len(_runs(first)) + len(_runs(second)) == len(_runs(whole))
    completed = _sim_runner("--merge", str(first), str(second), "--report-dir", str(tmp_path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert _runs(tmp_path) == _runs(whole)
    merged, unsharded = _document(tmp_path), _document(whole)
    assert merged["runs_planned"] == unsharded["runs_planned"] == merged["runs_run"] == 10
    assert merged["campaign"]["scenarios"] == list(NAMES) and merged["campaign"]["shard"] is None
    assert merged["merged_from"] == [str(first), str(second)]
    assert merged["repro"] == unsharded["repro"]
    root = ElementTree.parse(tmp_path / "junit.xml").getroot()
    assert root.get("tests") == "10" and root.get("failures") == "0"
    assert "passed in" in completed.stdout.splitlines()[-1]


def test_one_shard_alone_says_how_many_runs_are_missing(shard_reports: tuple[Path, Path, Path]) -> None:
    _, first, _ = shard_reports
    result = merge([first])
    assert result.runs_planned == 5 and len(result.outcomes) == 5  # its own plan: one shard of ten runs


def test_the_same_run_twice_with_the_same_result_is_kept_once(shard_reports: tuple[Path, Path, Path]) -> None:
    whole, first, _ = shard_reports
    result = merge([whole, first])
    assert [(outcome.scenario, outcome.seed) for outcome in result.outcomes] == [
        (name, seed) for name in NAMES for seed in SEEDS
    ]


def test_reports_that_disagree_on_a_run_are_refused(shard_reports: tuple[Path, Path, Path], tmp_path: Path) -> None:
    whole, first, _ = shard_reports
    altered = tmp_path / "altered"
    shutil.copytree(first, altered)
    document = _document(altered)
    document["seeds"][0]["trace_hash"] = "0" * 16
    (altered / "results.json").write_text(json.dumps(document))
    completed = _sim_runner("--merge", str(whole), str(altered), "--report-dir", str(tmp_path / "out"))
    assert completed.returncode == 2
    assert "disagree on crash seed 0" in completed.stderr and not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("content", ["not json", '{"format": "something else"}', '{"format": "sim_runner.results/1"}'])
def test_a_directory_without_a_campaign_report_is_a_usage_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(UsageError, match="--merge"):
        merge([tmp_path])
    completed = _sim_runner("--merge", str(tmp_path / "missing"))
    assert completed.returncode == 2 and "cannot read" in completed.stderr


def test_merge_takes_no_campaign_options() -> None:
    completed = _sim_runner("--merge", "a", "b", "--scenario", "crash")
    assert completed.returncode == 2 and "--merge cannot be combined with --scenario" in completed.stderr


def test_a_merged_failure_keeps_its_verdict_and_timeline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import kv.store

    original = kv.store.Store._commit
    monkeypatch.setattr(kv.store.Store, "_commit", lambda self, sync: original(self, sync=False))
    for index in (1, 2):
        shard = run_campaign(Campaign(("crash",), range(0, 8), operations=200, shard=Shard(index, 2)))
        write_artifacts(shard, tmp_path / f"shard{index}")
    result = merge([tmp_path / "shard1", tmp_path / "shard2"])
    failed = result.of("failed")
    assert result.exit_code == 1 and failed
    assert all(outcome.result and outcome.result.timeline for outcome in failed)
    write_artifacts(result, tmp_path / "merged")
    page = html.unescape((tmp_path / "merged" / "report.html").read_text())
    first = failed[0].result
    assert first is not None and first.violation in page and first.timeline[-1] in page
