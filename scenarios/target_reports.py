"""What `sim_runner --target` shows and leaves behind: the console (a rich progress bar on
a terminal's stderr, plain lines otherwise) and the artifacts `results.json`,
`junit.xml` and `report.html`, as for campaigns (`scenarios.reports`, whose helpers this
module shares).

The formats are documented in `reports/README.md` ("Target runs"). The plain lines are
stable (scripts and tests parse them): the first line is `TargetOptions.describe()`;
then `recorded N operations, K acknowledgements; ...`; with a broken promise the report of
the minimal failing state (`scenarios.target.failure_report`) and `and N other failing
states ...`; then `states: enumerated E, unique U, checked C, failed F in 1.2s (X
states/s)`, the artifacts, and last `passed in 1.2s`, `FAILED in 1.2s` or `HARNESS
FAILED in 1.2s`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from io_backends.sim.posix.ops import Ack, MicroOp, Recording, Write
from scenarios.crash_states import acknowledged, changes_in, describe, inode_names, op_status, responsible_sites
from scenarios.reports import escape, html_page, utc_text, write_files, xml_text
from scenarios.target import Exploration, StateResult, failure_report
from scenarios.target_run import StateReplay, TargetRunResult

RESULTS_FORMAT = "sim_runner.target_results/1"
# Failing states reported in full (operation list, traceback) in report.html and
# junit.xml; results.json lists every one, with the traceback of these first ones only.
# An exploration can fail thousands of states that differ in one dropped write: the
# first, most minimal ones say what is wrong, and the page stays readable.
FAILURES_DETAILED_MAX = 20
# Progress bar updates: one per this many states (an update per state would cost more
# than the check of a small state).
PROGRESS_STEP_STATES = 32

VERDICT_WORDS = {0: "passed", 1: "FAILED", 3: "HARNESS FAILED"}


# ---------------------------------------------------------------- the console


def verdict_line(exit_code: int, seconds: float) -> str:
    return f"{VERDICT_WORDS[exit_code]} in {seconds:.1f}s"


def recording_line(result: TargetRunResult) -> str:
    """`recorded 12 operations, 3 acknowledgements; the workload returned` (or what it raised)."""
    recorded = result.recorded
    acknowledgements = len(recorded.acked)
    error = recorded.workload_error
    outcome = "the workload returned" if error is None else f"the workload raised {type(error).__name__}: {error}"
    if error is not None and result.options.faults and not result.harness_failure:
        outcome += " (under inline faults: an error is how a workload reports one)"
    return f"recorded {len(recorded.recording.ops)} operations, {acknowledgements} acknowledgements; {outcome}"


def counts_line(result: TargetRunResult) -> str:
    exploration = result.exploration
    sample = (
        f" (a seeded sample of {exploration.possible:,} possible: --budget {exploration.settings.budget} "
        f"left {exploration.possible - exploration.enumerated:,} unchecked)"
        if exploration.sampled
        else ""
    )
    return (
        f"states: enumerated {exploration.enumerated}{sample}, unique {exploration.unique}, "
        f"checked {exploration.checked}, failed {exploration.failed} in {exploration.seconds:.1f}s "
        f"({result.states_per_second:,.0f} states/s)"
        + (f"; {exploration.unraisable} exceptions ignored in finalizers" if exploration.unraisable else "")
    )


def outcome_lines(result: TargetRunResult) -> tuple[list[str], list[str]]:
    """(the lines on stdout after the recording line, the tracebacks for stderr)."""
    exploration, lines, errors = result.exploration, [], []
    if result.harness_failure:
        lines.append(f"harness failure: {result.harness_failure}")
        if result.recorded.workload_error is not None:
            errors.append(result.recorded.workload_traceback.rstrip("\n"))
        if exploration.unmodelled:
            lines.append(failure_report(exploration, exploration.unmodelled[0]))
    broken = result.broken_promises
    if broken:
        lines.append(failure_report(exploration, broken[0]))
        if len(broken) > 1:
            lines.append(f"and {len(broken) - 1} other failing states (every one in results.json)")
    final = exploration.final
    if final is not None and final.passed:
        lines.append("final state (no crash, inline faults on): passed")
    lines.append(counts_line(result))
    return lines, errors


class PlainTargetConsole:
    """Lines for a pipe or a log file; no progress."""

    def __init__(self, out: IO[str], err: IO[str]) -> None:
        self.out = out
        self.err = err

    def print(self, line: str, style: str | None = None) -> None:
        print(line, file=self.out, flush=True)

    def error(self, text: str) -> None:
        """A traceback: on stderr."""
        print(text, file=self.err, flush=True)

    def begin(self, first_line: str) -> None:
        self.print(first_line)

    def progress(self, done: int, total: int) -> None:
        """Called after each enumerated state; the plain console shows nothing."""

    def finish(self, result: TargetRunResult, artifacts: list[Path]) -> None:
        self.close()
        self.print(recording_line(result))
        lines, errors = outcome_lines(result)
        for text in errors:
            self.error(text)
        for line in lines:
            self.print(line)
        if artifacts:
            self.print(f"artifacts: {' '.join(str(path) for path in artifacts)}")
        style = "green" if result.exit_code == 0 else "bold red"
        self.print(verdict_line(result.exit_code, result.elapsed_seconds), style)

    def replayed(self, replay: StateReplay) -> None:
        """`--crash-state`: the state's description, then its verdict."""
        self.print(replay_report(replay))
        if replay.result.verdict == "unmodelled":
            self.error(replay.result.traceback.rstrip("\n"))
        style = "green" if replay.exit_code == 0 else "bold red"
        self.print(VERDICT_WORDS[replay.exit_code], style)

    def close(self) -> None:
        """Nothing to tear down; `RichTargetConsole` stops its progress bar here."""


