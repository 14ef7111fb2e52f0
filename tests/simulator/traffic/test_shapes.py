"""Generated traffic with a shape: rate profiles, holding distributions, weighted destinations.

The statistics are checked against the test side's own reading of each key (a calendar for the
hour of the week, the distributions' textbook quantiles), with fixed seeds and bounds of
several standard errors: loose enough never to fail by chance at these seeds, tight enough
that a wrong hour, a wrong median or a wrong weight moves the figures far outside them.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from rating_core import Arrivals, CallKind
from simulator.scenario import Destination, Holding, RateProfile, TrafficSpec, parse_scenario
from simulator.traffic import TrafficPlan, expected_calls
from tests.scenarios import scenario_toml, staff
from tests.simulator.test_traffic import FakeScenario, assert_same, make_setup, run_in_chunks

HOUR = 3_600_000
MINUTE = 60_000
DAY = 24 * HOUR
EVERYONE = tuple(range(50))


def local_hour_of_week(start: datetime, t_ms: np.ndarray, offset_ms: int) -> np.ndarray:
    """The calendar's answer: Monday 00:00-01:00 local is 0, Sunday 23:00-24:00 is 167."""
    zone = timezone(timedelta(milliseconds=offset_ms))
    hours = []
    for t in t_ms.tolist():
        local = (start + timedelta(milliseconds=t)).astimezone(zone)
        hours.append(local.weekday() * 24 + local.hour)
    return np.array(hours)


def hours_of_run(start: datetime, end_ms: int, offset_ms: int) -> np.ndarray:
    """How many ms of the run fall in each local hour of the week, minute by minute."""
    covered = np.zeros(168)
    zone = timezone(timedelta(milliseconds=offset_ms))
    t = 0
    while t < end_ms:
        local = (start + timedelta(milliseconds=t)).astimezone(zone)
        to_next_hour = ((60 - local.minute) * 60 - local.second) * 1000 - local.microsecond // 1000
        step = min(to_next_hour, end_ms - t)
        covered[local.weekday() * 24 + local.hour] += step
        t += step
    return covered


def with_start(scenario: FakeScenario, start: datetime) -> FakeScenario:
    setup = scenario.setup
    moved = type(setup)(start, setup.end_ms, setup.currency, setup.plans, setup.tariffs,
                        setup.toll_free_tariffs, setup.orgs)
    return FakeScenario(scenario.name, scenario.seed, moved, scenario.traffic, scenario.calls)


def profiled(end_ms: int, week: list[float], offset_ms: int, start: datetime, seed: int = 11,
             holding: Holding | None = None, weighted=None, destinations=("1212",)) -> FakeScenario:
    profile = RateProfile(tuple(week), offset_ms)
    spec = TrafficSpec(0, "domestic", profile.peak, 180_000, EVERYONE, destinations, profile, holding, weighted)
    return with_start(FakeScenario("profile", seed, make_setup(end_ms), (spec,)), start)


def office_week() -> list[float]:
    day = [0.02] * 7 + [0.2, 0.6] + [1.0] * 3 + [0.5] + [1.0] * 4 + [0.4, 0.1] + [0.02] * 5
    return day * 5 + [w * 0.1 for w in day] * 2


# --------------------------------------------------------------------------- arrivals


