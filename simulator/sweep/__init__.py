"""`callsim sweep`: a scenario run for many seeds over a grid of settings, in memory, on Dask.

General layout:

- `_overrides`: `Override` and `parse_set` (`--set KEY=V1,V2,...`), applied to the parsed TOML
  by dotted path before the loader checks it.
- `_grid`: the grid of points (the product of every `--set`), the seeds derived from the
  scenario's seed, and `RunSpec` (one point, one seed).
- `_summary`: `RunSummary`, one run's figures, accumulated from the rating core's steps;
  `_pools` finds the instant each pool hits 0.
- `_run_one`: `run_one`, one run in memory: what a worker runs.

Nothing here writes a CDR unless asked to keep the runs' files.
"""

from ._grid import MAX_SEED, Point, RunSpec, derive_seeds, grid, run_specs
from ._overrides import Override, apply_overrides, check_paths, parse_set
from ._run_one import load_point, run_one, summarise
from ._summary import ORG_FIELDS, OrgRunSummary, RunSummary

__all__ = [
    "MAX_SEED", "ORG_FIELDS", "OrgRunSummary", "Override", "Point", "RunSpec", "RunSummary",
    "apply_overrides", "check_paths", "derive_seeds", "grid", "load_point", "parse_set", "run_one",
    "run_specs", "summarise",
]
