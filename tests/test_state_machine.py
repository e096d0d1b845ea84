"""The hypothesis state machine: the real store passes it, and it finds and shrinks
every broken store variant (`broken_variants`)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from scenarios.runner import Violation
from scenarios.state_machine import StoreMachine
from tests.broken_variants import VARIANTS

# Deterministic searches (derandomized, no example database): the same examples on
# every run, so a variant that is found today is found in CI.
SEARCH = settings(
    max_examples=500,
    stateful_step_count=30,
    derandomize=True,
    database=None,
    deadline=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow],
)
# variant -> most steps its shrunk example may have (the issue asks <= 4 for ack_before_sync)
STEPS_MAX = {"ack_before_sync": 4}
HEADER_LINES = ("state = ", "state.start(", "state.teardown(")


def shrunk_steps(error: BaseException) -> list[str]:
    """The rule calls of the falsifying example hypothesis printed (its notes)."""
    notes = getattr(error, "__notes__", [])
    return [line for line in notes if line.startswith("state.") and not line.startswith(HEADER_LINES)]


TestRealStore = StoreMachine.TestCase
TestRealStore.settings = settings(SEARCH, max_examples=100)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_state_machine_finds_and_shrinks_the_variant(name: str, record_property: object) -> None:
    with VARIANTS[name](), pytest.raises((Violation, AssertionError)) as caught:
        run_state_machine_as_test(StoreMachine, settings=SEARCH)
    steps = shrunk_steps(caught.value)
    assert steps, f"no falsifying example printed: {getattr(caught.value, '__notes__', None)}"
    print(f"{name}: {len(steps)} steps\n" + "\n".join(steps))
    assert len(steps) <= STEPS_MAX.get(name, 15), "\n".join(steps)
