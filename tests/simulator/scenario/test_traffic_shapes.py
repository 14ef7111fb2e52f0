"""The traffic shape keys (docs/scenario.md): `rate_profile`, `holding`, weighted `destinations`.

Valid tables load into the values the generator draws from; each mistake is one line naming
its field path.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.scenario import Destination, Holding, RateProfile, ScenarioError, estimate, parse_scenario
from tests.scenarios import scenario_toml, staff

OFFICE_HOURS = [0.0] * 9 + [1.0] * 3 + [0.5] + [1.0] * 4 + [0.0] * 7


def source(**keys: Any) -> str:
    """A scenario of one domestic source with the keys given (its shape tables inline)."""
    base: dict[str, Any] = {"type": "domestic", "calls_per_hour": 60, "holding_mean": "3m"}
    for key, value in keys.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return scenario_toml(users=[staff(10)], traffic=[base], duration="2d",
                         toll_free_tariffs=[{"prefix": "44", "per_minute": "0.05", "increment": "60/60"}])


def spec(**keys: Any):
    (traffic,) = parse_scenario(source(**keys)).traffic
    return traffic


def problems(**keys: Any) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(source(**keys))
    return str(info.value).splitlines()


def only_problem(**keys: Any) -> str:
    found = problems(**keys)
    assert len(found) == 1, found
    return found[0]


# -- rate_profile ---------------------------------------------------------------------------


def test_hour_weights_scale_calls_per_hour_over_every_day_of_the_week() -> None:
    traffic = spec(rate_profile={"utc_offset": "-05:00", "hours": OFFICE_HOURS})
    assert traffic.rate_profile == RateProfile(tuple(60 * w for w in OFFICE_HOURS) * 7, -5 * 3_600_000)
    assert traffic.calls_per_hour == 60  # the busiest hour's rate


def test_week_weights_start_on_monday_and_rates_are_calls_per_hour() -> None:
    week = [0.0] * 168
    week[24 + 10] = 2.5  # Tuesday 10:00-11:00
    traffic = spec(rate_profile={"week": week})
    assert traffic.rate_profile.per_hour[34] == 150 and traffic.calls_per_hour == 150
    assert traffic.rate_profile.utc_offset_ms == 0
    rates = spec(calls_per_hour=None, rate_profile={"rates": list(range(24))})
    assert rates.rate_profile.per_hour[:24] == tuple(float(r) for r in range(24))
    assert rates.calls_per_hour == 23


def test_a_profile_without_utc_offset_and_one_in_half_hours() -> None:
    assert spec(rate_profile={"hours": OFFICE_HOURS, "utc_offset": "+05:30"}).rate_profile.utc_offset_ms == 330 * 60_000
    assert spec(rate_profile={"hours": OFFICE_HOURS, "utc_offset": "Z"}).rate_profile.utc_offset_ms == 0


@pytest.mark.parametrize(("keys", "expected"), [
    ({"rate_profile": {"week": [1.0] * 167}},
     "traffic[0].rate_profile.week: 167 weights, expected 168"),
    ({"rate_profile": {"hours": [1.0] * 25}},
     "traffic[0].rate_profile.hours: 25 weights, expected 24"),
    ({"rate_profile": {"rates": [1.0] * 25}, "calls_per_hour": None},
     "traffic[0].rate_profile.rates: 25 rates, expected 24 or 168"),
    ({"rate_profile": {"hours": [0] * 24}},
     "traffic[0].rate_profile.hours: every weight is 0: this traffic would make no calls"),
    ({"rate_profile": {"hours": [1.0] * 23 + [-1.0]}},
     "traffic[0].rate_profile.hours[23]: must not be negative, got -1.0"),
    ({"rate_profile": {"hours": [1.0] * 23 + [math.nan]}},
     "traffic[0].rate_profile.hours[23]: must be a finite number, got nan"),
    ({"rate_profile": {"hours": [1.0] * 23 + [math.inf]}},
     "traffic[0].rate_profile.hours[23]: must be a finite number, got inf"),
    ({"rate_profile": {"hours": [1.0] * 23 + ["1"]}},
     'traffic[0].rate_profile.hours[23]: expected a weight (a number), got "1"'),
    ({"rate_profile": {"hours": [1.0] * 23 + [1e8]}},
     "traffic[0].rate_profile.hours[23]: calls_per_hour x 100000000.0 is above 1e+09 calls per hour"),
    ({"rate_profile": {"hours": OFFICE_HOURS, "week": [1.0] * 168}},
     'traffic[0].rate_profile: takes only one of "hours" (24 weights), "week" (168 weights) or "rates" '
     "(24 or 168 calls per hour)"),
    ({"rate_profile": {"utc_offset": "+01:00"}},
     'traffic[0].rate_profile: needs "hours" (24 weights), "week" (168 weights) or "rates" (24 or 168 '
     "calls per hour)"),
    ({"rate_profile": {"rates": [1.0] * 24}},
     "traffic[0].calls_per_hour: not allowed with rate_profile.rates (the rates are calls per hour already)"),
    ({"rate_profile": {"hours": OFFICE_HOURS}, "calls_per_hour": None},
     "traffic[0].calls_per_hour: required with rate_profile.hours (the weights multiply it)"),
    ({"calls_per_hour": None}, "traffic[0].calls_per_hour: required (or rate_profile.rates)"),
    ({"rate_profile": {"hours": OFFICE_HOURS, "utc_offset": "+15:00"}},
     'traffic[0].rate_profile.utc_offset: must be from -14:00 to +14:00, got "+15:00"'),
    ({"rate_profile": {"hours": OFFICE_HOURS, "utc_offset": "-5"}},
     'traffic[0].rate_profile.utc_offset: expected a UTC offset like "-05:00" or "+05:30", got "-5"'),
    ({"rate_profile": {"hours": OFFICE_HOURS, "weekdays": [1]}},
     "traffic[0].rate_profile.weekdays: unknown key"),
])
def test_rate_profile_mistakes_are_one_line_at_their_field(keys: dict[str, Any], expected: str) -> None:
    assert only_problem(**keys) == expected


# -- holding --------------------------------------------------------------------------------


def test_holding_tables_load_into_their_distributions() -> None:
    lognormal = spec(holding_mean=None, holding={"distribution": "lognormal", "median": "2m", "sigma": 0.9})
    assert lognormal.holding == Holding.lognormal(120_000, 0.9)
    assert lognormal.holding_mean_ms == round(120_000 * math.exp(0.81 / 2))
    empirical = spec(holding_mean=None, holding={
        "distribution": "empirical", "quantiles": [[0.0, "5s"], [0.5, "2m"], [0.9, "8m"], [1, "1h"]]})
    assert empirical.holding.probabilities == (0.0, 0.5, 0.9, 1.0)
    assert empirical.holding.durations_ms == (5_000, 120_000, 480_000, 3_600_000)
    histogram = spec(holding_mean=None, holding={
        "distribution": "histogram", "edges": ["0s", "30s", "1m", 300], "counts": [10, 0, 30]})
    assert histogram.holding.probabilities == (0.0, 0.25, 0.25, 1.0)
    assert histogram.holding.durations_ms == (0, 30_000, 60_000, 300_000)
    assert histogram.holding_mean_ms == round(0.25 * 15_000 + 0.75 * 180_000)


def test_an_exponential_holding_table_is_the_holding_mean_shorthand() -> None:
    table = spec(holding_mean=None, holding={"distribution": "exponential", "mean": "3m"})
    assert table == spec()  # same spec, hence the same draws


@pytest.mark.parametrize(("holding", "expected"), [
    ({"distribution": "lognormal", "median": "2m", "sigma": 4.5},
     "traffic[0].holding.sigma: must be from 0 to 4, got 4.5"),
    ({"distribution": "lognormal", "median": "2m", "sigma": math.nan},
     "traffic[0].holding.sigma: must be a finite number, got nan"),
    ({"distribution": "lognormal", "median": "0s", "sigma": 1},
     'traffic[0].holding.median: must be greater than 0, got "0s"'),
    ({"distribution": "lognormal", "median": "2m"}, "traffic[0].holding.sigma: required"),
    ({"distribution": "exponential", "mean": "2m", "sigma": 1.0}, "traffic[0].holding.sigma: unknown key"),
    ({"distribution": "gamma"},
     'traffic[0].holding.distribution: expected one of "exponential", "lognormal", "empirical", '
     '"histogram", got "gamma"'),
    ({"distribution": {"value": "lognormal"}, "median": "2m"},
     'traffic[0].holding.distribution: expected one of "exponential", "lognormal", "empirical", '
     '"histogram", got a table'),
    ({"median": "2m"},
     'traffic[0].holding.distribution: required (one of "exponential", "lognormal", "empirical", '
     '"histogram")'),
    ({"distribution": "empirical", "quantiles": [[0.1, "5s"], [1.0, "1m"]]},
     "traffic[0].holding.quantiles[0]: the first probability must be 0, got 0.1"),
    ({"distribution": "empirical", "quantiles": [[0.0, "5s"], [0.99, "1m"]]},
     "traffic[0].holding.quantiles[1]: the last probability must be 1, got 0.99"),
    ({"distribution": "empirical", "quantiles": [[0.0, "5s"], [0.5, "1m"], [0.5, "2m"], [1, "3m"]]},
     "traffic[0].holding.quantiles[2]: probabilities must increase: 0.5 after 0.5"),
    ({"distribution": "empirical", "quantiles": [[0.0, "5s"], [0.5, "1m"], [1, "30s"]]},
     "traffic[0].holding.quantiles[2]: durations must not decrease: 30s after 1m"),
    ({"distribution": "histogram", "edges": ["0s"], "counts": []},
     "traffic[0].holding.edges: at least 2 items, got 1"),
    ({"distribution": "empirical", "quantiles": [[0.0, "5s"], [1.5, "1m"]]},
     "traffic[0].holding.quantiles[1]: a probability must be from 0 to 1, got 1.5"),
    ({"distribution": "empirical", "quantiles": [[0.0, "5s"], "1m"]},
     'traffic[0].holding.quantiles[1]: expected a [probability, duration] pair like [0.5, "2m"], got "1m"'),
    ({"distribution": "histogram", "edges": ["0s", "30s", "1m"], "counts": [1, 2, 3]},
     "traffic[0].holding.counts: 3 counts for 2 bins (one fewer than the 3 edges)"),
    ({"distribution": "histogram", "edges": ["0s", "1m", "30s"], "counts": [1, 2]},
     "traffic[0].holding.edges[2]: edges must increase: 30s after 1m"),
    ({"distribution": "histogram", "edges": ["0s", "1m"], "counts": [0]},
     "traffic[0].holding.counts: every count is 0: the holding histogram has no counts to draw durations from"),
    ({"distribution": "histogram", "edges": ["0s", "1m"], "counts": [-1]},
     "traffic[0].holding.counts[0]: must not be negative, got -1"),
])
def test_holding_mistakes_are_one_line_at_their_field(holding: dict[str, Any], expected: str) -> None:
    assert only_problem(holding_mean=None, holding=holding) == expected


def test_a_point_list_too_short_says_how_many_points_it_needs() -> None:
    found = only_problem(holding_mean=None, holding={"distribution": "empirical", "quantiles": [[0.0, "5s"]]})
    assert found == "traffic[0].holding.quantiles: at least 2 items, got 1"


def test_holding_mean_and_a_holding_table_together_or_neither_are_refused() -> None:
    assert only_problem(holding={"distribution": "exponential", "mean": "3m"}) == (
        "traffic[0].holding: give either holding_mean or a holding table, not both")
    assert only_problem(holding_mean=None) == (
        "traffic[0].holding_mean: required (or a [traffic.holding] table)")


# -- destinations ---------------------------------------------------------------------------


def test_weighted_destinations_keep_each_entry_and_plain_lists_stay_uniform() -> None:
    weighted = spec(destinations=["1212", {"prefix": "1415", "weight": 3}, {"number": "+12125550100", "weight": 0.5},
                                  {"prefix": "1312"}])
    assert weighted.destinations == ("1212", "1415", "12125550100", "1312")
    assert weighted.weighted == (Destination("1212", 1.0), Destination("1415", 3.0),
                                 Destination("12125550100", 0.5, number=True), Destination("1312", 1.0))
    plain = spec(destinations=["1212", "1415"])
    assert plain.destinations == ("1212", "1415") and plain.weighted is None


@pytest.mark.parametrize(("destinations", "expected"), [
    ([{"prefix": "1212", "weight": -1}], "traffic[0].destinations[0].weight: must not be negative, got -1"),
    ([{"prefix": "1212", "weight": math.inf}], "traffic[0].destinations[0].weight: must be a finite number, got inf"),
    ([{"prefix": "1212", "weight": 0}], "traffic[0].destinations: all weights are 0: this traffic would make no calls"),
    (["1", {"prefix": "1212", "number": "+12125550100"}],
     'traffic[0].destinations[1]: needs either "prefix" (completed with random digits) or "number" (dialled as is)'),
    ([{"weight": 2}],
     'traffic[0].destinations[0]: needs either "prefix" (completed with random digits) or "number" (dialled as is)'),
    ([{"number": "12125550100"}],
     'traffic[0].destinations[0].number: expected an E.164 number like "+12125550100" (+ and 2 to 15 digits), '
     'got "12125550100"'),
    ([{"prefix": "1212", "share": 2}], "traffic[0].destinations[0].share: unknown key"),
    ([3], 'traffic[0].destinations[0]: expected a prefix like "44" or a table like { prefix = "44", weight = 2 }, got 3'),
])
def test_destination_mistakes_are_one_line_at_their_field(destinations: list[Any], expected: str) -> None:
    assert only_problem(destinations=destinations) == expected


def test_weighted_toll_free_callers_load_too() -> None:
    text = scenario_toml(users=[staff(1)], traffic=[{
        "type": "toll_free", "calls_per_hour": 10, "holding_mean": "1m",
        "destinations": [{"prefix": "44", "weight": 9}, {"number": "+4930123456", "weight": 1}]}],
        toll_free_tariffs=[{"prefix": "44", "per_minute": "0.05", "increment": "60/60"}],
        orgs=[{"id": "acme", "toll_free_numbers": ["+18005550100"], "users": [staff(1)]}])
    (traffic,) = parse_scenario(text).traffic
    assert traffic.weighted == (Destination("44", 9.0), Destination("4930123456", 1.0, number=True))


def test_problems_of_several_sources_come_in_file_order_after_the_orgs() -> None:
    text = scenario_toml(users=[staff(1, licenses=["nonsense"])], traffic=[
        {"type": "domestic", "calls_per_hour": 1, "holding_mean": "1m", "rate_profile": {"hours": [1]}},
        {"type": "domestic", "calls_per_hour": 1},
    ])
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text)
    lines = str(info.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "orgs[0].users[0].licenses", "traffic[0].rate_profile.hours", "traffic[1].holding_mean"]


# -- the work estimate ----------------------------------------------------------------------


def test_the_estimate_integrates_the_profile_and_sizes_the_peak_by_the_busiest_hour() -> None:
    # 2 days from Sunday 2026-11-01 00:00 UTC: Sunday is 0 calls, Monday 9-17 local (UTC) 8 h
    # of 60 calls less half an hour at noon.
    week = [0.0] * 168
    week[9:17] = [w for w in OFFICE_HOURS[9:17]]
    scenario = parse_scenario(source(rate_profile={"week": week}))
    (src,) = scenario.workload.sources
    assert src.calls_per_hour * 48 == pytest.approx(60 * 7.5)
    assert src.peak == 60
    est = estimate.estimate(scenario.workload)
    assert est.calls == pytest.approx(450)
    flat = estimate.estimate(parse_scenario(source()).workload)
    assert est.peak_connected == pytest.approx(flat.peak_connected)  # 60 calls/h at the peak either way
    assert flat.calls == pytest.approx(60 * 48)


def test_the_estimate_uses_the_holding_distributions_mean() -> None:
    scenario = parse_scenario(source(holding_mean=None, holding={
        "distribution": "lognormal", "median": "2m", "sigma": 1.0}))
    (src,) = scenario.workload.sources
    assert src.holding_mean_ms == round(120_000 * math.exp(0.5))


def test_a_source_with_rates_is_named_by_its_rates_when_too_busy() -> None:
    text = source(calls_per_hour=None, rate_profile={"rates": [1e9] * 24}, holding_mean="1h")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, machine=estimate.Machine(memory_bytes=1 << 30))
    assert str(info.value).startswith("traffic[0].rate_profile.rates: 1e9 calls/h held 1h on average")


def test_a_problem_in_a_shape_table_names_its_line() -> None:
    text = source() + '[traffic.rate_profile]\nutc_offset = "-05:00"\nweek = [1.0, 2.0]\n'
    text = text.replace('holding_mean = "3m"\n', 'holding_mean = "3m"\n', 1)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "office.toml")
    (problem,) = info.value.problems
    line = text.splitlines().index("week = [1.0, 2.0]") + 1
    assert problem.located() == f"office.toml:{line}: traffic[0].rate_profile.week: 2 weights, expected 168"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["prefix", "number", "weight", "other"]),
                       st.sampled_from([None, True, 0, 1, -1, 2.5, 1e9, 1e9 + 1, 10**10,
                                        float("nan"), float("inf"), "", "44", "044", "4" * 15,
                                        "4" * 16, "+44", "+4420", "+0", "+" + "4" * 15, "+" + "4" * 16, "٤٤", [], {}]),
                       max_size=3))
def test_a_destination_read_plainly_is_read_as_its_model_reads_it(item: dict) -> None:
    from simulator.scenario._traffic_schema import DestinationModel, _plain_destination
    from simulator.scenario._schema import validate

    plain = _plain_destination(item)
    if plain is not None:
        model, problems = validate(DestinationModel, item, "d")
        assert problems == [] and (model.prefix is None) != (model.number is None)
        expected = (model.prefix, False) if model.number is None else (model.number[1:], True)
        assert (plain.digits, plain.number) == expected and plain.weight == model.weight
        assert type(plain.weight) is float
