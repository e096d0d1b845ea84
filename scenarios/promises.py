"""Every promise the store documents, the oracle check that enforces it, and the broken
variant that proves the check bites.

A promise is a sentence of the README (section "Durability", "Errors", "Recovery") or
a docstring of `kv.store` / `kv.opening`. Each row names:

- `check`: a method of `scenarios.oracle.Oracle` (`tests/test_promises.py` asserts it
  exists and raises `Violation`);
- `variant`: a deliberately broken store in `tests/broken_variants.py` that breaks only
  this promise;
- `scenario`: the scenario whose seeds catch it (`tests/test_broken_variants.py` runs
  the variant on it and asserts a seed fails, and that the real store passes that seed),
  or `EXHAUSTIVE`: every crash point of the prepared stores (`scenarios.exhaustive`,
  `tests/test_exhaustive.py`), for bugs whose window is one I/O a sampled crash misses,
  or `SCRIPTED`: the schedule of `scenarios.scripted` named for the promise, for bugs
  that need several faults in one order.

Adding a promise to the store's documentation means adding a row here; a row without a
check or a caught variant fails the test suite.
"""

from __future__ import annotations

from dataclasses import dataclass

EXHAUSTIVE = "exhaustive"  # caught by the exhaustive crash-point run, not a scenario
SCRIPTED = "scripted"  # caught by a scripted fault schedule (`scenarios.scripted`)


@dataclass(frozen=True)
class Promise:
    name: str
    text: str  # the promise, as the store documents it
    source: str  # where it is documented
    check: str  # the `Oracle` method that enforces it
    variant: str  # the broken variant that breaks it
    scenario: str  # the scenario that catches that variant
    operations: int = 600  # per seed, when the test searches seeds for the catch