def test_arrivals_follow_the_hour_of_the_local_week() -> None:
    """A three-week run from a Wednesday mid-minute, clock UTC-05:00: per local hour of the
    week, the calls are those of its rate times the time the run spends in it."""
    week = office_week()
    week[2 * 24 + 10] = 3.0  # Wednesday 10:00-11:00 local: the busy hour
    start = datetime(2026, 11, 4, 13, 17, 42, 500_000, tzinfo=timezone.utc)
    offset = -5 * HOUR
    end = 21 * DAY + 5 * HOUR + 1234
    scenario = profiled(end, [600 * w for w in week], offset, start)
    arrivals = TrafficPlan(scenario).chunk(0, end)
    counts = np.bincount(local_hour_of_week(start, arrivals.t_ms, offset), minlength=168)
    expected = np.array(week) * 600 * hours_of_run(start, end, offset) / HOUR
    assert int(np.argmax(counts)) == 2 * 24 + 10
    assert expected_calls(scenario) == pytest.approx(expected.sum(), rel=1e-9)
    assert abs(len(arrivals) - expected.sum()) < 4 * math.sqrt(expected.sum())
    z = (counts - expected) / np.sqrt(np.maximum(expected, 1))
    assert np.all(np.abs(z) < 5), np.flatnonzero(np.abs(z) >= 5)
    chi2 = float(np.sum((counts - expected) ** 2 / np.maximum(expected, 1)))
    assert chi2 < 168 + 6 * math.sqrt(2 * 168)  # the sum of 168 squared unit normals


def test_hours_of_weight_zero_have_no_calls_at_all() -> None:
    week = [0.0] * 168
    for day in range(5):
        week[day * 24 + 9: day * 24 + 17] = [1.0] * 8
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)  # a Sunday
    offset = 5 * HOUR + 30 * MINUTE
    arrivals = TrafficPlan(profiled(14 * DAY, [3000 * w for w in week], offset, start)).chunk(0, 14 * DAY)
    hours = local_hour_of_week(start, arrivals.t_ms, offset)
    assert len(arrivals) > 10_000
    assert set(hours.tolist()) == {h for h in range(168) if week[h]}


@pytest.mark.parametrize("start", [
    datetime(2026, 11, 2, 8, 59, 59, 999_000, tzinfo=timezone.utc),
    datetime(2026, 11, 6, 23, 30, 7, tzinfo=timezone.utc),
])
def test_a_profile_gives_the_same_calls_whatever_the_windows(start: datetime) -> None:
    end = 3 * DAY + 7 * HOUR + 13
    scenario = profiled(end, [1_000 * w for w in office_week()], -7 * HOUR, start,
                        holding=Holding.lognormal(120_000, 1.0),
                        weighted=(Destination("1212", 2.0), Destination("12125550100", 1.0, number=True)),
                        destinations=("1212", "12125550100"))
    whole = TrafficPlan(scenario).chunk(0, end)
    assert len(whole) > 10_000
    for step in (MINUTE, 17 * MINUTE + 1, HOUR, 7 * HOUR + 13 * MINUTE):
        assert_same(run_in_chunks(scenario, step), whole)
    plan = TrafficPlan(scenario)
    edges = [0, 1, 29_999, 30_000, 59_999, 61_001, 3 * HOUR, end]
    assert_same(Arrivals.concat([plan.chunk(a, b) for a, b in zip(edges, edges[1:])]), whole)


def test_a_longer_profiled_run_starts_with_the_calls_of_a_shorter_one() -> None:
    start = datetime(2026, 11, 3, 4, 0, 30, tzinfo=timezone.utc)
    week = [500 * w for w in office_week()]
    short = TrafficPlan(profiled(2 * DAY + 5, week, 0, start)).chunk(0, 2 * DAY + 5)
    long = TrafficPlan(profiled(9 * DAY, week, 0, start)).chunk(0, 2 * DAY + 5)
    assert_same(short, long)
    assert short.t_ms.min() >= 0


