"""One run's summary for a sweep, accumulated in memory from the rating core's steps.

The counters are summary.json's own (`outputs.SummaryBuilder`, fed the same CDR batches and
events as `callsim run` feeds it); three figures come from what the files imply but
summary.json does not hold:

* **peak concurrent calls**: the most calls connected at once, a call being connected over
  [start, end).  Counted after each instant's changes, so a call rejected or blocked at its
  arrival (it ends where it starts) never counts, and a hang-up and an arrival at the same
  instant do not add up.  Each window's arrivals add one at their instant and its CDRs take
  one away at their end; the running count carries over from window to window.
* **lowest balance**: the balance only rises by a purchase (the initial lot at t = 0, a
  recharge) and only falls by charges and expiries, so its lowest value is the final balance
  or the balance just before a recharge (`recharge_succeeded`'s balance minus its amount,
  SPEC §3: the recharge check runs after the instant's charges).
* **pool exhaustion instant**: found by the driver (`_pools.PoolWatch`), which sees the pools.
* **credits spent per day**: what the charges of each simulated day (24 h from the start)
  took from the balance, by charge instant: a window's balance change with its purchases and
  expiries taken out.  The driver ends windows at day boundaries, so each window is one day's.
* **balance_exhausted**: the number of those events, raised only when a charge that credits
  could pay found the balance too low (SPEC §3): above 0 exactly when credits cut a call, as
  opposed to a call cut with no credit allowed at all, which no credit setting can prevent.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from rating_core import END_REASON_NAMES, Arrivals, CdrBatch, EventColumns, Tables, group_sum

from ..outputs import SummaryBuilder
from ._grid import Point

_DROPPED = END_REASON_NAMES.index("dropped_balance_exhausted")
_BLOCKED = END_REASON_NAMES.index("blocked_no_balance")
_NO_LOW = np.iinfo(np.int64).max
MS_PER_DAY = 86_400_000


@dataclass(frozen=True)
class OrgRunSummary:
    """An org's (or all orgs') figures for one run; money in micro-units, time in ms since
    the start.  For the total, `lowest_balance_micros` is the lowest org's, `pool_exhausted_ms`
    the first org's, and `peak_concurrent_calls` the peak of all orgs' calls together."""

    calls: int
    cut_dropped: int  # dropped_balance_exhausted
    cut_blocked: int  # blocked_no_balance
    credits_spent_micros: int  # credits_charged
    credits_purchased_micros: int  # the initial lot and every recharge
    recharges_succeeded: int
    recharges_failed: int
    lowest_balance_micros: int
    pool_exhausted_ms: int | None  # the first instant a pool hit 0; None: never
    peak_concurrent_calls: int
    billed_s: int
    balance_exhausted: int  # balance_exhausted events: > 0 iff credits (not their absence) cut a call
    credits_spent_by_day_micros: tuple[int, ...]  # per simulated day, by charge instant

    @property
    def calls_cut(self) -> int:
        """Calls cut for lack of credit: dropped mid-call or blocked at the first increment."""
        return self.cut_dropped + self.cut_blocked


ORG_FIELDS = tuple(f.name for f in fields(OrgRunSummary))


@dataclass(frozen=True)
class RunSummary:
    """One run of a sweep: its seed, its grid point, per org (by id, in file order) and total."""

    seed: int
    point: Point
    orgs: dict[str, OrgRunSummary]
    total: OrgRunSummary


class RunTracker:
    """Folds a run's windows into a RunSummary; see the module docstring for each figure."""

    def __init__(self, tables: Tables, builder: SummaryBuilder) -> None:
        self._tables = tables
        self._builder = builder
        n = len(tables.org_ids)
        self._n = n
        self._connected = np.zeros(n, dtype=np.int64)
        self._peak = np.zeros(n, dtype=np.int64)
        self._connected_total = 0
        self._peak_total = 0
        self._low = np.full(n, _NO_LOW, dtype=np.int64)
        self._exhausted = np.zeros(n, dtype=np.int64)
        self._spent_by_day: list[NDArray[np.int64]] = []

    def window(self, t0: int, t1: int, arrivals: Arrivals, cdrs: CdrBatch, events: EventColumns,
               balance_before: NDArray[np.int64], balance_after: NDArray[np.int64]) -> None:
        """One window [t0, t1) within one day: its arrivals, the CDRs and events the engine
        returned, and every org's balance before and after it."""
        self._builder.add_cdrs(cdrs)
        spent = balance_before - balance_after
        if len(events):
            self._builder.add_events(events)
            recharged = events.of("recharge_succeeded")
            if recharged.any():
                np.minimum.at(self._low, events.org[recharged],
                              events.balance[recharged] - events.amount[recharged])
            added = recharged | events.of("credits_purchased")
            spent += group_sum(events.org[added], events.amount[added], self._n)
            expired = events.of("credits_expired")
            spent -= group_sum(events.org[expired], events.amount[expired], self._n)
            exhausted = events.of("balance_exhausted")
            self._exhausted += group_sum(events.org[exhausted], np.ones(int(exhausted.sum()), dtype=np.int64),
                                         self._n)
        day = t0 // MS_PER_DAY
        while len(self._spent_by_day) <= day:
            self._spent_by_day.append(np.zeros(self._n, dtype=np.int64))
        self._spent_by_day[day] += spent
        if len(arrivals) or len(cdrs):
            self._peaks(t0, t1, arrivals, cdrs)

    def final(self, cdrs: CdrBatch) -> None:
        """The calls still connected at the end (they end there: no peak to update)."""
        self._builder.add_cdrs(cdrs)

    def summary(self, seed: int, point: Point, balances: NDArray[np.int64],
                pool_exhausted: NDArray[np.int64]) -> RunSummary:
        """The RunSummary, given the final balances and each org's pool exhaustion instant
        (-1: never), both by org index."""
        c = self._builder.counts()
        low = np.minimum(self._low, balances)
        by_day = np.array(self._spent_by_day, dtype=np.int64).reshape(-1, self._n)
        by_org = {}
        for o, org_id in enumerate(self._tables.org_ids):
            exhausted = int(pool_exhausted[o])
            by_org[org_id] = OrgRunSummary(
                calls=int(c.by_reason[o].sum()), cut_dropped=int(c.by_reason[o, _DROPPED]),
                cut_blocked=int(c.by_reason[o, _BLOCKED]), credits_spent_micros=int(c.credits_charged[o]),
                credits_purchased_micros=int(c.credits_purchased[o]),
                recharges_succeeded=int(c.recharges_succeeded[o]), recharges_failed=int(c.recharges_failed[o]),
                lowest_balance_micros=int(low[o]), pool_exhausted_ms=None if exhausted < 0 else exhausted,
                peak_concurrent_calls=int(self._peak[o]), billed_s=int(c.billed_s[o]),
                balance_exhausted=int(self._exhausted[o]),
                credits_spent_by_day_micros=tuple(by_day[:, o].tolist()),
            )
        reached = pool_exhausted[pool_exhausted >= 0]
        total = OrgRunSummary(
            calls=int(c.by_reason.sum()), cut_dropped=int(c.by_reason[:, _DROPPED].sum()),
            cut_blocked=int(c.by_reason[:, _BLOCKED].sum()), credits_spent_micros=int(c.credits_charged.sum()),
            credits_purchased_micros=int(c.credits_purchased.sum()),
            recharges_succeeded=int(c.recharges_succeeded.sum()), recharges_failed=int(c.recharges_failed.sum()),
            lowest_balance_micros=int(low.min()) if self._n else 0,
            pool_exhausted_ms=int(reached.min()) if len(reached) else None,
            peak_concurrent_calls=self._peak_total, billed_s=int(c.billed_s.sum()),
            balance_exhausted=int(self._exhausted.sum()),
            credits_spent_by_day_micros=tuple(by_day.sum(axis=1).tolist()),
        )
        return RunSummary(seed, point, by_org, total)

    def _peaks(self, t0: int, t1: int, arrivals: Arrivals, cdrs: CdrBatch) -> None:
        org = np.concatenate([arrivals.org.astype(np.int64), cdrs.org.astype(np.int64)])
        t = np.concatenate([arrivals.t_ms, cdrs.end_ms]) - t0
        change = np.concatenate([np.ones(len(arrivals), dtype=np.int64), np.full(len(cdrs), -1, dtype=np.int64)])
        # all orgs together: the count after each instant
        order = np.argsort(t, kind="stable")
        count = self._connected_total + np.cumsum(change[order])
        ts = t[order]
        after = np.append(ts[1:] != ts[:-1], True)
        self._peak_total = max(self._peak_total, int(count[after].max()))
        self._connected_total = int(count[-1])
        if self._n == 1:
            self._peak[0], self._connected[0] = self._peak_total, self._connected_total
            return
        # per org: the same within each org's run of (org, instant) keys
        key = org * (t1 - t0 + 1) + t
        order = np.argsort(key, kind="stable")
        keys, orgs, steps = key[order], org[order], change[order]
        cum = np.cumsum(steps)
        starts = np.append(True, orgs[1:] != orgs[:-1])
        first = np.flatnonzero(starts)
        before = (cum[first] - steps[first])[np.cumsum(starts) - 1]  # the sum before each org's run
        count = self._connected[orgs] + cum - before
        after = np.append(keys[1:] != keys[:-1], True)
        np.maximum.at(self._peak, orgs[after], count[after])
        self._connected += group_sum(orgs, steps, self._n)
