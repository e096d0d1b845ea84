"""pytest plugin `kv_sim`: run the store on the simulated disk from your own tests.

Installing kv-sim registers it (entry point `pytest11`: `kv_sim`); `-p no:kv_sim` turns it off.

Fixtures:

- `sim_seed`: this test's seed, SHA-256 of the run's base seed and the test's node id:
  independent of `PYTHONHASHSEED`, of test order and of which tests run, so a test
  selected alone gets the same seed.
- `sim_scenario`: the `Scenario` the test runs under: its `sim(scenario=NAME)` marker,
  else `--sim-scenario` (default `perfect`: no faults).
- `sim_io`: `SimIo(seed=sim_seed, faults=<the scenario's fault plan>)`; shut down at teardown.
- `sim_open`: opens the store in `/store` on `sim_io` with the scenario's options, as the
  simulator does; call it again after `sim_io.crash()` to recover. Stores still open
  at teardown are closed (those a crash killed are left, like a dead process).
- `sim_store`: `sim_open()`.
- `crash_check`: crash-tests your own code (`scenarios.crash_check.CrashCheck`):
  `crash_check(workload, check)` records `workload(root, ack)` once on the simulated
  disk, checks `check(root, acked, pending)` in every crash state, and raises an
  `AssertionError` whose message is the minimal failing state's report;
  `crash_check.explore(...)` returns the exploration without asserting and
  `crash_check.state(workload, check, ID)` replays one state. Its seed (sampling past
  the budget, inline faults) is derived from the base seed and the node id of the test
  calling it, like `sim_seed`. It is session-scoped (it holds nothing per test), so it
  works under `@given` without the function-scoped-fixture health check; give such tests
  `@settings(deadline=None)`, as one example explores many states.

Options: `--sim-seed N|last` (the base seed; `last` is the previous run's, kept in the
pytest cache; by default a fresh one is drawn and printed in the header) and
`--sim-scenario NAME`. Markers: `sim(scenario=NAME)` (added to every test that uses a
sim fixture, so `-m sim` selects them) and `io_uring` (skipped, with the probe's
reason, where io_uring cannot run).

A failing test that used a sim fixture gets a `reproduce:` line in its report. Under
pytest-xdist every worker uses the controller's base seed.

Hypothesis profiles: `dev` (hypothesis' defaults; loaded by default), `ci`
(derandomized, no example database, no deadline, failing blobs printed; loaded when
the `CI` environment variable is set to anything but "", "0" or "false") and
`thorough` (2,000 examples, no deadline). `--hypothesis-profile NAME` wins, and so does
a profile that a conftest loaded itself.

Deliberately not done: the plugin does not check the store against a model (that is
`scenarios.runner`'s oracle); a test asserts what it needs.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import shlex
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pytest

import kv
from io_backends.sim import SimIo
from kv.errors import KvError
from kv.opening import OnCorruption
from kv.store import Durability, Store
from scenarios.registry import SCENARIOS, Scenario
from scenarios.runner import STORE_DIRECTORY

if TYPE_CHECKING:
    from scenarios.crash_check import CrashCheck

# 32 bits: short enough to copy from a log line, and two runs rarely draw the same one.
BASE_SEED_BITS = 32
# Per-test seeds have the 64 bits the simulator's own runs use (`getrandbits(64)`).
TEST_SEED_BYTES = 8
DEFAULT_SCENARIO = "perfect"
CACHE_KEY = "kv_sim/base_seed"
WORKERINPUT_BASE_SEED = "kv_sim_base_seed"
SIM_FIXTURES = frozenset(("sim_seed", "sim_scenario", "sim_io", "sim_open", "sim_store", "crash_check"))
# Values of the CI variable that mean "not CI" (case-insensitive).
CI_FALSE_VALUES = frozenset(("", "0", "false"))
HYPOTHESIS_PROFILE_OPTION = "hypothesis_profile"  # dest of hypothesis' --hypothesis-profile
THOROUGH_EXAMPLES = 2000  # about twenty times the default: a nightly run, not every push


@dataclass(frozen=True)
class SimRun:
    """What this pytest run derives every test's seed and fault plan from."""

    base_seed: int
    scenario: str


@dataclass(frozen=True)
class UringStatus:
    unavailable_reason: str | None  # None: io_uring works here


