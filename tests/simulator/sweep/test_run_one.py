"""`sweep.run_one`: a run's summary in memory equals what `callsim run` writes for the same
seed and overrides (summary.json, and what cdrs.csv and events.jsonl imply)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from simulator import cli
from simulator.sweep import OrgRunSummary, RunSpec, derive_seeds, parse_set, run_one, summarise
from simulator.scenario import parse_scenario
from tests.scenarios import ENTERPRISE

from .files import TEXT, summary_from_files


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
    for seed in derive_seeds(11, 2):
        summary = run_one(TEXT, "scenario.toml", RunSpec(point, seed))
        expected = _run_files(tmp_path, TEXT, seed, *sets)
        assert summary.seed == seed and summary.point == point
        assert _without_days({**summary.orgs, "total": summary.total}) == expected


def test_the_test_scenario_moves_every_figure() -> None:
    """Else the comparison above would pass on zeros."""
    summary = run_one(TEXT, "scenario.toml", RunSpec((), 11))
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
    assert _without_days({**summary.orgs, "total": summary.total}) == expected


def _without_days(orgs: dict[str, OrgRunSummary]) -> dict[str, OrgRunSummary]:
    return {org: replace(s, credits_spent_by_day_micros=()) for org, s in orgs.items()}


def test_the_spend_of_each_day_is_what_a_run_ending_that_day_spends(tmp_path: Path) -> None:
    """A run ending at a day's end charges exactly the boundaries before it (SPEC §3), and a
    longer run starts with the same calls: day by day, the spends of a 2-day run are the
    spend of its first day alone and then the rest."""
    two_days = run_one(TEXT, "s.toml", RunSpec((), 11))
    one_day = run_one(TEXT.replace('duration = "2d"', 'duration = "1d"'), "s.toml", RunSpec((), 11))
    for org, summary in {**two_days.orgs, "total": two_days.total}.items():
        first = one_day.total if org == "total" else one_day.orgs[org]
        days = summary.credits_spent_by_day_micros
        assert len(days) == 2 and days[0] == first.credits_spent_micros
        assert sum(days) == summary.credits_spent_micros
    assert two_days.orgs["acme"].credits_spent_by_day_micros[1] > 0
