"""Ctrl-C during `callsim run`: the run stops at a window boundary and nothing is lost."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import polars as pl
import trio

from simulator.run import RunOptions, run_scenario
from simulator.scenario import load_scenario

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.toml"


async def test_sigint_ends_the_run_with_complete_files(tmp_path: Path, autojump_clock) -> None:
    scenario = load_scenario(QUICKSTART)
    reached = trio.Event()

    def observe(report) -> None:
        if report.t1_ms >= 6 * 3_600_000:  # six simulated hours in
            reached.set()

    options = RunOptions(out_dir=tmp_path, speed=600, observers=[observe])
    async with trio.open_nursery() as nursery:
        async def interrupt() -> None:
            await reached.wait()
            signal.raise_signal(signal.SIGINT)

        nursery.start_soon(interrupt)
        result = await run_scenario(scenario, options)

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert result.complete is False and summary["complete"] is False
    cdrs = pl.read_csv(tmp_path / "cdrs.csv", infer_schema_length=0)
    # every call that arrived has exactly one CDR, none ends after the stop instant
    assert len(cdrs) == summary["total"]["calls"] == cdrs["call_id"].n_unique()
    stop = summary["simulated_until"]
    assert "2026-11-01T06:" <= stop < "2026-11-02T00:00:00.000Z"
    assert cdrs["end_time"].max() <= stop
    still_connected = cdrs.filter(pl.col("end_reason") == "simulation_end")
    assert len(still_connected) >= 1 and (still_connected["end_time"] == stop).all()
    # events.jsonl is whole lines of JSON
    for line in (tmp_path / "events.jsonl").read_text().splitlines():
        json.loads(line)
