"""`sim_runner`: the simulator's command line (placeholder until the harness lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("sim_runner: the scenario harness is not built yet", file=sys.stderr)
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
