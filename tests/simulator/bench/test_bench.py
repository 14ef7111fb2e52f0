"""`callsim bench`'s end-to-end child: one JSON line a run, with what the bench prints."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from simulator.run import CDR_WORKER_CALLS
from tests.scenarios import BENCHMARKS, ENTERPRISE



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




def stress_orgs_toml(*args, **kwargs) -> str:
    """benchmarks/stress_orgs.py's scenario text, loaded from its file (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("stress_orgs", BENCHMARKS / "stress_orgs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stress_orgs_toml(*args, **kwargs)


def run_child(scenario: Path, out: Path, duration: str) -> tuple[dict, dict]:
    done = subprocess.run([sys.executable, "-m", "simulator._bench_run", str(scenario), str(out), duration],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), json.loads((out / "summary.json").read_text())


def test_stress_recharge_recharges_every_few_seconds(tmp_path: Path) -> None:
    """The stress row's busy org: its first 30 minutes are ~10,000 calls and ~190 recharges."""
    result, summary = run_child(BENCHMARKS / "stress_recharge.toml", tmp_path, "30m")
    org = summary["orgs"]["busy"]
    assert result["calls"] > 8_000
    assert org["recharges_succeeded"] > 150 and org["recharges_failed"] == 0


def test_stress_orgs_mix_dead_exhausted_and_healthy_orgs(tmp_path: Path) -> None:
    """stress_orgs.py's orgs take turns: healthy ones recharge, dead ones fail their attempt and
    block calls, exhausted ones (no credits) block calls once their pool is dry."""
    scenario = tmp_path / "six.toml"
    scenario.write_text(stress_orgs_toml(6, 2, 2000, "2h", "six", "six.toml"))
    result, summary = run_child(scenario, tmp_path / "out", "2h")
    orgs = summary["orgs"]
    assert result["calls"] == summary["total"]["calls"] > 6 * 2 * 2000 * 0.9
    for healthy in ("org0", "org3"):
        assert orgs[healthy]["recharges_succeeded"] > 5 and orgs[healthy]["recharges_failed"] == 0
    for dead in ("org1", "org4"):
        assert orgs[dead]["recharges_failed"] == 1 and orgs[dead]["calls_by_end_reason"]["blocked_no_balance"] > 1000
    for exhausted in ("org2", "org5"):
        assert orgs[exhausted]["recharges_succeeded"] == 0
        assert orgs[exhausted]["calls_by_end_reason"]["blocked_no_balance"] > 1000


def test_stress_orgs_stuck_mix_steps_stuck_orgs_and_retries_expired_cards(tmp_path: Path) -> None:
    """`--mix stuck`: stuck orgs recharge at every instant and get about as many recharges as
    calls; retrying ones fail an attempt at each instant a second or more after the last and
    block their credit-paid calls once the pool is dry."""
    scenario = tmp_path / "stuck.toml"
    scenario.write_text(stress_orgs_toml(4, 1, 200, "1h", "stuck", "stuck.toml", mix="stuck"))
    result, summary = run_child(scenario, tmp_path / "out", "1h")
    orgs = summary["orgs"]
    assert result["calls"] == summary["total"]["calls"] > 4 * 200 * 0.8
    for stuck in ("org0", "org2"):
        assert orgs[stuck]["recharges_succeeded"] > orgs[stuck]["calls"] // 2 and orgs[stuck]["recharges_failed"] == 0
    for retrying in ("org1", "org3"):
        assert orgs[retrying]["recharges_succeeded"] == 0 and orgs[retrying]["recharges_failed"] > 100
        assert orgs[retrying]["calls_by_end_reason"]["blocked_no_balance"] > 50


def test_bundled_stress_mixed_orgs_is_what_the_script_writes() -> None:
    """benchmarks/stress_mixed_orgs.toml is generated: its header says how, and that must hold."""
    bundled = (BENCHMARKS / "stress_mixed_orgs.toml").read_text()
    args = "stress_mixed_orgs.toml --orgs 30 --users 5 --calls-per-hour 2000 --duration 16h --name stress_mixed_orgs"
    assert bundled == stress_orgs_toml(30, 5, 2000, "16h", "stress_mixed_orgs", args)


def test_stress_recharge_every_instant_recharges_at_almost_every_charged_instant(tmp_path: Path) -> None:
    """The every-instant stress row: a recharge below one instant's cost, so the balance trails
    the trigger and an instant with a charge recharges (its first 2 minutes: ~34,000 calls,
    ~17,000 recharges); none fails and no call is refused."""
    result, summary = run_child(BENCHMARKS / "stress_recharge_every_instant.toml", tmp_path, "2m")
    org = summary["orgs"]["acme"]
    assert result["calls"] > 30_000
    assert org["recharges_succeeded"] > result["calls"] // 3 and org["recharges_failed"] == 0
    assert org["calls_by_end_reason"].get("blocked_no_balance", 0) == 0


