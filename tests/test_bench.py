"""`callsim bench`'s end-to-end child: one JSON line a run, with what the bench prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from simulator._cdr_workers import CDR_WORKER_CALLS

ENTERPRISE = Path(__file__).resolve().parents[1] / "scenarios" / "enterprise_month.toml"


def test_bench_run_reports_calls_time_and_memory(tmp_path: Path) -> None:
    """A week of the month scenario: big enough for the file workers, whose memory is reported."""
    done = subprocess.run([sys.executable, "-m", "simulator._bench_run", str(ENTERPRISE), str(tmp_path), "7d"],
                          capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert result["calls"] == summary["total"]["calls"] > CDR_WORKER_CALLS
    assert result["duration"] == "7d" and result["scenario"] == summary["scenario"]
    assert 0 < result["wall_s"] and result["calls_per_s"] == result["calls"] / result["wall_s"]
    assert result["peak_rss_mb"] > 20 and result["workers_peak_rss_mb"] > 20
    rows = (tmp_path / "cdrs.csv").read_bytes().count(b"\n") - 1
    assert rows == result["calls"]
