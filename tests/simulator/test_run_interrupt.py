"""Ctrl-C and SIGTERM during `callsim run`: the run stops at a window boundary and nothing is lost.

Once, repeatedly, at any point after start-up: exit status 130, one line on stderr, no
traceback, and every file complete up to the stop instant (summary.json `"complete": false`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import polars as pl
import pytest
import trio

from simulator.run import RunOptions, run_scenario
from simulator.scenario import load_scenario
from tests.scenarios import QUICKSTART, REPO, scenario_toml, staff



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


# --------------------------------------------------------------------------- a real `callsim run`
#
# Signals go to the whole process group, as a terminal's Ctrl-C does, so the CDR file workers get
# them too.  Each test waits for a state it can see (the handlers installed, rows in cdrs.csv)
# before signalling, never for a guessed delay, and its assertions hold wherever the signal lands.

BUSY_SCENARIO = scenario_toml(name="busy", seed=5, duration="10h", credits={"initial": "100000000.00"},
                              users=[staff(100)],
                              traffic=[{"type": "domestic", "calls_per_hour": 2000000, "holding_mean": "1m"}])
PROGRESS_LINE = "callsim: simulated "
SIGTERM_CAUGHT = 1 << (signal.SIGTERM - 1)  # its bit in /proc/PID/status SigCgt
WAIT_S = 60  # only a bound on a hung process: every wait ends on what it waits for


def _start(tmp_path: Path, scenario_text: str = BUSY_SCENARIO) -> tuple[subprocess.Popen, Path]:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(scenario_text)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "run", str(scenario), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        start_new_session=True,  # a process group of its own, as a shell job has
    )
    return proc, out


def _until(condition, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert proc.poll() is None, f"callsim ended early: {proc.communicate()}"
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.002)


def _stop_handlers_installed(proc: subprocess.Popen) -> bool:
    """Whether callsim handles SIGTERM (its StopSignals are in place; Python alone does not)."""
    with open(f"/proc/{proc.pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & SIGTERM_CAUGHT)


def _rows_written(out: Path) -> bool:
    try:
        with open(out / "cdrs.csv", "rb") as cdrs:
            return cdrs.read(1 << 16).count(b"\n") > 1
    except FileNotFoundError:
        return False


def _signal(proc: subprocess.Popen, *signals: signal.Signals, every_s: float = 0.0) -> None:
    for sig in signals:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        time.sleep(every_s)


def _keep_signalling(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """`sig` every few ms until callsim has exited: whatever it was doing gets one."""
    while proc.poll() is None:
        _signal(proc, sig, every_s=0.005)


def _assert_stopped_with_complete_files(proc: subprocess.Popen, out: Path) -> dict:
    stdout, stderr = proc.communicate(timeout=WAIT_S)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert proc.returncode == 130, (proc.returncode, stderr)
    said = [line for line in stderr.splitlines() if not line.startswith(PROGRESS_LINE)]
    assert len(said) == 1 and said[0].startswith("callsim: stopped by SIG"), stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    calls = summary["total"]["calls"]
    cdrs = pl.read_csv(out / "cdrs.csv", infer_schema_length=0)
    assert len(cdrs) == calls == cdrs["call_id"].n_unique()
    assert cdrs["end_time"].max() is None or cdrs["end_time"].max() <= summary["simulated_until"]
    with open(out / "cdrs.msgpack", "rb") as stream:
        assert sum(1 for _ in msgpack.Unpacker(stream, timestamp=3)) == calls
    for line in (out / "events.jsonl").read_text().splitlines():
        json.loads(line)
    return summary


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_run_stops_it_with_complete_files(tmp_path: Path, sig: signal.Signals) -> None:
    proc, out = _start(tmp_path)
    _until(lambda: _rows_written(out), proc)
    _signal(proc, sig)
    summary = _assert_stopped_with_complete_files(proc, out)
    assert summary["total"]["calls"] > 0


@needs_proc
def test_signals_a_few_ms_apart_are_one_stop(tmp_path: Path) -> None:
    proc, out = _start(tmp_path)
    _until(lambda: _rows_written(out), proc)
    _signal(proc, signal.SIGINT, signal.SIGINT, signal.SIGTERM, every_s=0.02)
    _keep_signalling(proc, signal.SIGINT)  # through the final flush, the summary and the exit
    _assert_stopped_with_complete_files(proc, out)


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("scenario", ["busy", "quickstart"])  # with and without file workers
def test_signals_from_start_up_on_stop_the_run_before_it_rates(tmp_path: Path, sig, scenario) -> None:
    proc, out = _start(tmp_path, BUSY_SCENARIO if scenario == "busy" else QUICKSTART.read_text())
    _until(lambda: _stop_handlers_installed(proc), proc)
    # From here on: loading, forking the file workers, opening the files, and the exit.
    _keep_signalling(proc, sig)
    summary = _assert_stopped_with_complete_files(proc, out)
    assert summary["simulated_until"] == "2026-11-01T00:00:00.000Z"
    assert summary["total"]["calls"] == 0
