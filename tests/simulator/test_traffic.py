"""Traffic generation: determinism, chunk independence, call_id order, and sane statistics."""

from __future__ import annotations

import dataclasses
import gc
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pytest

from rating_core import Arrivals, CallKind, Org, Plans, RatingSetup, Tariff, User
from simulator.traffic import GRID_MS, TrafficPlan, expected_calls
from simulator.traffic._plan import merge_ahead_ms

from simulator.scenario import CallSpec, TrafficSpec, parse_scenario
from tests.scenarios import REPO, scenario_toml, staff


@dataclass(frozen=True)
class FakeScenario:
    """The part of `simulator.scenario.Scenario` that TrafficPlan reads."""

    name: str
    seed: int
    setup: RatingSetup
    traffic: tuple[TrafficSpec, ...]
    calls: tuple[CallSpec, ...] = ()


HOUR = 3_600_000
MINUTE = 60_000
LICENSES = frozenset({"phone_system", "domestic_calling_plan", "audio_conferencing"})
TOLL_FREE = ("+18005550100", "+18005550101", "+448081570000")


def _tariff(prefix: str, country: str) -> Tariff:
    return Tariff(prefix=prefix, per_minute_micro=20_000, first_s=60, next_s=60, country=country,
                  zone="A")


def make_setup(end_ms: int, n_us: int = 30, n_gb: int = 20) -> RatingSetup:
    """One org: users 0..n_us-1 in the US, then n_gb in GB; three countries of tariffs."""
    users = tuple(User(f"us-{i}", "US", LICENSES) for i in range(n_us)) + tuple(
        User(f"gb-{i}", "GB", LICENSES) for i in range(n_gb)
    )
    return RatingSetup(
        start=datetime(2026, 11, 1, tzinfo=timezone.utc),
        end_ms=end_ms,
        currency="USD",
        plans=Plans(),
        tariffs=(_tariff("1", "US"), _tariff("1212", "US"), _tariff("44", "GB"),
                 _tariff("4420", "GB"), _tariff("33", "FR")),
        toll_free_tariffs=(
            Tariff(prefix="44", per_minute_micro=50_000, first_s=60, next_s=60),
            Tariff(prefix="49", per_minute_micro=50_000, first_s=60, next_s=60),
        ),
        orgs=(Org("contoso", users, toll_free_numbers=TOLL_FREE),),
    )


def mixed_scenario(end_ms: int, seed: int = 7, rate: float = 300.0) -> FakeScenario:
    """Every source type plus explicit calls, one of them at a grid cell boundary."""
    setup = make_setup(end_ms)
    everyone = tuple(range(50))
    traffic = (
        TrafficSpec(0, "domestic", rate, 180_000, everyone, None),
        TrafficSpec(0, "international", rate / 3, 300_000, everyone, ("1212", "4420")),
        TrafficSpec(0, "conference_dial_out", rate / 5, 600_000, tuple(range(10)), None),
        TrafficSpec(0, "toll_free", rate / 2, 120_000, (), None),
    )
    calls = (
        CallSpec(10_000, 0, 0, CallKind.OUTBOUND, 12125550100, 0, 7_200_000),
        CallSpec(GRID_MS, 0, 1, CallKind.OUTBOUND, 442071234567, 0, 60_000),
        CallSpec(5_000, 0, -1, CallKind.TOLL_FREE, 18005550100, 442071234567, 90_000),
    )
    return FakeScenario("mixed", seed, setup, traffic, calls)


def run_in_chunks(scenario: FakeScenario, step_ms: int) -> Arrivals:
    plan = TrafficPlan(scenario, chunk_ms=step_ms)
    return Arrivals.concat([batch for _, _, batch in plan.chunks()])