PROMISES: tuple[Promise, ...] = (
    Promise(
        "always_durable",
        "in `always` mode a write that returned survives any crash",
        "README: Durability; kv.store docstring",
        "check_recovered",
        "ack_before_sync",
        "crash",
    ),
    Promise(
        "new_segment_durable",
        "a write into a new segment returns only after the segment's directory entry is synced",
        "README: Durability (`always` row)",
        "check_recovered",
        "no_sync_dir_for_new_segments",
        "crash",
    ),
    Promise(
        "batch_time_bound",
        "`batch` mode syncs within 10 ms of `io.now()` (checked on the next call)",
        "README: Durability (`batch` row); kv.limits.BATCH_INTERVAL_MS_MAX",
        "check_recovered",
        "batch_ignores_time_bound",
        "crash",
    ),
    Promise(
        "batch_operation_bound",
        "`batch` mode syncs every 1,000 operations",
        "README: Durability (`batch` row); kv.limits.BATCH_OPERATIONS_MAX",
        "check_recovered",
        "batch_ignores_operation_bound",
        "edges",
        1500,  # a burst longer than the bound must fit in the run
    ),
    Promise(
        "batch_window_bounded",
        "`batch` mode loses at most the unsynced window (both bounds together)",
        "README: Durability (`batch` row)",
        "check_recovered",
        "batch_without_deadline",
        "crash",
    ),
    Promise(
        "flush_durable",
        "`flush()` syncs everything pending, in every mode",
        "kv.store.Store.flush docstring",
        "check_recovered",
        "flush_without_sync",
        "crash",
    ),
    Promise(
        "set_many_atomic",
        "`set_many` writes one frame: after a crash all of its pairs exist or none",
        "README: quick start; kv.store.Store.set_many docstring",
        "check_recovered",
        "set_many_one_at_a_time",
        "crash",
    ),
    Promise(
        "frame_atomic",
        "a frame is atomic: recovery applies all of it or none",
        "README: Recovery",
        "check_recovered",
        "apply_half_a_frame",
        "completion_corruption",
    ),
    Promise(
        "compaction_crash_safe",
        "a crash at any point of `compact()` loses nothing",
        "kv.compaction docstring",
        "check_recovered",
        "no_sync_dir_in_compaction",
        "completion_corruption",
    ),
    Promise(
        "read_only_after_failure",
        "after a failed write or sync the store goes read-only; it never retries and trusts",
        "kv.store docstring (lifecycle)",
        "check_recovered",
        "trust_retried_fsync",
        "fsyncgate",
    ),
    Promise(
        "reads_survive",
        "in `always` mode a read never returns data a crash can take away without a report",
        "README: Durability; kv.store docstring (lifecycle)",
        "observe_read_only",
        "cache_before_sync",
        "fsyncgate",
    ),
    Promise(
        "no_wrong_value",
        "a value is returned only if its checksum holds: never a corrupted or invented value",
        "README: Recovery; kv.store.Store._read_record",
        "check_not_invented",
        "skip_record_crc_on_get",
        "corruption",
    ),
    Promise(
        "damage_detected_in_recovery",
        "recovery checks every frame's checksum",
        "README: Recovery",
        "check_recovered",
        "skip_frame_crc_on_recovery",
        "random",
    ),
    Promise(
        "loss_reported",
        "recovery reports every loss of acknowledged data (a corruption in its report)",
        "README: Recovery; kv.recovery.RecoveryReport",
        "check_explained",
        "silent_truncation_at_corruption",
        "corruption",
    ),
    Promise(
        "torn_tail_takes_only_the_last",
        "a torn tail drops only an unacknowledged write (or, after damage, the last one)",
        "README: Recovery",
        "check_explained",
        "corruption_as_torn_tail",
        "corruption",
    ),
    Promise(
        "no_false_alarm",
        "a crash alone is never reported as corruption",
        "README: Recovery",
        "check_recovered",
        "torn_tail_as_corruption",
        "truncation",
    ),
    Promise(
        "loss_counted",
        "the recovery report counts the records it lost",
        "kv.recovery.Corruption (records_lost)",
        "check_loss_counted",
        "report_no_records_lost",
        "corruption",
    ),
    Promise(
        "quarantine_kept",
        "repair moves damaged data into quarantine/ and reports where",
        "kv.opening docstring; README: Recovery",
        "check_quarantine",
        "quarantine_reported_not_kept",
        "corruption",
    ),
    Promise(
        "verify_reads_everything",
        "`verify()` reads every file and every live record back and checks every checksum",
        "kv.store.Store.verify docstring",
        "check_verify",
        "verify_checks_frames_only",
        "comprehensive",
    ),
    Promise(
        "verify_reports_damage",
        "`verify()` reports every file that holds damage, and no healthy one",
        "kv.store.Store.verify docstring; kv.store.VerifyReport",
        "check_verify",
        "verify_drops_old_damage",
        "comprehensive",
    ),
    Promise(
        "locked",
        "a second writer gets StoreLocked",
        "kv.open docstring",
        "check_locked",
        "no_lock",
        "perfect",
    ),
    Promise(
        "loss_reported_across_a_crash",
        "a loss is reported at least once, even when the open that found it crashes before returning",
        "kv.opening docstring (journals)",
        "check_explained",
        "settle_journals_inside_open",
        EXHAUSTIVE,
    ),
    Promise(
        "typed_errors",
        "every error the store raises is a KvError (IoError after a failed write or sync)",
        "README: Errors; kv.errors",
        "check_error",
        "untyped_error_on_failed_sync",
        "filesystem",
    ),
    Promise(
        "lost_file_reported",
        "a segment or compacted file the file system loses (its directory entry gone) is reported, never lost silently",
        "kv.opening (the CLEAN marker names the newest segment; compaction always leaves a compacted file)",
        "check_explained",
        "clean_marker_not_moved_at_roll",
        "corruption",
        # At 600 operations corruption caught it only through the silent loss of the
        # first segment after a compacted file (fixed since); longer seeds roll often
        # enough to lose a newest segment (seed 40).
        2000,
    ),
    Promise(
        "marker_durable_at_every_open",
        "every open records the log durable to its end (the CLEAN marker, synced), even when the marker it "
        "read says so already: damage to a frame acknowledged before an open is corruption, never a torn tail",
        "kv.opening (rules 2 and 3)",
        "check_recovered",
        "marker_trusted_from_page_cache",
        SCRIPTED,
    ),
    Promise(
        "salvage_names_older_values",
        "salvage never returns a value older than one it lost for the same key without naming the key "
        "(`Corruption.keys_at_risk`: lost newer value, older value kept)",
        "README: Recovery; kv.salvage docstring",
        "check_salvage_names_older_values",
        "salvage_returns_stale_value",
        "salvage",
    ),
    Promise(
        "crash_loses_a_suffix",
        "in `batch` and `none` mode a crash loses at most the unsynced writes, a suffix of them, and the store opens",
        "kv.store docstring (durability modes; one unsynced frame at most)",
        "check_liveness",
        "none_mode_full_frames_unsynced",
        "bulk",
        300,
    ),
    Promise(
        "pop_durable",
        "an acknowledged pop is durable when it returns, in every mode: a crash never hands its element out again",
        "kv.store.Store.rpop docstring",
        "check_recovered",
        "pop_acknowledged_before_sync",
        "queue",
    ),
    Promise(
        "push_atomic",
        "a push of several elements lands whole or not at all after a crash",
        "kv.store.Store.rpush docstring",
        "check_recovered",
        "push_split_across_frames",
        "queue",
    ),
    Promise(
        "list_order_kept",
        "a list keeps its order through compaction, the hint file and recovery",
        "kv.keydir docstring",
        "check_read",
        "compaction_reorders_lists",
        "queue",
    ),
    Promise(
        "getdel_durable",
        "in `always` mode a getdel's delete is durable when it returns: the key never comes back",
        "kv.store.Store.getdel docstring",
        "check_recovered",
        "getdel_before_sync",
        "conditional",
    ),
    Promise(
        "conditional_set_answers",
        "a conditional set (only_if_missing / only_if_present) writes exactly when its condition holds, and says so",
        "kv.store.Store.set docstring",
        "check_answer",
        "conditional_set_checks_the_cache",
        "conditional",
    ),
    Promise(
        "expired_stays_gone",
        "an expired key is absent to every read, and no older value of it comes back after a compaction or a crash",
        "kv.store.Store.set docstring (ttl, expire_at); kv.store.Store.compact",
        "check_recovered",
        "compaction_lets_an_older_value_win",
        "expiry",
    ),
    Promise(
        "expiry_survives_recovery",
        "a key's expiry is durable with its write: after a reopen or a crash it expires when it did before",
        "kv.store expiry notes (expire, persist: durable per the mode like any write)",
        "check_recovered",
        "expiry_lost_on_replay",
        "expiry",
    ),
    Promise(
        "ttl_on_io_now",
        "a TTL counts from io.now() when the call starts, and reads compare expiry with io.now()",
        "kv.store expiry notes; kv.io (now() is the only clock)",
        "check_answer",
        "ttl_from_the_clock_at_open",
        "expiry",
    ),
    Promise(
        "batch_atomic",
        "a batch (`with store.batch() as b:` sets, deletes, expires) commits as one frame: after a crash "
        "all of its writes exist or none",
        "kv.batch docstring (rules 3, 4); kv.store.Store.batch docstring",
        "check_recovered",
        "batch_split_across_frames",
        "conditional",
    ),
    Promise(
        "scan_ordered",
        "`scan` yields the live pairs with start <= key < stop (and the prefix) in byte order, descending "
        "when reversed, at most `limit`: every such key, none other",
        "kv.store.Store.scan docstring",
        "check_scan",
        "scan_skips_last_key",
        "expiry",
    ),
    Promise(
        "cursor_scan_complete",
        "a cursor scan returns every key present for the whole scan at least once",
        "kv.store.Store.scan_cursor docstring; kv.ordered docstring (cursors)",
        "check_cursor_scan",
        "cursor_skips_the_key_after_a_step",
        "expiry",
    ),
    Promise(
        "read_only_writes_nothing",
        "a read-only open takes no lock and never writes (recovery in memory only), and sees what the "
        "writer's files hold",
        "kv.open docstring (read_only); kv --read-only",
        "check_read_only_open",
        "read_only_recovery_writes",
        "conditional",
    ),
    Promise(
        "server_reply_after_sync",
        "in `always` mode a reply of `kv serve` leaves only after the group commit's sync that covers the "
        "window's writes: a write whose reply a client got survives any crash",
        "io_backends/server.py docstring; kv.group_commit rules 2-3",
        "check_recovered",
        "server_reply_before_sync",
        "server",
    ),
    Promise(
        "server_failed_sync_acknowledges_nothing",
        "if the group commit's sync fails, the store is read-only and every reply of that window is an error",
        "io_backends/server.py docstring; kv.group_commit rule 4",
        "check_failed_window",
        "server_acks_failed_sync",
        "server",
    ),
    Promise(
        "server_reads_wait_for_the_window",
        "every reply of a window, reads too, leaves only after its sync: a read never shows a client data a "
        "crash can take away",
        "io_backends/server.py docstring; kv.group_commit rule 1",
        "check_recovered",
        "server_read_skips_the_window",
        "server",
    ),
    Promise(
        "server_refused_command_writes_nothing",
        "a command of `kv serve` that the user's ACL refuses (a command it may not run, a key outside its "
        "patterns: NOPERM; inside MULTI, EXEC's EXECABORT) changes nothing: no later read or recovery shows it",
        "kv.acl docstring; kv.session (`_admit` before any command runs); kv.transaction rule 1",
        "check_recovered",
        "server_runs_refused_command",
        "server",
    ),
    Promise(
        "server_acl_checks_every_key",
        "`kv serve` refuses a command the user may not run, and one whose keys do not all match the user's "
        "key patterns (every key of an MSET, not only its first)",
        "kv.acl docstring (a command whose keys do not all match one of the user's patterns is refused)",
        "check_refused",
        "server_acl_checks_first_key_only",
        "server",
    ),
    Promise(
        "server_exec_atomic",
        "the writes of one MULTI/EXEC survive a crash all or none, when they are plain writes (no list "
        "command, which commits its own frame) that fit in one frame: EXEC runs in one tick inside "
        "`Store.holding()` (no bound commits between its writes), so its writes reach the disk in one frame, "
        "and recovery applies a frame whole",
        "kv.transaction docstring (crash atomicity); kv.group_commit rule 2; kv.store `Store.holding`",
        "check_recovered",
        "server_exec_commits_each_command",
        "server",
    ),
    Promise(
        "server_exec_one_frame_past_the_target",
        "an EXEC stays one frame when its writes take the buffered store's pending frame past "
        "FRAME_PAYLOAD_SIZE_TARGET_BYTES, or past `batch` mode's operations bound: no bound commits "
        "between them (they apply at the end, before the reply)",
        "kv.store `Store.holding`; kv.transaction docstring (crash atomicity)",
        "check_recovered",
        "server_exec_not_held",
        "server",
    ),
)
