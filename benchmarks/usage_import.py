"""`callsim import` of a large synthetic PSTN usage export: wall time and peak memory.

Usage: python benchmarks/usage_import.py [--rows 1000000] [--report]

Writes a 4-week office-week export of about `--rows` rows (tests/simulator/usage/synthetic.py,
seed 16) into a temporary directory, then times `callsim import` on it in a child process
(`/usr/bin/time -f "%e %M"` when present, else the wall time alone) and prints one JSON line:
rows, bytes, seconds, peak KB.  The issue's target is a million rows in under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.simulator.usage.synthetic import office_week, write_export  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--report", action="store_true", help="write the fit report too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callsim-import-") as folder:
        export = Path(folder) / "PSTN.calls.bench.csv"
        week = office_week(1.0)
        rows = write_export(export, week * (args.rows / (4 * 168)) / week.mean(), weeks=4)
        command = [sys.executable, "-m", "simulator", "import", str(export), "--out",
                   str(Path(folder) / "bench.toml"), "--force", *([] if args.report else ["--no-report"])]
        timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
        if timer:
            command = [timer, "-f", "%e %M", *command]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        seconds = time.perf_counter() - started
        peak_kb = None
        if timer:
            seconds_text, peak_text = done.stderr.strip().splitlines()[-1].split()
            seconds, peak_kb = float(seconds_text), int(peak_text)
        print(json.dumps({"rows": rows, "bytes": export.stat().st_size, "seconds": seconds, "peak_kb": peak_kb,
                          "report": args.report}))


if __name__ == "__main__":
    main()
