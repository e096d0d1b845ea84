"""What a campaign shows and leaves behind: the console (rich on a terminal, plain lines
in a pipe) and the artifacts `results.json`, `junit.xml` and `report.html`.

The formats are documented in `reports/README.md`. The plain lines are stable (scripts
and tests parse them): the first line is `Campaign.describe()`, then one `FAIL` line, one
`repro:` line and one `shrink:` line per failing seed, a `progress:` line every
`PROGRESS_INTERVAL_SECONDS` (runs done of planned, failures, elapsed), one line per
scenario (`crash        20/20 seeds passed ...`, ending in `trace HASH` when the scenario
ran one seed), and last `passed in 2.5s` or `FAILED in 2.5s`.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import kv.marks
from scenarios.campaign import (
    Campaign,
    CampaignResult,
    ScenarioSummary,
    SeedOutcome,
    defining_faults_fired,
    exercised_nothing,
)
from scenarios.registry import SCENARIOS

RESULTS_FORMAT = "sim_runner.results/1"
RESULTS_FILE = "results.json"
JUNIT_FILE = "junit.xml"
HTML_FILE = "report.html"
# Characters XML 1.0 cannot hold (control characters in a traceback would make the file unreadable).
XML_INVALID_CHARACTERS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Piped output says how far the run is this often: enough to see it move in a CI log,
# few enough lines that a long campaign's log stays readable.
PROGRESS_INTERVAL_SECONDS = 5.0
# Timeline lines highlighted before a violation in report.html: the steps that led to it.
LEAD_UP_LINES = 20
# Failed seeds linked from one row of the scenario table; the rest are counted.
FAILED_SEED_LINKS_MAX = 30
# Warnings printed about seeds that exercised nothing: past this the rest are counted
# (a scenario whose defining fault never fires warns for every seed of a long campaign).
WARNINGS_SHOWN_MAX = 50
# Rows of report.html's per-seed table: past this the page would be megabytes.
SEED_ROWS_MAX = 2000


# ---------------------------------------------------------------- the console


def failure_lines(campaign: Campaign, outcome: SeedOutcome) -> list[str]:
    """What a failing or erroring seed prints: what went wrong, then its one-line repro."""
    repro = f"  repro: {campaign.outcome_repro(outcome)}"
    if outcome.result is None:
        return [f"ERROR {outcome.scenario} seed={outcome.seed}: the harness failed", repro]
    shrink = f"  shrink: {campaign.outcome_repro(outcome)} --shrink"
    return [f"FAIL {outcome.scenario} seed={outcome.seed}: {outcome.result.violation}", repro, shrink]


def rerun_lines(repro: str, outcome: SeedOutcome) -> list[str]:
    """What `--replay-failures` prints for one logged run it reran."""
    where = f"{outcome.scenario} seed={outcome.seed} ops={outcome.operations}"
    if outcome.result is None:
        return [f"ERROR {where}: the harness failed", outcome.harness_traceback.rstrip("\n"), f"  repro: {repro}"]
    if outcome.result.passed:
        return [f"passes now: {where} ({outcome.elapsed_seconds:.1f}s)"]
    return [f"still fails: {where}: {outcome.result.violation}", f"  repro: {repro}"]


def summary_line(summary: ScenarioSummary, trace_hash: str) -> str:
    line = (
        f"{summary.name:<12} {summary.passed}/{summary.seeds_run} seeds passed  crashes {summary.crashes}  "
        f"recoveries {summary.recoveries}  losses reported {summary.losses_reported}  "
        f"faults fired {summary.faults_fired}"
    )
    return line + (f"  trace {trace_hash}" if trace_hash else "")


def single_trace_hashes(result: CampaignResult) -> dict[str, str]:
    """The trace hash of each scenario that ran exactly one seed (printed to compare runs)."""
    runs: dict[str, list[SeedOutcome]] = {}
    for outcome in result.outcomes:
        runs.setdefault(outcome.scenario, []).append(outcome)
    return {
        name: outcomes[0].result.trace_hash
        for name, outcomes in runs.items()
        if len(outcomes) == 1 and outcomes[0].result is not None
    }


def counts_text(counts: dict[str, int]) -> str:
    """`bit_flip.on_write 3, read_corruption 12`: the nonzero counts, by name."""
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items()) if count)


def detail_lines(summary: ScenarioSummary, prefix: str = "  ") -> list[str]:
    """Under a scenario's line: the faults that fired, by name, and where crashes landed."""
    lines = []
    if counts_text(summary.faults_fired_by_name):
        lines.append(f"{prefix}faults fired: {counts_text(summary.faults_fired_by_name)}")
    if counts_text(summary.crashes_by_method):
        lines.append(f"{prefix}crashes in: {counts_text(summary.crashes_by_method)}")
    return lines