class RichTargetConsole(PlainTargetConsole):
    """A progress bar on stderr (a terminal); coloured verdicts when stdout is one too."""

    def __init__(self, out: Console, err: Console) -> None:
        super().__init__(out.file, err.file)
        self.console = out
        self.bar = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self.task = self.bar.add_task("crash states", total=None)

    def print(self, line: str, style: str | None = None) -> None:
        self.console.print(line, soft_wrap=True, highlight=False, markup=False, style=style)

    def begin(self, first_line: str) -> None:
        super().begin(first_line)
        self.bar.start()

    def progress(self, done: int, total: int) -> None:
        if done % PROGRESS_STEP_STATES == 0 or done == total:
            self.bar.update(self.task, completed=done, total=total)

    def close(self) -> None:
        self.bar.stop()


def make_target_console(out: IO[str] | None = None, err: IO[str] | None = None) -> PlainTargetConsole:
    """Rich progress when stderr is a terminal, plain lines otherwise (rich reads NO_COLOR
    and TERM itself). `out` and `err` default to the `sys.stdout` and `sys.stderr` of the
    moment (not of the import: tests and callers redirect them)."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    err_console = Console(file=err, highlight=False)
    if err_console.is_terminal:
        return RichTargetConsole(Console(file=out, highlight=False), err_console)
    return PlainTargetConsole(out, err)


def replay_report(replay: StateReplay) -> str:
    """A failing state's `failure_report`; for a passing one, its id, what was promised and
    its operations (`crash_states.describe`)."""
    exploration = replay.exploration
    result = replay.result
    if not result.passed:
        return failure_report(exploration, result)
    recording = exploration.recording
    acked, pending = acknowledged(recording, result.state)
    lines = [
        f"PASS crash state {result.state.id}: the check passed",
        f"  acknowledged before the crash: {acked!r}; in flight: {pending!r}",
        "  operations:",
        *(f"    {line}" for line in describe(recording, result.state)),
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- results.json


def json_value(value: object) -> object:
    """`value` itself when JSON can hold it, else its `repr` (acknowledged values are any object)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def operation_document(recording: Recording, index: int, names: dict[int, str]) -> dict[str, Any]:
    """One micro-operation: its index, kind, fields (a write's data as its size), the file
    or directory it touches, the call and the `file:line` that issued it."""
    op: MicroOp = recording.ops[index]
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(op):
        value = getattr(op, item.name)
        if isinstance(op, Write) and item.name == "data":
            fields["size_bytes"] = len(value)
        elif isinstance(op, Ack):
            fields["value"] = json_value(value)
        else:
            fields[item.name] = value
    inode = getattr(op, "inode", None)
    site = recording.sites[index]
    return {
        "index": index,
        "kind": type(op).__name__,
        **fields,
        "path": names.get(inode) if isinstance(inode, int) else None,
        "call": site.call,
        "site": site.site,
        "library": site.library or None,
    }