SIM_RUN = pytest.StashKey[SimRun]()
URING_STATUS = pytest.StashKey[UringStatus]()


def derive_test_seed(base_seed: int, node_id: str) -> int:
    """The seed of one test: a hash of the base seed and the node id (never `hash()`,
    which `PYTHONHASHSEED` changes)."""
    digest = hashlib.sha256(f"{base_seed}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:TEST_SEED_BYTES], "big")


def ci_requested(environ: Mapping[str, str]) -> bool | None:
    """True when `CI` says this is CI, False when it says it is not, None when unset."""
    value = environ.get("CI")
    if value is None:
        return None
    return value.strip().lower() not in CI_FALSE_VALUES


# -- options, configuration ----------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kv-sim", "kv simulated disk (scenarios.pytest_plugin)")
    group.addoption(
        "--sim-seed",
        dest="sim_seed",
        metavar="N|last",
        default=None,
        help="base seed of the sim fixtures (each test derives its own from it and its node id); "
        "'last' reuses the previous run's. Default: a fresh random seed, printed in the header.",
    )
    group.addoption(
        "--sim-scenario",
        dest="sim_scenario",
        metavar="NAME",
        default=DEFAULT_SCENARIO,
        help=f"fault scenario of sim_io/sim_store (default {DEFAULT_SCENARIO}): {', '.join(SCENARIOS)}",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Register the hypothesis profiles before any conftest runs, so a conftest can
    override them and `--hypothesis-profile` can name them."""
    register_hypothesis_profiles()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sim(scenario=None): runs on the kv simulated disk (added to tests using sim fixtures); "
        "scenario=NAME overrides --sim-scenario for this test",
    )
    config.addinivalue_line("markers", "io_uring: needs a working io_uring; skipped with the reason where it is not")
    run = SimRun(base_seed=_resolve_base_seed(config), scenario=_resolve_scenario(config))
    config.stash[SIM_RUN] = run
    if config.pluginmanager.hasplugin("xdist") and not _is_xdist_worker(config):
        config.pluginmanager.register(XdistSeedSharing(run), "kv_sim_xdist")
    _load_hypothesis_profile(config)


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _resolve_base_seed(config: pytest.Config) -> int:
    """The run's base seed: the controller's (in an xdist worker), `--sim-seed`'s, the
    cached one (`last`) or a fresh one. Raises `pytest.UsageError` for a bad
    `--sim-seed` or `last` with nothing cached."""
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    if WORKERINPUT_BASE_SEED in workerinput:
        return int(workerinput[WORKERINPUT_BASE_SEED])
    raw: str | None = config.getoption("sim_seed")
    if raw is None:
        return secrets.randbits(BASE_SEED_BITS)
    if raw.strip().lower() == "last":
        cache: pytest.Cache | None = getattr(config, "cache", None)
        if cache is None:
            raise pytest.UsageError("--sim-seed last needs the pytest cache, which is disabled (-p no:cacheprovider)")
        cached = cache.get(CACHE_KEY, None)
        if not isinstance(cached, int) or cached < 0:
            raise pytest.UsageError(
                "--sim-seed last: no previous run's seed in the pytest cache (run once without it, or give a number)"
            )
        return cached
    try:
        seed = int(raw)
    except ValueError:
        raise pytest.UsageError(f"--sim-seed must be a non-negative integer or 'last', not {raw!r}") from None
    if seed < 0:
        raise pytest.UsageError(f"--sim-seed must be a non-negative integer or 'last', not {raw!r}")
    return seed


def _resolve_scenario(config: pytest.Config) -> str:
    name: str = config.getoption("sim_scenario")
    if name not in SCENARIOS:
        raise pytest.UsageError(f"--sim-scenario: unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return name


def pytest_sessionstart(session: pytest.Session) -> None:
    """Remember the base seed (the controller only) so `--sim-seed last` can replay it."""
    config = session.config
    cache: pytest.Cache | None = getattr(config, "cache", None)
    if cache is not None and not _is_xdist_worker(config):
        cache.set(CACHE_KEY, config.stash[SIM_RUN].base_seed)


def pytest_report_header(config: pytest.Config) -> str:
    run = config.stash[SIM_RUN]
    seed = run.base_seed
    line = f"kv-sim: base seed {seed} (rerun with --sim-seed {seed} or --sim-seed last), scenario {run.scenario}"
    profile = _current_hypothesis_profile()
    return line if profile is None else f"{line}, hypothesis profile {profile}"


class WorkerNode(Protocol):
    """The part of xdist's `WorkerController` this plugin uses."""

    workerinput: dict[str, Any]


class XdistSeedSharing:
    """Hands the controller's base seed to every xdist worker (registered only when
    xdist is loaded: its hook is unknown otherwise)."""

    def __init__(self, run: SimRun) -> None:
        self.run = run

    def pytest_configure_node(self, node: WorkerNode) -> None:
        node.workerinput[WORKERINPUT_BASE_SEED] = self.run.base_seed


# -- markers, reports ----------------------------------------------------------------


def uses_sim(item: pytest.Item) -> bool:
    return not SIM_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test using a sim fixture `sim` before `-m` selects."""
    for item in items:
        if uses_sim(item) and item.get_closest_marker("sim") is None:
            item.add_marker("sim")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Skip the selected `io_uring` tests where it cannot run; probe only if there are any."""
    marked = [item for item in session.items if item.get_closest_marker("io_uring") is not None]
    if not marked:
        return
    reason = _uring_status(session.config).unavailable_reason
    if reason is not None:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=f"io_uring unavailable here: {reason}"))


