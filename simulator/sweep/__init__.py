"""`callsim sweep`: a scenario run for many seeds over a grid of settings, in memory, on Dask.

General layout:

- `_overrides`: `Override` and `parse_set` (`--set KEY=V1,V2,...`), applied to the parsed TOML
  by dotted path before the loader checks it (`OverrideEdit`, which also names the `--set`
  behind a problem the loader finds).
- `_grid`: the grid of points (the product of every `--set`), the seeds derived from the
  scenario's seed, and `RunSpec` (one point, one seed).
- `_summary`: `RunSummary`, one run's figures, accumulated from the rating core's steps;
  `_pools` finds the instant each pool hits 0.
- `_run_one`: `run_one`, one run in memory: what a worker runs; `_keep` writes a run's files
  too (`--keep-runs`).
- `_dask`: `run_many`, the runs on a Dask LocalCluster or a running cluster (or in this
  process), with `_progress`'s bar; `open_cluster` keeps one for several calls.
- `_stats`: per grid point, the distributions over seeds (`point_stats`); `_files` writes
  sweep.csv and sweep.json, `_html` sweep.html, `_write` all three.

Nothing here writes a CDR unless asked to keep the runs' files.
"""

from ._dask import (
    STALL_TIMEOUT_S,
    SYNC,
    Cluster,
    ClusterError,
    RunFailure,
    SweepResult,
    open_cluster,
    read_scenario_text,
    run_many,
)
from ._grid import MAX_SEED, Point, RunSpec, derive_seeds, grid, run_specs
from ._overrides import Override, OverrideEdit, apply_overrides, check_paths, parse_set
from ._run_one import load_point, run_one, summarise
from ._stats import TOTAL, Distribution, OrgStats, PointStats, point_stats
from ._summary import ORG_FIELDS, OrgRunSummary, RunSummary
from ._write import Outcome, write_outputs

__all__ = [
    "STALL_TIMEOUT_S", "SYNC", "TOTAL", "Cluster", "ClusterError", "open_cluster", "Distribution", "OrgStats", "Outcome", "PointStats",
    "point_stats", "write_outputs", "RunFailure", "SweepResult", "read_scenario_text", "run_many",
    "MAX_SEED", "ORG_FIELDS", "OrgRunSummary", "Override", "OverrideEdit", "Point", "RunSpec", "RunSummary",
    "apply_overrides", "check_paths", "derive_seeds", "grid", "load_point", "parse_set", "run_one",
    "run_specs", "summarise",
]
