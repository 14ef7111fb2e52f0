"""How `callsim sweep` scales: one process's in-memory runs, then a 2-worker LocalCluster.

    python benchmarks/sweep_scaling.py [SCENARIO] [--runs N] [--workers W] [--duration D] [--full]

1. Per-run summary speed: `sweep.summarise` of SCENARIO (default: the bundled
   enterprise_month.toml, a month, ~1.1 M calls) in this process, best of 3, in calls/s
   (target >= 500,000 per worker process).
2. Scaling: N runs (default 100: seeds derived from the scenario's) one after another in
   this process, then the same N runs with `run_many` on a LocalCluster of W worker processes
   (default 2), in alternating rounds (`--rounds`, default 4: a shared machine's load changes
   by the minute), the cluster's start-up timed apart.  Prints the throughput of each
   (runs/s), the speed-up (target >= 1.8 on 2 cores), the efficiency (speed-up / W), and
   Dask's cost per run: W x the cluster's wall time less the one process's, per run, and the
   round trip of an empty task.
3. The sweep of 200 seeds x 5 settings of the scenario (1,000 runs): its wall time
   extrapolated from 2 (per-run cost x runs / W + start-up), and for a 16-worker cluster
   (the same per-run cost and overhead, 16 workers).  `--full` runs it for real on the
   LocalCluster too (~8 minutes on 2 cores for the month).

`--duration` shortens the scenario (`7d`) for a quick look.  Figures from a shared machine
are noisy; docs/benchmarks.md holds the method and the figures measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a source checkout without installing

from simulator._malloc import keep_freed_memory  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402
from simulator.sweep import (  # noqa: E402
    derive_seeds,
    grid,
    open_cluster,
    parse_set,
    read_scenario_text,
    run_many,
    run_specs,
    summarise,
)
from simulator.units import parse_duration_ms  # noqa: E402

CLUSTER_WORKERS = 16
SETTINGS = "orgs.fabrikam.credits.recharge_amount=500.00,1000.00,1500.00,2000.00,3000.00"


def empty_task() -> None:
    """Dask's own cost: a task that does nothing."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", type=Path, default=REPO / "scenarios" / "enterprise_month.toml")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="alternating sequential/cluster rounds")
    parser.add_argument("--duration", default=None, help="shorten the scenario to this (e.g. 7d)")
    parser.add_argument("--full", action="store_true", help="also run the 1,000-run sweep for real")
    args = parser.parse_args()
    keep_freed_memory()  # as run_task does in every worker: the one-process runs get the same malloc
    path = args.scenario
    if args.duration:  # a shortened copy: the workers read the file
        text = read_scenario_text(path).replace(_duration_line(path), f'duration = "{args.duration}"')
        text = text.split("[[expect]]")[0]
        path = Path(f"/tmp/sweep_scaling_{args.duration}.toml")
        path.write_text(text)
    scenario = load_scenario(path)

    # 1. one process, in memory
    times, calls = [], 0
    for _ in range(3):
        started = time.perf_counter()
        calls = summarise(scenario).total.calls
        times.append(time.perf_counter() - started)
    best = min(times)
    print(f"per-run summary, one process: {calls:,} calls in {best:.2f} s (best of 3; median "
          f"{statistics.median(times):.2f} s) = {calls / best:,.0f} calls/s (target >= 500,000)")

    # 2. N runs: sequential, then on the cluster, in alternating rounds (a shared machine's
    # load changes by the minute: both sides of each round see about the same)
    specs = run_specs([()], derive_seeds(scenario.seed, args.runs))
    rounds = [specs[i::args.rounds] for i in range(args.rounds)]
    sequential = parallel = sequential_cpu = parallel_cpu = 0.0
    started = time.perf_counter()
    with open_cluster(workers=args.workers) as cluster:
        startup = time.perf_counter() - started
        run_many(path, specs[:args.workers], cluster=cluster)  # each worker imports and loads once
        for chunk in rounds:
            started, cpu = time.perf_counter(), time.process_time()
            for spec in chunk:
                summarise(dataclasses.replace(scenario, seed=spec.seed))
            sequential += time.perf_counter() - started
            sequential_cpu += time.process_time() - cpu
            cpu_before = cluster.client.run(time.process_time)
            started = time.perf_counter()
            result = run_many(path, chunk, cluster=cluster)
            parallel += time.perf_counter() - started
            cpu_after = cluster.client.run(time.process_time)
            parallel_cpu += sum(cpu_after[w] - cpu_before[w] for w in cpu_after)
            assert len(result.runs) == len(chunk) and not result.failures
        client = cluster.client
        started = time.perf_counter()
        client.gather(client.map(lambda i: empty_task(), range(1000), pure=False))
        empty = (time.perf_counter() - started) / 1000
    speedup = sequential / parallel
    overhead = (parallel * args.workers - sequential) / len(specs)
    print(f"{len(specs)} runs one after another in one process: {sequential:.1f} s = "
          f"{len(specs) / sequential:.2f} runs/s ({sequential / len(specs):.2f} s a run)")
    print(f"{len(specs)} runs on {args.workers} Dask workers: {parallel:.1f} s = {len(specs) / parallel:.2f} runs/s "
          f"(+ {startup:.1f} s to start the cluster); speed-up {speedup:.2f}x (target >= 1.8), "
          f"efficiency {speedup / args.workers:.0%} ({args.rounds} alternating rounds)")
    print(f"Dask cost per run: {overhead * 1e3:.0f} ms of worker time beyond the run in one process "
          f"(workers x wall on the cluster - wall in one process, per run); empty-task round trip "
          f"{empty * 1e3:.2f} ms")
    print(f"CPU seconds a run: {sequential_cpu / len(specs):.3f} s in one process, {parallel_cpu / len(specs):.3f} s "
          f"in a Dask worker (its whole process: the run, the task, the worker's own loop); wall / CPU in one "
          f"process {sequential / max(sequential_cpu, 1e-9):.2f} (above 1: the machine is shared)")

    # 3. 200 seeds x 5 settings
    runs = 200 * 5
    per_run = sequential / len(specs) + max(overhead, 0.0)
    here = runs * per_run / args.workers + startup
    cluster16 = runs * per_run / CLUSTER_WORKERS + startup
    print(f"200 seeds x 5 settings ({runs:,} runs): ~{here / 60:.1f} min on {args.workers} workers, "
          f"~{cluster16 / 60:.1f} min on a {CLUSTER_WORKERS}-worker cluster (per run {per_run:.2f} s, "
          f"start-up {startup:.1f} s)")
    if args.full:
        points = grid([parse_set(SETTINGS)])
        full_specs = run_specs(points, derive_seeds(scenario.seed, 200))
        started = time.perf_counter()
        result = run_many(path, full_specs, workers=args.workers, progress=sys.stderr.isatty())
        wall = time.perf_counter() - started
        print(f"200 seeds x 5 settings measured: {len(result.runs):,} runs in {wall / 60:.1f} min on "
              f"{result.workers} workers (cluster start-up included)")


def _duration_line(path: Path) -> str:
    for line in read_scenario_text(path).splitlines():
        if line.startswith("duration"):
            parse_duration_ms(line.split("=", 1)[1].strip().strip('"'))
            return line
    raise SystemExit(f"{path}: no duration line")


if __name__ == "__main__":
    main()
