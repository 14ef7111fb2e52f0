"""A real Prometheus scrapes a `callsim run --speed` over loopback (issue 4, item 2).

Prometheus (Debian package `prometheus`, or the binary named by
$CALLSIM_PROMETHEUS) runs with a temporary config and data directory and
scrapes every second.  The run serves its metrics while it lasts and, with
`--metrics-linger`, for a while after, so the last scrape sees the final
counters.  The test then asks Prometheus's HTTP API for
`callsim_calls_ended_total` and compares it with the run's summary.json, and
runs every panel query of docs/grafana/callsim.json: each must succeed and
return data.

No port is handed over unchecked.  Prometheus binds port 0 and is read from
its log ("Listening on").  The run's metrics port must be in Prometheus's
config before the run starts (a target added later waits for Prometheus's 5 s
discovery tick, then its 5 s scrape reload tick: up to 10 s of a 12 s run),
so it is picked free just before: when another process takes it meanwhile,
callsim refuses to start ("cannot listen on", exit 2) and both are started
again on another port, at most START_TRIES times.

This is the one test that runs in wall time (about 20 s).  Without a
Prometheus binary it is skipped, unless $CI is set: in CI it must run.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from tests.scenarios import REPO, org, scenario_toml, staff

DASHBOARD = REPO / "docs" / "grafana" / "callsim.json"
DOC = REPO / "docs" / "prometheus.md"
SPEED = 600
SIM_SECONDS = 2 * 3600  # 12 s of wall time at SPEED
RATE_INTERVAL = "1m"  # stands in for Grafana's $__rate_interval: the whole run fits in it
ORG_ALL = ".*"  # the dashboard's $org variable with "All" selected (its allValue)

SCENARIO = scenario_toml(
    name="prometheus_integration",
    seed=5,
    start="2026-11-30T23:00:00Z",
    duration="2h",
    plans={"domestic_minutes": {"default": 5}},
    toll_free_tariffs=[{"prefix": "44", "per_minute": "0.06", "increment": "6/6"}],
    orgs=[
        org("contoso", toll_free_numbers=["+18005550100"], credits={"initial": "3.00",
            "auto_recharge": True, "recharge_below": "1.00", "recharge_amount": "3.00",
            "card_expires": "2027-06-30"}, users=[staff(20, group="sales")]),
        org("fabrikam", toll_free_numbers=["+18005550200"], credits={"initial": "2.00",
            "auto_recharge": True, "recharge_below": "1.00", "recharge_amount": "3.00",
            "card_expires": "2026-10-31", "retry_after": "20m"}, users=[staff(10, group="ops")]),
        org("tailspin", users=[staff(5, ["phone_system", "domestic_calling_plan"], group="dev")]),
    ],
    traffic=[
        {"org": "contoso", "type": "domestic", "calls_per_hour": 600, "holding_mean": "3m"},
        {"org": "contoso", "type": "toll_free", "calls_per_hour": 120, "holding_mean": "2m",
            "destinations": ["44"]},
        {"org": "fabrikam", "type": "toll_free", "calls_per_hour": 240, "holding_mean": "3m",
            "destinations": ["44"]},
        {"org": "fabrikam", "type": "domestic", "calls_per_hour": 240, "holding_mean": "3m"},
        {"org": "tailspin", "type": "domestic", "calls_per_hour": 120, "holding_mean": "4m"},
    ],
)


def _prometheus_binary() -> str:
    found = os.environ.get("CALLSIM_PROMETHEUS") or shutil.which("prometheus")
    if found:
        return found
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("CI is set but no prometheus binary was found: install the Debian package "
                    "`prometheus` (see .ci/run) or set CALLSIM_PROMETHEUS to its path")
    pytest.skip("no prometheus binary (apt-get install prometheus, or set CALLSIM_PROMETHEUS); "
                "under CI=true this test fails instead")


def _port_free_now() -> int:
    """A port nobody listens on at this instant: a guess, which _start checks by starting."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusAPI:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, timeout: float = 5) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=timeout) as response:
            return response.read()

    def query(self, expr: str) -> list[dict]:
        """Instant query; raises AssertionError on any error Prometheus reports."""
        url = "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            body = json.loads(self.get(url))
        except urllib.error.HTTPError as err:  # 400/422: bad expression, with a JSON error body
            raise AssertionError(f"{expr}: HTTP {err.code}: {err.read().decode()}") from None
        assert body["status"] == "success", (expr, body)
        assert not body.get("warnings"), (expr, body["warnings"])
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def _wait_until(what: str, check, timeout: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = check()
        except (OSError, ValueError):
            got = None
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


START_TRIES = 5  # each start fails only when another process took the metrics port first
# Prometheus's log line once its web server listens: `msg="Listening on" address=127.0.0.1:41321`.
_PROMETHEUS_LISTENING = re.compile(r'msg="Listening on" address=\S*:(\d+)')
_METRICS_SERVED = "callsim: metrics at "
_METRICS_PORT_TAKEN = re.compile(r"callsim: --metrics-port \d+: cannot listen on")


def _found_in(log: Path, pattern: re.Pattern[str]) -> re.Match[str] | None:
    return pattern.search(log.read_text(errors="replace"))


def _start_prometheus(binary: str, work: Path, metrics_port: int,
                      running: list[subprocess.Popen]) -> tuple[subprocess.Popen, PrometheusAPI]:
    """Prometheus on a port of the system's choosing, scraping 127.0.0.1:`metrics_port` every
    second, once it is ready."""
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: callsim\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n")
    log = work / "prometheus.log"
    with log.open("wb") as out:
        prometheus = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
             "--web.listen-address=127.0.0.1:0", "--log.level=info"],
            stdout=out, stderr=subprocess.STDOUT)
    running.append(prometheus)
    port = _wait_until(f"Prometheus to say where it listens (in {log})",
                       lambda: (found := _found_in(log, _PROMETHEUS_LISTENING)) and int(found[1]),
                       20, prometheus)
    api = PrometheusAPI(port)
    _wait_until("Prometheus to be ready", lambda: api.get("/-/ready"), 20, prometheus)
    return prometheus, api


