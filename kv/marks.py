"""Coverage marks: named probes at the store's rare paths, counted per run.

Placeholder for the branch that adds the marks themselves: `MARKS` maps each mark's name
to what reaching it means, and `sim_runner` lists the marks no seed of a run reached.
"""

MARKS: dict[str, str] = {}
