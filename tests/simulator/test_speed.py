"""`--speed`: rating follows simulated time, never the wall clock (SPEC §4, issue 4 item 1).

Runs at a finite speed use Trio's MockClock with autojump (pytest-trio's
`autojump_clock` fixture), so a day of simulated time at speed 20000 takes no
wall time to wait, yet the switch cuts its windows exactly as it would on a
real clock: every tick, whatever has fallen due.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from simulator.run import RunOptions, run_scenario
from simulator.scenario import load_scenario, parse_scenario
from simulator.switch import MAX_VIRTUAL_WINDOW_MS, TICK_S, WindowReport

from ..scenarios import SCENARIOS
OUTPUTS = ("cdrs.csv", "cdrs.msgpack", "events.jsonl", "summary.json")

# Ten seconds across a month refill, with increments of 1, 3 and 6 s: boundaries, hang-ups, a
# recharge and a drop fall inside the 10 ms ticks of speed 1, not only on their edges.
SHORT = """
[simulation]
name = "short"
seed = 3
start = "2026-11-30T23:59:55Z"
duration = "10s"
currency = "USD"

[plans]
domestic_minutes = { default = 0 }

[[tariff]]
prefix = "1"
country = "US"
zone = "A"
per_minute = "0.60"
increment = "1/1"

[[tariff]]
prefix = "44"
country = "GB"
zone = "B"
per_minute = "1.20"
increment = "3/3"

[[toll_free_tariff]]
prefix = "44"
per_minute = "0.90"
increment = "6/6"

[[orgs]]
id = "contoso"
toll_free_numbers = ["+18005550100"]
[orgs.credits]
initial = "0.40"
auto_recharge = true
recharge_below = "0.30"
recharge_amount = "0.40"
card_expires = "2027-06-30"

[[orgs.users]]
group = "sales"
count = 3
country = "US"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits"]

[[orgs]]
id = "fabrikam"
[orgs.credits]
initial = "0.15"

[[orgs.users]]
id = "bob"
country = "US"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits"]

[[traffic]]
org = "contoso"
type = "domestic"
calls_per_hour = 3600
holding_mean = "4s"

[[traffic]]
org = "contoso"
type = "toll_free"
calls_per_hour = 1440
holding_mean = "7s"
destinations = ["44"]

[[calls]]
at = "1s"
org = "fabrikam"
user = "bob"
type = "outbound"
to = "+442071234567"
duration = "9s"
"""


def _bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in OUTPUTS}


async def _run(scenario, out: Path, speed: float | None, observers=()) -> None:
    result = await run_scenario(
        scenario, RunOptions(out_dir=out, speed=speed, handle_sigint=False, observers=list(observers)))
    assert result.complete


async def test_quickstart_same_bytes_at_max_and_at_speed_20000(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = load_scenario(SCENARIOS / "quickstart.toml")
    windows = {"max": 0, "20000": 0}

    def count(key: str):
        def observe(report: WindowReport) -> None:
            windows[key] += 1
        return observe

    await _run(scenario, tmp_path / "max", None, [count("max")])
    started = trio.current_time()
    await _run(scenario, tmp_path / "20000", 20000.0, [count("20000")])
    # a day at 20000x is 4.32 s of (mock) wall time, cut into 200 s ticks instead of 1 h windows
    assert trio.current_time() - started == pytest.approx(4.32, abs=0.01)
    assert windows["20000"] > 15 * windows["max"]
    assert _bytes(tmp_path / "20000") == _bytes(tmp_path / "max")


@pytest.mark.parametrize("speed", [3.0, 7.0, 250.0])
async def test_short_run_same_bytes_at_max_and_finite_speeds(
    speed: float, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = parse_scenario(SHORT)
    await _run(scenario, tmp_path / "max", None)
    await _run(scenario, tmp_path / "finite", speed)
    reference = _bytes(tmp_path / "max")
    assert reference["cdrs.csv"].count(b"\n") > 10  # the scenario does produce calls
    assert b"recharge_succeeded" in reference["events.jsonl"]
    assert b"dropped_balance_exhausted" in reference["cdrs.csv"]
    assert _bytes(tmp_path / "finite") == reference


async def test_speed_1_applies_every_window_within_one_tick(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """With rating taking no (mock) time, the lag is the wait for the next tick and no more.

    Real time, cut into 10 ms ticks, still gives the bytes of the virtual-time run.
    """
    reports: list[WindowReport] = []
    await _run(parse_scenario(SHORT), tmp_path / "max", None)
    await _run(parse_scenario(SHORT), tmp_path / "1", 1.0, [reports.append])
    assert _bytes(tmp_path / "1") == _bytes(tmp_path / "max")
    windows = [r for r in reports if r.t1_ms > r.t0_ms]
    assert len(windows) == pytest.approx(10 / TICK_S, rel=0.01)
    assert all(r.t1_ms - r.t0_ms <= TICK_S * 1000 for r in windows)
    assert all(0 < r.lag_s <= TICK_S + 1e-9 for r in windows)


async def test_virtual_time_reports_no_lag(tmp_path: Path) -> None:
    reports: list[WindowReport] = []
    await _run(parse_scenario(SHORT), tmp_path, None, [reports.append])
    assert {r.lag_s for r in reports} == {0.0}
    assert all(r.t1_ms - r.t0_ms <= MAX_VIRTUAL_WINDOW_MS for r in reports)


async def test_observers_see_every_cdr_including_the_end_of_simulation(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    reports: list[WindowReport] = []
    await _run(parse_scenario(SHORT), tmp_path, 7.0, [reports.append])
    rows = (tmp_path / "cdrs.csv").read_bytes().count(b"\n") - 1
    assert sum(len(r.step.cdrs) for r in reports) == rows
    assert sum(r.arrivals for r in reports) == rows
    last = reports[-1]
    assert last.t0_ms == last.t1_ms == 10_000  # the end-of-run step, after the last window
    assert b"simulation_end" in (tmp_path / "cdrs.csv").read_bytes()


async def test_at_a_finite_speed_the_stepping_loop_is_never_compiled(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numba's load (~0.3 s, ~5 s the first time) would stall the ticks of a paced run:
    its engine steps stuck orgs by Python, whatever it foresees (quickstart steps one)."""
    from rating_core import Tuning
    from rating_core._charging import Charger

    asked: dict[str, set] = {"max": set(), "20000": set()}
    compile_stepping = Charger.compile_stepping
    key = "max"

    def spy(self, *args):
        asked[key].add(self.compile_after)
        return compile_stepping(self, *args)

    monkeypatch.setattr(Charger, "compile_stepping", spy)
    scenario = load_scenario(SCENARIOS / "quickstart.toml")
    await _run(scenario, tmp_path / "max", None)
    key = "20000"
    await _run(scenario, tmp_path / "20000", 20000.0)
    assert asked == {"max": {Tuning().compile_after}, "20000": {None}}