def warning_lines(result: CampaignResult) -> list[str]:
    """One warning per seed that fired none of its scenario's defining faults (at most
    `WARNINGS_SHOWN_MAX`, then how many more: results.json has every seed's counts)."""
    seeds = result.exercising_nothing()
    lines = [
        f"warning: seed {outcome.seed} of {outcome.scenario} exercised none of its defining faults: "
        f"{', '.join(SCENARIOS[outcome.scenario].defining_faults)}"
        for outcome in seeds[:WARNINGS_SHOWN_MAX]
    ]
    if len(seeds) > WARNINGS_SHOWN_MAX:
        lines.append(f"warning: and {len(seeds) - WARNINGS_SHOWN_MAX} more seeds exercised none (see results.json)")
    return lines


def marks_not_reached(result: CampaignResult) -> list[str]:
    """The coverage marks of `kv.marks.MARKS` that no seed of the run reached, in its order."""
    reached = result.marks()
    return [name for name in kv.marks.MARKS if not reached.get(name)]


def marks_lines(result: CampaignResult) -> list[str]:
    missing = marks_not_reached(result)
    if missing:
        return [f"marks not reached: {', '.join(missing)}"]
    return [f"marks: all {len(kv.marks.MARKS)} reached"] if kv.marks.MARKS else []


def closing_lines(result: CampaignResult, artifacts: list[Path]) -> list[str]:
    """After the summary: how many runs the budget allowed, where the artifacts are, the verdict."""
    campaign = result.campaign
    lines = []
    if result.stopped_by or campaign.time_budget_seconds is not None:
        reason = f"stopped by the {result.stopped_by}: " if result.stopped_by else ""
        lines.append(f"{reason}ran {len(result.outcomes)} of {result.runs_planned} runs")
    if artifacts:
        lines.append(f"artifacts: {' '.join(str(path) for path in artifacts)}")
    verdict = {0: "passed", 1: "FAILED", 3: "HARNESS FAILED"}[result.exit_code]
    lines.append(f"{verdict} in {result.elapsed_seconds:.1f}s")
    return lines


def emit(line: str, out: IO[str]) -> bool:
    """Print `line` to `out` now; False once the reader went away (`sim_runner ... | head`),
    after which `out` writes to /dev/null, so the run goes on to its real exit code and
    the interpreter's last flush finds nothing to complain about."""
    try:
        print(line, file=out, flush=True)
    except BrokenPipeError:
        silence_closed_pipe(out)
        return False
    return True


def silence_closed_pipe(stream: IO[str]) -> None:
    """Point `stream`'s descriptor at /dev/null (its buffered bytes then flush there)."""
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (a StringIO in a test): nothing to redirect
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, descriptor)
    finally:
        os.close(null)


def progress_line(done: int, planned: int, failed: int, elapsed_seconds: float) -> str:
    return f"progress: {done}/{planned} runs, {failed} failed, {elapsed_seconds:.0f}s elapsed"


