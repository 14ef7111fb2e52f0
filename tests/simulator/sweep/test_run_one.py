"""`sweep.run_one`: a run's summary in memory equals what `callsim run` writes for the same
seed and overrides (summary.json, and what cdrs.csv and events.jsonl imply)."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import cli
from simulator.sweep import RunSpec, derive_seeds, parse_set, run_one, summarise
from simulator.scenario import parse_scenario
from tests.scenarios import ENTERPRISE

from .files import TEXT, summary_from_files

SEEDS = derive_seeds(17, 2)  # runs in which every figure moves (checked below)


def _run_files(tmp_path: Path, text: str, seed: int, *sets: str) -> dict:
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(text)
    out = tmp_path / f"run-{seed}"
    options = [item for s in sets for item in ("--set", s)]
    code = cli.main(["run", str(scenario), "--out", str(out), "--seed", str(seed), "--quiet", *options])
    assert code == cli.EXIT_OK
    return summary_from_files(out)


@pytest.mark.parametrize("sets", [(), ("orgs.acme.credits.recharge_amount=3.00", "traffic[1].calls_per_hour=90")])
def test_run_one_equals_what_callsim_run_writes(tmp_path: Path, sets: tuple[str, ...]) -> None:
    point = tuple(o for s in sets for o in parse_set(s))
    for seed in SEEDS:
        summary = run_one(TEXT, "scenario.toml", RunSpec(point, seed))
        expected = _run_files(tmp_path, TEXT, seed, *sets)
        assert summary.seed == seed and summary.point == point
        assert {**summary.orgs, "total": summary.total} == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_the_test_scenario_moves_every_figure(seed: int) -> None:
    """Else the comparison above would pass on zeros."""
    summary = run_one(TEXT, "scenario.toml", RunSpec((), seed))
    acme, globex = summary.orgs["acme"], summary.orgs["globex"]
    assert acme.cut_dropped and acme.cut_blocked and globex.cut_blocked
    assert acme.balance_exhausted and globex.balance_exhausted
    assert acme.recharges_succeeded and acme.recharges_failed
    assert acme.pool_exhausted_ms is not None and globex.pool_exhausted_ms is not None
    assert acme.lowest_balance_micros < 2_000_000
    assert summary.total.peak_concurrent_calls > max(acme.peak_concurrent_calls, globex.peak_concurrent_calls) > 1


def test_enterprise_month_first_days_equal_callsim_run(tmp_path: Path) -> None:
    """The bundled month's first 6 days: its dial-out pool (per-minute tariffs) runs dry inside
    an hour window, among four pools, 30/6 and 6/6 increments, toll-free traffic, recharges."""
    text = ENTERPRISE.read_text().replace('duration = "30d"', 'duration = "6d"')
    text = text[: text.index("[[expect]]")]  # its checks are about the whole month
    expected = _run_files(tmp_path, text, 2026)
    summary = summarise(parse_scenario(text, "enterprise.toml"))
    assert summary.total.pool_exhausted_ms is not None
    assert {**summary.orgs, "total": summary.total} == expected
