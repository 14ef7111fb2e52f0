"""How long `callsim run` takes to stop after SIGTERM or Ctrl-C in the middle of a busy run.

    python benchmarks/stop_latency.py [SCENARIO] [--tries N] [--after S]

Starts `python -m simulator run SCENARIO` (default: benchmarks/calls_1e7_per_hour.toml, an
hour at 10^7 calls/h, ~500 k calls connected at once) N times (default 10), sends SIGTERM
and SIGINT in turn S wall seconds (default 1.5) after its first CDR is on disk, and prints
the time from the signal to the process's exit for each try, then min / median / max.  The
target is under a second (README: Stopping a run).  Every try must exit 130.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _first_cdr_written(cdrs: Path) -> bool:
    try:
        with open(cdrs, "rb") as stream:
            return stream.read(1 << 12).count(b"\n") > 1
    except FileNotFoundError:
        return False


def stop_once(scenario: Path, sig: signal.Signals, after_s: float) -> float:
    """Seconds from `sig` to the exit of one run signalled `after_s` after its first CDR."""
    with tempfile.TemporaryDirectory(prefix="callsim-stop-") as out:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "simulator", "run", str(scenario), "--out",
                                 out, "--quiet"], env=env, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        while not _first_cdr_written(Path(out) / "cdrs.csv"):
            if proc.poll() is not None:
                raise SystemExit(f"the run ended before its first CDR: {proc.stderr.read()}")
            time.sleep(0.005)
        time.sleep(after_s)
        if proc.poll() is not None:
            raise SystemExit("the run ended before the signal: give it a longer scenario")
        sent = time.perf_counter()
        os.killpg(proc.pid, sig)
        proc.wait()
        took = time.perf_counter() - sent
        stderr = proc.stderr.read()
        if proc.returncode != 130:
            raise SystemExit(f"exit {proc.returncode}, expected 130: {stderr}")
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", nargs="?", type=Path,
                        default=REPO / "benchmarks" / "calls_1e7_per_hour.toml")
    parser.add_argument("--tries", type=int, default=10)
    parser.add_argument("--after", type=float, default=1.5, metavar="S")
    args = parser.parse_args()
    took = []
    for i in range(args.tries):
        sig = (signal.SIGTERM, signal.SIGINT)[i % 2]
        took.append(stop_once(args.scenario, sig, args.after))
        print(f"{sig.name}: {took[-1]:.3f} s", flush=True)
    print(f"min {min(took):.3f} s, median {statistics.median(took):.3f} s, max {max(took):.3f} s, "
          f"{sum(t < 1 for t in took)} of {len(took)} under 1 s")


if __name__ == "__main__":
    main()
