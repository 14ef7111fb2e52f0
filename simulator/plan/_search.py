"""The search: from the org's spend to the cheapest setting whose risk passes, in few runs.

Why it works this way (docs/plan.md has the reasoning at length):

1. **Baseline.**  The org's traffic run with ample credit and no recharge, on the screening
   seeds: what it spends, seed by seed.  Nothing spent: no credits needed.  If the payment card
   stops working inside the horizon (`card_dead_ms`), the same seeds are run again up to that
   instant; a longer run starts with exactly the calls of a shorter one (simulator/traffic.py),
   so the difference is, per seed, what the org spends once no recharge can succeed (`window`).
2. **Recharge amount.**  Each recharge buys one amount, so the expected purchase grows with it
   (half an amount is left on average when the horizon ends) and so does the money held; a
   smaller amount only means more recharges.  It is the smallest grid amount whose recharges a
   month, floor(spend / amount) per seed of the baseline while the card works, average at or
   below the cap: computed, no run needed.
3. **Reserve.**  Risk falls as the trigger rises (the balance never drops below the trigger
   while recharges succeed, and is between trigger and trigger + amount when the card stops).
   The reserve is the trigger (initial = trigger + amount, the balance a recharge leaves) or,
   when the card never works, the initial amount itself.  It is bracketed from the evidence (the
   largest window spend, and that minus an amount, which a seed's own spend says cannot pass),
   then bisected along the grid with the same screening seeds for every probe (common random
   numbers: a probe differs from the last by its setting only).  A probe passes the screen when
   its share of seeds with a credit-caused cut is within the share a verification may have and
   still pass (none, with the default seeds).
4. **Verification.**  The cheapest screened setting is run on fresh seeds, as many as the target
   needs; it passes when the Clopper-Pearson upper bound is below the target.  If it fails, the
   seeds that were cut join the screen, the search goes on upward from there, and the next
   candidate is verified on fresh seeds again, a few times at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import _amounts as amounts
from rating_core import MICRO

from ._model import MONTH_MS, Evaluator, Evidence, Plan, Rejection, Setting
from ._stats import cuts_allowed, percent_up

VERIFY_ATTEMPTS = 4
GROW = 8.0  # bracketing upward from a probe that failed the screen: log8 probes, then bisection
REGROW = 1.25  # ... after a failed verification: the screen passed just below, the answer is near


class PlanError(Exception):
    """The question is wrong (bad input, one line for the user): exit status 2."""


class NoSettingPasses(PlanError):
    """The search found no setting that passes (one line saying what was tried): exit status 1."""


@dataclass(frozen=True)
class Question:
    """What the administrator asks, and how much evidence answers it."""

    org: str
    currency: str
    horizon_ms: int
    card_dead_ms: int | None  # first instant recharges fail; None: the card works throughout
    target: float  # the largest acceptable risk of a credit-caused cut, in (0, 1)
    confidence: float
    seeds: int  # fresh seeds per verification
    screen_seeds: int
    max_recharges_per_month: float

    @classmethod
    def screen_size(cls, seeds: int) -> int:
        """Screening seeds for `seeds` verification seeds: a tenth, at least 10, at most all."""
        return min(seeds, max(10, -(-seeds // 10)))


class SeedSupply:
    """Disjoint slices of one deterministic seed sequence: the screening seeds first, then fresh
    ones for each verification, so no verdict reuses a seed that chose its candidate."""

    def __init__(self, derive: Callable[[int], list[int]]) -> None:
        self._derive = derive
        self._used = 0

    def take(self, n: int) -> list[int]:
        seeds = self._derive(self._used + n)[self._used:]
        self._used += n
        return seeds


Say = Callable[[str], None]


def make_plan(question: Question, evaluator: Evaluator, supply: SeedSupply,
              say: Say = lambda line: None) -> Plan:
    """Search the cheapest passing setting for `question.org`.

    In: the question, an evaluator that runs the scenario (sweep's `run_many`, or a synthetic
    one in tests), the seeds, and `say` for one progress line per stage.  Out: the `Plan`.
    Raises `NoSettingPasses` when no setting up to the money limit passes the screen, or none
    passes its verification after `VERIFY_ATTEMPTS` tries.
    """
    q = question
    screen = supply.take(q.screen_seeds)
    say(f"baseline: {len(screen)} runs with ample credit")
    base = Evidence.of(None, evaluator.baseline(screen, None), q.confidence, q.horizon_ms, "baseline")
    plan = Plan(q.org, q.currency, q.horizon_ms, q.target, q.confidence, q.card_dead_ms,
                q.max_recharges_per_month, base)
    if base.risk.cuts:
        raise PlanError(f"org {q.org!r} spends more than {amounts.MAX_UNITS:,} {q.currency} in a "
                        "run: beyond what a scenario can hold")
    spent = [o.spent_micros for o in base.outcomes]
    if max(spent) == 0:
        plan.runs = evaluator.runs
        return plan

    dead = q.card_dead_ms
    if dead is not None and 0 < dead < q.horizon_ms:
        say(f"baseline: {len(screen)} runs up to the card's expiry")
        before = [b.spent_micros for b in evaluator.baseline(screen, dead)]
        window, recharge_spends = [s - b for s, b in zip(spent, before)], before
    elif dead is not None and dead <= 0:
        window, recharge_spends = spent, spent
    else:
        window, recharge_spends = None, spent
    plan.window_micros = tuple(window) if window is not None else None

    amount = _amount(recharge_spends, q)
    by_initial = dead is not None and dead <= 0

    def setting(index: int) -> Setting:
        reserve = amounts.value_at(index)
        if by_initial:
            return Setting(initial=reserve, below=1, amount=amount)
        return Setting(initial=reserve + amount, below=reserve, amount=amount)

    screened: dict[int, Evidence] = {}
    # A probe passes the screen when its share of cut seeds is within the share a verification
    # may have and still pass: with the default seeds (no cut allowed) that is no cut at all.
    verify_allows = (cuts_allowed(q.seeds, q.target, q.confidence) or 0) / q.seeds

    def allowed(seeds: int) -> int:
        return math.floor(verify_allows * seeds)

    def passes(index: int) -> bool:
        if index not in screened:
            s = setting(index)
            say(f"screen: {_say(s, q.currency)} on {len(screen)} seeds")
            outcomes = evaluator.trial([s], screen)[s]
            screened[index] = Evidence.of(s, outcomes, q.confidence, q.horizon_ms, "screen")
            plan.probes.append(screened[index])
        return screened[index].risk.cuts <= allowed(len(screen))

    hi, lo = _bracket(_first_probes(window, amount), passes)
    failed_verify: list[Evidence] = []
    for attempt in range(VERIFY_ATTEMPTS):
        while lo is not None and hi - lo > 1:
            mid = (lo + hi) // 2
            if passes(mid):
                hi = mid
            else:
                lo = mid
        s = setting(hi)
        fresh = supply.take(q.seeds)
        say(f"verify: {_say(s, q.currency)} on {len(fresh)} fresh seeds")
        ev = Evidence.of(s, evaluator.trial([s], fresh)[s], q.confidence, q.horizon_ms, "verify")
        plan.probes.append(ev)
        if ev.risk.below(q.target):
            plan.recommended = ev
            break
        failed_verify.append(ev)
        if attempt == VERIFY_ATTEMPTS - 1:
            break
        # The seeds that were cut are the informative ones: they join the screen, which then
        # searches upward from the failed reserve.  The verdict still comes from fresh seeds.
        screen = screen + [o.seed for o in ev.outcomes if o.credit_cut]
        screened.clear()
        lo = hi
        hi = _grow(lo, passes, REGROW)
    if plan.recommended is None:
        last = failed_verify[-1]
        raise NoSettingPasses(
            f"no setting passed after {VERIFY_ATTEMPTS} verifications: {last.risk.cuts} of "
            f"{last.seeds} fresh seeds had a credit-caused cut with {_say(last.setting, q.currency)}")

    plan.cheaper = _cheaper(plan, screened, failed_verify, hi, recharge_spends, q, allowed)
    if plan.recommended.recharges_per_month > q.max_recharges_per_month:
        plan.notes.append(
            f"the verification runs recharged {plan.recommended.recharges_per_month:.1f} times a month "
            f"on average, above the cap of {q.max_recharges_per_month:g} that the amount meets on the "
            "baseline's seeds: the cap is on an average, and fresh seeds spend a little differently")
    plan.runs = evaluator.runs
    return plan


def recharges_per_month(spends: Sequence[int], amount: int, horizon_ms: int) -> float:
    """Recharges a month an amount implies for these per-seed spends (while the card works).

    With initial = trigger + amount the balance starts where a recharge leaves it, and each
    recharge comes when another `amount` has been spent: floor(spend / amount) recharges.
    """
    per_run = sum(int(s // (amount * MICRO)) for s in spends) / len(spends)
    return per_run * MONTH_MS / horizon_ms


def _amount(spends: Sequence[int], q: Question) -> int:
    """The smallest grid amount whose recharges a month stay at or below the cap."""
    index = amounts.index_at_least(
        amounts.units_of(max(spends)) * MONTH_MS / q.horizon_ms / (q.max_recharges_per_month + 1))
    # recharges fall as the amount grows: walk up from an amount that surely recharges too often
    while index > 0 and recharges_per_month(spends, amounts.value_at(index), q.horizon_ms) \
            <= q.max_recharges_per_month:
        index -= 1
    while recharges_per_month(spends, amounts.value_at(index), q.horizon_ms) > q.max_recharges_per_month:
        index += 1
    return amounts.value_at(index)


def _first_probes(window: Sequence[int] | None, amount: int) -> list[int]:
    """Grid indexes to screen first, most expensive first: from the window spend (the largest;
    that minus an amount, which a seed's own spend says is too little), then the floor."""
    if window is None:
        return [0]
    first = amounts.index_at_least(amounts.units_of(max(window)))
    low = amounts.index_at_least(max(1.0, amounts.units_of(min(window)) - amount))
    return sorted({first, low, 0}, reverse=True)


def _bracket(probes: Sequence[int], passes: Callable[[int], bool]) -> tuple[int, int | None]:
    """(hi, lo): grid indexes with hi passing the screen and lo failing it (lo None: hi is the
    grid's floor, nothing cheaper to try)."""
    if not passes(probes[0]):
        return _grow(probes[0], passes), probes[0]
    hi = probes[0]
    for probe in probes[1:]:
        if not passes(probe):
            return hi, probe
        hi = probe
    return hi, None


def _grow(lo: int, passes: Callable[[int], bool], factor: float = GROW) -> int:
    """The first index up from a failing `lo`, by `factor` a step, that passes the screen."""
    while True:
        up = max(lo + 1, amounts.index_at_least(amounts.value_at(lo) * factor))
        if amounts.value_at(up) > amounts.MAX_UNITS:
            raise NoSettingPasses(f"no trigger up to {amounts.MAX_UNITS:,} passes the screen")
        if passes(up):
            return up
        lo = up


def _cheaper(plan: Plan, screened: dict[int, Evidence], failed_verify: list[Evidence], hi: int,
             spends: Sequence[int], q: Question, allowed: Callable[[int], int]) -> Rejection | None:
    """The next cheaper setting than the recommendation, and why it was rejected."""
    below = [i for i, ev in screened.items() if i < hi and ev.risk.cuts > allowed(ev.seeds)]
    if below:
        ev = screened[max(below)]
        return Rejection(ev.setting, _risk_reason(ev, q), ev)
    if failed_verify:
        ev = failed_verify[-1]
        return Rejection(ev.setting, _risk_reason(ev, q), ev)
    rec = plan.recommended.setting
    index = amounts.index_at_least(rec.amount)
    if index == 0:
        return None
    # the reserve is at the grid's floor: what is cheaper is a smaller amount, over the cap
    smaller = amounts.value_at(index - 1)
    cheaper = Setting(initial=rec.initial - rec.amount + smaller, below=rec.below, amount=smaller)
    rate = recharges_per_month(spends, smaller, q.horizon_ms)
    return Rejection(cheaper, f"{rate:.1f} recharges a month by the baseline's spend, above the cap "
                              f"of {q.max_recharges_per_month:g} (--max-recharges-per-month)")


def _risk_reason(ev: Evidence, q: Question) -> str:
    r = ev.risk
    return (f"{r.cuts} of {r.seeds} runs cut: at {r.confidence * 100:g} % confidence the risk is only "
            f"known to be ≤ {percent_up(r.upper)}, not below {q.target:g}")


def _say(s: Setting | None, currency: str) -> str:
    if s is None:
        return "the baseline"
    return f"initial {s.initial:,}, below {s.below:,}, amount {s.amount:,} {currency}"