def _start_callsim(command: list[str], log: Path, running: list[subprocess.Popen]) -> subprocess.Popen | None:
    """callsim once it serves its metrics; None when its metrics port was taken meanwhile."""
    with log.open("wb") as out:
        callsim = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    running.append(callsim)
    deadline = time.monotonic() + 30
    while _METRICS_SERVED not in (said := log.read_text(errors="replace")):
        if callsim.poll() is not None:
            if callsim.returncode == 2 and _METRICS_PORT_TAKEN.search(said):
                return None
            raise AssertionError(f"callsim exited with {callsim.returncode}:\n{said}")
        if time.monotonic() > deadline:
            raise AssertionError(f"callsim did not serve its metrics within 30 s:\n{said}")
        time.sleep(0.05)
    return callsim


def _start(binary: str, scenario: Path, tmp_path: Path,
           running: list[subprocess.Popen]) -> tuple[PrometheusAPI, subprocess.Popen, Path]:
    """Prometheus, then the run it scrapes (its API, the run, the run's --out), on a metrics port
    checked by starting on it: at most START_TRIES times, each after another process took the
    port picked.  Every process started is appended to `running`, for the caller to stop."""
    for attempt in range(START_TRIES):
        work = tmp_path / f"start-{attempt}"
        work.mkdir()
        metrics_port = _port_free_now()
        prometheus, api = _start_prometheus(binary, work, metrics_port, running)
        out = work / "out"
        callsim = _start_callsim(
            [sys.executable, "-m", "simulator.cli", "run", str(scenario), "--out", str(out),
             "--speed", str(SPEED), "--quiet", "--metrics-port", str(metrics_port),
             "--metrics-max-orgs", "2", "--metrics-linger", "30"],
            work / "callsim.log", running)
        if callsim is not None:
            return api, callsim, out
        _stop(prometheus)
    raise AssertionError(f"another process took the metrics port before callsim bound it, {START_TRIES} times")