def test_a_flat_profile_is_a_flat_rate_in_distribution() -> None:
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    arrivals = TrafficPlan(profiled(100 * HOUR, [600.0] * 168, 0, start)).chunk(0, 100 * HOUR)
    mean = 600 * 100
    assert abs(len(arrivals) - mean) < 5 * math.sqrt(mean)
    per_minute = np.bincount(arrivals.t_ms // MINUTE, minlength=6000)
    assert per_minute.var() == pytest.approx(10, rel=0.1)  # Poisson: variance = mean = 10


# --------------------------------------------------------------------------- holding times


def holding_of(holding: Holding, n_hours: int = 50, seed: int = 5) -> np.ndarray:
    spec = TrafficSpec(0, "domestic", 1_000.0, round(holding.mean_ms), (0,), None, None, holding)
    scenario = FakeScenario("hold", seed, make_setup(n_hours * HOUR), (spec,))
    return TrafficPlan(scenario).chunk(0, n_hours * HOUR).holding_ms


def test_lognormal_holding_has_its_median_and_sigma() -> None:
    ms = holding_of(Holding.lognormal(120_000, 0.9))
    assert len(ms) > 40_000
    assert np.median(ms) == pytest.approx(120_000, rel=0.03)
    logs = np.log(ms)
    assert logs.std() == pytest.approx(0.9, rel=0.03)
    assert ms.mean() == pytest.approx(120_000 * math.exp(0.405), rel=0.05)


def test_empirical_holding_reproduces_its_quantiles() -> None:
    points = ((0.0, 0.5, 0.9, 0.99, 1.0), (5_000, 120_000, 480_000, 900_000, 3_600_000))
    ms = holding_of(Holding.inverse_cdf(*points))
    assert ms.min() >= 5_000 and ms.max() <= 3_600_000
    for p, d in zip(*points):
        if 0 < p < 1:
            assert np.mean(ms <= d) == pytest.approx(p, abs=0.01)
    # linear between the points: the middle of a stretch is its middle probability
    assert np.mean(ms <= 300_000) == pytest.approx(0.7, abs=0.01)


def test_histogram_holding_fills_its_bins_by_count_uniformly_and_skips_empty_ones() -> None:
    ms = holding_of(Holding.histogram((0, 30_000, 60_000, 300_000), (10.0, 0.0, 30.0)))
    assert np.mean(ms < 30_000) == pytest.approx(0.25, abs=0.01)
    assert not np.any((ms > 30_000) & (ms < 60_000))  # the empty bin
    late = ms[ms >= 60_000]
    assert late.mean() == pytest.approx(180_000, rel=0.02)
    assert np.mean(late < 120_000) == pytest.approx(0.25, abs=0.01)


def test_every_holding_time_is_at_least_one_ms() -> None:
    ms = holding_of(Holding.inverse_cdf((0.0, 1.0), (0, 2)), n_hours=2)
    assert ms.min() == 1 and set(ms.tolist()) <= {1, 2}


def test_an_extreme_lognormal_tail_stays_inside_100_years() -> None:
    ms = holding_of(Holding.lognormal(3_000_000_000_000, 4.0), n_hours=2)
    assert ms.max() <= 36_525 * DAY and ms.min() >= 1


# --------------------------------------------------------------------------- destinations


def test_weighted_destinations_are_picked_by_weight() -> None:
    weighted = (Destination("1212", 3.0), Destination("1415", 1.0), Destination("1312", 0.0),
                Destination("442071234567", 4.0, number=True))
    spec = TrafficSpec(0, "domestic", 5_000.0, 60_000, EVERYONE, tuple(d.digits for d in weighted),
                       None, None, weighted)
    arrivals = TrafficPlan(FakeScenario("dst", 3, make_setup(10 * HOUR), (spec,))).chunk(0, 10 * HOUR)
    text = [str(n) for n in arrivals.to_number.tolist()]
    n = len(text)
    exact = sum(t == "442071234567" for t in text)
    assert exact / n == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / n))
    short = [t for t in text if t != "442071234567"]
    assert all(len(t) == 11 for t in short)
    assert sum(t.startswith("1212") for t in short) / n == pytest.approx(3 / 8, abs=4 * math.sqrt(0.25 / n))
    assert sum(t.startswith("1415") for t in short) / n == pytest.approx(1 / 8, abs=4 * math.sqrt(0.25 / n))
    assert not any(t.startswith("1312") for t in short)


