"""What `--cdr-format teams` costs `callsim run`: end to end, and the formatting alone.

    python benchmarks/teams_export.py [SCENARIO] [--pairs N] [--rows N]

End to end: runs `python -m simulator run SCENARIO --quiet` (default:
scenarios/enterprise_month.toml, ~1.1 M calls) N times (default 5) without and with
`--cdr-format teams`, alternating so that a change in the machine's load hits both, and prints
each run's wall and CPU (user + sys, children included) seconds, then per format the minimum
and median, and the median wall's ratio.  The target: the teams file costs at most ~20 % of
the run's wall time on a quiet 2-core machine (docs/outputs.md).

Formatting: the CSV writer alone, in this process, on N random rows (default 1,000,000) for
cdrs.csv and for the teams export, best of 3, in microseconds a row.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(scenario: Path, out: Path, teams: bool) -> tuple[float, float]:
    """Wall and CPU seconds of one `callsim run` (CPU of the children: the run and its workers)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [sys.executable, "-m", "simulator", "run", str(scenario), "--out", str(out), "--quiet"]
    subprocess.run(command + (["--cdr-format", "teams"] if teams else []), cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def end_to_end(scenario: Path, pairs: int) -> None:
    runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as out:
        for _ in range(pairs):
            for teams in (False, True):
                wall, cpu = _run(scenario, Path(out) / str(teams), teams)
                runs[teams].append((wall, cpu))
                print(f"{'teams  ' if teams else 'callsim'} wall {wall:6.2f} s  cpu {cpu:6.2f} s", flush=True)
    for teams, label in ((False, "callsim"), (True, "teams  ")):
        walls, cpus = [w for w, _ in runs[teams]], [c for _, c in runs[teams]]
        print(f"{label} wall min {min(walls):.2f} median {statistics.median(walls):.2f} s, "
              f"cpu min {min(cpus):.2f} median {statistics.median(cpus):.2f} s")
    ratio = statistics.median(w for w, _ in runs[True]) / statistics.median(w for w, _ in runs[False])
    print(f"median wall with --cdr-format teams: {ratio:.2f} x")


def formatting(rows: int) -> None:
    sys.path.insert(0, str(REPO))
    from tests.simulator.outputs.test_outputs import START, TABLES, random_batch
    from tests.simulator.usage.test_export_writer import export_of

    from simulator.outputs import CdrWriter

    batch = random_batch(rows, seed=1)
    batch.end_reason[:] = 0  # every call connected: a row in both files
    for label, teams in (("cdrs.csv", False), ("teams export", True)):
        best = float("inf")
        for _ in range(3):
            with tempfile.TemporaryDirectory() as out:
                extra = [export_of(Path(out) / "PSTN.calls.bench.csv")] if teams else []
                started = time.perf_counter()
                with CdrWriter(Path(out), TABLES, START, "USD", write_msgpack=False, extra_files=extra) as writer:
                    for first in range(0, rows, 65_536):
                        writer.write(batch.take(slice(first, first + 65_536)))
                best = min(best, time.perf_counter() - started)
        print(f"{label}: {best / rows * 1e6:.2f} us a row (cdrs.csv included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", nargs="?", type=Path, default=REPO / "scenarios" / "enterprise_month.toml")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    formatting(args.rows)
    end_to_end(args.scenario, args.pairs)


if __name__ == "__main__":
    main()
