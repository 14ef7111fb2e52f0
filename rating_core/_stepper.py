"""Stepping orgs one increment at a time: the loop's input prepared, its outcome applied.

`Stepper` lists each stepped org's items (its calls' first few boundaries, lot expiries,
hang-ups, other org instants) in SPEC §3 order, runs `_stepping.step` over them (by
Python or compiled), and applies the outcome in bulk as the bulk passes apply theirs.
`_charging.Charger` decides which orgs are stepped and over which spans.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from ._events import CREDITS_EXPIRED, RECHARGE_FAILED, RECHARGE_SUCCEEDED, EventColumns
from ._increments import boundary_ms
from ._ledger import Ledger
from ._recharges import Recharges
from ._runs import first_of_runs, group_sum, grouped_cumsum, offsets_within, run_starts
from ._charging import WindowOutcome, _add_lots, _end_refused, _order_by

if TYPE_CHECKING:
    from ._charging import Charger
    from ._stepping import Stepped

LISTED = 4  # boundaries of each call listed before the loop; the rest are queued as it pays
ROOM = 1 << 16  # events the loop makes room for at first (it grows its rows when full)


class Stepper:
    """Exact one-increment-at-a-time charging of some orgs, each over its span, as the rules read.

    The decisions are sequential: a refused charge ends its call (no later boundary, and its
    hang-up is no org instant), and each instant's recharge depends on the balance its
    charges leave.  So they are taken in one loop (`_stepping.step`, compiled past
    `Tuning.compile_after` items) over each connected call's first few boundaries
    (`LISTED`), the lot expiries, the hang-ups and the other org instants, sorted here once,
    org by org, in SPEC §3 order (expiries, hang-ups, charges by call_id, the rest); the
    loop queues the next boundaries of the calls that paid all they had listed (a call
    refused, most of them in an org stuck below its trigger, has few later boundaries
    listed, and a call that pays every second is not listed to the end of the span).
    Orgs are independent (their own balance, lots and pools), so many are stepped in one
    loop: 10,000 orgs stuck below their trigger are one pass here, not 10,000.  The
    outcome is applied after the loop in bulk, as the bulk passes apply theirs: recharges
    as lots (`_add_lots`), payments per call with `Charger._commit_calls`, refused calls
    with `_end_refused`, events as one column set in the loop's order.
    """

    def __init__(self, charger: Charger, out: WindowOutcome) -> None:
        self.charger = charger
        self.out = out

    def run(self, orgs: NDArray[np.int64], t_from: NDArray[np.int64], t1: NDArray[np.int64],
            other_org: NDArray[np.int64], other_t: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Step each org of `orgs` (ascending) over its instants in [t_from[j], t1[j]) in SPEC §3
        order; (`other_org`, `other_t`): their other org instants (any others are ignored).
        Returns per org the increments paid and the special instants met (refusals, failed
        attempts)."""
        # numba's import and its compiled loop's load are paid by the runs that step an org only
        from . import _stepping

        ch = self.charger
        c, led = ch.calls, ch.ledger
        g = len(orgs)
        group = np.full(ch.n_orgs, -1, dtype=np.int64)  # org -> its index in `orgs`
        group[orgs] = np.arange(g)
        calls = np.flatnonzero(c.view("alive") & (group[c.view("org")] >= 0))  # in call_id order
        calls = calls[np.argsort(group[c.col["org"][calls]], kind="stable")]  # org by org
        gc = group[c.col["org"][calls]]
        nb, hang = c.col["next_ms"][calls], c.col["hangup_ms"][calls]
        charged, hangs = nb < np.minimum(hang, t1[gc]), (hang >= t_from[gc]) & (hang < t1[gc])
        mine = charged | hangs  # the calls with an instant in their org's span
        calls, gc, nb, hang, charged, hangs = calls[mine], gc[mine], nb[mine], hang[mine], charged[mine], hangs[mine]
        due, hung = np.flatnonzero(charged), np.flatnonzero(hangs)
        # each due call's first LISTED boundaries in the span (SPEC §3 Increments); a call
        # that pays its last listed one has its next queued by the loop
        until = np.minimum(hang, t1[gc])
        inc_s, next_s = c.col["inc_s"][calls[due]], c.col["next_s"][calls[due]]
        after = nb[due] + 1000 * inc_s
        more = np.where(until[due] > after, -((after - until[due]) // (1000 * next_s)), 0)
        og = group[other_org]
        keep = og >= 0
        og, ot = og[keep], other_t[keep]
        keep = (ot >= t_from[og]) & (ot < t1[og])
        og, ot = og[keep], ot[keep]
        if len(ot):
            order = _order_by(og, ot)
            og, ot = og[order], ot[order]
            first = first_of_runs(og) | first_of_runs(ot)
            og, ot = og[first], ot[first]
        lots = ch._expiring[orgs]  # the only orgs with a lot expiring in the window
        expiry_org, expiry, held = led.expiries_between(orgs[lots], t_from[lots], int(t1.max()))
        ge = group[expiry_org]
        keep = expiry < t1[ge]
        ge, expiry, held = ge[keep], expiry[keep], held[keep]
        instants = len(due) + len(hung) + len(ot) + len(expiry)
        work = instants + int(more.sum())  # at most: every boundary of every due call
        ch.stepped_since = min(ch.stepped_since, int(t_from.min()))
        compiled = ch.compile_stepping(int(t1.max()), instants)
        if not compiled and work > ch.step_slice:  # by Python: in slices, deciding again after each
            if g > 1:  # half the orgs, then the others
                return tuple(np.concatenate(parts) for parts in zip(*(  # type: ignore[return-value]
                    self.run(orgs[part], t_from[part], t1[part], other_org, other_t)
                    for part in (slice(None, g // 2), slice(g // 2, None)))))
            if t1[0] - t_from[0] > 1:  # half the span, then the rest
                mid = (t_from + t1) // 2
                first = self.run(orgs, t_from, mid, other_org, other_t)
                second = self.run(orgs, mid, t1, other_org, other_t)
                return first[0] + second[0], first[1] + second[1]
        listed = np.minimum(1 + more, LISTED)
        j = offsets_within(listed)
        boundary = boundary_ms(np.repeat(nb[due], listed), np.repeat(inc_s, listed), np.repeat(next_s, listed), j)
        t = np.concatenate([boundary, hang[hung], expiry, ot, t1])  # t1: the cue of each org's last check
        kind = np.repeat(np.array([_stepping.CHARGE, _stepping.HANGUP, _stepping.EXPIRY, _stepping.OTHER,
                                   _stepping.OTHER], dtype=np.int64),
                         [len(boundary), len(hung), len(expiry), len(ot), g])
        ref = np.concatenate([np.repeat(due, listed), hung, np.arange(len(expiry)),
                              np.zeros(len(ot) + g, dtype=np.int64)])
        item_org = np.concatenate([np.repeat(gc[due], listed), gc[hung], ge, og, np.arange(g)])
        order = _order_by(item_org, t, kind, ref)  # ref: the index in `calls` (call_id order), or in `held`
        left = np.zeros(len(calls), dtype=np.int64)  # listed and unpaid, for calls listed in part
        left[due] = np.where(listed <= more, listed, 0)
        pools = c.col["pool"][calls]
        used, pool_index = np.unique(pools, return_inverse=True)
        columns = {name: c.col[name][calls] for name in ("inc_s", "next_s", "inc_cost", "next_cost", "rate",
                                                           "credits_ok")}
        columns["pool"] = np.where(pools >= 0, pool_index, -1)
        columns["until"] = until
        stepped = _stepping.step(
            t[order], kind[order], ref[order], item_org[order], columns, left,
            np.append(led.pool_remaining, 0)[used], held, led.recharge_rules(orgs),
            min(int((1 + more).sum()), ROOM), compiled=compiled)
        ch.stepped_items += len(t) + int(stepped.paid.sum())
        return self._apply(stepped, orgs, calls, gc, pools)

    def _apply(self, stepped: Stepped, orgs: NDArray[np.int64], calls: NDArray[np.intp],
               gc: NDArray[np.int64], pools: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Apply the loop's outcome for `orgs`: `calls` the table rows it stepped, `gc` the index
        in `orgs` of each one's org, `pools` each one's pool.  Returns `run`'s answer."""
        ch, out = self.charger, self.out
        c, led = ch.calls, ch.ledger
        g = len(orgs)
        led.retry_until[orgs] = stepped.retry_until
        events = EventColumns(stepped.event_t, orgs[stepped.event_org], stepped.event_kind.astype(np.int8),
                              stepped.event_balance.copy(), stepped.event_amount.copy(),
                              stepped.event_reason.astype(np.int8))
        _add_lots(led, recharges_of(events, led))  # first: spending takes from the front of the lots
        led.exhausted_reported[orgs] = stepped.reported  # as the loop left them: the lots were added there
        out.recharges.append(events)
        expired = events.kind == CREDITS_EXPIRED
        if expired.any():
            lost = group_sum(stepped.event_org[expired], events.amount[expired], g)
            led.remove_expired(orgs[lost > 0], lost[lost > 0])
        has = stepped.paid > 0
        ch._commit_calls(calls[has], stepped.paid[has], stepped.paid_s[has], stepped.paid_pool_s[has],
                         stepped.paid_cost[has], pools[has], orgs[gc[has]], out)
        if len(stepped.refused_ref):
            _end_refused(c, calls[stepped.refused_ref], stepped.refused_at, out)
        failed = stepped.event_org[events.kind == RECHARGE_FAILED]
        specials = np.bincount(gc[stepped.refused_ref], minlength=g) + np.bincount(failed, minlength=g)
        return group_sum(gc, stepped.paid, g), specials


def recharges_of(events: EventColumns, led: Ledger) -> Recharges:
    """The recharges among stepped events (org by org, each org's in time order), with what
    each org's charges and lot expiries before each took from its balance.

    Between two recharges only charges and expiries lower an org's balance, so after
    its k-th recharge it is start + k × amount − spent (start: the ledger's balance,
    not yet changed by the step).
    """
    ok = events.kind == RECHARGE_SUCCEEDED
    org, t, balance = events.org[ok], events.time_ms[ok], events.balance[ok]
    k = grouped_cumsum(np.ones(len(org), dtype=np.int64), run_starts(org))
    spent = led.balance[org] + k * led.recharge_amounts[org] - balance
    return Recharges(org, t, balance, spent)
