"""Paying due increments in bulk (SPEC §3 "Paying one increment", "Failing", "Credits").

For one window [t0, t1) with no refill inside it (lot expiries are charged inside
windows: an org holding a lot that expires in one is slow, below):

1. Every due call's increments in the window are counted in closed form.
2. Orgs whose totals prove that nothing special can happen (no pool runs out
   mid-window, no charge can be refused, the balance cannot fall below the
   recharge threshold, no lot expires) pay everything at once: grouped sums,
   no ordering.
3. The other ("slow") orgs have their increments expanded into rows ordered
   by (org, instant, call_id).  Grouped cumulative sums per pool and per org
   give each row's cost, the auto-recharges follow from the cumulative cost
   (`_recharges.recharges_along`), the rests of expiring lots from the cost
   before each (`_expiries.Expired`), and together they find each org's first
   *special* instant: a refused charge or a failing recharge attempt.
   Everything before it, recharges included, is committed in bulk; the
   special instant is stepped alone, and the search goes on after it.  A
   window with more than `Tuning.split_rows` such rows is first cut in two
   (`_charge_halves`), the orgs settled so far paid for the whole window first.
   A busy slow org that may recharge but can pay every charge has no row per
   increment at all: its recharges are found from its cost per second, or per
   millisecond when its balance trails the trigger (`_crossings`), and it is
   paid as the fast orgs are.
4. An org with more than `Tuning.max_specials` special instants in a window, or
   whose special instants come closer than `Tuning.step_below` increments, is
   stepped one increment at a time for the rest of it, exactly as the rules
   read (`_stepper.Stepper`: one loop, `_stepping`, its outcome applied in
   bulk), and from the start of its next window while that holds.  That is
   the path of an org stuck below its trigger, each recharge smaller than a
   charge: about every other charge refused, a recharge at almost every
   instant.

Every path asks the same rules: the increment's boundaries, pool part, cost
and refusal from `_increments`, whether a recharge is wanted, may be tried and
succeeds from `_ledger` (`recharge_wanted`, `attempt_allowed`, `card_accepts`,
through `Ledger`'s array forms on the bulk paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ._calls import CallTable
from ._events import CARD_EXPIRED, RECHARGE_FAILED, EventColumns
from ._increments import boundary_ms, ceil_cost, exhausts, pool_part, refused, refused_reason
from ._ledger import NEVER, Ledger, next_attempt_ms
from ._model import LedgerEvent
from ._recharges import Recharges, recharges_along
from ._crossings import ROWS_PER_MS, WIDEST_MS, Charges, Found, by_millisecond, search, window_seconds
from ._expiries import Expired
from ._runs import distinct, first_of_runs, group_sum, grouped_cumsum, last_of_runs, offsets_within, paid_through, run_starts
from ._tuning import Tuning

BACKOFF_DOUBLINGS = 6
"""An org whose crossing search has failed k times in a row sits out the next 2**(k-1) - 1
windows (0, 1, 3, ..., at most 2**BACKOFF_DOUBLINGS - 1): a search that keeps failing costs
its arrays every window, on top of the rows it falls back to; one that succeeds resets k."""


class EndedCalls:
    """Calls a window ended early: (table row, end instant, EndReason), in no particular order.

    Kept as the arrays the bulk passes and the stepping produce (a month's
    blocked calls are ~250k).
    """

    def __init__(self) -> None:
        self._parts: list[tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int8]]] = []

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, rows: NDArray[np.intp], at: NDArray[np.int64], reason: NDArray[np.int8]) -> None:
        if len(rows):
            self._parts.append((rows, at, reason))

    def arrays(self) -> tuple[NDArray[np.intp], NDArray[np.int64], NDArray[np.int8]]:
        """Rows, end instants and reasons of every ended call."""
        parts = self._parts
        if not parts:
            return np.empty(0, np.intp), np.empty(0, np.int64), np.empty(0, np.int8)
        rows, at, reason = zip(*parts)
        return np.concatenate(rows), np.concatenate(at), np.concatenate(reason)


@dataclass
class WindowOutcome:
    """What charging one window did, besides updating the ledger and the call table."""

    ended: EndedCalls = field(default_factory=EndedCalls)
    events: list[LedgerEvent] = field(default_factory=list)
    recharges: list[EventColumns] = field(default_factory=list)  # found in bulk
    increments: int = 0


@dataclass
class OrgInstants:
    """(org, instant) pairs in the window besides charges, hang-ups and lot expiries: arrivals, refills."""

    org: NDArray[np.int64]
    t: NDArray[np.int64]


class Charger:
    """Pays the increments due in each window, updating the ledger and the call table."""

    def __init__(self, ledger: Ledger, calls: CallTable, n_orgs: int, tuning: Tuning = Tuning(),
                 end_ms: int = NEVER) -> None:
        self.max_specials = tuning.max_specials
        self.split_rows = tuning.split_rows
        self.step_below = tuning.step_below
        self.compile_after = tuning.compile_after
        self.step_slice = tuning.step_slice
        self.crossing_rows = tuning.crossing_rows
        self.end_ms = end_ms
        self.stepped_items = 0  # instants listed and increments paid by the stepper so far
        self.stepped_since = NEVER  # the first instant stepped
        # orgs whose last window was stepped with a special instant every fewer than
        # `step_below` increments: the next is stepped from its start, without a bulk pass
        self.stepping = np.zeros(n_orgs, dtype=bool)
        # orgs holding a lot that expires in the window being charged (set by `_charge` for
        # it, and for each half by `_charge_halves`; read by the passes and the stepper)
        self._expiring = np.zeros(n_orgs, dtype=bool)
        # orgs `_search` could not solve are not searched again before then: the halves of the
        # window, and after failures in a row (`_unsolved_runs`) a span of windows that doubles
        # with each (`BACKOFF_DOUBLINGS` at most)
        self._unsolved_until = np.zeros(n_orgs, dtype=np.int64)
        self._unsolved_runs = np.zeros(n_orgs, dtype=np.int64)
        # orgs paid in bulk through the end of a window before it was halved
        self._settled_until = np.zeros(n_orgs, dtype=np.int64)
        self.ledger = ledger
        self.calls = calls
        self.n_orgs = n_orgs

    # -- entry point ------------------------------------------------------
    def charge_window(self, t0: int, t1: int, other: OrgInstants,
                      candidates: NDArray[np.intp] | None = None) -> WindowOutcome:
        """Pay every increment due in [t0, t1); `candidates`: the only rows that may be due."""
        out = WindowOutcome()
        self._charge(t0, t1, other, candidates, out)
        return out

    def _charge(self, t0: int, t1: int, other: OrgInstants, candidates: NDArray[np.intp] | None,
                out: WindowOutcome) -> None:
        due = _Due(self.calls, t1, np.append(self.ledger.pool_remaining, 0), candidates)
        slow, crossing = self._slow_orgs(due)
        # a lot expiry lowers the balance by what the lots still hold then: a special instant
        self._expiring = self.ledger.expiring(t1)
        slow |= self._expiring
        slow &= self._settled_until < t1  # paid through a window this one is a half of
        # calls paid wholly from a pool that cannot run dry this window are independent of
        # everything else, even in a slow org: only their instants matter (recharge checks)
        safe = due.live & ~np.append(crossing, False)[due.pool]
        fast = due.due & (~slow[due.org] | safe)
        self.stepping &= slow  # an org with nothing special possible goes back to the bulk path
        if not slow.any():
            self._commit_fast(due, fast, out)
            return
        dead, trying = self._dead_at_start(due, slow, crossing, t0, t1)
        settled = ~slow  # orgs whose calls are paid whatever the order of the others'
        slow &= ~dead
        found = self._search(due, slow, crossing, t0, t1, other)
        if found is not None:  # those orgs pay every charge, as the fast ones do
            slow &= ~found.solved
            settled |= found.solved
            self.stepping &= ~found.solved
            fast = fast | (due.due & found.solved[due.org])
        stepped = self.stepping & slow  # stepped in the last window: stepped again from the start
        slow &= ~stepped
        expand = due.due & ~fast & slow[due.org]
        # rows listed one each: the slow orgs' increments, and the instants of their calls paid in
        # bulk; a stepped org's own calls are not (the stepper lists a few boundaries a call)
        listed = safe & (slow | stepped)[due.org]
        rows = int(due.count[expand].sum()) + int(due.count[listed].sum())
        if t1 - t0 > 1 and rows > self.split_rows:
            # the settled orgs' whole window first: the halves need not find it again (and
            # must not: an org whose balance trails its trigger would recharge twice)
            self._settle(due, due.due & settled[due.org], found, out)
            self._settled_until[settled] = np.maximum(self._settled_until[settled], t1)
            self._charge_halves(t0, t1, other, candidates, out)
            return
        # instants of calls about to be paid in bulk, kept before the commit moves them on
        safe_slow = _Boundaries(due, listed)
        if trying.any():  # every instant of these orgs' due calls: refused ones only have the first
            attempts = _Boundaries(due, due.due & trying[due.org], np.where(_refused_if_dead(due, self.ledger.balance), 1, due.count))
        self._settle(due, fast, found, out)
        self._settle_dead(due, due.due & ~fast & dead[due.org], out)
        if trying.any():
            self._fail_recharges(trying, t0, t1, other, attempts, out)
        if stepped.any():
            orgs = np.flatnonzero(stepped)
            self._step_orgs(orgs, np.full(len(orgs), t0, dtype=np.int64), t1, other, safe_slow, out)
        if slow.any():
            self._charge_slow(t0, t1, due, expand, slow, other, safe_slow, out)

    def _settle(self, due: "_Due", fast, found, out: WindowOutcome) -> None:
        """Pay the calls `fast` in bulk, the lots of the recharges `found` added first
        (`_add_recharges`)."""
        if found is not None:
            self._add_recharges(found, out)
        self._commit_fast(due, fast, out)

    def _search(self, due: "_Due", slow, crossing, t0: int, t1: int, other: OrgInstants):
        """The recharges of the busy slow orgs that pay every charge, found without a row per
        increment (`_crossings`); None when no org qualifies.

        An org qualifies when its credit-paid charges in the window are at least
        `crossing_rows` times the cells the search needs (below that, its rows cost less),
        its card is valid and no retry wait is pending through the window, none of its pools
        runs dry in it, no lot of it expires, and credits may pay each of its calls that its
        pool does not.  Orgs at or above their trigger are searched second by second
        (`search`); those below it, or whose balance trails it in the window, millisecond by
        millisecond (`by_millisecond`, which lists every org instant).
        """
        led = self.ledger
        paid = due.paid & due.credits_ok
        rows = group_sum(due.org, np.where(paid, due.count, 0), self.n_orgs)
        # an org stepped for dense refusals last window is stepped again: searching it would fail
        ok = slow & (rows > 0) & ~self._expiring & (self._unsolved_until <= t0) & ~self.stepping
        if not ok.any():
            return None
        ok &= led.recharge_on & (led.recharge_amounts > 0) & led.may_attempt(t0) & led.card_valid(t1 - 1)
        ok[led.pool_org[crossing]] = False
        ok[due.org[due.paid & ~due.credits_ok]] = False
        ok[due.org[due.due & (due.nb < t0)]] = False  # the searches count charges from t0 on
        seconds = window_seconds(t0, t1)
        above = ok & ~led.wants_recharge(led.balance) & (rows >= self.crossing_rows * seconds)
        trailing = ok & (rows * ROWS_PER_MS >= self.crossing_rows * (t1 - t0)) & (t1 - t0 <= WIDEST_MS)
        if not (above | trailing).any():
            return None
        # every due call of those orgs, credit costs 0 where its pool pays (`search` skips those)
        m = due.due & (above | trailing)[due.org]
        charges = Charges(due.org[m], due.nb[m], due.inc[m], due.next_s[m], due.count[m],
                          np.where(paid[m], due.first_cost[m], 0), np.where(paid[m], due.next_cost[m], 0))
        parts = []
        if above.any():
            orgs = np.flatnonzero(above)
            parts.append(search(orgs, led.balance[orgs], led.recharge_below[orgs], led.recharge_amounts[orgs],
                                charges, t0, t1, self.n_orgs, self.crossing_rows))
            trailing &= ~parts[0].solved
        if trailing.any():
            hang_org, hang_t = self._hangups(t1, trailing)
            parts.append(by_millisecond(led, np.flatnonzero(trailing), charges, np.concatenate([other.org, hang_org]),
                                        np.concatenate([other.t, hang_t]), t0, t1))
        found = parts[0] if len(parts) == 1 else Found.joined(parts)
        failed = (above | trailing) & ~found.solved
        windows = (1 << np.minimum(self._unsolved_runs[failed], BACKOFF_DOUBLINGS)) - 1
        self._unsolved_until[failed] = t1 + (t1 - t0) * windows
        self._unsolved_runs[failed] += 1
        self._unsolved_runs[found.solved] = 0
        return found

    def _charge_halves(self, t0: int, t1: int, other: OrgInstants, candidates: NDArray[np.intp] | None,
                       out: WindowOutcome) -> None:
        """The window as two, one after the other: the same result (every rule is per instant).

        A slow org's increments are expanded one row each, and a busy org in
        an hour window of per-second billing has ~20k of them, where its
        special instant (a recharge, say) is one.  Halving until the slow part
        is small keeps the quiet halves on the bulk path: log(rows) passes
        over the due calls, not one pass over every increment.  Orgs settled
        for the whole window before it was halved sit the halves out
        (`_settled_until`), and orgs `_search` could not solve are not
        searched again in them (`_unsolved_until`).
        """
        mid = (t0 + t1) // 2
        first = other.t < mid
        self._charge(t0, mid, OrgInstants(other.org[first], other.t[first]), candidates, out)
        self._charge(mid, t1, OrgInstants(other.org[~first], other.t[~first]), candidates, out)

    # -- 2. orgs proven ordinary ----------------------------------------
    def _slow_orgs(self, due: "_Due") -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Orgs where something special may happen this window, and the pools that run dry."""
        led = self.ledger
        rem = led.pool_remaining
        pool_s = np.where(due.live, due.seconds, 0)
        demand = group_sum(due.pool, pool_s, len(rem) + 1)[:-1]
        crossing = (demand > rem) & (rem > 0)
        slow = np.zeros(self.n_orgs, dtype=bool)
        slow[led.pool_org[crossing]] = True
        slow[due.org[due.paid & ~due.credits_ok]] = True
        cost = np.where(due.paid & due.credits_ok, due.cost, 0)
        spend = group_sum(due.org, cost, self.n_orgs)
        left = led.balance - spend
        slow |= (left < 0) | led.wants_recharge(left)
        # reused by _commit_fast when every due call is fast (then no paid call lacks credits_ok)
        self._totals = _Totals(pool_s, demand, cost, spend)
        return slow, crossing

    def _commit_fast(self, due: "_Due", fast: NDArray[np.bool_], out: WindowOutcome) -> None:
        c, led = self.calls, self.ledger
        every = bool(fast.all())  # the common case: reuse _slow_orgs' sums, skip the masking
        totals = self._totals
        seconds = due.seconds if every else np.where(fast, due.seconds, 0)
        pool_s = totals.pool_s if every else np.where(due.live & fast, due.seconds, 0)
        sel = due.sel
        c.view("billed_s")[sel] += seconds
        c.view("pool_s")[sel] += pool_s
        led.pool_remaining -= totals.demand if every else group_sum(due.pool, pool_s, len(totals.demand) + 1)[:-1]
        paid = due.paid if every else due.paid & fast
        if paid.any():
            cost = totals.cost if every else np.where(paid, due.cost, 0)
            c.view("credits_micro")[sel] += cost
            led.spend_many(totals.spend if every else group_sum(due.org, cost, self.n_orgs))
        c.view("next_ms")[sel] += 1000 * seconds
        c.view("inc_s")[sel] = due.next_s if every else np.where(fast, due.next_s, due.inc)
        c.view("inc_cost")[sel] = due.next_cost if every else np.where(fast, due.next_cost, c.view("inc_cost")[sel])
        out.increments += due.increments if every else int(due.count[fast].sum())

    # -- 2b. orgs whose balance cannot pay anything this window ---------
    def _dead_at_start(self, due: "_Due", slow, crossing, t0: int, t1: int):
        """Slow orgs where no call's outcome depends on the order of increments (see _dead_orgs).

        Decided per call, before any row is expanded: no recharge can succeed
        before t1, no lot expires, no pool runs dry, and no credit-paid call's next increment
        costs between 1 and the whole balance.  The usual state of an org
        whose card has expired, for the rest of the month.  Also returns the
        dead orgs whose (failing) recharge check is due in the window.
        """
        led = self.ledger
        bal = led.balance
        pending, fails = led.recharge_pending(t0, t1)
        bad = pending & ~fails
        bad |= self._expiring
        bad[led.pool_org[crossing]] = True
        first = due.first_cost
        payable = due.paid & due.credits_ok & (first > 0) & (first <= bal[due.org])
        bad[due.org[payable]] = True
        dead = slow & ~bad
        return dead, dead & fails

    def _settle_dead(self, due: "_Due", mask: NDArray[np.bool_], out: WindowOutcome) -> None:
        """Credit-paid calls of dead orgs: refused at their next increment, or free throughout.

        A call's increments cost 0 only when its rate is 0, and then all of
        them do; any other is refused at once, so it ends at its next boundary.
        """
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        c = self.calls
        rows, org, at = due.rows[idx], due.org[idx], due.nb[idx]
        doomed = _refused_if_dead(due, self.ledger.balance)[idx]
        free, free_idx = rows[~doomed], idx[~doomed]
        c.col["billed_s"][free] += due.seconds[free_idx]
        c.col["next_ms"][free] += 1000 * due.seconds[free_idx]
        c.col["inc_s"][free] = due.next_s[free_idx]
        c.col["inc_cost"][free] = due.next_cost[free_idx]
        out.increments += int(due.count[free_idx].sum())
        exhausted = doomed & due.credits_ok[idx]
        self._report_exhausted(org[exhausted], at[exhausted], out)
        _end_refused(c, rows[doomed], at[doomed], out)  # the engine sorts the CDRs

    def _report_exhausted(self, org: NDArray[np.int64], t: NDArray[np.int64], out: WindowOutcome) -> None:
        """balance_exhausted per org at its earliest refused credit charge among (org, t)."""
        if not len(org):
            return
        first = np.full(self.n_orgs, NEVER, dtype=np.int64)
        _first_per_org(first, org, t)
        orgs = np.flatnonzero(first < NEVER)
        out.events += self.ledger.report_exhausted(orgs, first[orgs])

    def _fail_recharges(self, trying, t0: int, t1: int, other: OrgInstants, attempts: "_Boundaries",
                        out: WindowOutcome) -> None:
        """Run the recharge checks of dead orgs whose card has expired: each fails, then waits.

        A check runs at the org's first instant (arrival, charge attempt,
        hang-up, refill) at or after its retry time; the balance does not
        change, so only the instants matter.  Called after `_settle_dead`, so
        the calls it refused no longer hang up.  Each org's instants are listed
        sorted (one may repeat: a check lands on its first copy, the next check is
        later), and each instant points to the next check after one there:
        its first instant at or after the retry wait (`next_attempt_ms`).  The
        checks are the chain of those pointers from the org's first instant,
        found by doubling: a pass adds the next 2**k checks of every org, so an
        org checking at each of 500,000 instants (a wait of 1 ms) takes 19.
        """
        led = self.ledger
        hang_org, hang_t = self._hangups(t1, trying)
        start = np.maximum(led.retry_until, t0)
        charge_org, charge_t = attempts.times_for(trying, start)
        org = np.concatenate([charge_org, other.org, hang_org])
        t = np.concatenate([charge_t, other.t, hang_t])
        keep = trying[org] & (t >= start[org]) & (t < t1)
        org, t = org[keep], t[keep]
        if not len(t):
            return
        width = t1 - t0 + 1
        key = np.sort(org * width + (t - t0))
        org, t = key // width, key % width + t0
        first = first_of_runs(org)
        n = len(key)
        retry = led.retry_after
        wait = np.maximum(next_attempt_ms(t, retry[org]), t + 1)
        jump = np.searchsorted(key, org * width + np.minimum(wait, t1) - t0, side="left")
        del wait  # a few arrays of n at a time: n may be millions of instants
        starts = np.flatnonzero(first)
        run_end = np.repeat(np.append(starts[1:], n), np.diff(np.append(starts, n)))  # each instant's org's end
        jump = np.append(np.where(jump < run_end, jump, n), n)  # n: no check after (the org's last)
        del run_end
        checked = np.zeros(n + 1, dtype=bool)
        checked[starts] = True  # each org's first check: its first instant
        found = starts
        while True:  # `found`: an org's first 2**k checks; `jump`: 2**k checks on
            further = jump[found]
            further = further[further < n]
            if not len(further):
                break
            checked[further] = True
            found = np.concatenate([found, further])
            jump = jump[jump]
        done = np.flatnonzero(checked[:n])  # (org, instant) order
        org, t = org[done], t[done]
        last = last_of_runs(org)
        led.retry_until[org[last]] = next_attempt_ms(t[last], retry[org[last]])
        n = len(t)
        out.recharges.append(EventColumns(t, org, np.full(n, RECHARGE_FAILED, dtype=np.int8), led.balance[org],
                                          np.zeros(n, dtype=np.int64), np.full(n, CARD_EXPIRED, dtype=np.int8)))

    # -- 3. ordered prefix for the other orgs ----------------------------
    def _charge_slow(self, t0, t1, due, mask, slow, other, safe: "_Boundaries", out) -> None:
        """Commit up to each org's next special instant, step that instant alone, repeat.

        An org with more than `max_specials` special instants in one window, or
        whose special instants come closer than `step_below` increments (an org
        stuck below its trigger, its recharges smaller than what a charge
        costs: about every other charge refused), is stepped one increment at a
        time for the rest of it instead: each pass here costs as much as
        stepping thousands of increments.
        """
        rows = _Rows.expand(due, mask)
        cursor = np.full(self.n_orgs, t0, dtype=np.int64)  # instants before it are done
        for _ in range(self.max_specials):
            special, p, cost, recharges, expired = self._first_special(cursor, t1, rows, slow, other, safe)
            # events in instant order (expiries first); lots added before the spending is taken
            out.recharges.append(expired.events())
            self._add_recharges(recharges, out)
            self.ledger.remove_expired(*expired.per_org())  # taken with the spending: before it
            committed = rows.t < special[rows.org]
            self._commit_rows(rows, committed, p, cost, out)
            paid = np.bincount(rows.org[committed], minlength=self.n_orgs)
            rows = rows.take(~committed)
            active = slow & (special < t1)
            if not active.any():
                return
            dead = self._dead_orgs(rows, active, t1)
            self._charge_dead(rows.take(dead[rows.org]), out)
            dense = active & ~dead & (paid < self.step_below)
            if dense.any():
                orgs = np.flatnonzero(dense)
                self._step_orgs(orgs, special[orgs], t1, other, safe, out)
            slow = active & ~dead & ~dense
            if not slow.any():
                return
            self._step_instants(np.flatnonzero(slow), special, out)
            cursor = np.where(slow, special + 1, cursor)
            keep = slow[rows.org] & (rows.t >= cursor[rows.org])
            rows = rows.take(keep & self.calls.col["alive"][rows.call])
        orgs = np.flatnonzero(slow)
        self._step_orgs(orgs, cursor[orgs], t1, other, safe, out)

    def _add_recharges(self, recharges: Recharges, out: WindowOutcome) -> None:
        """The lots and events of recharges found in bulk, before the charges between them.

        Adding a window's lots first and then spending its charges leaves
        the lots as the interleaved order would (see `Ledger.spend_many`).
        """
        led = self.ledger
        org = recharges.org
        if not len(org):
            return
        _add_lots(led, recharges)
        out.recharges.append(EventColumns.recharges(recharges.t, org, recharges.balance,
                                                    led.recharge_amounts[org]))

    def _step_instants(self, orgs: NDArray[np.int64], t: NDArray[np.int64], out: WindowOutcome) -> None:
        """Charge each org's increments due at its instant t[org] one by one, then run its
        recharge check (an org instant: it holds a refused charge or a failing attempt)."""
        from ._stepper import Stepper  # it builds on this module's helpers

        at = t[orgs]
        Stepper(self, out).run(orgs, at, at + 1, orgs, at)

    # -- 3b. orgs whose balance cannot pay anything until the window ends --
    def _dead_orgs(self, rows: "_Rows", candidates, t1: int) -> NDArray[np.bool_]:
        """Orgs where each remaining increment succeeds or fails regardless of order.

        That holds when no recharge can come before t1, no lot expires, no pool
        runs out, and every credit-paid increment costs 0 or more than the whole balance:
        the balance then never changes, so a call either pays all its
        increments from its pool (or for free) or is refused at its first one.
        This is the common state of an org whose card has expired.
        """
        led = self.ledger
        bal = led.balance
        bad = (led.wants_recharge(bal) & led.may_attempt(t1 - 1)) | self._expiring
        rem = led.pool_remaining
        live = np.append(rem, 0)[rows.pool] > 0
        demand = group_sum(rows.pool, np.where(live, rows.seconds, 0), len(rem) + 1)[:-1]
        bad[led.pool_org[demand > rem]] = True
        cost = ceil_cost(rows.rate, rows.seconds)
        payable = ~live & rows.credits_ok & (cost > 0) & (cost <= bal[rows.org])
        bad[rows.org[payable]] = True
        return candidates & ~bad

    def _charge_dead(self, rows: "_Rows", out: WindowOutcome) -> None:
        led = self.ledger
        live = np.append(led.pool_remaining, 0)[rows.pool] > 0
        p = np.where(live, rows.seconds, 0)  # no pool of a dead org runs dry: a live one pays all
        r = rows.seconds - p
        cost = ceil_cost(rows.rate, r)
        balance = led.balance[rows.org]  # a dead org's balance does not change in the window
        fail = refused(r, rows.credits_ok, cost, balance)
        fail_call, first = np.unique(rows.call[fail], return_index=True)
        fail_t = rows.t[fail][first]
        doomed = np.isin(rows.call, fail_call)
        self._commit_rows(rows, ~doomed, p, cost, out)
        exhausted = exhausts(r, rows.credits_ok, cost, balance)
        self._report_exhausted(rows.org[exhausted], rows.t[exhausted], out)
        _end_refused(self.calls, fail_call, fail_t, out)

    def _first_special(self, cursor, t1, rows: "_Rows", slow, other: OrgInstants, safe: "_Boundaries"):
        """Per org, the first instant the bulk cannot prove (NEVER if none): a refused charge or
        a recharge attempt that fails (the card has expired).

        Also returns each row's pool seconds and credit cost, valid before that
        instant, and the recharges that succeed and the lot expiries that remove a
        rest before it (`Recharges`, `_expiries.Expired`).  Recharges follow from the
        cumulative cost (`recharges_along`), expiries from the cost before each
        (`Expired.find`); a charge is refused when it costs more than the balance
        before it (SPEC §3 "Paying one increment"), that balance counting the
        recharges of the org's earlier instants and the expiries up to its own.
        """
        led = self.ledger
        p, cost = self._pool_and_cost(rows)
        r = rows.seconds - p
        cum = grouped_cumsum(cost, rows.org_start)
        base = int(cursor.min())
        width = t1 - base + 1
        row_key = rows.org * width + (rows.t - base)
        paid = np.concatenate([[0], np.cumsum(cost)])
        expiring = np.flatnonzero(slow & self._expiring)
        expired = Expired.find(led, expiring, cursor[expiring], t1, base, width, row_key, paid)
        hang_org, hang_t = self._hangups(t1, slow)
        org_all = np.concatenate([rows.org, other.org, hang_org])
        t_all = np.concatenate([rows.t, other.t, hang_t])
        extra = slice(len(rows.t), None)  # the instants besides charges: only slow orgs', from the cursor
        ok = np.ones(len(t_all), dtype=bool)
        ok[extra] = slow[org_all[extra]] & (t_all[extra] >= cursor[org_all[extra]]) & (t_all[extra] < t1)
        keys = distinct(np.concatenate([org_all[ok] * width + (t_all[ok] - base), expired.key]))
        run, keys = self._recharges(keys, width, base, row_key, paid, cursor, t1, slow, safe, expired)
        inst_org, inst_t = keys // width, keys % width + base
        # the balance before each row: its org's start, the recharges of earlier instants, the costs
        # before it, the expiries up to its instant
        before = run.before[np.searchsorted(keys, row_key)]
        bal_before = (led.balance[rows.org] + before * led.recharge_amounts[rows.org] - (cum - cost)
                      - expired.through(row_key))
        fail = refused(r, rows.credits_ok, cost, bal_before)
        special = np.full(self.n_orgs, NEVER, dtype=np.int64)
        _first_per_org(special, rows.org[fail], rows.t[fail])
        valid = led.card_valid(inst_t, inst_org)
        fails = run.checks & ~valid
        _first_per_org(special, inst_org[fails], inst_t[fails])
        done = run.checks & valid & (inst_t < special[inst_org])
        spent = paid_through(paid, row_key, keys[done], inst_org[done], width) + expired.through(keys[done])
        balance = (led.balance[inst_org[done]] + run.after[done] * led.recharge_amounts[inst_org[done]]
                   - spent)
        expired.settle(special, run.before[np.searchsorted(keys, expired.key)], led)
        return special, p, cost, Recharges(inst_org[done], inst_t[done], balance, spent), expired

    def _recharges(self, keys, width, base, row_key, paid, cursor, t1, slow, safe: "_Boundaries",
                   expired: "Expired"):
        """`recharges_along` the instants `keys` (org * width + t - base, sorted); with the
        boundaries of calls paid in bulk added for orgs that lag (only then can an instant
        without a charge of its own recharge)."""
        led = self.ledger
        added = ~slow
        while True:
            org = keys // width
            spent = paid_through(paid, row_key, keys, org, width) + expired.through(keys)
            run = recharges_along(led, org, keys % width + base, spent)
            lagging = np.zeros(self.n_orgs, dtype=bool)
            lagging[org[run.lagging]] = True
            lagging |= led.wants_recharge(led.balance)  # below the trigger from the cursor on
            lagging &= led.may_attempt(t1 - 1)  # else no check runs before t1 anyway
            more_org, more_t = safe.times_for(lagging & ~added, cursor)
            added |= lagging
            if not len(more_t):
                return run, keys
            keys = distinct(np.concatenate([keys, more_org * width + (more_t - base)]))

    def _hangups(self, t1: int, slow: NDArray[np.bool_]):
        """Hang-up instants before t1 of the slow orgs' connected calls (callers filter by cursor)."""
        c = self.calls
        hang, org = c.view("hangup_ms"), c.view("org")
        m = c.view("alive") & (hang < t1)
        m[m] = slow[org[m]]
        return org[m], hang[m]

    def _pool_and_cost(self, rows: "_Rows") -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Seconds from the pool and credit cost of each row if every row before it is paid."""
        rem = self.ledger.pool_remaining
        live = np.append(rem, 0)[rows.pool] > 0  # pool -1 reads the 0 sentinel
        p = np.zeros(len(rows.t), dtype=np.int64)
        li = np.flatnonzero(live)
        if len(li):
            order = li[np.argsort(rows.pool[li], kind="stable")]
            s = rows.seconds[order]
            pools = rows.pool[order]
            before = grouped_cumsum(s, run_starts(pools)) - s
            p[order] = pool_part(rem[pools] - before, s)
        return p, ceil_cost(rows.rate, rows.seconds - p)

    def _commit_rows(self, rows: "_Rows", keep, p, cost, out: WindowOutcome) -> None:
        """Pay the rows `keep` (a time-prefix of each call's rows) with pool seconds `p`, credits `cost`."""
        call = rows.call[keep]  # table rows: sums over the table's rows need no sort
        n, c = self.calls.n, self.calls
        m = np.bincount(call, minlength=n)
        calls = np.flatnonzero(m)
        self._commit_calls(calls, m[calls], group_sum(call, rows.seconds[keep], n)[calls],
                           group_sum(call, p[keep], n)[calls], group_sum(call, cost[keep], n)[calls],
                           c.col["pool"][calls], c.col["org"][calls], out)

    def _commit_calls(self, calls, m, seconds, pool_s, cost, pool, org, out: WindowOutcome) -> None:
        """Pay the next m > 0 increments of each of `calls` (table rows, each once): their
        seconds, pool seconds and credit cost summed per call; `pool`, `org`: each call's."""
        c, led = self.calls, self.ledger
        c.col["billed_s"][calls] += seconds
        c.col["pool_s"][calls] += pool_s
        c.col["credits_micro"][calls] += cost
        pk = pool_s > 0
        led.pool_remaining -= group_sum(pool[pk], pool_s[pk], len(led.pool_remaining))
        led.spend_many(group_sum(org, cost, self.n_orgs))
        nxt = c.col["next_s"][calls]
        c.col["next_ms"][calls] = boundary_ms(c.col["next_ms"][calls], c.col["inc_s"][calls], nxt, m)
        c.col["inc_s"][calls] = nxt
        c.col["inc_cost"][calls] = c.col["next_cost"][calls]
        out.increments += int(m.sum())

    # -- 4. one increment at a time --------------------------------------
    def compile_stepping(self, t1: int, items: int) -> bool:
        """Whether the span that ends at t1, `items` listed, is stepped by the compiled loop.

        numba's load (~0.3 s and ~150 MB a process) repays itself only over many
        items: the loop runs compiled once the run's stepped items, those so far and
        those still to come at the pace so far until the run's end, pass
        `compile_after`, and a tenth of them are done (a burst at the start of a
        run foretells little).  The pace is taken over a minute at least: a first
        span can be one instant.  Never when `compile_after` is None.
        """
        if self.compile_after is None:
            return False
        done, elapsed = self.stepped_items + items, max(t1 - self.stepped_since, PACE_MS)
        ahead = done * max(self.end_ms - t1, 0) // elapsed if self.end_ms < NEVER else 0
        return 10 * done > self.compile_after and done + ahead > self.compile_after

    def _step_orgs(self, orgs: NDArray[np.int64], t_from: NDArray[np.int64], t1: int, other: OrgInstants,
                   safe: "_Boundaries", out) -> None:
        """Step each org of `orgs` (ascending) over [t_from[j], t1); an org that meets special
        instants every few increments is stepped from the start of the next window too."""
        from ._stepper import Stepper  # it builds on this module's helpers

        start = np.full(self.n_orgs, NEVER, dtype=np.int64)
        start[orgs] = t_from
        safe_org, safe_t = safe.times_for(start < NEVER, start)
        paid, specials = Stepper(self, out).run(orgs, t_from, np.full(len(orgs), t1, dtype=np.int64),
                                                 np.concatenate([other.org, safe_org]),
                                                 np.concatenate([other.t, safe_t]))
        self.stepping[orgs] = (specials > 0) & (paid < self.step_below * specials)


@dataclass
class _Totals:
    """_slow_orgs' per-call amounts and their sums, which the bulk commit reuses."""

    pool_s: NDArray[np.int64]  # seconds each due call takes from its pool
    demand: NDArray[np.int64]  # ... summed per pool
    cost: NDArray[np.int64]  # micro-units each due call takes from its org's credits
    spend: NDArray[np.int64]  # ... summed per org


class _Due:
    """The calls with an increment due in the window, their increments counted in closed form.

    When most connected calls are due (long windows, virtual time) the arrays
    are full-width views of the table (zeros where nothing is due): contiguous
    passes beat gathers and scatters.  When few are (real-time ticks) they are
    gathered, so a tick costs O(due calls), not O(connected calls).
    """

    def __init__(self, c: CallTable, t1: int, pool_remaining: NDArray[np.int64],
                 candidates: NDArray[np.intp] | None = None) -> None:
        if candidates is None:  # every row may be due
            lim = np.minimum(c.view("hangup_ms"), t1)
            due = c.view("alive") & (c.view("next_ms") < lim)
            n_due = int(np.count_nonzero(due))
            dense = 2 * n_due > c.n
            idx = np.empty(0, dtype=np.intp) if dense else np.flatnonzero(due)
            lim = lim if dense else lim[idx]
        else:  # only these rows may be (CallTable's watch)
            lim = np.minimum(c.col["hangup_ms"][candidates], t1)
            is_due = c.col["alive"][candidates] & (c.col["next_ms"][candidates] < lim)
            idx, lim, dense = candidates[is_due], lim[is_due], False
            n_due = len(idx)
        self.sel: slice | NDArray[np.intp] = slice(None) if dense else idx
        self._rows = None if dense else idx
        self._n = c.n
        self.due = due if dense else np.ones(len(idx), dtype=bool)
        take = (lambda name: c.view(name)) if dense else (lambda name: c.col[name][idx])
        nb, self.inc, self.next_s = take("next_ms"), take("inc_s"), take("next_s")
        self.nb = nb
        self.first_cost, self.next_cost = take("inc_cost"), take("next_cost")
        after_first = nb + 1000 * self.inc
        more = np.flatnonzero(self.due & (lim > after_first))
        every = n_due == len(nb)
        if len(more):  # calls with several increments in the window
            extra = np.zeros(len(nb), dtype=np.int64)
            step = 1000 * self.next_s[more]
            extra[more] = (lim[more] - after_first[more] + step - 1) // step
            self.count = self.due + extra
            self._increments: int | None = None  # summed when asked
            self.seconds = self.inc + extra * self.next_s
            self.cost = self.first_cost + extra * self.next_cost
            if not every:
                self.seconds = np.where(self.due, self.seconds, 0)
                self.cost = np.where(self.due, self.cost, 0)
        else:  # at most one each (a tick, a single boundary): no arithmetic, just copies
            self.count = self.due.astype(np.int64)
            self._increments = n_due
            # copies even when every row is due: the commit rewrites the table's columns
            self.seconds = self.inc.copy() if every else np.where(self.due, self.inc, 0)
            self.cost = self.first_cost.copy() if every else np.where(self.due, self.first_cost, 0)
        self.org, self.pool = take("org"), take("pool")
        self.rate, self.credits_ok = take("rate"), take("credits_ok")
        # a pool that is already empty pays nothing: such calls are credit-paid in full
        self.live = self.due & (pool_remaining > 0)[self.pool]
        self.paid = self.due & ~self.live

    @property
    def increments(self) -> int:
        """Increments due in the window, over every call."""
        if self._increments is None:
            self._increments = int(self.count.sum())
        return self._increments

    @property
    def rows(self) -> NDArray[np.intp]:
        """Table row of each entry."""
        return np.arange(self._n) if self._rows is None else self._rows


class _Boundaries:
    """Increment instants of calls already paid in bulk, kept because they are org instants."""

    def __init__(self, due: _Due, mask: NDArray[np.bool_], count: NDArray[np.int64] | None = None) -> None:
        self.org = due.org[mask]
        self.nb = due.nb[mask].copy()  # copies: the table is updated right after
        self.after = self.nb + 1000 * due.inc[mask]
        self.step = 1000 * due.next_s[mask]
        self.count = (due.count if count is None else count)[mask].copy()

    def times_for(self, orgs: NDArray[np.bool_], t_from: NDArray[np.int64]):
        """(org, instant) of every boundary of the orgs in `orgs`, from t_from[org] on."""
        return self._times(orgs[self.org], t_from)

    def _times(self, m: NDArray[np.bool_], t_from) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        k = self.count[m]
        j = offsets_within(k)
        org, nb, after, step = (np.repeat(a[m], k) for a in (self.org, self.nb, self.after, self.step))
        t = np.where(j == 0, nb, after + (j - 1) * step)
        keep = t >= (t_from if np.ndim(t_from) == 0 else t_from[org])
        return org[keep], t[keep]


class _Rows:
    """Expanded increments of the slow orgs, sorted by (org, instant, call_id)."""

    @classmethod
    def expand(cls, due: _Due, mask: NDArray[np.bool_]) -> "_Rows":
        self = cls()
        k = due.count[mask]
        j = offsets_within(k)
        pick = np.repeat(np.flatnonzero(mask), k)
        inc, nxt = due.inc[pick], due.next_s[pick]
        t = boundary_ms(due.nb[pick], inc, nxt, j)
        order = _order_by(due.org[pick], t, pick)  # table rows are in call_id order
        pick, j, t = pick[order], j[order], t[order]
        self.call = due.rows[pick]
        self.t = t
        self.org = due.org[pick]
        self.pool = due.pool[pick]
        self.rate = due.rate[pick]
        self.credits_ok = due.credits_ok[pick]
        self.seconds = np.where(j == 0, due.inc[pick], due.next_s[pick])
        self.org_start = run_starts(self.org)
        return self

    def take(self, mask: NDArray[np.bool_]) -> "_Rows":
        """A subset of the rows, still sorted."""
        sub = _Rows()
        for name in ("call", "t", "org", "pool", "rate", "credits_ok", "seconds"):
            setattr(sub, name, getattr(self, name)[mask])
        sub.org_start = run_starts(sub.org)
        return sub


def _refused_if_dead(due: _Due, balance: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Per due entry: in a dead org, the call is refused at its next boundary (see `_settle_dead`).

    A credit-paid entry's pool is empty, so credits must pay its whole increment;
    a dead org's balance does not change, so the first refusal is the call's.
    Only meaningful for the entries of dead orgs.
    """
    return refused(np.where(due.paid, due.inc, 0), due.credits_ok, due.first_cost, balance[due.org])


def _order_by(*keys: NDArray[np.integer]) -> NDArray[np.intp]:
    """The order that sorts rows by the keys, the first most significant; no two rows equal.

    One argsort of the keys packed into one int64 when their ranges fit in 63
    bits, as they do for (org, instant in a window, row): ~4x faster than
    `np.lexsort`, which sorts once per key.
    """
    lows = [int(k.min()) if len(k) else 0 for k in keys]
    bits = [(int(k.max()) - low).bit_length() if len(k) else 0 for k, low in zip(keys, lows)]
    if sum(bits) > 63:
        return np.lexsort(keys[::-1])
    packed = np.zeros(len(keys[0]), dtype=np.int64)
    for key, low, width in zip(keys, lows, bits):
        packed <<= width
        packed |= key - low
    return np.argsort(packed)


def _end_refused(calls: CallTable, rows, at, out: WindowOutcome) -> None:
    """End calls whose increment was refused at `at`: blocked before any increment, else dropped."""
    rows = np.asarray(rows, dtype=np.intp)
    reason = refused_reason(calls.col["billed_s"][rows])
    calls.end(rows)
    out.ended.add(rows, np.asarray(at, dtype=np.int64), reason)


def _add_lots(led: Ledger, recharges: Recharges) -> None:
    """A lot of each org's recharge amount at each recharge's instant (`Ledger.add_lots_many`)."""
    led.add_lots_many(recharges.org, recharges.t, recharges.spent)


def _first_per_org(out: NDArray[np.int64], org: NDArray[np.int64], t: NDArray[np.int64]) -> None:
    """out[o] = min(out[o], earliest t of org o)."""
    np.minimum.at(out, org, t)


PACE_MS = 60_000  # the shortest span over which the stepping pace is foreseen (`compile_stepping`)
