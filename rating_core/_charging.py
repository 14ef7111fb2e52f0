"""Paying due increments in bulk (SPEC §3 "Paying one increment", "Failing", "Credits").

For one window [t0, t1) with no refill or lot expiry inside it:

1. Every due call's increments in the window are counted in closed form.
2. Orgs whose totals prove that nothing special can happen (no pool runs out
   mid-window, no charge can be refused, the balance cannot fall below the
   recharge threshold) pay everything at once: grouped sums, no ordering.
3. The other ("slow") orgs have their increments expanded into rows ordered
   by (org, instant, call_id), and grouped cumulative sums per pool and per org
   find each org's first *special* instant: a refused charge or an
   auto-recharge.  Everything before it is committed in bulk.
4. From its special instant to t1, an org is stepped one increment at a time,
   exactly as the rules read.  That is the rare path: recharges, drops, and
   orgs with an exhausted balance.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._calls import CallTable
from ._ledger import NEVER, Ledger
from ._model import EndReason, LedgerEvent


def group_sum(keys: NDArray, values: NDArray, n: int) -> NDArray[np.int64]:
    """Exact integer sums of `values` grouped by `keys` in [0, n)."""
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, keys, values)
    return out


def ceil_cost(rate: NDArray[np.int64], seconds: NDArray[np.int64]) -> NDArray[np.int64]:
    """ceil(per_minute_micro * seconds / 60), in integers."""
    return (rate * seconds + 59) // 60


@dataclass
class WindowOutcome:
    """What charging one window did, besides updating the ledger and the call table."""

    ended: list[tuple[int, int, int]] = field(default_factory=list)  # (row, end_ms, reason)
    events: list[LedgerEvent] = field(default_factory=list)
    increments: int = 0


@dataclass
class OrgInstants:
    """(org, instant) pairs in the window besides charges and hang-ups: arrivals, fixed events."""

    org: NDArray[np.int64]
    t: NDArray[np.int64]


class Charger:
    def __init__(self, ledger: Ledger, calls: CallTable, n_orgs: int) -> None:
        self.ledger = ledger
        self.calls = calls
        self.n_orgs = n_orgs

    # -- entry point ------------------------------------------------------
    def charge_window(self, t0: int, t1: int, other: OrgInstants) -> WindowOutcome:
        out = WindowOutcome()
        c = self.calls
        nb, hang = c.view("next_ms"), c.view("hangup_ms")
        idx = np.flatnonzero(c.view("alive") & (nb < np.minimum(hang, t1)))
        due = _Due(c, idx, t1, np.r_[self.ledger.pool_remaining, 0])
        slow = self._slow_orgs(due)
        fast = ~slow[due.org]
        self._commit_fast(due, fast, out)
        if slow.any():
            self._charge_slow(t0, t1, due, ~fast, slow, other, out)
        return out

    # -- 2. orgs proven ordinary ----------------------------------------
    def _slow_orgs(self, due: "_Due") -> NDArray[np.bool_]:
        led = self.ledger
        rem = led.pool_remaining
        demand = group_sum(due.pool[due.live], due.seconds[due.live], len(rem))
        slow = np.zeros(self.n_orgs, dtype=bool)
        slow[led.pool_org[(demand > rem) & (rem > 0)]] = True
        paid = ~due.live
        slow[due.org[paid & ~due.credits_ok]] = True
        cred = paid & due.credits_ok
        spend = group_sum(due.org[cred], due.cost[cred], self.n_orgs)
        floor = np.where(led.recharge_on, led.recharge_below, 0)
        slow |= led.balance - spend < floor
        return slow

    def _commit_fast(self, due: "_Due", fast: NDArray[np.bool_], out: WindowOutcome) -> None:
        c, led = self.calls, self.ledger
        rows = due.idx[fast]
        live, paid = due.live & fast, ~due.live & fast
        c.col["billed_s"][rows] += due.seconds[fast]
        c.col["pool_s"][due.idx[live]] += due.seconds[live]
        c.col["credits_micro"][due.idx[paid]] += due.cost[paid]
        led.pool_remaining -= group_sum(due.pool[live], due.seconds[live], len(led.pool_remaining))
        led.spend_many(group_sum(due.org[paid], due.cost[paid], self.n_orgs))
        c.col["next_ms"][rows] = due.next_after(fast)
        c.col["inc_s"][rows] = due.next_s[fast]
        out.increments += int(due.count[fast].sum())

    # -- 3. ordered prefix for the other orgs ----------------------------
    def _charge_slow(self, t0, t1, due, mask, slow, other, out) -> None:
        rows = _Rows.expand(due, mask)
        special, p, cost = self._first_special(t0, t1, rows, slow, other)
        committed = rows.t < special[rows.org]
        self._commit_rows(rows, committed, p, cost, out)
        for o in np.flatnonzero(slow & (special < t1)):
            self._step_org(int(o), int(special[o]), t0, t1, other, out)

    def _first_special(self, t0, t1, rows: "_Rows", slow, other: OrgInstants):
        """Per org, the first instant with a refused charge or an auto-recharge (NEVER if none).

        Also returns each row's pool seconds and credit cost, valid up to that instant.
        """
        led = self.ledger
        p, cost = self._pool_and_cost(rows)
        r = rows.seconds - p
        cum = _grouped_cumsum(cost, rows.org_start)
        bal_before = led.balance[rows.org] - (cum - cost)
        fail = (r > 0) & (~rows.credits_ok | (cost > bal_before))
        special = np.full(self.n_orgs, NEVER, dtype=np.int64)
        _first_per_org(special, rows.org[fail], rows.t[fail])
        # auto-recharge: the balance is (or falls) below the threshold ...
        below_at = np.full(self.n_orgs, NEVER, dtype=np.int64)
        below_at[led.balance < led.recharge_below] = t0
        sinks = (led.balance[rows.org] - cum) < led.recharge_below[rows.org]
        _first_per_org(below_at, rows.org[sinks], rows.t[sinks])
        below_at[~led.recharge_on | ~slow] = NEVER
        # ... and the check runs at the org's first instant once no retry wait is pending
        ready = np.maximum(below_at, led.retry_until)
        hang_org, hang_t = self._hangups(t0, t1, slow)
        org_all = np.concatenate([rows.org, other.org, hang_org])
        t_all = np.concatenate([rows.t, other.t, hang_t])
        ok = (below_at[org_all] < NEVER) & (t_all >= ready[org_all])
        recharge_at = np.full(self.n_orgs, NEVER, dtype=np.int64)
        np.minimum.at(recharge_at, org_all[ok], t_all[ok])
        return np.minimum(special, recharge_at), p, cost

    def _hangups(self, t0: int, t1: int, slow: NDArray[np.bool_]):
        """Hang-up instants in the window of the slow orgs' connected calls."""
        c = self.calls
        hang, org = c.view("hangup_ms"), c.view("org")
        m = c.view("alive") & (hang >= t0) & (hang < t1)
        m[m] = slow[org[m]]
        return org[m], hang[m]

    def _pool_and_cost(self, rows: "_Rows") -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Seconds from the pool and credit cost of each row if every row before it is paid."""
        rem = self.ledger.pool_remaining
        live = np.r_[rem, 0][rows.pool] > 0  # pool -1 reads the 0 sentinel
        p = np.zeros(len(rows.t), dtype=np.int64)
        li = np.flatnonzero(live)
        if len(li):
            order = li[np.argsort(rows.pool[li], kind="stable")]
            s = rows.seconds[order]
            pools = rows.pool[order]
            starts = np.flatnonzero(np.r_[True, pools[1:] != pools[:-1]])
            before = _grouped_cumsum(s, starts) - s
            p[order] = np.clip(rem[pools] - before, 0, s)
        r = rows.seconds - p
        return p, np.where(r > 0, ceil_cost(rows.rate, r), 0)

    def _commit_rows(self, rows: "_Rows", keep, p, cost, out: WindowOutcome) -> None:
        c, led = self.calls, self.ledger
        ci = rows.call[keep]
        np.add.at(c.col["billed_s"], ci, rows.seconds[keep])
        np.add.at(c.col["pool_s"], ci, p[keep])
        np.add.at(c.col["credits_micro"], ci, cost[keep])
        pk = keep & (p > 0)
        led.pool_remaining -= group_sum(rows.pool[pk], p[pk], len(led.pool_remaining))
        led.spend_many(group_sum(rows.org[keep], cost[keep], self.n_orgs))
        # committed rows are a time-prefix of each call's rows: advance by their count
        calls, m = np.unique(ci, return_counts=True)
        inc = c.col["inc_s"][calls]
        nxt = c.col["next_s"][calls]
        c.col["next_ms"][calls] += 1000 * (inc + (m - 1) * nxt)
        c.col["inc_s"][calls] = nxt
        out.increments += int(keep.sum())

    # -- 4. one increment at a time --------------------------------------
    def _step_org(self, o: int, t_from: int, t0: int, t1: int, other: OrgInstants, out) -> None:
        stepper = _OrgStepper(self, o, t1, out)
        mine = other.t[(other.org == o) & (other.t >= t_from)]
        stepper.run(t_from, mine)


class _Due:
    """The due calls of a window with their increments counted in closed form."""

    def __init__(self, c: CallTable, idx: NDArray[np.intp], t1: int, pool_remaining: NDArray[np.int64]) -> None:
        self.idx = idx
        nb = c.col["next_ms"][idx]
        lim = np.minimum(c.col["hangup_ms"][idx], t1)
        self.nb = nb
        self.inc = c.col["inc_s"][idx]
        self.next_s = c.col["next_s"][idx]
        self.org = c.col["org"][idx]
        self.pool = c.col["pool"][idx]
        self.rate = c.col["rate"][idx]
        self.credits_ok = c.col["credits_ok"][idx]
        after_first = nb + 1000 * self.inc
        step = 1000 * self.next_s
        self.extra = np.where(lim > after_first, (lim - after_first + step - 1) // step, 0)
        self.count = 1 + self.extra
        self.seconds = self.inc + self.extra * self.next_s
        self.cost = ceil_cost(self.rate, self.inc) + self.extra * ceil_cost(self.rate, self.next_s)
        # a pool that is already empty pays nothing: such calls are credit-paid in full
        self.live = (self.pool >= 0) & (pool_remaining[self.pool] > 0)

    def next_after(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """next_ms after paying all of a call's increments in the window."""
        return self.nb[mask] + 1000 * (self.inc[mask] + self.extra[mask] * self.next_s[mask])