def assert_same(a: Arrivals, b: Arrivals) -> None:
    for field in ("call_id", "t_ms", "org", "user", "kind", "to_number", "from_number",
                  "holding_ms"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def _starts_with(numbers: np.ndarray, prefix: str) -> np.ndarray:
    return np.array([str(n).startswith(prefix) for n in numbers.tolist()], dtype=bool)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_arrivals() -> None:
    end = 6 * HOUR
    assert_same(run_in_chunks(mixed_scenario(end), HOUR), run_in_chunks(mixed_scenario(end), HOUR))


def test_different_seed_gives_different_arrivals() -> None:
    end = 6 * HOUR
    a = run_in_chunks(mixed_scenario(end, seed=7), HOUR)
    b = run_in_chunks(mixed_scenario(end, seed=8), HOUR)
    assert len(a) != len(b) or not np.array_equal(a.t_ms, b.t_ms)


def test_chunk_size_does_not_change_arrivals() -> None:
    end = 30 * HOUR + 17 * MINUTE + 3_001  # not a multiple of any chunk size
    scenario = mixed_scenario(end)
    whole = TrafficPlan(scenario).chunk(0, end)
    assert len(whole) > 10_000
    for step in (MINUTE, HOUR, 7 * HOUR + 13 * MINUTE):
        assert_same(run_in_chunks(scenario, step), whole)


def test_windows_cut_inside_grid_cells_give_the_same_arrivals() -> None:
    end = 2 * HOUR
    scenario = mixed_scenario(end, rate=20_000)
    plan = TrafficPlan(scenario)
    edges = [0, 1, 17, 12_345, GRID_MS - 1, GRID_MS, GRID_MS, 3 * GRID_MS + 7, end]
    parts = [plan.chunk(t0, t1) for t0, t1 in zip(edges, edges[1:])]
    assert_same(Arrivals.concat(parts), TrafficPlan(scenario).chunk(0, end))


def test_longer_run_starts_with_the_calls_of_a_shorter_one() -> None:
    short = TrafficPlan(mixed_scenario(5 * HOUR + 123)).chunk(0, 5 * HOUR + 123)
    long = TrafficPlan(mixed_scenario(50 * HOUR)).chunk(0, 5 * HOUR + 123)
    assert_same(short, long)


def test_adding_a_source_does_not_change_the_others() -> None:
    base = mixed_scenario(3 * HOUR)
    extra = TrafficSpec(0, "domestic", 1_000.0, 60_000, (0, 1), ("33",))  # only source to FR
    grown = FakeScenario("grown", base.seed, base.setup, base.traffic + (extra,), base.calls)
    a = TrafficPlan(base).chunk(0, 3 * HOUR)
    b = TrafficPlan(grown).chunk(0, 3 * HOUR)
    from_extra = (b.kind == CallKind.OUTBOUND) & _starts_with(b.to_number, "33")
    assert from_extra.any()
    kept = b.take(np.flatnonzero(~from_extra))
    kept.call_id = a.call_id  # ids shift with the extra calls; everything else must not
    assert_same(kept, a)


# --------------------------------------------------------------------------- call_id order


def test_call_ids_are_contiguous_from_one_across_chunks() -> None:
    end = 5 * HOUR
    plan = TrafficPlan(mixed_scenario(end), chunk_ms=7 * MINUTE)
    batches = [batch for _, _, batch in plan.chunks()]
    ids = np.concatenate([b.call_id for b in batches])
    np.testing.assert_array_equal(ids, np.arange(1, len(ids) + 1))
    for b in batches:
        assert np.all(np.diff(b.t_ms) >= 0)


def test_explicit_calls_come_first_at_a_shared_instant_in_file_order() -> None:
    end = 10_000
    setup = make_setup(end)
    # 36 M calls/h = 10 per ms: every ms has generated arrivals from both sources.
    traffic = (
        TrafficSpec(0, "domestic", 36e6, 1_000, (0,), ("1212",)),
        TrafficSpec(0, "domestic", 36e6, 1_000, (1,), ("4420",)),
    )
    calls = (
        CallSpec(5_000, 0, 2, CallKind.OUTBOUND, 33100000001, 0, 1),
        CallSpec(4_000, 0, 3, CallKind.OUTBOUND, 33100000002, 0, 1),
        CallSpec(5_000, 0, 4, CallKind.OUTBOUND, 33100000003, 0, 1),
    )
    plan = TrafficPlan(FakeScenario("tie", 1, setup, traffic, calls))
    arrivals = Arrivals.concat([plan.chunk(0, 4_999), plan.chunk(4_999, end)])
    at = arrivals.take(np.flatnonzero(arrivals.t_ms == 5_000))
    assert at.user[:2].tolist() == [2, 4]  # explicit, in file order
    generated = at.user[2:].tolist()
    assert len(generated) > 2 and set(generated) == {0, 1}
    assert generated == sorted(generated)  # first source's calls before the second's
    assert np.all(np.diff(at.call_id) == 1)


def test_chunks_must_be_contiguous_from_zero() -> None:
    plan = TrafficPlan(mixed_scenario(HOUR))
    with pytest.raises(ValueError):
        plan.chunk(10, 20)
    plan.chunk(0, 20)
    with pytest.raises(ValueError):
        plan.chunk(0, 40)
    with pytest.raises(ValueError):
        plan.chunk(20, 10)


# --------------------------------------------------------------------------- statistics and content


def test_arrivals_are_inside_the_run() -> None:
    end = 3 * HOUR + 1
    scenario = mixed_scenario(end)
    calls = scenario.calls + (CallSpec(end, 0, 0, CallKind.OUTBOUND, 12125550100, 0, 1),)
    scenario = FakeScenario("edge", 7, scenario.setup, scenario.traffic, calls)
    plan = TrafficPlan(scenario)
    arrivals = plan.chunk(0, end + 10 * HOUR)  # asking past the end is harmless
    assert arrivals.t_ms.min() >= 0 and arrivals.t_ms.max() < end
    assert np.all(arrivals.holding_ms >= 1)


def test_call_count_matches_the_rate() -> None:
    end, rate = 100 * HOUR, 600.0
    setup = make_setup(end)
    scenario = FakeScenario("rate", 3, setup, (TrafficSpec(0, "domestic", rate, 1, (0,), None),))
    n = len(TrafficPlan(scenario).chunk(0, end))
    mean = rate * end / HOUR
    assert abs(n - mean) < 5 * np.sqrt(mean)
    assert expected_calls(scenario) == pytest.approx(mean)


@pytest.mark.parametrize("rate", [600.0, 6.0])  # blocks of a day and of 2,560 minutes
def test_a_flat_source_is_a_poisson_process(rate: float) -> None:
    """A flat source draws a block as one Poisson count at uniform times: what must hold is
    the process of a cell at a time, Poisson counts in disjoint minutes, independent of each
    other, and times uniform within each minute (the draws at a block's edges included); and
    the count of a whole block is Poisson too, not the expected count (days, at 6 calls/h)."""
    end = (100 if rate > 100 else 10_000) * HOUR
    scenario = FakeScenario("flat", 3, make_setup(end), (TrafficSpec(0, "domestic", rate, 1, (0,), None),))
    t = TrafficPlan(scenario).chunk(0, end).t_ms
    per_minute = np.bincount(t // MINUTE, minlength=end // MINUTE)
    mean = rate / 60
    assert per_minute.mean() == pytest.approx(mean, rel=0.03)
    assert per_minute.var() == pytest.approx(mean, rel=0.1)  # Poisson: variance = mean (sd ~2 %)
    assert abs(np.corrcoef(per_minute[:-1], per_minute[1:])[0, 1]) < 0.05  # sd ~0.013 / ~0.008
    if rate < 100:  # 417 days in 234 blocks: a day's count varies as a Poisson one does (sd ~7 %)
        per_day = np.bincount(t // (24 * HOUR))[:-1]
        assert per_day.var() == pytest.approx(per_day.mean(), rel=0.3)
    seconds = np.bincount(t % MINUTE // 1000, minlength=60)  # uniform within the minute
    expected = len(t) / 60
    assert ((seconds - expected) ** 2 / expected).sum() < 120  # chi-square, 59 degrees of freedom


def test_holding_times_have_the_configured_mean() -> None:
    end, mean_ms = 20 * HOUR, 180_000
    setup = make_setup(end)
    spec = TrafficSpec(0, "domestic", 1_000.0, mean_ms, (0,), None)
    holding = TrafficPlan(FakeScenario("hold", 5, setup, (spec,))).chunk(0, end).holding_ms
    assert abs(holding.mean() - mean_ms) < 5 * mean_ms / np.sqrt(len(holding))


def test_default_domestic_destinations_are_in_the_users_country() -> None:
    end = 10 * HOUR
    setup = make_setup(end)
    spec = TrafficSpec(0, "domestic", 2_000.0, 60_000, tuple(range(50)), None)
    arrivals = TrafficPlan(FakeScenario("dom", 1, setup, (spec,))).chunk(0, end)
    us = arrivals.user < 30
    assert us.any() and (~us).any()
    assert np.all(_starts_with(arrivals.to_number[us], "1"))
    assert np.all(_starts_with(arrivals.to_number[~us], "44"))
    assert np.all(arrivals.kind == CallKind.OUTBOUND)
    assert np.all(arrivals.from_number == 0)
    # Both prefixes of a country are used ("1" and "1212" for the US).
    assert _starts_with(arrivals.to_number[us], "1212").any()


def test_default_international_destinations_are_in_other_countries() -> None:
    end = 10 * HOUR
    setup = make_setup(end)
    spec = TrafficSpec(0, "international", 2_000.0, 60_000, tuple(range(50)), None)
    arrivals = TrafficPlan(FakeScenario("intl", 1, setup, (spec,))).chunk(0, end)
    us = arrivals.user < 30
    assert not np.any(_starts_with(arrivals.to_number[us], "1"))
    assert not np.any(_starts_with(arrivals.to_number[~us], "44"))


def test_given_destinations_make_eleven_digit_numbers() -> None:
    end = 2 * HOUR
    setup = make_setup(end)
    spec = TrafficSpec(0, "conference_dial_out", 1_000.0, 60_000, (3,), ("1212", "4420"))
    arrivals = TrafficPlan(FakeScenario("dst", 1, setup, (spec,))).chunk(0, end)
    text = [str(n) for n in arrivals.to_number.tolist()]
    assert all(len(s) == 11 and s[:4] in ("1212", "4420") for s in text)
    assert len({s[:4] for s in text}) == 2
    assert np.all(arrivals.kind == CallKind.CONFERENCE_DIAL_OUT)
    assert np.all(arrivals.user == 3)


def test_toll_free_calls_reach_the_orgs_numbers_from_caller_prefixes() -> None:
    end = 10 * HOUR
    setup = make_setup(end)
    spec = TrafficSpec(0, "toll_free", 1_000.0, 60_000, (), None)
    arrivals = TrafficPlan(FakeScenario("tf", 1, setup, (spec,))).chunk(0, end)
    owned = {int(n.lstrip("+")) for n in TOLL_FREE}
    assert set(arrivals.to_number.tolist()) == owned
    assert np.all(arrivals.user == -1)
    assert np.all(arrivals.kind == CallKind.TOLL_FREE)
    callers = _starts_with(arrivals.from_number, "44") | _starts_with(arrivals.from_number, "49")
    assert np.all(callers)


def test_sources_with_nothing_to_draw_from_yield_no_calls() -> None:
    end = 5 * HOUR
    setup = make_setup(end)
    no_numbers = RatingSetup(setup.start, end, "USD", setup.plans, (), (),
                             (Org("bare", setup.orgs[0].users),))
    empty = (
        TrafficSpec(0, "domestic", 1_000.0, 60_000, (0,), None),  # no tariffs
        TrafficSpec(0, "toll_free", 1_000.0, 60_000, (), ("44",)),  # no toll-free numbers
        TrafficSpec(0, "domestic", 1_000.0, 60_000, (), ("1",)),  # no users
        TrafficSpec(0, "domestic", 0.0, 60_000, (0,), ("1",)),  # zero rate
        TrafficSpec(0, "domestic", 1_000.0, 60_000, (0,), ()),  # empty destinations
    )
    scenario = FakeScenario("bare", 1, no_numbers, empty)
    assert len(TrafficPlan(scenario).chunk(0, end)) == 0
    assert expected_calls(scenario) == 0


def test_expected_calls_counts_rates_and_explicit_calls() -> None:
    end = 4 * HOUR
    scenario = mixed_scenario(end, rate=300.0)
    rates = 300.0 + 100.0 + 60.0 + 150.0
    assert expected_calls(scenario) == pytest.approx(rates * 4 + 3)


QUICKSTART = scenario_toml(
    name="quickstart",
    seed=7,
    duration="1d",
    org="contoso",
    users=[{"id": "alice", "country": "US", "licenses": ["phone_system", "domestic_calling_plan"]},
        staff(50, ["e5", "domestic_calling_plan"], group="sales")],
    traffic=[
        {"type": "domestic", "calls_per_hour": 120, "holding_mean": "3m", "users": "sales",
            "destinations": ["1212", "1415"]},
    ],
    calls=[
        {"at": "10s", "org": "contoso", "user": "alice", "type": "outbound", "to": "+12125550100",
            "duration": "2h"},
    ],
)


def test_loaded_scenario_generates_calls_from_its_group_to_its_destinations() -> None:
    scenario = parse_scenario(QUICKSTART)
    arrivals = TrafficPlan(scenario).chunk(0, scenario.setup.end_ms)
    assert abs(len(arrivals) - expected_calls(scenario)) < 5 * np.sqrt(expected_calls(scenario))
    explicit = np.flatnonzero(arrivals.user == 0)  # alice is global user 0
    assert arrivals.t_ms[explicit].tolist() == [10_000]
    generated = arrivals.take(np.flatnonzero(arrivals.user != 0))
    assert set(generated.user.tolist()) <= set(range(1, 51))
    to = generated.to_number
    assert np.all(_starts_with(to, "1212") | _starts_with(to, "1415"))


# --------------------------------------------------------------------------- windows cut by calls


def test_a_quiet_scenario_merges_a_week_of_calls_at_a_time() -> None:
    """A few calls an hour over years: one merge a week, not one a day (each has a fixed cost)."""
    week = 7 * 24 * HOUR
    assert merge_ahead_ms(2.0) == week  # 336 calls a week
    assert merge_ahead_ms(0.0) == week  # explicit calls only
    assert merge_ahead_ms(16_384.0) == HOUR  # ~TARGET_CALLS_PER_DRAW an hour
    assert merge_ahead_ms(16_384.0 * 60) == GRID_MS  # never less than a grid cell
    plan = TrafficPlan(mixed_scenario(3 * week, rate=1.0))
    merges: list[int] = []
    number_until = plan._number_until
    plan._number_until = lambda until: merges.append(until) or number_until(until)  # type: ignore[method-assign]
    plan.window_end(0, week, 65_536)
    assert merges == [week]


def test_arrivals_do_not_depend_on_how_far_ahead_they_are_merged() -> None:
    scenario = mixed_scenario(3 * 7 * 24 * HOUR, rate=1.0)
    plan = TrafficPlan(scenario, chunk_ms=HOUR)
    plan._merge_ahead_ms = GRID_MS
    by_minute = Arrivals.concat([batch for _, _, batch in plan.chunks()])
    assert len(by_minute) > 100
    assert_same(by_minute, run_in_chunks(scenario, HOUR))


def test_windows_cut_by_call_count_hold_at_most_that_many_and_give_the_same_arrivals() -> None:
    scenario = mixed_scenario(6 * HOUR, rate=3_000.0)
    plan, batches, max_calls = TrafficPlan(scenario), [], 500
    t0 = 0
    while t0 < plan.end_ms:
        t1 = plan.window_end(t0, min(t0 + HOUR, plan.end_ms), max_calls)
        assert t0 < t1 <= min(t0 + HOUR, plan.end_ms)
        batch = plan.chunk(t0, t1)
        assert len(batch) <= max_calls
        if t1 < min(t0 + HOUR, plan.end_ms):  # cut short: the window was full
            assert len(batch) > max_calls // 2
        batches.append(batch)
        t0 = t1
    assert len(batches) > 6 * 2  # each hour holds several windows' worth
    assert_same(Arrivals.concat(batches), run_in_chunks(scenario, 6 * HOUR))


def test_a_window_cut_by_call_count_never_splits_an_instant() -> None:
    base = mixed_scenario(HOUR)
    burst = tuple(CallSpec(7_000, 0, 0, CallKind.OUTBOUND, 12125550100 + i, 0, 60_000) for i in range(30))
    plan = TrafficPlan(FakeScenario("burst", 7, base.setup, base.traffic, burst))
    before = plan.window_end(0, HOUR, 10)
    assert before == 7_000  # the calls before the burst: fewer than 10
    assert len(plan.chunk(0, before)) < 10
    at = plan.window_end(before, HOUR, 10)
    assert at == 7_001  # all 30 calls of the instant, though more than 10
    batch = plan.chunk(before, at)
    assert len(batch) >= 30 and (batch.t_ms == 7_000).all()


# --------------------------------------------------------------------------- many orgs


def _lines_executed(work) -> int:
    """Lines of callsim's own code that `work()` executes: a deterministic measure of its cost."""
    roots = tuple(str(REPO / package) for package in ("simulator", "rating_core"))
    lines = 0

    def count(frame, event, arg):
        nonlocal lines
        lines += event == "line"
        return count

    def enter(frame, event, arg):
        return count if frame.f_code.co_filename.startswith(roots) else None

    sys.settrace(enter)
    try:
        work()
    finally:
        sys.settrace(None)
    return lines


def _one_user_orgs(n: int) -> str:
    head = ('[simulation]\nname = "orgs"\nseed = 1\nstart = "2026-11-01T00:00:00Z"\nduration = "1h"\ncurrency = "USD"\n'
            '[[tariff]]\nprefix = "1"\ncountry = "US"\nzone = "A"\nper_minute = "0.02"\nincrement = "60/60"\n')
    org = ('[[orgs]]\nid = "org{i}"\n[[orgs.users]]\nid = "u{i}"\ncountry = "US"\n'
           'licenses = ["phone_system", "domestic_calling_plan"]\n'
           '[[traffic]]\norg = "org{i}"\ntype = "domestic"\ncalls_per_hour = 10\nholding_mean = "3m"\n')
    return head + "".join(org.format(i=i) for i in range(n))


def test_a_scenarios_sources_are_resolved_once_however_often_a_run_asks(monkeypatch) -> None:
    """A run asks for the expected calls twice and builds a plan: at 10,000 sources each
    resolution of the tables costs a tenth of a second, so it happens once per scenario."""
    from simulator.traffic import _draws

    resolved: list[object] = []
    real = _draws._source_tables
    monkeypatch.setattr(_draws, "_source_tables", lambda *a: resolved.append(a) or real(*a))
    scenario = mixed_scenario(HOUR)
    expected_calls(scenario)
    plan = TrafficPlan(scenario)
    assert expected_calls(scenario) == pytest.approx(expected_calls(mixed_scenario(HOUR)))
    assert len(resolved) == 2 * len(scenario.traffic)  # the first scenario, then the fresh one
    assert_same(Arrivals.concat([b for _, _, b in plan.chunks()]), run_in_chunks(mixed_scenario(HOUR), HOUR))

    other = dataclasses.replace(scenario, seed=8)  # another scenario: its own tables
    TrafficPlan(other)
    key = id(other)
    assert key in _draws._RESOLVED
    del other
    gc.collect()
    assert key not in _draws._RESOLVED  # dropped with its scenario


def test_loading_and_traffic_set_up_grow_linearly_with_the_number_of_orgs() -> None:
    """10,000 one-user orgs with a source each: nothing may walk every org (or user) per org."""

    def set_up(n: int) -> int:
        text = _one_user_orgs(n)

        def work() -> None:
            scenario = parse_scenario(text)
            TrafficPlan(scenario)
            expected_calls(scenario)

        return _lines_executed(work)

    small, large = set_up(300), set_up(600)
    assert large < 2.2 * small, (small, large)
