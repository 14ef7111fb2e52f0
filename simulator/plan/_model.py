"""What a plan is made of: settings on the admin center's grid, one org's outcome per run, and
the evidence a set of runs gives about one setting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ._stats import Risk, risk_of

MONTH_MS = 30 * 24 * 3_600_000  # "a month" in recharges per month: 30 days


@dataclass(frozen=True, order=True)
class Setting:
    """The three numbers typed into the admin center, in whole currency units; auto-recharge on."""

    initial: int
    below: int  # "recharge when the balance falls below"
    amount: int  # "recharge amount"


@dataclass(frozen=True)
class Outcome:
    """One org in one run (one seed): what a plan weighs.

    `credit_cut`: the run had a cut the credit settings could have prevented, i.e. a charge
    refused for too low a balance where credits were allowed (SPEC §3 `balance_exhausted`).
    `cuts` counts every dropped_balance_exhausted and blocked_no_balance call, those of users
    whom credits may not pay (no communications_credits licence) included: no setting fixes them.
    """

    seed: int
    credit_cut: bool
    cuts: int
    spent_micros: int
    purchased_micros: int
    recharges: int
    lowest_balance_micros: int


class Evaluator(Protocol):
    """Runs the scenario for one org; `runs` counts the runs made so far."""

    runs: int

    def baseline(self, seeds: Sequence[int], until_ms: int | None) -> list[Outcome]:
        """Runs with ample credit and no recharge (nothing credit-caused can cut), over the
        whole horizon or only until `until_ms`: the org's spend, seed by seed."""

    def trial(self, settings: Sequence[Setting], seeds: Sequence[int]) -> dict[Setting, list[Outcome]]:
        """Each setting (auto-recharge on) run for each seed."""


def nearest_rank(values: Sequence[int], q: float) -> int:
    """The q-quantile by nearest rank: an observed value (exact money), not an interpolation."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def mean_micros(values: Sequence[int]) -> int:
    """The mean of integer micro-units, rounded to a micro-unit (half up), exact arithmetic."""
    total, n = sum(values), len(values)
    return (2 * total + n) // (2 * n)


@dataclass(frozen=True)
class Evidence:
    """What runs of one setting showed, over their seeds."""

    setting: Setting | None  # None for a baseline
    outcomes: tuple[Outcome, ...]
    risk: Risk
    horizon_ms: int
    stage: str = ""  # "screen" (shared seeds, a filter) or "verify" (fresh seeds, the verdict)

    @classmethod
    def of(cls, setting: Setting | None, outcomes: Sequence[Outcome], confidence: float,
           horizon_ms: int, stage: str = "") -> Evidence:
        cuts = sum(o.credit_cut for o in outcomes)
        return cls(setting, tuple(outcomes), risk_of(cuts, len(outcomes), confidence), horizon_ms, stage)

    @property
    def seeds(self) -> int:
        return len(self.outcomes)

    def spent(self, q: float) -> int:
        return nearest_rank([o.spent_micros for o in self.outcomes], q)

    @property
    def spent_mean(self) -> int:
        return mean_micros([o.spent_micros for o in self.outcomes])

    @property
    def purchased_mean(self) -> int:
        return mean_micros([o.purchased_micros for o in self.outcomes])

    @property
    def unused_mean(self) -> int:
        """Bought but not spent within the horizon (what is left, or expired), on average."""
        return mean_micros([o.purchased_micros - o.spent_micros for o in self.outcomes])

    @property
    def recharges_mean(self) -> float:
        return sum(o.recharges for o in self.outcomes) / self.seeds

    @property
    def recharges_per_month(self) -> float:
        return self.recharges_mean * MONTH_MS / self.horizon_ms

    def lowest_balance(self, q: float) -> int:
        return nearest_rank([o.lowest_balance_micros for o in self.outcomes], q)

    @property
    def structural_cut_seeds(self) -> int:
        """Seeds with cuts but no credit-caused one: cuts no credit setting prevents."""
        return sum(1 for o in self.outcomes if o.cuts and not o.credit_cut)


@dataclass(frozen=True)
class Rejection:
    """A cheaper setting than the plan's, and why it was not taken: runs that had cuts
    (`evidence`), or, for a smaller recharge amount, the recharges the baseline's spend implies
    (`evidence` None: no run needed, see `_search.recharges_per_month`)."""

    setting: Setting
    reason: str
    evidence: Evidence | None = None


@dataclass
class Plan:
    """The answer: a setting with its evidence, or that the org needs no credits.

    `baseline` is the spend with ample credit; `window` the spend each screening seed had after
    the card stops working (None when it works through the horizon); `probes` every evidence
    gathered, in order; `cheaper` the next cheaper setting and why it was rejected.
    """

    org: str
    currency: str
    horizon_ms: int
    target: float
    confidence: float
    card_dead_ms: int | None
    max_recharges_per_month: float
    baseline: Evidence
    window_micros: tuple[int, ...] | None = None
    recommended: Evidence | None = None
    cheaper: Rejection | None = None
    probes: list[Evidence] = field(default_factory=list)
    runs: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def no_credits_needed(self) -> bool:
        return self.recommended is None