class _Rows:
    """Expanded increments of the slow orgs, sorted by (org, instant, call_id)."""

    @classmethod
    def expand(cls, due: _Due, mask: NDArray[np.bool_]) -> "_Rows":
        self = cls()
        k = due.count[mask]
        first = np.repeat(np.cumsum(k) - k, k)
        j = np.arange(int(k.sum()), dtype=np.int64) - first
        pick = np.repeat(np.flatnonzero(mask), k)
        inc, nxt = due.inc[pick], due.next_s[pick]
        t = due.nb[pick] + np.where(j > 0, 1000 * (inc + (j - 1) * nxt), 0)
        order = np.lexsort((due.idx[pick], t, due.org[pick]))
        pick, j, t = pick[order], j[order], t[order]
        self.call = due.idx[pick]
        self.t = t
        self.org = due.org[pick]
        self.pool = due.pool[pick]
        self.rate = due.rate[pick]
        self.credits_ok = due.credits_ok[pick]
        self.seconds = np.where(j == 0, due.inc[pick], due.next_s[pick])
        self.org_start = np.flatnonzero(np.r_[True, self.org[1:] != self.org[:-1]]) if len(t) else np.empty(0, np.int64)
        return self


def _grouped_cumsum(values: NDArray[np.int64], starts: NDArray[np.intp]) -> NDArray[np.int64]:
    """Cumulative sums restarting at each index in `starts` (non-negative values grouped contiguously)."""
    cum = np.cumsum(values)
    base = np.zeros(len(values), dtype=np.int64)
    base[starts[1:]] = cum[starts[1:] - 1]
    return cum - np.maximum.accumulate(base)


