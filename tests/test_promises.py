"""The promise inventory is whole: every row names an oracle check that exists and a
broken variant that exists, every variant proves some promise, and every check the
inventory names can raise `Violation` (its source says so). That each variant is
caught by its scenario is `tests/test_broken_variants.py::test_variant_is_caught`,
whose cases are the inventory's rows."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from scenarios import oracle
from scenarios.oracle import Oracle
from scenarios.promises import EXHAUSTIVE, PROMISES, SCRIPTED
from scenarios.registry import SCENARIOS
from scenarios.scripted import SCHEDULES
from tests.broken_variants import VARIANTS
from tests.test_broken_variants import CAUGHT


def test_promise_names_are_unique() -> None:
    names = [promise.name for promise in PROMISES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("promise", PROMISES, ids=[promise.name for promise in PROMISES])
def test_every_promise_has_a_check_a_variant_and_a_scenario(promise: object) -> None:
    from scenarios.promises import Promise

    assert isinstance(promise, Promise)
    assert callable(getattr(Oracle, promise.check, None)), f"{promise.name}: no Oracle.{promise.check}"
    assert promise.variant in VARIANTS, f"{promise.name}: no broken variant {promise.variant}"
    assert promise.scenario in (*SCENARIOS, EXHAUSTIVE, SCRIPTED), f"{promise.name}: no scenario {promise.scenario}"
    assert promise.text and promise.source


def test_every_variant_proves_a_promise() -> None:
    assert set(VARIANTS) == {promise.variant for promise in PROMISES}


def test_every_promise_is_a_case_of_a_caught_test() -> None:
    """Scenario rows are cases of `test_variant_is_caught`; exhaustive rows are checked by
    `tests/test_exhaustive.py`, which must name each of them."""
    assert set(CAUGHT) == {(p.variant, p.scenario) for p in PROMISES if p.scenario not in (EXHAUSTIVE, SCRIPTED)}
    assert {p.name for p in PROMISES if p.scenario == SCRIPTED} == set(SCHEDULES)
    exhaustive_tests = (Path(__file__).parent / "test_exhaustive.py").read_text()
    for promise in PROMISES:
        if promise.scenario == EXHAUSTIVE:
            assert f'"{promise.variant}"' in exhaustive_tests, promise.variant


def _raises_violation(method: str, seen: set[str] | None = None) -> bool:
    """The method's body raises `Violation`, itself or through another Oracle method."""
    seen = seen or set()
    seen.add(method)
    tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(Oracle, method))))
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and "Violation" in ast.unparse(node):
            return True
        calls_self = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
        if calls_self and _calls_a_raising_check(node, seen):
            return True
    return False


def _calls_a_raising_check(node: ast.AST, seen: set[str]) -> bool:
    assert isinstance(node, ast.Attribute)
    return node.attr not in seen and callable(getattr(Oracle, node.attr, None)) and _raises_violation(node.attr, seen)


@pytest.mark.parametrize("check", sorted({promise.check for promise in PROMISES}))
def test_every_named_check_can_fail(check: str) -> None:
    assert _raises_violation(check), f"Oracle.{check} never raises Violation"


def test_the_oracle_documents_each_named_check() -> None:
    documented = oracle.__doc__ or ""
    for check in {promise.check for promise in PROMISES}:
        assert f"`{check}`" in documented, f"the oracle's docstring does not name {check}"
