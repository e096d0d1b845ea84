"""Every crash point of opening, repair, compaction and close (`scenarios.exhaustive`):
the real store passes all of them, the prepared stores are what they claim, the survival
modes keep what they name, and the run catches the broken variants whose window is a
few I/Os of an open or a compaction, including one the random campaign never hits.
"""

from __future__ import annotations

import re

import pytest

import kv
from io_backends.sim import SimDisk
from scenarios.exhaustive import ACTIONS, run_exhaustive
from scenarios.exhaustive_stores import (
    NOTHING_SURVIVES,
    PREFIX_SURVIVES,
    RECIPES,
    STORE_DIRECTORY,
    SURVIVAL_MODES,
    ExhaustiveIo,
    PreparedStore,
    Survival,
    omit_entry,
    prepare,
    prepare_all,
)
from scenarios.registry import SCENARIOS
from scenarios.runner import run_seed
from tests.broken_variants import VARIANTS


@pytest.fixture(scope="module")
def prepared() -> list[PreparedStore]:
    """Built with the real store, before any variant is switched on: the images are the
    input, the variant is the code that opens, repairs and compacts them."""
    return prepare_all()


def _by_name(prepared: list[PreparedStore], *names: str) -> list[PreparedStore]:
    return [store for store in prepared if store.name in names]


def test_the_real_store_passes_every_crash_point(prepared: list[PreparedStore]) -> None:
    result = run_exhaustive(prepared=prepared)
    assert result.passed, "\n".join(map(str, result.failures[:10]))
    assert {(case.store, case.action) for case in result.cases} == {(name, a) for name in RECIPES for a in ACTIONS}
    for case in result.cases:
        assert case.ios > 0, case
        # every I/O and the point after the action, under each survival mode at least
        assert case.points_tried >= (case.ios + 1) * len(SURVIVAL_MODES), case
    assert result.summary()[-1] == f"exhaustive: {result.points_tried} crash points, 0 failures"


def _entries(store: PreparedStore) -> list[str]:
    return sorted(store.disk.directories[STORE_DIRECTORY].entries)


def test_the_prepared_stores_hold_what_they_describe(prepared: list[PreparedStore]) -> None:
    stores = {store.name: store for store in prepared}
    assert len([name for name in _entries(stores["clean"]) if name.endswith(".seg")]) == 3
    assert any(name.endswith(".hint") for name in _entries(stores["compacted"]))
    obsolete = _entries(stores["compaction_obsolete"])
    assert any(name.endswith(".compacted") for name in obsolete) and "00000001.seg" in obsolete
    assert any(name.endswith(".tmp") for name in _entries(stores["compaction_debris"]))
    fsync_failed = stores["fsync_failed"].disk
    assert any(inode.data != inode.durable for inode in fsync_failed.inodes.values())  # page cache only
    assert stores["damaged"].damaged and stores["torn_tail"].torn
    for name, store in stores.items():
        io = ExhaustiveIo(store.fresh_disk(), NOTHING_SURVIVES)
        if store.damaged:
            with pytest.raises(kv.CorruptionDetected):
                kv.open(STORE_DIRECTORY, io=io)
            continue
        report = kv.open(STORE_DIRECTORY, io=io, segment_size_target_bytes=1024).recovery
        assert bool(report.torn_tails) == store.torn and not report.corruptions, (name, report.summary())


def test_a_prepared_store_is_built_the_same_every_time() -> None:
    first, second = prepare("torn_tail"), prepare("torn_tail")
    assert {n: bytes(i.durable) for n, i in first.disk.inodes.items()} == {
        n: bytes(i.durable) for n, i in second.disk.inodes.items()
    }