def _dashboard_queries() -> list[tuple[str, str]]:
    """Every panel query of the Grafana dashboard, then every `promql` block of the docs."""
    dashboard = json.loads(DASHBOARD.read_text())
    # The SIP row needs `callsim serve --sip`, not this run: its names are checked against
    # SipMetrics in test_metrics_dashboard.py.
    queries = [(panel["title"], target["expr"])
               for panel in dashboard["panels"] for target in panel.get("targets", [])
               if "callsim_sip_" not in target["expr"]]
    assert len(queries) >= 6, "the dashboard lost panel queries"
    docs = re.findall(r"```promql\n(.*?)```", DOC.read_text(), flags=re.S)
    assert docs, "docs/prometheus.md has no promql blocks"
    queries += [(f"{DOC.name} block {i + 1}", expr.strip()) for i, expr in enumerate(docs)]
    return [(title, expr.replace("$__rate_interval", RATE_INTERVAL).replace("$org", ORG_ALL))
            for title, expr in queries]


def test_real_prometheus_scrapes_a_speed_run(tmp_path: Path) -> None:
    binary = _prometheus_binary()
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(SCENARIO)
    running: list[subprocess.Popen] = []
    try:
        api, callsim, out = _start(binary, scenario, tmp_path, running)

        # while the run lasts: Prometheus sees simulated time moving
        mid = _wait_until(
            "a scrape in the middle of the run",
            lambda: (v := api.value("callsim_simulated_time_seconds")) and 0 < v < SIM_SECONDS and v,
            20, callsim)
        assert not (out / "summary.json").exists(), "the run should still be going"

        # the run ends; the linger keeps /metrics up for the final scrape
        summary = _wait_until(
            "summary.json", lambda: json.loads((out / "summary.json").read_text()), 30, callsim)
        total = summary["total"]
        _wait_until("Prometheus to scrape the final counters",
                    lambda: api.value("sum(callsim_calls_ended_total)") == total["calls"], 10, callsim)
        assert api.value("callsim_simulated_time_seconds") == SIM_SECONDS > mid

        ended = api.query("callsim_calls_ended_total")
        by_reason: dict[str, float] = defaultdict(float)
        by_type: dict[str, float] = defaultdict(float)
        for series in ended:
            labels, value = series["metric"], float(series["value"][1])
            assert labels["job"] == "callsim"
            by_reason[labels["end_reason"]] += value
            by_type[labels["call_type"]] += value
        assert by_reason == {k: float(v) for k, v in total["calls_by_end_reason"].items()}
        assert by_type == {k: float(v) for k, v in total["calls_by_call_type"].items()}
        assert total["calls_by_end_reason"]["dropped_balance_exhausted"] > 0
        assert total["recharges_succeeded"] and total["recharges_failed"]
        assert api.value("sum(callsim_credits_charged_total)") == pytest.approx(
            float(total["credits_charged"]), abs=1e-6)
        assert api.value('sum(callsim_recharges_total{outcome="failed"})') == total["recharges_failed"]
        assert api.value("callsim_event_lag_seconds_count") > 0  # a --speed run measures lag

        failures = []
        for title, expr in _dashboard_queries():
            try:
                result = api.query(expr)
            except AssertionError as err:
                failures.append(f"{title}: {err}")
                continue
            values = [float(s["value"][1]) for s in result]
            if not values or not any(math.isfinite(v) for v in values):
                failures.append(f"{title}: {expr} returned no data ({result})")
        assert not failures, "\n".join(failures)

        _stop(callsim, signal.SIGINT)  # ends the linger early: still a clean, complete run
        assert callsim.returncode == 0
    finally:
        for proc in reversed(running):
            _stop(proc)
