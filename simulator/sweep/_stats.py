"""Per grid point, the distribution over seeds of each figure of the runs.

Percentiles are taken by the inverted CDF: p95 is the smallest value that at least 95 % of
the seeds are at or below.  Every percentile is then a value some run really had (money
stays exact micro-units, a count stays whole), and "p95 of calls cut = 0" means what it says:
at least 95 % of the seeds cut nothing.  The risk of a setting is the share of seeds with any
call cut for lack of credit; with few seeds it is a rough figure (`callsim plan` puts a
confidence interval on it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._grid import Point
from ._summary import OrgRunSummary, RunSummary

TOTAL = "total"
"""The key of all orgs together, beside the org ids."""


@dataclass(frozen=True)
class Distribution:
    """A figure over the seeds of one grid point (n runs)."""

    n: int
    mean: float
    min: int
    p5: int
    p50: int
    p95: int
    max: int

    @classmethod
    def of(cls, values: Sequence[int]) -> "Distribution":
        """Of `values` (at least one)."""
        ordered = sorted(values)
        n = len(ordered)

        def q(share: float) -> int:
            return ordered[max(0, math.ceil(share * n) - 1)]

        return cls(n, sum(ordered) / n, ordered[0], q(0.05), q(0.5), q(0.95), ordered[-1])


@dataclass(frozen=True)
class OrgStats:
    """An org's (or the total's) figures at one grid point, over its seeds."""

    cut_share: float  # share of seeds with any call cut for lack of credit
    calls_cut: Distribution
    cut_dropped: Distribution
    cut_blocked: Distribution
    credits_spent: Distribution  # micro-units
    credits_purchased: Distribution  # micro-units
    recharges_succeeded: Distribution
    recharges_failed: Distribution
    lowest_balance: Distribution  # micro-units
    pool_exhausted_share: float  # share of seeds in which a pool hit 0
    pool_exhausted_ms: Distribution | None  # over those seeds; None when none did
    peak_concurrent_calls: Distribution
    calls: Distribution

    @classmethod
    def of(cls, runs: Sequence[OrgRunSummary]) -> "OrgStats":
        def dist(name: str) -> Distribution:
            return Distribution.of([getattr(r, name) for r in runs])

        cuts = [r.calls_cut for r in runs]
        exhausted = [r.pool_exhausted_ms for r in runs if r.pool_exhausted_ms is not None]
        return cls(
            cut_share=sum(1 for c in cuts if c) / len(runs), calls_cut=Distribution.of(cuts),
            cut_dropped=dist("cut_dropped"), cut_blocked=dist("cut_blocked"),
            credits_spent=dist("credits_spent_micros"), credits_purchased=dist("credits_purchased_micros"),
            recharges_succeeded=dist("recharges_succeeded"), recharges_failed=dist("recharges_failed"),
            lowest_balance=dist("lowest_balance_micros"),
            pool_exhausted_share=len(exhausted) / len(runs),
            pool_exhausted_ms=Distribution.of(exhausted) if exhausted else None,
            peak_concurrent_calls=dist("peak_concurrent_calls"), calls=dist("calls"),
        )


@dataclass(frozen=True)
class PointStats:
    """One grid point: its setting, its runs' seeds, and per org id and `TOTAL` its figures."""

    index: int
    point: Point
    seeds: tuple[int, ...]
    orgs: dict[str, OrgStats]


def point_stats(points: Sequence[Point], runs: Sequence[RunSummary]) -> list[PointStats]:
    """The statistics of each point that has at least one finished run, in grid order."""
    by_point: dict[Point, list[RunSummary]] = {point: [] for point in points}
    for run in runs:
        by_point[run.point].append(run)
    stats = []
    for index, point in enumerate(points):
        mine = by_point[point]
        if not mine:
            continue
        org_ids = list(mine[0].orgs)
        orgs = {TOTAL: OrgStats.of([r.total for r in mine])}
        orgs.update({o: OrgStats.of([r.orgs[o] for r in mine]) for o in org_ids})
        stats.append(PointStats(index, point, tuple(r.seed for r in mine), orgs))
    return stats