class PlainConsole:
    """Lines for a pipe or a log file, with a progress line every few seconds."""

    def __init__(
        self,
        campaign: Campaign,
        out: IO[str],
        err: IO[str],
        clock: Callable[[], float] = time.monotonic,
        progress_interval_seconds: float = PROGRESS_INTERVAL_SECONDS,
    ) -> None:
        self.campaign = campaign
        self.out = out
        self.err = err
        self.clock = clock
        self.progress_interval_seconds = progress_interval_seconds
        self.started = self.last_progress = clock()
        self.done = 0
        self.failed = 0

    def print(self, line: str) -> None:
        emit(line, self.out)

    def error(self, text: str) -> None:
        """A harness traceback: on stderr."""
        print(text, file=self.err, flush=True)

    def begin(self) -> None:
        self.started = self.last_progress = self.clock()
        self.print(self.campaign.describe())

    def seed_finished(self, outcome: SeedOutcome) -> None:
        self.done += 1
        self.failed += outcome.verdict != "passed"
        self.report_seed(outcome)
        now = self.clock()
        if now - self.last_progress >= self.progress_interval_seconds and self.done < self.campaign.runs_planned:
            self.last_progress = now
            self.print(progress_line(self.done, self.campaign.runs_planned, self.failed, now - self.started))

    def report_seed(self, outcome: SeedOutcome) -> None:
        """The lines one finished seed prints: its timeline under --trace, and what failed."""
        if self.campaign.trace and outcome.result is not None:
            self.print(f"-- timeline of {outcome.scenario} seed {outcome.seed}")
            for line in outcome.result.timeline:
                self.print(line)
        if outcome.result is None:
            self.error(outcome.harness_traceback.rstrip("\n"))
        if outcome.verdict != "passed":
            for line in failure_lines(self.campaign, outcome):
                self.print(line)

    def finish(self, result: CampaignResult, artifacts: list[Path]) -> None:
        hashes = single_trace_hashes(result)
        for summary in result.summaries():
            self.print(summary_line(summary, hashes.get(summary.name, "")))
            for line in detail_lines(summary):
                self.print(line)
        for line in [*warning_lines(result), *marks_lines(result), *closing_lines(result, artifacts)]:
            self.print(line)

    def close(self) -> None:
        """Nothing to tear down; `RichConsole` stops its progress bar here."""


class RichConsole(PlainConsole):
    """A progress bar and a summary table, for a terminal (colours off under NO_COLOR, by rich)."""

    def __init__(self, campaign: Campaign, console: Console, err: IO[str]) -> None:
        super().__init__(campaign, console.file, err)
        self.console = console
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("seeds", total=campaign.runs_planned, failed=0)

    def print(self, line: str) -> None:
        self.console.print(line, soft_wrap=True, highlight=False, markup=False)

    def error(self, text: str) -> None:
        """Through the console, above the progress bar (a write to stderr would tear it)."""
        self.console.print(text, soft_wrap=True, highlight=False, markup=False, style="red")

    def begin(self) -> None:
        super().begin()
        self.progress.start()

    def seed_finished(self, outcome: SeedOutcome) -> None:
        """The bar moves instead of a progress line."""
        self.done += 1
        self.failed += outcome.verdict != "passed"
        self.report_seed(outcome)
        self.progress.update(self.task, advance=1, failed=self.failed)

    def finish(self, result: CampaignResult, artifacts: list[Path]) -> None:
        self.close()
        self.console.print(summary_table(result))
        for name, trace_hash in single_trace_hashes(result).items():
            self.print(f"{name} trace {trace_hash}")
        for summary in result.summaries():
            for line in detail_lines(summary, prefix=f"{summary.name}: "):
                self.print(line)
        for line in warning_lines(result):
            self.console.print(line, soft_wrap=True, highlight=False, markup=False, style="yellow")
        for line in marks_lines(result):
            self.print(line)
        for line in closing_lines(result, artifacts):
            style = "green" if result.exit_code == 0 else "bold red"
            self.console.print(line, soft_wrap=True, highlight=False, markup=False, style=style)

    def close(self) -> None:
        self.progress.stop()


