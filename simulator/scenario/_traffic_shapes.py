"""The shapes of generated traffic, as the loader hands them to the generator: when calls come
(`RateProfile`), how long they hold (`Holding`) and whom they call (`Destination`).

Frozen values with the little arithmetic both the generator and the work estimate need (the
rate of an hour of the week, the calls expected between two instants, a holding time's mean),
so the two never disagree.  Pure Python: no numpy, no I/O.
"""

from __future__ import annotations

import math
from itertools import accumulate
from dataclasses import dataclass
from typing import Any

__all__ = ["Destination", "Holding", "RateProfile", "HOURS_PER_WEEK", "MS_PER_HOUR"]

MS_PER_HOUR = 3_600_000
HOURS_PER_WEEK = 168
MONDAY_HOUR_OF_EPOCH = 72
"""The Unix epoch (1970-01-01 00:00) was a Thursday: hour 72 of a week that starts on Monday."""


@dataclass(frozen=True)
class RateProfile:
    """The arrival rate of each hour of the local week, in calls per hour.

    `per_hour[0]` is Monday 00:00-01:00 on the local clock, `per_hour[167]` Sunday 23:00-24:00;
    a 24-hour profile is stored repeated over the seven days.  The local clock is UTC plus the
    fixed `utc_offset_ms`, a whole number of minutes (no daylight-saving switch).  Within an
    hour the rate is constant: arrivals there are a homogeneous Poisson process.
    """

    per_hour: tuple[float, ...]
    utc_offset_ms: int = 0

    def __post_init__(self) -> None:
        if len(self.per_hour) != HOURS_PER_WEEK:
            raise ValueError(f"a rate profile has {HOURS_PER_WEEK} hours, got {len(self.per_hour)}")
        if self.utc_offset_ms % 60_000:
            raise ValueError("a UTC offset is a whole number of minutes")

    @property
    def peak(self) -> float:
        """The busiest hour's rate, calls per hour."""
        return max(self.per_hour)

    def hour_of_week(self, epoch_ms: Any) -> Any:
        """Index into `per_hour` of the UTC instant `epoch_ms` (ms since the Unix epoch): an
        int, or elementwise an integer numpy array."""
        return ((epoch_ms + self.utc_offset_ms) // MS_PER_HOUR + MONDAY_HOUR_OF_EPOCH) % HOURS_PER_WEEK

    def ms_to_next_hour(self, epoch_ms: int) -> int:
        """From the UTC instant `epoch_ms` to the start of the next local hour, in (0, 1 h]."""
        return MS_PER_HOUR - (epoch_ms + self.utc_offset_ms) % MS_PER_HOUR

    def calls_between(self, epoch_from_ms: int, epoch_to_ms: int) -> float:
        """Expected arrivals from one UTC instant to a later one: the integral of the rate."""
        return self._cumulative(epoch_to_ms) - self._cumulative(epoch_from_ms)

    def _cumulative(self, epoch_ms: int) -> float:
        """Expected arrivals from the local Monday 00:00 before the epoch up to `epoch_ms`."""
        since_monday = epoch_ms + self.utc_offset_ms + MONDAY_HOUR_OF_EPOCH * MS_PER_HOUR
        weeks, into_week = divmod(since_monday, HOURS_PER_WEEK * MS_PER_HOUR)
        hour, into_hour = divmod(into_week, MS_PER_HOUR)
        return (weeks * math.fsum(self.per_hour) + math.fsum(self.per_hour[:hour])
                + self.per_hour[hour] * into_hour / MS_PER_HOUR)


EXPONENTIAL = "exponential"
LOGNORMAL = "lognormal"
INVERSE_CDF = "inverse_cdf"


@dataclass(frozen=True)
class Holding:
    """A holding-time distribution, in ms.

    `kind` is one of:

    * "exponential": mean `mean_ms`;
    * "lognormal": median `median_ms`, `sigma` the standard deviation of the log;
    * "inverse_cdf": the piecewise-linear inverse CDF through the points (`probabilities[i]`,
      `durations_ms[i]`), probabilities from 0 to 1 increasing, durations non-decreasing.  An
      empirical quantile table is such a CDF; so is a histogram with its time uniform within
      each bin (the points are the bin edges at their cumulative share of the counts).

    Every drawn time is rounded to whole ms and is at least 1 ms.
    """

    kind: str
    mean_ms: float = 0.0
    median_ms: float = 0.0
    sigma: float = 0.0
    probabilities: tuple[float, ...] = ()
    durations_ms: tuple[int, ...] = ()

    @classmethod
    def exponential(cls, mean_ms: int) -> Holding:
        return cls(EXPONENTIAL, mean_ms=mean_ms)

    @classmethod
    def lognormal(cls, median_ms: int, sigma: float) -> Holding:
        return cls(LOGNORMAL, mean_ms=median_ms * math.exp(sigma * sigma / 2),
                   median_ms=median_ms, sigma=sigma)

    @classmethod
    def inverse_cdf(cls, probabilities: tuple[float, ...], durations_ms: tuple[int, ...]) -> Holding:
        """The distribution of the points; its mean is the area under the inverse CDF."""
        p, d = probabilities, durations_ms
        mean = math.fsum((p[i + 1] - p[i]) * (d[i] + d[i + 1]) / 2 for i in range(len(p) - 1))
        return cls(INVERSE_CDF, mean_ms=mean, probabilities=p, durations_ms=d)

    @classmethod
    def histogram(cls, edges_ms: tuple[int, ...], counts: tuple[float, ...]) -> Holding:
        """Times uniform within each bin [edges[i], edges[i+1]), bins weighted by `counts`."""
        # Running sums, the total being the last: a bin after the last counted one starts at
        # exactly 1.0, so it is never drawn.
        running = list(accumulate(float(c) for c in counts))
        cumulative = (0.0, *(c / running[-1] for c in running))
        return cls.inverse_cdf(cumulative, tuple(edges_ms))


@dataclass(frozen=True)
class Destination:
    """One entry of a weighted `destinations` table: a prefix completed with random digits, or
    (`number`) a whole number dialled as is; `digits` without "+"."""

    digits: str
    weight: float = 1.0
    number: bool = False
