"""Clopper-Pearson bounds against published values and against the binomial tail they invert."""

from __future__ import annotations

import math

import pytest

from simulator.plan import clopper_pearson, cuts_allowed, percent_up, risk_of, seeds_needed, upper_bound


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed term by term (independent of scipy's beta)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # two-sided 95 % Clopper-Pearson intervals as tabulated (e.g. R's binom.test)
    (0, 10, 0.0, 0.3084971),
    (5, 10, 0.1870860, 0.8129140),
    (1, 20, 0.0012650, 0.2487328),
    (10, 10, 0.6915029, 1.0),
])
def test_two_sided_interval_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    got = clopper_pearson(k, n, 0.95)
    assert got == pytest.approx((low, high), abs=2e-7)


def test_zero_cuts_upper_bound_is_the_closed_form() -> None:
    """0 of n: the bound solves (1 - p)^n = 1 - c, about 3 / n at 95 % (the "rule of three")."""
    for n in (1, 10, 59, 299, 3000):
        assert upper_bound(0, n, 0.95) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-12)
    assert upper_bound(0, 299, 0.95) == pytest.approx(3 / 299, rel=0.01)


@pytest.mark.parametrize(("k", "n", "c"), [(1, 299, 0.95), (3, 1000, 0.95), (7, 50, 0.99), (0, 40, 0.9)])
def test_upper_bound_inverts_the_binomial_tail(k: int, n: int, c: float) -> None:
    u = upper_bound(k, n, c)
    assert binomial_cdf(k, n, u) == pytest.approx(1 - c, abs=1e-9)
    assert binomial_cdf(k, n, u * 0.999) > 1 - c  # a smaller p would make k cuts too likely


def test_seeds_needed_is_the_first_n_that_can_pass() -> None:
    assert seeds_needed(0.01, 0.95) == 299
    assert seeds_needed(0.05, 0.95) == 59
    assert seeds_needed(0.001, 0.99) == 4603
    for target, c in ((0.01, 0.95), (0.05, 0.95), (0.02, 0.9), (0.1, 0.99)):
        n = seeds_needed(target, c)
        assert upper_bound(0, n, c) < target <= upper_bound(0, n - 1, c)


def test_cuts_allowed_grows_with_seeds() -> None:
    assert cuts_allowed(299, 0.01, 0.95) == 0
    assert cuts_allowed(298, 0.01, 0.95) is None
    assert cuts_allowed(1000, 0.01, 0.95) == 4
    k = cuts_allowed(1000, 0.01, 0.95)
    assert upper_bound(k, 1000, 0.95) < 0.01 <= upper_bound(k + 1, 1000, 0.95)


def test_risk_passes_strictly_below_the_target() -> None:
    r = risk_of(0, 299, 0.95)
    assert r.below(0.01) and r.estimate == 0 and r.low == 0
    assert not risk_of(1, 299, 0.95).below(0.01)
    with pytest.raises(ValueError):
        risk_of(3, 2, 0.95)


@pytest.mark.parametrize(("x", "shown"), [(1 - 0.05 ** (1 / 59), "4.96 %"), (1 - 0.05 ** (1 / 299), "0.997 %"),
                                          (0.394, "39.4 %"), (0.05, "5.00 %"), (0.0, "0 %"), (1.0, "100 %")])
def test_a_bound_is_shown_rounded_up(x: float, shown: str) -> None:
    """Rounded to nearest, 0.0495 would print as the 5 % target it is below."""
    assert percent_up(x) == shown
    assert float(shown.split()[0]) >= round(x * 100, 9)


def test_the_stated_risk_is_the_one_sided_bound() -> None:
    assert risk_of(0, 59, 0.95).stated == "≤ 4.96 % at 95 % confidence (0 of 59 runs cut)"