def state_document(exploration: Exploration, result: StateResult, detailed: bool) -> dict[str, Any]:
    """A failing state: its id, the operations kept, dropped and torn (indexes into
    `operations`), the lines responsible, the error, the repro command."""
    recording, state = exploration.recording, result.state
    acked, pending = acknowledged(recording, state)
    statuses = [op_status(recording, state, index) for index in range(state.point)]
    tear = state.tear
    document: dict[str, Any] = {
        "id": state.id,
        "verdict": result.verdict,
        "error": result.error,
        "represented": result.represented,
        "crash_point": state.point,
        "acked": [json_value(value) for value in acked],
        "pending": json_value(pending),
        "kept": list(changes_in(recording, state)),
        "dropped": list(state.dropped),
        "lost": [index for index, status in enumerate(statuses) if status == "LOST"],
        "torn": None
        if tear is None
        else {
            "index": tear.op_index,
            "sector_bytes": tear.sector_bytes,
            "persisted": "".join("1" if bit else "0" for bit in tear.persisted),
            "garbage": tear.garbage,
        },
        "responsible": [
            {"site": item.site, "op_index": item.op_index, "reason": item.reason}
            for item in responsible_sites(recording, state)
        ],
        "repro": exploration.repro(state.id),
    }
    if detailed:
        document["traceback"] = result.traceback
    return document


def results_document(result: TargetRunResult) -> dict[str, Any]:
    exploration, options, recorded = result.exploration, result.options, result.recorded
    names = inode_names(exploration.recording)
    operation_count = len(exploration.recording.ops)
    broken = result.broken_promises + exploration.unmodelled
    final = exploration.final
    return {
        "format": RESULTS_FORMAT,
        "started_at": utc_text(result.started_at_unix_seconds),
        "elapsed_seconds": round(result.elapsed_seconds, 3),
        "repro": options.repro(),
        "exit_code": result.exit_code,
        "harness_failure": result.harness_failure or None,
        "target": {"path": str(options.path), "name": exploration.target.name},
        "options": {
            "explore": options.explore,
            "budget": options.budget,
            "seed": options.seed,
            "faults": list(options.faults),
        },
        "counts": {
            "operations": len(exploration.recording.ops),
            "possible": exploration.possible,
            "enumerated": exploration.enumerated,
            "unique": exploration.unique,
            "checked": exploration.checked,
            "failed": exploration.failed,
            "unmodelled": len(exploration.unmodelled),
            "seconds": round(exploration.seconds, 6),
            "states_per_second": round(result.states_per_second, 1),
        },
        "workload": {
            "acked": [json_value(value) for value in recorded.acked],
            "error": None if recorded.workload_error is None else repr(recorded.workload_error),
            "traceback": recorded.workload_traceback or None,
        },
        "final": None if final is None else {"verdict": final.verdict, "error": final.error},
        "operations": [operation_document(exploration.recording, index, names) for index in range(operation_count)],
        "failures": [
            state_document(exploration, failure, position < FAILURES_DETAILED_MAX)
            for position, failure in enumerate(broken)
        ],
    }


# ---------------------------------------------------------------- junit.xml


def junit_tree(result: TargetRunResult) -> ElementTree.ElementTree:
    """One testsuite for the target: one testcase per failing state (the first
    `FAILURES_DETAILED_MAX` with the full report as text), one for the states that passed,
    one `workload` testcase with an error when no verdict could be given."""
    exploration, name = result.exploration, result.exploration.target.name
    root = ElementTree.Element("testsuites", name="sim_runner")
    suite = ElementTree.SubElement(root, "testsuite", name=f"target {name}", skipped="0")
    suite.set("timestamp", utc_text(result.started_at_unix_seconds).removesuffix("+00:00"))
    properties = ElementTree.SubElement(suite, "properties")
    ElementTree.SubElement(properties, "property", name="repro", value=result.options.repro())
    ElementTree.SubElement(properties, "property", name="target", value=str(result.options.path))
    failing = result.broken_promises + exploration.unmodelled
    passed = exploration.checked - exploration.failed
    ElementTree.SubElement(
        suite, "testcase", classname=name, name=f"{passed} crash states passed", time=f"{exploration.seconds:.3f}"
    )
    errors = 0
    if result.harness_failure:
        errors += 1
        case = ElementTree.SubElement(suite, "testcase", classname=name, name="workload", time="0.000")
        error = ElementTree.SubElement(case, "error", message=xml_text(result.harness_failure), type="HarnessFailure")
        error.text = xml_text(result.recorded.workload_traceback or result.harness_failure)
    for position, failure in enumerate(failing):
        case = ElementTree.SubElement(suite, "testcase", classname=name, name=f"crash state {failure.state.id}")
        case.set("time", "0.000")
        kind = "UnmodelledCall" if failure.verdict == "unmodelled" else "PromiseBroken"
        element = ElementTree.SubElement(case, "failure", message=xml_text(failure.error or ""), type=kind)
        detailed = position < FAILURES_DETAILED_MAX
        text = (
            failure_report(exploration, failure)
            if detailed
            else f"{failure.error}\nrepro: {exploration.repro(failure.state.id)}"
        )
        element.text = xml_text(text + "\n")
    for element in (root, suite):
        element.set("tests", str(1 + errors + len(failing)))
        element.set("failures", str(len(failing)))
        element.set("errors", str(errors))
        element.set("time", f"{result.elapsed_seconds:.3f}")
    ElementTree.indent(root)
    return ElementTree.ElementTree(root)


