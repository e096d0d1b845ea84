"""The README's example, verbatim: a user's tiny log tested with `scenarios.strategies`.

`tests/test_strategies.py` checks that the README shows exactly this code and that the
property catches broken variants of the log.
"""

from hypothesis import given
from hypothesis import strategies as st

from io_backends.sim import SimIo
from scenarios.strategies import crash_after, crash_points, fault_plans, sim_ios
from tests.readme_log import append, create, recover

records_over_a_sector = st.lists(st.binary(min_size=512, max_size=1024))  # so a write can tear


@given(sim_ios(faults=fault_plans(kinds=("crash_survival", "torn_write"))), records_over_a_sector, crash_points())
def test_log_keeps_every_acknowledged_record(io: SimIo, records: list[bytes], crash_point: int) -> None:
    acknowledged = offset = 0
    with crash_after(io, crash_point):  # power loss after `crash_point` I/Os, or at the end
        log = create(io, "/log")
        for record in records:
            offset, acknowledged = append(io, log, offset, record), acknowledged + 1
    recovered = recover(io, io.open("/log", "w").result())
    assert recovered == records[: len(recovered)] and len(recovered) >= acknowledged