def _first_per_org(out: NDArray[np.int64], org: NDArray[np.int64], t: NDArray[np.int64]) -> None:
    """out[o] = min(out[o], earliest t of org o)."""
    np.minimum.at(out, org, t)


class _OrgStepper:
    """Exact one-increment-at-a-time charging of one org from an instant to the window's end."""

    def __init__(self, charger: Charger, o: int, t1: int, out: WindowOutcome) -> None:
        self.led = charger.ledger
        self.c = charger.calls
        self.o = o
        self.t1 = t1
        self.out = out

    def run(self, t_from: int, other_t: NDArray[np.int64]) -> None:
        c = self.c
        rows = np.flatnonzero(c.view("alive") & (c.view("org") == self.o))
        nb, hang, cid = c.col["next_ms"], c.col["hangup_ms"], c.col["call_id"]
        heap = [(int(nb[i]), int(cid[i]), int(i)) for i in rows if nb[i] < min(hang[i], self.t1)]
        heapq.heapify(heap)
        hangups = [(int(hang[i]), int(i)) for i in rows if t_from <= hang[i] < self.t1]
        instants = sorted(set(int(x) for x in other_t))
        hangups.sort()
        hi = ii = 0
        while True:
            t = min(heap[0][0] if heap else NEVER,
                    instants[ii] if ii < len(instants) else NEVER,
                    hangups[hi][0] if hi < len(hangups) else NEVER)
            if t >= self.t1:
                return
            had = False
            while ii < len(instants) and instants[ii] == t:
                ii, had = ii + 1, True
            while hi < len(hangups) and hangups[hi][0] == t:
                had |= bool(c.col["alive"][hangups[hi][1]])
                hi += 1
            while heap and heap[0][0] == t:
                _, _, i = heapq.heappop(heap)
                had = True
                if self._charge(i, t) and c.col["next_ms"][i] < min(hang[i], self.t1):
                    heapq.heappush(heap, (int(nb[i]), int(cid[i]), i))
            if had:
                ev = self.led.recharge_check(self.o, t)
                if ev:
                    self.out.events.append(ev)

    def _charge(self, i: int, t: int) -> bool:
        c, led, o = self.c, self.led, self.o
        s = int(c.col["inc_s"][i])
        pool = int(c.col["pool"][i])
        take = min(int(led.pool_remaining[pool]), s) if pool >= 0 else 0
        r = s - take
        cost = (int(c.col["rate"][i]) * r + 59) // 60 if r > 0 else 0
        if r > 0 and not c.col["credits_ok"][i]:
            return self._fail(i, t)
        if r > 0 and led.balance[o] < cost:
            ev = led.report_exhausted(o, t)
            if ev:
                self.out.events.append(ev)
            return self._fail(i, t)
        if take:
            led.pool_remaining[pool] -= take
        if cost:
            led.spend(o, cost)
        c.col["billed_s"][i] += s
        c.col["pool_s"][i] += take
        c.col["credits_micro"][i] += cost
        c.col["next_ms"][i] += 1000 * s
        c.col["inc_s"][i] = c.col["next_s"][i]
        self.out.increments += 1
        return True

    def _fail(self, i: int, t: int) -> bool:
        c = self.c
        reason = EndReason.BLOCKED_NO_BALANCE if c.col["billed_s"][i] == 0 else EndReason.DROPPED_BALANCE_EXHAUSTED
        c.end(np.array([i]))
        self.out.ended.append((i, t, int(reason)))
        return False