@pytest.mark.parametrize(
    ("survival", "entries", "kept"),
    [
        (NOTHING_SURVIVES, ["a"], b""),
        (PREFIX_SURVIVES, ["a", "b"], b"ab"),
        (SURVIVAL_MODES[2], ["a", "b", "c"], b"abc"),
        (omit_entry(0), ["a", "c"], b"abc"),
    ],
    ids=["none", "prefix", "all", "omit-0"],
)
def test_a_survival_mode_keeps_what_it_names(survival: Survival, entries: list[str], kept: bytes) -> None:
    """File a is durable (its entry synced) with three unsynced one-byte writes; b and c
    were created after the last sync_dir (two logged directory changes)."""
    disk = SimDisk()
    io = ExhaustiveIo(disk, survival)
    io.mkdir("/d").result()
    io.sync_dir("/").result()
    file = io.open("/d/a", "w").result()
    io.sync_dir("/d").result()
    for name in ("b", "c"):
        io.open(f"/d/{name}", "w").result()
    for offset, byte in enumerate(b"abc"):
        io.write(file, offset, bytes([byte])).result()
    io.crash()
    assert sorted(disk.directories["/d"].entries) == entries
    inode = disk.lookup("/d/a")
    assert inode is not None and bytes(inode.data) == kept
    assert io.survival.entries_pending == [2]


# (variant, the prepared stores and actions whose crash points catch it)
CAUGHT_BY_CRASH_POINTS = [
    ("settle_journals_inside_open", ("torn_tail",), ("open",)),
    ("no_sync_dir_in_compaction", ("clean",), ("compact",)),
    ("no_sync_dir_for_new_segments", ("damaged",), ("compact",)),
    ("corruption_as_torn_tail", ("damaged",), ("open",)),
    ("silent_truncation_at_corruption", ("torn_tail",), ("open",)),
    ("apply_half_a_frame", ("torn_tail",), ("open",)),
    ("skip_frame_crc_on_recovery", ("torn_tail",), ("open",)),
    ("flush_without_sync", ("clean",), ("close",)),
]


@pytest.mark.parametrize(
    ("variant", "stores", "actions"), CAUGHT_BY_CRASH_POINTS, ids=[v for v, _, _ in CAUGHT_BY_CRASH_POINTS]
)
def test_the_crash_points_catch_a_variant(
    prepared: list[PreparedStore], variant: str, stores: tuple[str, ...], actions: tuple[str, ...]
) -> None:
    chosen = _by_name(prepared, *stores)
    with VARIANTS[variant]():
        result = run_exhaustive(prepared=chosen, actions=actions)  # type: ignore[arg-type]
    # (the real store passes these same crash points: test_the_real_store_passes_every_crash_point)
    assert not result.passed, f"{variant} passed every crash point of {stores} x {actions}"


def test_a_failure_names_its_crash_point(prepared: list[PreparedStore]) -> None:
    with VARIANTS["settle_journals_inside_open"]():
        result = run_exhaustive(prepared=_by_name(prepared, "torn_tail"), actions=("open",))
    failure = next(f for f in result.failures if f.reopen_crash is None)
    assert failure.store == "torn_tail" and failure.action == "open"
    assert re.fullmatch(r"(unlink|sync_dir|rename|open|close|write|sync) /store\S*", failure.crashed_in), failure
    assert failure.survival in {mode.name for mode in SURVIVAL_MODES} | {"omit-0", "omit-1"}
    assert "torn tail" in failure.difference and str(failure).startswith(
        f"torn_tail/open: crash at I/O {failure.point}"
    )
    # The window is the last few I/Os of the open (its journal removal), nowhere earlier.
    case = result.cases[0]
    assert failure.point > case.ios - 4, (failure.point, case.ios)


def test_the_random_crash_campaign_misses_a_journal_settled_inside_the_open() -> None:
    """The window is the open's last I/Os; the random campaign crashes a recovery within
    its first 29 I/Os, and a torn tail's report is not checked without media faults:
    seeds 0..199 of `crash` at 600 operations pass the broken variant."""
    with VARIANTS["settle_journals_inside_open"]():
        failures = [seed for seed in range(200) if not run_seed(SCENARIOS["crash"], seed, 600).passed]
    assert failures == []
