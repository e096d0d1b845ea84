import sys, time, collections
from scenarios.registry import SCENARIOS
from scenarios.runner import record_seed
from scenarios.workload import pause_us
from kv.limits import *
lo, hi = int(sys.argv[1]), int(sys.argv[2])
total = time.process_time()
for seed in range(lo, hi):
    t = time.process_time()
    r, schedule = record_seed(SCENARIOS["edges"], seed)
    ops = [s.operation for s in schedule.steps]
    c = collections.Counter()
    run = best = 0
    for kind, ch in ops:
        if kind in ("set", "delete", "set_many"):
            run += 1; best = max(best, run)
        else:
            run = 0
        if kind == "pause" and pause_us((kind, ch)) > BATCH_INTERVAL_MS_MAX * 1000: c["long_pause"] += 1
        if kind == "set_many" and len(ch) > 100: c["many_keys"] += 1
        if kind == "set_many" and sum(len(k)+len(v or b"")+28 for k, v in ch.items()) == FRAME_PAYLOAD_SIZE_MAX_BYTES: c["full_frame"] += 1
        for k, v in ch.items():
            if v == b"" : c["empty"] += 1
            if v is not None and len(v) == VALUE_SIZE_MAX_BYTES: c["max_value"] += 1
            if v is not None and abs(len(v) + 28 + len(k) - FRAME_PAYLOAD_SIZE_TARGET_BYTES) <= 1: c["target_frame"] += 1
            if len(k) == KEY_SIZE_MAX_BYTES: c["max_key"] += 1
            if k == b"": c["empty_key"] += 1
    print(seed, r.durability, "PASS" if r.passed else "FAIL " + r.violation[:300], f"crashes={r.crashes} longest_write_run={best}", dict(c), f"{time.process_time()-t:.1f}s", flush=True)
print("total cpu", time.process_time() - total)
