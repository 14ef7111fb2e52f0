"""The search on synthetic orgs (no simulation): a risk that is a known function of the setting."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from simulator.plan import MONTH_MS, NoSettingPasses, Outcome, Question, SeedSupply, Setting, make_plan
from simulator.plan import _amounts as amounts
from simulator.plan._search import recharges_per_month

U = 1_000_000  # micro-units per currency unit
DAY = 24 * 3_600_000


class Synthetic:
    """An org whose spend per seed is drawn from the seed; `cut(setting, seed, before, window)`
    decides the credit-caused cut.  Recharges: one per `amount` spent below the start balance's
    margin, until the card stops (`dead_ms`)."""

    def __init__(self, spend: float, dead_fraction: float | None,
                 cut: Callable[[Setting, int, float, float], bool]) -> None:
        self.spend, self.dead_fraction, self.cut = spend, dead_fraction, cut
        self.runs = 0
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def _draw(self, seed: int) -> tuple[float, float]:
        rng = np.random.default_rng(seed)
        total = self.spend * (1 + 0.03 * rng.standard_normal())
        f = self.dead_fraction if self.dead_fraction is not None else 1.0
        before = total * f * (1 + 0.01 * rng.standard_normal())
        return before, total - before

    def baseline(self, seeds: Sequence[int], until_ms: int | None) -> list[Outcome]:
        self.runs += len(seeds)
        self.calls.append(("baseline", tuple(seeds)))
        out = []
        for seed in seeds:
            before, window = self._draw(seed)
            spent = before if until_ms is not None else before + window
            out.append(Outcome(seed, False, 0, round(spent * U), 10**9 * U, 0, 10**9 * U - round(spent * U)))
        return out

    def trial(self, settings: Sequence[Setting], seeds: Sequence[int]) -> dict[Setting, list[Outcome]]:
        self.runs += len(settings) * len(seeds)
        self.calls.append(("trial", tuple(seeds)))
        result = {}
        for s in settings:
            rows = []
            for seed in seeds:
                before, window = self._draw(seed)
                margin = s.initial - s.below
                recharges = max(0, int((before - margin) // s.amount) + 1) if before > margin else 0
                purchased = s.initial + recharges * s.amount
                cut = self.cut(s, seed, before, window)
                spent = before + window
                rows.append(Outcome(seed, cut, int(cut), round(spent * U), round(purchased * U), recharges,
                                    max(0, round((purchased - spent) * U))))
            result[s] = rows
        return result


def question(**kw) -> Question:
    base = dict(org="o", currency="USD", horizon_ms=30 * DAY, card_dead_ms=None, target=0.05,
                confidence=0.95, seeds=59, screen_seeds=10, max_recharges_per_month=30.0)
    base.update(kw)
    return Question(**base)


def supply() -> SeedSupply:
    return SeedSupply(lambda n: list(range(1000, 1000 + n)))


def test_threshold_risk_finds_the_first_grid_value_at_the_threshold() -> None:
    """Every seed is cut below 8,431: the plan is the first typed amount >= 8,431, the next
    cheaper one is rejected with all its seeds cut, in a bisection's number of probes."""
    org = Synthetic(60_000, None, lambda s, seed, b, w: s.below < 8_431)
    plan = make_plan(question(), org, supply())
    rec = plan.recommended.setting
    assert rec.below == amounts.at_least(8_431) == 8_440
    assert rec.initial == rec.below + rec.amount
    assert plan.recommended.risk.cuts == 0 and plan.recommended.seeds == 59
    cheaper = plan.cheaper.evidence
    assert cheaper.setting.below == 8_430 and cheaper.risk.cuts == cheaper.seeds
    screens = [p for p in plan.probes if p.stage == "screen"]
    assert len(screens) <= 18  # floor, x8 steps to 32,768, bisection on the ~810 points above 4,096


def test_risk_is_monotone_along_the_grid() -> None:
    """Every screened probe at or above the plan passed, every one below it failed."""
    org = Synthetic(60_000, None, lambda s, seed, b, w: s.below < 512 + seed % 7)
    plan = make_plan(question(), org, supply())
    rec = plan.recommended.setting.below
    for p in plan.probes:
        assert (p.risk.cuts == 0) == (p.setting.below >= rec), p.setting


