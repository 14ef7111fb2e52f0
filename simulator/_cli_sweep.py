"""`callsim sweep`: the command line of `simulator.sweep` (docs/sweep.md).

Everything that can be refused is refused before a worker starts: a malformed `--set`, a
path that leads nowhere, a value the loader rejects at any grid point, an --out directory in
use, and a sweep whose workers would not fit in memory (estimated per run, as `callsim run`
estimates, plus a Dask worker's own share, times the workers).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._cli_common import (
    EXIT_CHECK_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_force_argument,
    load_checked,
    path,
    seconds,
    whole_number,
)

MAX_SEEDS = 1_000_000
MAX_WORKERS = 4_096
#: A Dask worker process's own memory besides its run's estimate (which counts the interpreter
#: and numpy already): a LocalCluster worker idles at 77 MB RSS with distributed imported and
#: held 92 MB after a month of enterprise_month (Python 3.11, distributed 2026.8); rounded up.
DASK_WORKER_BYTES = 100 << 20
#: The scenario's seed: a sweep's seeds derive from it (`--seeds`), so a run's own seed replaces it.
SEED_PATH = "simulation.seed"

_EXITS = (
    (EXIT_OK, "every run finished; sweep.csv, sweep.json and sweep.html are written"),
    (EXIT_CHECK_FAILED, "a run failed or timed out (each is named, with its seed and setting); the "
                        "files hold the runs that finished"),
    (EXIT_USAGE, "bad input: the scenario, a --set path or value, an option, the --out directory, "
                 "a sweep too big for the memory, an unreachable scheduler"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C, SIGTERM): the runs not finished are cancelled; the files hold "
                       "those that finished, sweep.json says \"complete\": false"),
)


def add_parser(command) -> None:
    """`sweep` on the `callsim` parser (`command` is cli.build_parser's helper)."""
    sweep = command("sweep", "run a scenario for many seeds over a grid of settings, on Dask (docs/sweep.md)",
                    ["callsim sweep scenarios/enterprise_month.toml --seeds 20 --out out/sweep",
                     "callsim sweep my.toml --seeds 50 --set orgs.acme.credits.initial=50,99 --out g",
                     "callsim sweep my.toml --seeds 1000 --scheduler tcp://10.0.0.5:8786 --out out/b"],
                    _EXITS)
    sweep.add_argument("scenario", type=Path, metavar="SCENARIO", help="the scenario file (.toml)")
    sweep.add_argument("--seeds", type=whole_number(1, MAX_SEEDS), required=True, metavar="N",
                       help="runs per setting, with seeds derived from the scenario's seed")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2,...", dest="overrides",
                       help="values of a scenario key by dotted path (orgs.contoso.credits.initial, "
                            "traffic[2].calls_per_hour); repeatable: the grid is every combination")
    sweep.add_argument("--out", type=path, required=True, metavar="DIR",
                       help="output directory: sweep.csv, sweep.json, sweep.html")
    sweep.add_argument("--scheduler", default=None, metavar="ADDR",
                       help="a running Dask scheduler, tcp://HOST:8786 (default: a local cluster of "
                            "one worker process per core; \"sync\": every run in this process, no Dask)")
    sweep.add_argument("--workers", type=whole_number(1, MAX_WORKERS), default=None, metavar="N",
                       help="local cluster: worker processes (default: one per core); with "
                            "--scheduler: wait for N workers before starting")
    sweep.add_argument("--keep-runs", type=path, default=None, metavar="DIR",
                       help="also write every run's files (cdrs.csv, events.jsonl, summary.json) "
                            "in DIR/point-I/seed-S/, as callsim run would (slower)")
    sweep.add_argument("--run-timeout", type=seconds, default=None, metavar="S",
                       help="give up the runs left when none finishes for S seconds (default: 900)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar and no table: only errors")
    add_force_argument(sweep)


def main(args: argparse.Namespace) -> int:
    """Run `callsim sweep`; user mistakes raise UsageError or ScenarioError (cli reports them)."""
    from .scenario import estimate
    from .sweep import SYNC, ClusterError, derive_seeds, grid, parse_set, read_scenario_text

    try:
        sets = [parse_set(argument) for argument in args.overrides]
        points = grid(sets)
    except ValueError as err:
        raise UsageError(str(err)) from None
    for values in sets:
        if values[0].path == SEED_PATH:
            raise UsageError(f"--set {SEED_PATH}: a sweep runs --seeds N seeds derived from the scenario's "
                             f"seed; use --seeds (and the file's {SEED_PATH} to draw other seeds)")
    scenario = load_checked(args.scenario, args.force)
    text, source = read_scenario_text(args.scenario), str(args.scenario)
    loaded = _load_points(text, source, points)
    seeds = derive_seeds(scenario.seed, args.seeds)
    local = args.scheduler in (None, SYNC)
    workers = 1 if args.scheduler == SYNC else args.workers or (os.cpu_count() or 1) if local else args.workers
    run_bytes = max((estimate.estimate(s.workload).memory_bytes for s in loaded if s.workload),
                    default=estimate.BASE_BYTES) + DASK_WORKER_BYTES
    if local and not estimate.forced(args.force):
        _check_memory(run_bytes, min(workers, len(points) * len(seeds)))
    from .outputs import claim_for_command

    with claim_for_command(args.out, UsageError, sweep=True):
        try:
            return _sweep(args, scenario, points, seeds, workers, run_bytes)
        except ClusterError as err:
            raise UsageError(str(err)) from None


def _load_points(text: str, source: str, points: list) -> list:
    """Every grid point's scenario, checked; ScenarioError with every point's problems, each
    once (a bad path is the same problem at every point that has it)."""
    from .scenario import ScenarioError
    from .sweep import load_point

    loaded, problems = [], []
    for point in points:
        try:
            loaded.append(load_point(text, source, point))
        except ScenarioError as err:
            problems += [p for p in err.problems if p not in problems]
    if problems:
        raise ScenarioError(problems)
    return loaded


def _check_memory(run_bytes: float, workers: int) -> None:
    from .scenario import estimate

    available = estimate.available_memory()
    if available is None or run_bytes * workers <= available * estimate.MEMORY_SHARE:
        return
    fits = int(available * estimate.MEMORY_SHARE // run_bytes)
    raise UsageError(f"the sweep needs ~{_gib(run_bytes)} per worker x {workers} workers = "
                     f"~{_gib(run_bytes * workers)}, more than {estimate.MEMORY_SHARE:.0%} of the "
                     f"{_gib(available)} available; use --workers {max(fits, 1)} or fewer "
                     f"({'' if fits else 'the scenario alone does not fit; '}--force to run anyway)")


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def _sweep(args, scenario, points, seeds, workers, run_bytes) -> int:
    from .sweep import STALL_TIMEOUT_S, run_many, run_specs, write_outputs

    specs = run_specs(points, seeds)
    progress = not args.quiet and sys.stderr.isatty()
    result = run_many(args.scenario, specs, scheduler=args.scheduler, workers=workers, progress=progress,
                      keep_runs=args.keep_runs, run_bytes=run_bytes,
                      stall_timeout_s=args.run_timeout or STALL_TIMEOUT_S)
    outcome = write_outputs(args.out, scenario, args.scenario, seeds, points, result)
    for failure in result.failures:
        print(f"callsim: {failure}", file=sys.stderr)
    if not args.quiet:
        print(outcome.table)
    print(f"callsim: {outcome.line}; files in {args.out}/", file=sys.stderr)
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_CHECK_FAILED if result.failures else EXIT_OK
