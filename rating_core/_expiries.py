"""Lot expiries inside a window, found in bulk (SPEC §3 "Credits": "At expiry the lot's rest
is removed").

A lot's expiry is an org instant when it removes a rest, and what it removes depends on
what the org spent before it.  The bulk charging (`_charging.Charger._first_special`)
lists each slow org's expiring lots with `Ledger.expiries_between`, and `Expired` finds
which remove a rest and how much, with the balance after each, up to the org's first
special instant; the stepping loop (`_stepping`) asks the same rule, `expired_rest`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._events import CREDITS_EXPIRED, EventColumns
from ._ledger import Ledger, expired_rest
from ._runs import first_of_runs, grouped_cummin, last_of_runs, paid_through


class Expired:
    """The lot expiries of slow orgs that remove a rest, found in bulk (`_first_special`).

    SPEC §3 Credits: a lot's expiry removes its rest (`expired_rest`), first in its instant,
    one event a lot.  Lots are spent in expiry order, so what an org's k-th expiring lot
    and those ahead of it still hold is what they held at the cursor (`held`,
    `Ledger.expiries_between`) less what was taken from the front since: the cost of
    its charges before the lot's instant and the rests its earlier expiries removed.
    Up to its first special instant every charge is paid, so the rests removed through
    its k-th expiry total max(0, max over j <= k of held_j - cost before j): a running
    maximum.  Only an expiry with a rest is an org instant (`key`); `total` is each
    one's running total, what `through` reads (the last of an instant's lots).
    """

    def __init__(self, org, t, rest, total, before, width: int, base: int) -> None:
        self.org, self.t, self.rest, self.total, self.before = org, t, rest, total, before
        self.key = org * width + (t - base)
        self.width = width
        self.balance = np.zeros(0, dtype=np.int64)

    @classmethod
    def find(cls, led: Ledger, orgs, t_from, t1: int, base: int, width: int, row_key, paid) -> "Expired":
        """The expiries in [t_from[j], t1) of `orgs` (ascending) with a rest, every charge
        (`row_key`, running cost `paid` as in `_paid_through`) paid."""
        org, t, held = led.expiries_between(orgs, t_from, t1)
        before = paid_through(paid, row_key, org * width + (t - base) - 1, org, width)
        lost = np.maximum(held - before, 0)  # its running maximum is the rests' running total
        total = -grouped_cummin(-lost, np.cumsum(first_of_runs(org)) - 1, int(lost.max(initial=0)) + 1)
        prior = np.zeros_like(total)
        prior[1:] = total[:-1]
        prior[first_of_runs(org)] = 0
        rest = expired_rest(held, before + prior)
        has = rest > 0
        return cls(org[has], t[has], rest[has], total[has], before[has], width, base)

    def through(self, keys: NDArray[np.int64]) -> NDArray[np.int64]:
        """Per instant key (org * width + t - base): the rests its org's expiries removed up to
        and including that instant."""
        i = np.searchsorted(self.key, keys, side="right") - 1
        mine = i >= 0
        mine[mine] = self.org[i[mine]] == keys[mine] // self.width
        return np.where(mine, self.total[np.maximum(i, 0)] if len(self.total) else 0, 0)

    def settle(self, special: NDArray[np.int64], recharged: NDArray[np.int64], led: Ledger) -> None:
        """Keep the expiries before their org's first special instant, with the balance after
        each: `recharged`, per expiry, the recharges of its org's earlier instants."""
        keep = self.t < special[self.org]
        self.org, self.t, self.rest, self.total, self.before, recharged = (
            a[keep] for a in (self.org, self.t, self.rest, self.total, self.before, recharged))
        self.balance = (led.balance[self.org] + recharged * led.recharge_amounts[self.org]
                        - self.before - self.total)

    def events(self) -> EventColumns:
        """`credits_expired` at each kept expiry."""
        n = len(self.t)
        return EventColumns(self.t, self.org, np.full(n, CREDITS_EXPIRED, dtype=np.int8), self.balance,
                            self.rest, np.full(n, -1, dtype=np.int8))

    def per_org(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(orgs, rests removed in all) over the kept expiries, for `Ledger.remove_expired`."""
        last = last_of_runs(self.org)
        return self.org[last], self.total[last]

