"""One run of a sweep, in memory: the scenario with a grid point applied, rated with a seed.

This is what a worker runs.  It drives the rating core as `callsim run` does in virtual time
(`switch.next_arrivals`, then `RatingEngine.advance`, window after window, then `finish`),
but hands each window to a `RunTracker` instead of the output files: no CDR is formatted or
written, so a month of enterprise_month costs its rating and little else.  Windows also end
at each monthly refill, for the pool watch (`_pools`), and at each day's end, for the spend
per day (`_summary`); where windows end changes nothing in the results.

A worker keeps the last few scenarios it loaded (keyed by the text, its name and the point),
so the runs of one grid point load and check the file once.
"""

from __future__ import annotations

import functools

import numpy as np
from dataclasses import replace

from rating_core import RatingEngine, month_starts

from ..outputs import SummaryBuilder
from ..scenario import Scenario, parse_scenario
from ..switch import MAX_WINDOW_CALLS, VIRTUAL_WINDOW_MS, next_arrivals
from ..traffic import TrafficPlan
from ._grid import Point, RunSpec
from ._overrides import apply_overrides
from ._pools import PoolWatch
from ._summary import MS_PER_DAY, RunSummary, RunTracker


def run_one(scenario_text: str, source_name: str, spec: RunSpec) -> RunSummary:
    """Run the scenario `scenario_text` (named `source_name` in errors) with `spec`'s point
    applied and its seed, to the end, in memory.

    Raises ScenarioError when the point makes the scenario invalid (a bad path or value).
    """
    scenario = load_point(scenario_text, source_name, spec.point)
    return summarise(replace(scenario, seed=spec.seed), spec.point)


@functools.lru_cache(maxsize=8)
def load_point(scenario_text: str, source_name: str, point: Point) -> Scenario:
    """The scenario text with `point`'s overrides applied, checked (cached: see the module)."""
    return parse_scenario(scenario_text, source_name,
                          edit=(lambda document: apply_overrides(document, point)) if point else None)


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
    refills = iter(month_starts(setup.start, end) + [end])
    refill = next(refills)
    balance = np.zeros(len(setup.orgs), dtype=np.int64)  # before the initial lots, bought at t = 0
    while engine.now < end:
        t0 = engine.now
        while refill <= t0:
            refill = next(refills)
        day_end = (t0 // MS_PER_DAY + 1) * MS_PER_DAY
        t1, arrivals = next_arrivals(engine, plan, min(end, t0 + VIRTUAL_WINDOW_MS, refill, day_end),
                                     max_window_calls)
        connected = pools.before(engine, arrivals, t1)
        step = engine.advance(arrivals, t1)
        before, balance = balance, engine.balances()
        tracker.window(t0, t1, arrivals, step.cdrs, step.events, before, balance)
        pools.after(engine, connected, arrivals, step.cdrs)
    tracker.final(engine.finish().cdrs)
    return tracker.summary(scenario.seed, point, engine.balances(), pools.by_org())