def test_stress_recharge_below_increment_refuses_about_every_other_charge(tmp_path: Path) -> None:
    """The below-one-increment stress row: each recharge is half a charge, so the org is stuck
    below its trigger (its first minute: ~16,700 calls, ~6,900 of them blocked, ~13,600
    recharges, none failing)."""
    result, summary = run_child(BENCHMARKS / "stress_recharge_below_increment.toml", tmp_path, "1m")
    org = summary["orgs"]["acme"]
    ends = org["calls_by_end_reason"]
    refused = ends.get("blocked_no_balance", 0) + ends.get("dropped_balance_exhausted", 0)
    assert result["calls"] > 15_000 and refused > result["calls"] // 3
    assert org["recharges_succeeded"] > result["calls"] // 2 and org["recharges_failed"] == 0


def test_stress_recharge_one_increment_stays_below_its_trigger(tmp_path: Path) -> None:
    """The one-increment stress row: each recharge pays one charge, so the balance never
    reaches the trigger (its first 4 minutes: ~67,000 calls, ~107,000 recharges, ~11,000
    calls refused, none failing)."""
    result, summary = run_child(BENCHMARKS / "stress_recharge_one_increment.toml", tmp_path, "4m")
    org = summary["orgs"]["acme"]
    ends = org["calls_by_end_reason"]
    refused = ends.get("blocked_no_balance", 0) + ends.get("dropped_balance_exhausted", 0)
    assert result["calls"] > 60_000 and refused > result["calls"] // 10
    assert org["recharges_succeeded"] > result["calls"] and org["recharges_failed"] == 0


def test_stress_per_second_stuck_pays_seconds_one_by_one(tmp_path: Path) -> None:
    """The per-second stress row: a recharge below one second's cost (its first 5 minutes:
    ~8,300 calls, ~7,100 refused, ~45,000 recharges, ~207,000 seconds paid)."""
    result, summary = run_child(BENCHMARKS / "stress_per_second_stuck.toml", tmp_path, "5m")
    org = summary["orgs"]["acme"]
    ends = org["calls_by_end_reason"]
    refused = ends.get("blocked_no_balance", 0) + ends.get("dropped_balance_exhausted", 0)
    assert result["calls"] > 7_000 and refused > result["calls"] // 2
    assert org["recharges_succeeded"] > 4 * result["calls"] and org["recharges_failed"] == 0


def test_stress_lot_expiries_expires_lots_with_a_rest_among_charges(tmp_path: Path) -> None:
    """The lot-expiry stress row: a year on, thousands of lots expire with a rest (some
    partly spent first), each followed by a recharge, while calls are charged."""
    result, summary = run_child(BENCHMARKS / "stress_lot_expiries.toml", tmp_path, "400d")
    total = summary["total"]
    assert result["calls"] > 150_000 and total["recharges_succeeded"] > 5_000
    expired = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()
               if '"credits_expired"' in line]
    assert len(expired) > 2_000 and len({e["amount"] for e in expired}) > 3  # whole lots and rests
    assert total["credits_expired"] == f"{sum(int(e['amount'].replace('.', '')) for e in expired) / 1e6:.6f}"


def test_stress_per_second_busy_recharges_every_few_hundred_milliseconds(tmp_path: Path) -> None:
    """The busy per-second stress row: thousands of calls connected, each second paid from
    credits once the pool is dry, a recharge every fraction of a second, none refused
    (its first 20 minutes: ~33,000 calls, ~3,000 recharges)."""
    result, summary = run_child(BENCHMARKS / "stress_per_second_busy.toml", tmp_path, "20m")
    org = summary["orgs"]["busy"]
    assert result["calls"] > 30_000 and org["recharges_succeeded"] > 2_000 and org["recharges_failed"] == 0
    assert {k for k, n in org["calls_by_end_reason"].items() if n} <= {"hangup", "simulation_end"}


def test_stress_long_calls_recharges_with_tens_of_thousands_of_calls_connected(tmp_path: Path) -> None:
    """The long-call stress row: half-hour calls pile up (~37,000 connected at 40 minutes), 6/6
    billing paid from credits, a recharge every fraction of a second, none refused."""
    result, summary = run_child(BENCHMARKS / "stress_long_calls.toml", tmp_path, "40m")
    org = summary["orgs"]["busy"]
    assert result["calls"] > 60_000 and org["recharges_succeeded"] > 5_000 and org["recharges_failed"] == 0
    assert {k for k, n in org["calls_by_end_reason"].items() if n} <= {"hangup", "simulation_end"}
    assert org["calls_by_end_reason"]["simulation_end"] > 25_000  # connected at the end


def test_the_sweep_row_rates_the_scenario_in_memory() -> None:
    from simulator.bench._bench import bench_sweep_run
    from simulator.scenario import load_scenario
    from simulator.sweep import summarise
    from tests.scenarios import QUICKSTART

    row = bench_sweep_run(QUICKSTART, repeats=1)
    assert row["calls"] == summarise(load_scenario(QUICKSTART)).total.calls > 0
    assert row["calls_per_s"] == row["calls"] / row["wall_s"]