# ---------------------------------------------------------------- report.html


def html_report(result: TargetRunResult) -> str:
    """The summary, then each failing state with its operation list (the first
    `FAILURES_DETAILED_MAX` in full, the others one row each)."""
    exploration = result.exploration
    verdict = VERDICT_WORDS[result.exit_code]
    css = "passed" if result.exit_code == 0 else "failed"
    body = [
        f"<h1>sim_runner --target {escape(exploration.target.name)}: <span class='{css}'>{escape(verdict)}</span></h1>",
        f"<p>Started {escape(utc_text(result.started_at_unix_seconds))}, {result.elapsed_seconds:.1f}s.</p>",
        f"<p><code>{escape(result.options.describe())}</code></p>",
        f"<p>{escape(recording_line(result))}</p>",
        html_counts_table(result),
    ]
    if result.harness_failure:
        body.append(f"<h2>Harness failure</h2>\n<p>{escape(result.harness_failure)}</p>")
        if result.recorded.workload_traceback:
            body.append(f"<pre>{escape(result.recorded.workload_traceback)}</pre>")
    body += html_failures(result)
    return html_page(f"sim_runner --target {exploration.target.name}: {verdict}", body)


def html_counts_table(result: TargetRunResult) -> str:
    exploration = result.exploration
    cells = {
        "operations": len(exploration.recording.ops),
        "possible": exploration.possible,
        "enumerated": exploration.enumerated,
        "unique": exploration.unique,
        "checked": exploration.checked,
        "failed": exploration.failed,
        "seconds": f"{exploration.seconds:.2f}",
        "states/s": f"{result.states_per_second:,.0f}",
    }
    header = "<tr>" + "".join(f"<th>{name}</th>" for name in cells) + "</tr>"
    row_class = " class='bad'" if exploration.failed else ""
    row = f"<tr{row_class}>" + "".join(f"<td>{escape(str(value))}</td>" for value in cells.values()) + "</tr>"
    return f"<h2>Crash states</h2>\n<table>\n{header}\n{row}\n</table>"


def html_failures(result: TargetRunResult) -> list[str]:
    exploration = result.exploration
    failing = result.broken_promises + exploration.unmodelled
    if not failing:
        return []
    parts = [f"<h2>Failing states ({len(failing)}, most minimal first)</h2>"]
    for failure in failing[:FAILURES_DETAILED_MAX]:
        parts.append(html_failure(exploration, failure))
    rest = failing[FAILURES_DETAILED_MAX:]
    if rest:
        rows = ["<tr><th>state</th><th>error</th><th>repro</th></tr>"]
        for failure in rest:
            cells = (failure.state.id, failure.error or "", exploration.repro(failure.state.id))
            rows.append("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in cells) + "</tr>")
        parts.append(f"<h3>{len(rest)} more</h3>\n<table>\n" + "\n".join(rows) + "\n</table>")
    return parts


def html_failure(exploration: Exploration, failure: StateResult) -> str:
    state = failure.state
    recording = exploration.recording
    acked, pending = acknowledged(recording, state)
    responsible = "".join(f"<li><code>{escape(str(item))}</code></li>" for item in responsible_sites(recording, state))
    operations = "\n".join(describe(recording, state))
    return "\n".join(
        [
            f"<h3 id='{escape(state.id)}'>crash state {escape(state.id)}</h3>",
            f"<p class='failed'>{escape(failure.error or '')}</p>",
            f"<p>Acknowledged before the crash: <code>{escape(repr(acked))}</code>; in flight: "
            f"<code>{escape(repr(pending))}</code>. repro: <code>{escape(exploration.repro(state.id))}</code></p>",
            f"<p>Responsible lines:</p>\n<ul>{responsible}</ul>",
            f"<details open><summary>Operations</summary>\n<pre>{escape(operations)}</pre>\n</details>",
            f"<details><summary>Traceback</summary>\n<pre>{escape(failure.traceback)}</pre>\n</details>",
        ]
    )


# ---------------------------------------------------------------- writing them


def write_target_artifacts(result: TargetRunResult, directory: Path) -> list[Path]:
    """Write the three artifacts into `directory` (created if missing); return their paths."""
    return write_files(directory, results_document(result), junit_tree(result), html_report(result))