def summary_table(result: CampaignResult) -> Table:
    """One row per scenario (the `errors` column only when the harness failed); fits 80 columns."""
    summaries = result.summaries()
    with_errors = any(summary.errors for summary in summaries)
    table = Table(title="sim_runner", box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
    table.add_column("scenario", no_wrap=True)
    for column in ("seeds", "passed", "failed", *(["errors"] if with_errors else []), "crashes", "recoveries"):
        table.add_column(column, justify="right")
    table.add_column("losses\nreported", justify="right")
    table.add_column("faults\nfired", justify="right")
    for summary in summaries:
        counts = [summary.seeds_run, summary.passed, summary.failed, *([summary.errors] if with_errors else [])]
        counts += [summary.crashes, summary.recoveries, summary.losses_reported, summary.faults_fired]
        style = "red" if summary.failed or summary.errors else None
        table.add_row(summary.name, *(str(count) for count in counts), style=style)
    return table


def make_console(campaign: Campaign, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> PlainConsole:
    """Rich on a terminal, plain lines otherwise (rich reads NO_COLOR and TERM itself)."""
    console = Console(file=out, highlight=False)
    if console.is_terminal:
        return RichConsole(campaign, console, err)
    return PlainConsole(campaign, out, err)


# ---------------------------------------------------------------- results.json


def seed_document(campaign: Campaign, outcome: SeedOutcome) -> dict[str, Any]:
    result = outcome.result
    document: dict[str, Any] = {
        "scenario": outcome.scenario,
        "seed": outcome.seed,
        "verdict": outcome.verdict,
        "operations": outcome.operations,
        "durability": result.durability if result else None,
        "trace_hash": result.trace_hash if result else None,
        "violation": result.violation if result else None,
        "crashes": result.crashes if result else None,
        "recoveries": result.recoveries if result else None,
        "errors_typed": result.errors_typed if result else None,
        "losses_reported": result.losses_reported if result else None,
        "silent_tail_losses": result.silent_tail_losses if result else None,
        "marker_entry_losses": result.marker_entry_losses if result else None,
        "faults": {
            name: {"fired": fired, "opportunities": opportunities, "configured_probability": probability}
            for name, (fired, opportunities, probability) in (result.faults if result else {}).items()
        },
        "defining_faults": defining_faults_fired(result) if result else None,
        "crashes_by_method": dict(result.crashes_by_method) if result else None,
        "marks": dict(result.marks) if result else None,
        "elapsed_seconds": round(outcome.elapsed_seconds, 6),
        "repro": campaign.outcome_repro(outcome),
    }
    if result is None:
        document["harness_traceback"] = outcome.harness_traceback
    elif not result.passed and result.timeline:
        document["timeline"] = list(result.timeline)
    return document


def results_document(result: CampaignResult) -> dict[str, Any]:
    campaign = result.campaign
    return {
        "format": RESULTS_FORMAT,
        "started_at": started_at_text(result),
        "elapsed_seconds": round(result.elapsed_seconds, 3),
        "repro": campaign.repro(),
        "campaign": {
            "scenarios": list(campaign.scenario_names),
            "seed_first": campaign.seeds.start,
            "seed_last": campaign.seeds.stop - 1,
            "operations": campaign.operations,
            "jobs": campaign.jobs,
            "shard": str(campaign.shard) if campaign.shard else None,
            "swarm": campaign.swarm,
            "time_budget_seconds": campaign.time_budget_seconds,
            "cluster": campaign.cluster,
        },
        "merged_from": list(result.merged_from) or None,
        "runs_planned": result.runs_planned,
        "runs_run": len(result.outcomes),
        "stopped_by": result.stopped_by or None,
        "exit_code": result.exit_code,
        "scenarios": [scenario_document(summary) for summary in result.summaries()],
        "marks": {**{name: 0 for name in kv.marks.MARKS}, **result.marks()},
        "marks_not_reached": marks_not_reached(result),
        "seeds_exercising_nothing": [
            {"scenario": outcome.scenario, "seed": outcome.seed} for outcome in result.exercising_nothing()
        ],
        "seeds": [seed_document(campaign, outcome) for outcome in result.outcomes],
    }


def scenario_document(summary: ScenarioSummary) -> dict[str, Any]:
    """One scenario's totals, as the console summary and the HTML table show them."""
    return {
        "name": summary.name,
        "seeds_run": summary.seeds_run,
        "passed": summary.passed,
        "failed": summary.failed,
        "errors": summary.errors,
        "crashes": summary.crashes,
        "crashes_by_method": dict(sorted(summary.crashes_by_method.items())),
        "recoveries": summary.recoveries,
        "losses_reported": summary.losses_reported,
        "silent_tail_losses": summary.silent_tail_losses,
        "marker_entry_losses": summary.marker_entry_losses,
        "faults_fired": summary.faults_fired,
        "faults_fired_by_name": dict(sorted(summary.faults_fired_by_name.items())),
        "marks": dict(sorted(summary.marks.items())),
        "seeds_exercising_nothing": summary.seeds_exercising_nothing,
    }


def started_at_text(result: CampaignResult) -> str:
    return utc_text(result.started_at_unix_seconds)


def utc_text(unix_seconds: float) -> str:
    """ISO 8601 in UTC, to the second: `2025-01-31T12:00:00+00:00`."""
    return datetime.datetime.fromtimestamp(unix_seconds, tz=datetime.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- junit.xml


def xml_text(text: str) -> str:
    return XML_INVALID_CHARACTERS.sub("\ufffd", text)


def junit_tree(result: CampaignResult) -> ElementTree.ElementTree:
    """One testsuite per scenario, one testcase per seed (classname = scenario)."""
    campaign = result.campaign
    root = ElementTree.Element("testsuites", name="sim_runner")
    timestamp = started_at_text(result).removesuffix("+00:00")
    summaries = result.summaries()
    for summary in summaries:
        outcomes = [outcome for outcome in result.outcomes if outcome.scenario == summary.name]
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=summary.name,
            tests=str(summary.seeds_run),
            failures=str(summary.failed),
            errors=str(summary.errors),
            skipped="0",
            time=f"{sum(outcome.elapsed_seconds for outcome in outcomes):.3f}",
            timestamp=timestamp,
        )
        properties = ElementTree.SubElement(suite, "properties")
        ElementTree.SubElement(properties, "property", name="repro", value=campaign.repro())
        for outcome in outcomes:
            add_testcase(suite, campaign, outcome)
    root.set("tests", str(len(result.outcomes)))
    root.set("failures", str(len(result.of("failed"))))
    root.set("errors", str(len(result.of("error"))))
    root.set("time", f"{result.elapsed_seconds:.3f}")
    ElementTree.indent(root)
    return ElementTree.ElementTree(root)


def add_testcase(suite: ElementTree.Element, campaign: Campaign, outcome: SeedOutcome) -> None:
    case = ElementTree.SubElement(
        suite,
        "testcase",
        classname=outcome.scenario,
        name=f"seed {outcome.seed}",
        time=f"{outcome.elapsed_seconds:.3f}",
    )
    repro = f"repro: {campaign.outcome_repro(outcome)}"
    if outcome.result is None:
        error = ElementTree.SubElement(case, "error", message=f"the harness failed; {repro}", type="HarnessFailure")
        error.text = xml_text(f"{outcome.harness_traceback}\n{repro}\n")
    elif not outcome.result.passed:
        violation = xml_text(outcome.result.violation)
        failure = ElementTree.SubElement(case, "failure", message=f"{violation}; {repro}", type="InvariantViolated")
        failure.text = f"{violation}\n{repro}\ntrace {outcome.result.trace_hash}\n"


# ---------------------------------------------------------------- report.html

HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; }
tr.bad td { background: #fde8e8; }
code, pre { font-family: ui-monospace, monospace; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; max-height: 40em; }
.passed { color: #17702a; } .failed { color: #b00020; }
.violations { border-left: 4px solid #b00020; background: #fdf2f2; padding: 0.5em 1em; }
.lead { background: #fff3c4; }
.violation { background: #f8c9c9; font-weight: bold; }
"""


def seed_anchor(outcome: SeedOutcome) -> str:
    """The id of a failed seed's section: `crash-4`."""
    return f"{outcome.scenario}-{outcome.seed}"


def html_report(result: CampaignResult) -> str:
    """One self-contained page: no scripts, no external stylesheets or fonts. It opens
    with the violations (each linking to its seed's timeline), then the run, the
    scenario table (linking to each failed seed), the failed seeds."""
    campaign = result.campaign
    verdict = "passed" if result.exit_code == 0 else "failed"
    body = [
        f"<h1>sim_runner: <span class='{verdict}'>{verdict}</span></h1>",
        *html_violations(result),
        f"<p>Started {escape(started_at_text(result))}, {result.elapsed_seconds:.1f}s, "
        f"{len(result.outcomes)} of {result.runs_planned} runs"
        f"{escape(f' (stopped by the {result.stopped_by})') if result.stopped_by else ''}.</p>",
        f"<p><code>{escape(campaign.describe())}</code></p>",
        html_summary_table(result),
        *html_coverage(result),
        *html_failures(result),
        html_seed_table(result),
    ]
    return html_page(f"sim_runner: {verdict}", body)


def html_page(title: str, body: list[str]) -> str:
    """A self-contained page around `body` (HTML fragments, one per line); `title` is text."""
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{escape(title)}</title>\n<style>{HTML_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def failing(result: CampaignResult) -> list[SeedOutcome]:
    return [outcome for outcome in result.outcomes if outcome.verdict != "passed"]


def html_violations(result: CampaignResult) -> list[str]:
    """What went wrong, first: one item per failed seed, linked to its section."""
    failed = failing(result)
    if not failed:
        return []
    items = []
    for outcome in failed:
        what = outcome.result.violation if outcome.result is not None else "the harness failed"
        link = f"<a href='#{escape(seed_anchor(outcome))}'>{escape(outcome.scenario)} seed {outcome.seed}</a>"
        items.append(f"<li>{link}: {escape(what)}</li>")
    heading = f"<h2>Violations ({len(failed)})</h2>"
    return [f"<div class='violations'>{heading}\n<ul>\n" + "\n".join(items) + "\n</ul>\n</div>"]


def html_failed_links(outcomes: list[SeedOutcome]) -> str:
    """Links to the failed seeds of one scenario (the first `FAILED_SEED_LINKS_MAX`)."""
    failed = [outcome for outcome in outcomes if outcome.verdict != "passed"]
    links = [f"<a href='#{escape(seed_anchor(outcome))}'>{outcome.seed}</a>" for outcome in failed]
    more = len(links) - FAILED_SEED_LINKS_MAX
    return " ".join(links[:FAILED_SEED_LINKS_MAX]) + (f" and {more} more" if more > 0 else "")


def html_summary_table(result: CampaignResult) -> str:
    header = (
        "scenario",
        "seeds run",
        "passed",
        "failed",
        "errors",
        "crashes",
        "recoveries",
        "losses reported",
        "silent tail losses",
        "faults fired",
        "crashes in",
        "failed seeds",
    )
    rows = ["<tr>" + "".join(f"<th>{name}</th>" for name in header) + "</tr>"]
    for summary in result.summaries():
        cells = (
            summary.name,
            summary.seeds_run,
            summary.passed,
            summary.failed,
            summary.errors,
            summary.crashes,
            summary.recoveries,
            summary.losses_reported,
            summary.silent_tail_losses,
            summary.faults_fired,
        )
        links = html_failed_links([outcome for outcome in result.outcomes if outcome.scenario == summary.name])
        row_class = " class='bad'" if summary.failed or summary.errors else ""
        cells_html = "".join(f"<td>{escape(str(cell))}</td>" for cell in cells)
        cells_html += f"<td class='text'>{escape(counts_text(summary.crashes_by_method))}</td>"
        cells_html += f"<td class='text'>{links}</td>"
        rows.append(f"<tr{row_class}>{cells_html}</tr>")
    return "<h2>Scenarios</h2>\n<table>\n" + "\n".join(rows) + "\n</table>"


def html_coverage(result: CampaignResult) -> list[str]:
    """The seeds that exercised none of their defining faults, and the marks no seed reached."""
    lines = [f"<p class='failed'>{escape(line)}</p>" for line in warning_lines(result)]
    lines += [f"<p>{escape(line)}</p>" for line in marks_lines(result)]
    return lines


def fired_text(outcome: SeedOutcome) -> str:
    """The faults one seed fired, by name with counts (`none`): the per-seed cell."""
    if outcome.result is None:
        return ""
    fired = {name: count for name, (count, _, _) in outcome.result.faults.items()}
    return counts_text(fired) or "none"


def html_seed_table(result: CampaignResult) -> str:
    """One row per seed (the first `SEED_ROWS_MAX`): verdict, mode, crashes, faults fired."""
    header = ("scenario", "seed", "verdict", "durability", "crashes", "crashes in", "faults fired", "defining faults")
    rows = ["<tr>" + "".join(f"<th>{name}</th>" for name in header) + "</tr>"]
    for outcome in result.outcomes[:SEED_ROWS_MAX]:
        seed_result = outcome.result
        defining = defining_faults_fired(seed_result) if seed_result is not None else {}
        texts = (
            seed_result.durability if seed_result else "",
            str(seed_result.crashes) if seed_result else "",
            counts_text(seed_result.crashes_by_method) if seed_result else "",
            fired_text(outcome),
            ", ".join(f"{name} {count}" for name, count in defining.items()),
        )
        seed = str(outcome.seed)
        if outcome.verdict != "passed":
            seed = f"<a href='#{escape(seed_anchor(outcome))}'>{seed}</a>"
        nothing = seed_result is not None and exercised_nothing(seed_result)
        row_class = " class='bad'" if outcome.verdict != "passed" or nothing else ""
        cells = f"<td>{escape(outcome.scenario)}</td><td>{seed}</td><td class='text'>{outcome.verdict}</td>"
        cells += "".join(f"<td class='text'>{escape(text)}</td>" for text in texts)
        rows.append(f"<tr{row_class}>{cells}</tr>")
    shown = min(len(result.outcomes), SEED_ROWS_MAX)
    more = f" (the first {shown}; results.json has all)" if len(result.outcomes) > shown else ""
    return (
        f"<h2>Seeds</h2>\n<details{' open' if shown <= 200 else ''}><summary>{len(result.outcomes)} seeds{more}"
        "</summary>\n<table>\n" + "\n".join(rows) + "\n</table>\n</details>"
    )


def html_failures(result: CampaignResult) -> list[str]:
    failed = failing(result)
    if not failed:
        return []
    return ["<h2>Failed seeds</h2>", *(html_failure(result.campaign, outcome) for outcome in failed)]


def html_failure(campaign: Campaign, outcome: SeedOutcome) -> str:
    repro = campaign.outcome_repro(outcome)
    heading = f"<h3 id='{escape(seed_anchor(outcome))}'>{escape(outcome.scenario)} seed {outcome.seed}</h3>"
    lines = [heading, f"<p>repro: <code>{escape(repro)}</code></p>"]
    if outcome.result is None:
        lines.append(f"<p>The harness failed:</p>\n<pre>{escape(outcome.harness_traceback)}</pre>")
        return "\n".join(lines)
    lines.append(f"<p>Violation: {escape(outcome.result.violation)} (trace {escape(outcome.result.trace_hash)})</p>")
    lines.append(f"<p>shrink it: <code>{escape(repro)} --shrink</code></p>")
    timeline = outcome.result.timeline
    if timeline:
        lines.append(html_timeline(timeline))
    else:
        lines.append("<p>Timeline not kept (only the first failures are replayed): run the repro with --trace.</p>")
    return "\n".join(lines)


def violation_index(timeline: list[str]) -> int | None:
    """The index of the timeline's `VIOLATION` line (the last one), or None."""
    for index in range(len(timeline) - 1, -1, -1):
        if " VIOLATION " in f" {timeline[index]} ":
            return index
    return None


def html_timeline(timeline: list[str]) -> str:
    """The timeline, escaped, with the `LEAD_UP_LINES` before the violation highlighted and
    the violation marked; the events before those are folded away, so the steps that led
    to the violation are what the reader sees first."""
    violation = violation_index(timeline)
    rendered = []
    for index, line in enumerate(timeline):
        text = escape(line)
        if violation is not None and index == violation:
            text = f"<span class='violation'>{text}</span>"
        elif violation is not None and violation - LEAD_UP_LINES <= index < violation:
            text = f"<span class='lead'>{text}</span>"
        rendered.append(text)
    if violation is None:
        whole = "\n".join(rendered)
        return f"<details open><summary>Timeline ({len(timeline)} events)</summary>\n<pre>{whole}</pre>\n</details>"
    folded = max(0, violation - LEAD_UP_LINES)
    parts = [
        f"<details open><summary>Timeline ({len(timeline)} events; highlighted: the "
        f"{violation - folded} before the violation)</summary>"
    ]
    if folded:
        earlier = "\n".join(rendered[:folded])
        parts.append(f"<details><summary>the first {folded} events</summary>\n<pre>{earlier}</pre>\n</details>")
    shown = "\n".join(rendered[folded:])
    parts.append(f"<pre>{shown}</pre>\n</details>")
    return "\n".join(parts)


# ---------------------------------------------------------------- writing them


def write_artifacts(result: CampaignResult, directory: Path) -> list[Path]:
    """Write the three artifacts into `directory` (created if missing); return their paths."""
    return write_files(directory, results_document(result), junit_tree(result), html_report(result))


def write_files(directory: Path, document: dict[str, Any], junit: ElementTree.ElementTree, page: str) -> list[Path]:
    """Write `results.json`, `junit.xml` and `report.html` into `directory` (created if
    missing); return their paths. Raises `OSError` when they cannot be written."""
    directory.mkdir(parents=True, exist_ok=True)
    results_path, junit_path, html_path = directory / RESULTS_FILE, directory / JUNIT_FILE, directory / HTML_FILE
    results_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    junit.write(junit_path, encoding="utf-8", xml_declaration=True)
    html_path.write_text(page, encoding="utf-8")
    return [results_path, junit_path, html_path]
