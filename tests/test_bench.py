"""`callsim bench`'s end-to-end child: one JSON line a run, with what the bench prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.toml"


def test_bench_run_reports_calls_time_and_memory(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "simulator._bench_run", str(QUICKSTART), str(tmp_path), "1h"],
                          capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert result["calls"] == summary["total"]["calls"] > 0
    assert result["duration"] == "1h" and result["scenario"] == summary["scenario"]
    assert 0 < result["wall_s"] and result["calls_per_s"] == result["calls"] / result["wall_s"]
    assert result["peak_rss_mb"] > 20 and result["workers_peak_rss_mb"] >= 0
