"""Per-minute rates estimated from the calls credits paid in full, and the round trip of
quickstart's $0.02 tariff."""

from __future__ import annotations

from pathlib import Path

import trio

from simulator.run import RunOptions, run_scenario
from simulator.scenario import load_scenario
from simulator.usage import EXPORT_HEADER, import_usage, scenario_text

REPO = Path(__file__).parents[3]


def _row(n: int, number: str, seconds: int, charge: str, capability: str) -> str:
    return (f"u{n},c{n},,US,o1,alice@contoso.com,Alice,,user_out,Subscriber,Domestic,United States,{number},"
            f"2026-11-02T09:{n:02d}:00Z,,{seconds},0.00,{charge},USD,{capability}\r\n")


def test_calls_a_pool_paid_in_part_do_not_lower_the_rate(tmp_path: Path) -> None:
    rows = [_row(i, "+12125550100", 120, "0.04", "MCOPSTNPP") for i in range(5)]
    rows.append(_row(9, "+12125550100", 7200, "1.10", "MCOPSTN1"))  # 120 min, 55 of them paid
    rows += [_row(20 + i, "+14155550100", 60, "0.01", "MCOPSTN1") for i in range(3)]  # only pool overflows
    path = tmp_path / "PSTN.calls.x.csv"
    path.write_bytes(EXPORT_HEADER + "".join(rows).encode())
    model = import_usage([path])
    tariffs = {t.prefix: t for t in model.tariffs}
    assert tariffs["1212"].per_minute_micro == 20_000  # not 1.30 / 130 min = 0.01
    assert (tariffs["1212"].estimate.paid_calls, tariffs["1212"].estimate.paid_minutes) == (5, 10)
    assert not tariffs["1212"].estimate.pool_shared
    assert tariffs["1415"].per_minute_micro == 10_000 and tariffs["1415"].estimate.pool_shared
    text = scenario_text(model)
    assert "(from 5 paid calls, 10 min)" in text
    assert "(from 3 paid calls, 3 min; none paid by credits alone" in text


def test_quickstarts_tariff_comes_back_within_a_cents_rounding(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trio.run(run_scenario, load_scenario(REPO / "scenarios" / "quickstart.toml"),
             RunOptions(out_dir=out, handle_sigint=False, teams_export=True))
    model = import_usage(sorted(out.glob("PSTN.calls.*.csv")))
    estimate = next(t for t in model.tariffs if t.prefix == "1212").estimate
    # Each call's Charge is rounded to the cent: the sum is off by half a cent per call at most.
    tolerance = 5_000 * estimate.paid_calls / estimate.paid_minutes
    assert abs(estimate.per_minute_micro - 20_000) <= tolerance
    assert estimate.paid_calls >= 20 and not estimate.pool_shared
