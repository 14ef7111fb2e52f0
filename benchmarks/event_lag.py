"""Event lag of `callsim run --speed N`: how late the switch applies events after they fall due.

Usage: python benchmarks/event_lag.py SCENARIO [--speed 1] [--min-active 100000]

Runs the scenario at the given speed with the metrics server and the progress
observer attached, as `callsim run --speed N --metrics-port ...` would, and
records every switch window's lag (`WindowReport.lag_s`: from the window's
first instant falling due to the rating core returning, an upper bound on the
lag of every event in the window) and rating time.  Windows before
`--min-active` calls are connected (the ramp-up) are left out, so the figures
are for the load asked for.  Prints one summary line per quantity and a JSON
line at the end.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.metrics import MetricsServer  # noqa: E402
from simulator.progress import Progress  # noqa: E402
from simulator.run import RunOptions, run_scenario  # noqa: E402
from simulator.scenario import load_scenario  # noqa: E402
from simulator.switch import WindowReport  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--min-active", type=int, default=100_000)
    parser.add_argument("--cdr-buffer-rows", type=int, default=None,
                        help="what-if: run with CdrWriter(buffer_rows=N) instead of its default")
    parser.add_argument("--dump", type=Path, default=None,
                        help="write every window (sim ms, active, lag s, rating s, arrivals) as CSV")
    args = parser.parse_args()

    scenario = load_scenario(args.scenario)
    if args.cdr_buffer_rows is not None:
        import functools

        import simulator.run

        simulator.run.CdrWriter = functools.partial(  # type: ignore[misc]
            simulator.run.CdrWriter, buffer_rows=args.cdr_buffer_rows)
    rows: list[tuple[int, int, float, float, int]] = []  # window ms, active, lag, rating, arrivals
    progress = Progress(scenario, quiet=True, stream=io.StringIO())
    active = 0

    def record(report: WindowReport) -> None:
        nonlocal active
        active += report.arrivals - len(report.step.cdrs)
        if report.t1_ms > report.t0_ms:
            rows.append((report.t1_ms - report.t0_ms, active, report.lag_s, report.rating_s,
                         report.arrivals))

    with tempfile.TemporaryDirectory() as out, MetricsServer("127.0.0.1", 0) as server:
        options = RunOptions(out_dir=Path(out), speed=args.speed, metrics=server,
                             observers=[progress.observe, record])
        started = time.perf_counter()
        result = trio.run(run_scenario, scenario, options)
        wall = time.perf_counter() - started

    data = np.array(rows)
    if args.dump:
        np.savetxt(args.dump, data, delimiter=",", fmt=["%d", "%d", "%.6f", "%.6f", "%d"],
                   header="window_ms,active,lag_s,rating_s,arrivals", comments="")
    steady = data[data[:, 1] >= args.min_active]
    report = {"scenario": scenario.name, "speed": args.speed, "wall_s": round(wall, 2),
              "calls": result.summary["total"]["calls"], "windows": len(data),
              "steady_windows": len(steady), "min_active": args.min_active}
    if len(steady) == 0:
        print(f"never reached {args.min_active:,} connected calls (max {int(data[:, 1].max()):,})")
        print(json.dumps(report))
        return 1
    steady_sim_s = steady[:, 0].sum() / 1000
    print(f"{scenario.name} at --speed {args.speed:g}: {len(steady):,} of {len(data):,} windows "
          f"with >= {args.min_active:,} connected calls (mean {steady[:, 1].mean():,.0f}, "
          f"max {int(steady[:, 1].max()):,}), {steady[:, 4].sum() / steady_sim_s:,.0f} arrivals "
          f"per simulated second, {steady[:, 0].mean():.1f} simulated ms per window")
    for name, column in (("event lag", 2), ("rating time per window", 3)):
        values = steady[:, column] * 1000
        q = {p: float(np.percentile(values, p)) for p in (50, 90, 99, 99.9)}
        print(f"  {name:<24} p50 {q[50]:6.2f} ms   p90 {q[90]:6.2f} ms   p99 {q[99]:6.2f} ms   "
              f"p99.9 {q[99.9]:6.2f} ms   max {values.max():7.2f} ms")
        report[name.replace(" ", "_") + "_ms"] = {f"p{p:g}": round(v, 3) for p, v in q.items()} | {
            "max": round(float(values.max()), 3)}
    stalls = steady[:, 2] > 0.25
    print(f"  windows with lag > 250 ms: {int(stalls.sum())}")
    report["windows_lag_over_250ms"] = int(stalls.sum())
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
