"""One end-to-end run in a fresh process, for `callsim bench` (peak RSS is per process).

Usage: python -m simulator._bench_run SCENARIO OUT_DIR [DURATION]
Prints one JSON line with calls, wall seconds of the run and peak RSS.  Starts up as
`callsim run` does: scenario, then the run's modules and the CDR file workers, then the event loop; the
bench times the whole process from outside too.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy, as `callsim run` (see cli.main)

from ._malloc import keep_freed_memory  # noqa: E402
from ._cli_common import exit_now  # noqa: E402
from .scenario import load_scenario  # noqa: E402
from .units import parse_duration_ms  # noqa: E402


def _peak_rss_mb() -> float:
    """VmHWM of this process (ru_maxrss would include the parent's peak from before exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    keep_freed_memory()
    scenario = load_scenario(sys.argv[1])
    label = "as written"
    if len(sys.argv) > 3:
        end_ms = parse_duration_ms(sys.argv[3])
        setup = dataclasses.replace(scenario.setup, end_ms=end_ms)
        scenario = dataclasses.replace(scenario, setup=setup)
        label = sys.argv[3]
    from ._stop_signals import unwake_at_exit
    from .run import RunOptions, run_scenario, start_cdr_workers

    gc.freeze()  # as `callsim run`: the scenario out of the collector's full passes
    workers = start_cdr_workers(scenario, fork=True)  # before the event loop: forked, as in `callsim run`
    import trio

    started = time.perf_counter()
    options = RunOptions(out_dir=Path(sys.argv[2]), handle_sigint=False, cdr_workers=workers)
    result = trio.run(unwake_at_exit, run_scenario, scenario, options)
    wall = time.perf_counter() - started
    calls = result.summary["total"]["calls"]
    rss = _peak_rss_mb()
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child
    print(json.dumps({"scenario": scenario.name, "duration": label, "calls": calls, "wall_s": wall,
                      "calls_per_s": calls / wall, "peak_rss_mb": rss, "workers_peak_rss_mb": workers_rss}))


if __name__ == "__main__":
    main()
    exit_now(0)  # as `callsim run` ends
