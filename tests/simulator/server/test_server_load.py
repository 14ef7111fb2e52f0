"""Load clients against a real `callsim serve`: a headless Locust smoke run and a tiny loadgen run.

Wall-clock tests (no MockClock: Locust is a separate process), each bounded
to a few seconds of load.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from simulator.server import LoadOptions, measure
from .support import Client, start_server
from tests.scenarios import REPO

ROOT = REPO
DEMO = (ROOT / "scenarios" / "server_demo.toml").read_text()


@pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is not installed")
async def test_locust_headless_smoke_run_sees_successful_setups(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, scenario=DEMO)
    env = {**os.environ, "CALLSIM_HOLDING_SCALE": "0.005", "CALLSIM_ORG": "demo"}
    command = [sys.executable, "-m", "locust", "-f", str(ROOT / "load_tests" / "locustfile.py"),
               "--headless", "-u", "5", "-r", "5", "-t", "3s", "--only-summary",
               "--host", f"tcp://127.0.0.1:{server.port}", "--csv", str(tmp_path / "locust")]
    with trio.fail_after(60):
        done = await trio.run_process(command, env=env, cwd=tmp_path, capture_stdout=True,
                                      capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(open(tmp_path / "locust_stats.csv"))}
    setups = [r for (kind, _), r in rows.items() if kind == "setup"]
    assert sum(int(r["Request Count"]) for r in setups) >= 5
    assert sum(int(r["Failure Count"]) for r in setups) == 0
    assert int(rows[("hello", "hello")]["Request Count"]) == 5
    assert int(rows[("hello", "hello")]["Failure Count"]) == 0
    result = await server.stop()
    assert result.summary["orgs"]["demo"]["calls"] >= 5


async def test_loadgen_measures_a_small_load(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, scenario=DEMO)
    opt = LoadOptions(port=server.port, concurrent=50, rate=500, duration_s=1.0, warmup_s=0.3,
                      connections=2)
    with trio.fail_after(30):
        figures = await measure(opt)
    assert figures["errors"] == {} and figures["rejected"] == 0
    assert figures["setups_per_s"] > 250
    assert figures["latency_ms_p50"] is not None
    assert figures["ended"] == figures["answered"]  # every call hung up and its CDR returned
    await server.stop()
    assert server.exchange.active_calls == 0


async def _serve_process(tmp_path: Path, *args: str) -> tuple[trio.Process, int]:
    """`callsim serve` as a child process on a free port; returns it once it listens."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "simulator.cli", "serve", str(ROOT / "scenarios" / "server_demo.toml"),
         "--port", "0", "--out", str(tmp_path / "out"), *args],
        stderr=subprocess.PIPE, cwd=ROOT)
    text = b""
    with trio.fail_after(30):
        while b"serving server_demo on" not in text:
            chunk = await proc.stderr.receive_some(4096)
            assert chunk, text.decode()
            text += chunk
    port = int(re.search(rb"on 127\.0\.0\.1:(\d+)", text).group(1))
    return proc, port


async def test_cli_serve_stops_cleanly_on_sigterm(tmp_path):
    proc, port = await _serve_process(tmp_path)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    client = Client(stream)
    await client.send({"op": "hello", "org": "demo", "token": "demo-token"},
                      {"op": "setup", "ref": 1, "user": "agent-0001", "type": "outbound", "to": "+12125550100"})
    assert [(await client.recv())["op"] for _ in range(2)] == ["welcome", "answered"]
    proc.send_signal(signal.SIGTERM)
    cut = await client.recv()
    assert cut["op"] == "disconnected" and cut["end_reason"] == "simulation_end"
    with trio.fail_after(30):
        assert await proc.wait() == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["complete"] is False
    assert summary["orgs"]["demo"]["calls_by_end_reason"]["simulation_end"] == 1


async def test_cli_serve_port_in_use_is_a_usage_error(tmp_path):
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    done = await trio.run_process(
        [sys.executable, "-m", "simulator.cli", "serve", str(ROOT / "scenarios" / "server_demo.toml"),
         "--port", str(port), "--out", str(tmp_path / "out")], capture_stderr=True, check=False, cwd=ROOT)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr.decode()
    await listener.aclose()
