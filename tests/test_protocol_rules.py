"""The crash-safety rules (the numbered notes at the top of `kv/opening.py`) are cited
where they are enforced: every rule at least once in kv/, every citation names a rule
that exists. And no function in kv/ is longer than a screen (70 lines)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import kv.opening

ROOT = Path(__file__).resolve().parent.parent
FUNCTION_LINES_MAX = 70  # house habit 8: a function fits on a screen
# "(rule 4)", "rule 4", "(rules 8, 4, 10)": a citation names one or more numbers.
CITATION = re.compile(r"\brules? (\d+(?:(?:, | and )\d+)*)")


def _rules() -> dict[int, str]:
    """The numbered rules of the notes: number -> first line."""
    notes = kv.opening.__doc__
    assert notes is not None
    return {int(number): text for number, text in re.findall(r"^\((\d+)\) (.*)$", notes, flags=re.MULTILINE)}


def _citations() -> list[tuple[str, int, int]]:
    """(file, line, rule number) of every citation in kv/, the notes themselves left out."""
    found = []
    for path in sorted((ROOT / "kv").rglob("*.py")):
        text = path.read_text()
        if path.name == "opening.py":
            notes = kv.opening.__doc__
            assert notes is not None
            text = text.replace(notes, "\n" * notes.count("\n"))  # keep line numbers, drop the rules' own text
        for line_number, line in enumerate(text.splitlines(), start=1):
            for match in CITATION.finditer(line):
                for number in re.findall(r"\d+", match.group(1)):
                    found.append((str(path.relative_to(ROOT)), line_number, int(number)))
    return found


def test_rules_are_numbered_from_one_without_gaps() -> None:
    rules = _rules()
    assert rules, "no numbered rules at the top of kv/opening.py"
    assert sorted(rules) == list(range(1, len(rules) + 1))


def test_every_rule_is_cited_in_kv() -> None:
    cited = {number for _path, _line, number in _citations()}
    assert set(_rules()) - cited == set(), "rules cited nowhere"


def test_every_citation_names_an_existing_rule() -> None:
    rules = _rules()
    bad = [f"{path}:{line} cites rule {number}" for path, line, number in _citations() if number not in rules]
    assert bad == []


def test_each_rule_is_cited_outside_the_notes_where_it_is_enforced() -> None:
    """Not only in kv/opening.py: the writer, compaction and the store enforce rules too."""
    cited_in = {path for path, _line, _number in _citations()}
    assert {"kv/opening.py", "kv/log.py", "kv/compaction.py", "kv/store.py", "kv/judge.py"} <= cited_in


def test_no_function_in_kv_is_longer_than_a_screen() -> None:
    too_long = []
    for path in sorted((ROOT / "kv").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None:
                first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
                if node.end_lineno - first + 1 > FUNCTION_LINES_MAX:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert too_long == []
