"""One run of a sweep, in memory: the scenario with a grid point applied, rated with a seed.

This is what a worker runs.  It drives the rating core as `callsim run` does in virtual time
(`switch.next_arrivals`, then `RatingEngine.advance`, window after window, then `finish`),
but hands each window to a `RunTracker` instead of the output files: no CDR is formatted or
written, so a month of enterprise_month costs its rating and little else.  Windows also end
at each monthly refill, for the pool watch (`_pools`); where windows end changes nothing in
the results.

A worker keeps the last few scenarios it loaded (keyed by the text, its name and the point),
so the runs of one grid point load and check the file once.
"""

from __future__ import annotations

import functools
from dataclasses import replace

from rating_core import RatingEngine, month_starts

from ..outputs import SummaryBuilder
from ..scenario import Scenario, ScenarioError, parse_scenario
from ..switch import MAX_WINDOW_CALLS, next_arrivals, virtual_window_ms
from ..traffic import TrafficPlan, expected_calls
from ._grid import Point, RunSpec
from ._overrides import OverrideEdit
from ._pools import PoolWatch
from ._summary import RunSummary, RunTracker


def run_one(scenario_text: str, source_name: str, spec: RunSpec) -> RunSummary:
    """Run the scenario `scenario_text` (named `source_name` in errors) with `spec`'s point
    applied and its seed, to the end, in memory.

    Raises ScenarioError when the point makes the scenario invalid (a bad path or value).
    """
    scenario = load_point(scenario_text, source_name, spec.point)
    return summarise(replace(scenario, seed=spec.seed), spec.point)


@functools.lru_cache(maxsize=8)
def load_point(scenario_text: str, source_name: str, point: Point) -> Scenario:
    """The scenario text with `point`'s overrides applied, checked (cached: see the module).

    Raises ScenarioError; a problem the point caused names its `--set` (`OverrideEdit.blame`).
    """
    if not point:
        return parse_scenario(scenario_text, source_name)
    edit = OverrideEdit(point)
    try:
        return parse_scenario(scenario_text, source_name, edit=edit)
    except ScenarioError as err:
        raise edit.blame(err, lambda: parse_scenario(scenario_text, source_name)) from None


def summarise(scenario: Scenario, point: Point = (),
              max_window_calls: int = MAX_WINDOW_CALLS) -> RunSummary:
    """Rate `scenario` (with its own seed) to its end and return its RunSummary."""
    setup = scenario.setup
    engine = RatingEngine(setup)
    plan = TrafficPlan(scenario)
    builder = SummaryBuilder(engine.tables, setup.currency, scenario.name, scenario.seed, start=setup.start)
    tracker = RunTracker(engine.tables, builder)
    pools = PoolWatch(engine)
    end = setup.end_ms
    window_ms = virtual_window_ms(expected_calls(scenario), end)
    refills = iter(month_starts(setup.start, end) + [end])
    refill = next(refills)
    while engine.now < end:
        t0 = engine.now
        while refill <= t0:
            refill = next(refills)
        t1, arrivals = next_arrivals(engine, plan, min(end, t0 + window_ms, refill), max_window_calls)
        connected = pools.before(engine, arrivals, t1)
        step = engine.advance(arrivals, t1)
        tracker.window(t0, t1, arrivals, step.cdrs, step.events)
        pools.after(engine, connected, arrivals, step.cdrs)
    tracker.final(engine.finish().cdrs)
    return tracker.summary(scenario.seed, point, engine.balances(), pools.by_org())
