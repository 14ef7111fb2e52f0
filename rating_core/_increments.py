"""SPEC §3 "Increments", "Paying one increment" and "Failing", each written once.

The bulk passes (`_charging.Charger`) call these on arrays, and the one-at-a-time
stepping (`_stepping`) compiles them for one call's scalars: each is one numpy
expression, the same on both, so changing a rule here changes it on every path.
"""

from __future__ import annotations

import numpy as np

from ._model import EndReason

DROPPED, BLOCKED = int(EndReason.DROPPED_BALANCE_EXHAUSTED), int(EndReason.BLOCKED_NO_BALANCE)


def boundary_ms(next_ms, inc_s, next_s, j):
    """SPEC §3 Increments: the instant of a call's j-th boundary from its next one (j = 0).

    A call answered at `a` with increment `first/next` is charged at `a`, then at
    `a + first`, `a + first + next`, ...: from a boundary `next_ms` whose increment
    is `inc_s` seconds, boundary j > 0 is `inc_s + (j - 1) * next_s` seconds later.
    Integers or arrays of one shape.
    """
    return next_ms + (j > 0) * (1000 * (inc_s + (j - 1) * next_s))


def ceil_cost(rate, seconds):
    """SPEC §3 Paying one increment: what `seconds` cost in credits, ceil(rate × seconds / 60).

    `rate` is per_minute_micro; integers (scalars or arrays), so the result is exact.
    """
    return (rate * seconds + 59) // 60


def pool_part(pool_remaining, seconds):
    """SPEC §3 Paying one increment: p = min(pool remaining, s), the seconds the pool pays.

    The rest, r = s - p, is paid by credits (`ceil_cost`); a call without a pool has
    a remaining of 0.  Written with comparisons (a bool times an int is the int or 0),
    not np.minimum, so that Python ints stay Python ints in the stepping loop.
    """
    held = pool_remaining * (pool_remaining > 0)
    return held - (held - seconds) * (held > seconds)


def refused(credit_s, credits_ok, cost, balance):
    """SPEC §3 Paying one increment: the increment fails (and nothing is deducted).

    It fails when credits must pay (`credit_s` = r > 0) and either credits are not
    allowed for the call or the balance is lower than the `cost`.  Scalars or
    numpy arrays of one shape (`credits_ok` boolean: `^ True` negates a bool, a numpy
    bool and a bool array alike, where `~True` is -2).
    """
    return (credit_s > 0) & ((credits_ok ^ True) | (cost > balance))


def exhausts(credit_s, credits_ok, cost, balance):
    """SPEC §3 Credits: a refusal for too low a balance, which raises `balance_exhausted` (once
    until credits are next added: `Ledger.report_exhausted`).  Scalars or arrays, as `refused`."""
    return (credit_s > 0) & credits_ok & (cost > balance)


def refused_reason(billed_s):
    """SPEC §3 Failing: a refused call that had paid no increment yet is blocked
    (`blocked_no_balance`), one that had is dropped (`dropped_balance_exhausted`).

    An array of billed seconds gives an int8 array of EndReason codes.
    """
    return np.where(billed_s > 0, DROPPED, BLOCKED).astype(np.int8)