def test_card_stopping_mid_horizon_bisects_the_trigger_from_the_window_spend() -> None:
    """The card stops at 15 d: the balance then (below + a share of the amount, by the phase
    the seed sets) must carry the spend of the rest of the month."""

    def cut(s: Setting, seed: int, before: float, window: float) -> bool:
        phase = np.random.default_rng(seed + 7).random()
        return s.below + phase * s.amount < window

    org = Synthetic(60_000, 0.5, cut)
    q = question(card_dead_ms=15 * DAY)
    plan = make_plan(q, org, supply())
    rec = plan.recommended.setting
    assert plan.window_micros is not None
    assert max(plan.window_micros) / U > 29_000  # about half of 60,000 is spent after the card stops
    # the amount follows the cap on the spend while recharges work: ~30,000 in a month, 30 a month
    spends = [o.spent_micros for o in org.baseline(range(1000, 1010), 1)]
    assert recharges_per_month(spends, rec.amount, 30 * DAY) <= 30
    assert recharges_per_month(spends, amounts.value_at(amounts.index_at_least(rec.amount) - 1), 30 * DAY) > 30
    assert plan.recommended.risk.cuts == 0
    assert plan.cheaper.evidence.setting.below < rec.below and plan.cheaper.evidence.risk.cuts > 0
    # baseline twice (whole horizon, then up to the card's end), both on the screening seeds
    assert org.calls[0] == ("baseline", tuple(range(1000, 1010))) == org.calls[1]


def test_verification_on_fresh_seeds_overrules_the_screen() -> None:
    """Seeds the screen never sees need a higher trigger: the first verification fails, the
    reserve steps up on fresh seeds until one passes, and the failure is the cheaper evidence."""
    org = Synthetic(60_000, None, lambda s, seed, b, w: s.below < (900 if seed >= 1010 else 500))
    plan = make_plan(question(), org, supply())
    verifies = [p for p in plan.probes if p.stage == "verify"]
    assert len(verifies) >= 2 and verifies[0].risk.cuts > 0
    assert plan.recommended.setting.below >= 900
    assert plan.cheaper.evidence.risk.cuts > 0
    assert plan.cheaper.setting.below < plan.recommended.setting.below
    seen: set[int] = set()
    for v in verifies:
        seeds = {o.seed for o in v.outcomes}
        assert not seeds & seen and not seeds & set(range(1000, 1010))
        seen |= seeds


def test_valid_card_and_no_risk_goes_to_the_floor_and_the_amount_cap() -> None:
    org = Synthetic(60_000, None, lambda s, seed, b, w: False)
    plan = make_plan(question(max_recharges_per_month=10), org, supply())
    rec = plan.recommended.setting
    assert rec.below == 1
    # the cap holds for the baseline's seeds; fresh seeds spend a little more or less
    assert plan.recommended.recharges_per_month == pytest.approx(10, abs=0.5)
    assert plan.cheaper.setting.amount == amounts.value_at(amounts.index_at_least(rec.amount) - 1)
    assert plan.cheaper.evidence is None and "recharges a month" in plan.cheaper.reason
    spends = [o.spent_micros for o in plan.baseline.outcomes]
    assert recharges_per_month(spends, plan.cheaper.setting.amount, 30 * DAY) > 10


def test_no_spend_means_no_credits_needed() -> None:
    org = Synthetic(0.0, None, lambda s, seed, b, w: True)
    plan = make_plan(question(), org, supply())
    assert plan.no_credits_needed and org.runs == 10


def test_unreachable_target_is_a_plan_error() -> None:
    org = Synthetic(60_000, None, lambda s, seed, b, w: seed % 3 == 0)
    with pytest.raises(NoSettingPasses, match="passes the screen"):
        make_plan(question(), org, supply())


def test_recharges_per_month_scale_to_thirty_days() -> None:
    org = Synthetic(1_000, None, lambda s, seed, b, w: False)
    plan = make_plan(question(horizon_ms=DAY, max_recharges_per_month=30), org, supply())
    # one day of a 30-a-month cap allows one recharge a day on average
    assert recharges_per_month([o.spent_micros for o in plan.baseline.outcomes],
                               plan.recommended.setting.amount, DAY) <= 30
    assert plan.recommended.recharges_per_month == pytest.approx(
        plan.recommended.recharges_mean * MONTH_MS / DAY)


def test_more_seeds_let_a_rarely_cut_setting_pass() -> None:
    """One seed in 300 is cut below 9,000 and every seed below 500: with the fewest seeds (no cut
    allowed) the plan needs 9,000; with 1,000 seeds (4 cuts allowed at 1 %) 500 passes."""
    def cut(s: Setting, seed: int, b: float, w: float) -> bool:
        return s.below < 500 or (s.below < 9_000 and seed % 300 == 0)

    few = make_plan(question(target=0.01, seeds=299, screen_seeds=30), Synthetic(60_000, None, cut), supply())
    many = make_plan(question(target=0.01, seeds=1000, screen_seeds=100), Synthetic(60_000, None, cut), supply())
    assert few.recommended.setting.below >= 9_000
    assert many.recommended.setting.below == 500 and 0 < many.recommended.risk.cuts <= 4
