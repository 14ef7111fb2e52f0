"""A plan for one org of a scenario file: the question checked against the scenario, then the
search run through sweep.

An org without an `[orgs.credits]` table (what `callsim import` writes: the table is left for
the administrator to fill in) is planned as if communications credits with auto-recharge were
set up, the plan searching every amount anyway, and without a `card_expires` the card is one
that never expires; the plan's notes say both.

Bad input is a `PlanError` with one line: an org the scenario does not have, a risk or
confidence outside (0, 1), fewer seeds than the target needs.
"""

from __future__ import annotations

import contextlib

from collections.abc import Callable
from pathlib import Path

from rating_core import card_valid_until_ms

from ..scenario import Scenario
from ..sweep import SYNC, Override, derive_seeds, open_cluster
from ._model import Plan
from ._runner import SweepEvaluator
from ._search import PlanError, Question, SeedSupply, make_plan
from ._stats import seeds_needed, upper_bound

NEVER = "9999-12-31"  # a card date that outlives any horizon


def _cluster(scheduler: str | None, workers: int | None) -> contextlib.AbstractContextManager:
    """One cluster for every stage of the search (a LocalCluster starts its processes once)."""
    if scheduler == SYNC:
        return contextlib.nullcontext(None)
    return open_cluster(scheduler, workers)


def plan_scenario(path: Path, scenario: Scenario, org: str, target: float, *, confidence: float = 0.95,
                  seeds: int | None = None, max_recharges_per_month: float = 30.0,
                  card_renewed: bool = False, scheduler: str | None = None, workers: int | None = None,
                  progress: bool = False, say: Callable[[str], None] = lambda line: None) -> Plan:
    """Plan `org`'s credits in the scenario at `path` (already loaded as `scenario`).

    `seeds`: fresh seeds per verification (None: the fewest that can show `target`).
    `card_renewed`: plan as if the payment card stays valid; otherwise the scenario's card
    expiry holds and recharges fail after it.  Raises PlanError (one line) for bad input or
    when no setting passes; ScenarioError from the loader.
    """
    for name, value in (("--max-cut-risk", target), ("--confidence", confidence)):
        if not 0.0 < value < 1.0:
            raise PlanError(f"{name} {value:g}: must be between 0 and 1, both excluded")
    if max_recharges_per_month <= 0:
        raise PlanError(f"--max-recharges-per-month {max_recharges_per_month:g}: must be above 0")
    orgs = {o.id: o for o in scenario.setup.orgs}
    if org not in orgs:
        raise PlanError(f"{path}: no org {org!r} (orgs: {', '.join(orgs) or 'none'})")
    credits = orgs[org].credits
    card_expires = credits.card_expires if credits is not None else None
    need = seeds_needed(target, confidence)
    if seeds is None:
        seeds = need
    elif seeds < need:
        raise PlanError(
            f"--seeds {seeds}: too few to show a risk below {target:g} at {confidence:.0%} confidence "
            f"(0 cuts in {seeds} seeds bound it by {upper_bound(0, seeds, confidence):.2%}); "
            f"at least {need}")
    horizon = scenario.setup.end_ms
    dead = None if card_renewed else card_valid_until_ms(scenario.setup.start, card_expires)
    if dead is not None:
        dead = None if dead >= horizon else max(0, dead)
    question = Question(org=org, currency=scenario.setup.currency, horizon_ms=horizon, card_dead_ms=dead,
                        target=target, confidence=confidence, seeds=seeds,
                        screen_seeds=Question.screen_size(seeds),
                        max_recharges_per_month=max_recharges_per_month)
    # without a table (or a card_expires in it) the card never expires: nothing to renew
    fixed = (Override(f"orgs.{org}.credits.card_expires", NEVER),) if card_renewed and card_expires else ()
    supply = SeedSupply(lambda n: derive_seeds(scenario.seed, n))
    with _cluster(scheduler, workers) as cluster:
        evaluator = SweepEvaluator(path, org, fixed, add_credits=credits is None, cluster=cluster,
                                   scheduler=scheduler, workers=workers, progress=progress)
        plan = make_plan(question, evaluator, supply, say)
    if credits is None:
        plan.notes.append(f"org {org} has no [orgs.credits] table in the scenario: planned as if "
                          "communications credits with auto-recharge were set up, paid by a card "
                          "that never expires")
    elif card_expires is None:
        plan.notes.append("the scenario's [orgs.credits] gives no card_expires: planned with a "
                          "payment card that never expires")
    if card_expires is not None and dead is not None:
        plan.notes.append(
            f"the payment card expires on {card_expires.isoformat()}, within the horizon: "
            "recharges fail after it, so the balance then must carry the rest of the horizon "
            "(renew the card and plan with --card-renewed for the settings without that)")
    if card_renewed and card_expires is not None:
        plan.notes.append(f"planned as if the payment card (expiring {card_expires.isoformat()} "
                          "in the scenario) were renewed")
    return plan
