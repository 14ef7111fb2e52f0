"""The risk of a credit-caused cut, from seeds: a binomial proportion and its exact bounds.

Each seed is one independent month (or horizon) of the org's traffic; it either has a cut the
credit settings could have prevented or not.  With k such seeds out of n, the Clopper-Pearson
bounds are exact: they come from the beta quantiles of the binomial tail, never from a normal
approximation, which is useless at the rates a plan cares about (0 cuts in 299 seeds).  The
decision uses the one-sided upper bound: "the risk is below the target at this confidence".
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Risk:
    """k seeds with a credit-caused cut out of n, and what they say about the risk.

    `upper` is the one-sided Clopper-Pearson upper bound at `confidence` (the risk is below it
    with that confidence); `low`/`high` the two-sided interval at the same confidence.
    """

    cuts: int
    seeds: int
    confidence: float
    upper: float
    low: float
    high: float

    @property
    def estimate(self) -> float:
        return self.cuts / self.seeds

    @property
    def stated(self) -> str:
        """The bound the decision uses, as printed: '≤ 4.96 % at 95 % confidence (0 of 59 runs cut)'."""
        return (f"≤ {percent_up(self.upper)} at {self.confidence * 100:g} % confidence "
                f"({self.cuts} of {self.seeds} runs cut)")

    def below(self, target: float) -> bool:
        """The settings pass: the upper bound is strictly below the target."""
        return self.upper < target


def risk_of(cuts: int, seeds: int, confidence: float) -> Risk:
    """The `Risk` of `cuts` seeds with a cut among `seeds` (0 <= cuts <= seeds, seeds >= 1)."""
    if not 0 <= cuts <= seeds or seeds < 1:
        raise ValueError(f"need 0 <= cuts <= seeds and seeds >= 1, got {cuts} of {seeds}")
    low, high = clopper_pearson(cuts, seeds, confidence)
    return Risk(cuts, seeds, confidence, upper_bound(cuts, seeds, confidence), low, high)


def percent_up(x: float) -> str:
    """`x` as a percentage rounded up to three significant digits ('4.96 %' for 0.0495076):
    an upper bound shown rounded to nearest could read as the target it is below."""
    pct = round(x * 100.0, 9)  # a float's noise (0.05 * 100 = 5.000000000000001) is not a digit
    if pct <= 0.0:
        return "0 %"
    decimals = max(0, 2 - math.floor(math.log10(pct)))
    scale = 10 ** decimals
    return f"{math.ceil(round(pct * scale, 6)) / scale:.{decimals}f} %"


def upper_bound(cuts: int, seeds: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound: the p with P(Binomial(seeds, p) <= cuts) = 1 - confidence.

    0 cuts: 1 - (1 - confidence) ** (1 / seeds), about 3 / seeds at 95 %.
    """
    if cuts >= seeds:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(confidence, cuts + 1, seeds - cuts))


def clopper_pearson(cuts: int, seeds: int, confidence: float) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval at `confidence` (each tail (1 - confidence) / 2)."""
    from scipy.stats import beta

    tail = (1.0 - confidence) / 2.0
    low = 0.0 if cuts == 0 else float(beta.ppf(tail, cuts, seeds - cuts + 1))
    high = 1.0 if cuts == seeds else float(beta.ppf(1.0 - tail, cuts + 1, seeds - cuts))
    return low, high


def seeds_needed(target: float, confidence: float) -> int:
    """The fewest seeds whose upper bound with 0 cuts is below `target`: n > ln(1-c) / ln(1-target).

    0.01 at 95 %: 299.  Fewer seeds cannot show the target even when no seed has a cut.
    """
    need = math.log(1.0 - confidence) / math.log1p(-target)
    n = math.floor(need) + 1
    # floating error at an exact integer boundary: keep the first n whose bound really is below
    while n > 1 and upper_bound(0, n - 1, confidence) < target:
        n -= 1
    while upper_bound(0, n, confidence) >= target:
        n += 1
    return n


def cuts_allowed(seeds: int, target: float, confidence: float) -> int | None:
    """The most seeds with a cut out of `seeds` that still pass, or None if even 0 does not."""
    if not upper_bound(0, seeds, confidence) < target:
        return None
    lo, hi = 0, seeds  # upper_bound grows with cuts: find the last k that passes
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if upper_bound(mid, seeds, confidence) < target:
            lo = mid
        else:
            hi = mid - 1
    return lo
