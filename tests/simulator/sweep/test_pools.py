"""The first instant a pool hits 0, read from a window's charges (`sweep._pools`), against the
plain way: rate the window again from a copy of the engine, halving it down to one ms."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rating_core import RatingEngine
from simulator.scenario import parse_scenario
from simulator.sweep import summarise
from simulator.traffic import TrafficPlan
from tests.scenarios import org, scenario_toml, staff

LICENSES = ["phone_system", "domestic_calling_plan", "international_calling_plan", "communications_credits"]


def _text(increment: str, seed: int) -> str:
    tariffs = [{"prefix": "1", "country": "US", "zone": "A", "per_minute": "0.02", "increment": increment},
               {"prefix": "44", "country": "GB", "zone": "A", "per_minute": "0.03", "increment": "30/6"}]
    return scenario_toml(
        seed=seed, duration="6h", tariffs=tariffs,
        plans={"domestic_minutes": {"default": 4}, "international_minutes": 3},
        orgs=[org("acme", credits={"initial": "1.00", "auto_recharge": True, "recharge_below": "0.50",
                                   "recharge_amount": "0.70"}, users=[staff(10, LICENSES)]),
              org("globex", users=[staff(6, LICENSES)])],
        traffic=[{"org": "acme", "type": "domestic", "calls_per_hour": 90, "holding_mean": "2m"},
                 {"org": "acme", "type": "international", "calls_per_hour": 30, "holding_mean": "3m"},
                 {"org": "globex", "type": "domestic", "calls_per_hour": 50, "holding_mean": "4m"}])


def _by_halving(text: str) -> dict[str, int | None]:
    scenario = parse_scenario(text)
    engine, plan = RatingEngine(scenario.setup), TrafficPlan(scenario)
    shared = {id(engine.setup): engine.setup, id(engine.tables): engine.tables,
              id(engine.admission): engine.admission}
    first = np.full(len(engine.tables.pool_names), -1)
    while engine.now < scenario.setup.end_ms:
        t0 = engine.now
        t1 = min(scenario.setup.end_ms, t0 + 3_600_000)
        arrivals = plan.chunk(t0, t1)
        start = copy.deepcopy(engine, dict(shared))
        engine.advance(arrivals, t1)
        for pool in np.flatnonzero((first < 0) & (engine.pool_remaining() == 0)).tolist():
            lo, hi, at = t0, t1, start
            while hi - lo > 1:
                mid = (lo + hi) // 2
                probe = copy.deepcopy(at, dict(shared))
                a, b = np.searchsorted(arrivals.t_ms, [lo, mid])
                probe.advance(arrivals.take(slice(int(a), int(b))), mid)
                if probe.pool_remaining()[pool] == 0:
                    hi = mid
                else:
                    lo, at = mid, probe
            first[pool] = lo
    found: dict[str, int | None] = {}
    for o, org_id in enumerate(engine.tables.org_ids):
        mine = [int(first[p]) for p, owner in enumerate(engine.tables.pool_orgs) if owner == o and first[p] >= 0]
        found[org_id] = min(mine) if mine else None
    return found


@pytest.mark.parametrize("increment", ["60/60", "30/6", "1/1", "6/30"])
@pytest.mark.parametrize("seed", [1, 2])
def test_the_instant_read_from_the_charges_is_the_one_rating_finds(increment: str, seed: int) -> None:
    text = _text(increment, seed)
    summary = summarise(parse_scenario(text))
    found = {org_id: s.pool_exhausted_ms for org_id, s in summary.orgs.items()}
    assert found == _by_halving(text)
    assert all(t is not None for t in found.values())  # every org's pools ran dry