def test_weighted_toll_free_callers_call_the_orgs_numbers() -> None:
    weighted = (Destination("44", 1.0), Destination("4930123456", 1.0, number=True))
    spec = TrafficSpec(0, "toll_free", 2_000.0, 60_000, (), ("44", "4930123456"), None, None, weighted)
    arrivals = TrafficPlan(FakeScenario("tf", 3, make_setup(5 * HOUR), (spec,))).chunk(0, 5 * HOUR)
    callers = [str(n) for n in arrivals.from_number.tolist()]
    fixed = sum(c == "4930123456" for c in callers)
    assert fixed / len(callers) == pytest.approx(0.5, abs=0.03)
    assert all(c == "4930123456" or (c.startswith("44") and len(c) == 11) for c in callers)
    assert np.all(arrivals.kind == CallKind.TOLL_FREE) and np.all(arrivals.user == -1)


# --------------------------------------------------------------------------- from a file


OFFICE = scenario_toml(
    seed=3, duration="14d", start="2026-11-02T00:00:00Z", users=[staff(50)],
    traffic=[{"type": "domestic", "calls_per_hour": 400,
              "rate_profile": {"utc_offset": "-05:00", "week": office_week()},
              "holding": {"distribution": "lognormal", "median": "2m", "sigma": 0.9},
              "destinations": [{"prefix": "1212", "weight": 3}, "1415"]}])


def test_a_scenario_file_with_every_shape_runs_as_written() -> None:
    scenario = parse_scenario(OFFICE)
    arrivals = TrafficPlan(scenario).chunk(0, scenario.setup.end_ms)
    mean = expected_calls(scenario)
    assert abs(len(arrivals) - mean) < 5 * math.sqrt(mean)
    hours = local_hour_of_week(scenario.setup.start, arrivals.t_ms, -5 * HOUR)
    weekday = np.isin(hours % 24, range(9, 17)) & (hours < 120)
    weekend = np.isin(hours % 24, range(9, 17)) & (hours >= 120)
    assert np.sum(weekend) / np.sum(weekday) == pytest.approx(0.1 * 2 / 5, rel=0.15)
    assert np.median(arrivals.holding_ms) == pytest.approx(120_000, rel=0.04)
    share = np.mean([str(n).startswith("1212") for n in arrivals.to_number.tolist()])
    assert share == pytest.approx(0.75, abs=0.02)


def test_the_flat_scenario_without_shapes_draws_exactly_as_the_exponential_table() -> None:
    flat = scenario_toml(users=[staff(5)], duration="1d", traffic=[
        {"type": "domestic", "calls_per_hour": 300, "holding_mean": "3m"}])
    table = flat.replace('holding_mean = "3m"', 'holding = { distribution = "exponential", mean = "3m" }')
    a, b = parse_scenario(flat), parse_scenario(table)
    assert_same(TrafficPlan(a).chunk(0, DAY), TrafficPlan(b).chunk(0, DAY))


@pytest.mark.parametrize("profile", [None, RateProfile(tuple([1e-306] * 168), 0)])
def test_a_vanishing_rate_draws_no_calls_and_no_traceback(profile, tmp_path) -> None:
    """1e-306 calls an hour is a rate greater than 0, as the schema asks: the blocks are the
    longest there are (their length once came out infinite), the calls none."""
    from simulator import cli
    from simulator.scenario import estimate

    spec = TrafficSpec(0, "domestic", 1e-306, 180_000, (0,), None, profile)
    assert len(TrafficPlan(FakeScenario("tiny", 3, make_setup(3 * DAY), (spec,))).chunk(0, 3 * DAY)) == 0
    assert estimate._calls_per_draw(1e-306) < 1e-300
    rate = {"calls_per_hour": 1e-306, "holding_mean": "3m"}
    if profile is not None:
        rate["rate_profile"] = {"hours": [1] * 24}
    path = tmp_path / "tiny.toml"
    path.write_text(scenario_toml(name="tiny", duration="1d", orgs=[{"id": "o", "users": [staff(1)]}],
                                  traffic=[{"org": "o", "type": "domestic", **rate}]))
    assert cli.main(["validate", str(path)]) == cli.EXIT_OK
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == cli.EXIT_OK
