"""The model fitted to the calls of one traffic type: arrivals per hour of the week, holding
times, destinations; and per-minute rates estimated from what credits paid.

The rules (docs/usage-import.md repeats them):

- **Period**: parameters.json's, else from local midnight before the first call to local
  midnight after the last one.  **Local clock**: `--utc-offset`, else the offset the Start
  Times are written with when they are not all UTC (the most common one), else UTC.
- **Rates**: for each of the 168 hours of the week (Monday 00:00-01:00 local first), the calls
  that started in it divided by the hours of that kind the period covers (a 28-day export
  covers each four times).  An hour of the week the period never covers (an export shorter
  than a week) takes the average of the same hour of the day on the days that are covered.
- **Holding times**: `EMPIRICAL_MIN_CALLS` calls or more: empirical quantiles at
  `QUANTILES` (piecewise linear between them, as the scenario format reads them); fewer but
  two or more: lognormal with the median and sigma of the log durations; one: exponential
  with its duration as mean.  Durations under a second count as one second.
- **Destinations**: the country code (E.164, from the phonenumbers metadata) plus 3 digits
  for +1 (the NANP area code), 2 for the others; the `TOP_PREFIXES` most called kept, the
  other calls folded into their country code.
- **Per-minute rates**: per destination prefix, the credits paid (Charge, rows with Charge > 0
  whose Capability says credits paid the whole call; all rows with Charge > 0 when the prefix
  has none of those) divided by the minutes they paid for, each call's duration rounded up to
  whole minutes (the 60/60 increment the scenario writes).  Estimates to check against the
  real tariff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import phonenumbers
import polars as pl
from numpy.typing import NDArray

from . import _vocabulary as vocabulary
from ._rows import MS_PER_HOUR

HOURS_PER_WEEK = 168
EMPIRICAL_MIN_CALLS = 200
# Dense in the tail: between two points the fit is linear, which overstates a long tail's mean
# (the quantile function is convex there); with 0.9, 0.95, 0.99 alone a lognormal of sigma 0.9
# came out ~2 % above its mean before the last point, which `_mean_keeping_end` cannot lower.
QUANTILES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65,
             0.7, 0.75, 0.8, 0.85, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995,
             0.998, 0.999, 1.0)
TOP_PREFIXES = 10
MS_PER_DAY = 24 * MS_PER_HOUR
_MONDAY_EPOCH_DAYS = 4  # 1970-01-05 was a Monday


@dataclass(frozen=True)
class Period:
    """The span the export covers, in UTC ms, and the local clock hours are read in."""

    start_ms: int
    end_ms: int
    offset_min: int
    said_by: str  # "parameters.json" or "the calls"
    offset_said_by: str  # "--utc-offset", "the Start Times" or "none found: UTC"


def offset_text(minutes: int) -> str:
    """Minutes east of UTC as the scenario's `utc_offset` writes them: -300 -> "-05:00"."""
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def hour_of_week(utc_ms: NDArray[np.int64], offset_min: int) -> NDArray[np.int64]:
    """0 = Monday 00:00-01:00 on the local clock, 167 = Sunday 23:00-24:00."""
    local = utc_ms + offset_min * 60_000
    return ((local // MS_PER_HOUR) - _MONDAY_EPOCH_DAYS * 24) % HOURS_PER_WEEK


def covered_hours(period: Period) -> NDArray[np.float64]:
    """How many hours of each hour-of-week the period covers (fractions at ragged ends)."""
    covered = np.zeros(HOURS_PER_WEEK)
    first = period.start_ms - (period.start_ms + period.offset_min * 60_000) % MS_PER_HOUR
    starts = np.arange(first, period.end_ms, MS_PER_HOUR, dtype=np.int64)
    lengths = np.minimum(starts + MS_PER_HOUR, period.end_ms) - np.maximum(starts, period.start_ms)
    np.add.at(covered, hour_of_week(starts, period.offset_min), lengths / MS_PER_HOUR)
    return covered


@dataclass(frozen=True)
class RateFit:
    """Calls per hour for each hour of the week; `calls_per_hour` their mean, `weights`
    the rates divided by it (what the scenario writes)."""

    counts: NDArray[np.int64]
    covered: NDArray[np.float64]
    rates: NDArray[np.float64]

    @property
    def calls_per_hour(self) -> float:
        return float(self.rates.mean())

    @property
    def weights(self) -> NDArray[np.float64]:
        return self.rates / self.calls_per_hour

    @property
    def busy_hour(self) -> int:
        """The hour of the week with the highest observed rate: an hour filled in for an
        export shorter than a week can tie with the day it was copied from, and is never named."""
        return int(np.argmax(np.where(self.covered > 0, self.rates, -np.inf)))


def fit_rates(start_ms: NDArray[np.int64], period: Period) -> RateFit:
    counts = np.bincount(hour_of_week(start_ms, period.offset_min), minlength=HOURS_PER_WEEK)
    covered = covered_hours(period)
    rates = np.divide(counts, covered, out=np.zeros(HOURS_PER_WEEK), where=covered > 0)
    missing = covered <= 0
    if missing.any():  # an export shorter than a week: the same hour of the covered days
        by_hour = rates.reshape(7, 24)
        seen = ~missing.reshape(7, 24)
        fill = np.divide((by_hour * seen).sum(axis=0), seen.sum(axis=0),
                         out=np.zeros(24), where=seen.sum(axis=0) > 0)
        rates = np.where(missing, np.tile(fill, 7), rates)
    return RateFit(counts, covered, rates)


@dataclass(frozen=True)
class HoldingFit:
    """A holding-time distribution in the scenario format's terms."""

    distribution: str  # "empirical" | "lognormal" | "exponential"
    quantiles: tuple[tuple[float, int], ...] = ()  # (probability, ms), for empirical
    median_ms: int = 0  # lognormal
    sigma: float = 0.0  # lognormal
    mean_ms: int = 0  # exponential

    def cdf(self, seconds: NDArray[np.float64]) -> NDArray[np.float64]:
        """The fitted distribution's CDF, for the report's comparison with the calls."""
        if self.distribution == "empirical":
            probabilities, ms = zip(*self.quantiles)
            return np.interp(seconds * 1000, ms, probabilities, left=0.0, right=1.0)
        if self.distribution == "lognormal":
            z = (np.log(np.maximum(seconds, 1e-9)) - math.log(self.median_ms / 1000)) / (self.sigma * math.sqrt(2))
            return 0.5 * (1 + _erf(z))
        return 1 - np.exp(-seconds / (self.mean_ms / 1000))


def _erf(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.vectorize(math.erf, otypes=[float])(x)


def fit_holding(duration_s: NDArray[np.int64]) -> HoldingFit:
    seconds = np.maximum(duration_s.astype(np.float64), 1.0)
    if len(seconds) >= EMPIRICAL_MIN_CALLS:
        # Points among the top four calls are left out: the last segment must stay wide enough
        # for its end to bring the fit to the calls' mean (`_mean_keeping_end`).
        probabilities = [p for p in QUANTILES[:-1] if p <= 1 - 4 / len(seconds)] + [1.0]
        points = np.round(np.quantile(seconds, probabilities) * 1000).astype(np.int64)
        # The scenario format wants durations that increase: a tie (many calls of one length)
        # keeps its first probability, and the maximum stays the 1.0 point.
        kept: list[tuple[float, int]] = [(0.0, int(points[0]))]
        for probability, ms in zip(probabilities[1:-1], points[1:-1].tolist()):
            if ms > kept[-1][1]:
                kept.append((probability, ms))
        while len(kept) > 1 and kept[-1][1] >= points[-1]:
            kept.pop()
        if points[-1] > kept[-1][1]:
            last = _mean_keeping_end(kept, float(seconds.mean()) * 1000, int(points[-1]))
            return HoldingFit("empirical", quantiles=(*kept, (1.0, last)))
    if len(seconds) >= 2:
        logs = np.log(seconds)
        sigma = float(logs.std(ddof=1))
        if sigma > 0:
            return HoldingFit("lognormal", median_ms=round(math.exp(logs.mean()) * 1000), sigma=sigma)
    return HoldingFit("exponential", mean_ms=max(round(float(seconds.mean()) * 1000), 1000))


def _mean_keeping_end(kept: list[tuple[float, int]], mean_ms: float, longest_ms: int) -> int:
    """The duration of the 1.0 point that gives the piecewise-linear fit the calls' mean.

    Interpolating the top segment up to the longest call spreads that segment's calls evenly
    up to it, which overstates a long-tailed mean (by 6-7 % on lognormal traffic with the
    last point at the maximum); the end point is placed so that the fitted mean is the
    observed one, between the segment's start and the longest call.
    """
    below = sum((p1 - p0) * (x0 + x1) / 2 for (p0, x0), (p1, x1) in zip(kept, kept[1:]))
    p_last, x_last = kept[-1]
    end = 2 * (mean_ms - below) / (1.0 - p_last) - x_last
    return int(min(max(round(end), x_last + 1), longest_ms))


# E.164 country codes are prefix-free: a number's code is the one of its first 1, 2 or 3 digits
# that is assigned.
_COUNTRY_CODES = {str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}


def country_code(digits: pl.Expr) -> pl.Expr:
    """The E.164 country code a number's digits start with (its first 3 digits if none is)."""
    expression = digits.str.slice(0, 3)
    for length in (2, 1):
        codes = [c for c in _COUNTRY_CODES if len(c) == length]
        expression = pl.when(digits.str.slice(0, length).is_in(codes)).then(
            digits.str.slice(0, length)).otherwise(expression)
    return expression


def long_prefix(digits: pl.Expr) -> pl.Expr:
    """Country code + 3 digits for NANP (+1: the area code), + 2 digits for the others."""
    code = country_code(digits)
    return pl.when(code == "1").then(digits.str.slice(0, 4)).otherwise(
        digits.str.slice(0, code.str.len_chars() + 2))


def destination_mix(digits: pl.Series, top: int = TOP_PREFIXES) -> list[tuple[str, int]]:
    """(prefix, calls) most called first: the `top` long prefixes, then country codes for the rest."""
    frame = pl.DataFrame({"d": digits}).drop_nulls().with_columns(
        long_prefix(pl.col("d")).alias("long"), country_code(pl.col("d")).alias("code"))
    counts = frame.group_by("long").len().sort(["len", "long"], descending=[True, False])
    kept = counts.head(top)
    rest = frame.filter(~pl.col("long").is_in(kept["long"].to_list())).group_by("code").len()
    mix = [*kept.iter_rows(), *rest.iter_rows()]
    return sorted(mix, key=lambda item: (-item[1], item[0]))


def prefix_of(digits: pl.Expr, prefixes: list[str]) -> pl.Expr:
    """The entry of `prefixes` (long prefixes and country codes) a number is counted under."""
    long = long_prefix(digits)
    return pl.when(long.is_in(prefixes)).then(long).otherwise(country_code(digits))


def region_of(code: str) -> str:
    """The ISO 3166 country of a country code's main region ("ZZ" for non-geographic codes)."""
    region = phonenumbers.region_code_for_country_code(int(code)) if code.isdigit() else "ZZ"
    return region if len(region) == 2 and region.isalpha() else "ZZ"


@dataclass(frozen=True)
class RateEstimate:
    per_minute_micro: int | None  # None: no call paid credits under this prefix
    paid_calls: int
    paid_minutes: int
    pool_shared: bool = False  # no call here was paid by credits alone: calls a pool paid in part count


def per_minute_rates(frame: pl.DataFrame, prefix_column: str) -> dict[str, RateEstimate]:
    """Per prefix: credits paid / minutes paid for (durations rounded up to whole minutes).

    A call whose Capability names a plan (MCOPSTN1, MCOPSTN2, ...) and has a Charge took the
    rest of a pool and paid the overflow: its Charge covers only part of its minutes.  So a
    prefix's rate comes from its calls that credits paid in full (`CREDITS_PAID_ALL`), and
    from all its paid calls only when it has none of those (`pool_shared`: an underestimate).
    Charges are rounded to cents per call, so the sums, not the calls' own rates, are divided.
    """
    paid = frame.filter((pl.col("charge_micro") > 0) & (pl.col("duration_s") > 0)
                        & pl.col(prefix_column).is_not_null()).with_columns(
        pl.col("capability").str.strip_chars().str.to_uppercase()
          .is_in(sorted(vocabulary.CREDITS_PAID_ALL)).alias("_credits_only"))
    has_whole = pl.col("_credits_only").any().over(prefix_column)
    kept = paid.filter(pl.col("_credits_only") | ~has_whole)
    sums = kept.group_by(prefix_column).agg(
        pl.col("charge_micro").sum().alias("micro"),
        ((pl.col("duration_s") + 59) // 60).sum().alias("minutes"), pl.len().alias("calls"),
        (~pl.col("_credits_only").any()).alias("shared"))
    return {prefix: RateEstimate(round(micro / minutes), calls, minutes, shared)
            for prefix, micro, minutes, calls, shared in sums.iter_rows()}


def most_common(values: pl.Series) -> str | None:
    """The most frequent non-empty value (the smallest of equals), None when there is none."""
    counts = values.filter(values != "").value_counts()
    if counts.height == 0:
        return None
    return counts.sort(["count", values.name], descending=[True, False])[0, values.name]