def _uring_status(config: pytest.Config) -> UringStatus:
    """Probe io_uring once per session (the probe starts a child process)."""
    status = config.stash.get(URING_STATUS, None)
    if status is None:
        try:
            from io_backends.uring import probe
        except ImportError as error:
            status = UringStatus(f"io_backends.uring cannot be imported: {error}")
        else:
            result = probe()
            status = UringStatus(None if result.available else result.reason)
        config.stash[URING_STATUS] = status
    return status


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and uses_sim(item):
        report.sections.append(("kv-sim", f"reproduce: {reproduce_command(item)}"))
    return report


def reproduce_command(item: pytest.Item) -> str:
    """One command that reruns `item` with this run's base seed and scenario, from the
    directory pytest was started in."""
    run = item.config.stash[SIM_RUN]
    _file, separator, rest = item.nodeid.partition("::")
    path = os.path.relpath(item.path, item.config.invocation_params.dir)
    target = f"{path}{separator}{rest}"
    return f"pytest {shlex.quote(target)} --sim-seed {run.base_seed} --sim-scenario {run.scenario}"


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture
def sim_seed(request: pytest.FixtureRequest) -> int:
    """This test's seed, derived from the run's base seed and the test's node id."""
    seed = derive_test_seed(request.config.stash[SIM_RUN].base_seed, request.node.nodeid)
    request.node.user_properties.append(("sim_seed", seed))
    return seed


@pytest.fixture
def sim_scenario(request: pytest.FixtureRequest) -> Scenario:
    """The scenario of this test: its `sim(scenario=NAME)` marker, else `--sim-scenario`."""
    name = request.config.stash[SIM_RUN].scenario
    for marker in request.node.iter_markers("sim"):
        if "scenario" in marker.kwargs:
            name = marker.kwargs["scenario"]
            break
    if name not in SCENARIOS:
        pytest.fail(f"sim marker: unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}", pytrace=False)
    return SCENARIOS[name]


@pytest.fixture
def sim_io(sim_seed: int, sim_scenario: Scenario) -> Iterator[SimIo]:
    """A simulated disk seeded with `sim_seed`, with the scenario's faults."""
    io = SimIo(seed=sim_seed, faults=sim_scenario.fault_plan(random.Random(sim_seed)))
    yield io
    io.crash_at_operation = None  # a crash armed by the test must not fire in teardown
    io.shutdown()


