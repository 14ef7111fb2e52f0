"""`--keep-runs DIR`: a sweep's run also written as `callsim run` writes it, for a closer look.

The files come from `run.run_scenario` itself (the same scenario, point and seed), into
DIR/point-<i>/seed-<seed>/, so `callsim report` and `callsim check` read them as any run's.
The summary of the sweep still comes from the in-memory run: writing costs the whole of
formatting every CDR, and the two agree (tests/simulator/sweep).  The files are formatted in
the worker process itself: a Dask worker may not start the CDR file processes of a big run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ._grid import RunSpec
from ._run_one import load_point


def run_dir(keep_runs: Path, point_index: int, seed: int) -> Path:
    """Where the files of the run of grid point `point_index` with `seed` go."""
    return keep_runs / f"point-{point_index}" / f"seed-{seed}"


def write_run(scenario_text: str, source_name: str, spec: RunSpec, out_dir: Path) -> None:
    """Write the run's cdrs.csv, cdrs.msgpack, events.jsonl and summary.json into `out_dir`."""
    import trio

    from .._stop_signals import unwake_at_exit
    from ..run import RunOptions, run_scenario

    scenario = replace(load_point(scenario_text, source_name, spec.point), seed=spec.seed)
    options = RunOptions(out_dir=out_dir, handle_sigint=False, cdr_worker_processes=False)
    trio.run(unwake_at_exit, run_scenario, scenario, options)
