"""A window's auto-recharges found in bulk, from the cumulative cost of each org's charges.

SPEC §3 Credits: "Auto-recharge: after all events of an instant for an org, if
enabled and the balance is strictly below `recharge_below` and no retry wait is
pending, one attempt: on or before `card_expires` it adds a lot of
`recharge_amount`, else it fails ...".

Take one org and its instants k = 1, 2, ... in a window (every org instant:
arrivals, charges, hang-ups, refills, lot expiries with a rest; SPEC §3 "Org
instant"), B its balance at the first, A its recharge amount, L its trigger, C_k
what its charges of instants 1..k cost and its lot expiries up to k removed (both
only lower the balance, and neither depends on the recharges before them: new lots
expire a year on), and n_k the recharges made by the end of instant k
(n_0 = 0).  As long as every charge is paid and every attempt succeeds, the
balance when instant k's check runs is B + n_(k-1)·A - C_k, so the check
recharges exactly when n_(k-1) < m_k, where

    m_k = max(0, ceil((L - B + C_k) / A))

is the number of recharges that lift that balance to L or above.  m is
non-decreasing (costs are never negative) and one check adds at most one lot,
so n never overtakes m, and

    n_k = min(m_k, n_(k-1) + e_k)          (e_k = 1: no retry wait pending at k)

which unrolls to n_k = E_k + min(0, min over j <= k of (m_j - E_j)), with
E_k = e_1 + ... + e_k: a cumulative sum and a cumulative minimum per org.  The
formula holds up to the first refused charge (its cost is not deducted) or
failed attempt (it starts a retry wait); the caller finds both and stops there.
When A is below the cost of an instant (or the balance starts far below L) the
balance trails L and every instant recharges once: n_k < m_k ("lagging"), and
then instants without a charge recharge too, so the caller must list them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._ledger import Ledger
from ._runs import first_of_runs, grouped_cummin, grouped_cumsum


@dataclass
class Recharges:
    """Recharges found in bulk, in (org, instant) order: what their lots and events need."""

    org: NDArray[np.int64]
    t: NDArray[np.int64]
    balance: NDArray[np.int64]  # the org's balance right after each
    spent: NDArray[np.int64]  # what the org's charges up to and including its instant cost (from the ledger's balance)


@dataclass
class RechargeRun:
    """Per instant (sorted by org, then time): recharges made before and after its check."""

    before: NDArray[np.int64]  # n_(k-1): recharges of the org's earlier instants in the window
    after: NDArray[np.int64]  # n_k
    checks: NDArray[np.bool_]  # the check runs at k (it recharges, or fails when the card has expired)
    lagging: NDArray[np.bool_]  # the balance is still below the trigger after k's check


def recharges_along(led: Ledger, org: NDArray[np.int64], t: NDArray[np.int64],
                    spent: NDArray[np.int64]) -> RechargeRun:
    """The recharges at the instants (org[k], t[k]), sorted by (org, t), distinct.

    `spent[k]` is C_k, what the org's charges up to and including instant k
    cost (every one assumed paid); the balances are the ledger's, as at each
    org's first instant.  Valid up to each org's first refused charge or
    failing check, which the caller finds.
    """
    starts = first_of_runs(org)
    group = np.cumsum(starts) - 1
    k = len(org)
    balance, amount = led.balance[org], led.recharge_amounts[org]
    short = led.recharge_below[org] - balance + spent  # what the trigger asks for beyond the balance
    # n_k <= k, so m_k above k + 1 acts as k + 1 (also the value for an amount of 0)
    cap = k + 1
    m = np.where(short > 0, np.minimum(-(-short // np.maximum(amount, 1)), cap), 0)
    m[(short > 0) & (amount == 0)] = cap
    e = led.recharge_on[org] & led.may_attempt(t, org)
    big_e = grouped_cumsum(e.astype(np.int64), np.flatnonzero(starts))
    after = big_e + np.minimum(0, grouped_cummin(m - big_e, group, 2 * cap + 1))
    before = np.zeros(k, dtype=np.int64)
    before[1:] = after[:-1]
    before[starts] = 0
    checks = e & led.wants_recharge(balance + before * amount - spent, org)
    lagging = led.wants_recharge(balance + after * amount - spent, org)
    return RechargeRun(before, after, checks, lagging)