class SimStoreOpener:
    """Opens the store in `/store` on one `SimIo` the way the simulator's runner does
    (the scenario's durability and segment size; repair when the faults can damage
    data). Call again after `io.crash()` to recover."""

    def __init__(self, io: SimIo, scenario: Scenario) -> None:
        self.io = io
        self.scenario = scenario
        self.faulty = bool(io.faults.plan.enabled())
        self._opened: list[tuple[Store, int]] = []  # each store and the disk generation it was opened in

    def __call__(self, *, durability: Durability | None = None, on_corruption: OnCorruption | None = None) -> Store:
        """Open the store. Raises what `kv.open` raises (`CorruptionDetected`, `IoError`, ...)."""
        if on_corruption is None:
            on_corruption = "repair" if self.io.faults.plan.damages_data() else "raise"
        store = kv.open(
            STORE_DIRECTORY,
            io=self.io,
            durability=durability if durability is not None else self.scenario.durabilities[0],
            on_corruption=on_corruption,
            segment_size_target_bytes=self.scenario.segment_size_target_bytes,
        )
        self._opened.append((store, self.io.disk.generation))
        return store

    def close_all(self) -> None:
        """Close every store still open. A store opened before a crash died with its
        process and is left alone; a close failing on an injected fault is ignored."""
        self.io.crash_at_operation = None
        for store, generation in reversed(self._opened):
            if generation != self.io.disk.generation:
                continue
            try:
                store.close()
            except KvError:
                if not self.faulty:
                    raise


@pytest.fixture
def sim_open(sim_io: SimIo, sim_scenario: Scenario) -> Iterator[SimStoreOpener]:
    """Opens (and, after `sim_io.crash()`, reopens) the store on `sim_io`."""
    opener = SimStoreOpener(sim_io, sim_scenario)
    yield opener
    opener.close_all()


@pytest.fixture
def sim_store(sim_open: SimStoreOpener) -> Store:
    """A store in `/store` on `sim_io`, closed at teardown if still open."""
    return sim_open()


def current_test_seed(base_seed: int) -> int:
    """The seed `sim_seed` gives the test running now (`PYTEST_CURRENT_TEST` names it);
    the base seed itself outside a test."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    node_id = current.rpartition(" (")[0] or current
    return derive_test_seed(base_seed, node_id) if node_id else base_seed


@pytest.fixture(scope="session")
def crash_check(request: pytest.FixtureRequest) -> CrashCheck:
    """Crash-tests a `workload(root, ack)` and its `check(root, acked, pending)`: see
    `scenarios.crash_check.CrashCheck`. Session-scoped, its seed follows the running test."""
    from scenarios.crash_check import CrashCheck  # the POSIX view loads only when used

    base_seed = request.config.stash[SIM_RUN].base_seed
    return CrashCheck(seed=lambda: current_test_seed(base_seed))


# -- hypothesis profiles -------------------------------------------------------------


def register_hypothesis_profiles() -> None:
    """Register `dev`, `ci` and `thorough` (nothing when hypothesis is not installed)."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return
    # Parent: hypothesis' defaults, not the profile loaded now (hypothesis loads its own
    # `ci` on import when it detects CI, and `thorough` must not inherit that).
    defaults = settings.get_profile("default")
    settings.register_profile("dev", defaults)
    settings.register_profile(
        "ci",
        defaults,
        derandomize=True,  # the same examples on every run: CI failures are not luck
        database=None,  # CI machines are fresh: a database would only be written
        deadline=None,  # shared runners are slow and noisy
        print_blob=True,  # a failure prints the blob that replays it (@reproduce_failure)
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile("thorough", defaults, max_examples=THOROUGH_EXAMPLES, deadline=None)


def _load_hypothesis_profile(config: pytest.Config) -> None:
    """Load `ci` or `dev` unless `--hypothesis-profile` or a conftest chose a profile."""
    if config.getoption(HYPOTHESIS_PROFILE_OPTION, default=None):
        return  # hypothesis' own plugin loads it
    try:
        from hypothesis import settings
        from hypothesis.errors import InvalidArgument
    except ImportError:
        return
    try:
        settings.get_profile("thorough")
    except InvalidArgument:  # not registered yet: the plugin was loaded after startup
        register_hypothesis_profiles()
    current = settings.get_current_profile_name()
    if current not in ("default", "ci"):
        return  # a conftest loaded its own
    ci = ci_requested(os.environ)
    if ci is None:  # CI unset: keep hypothesis' own detection (GITHUB_ACTIONS, TF_BUILD, ...)
        ci = current == "ci"
    settings.load_profile("ci" if ci else "dev")


def _current_hypothesis_profile() -> str | None:
    try:
        from hypothesis import settings
    except ImportError:
        return None
    return settings.get_current_profile_name()
