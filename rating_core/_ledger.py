"""The money side of each org: pooled minutes, credit lots, auto-recharge.

State is held per org in arrays (balances, recharge settings) and per pool in
arrays (remaining seconds), so the charging code can read and update it in
bulk.  Each org's lots are kept in expiry order (ties in purchase order), so
spending from "the lot that expires first" (SPEC §3) is spending from the front.
That is purchase order except around a leap day: a lot bought on 02-29 expires
on 02-28 of the next year at its own time of day, before a lot bought on 02-28
later in the day, and is inserted ahead of it.
"""

from __future__ import annotations

import heapq
import numpy as np
from numpy.typing import NDArray

from ._calendar import card_valid_until_ms, lot_expiries_ms, lot_expiry_ms, month_starts
from ._lots import NEVER, LotQueue
from ._model import LedgerEvent, RatingSetup
from ._runs import first_of_runs

HELD_BACK = 1 << 20  # lots `add_lots_many` holds back at most before appending them


def pool_capacities(setup: RatingSetup) -> list[tuple[int, str, int]]:
    """(org, pool name, capacity seconds) for every pool with a positive capacity (SPEC §3 Pools)."""
    plans = setup.plans
    minutes: dict[tuple[str, frozenset[str]], tuple[int, int, int]] = {}  # users alike add alike
    domestic: list[dict[str, int]] = [{} for _ in setup.orgs]
    international: list[dict[str, int]] = [{} for _ in setup.orgs]
    dial_out = [0] * len(setup.orgs)
    for o, count, cc, lic in setup.user_kinds:  # runs of users alike, a group in one
        key = (cc, lic)
        if key not in minutes:
            minutes[key] = (
                plans.domestic_minutes.get(cc, plans.domestic_minutes["default"])
                if lic & {"domestic_calling_plan", "international_calling_plan"} else -1,
                plans.international_minutes if "international_calling_plan" in lic else -1,
                plans.dial_out_minutes if "audio_conferencing" in lic else 0)
        dom, intl, dial = minutes[key]
        if dom >= 0:
            domestic[o][cc] = domestic[o].get(cc, 0) + dom * count
        if intl >= 0:
            international[o][cc] = international[o].get(cc, 0) + intl * count
        dial_out[o] += dial * count
    out = []
    for o in range(len(setup.orgs)):
        for cc in sorted(domestic[o]):
            out.append((o, f"domestic:{cc}", 60 * domestic[o][cc]))
        for cc in sorted(international[o]):
            out.append((o, f"international:{cc}", 60 * international[o][cc]))
        out.append((o, "dial_out", 60 * dial_out[o]))
    return [p for p in out if p[2] > 0]


def expired_rest(held, taken):
    """SPEC §3 Credits: "At expiry the lot's rest is removed".  `held`: what the lots
    expiring by then held when last counted; `taken`: what was taken from the front of the
    lots since (spent, and removed by earlier expiries).  Lots are spent in expiry order, so
    what the expiring lots still hold is the part of `held` not yet taken."""
    return (held - taken) * (held > taken)


def recharge_wanted(on, balance, below):
    """SPEC §3 auto-recharge: "if enabled and the balance is strictly below `recharge_below`"."""
    return on & (balance < below)


def attempt_allowed(t, retry_until):
    """SPEC §3 auto-recharge: "no retry wait is pending" at instant t."""
    return t >= retry_until


def card_accepts(t, card_until_ms):
    """SPEC §3 auto-recharge: an attempt "on or before `card_expires`" adds a lot (the card is
    valid through the end of that UTC day: `card_until_ms` is the first instant it is not)."""
    return t < card_until_ms


def next_attempt_ms(t, retry_after):
    """SPEC §3 auto-recharge: after an attempt fails at t, "no attempt is made before
    `retry_after` has passed": the first instant another may run."""
    return t + retry_after


class Ledger:
    """Pools, balances and lots of every org, and the rules that change them."""

    def __init__(self, setup: RatingSetup, held_back: int = HELD_BACK) -> None:
        """`held_back`: how many lots `add_lots_many` holds back at most (memory, not outcome)."""
        self.setup = setup
        pools = pool_capacities(setup)
        self.pool_org = np.array([p[0] for p in pools], dtype=np.int64)
        self.pool_names = tuple(p[1] for p in pools)
        self.pool_capacity = np.array([p[2] for p in pools], dtype=np.int64)
        self.pool_remaining = self.pool_capacity.copy()
        n = len(setup.orgs)
        self.balance = np.zeros(n, dtype=np.int64)
        self._lots = [LotQueue() for _ in range(n)]
        # spent from the balance, not yet taken from the lots (see `spend_many`)
        self._unsettled = np.zeros(n, dtype=np.int64)
        # taken from the lots ahead of the `spend_many` that pays it (see `add_lots`)
        self._spent_ahead = np.zeros(n, dtype=np.int64)
        credits = [org.credits for org in setup.orgs]
        self.recharge_on = np.array([bool(c and c.auto_recharge) for c in credits])
        self.recharge_below = np.array([c.recharge_below_micro if c else 0 for c in credits], np.int64)
        self.recharge_amounts = np.array([c.recharge_amount_micro if c else 0 for c in credits], np.int64)
        self.retry_after = np.array([c.retry_after_ms if c else 0 for c in credits], dtype=np.int64)
        # first instant at which the card is no longer valid (NEVER: it never expires)
        until = [card_valid_until_ms(setup.start, c.card_expires) if c else None for c in credits]
        self.card_until_ms = np.array([NEVER if u is None else u for u in until], dtype=np.int64)
        self.retry_until = np.full(n, -1, dtype=np.int64)
        self.exhausted_reported = np.zeros(n, dtype=bool)
        self._refills = month_starts(setup.start, setup.end_ms)
        self._refill_set = set(self._refills)
        # heap of (expires_ms, org): at least one entry at or before each org's first lot expiry
        self._expiries: list[tuple[int, int]] = []
        # expiry of each org's last lot while it holds any (lots held back included)
        self._back = np.full(n, -1, dtype=np.int64)
        # lots bought in bulk, not yet appended to their orgs' lots: (org, expires) chunks
        self._held_back: list[tuple[NDArray[np.int64], NDArray[np.int64]]] = []
        self._held_back_count = 0
        self._has_held_back = np.zeros(n, dtype=bool)
        self._held_back_limit = held_back

    # -- fixed instants -------------------------------------------------
    def start_events(self) -> list[LedgerEvent]:
        """The initial lot of every org with credits, bought at t = 0 (before any other lot:
        each is its org's first, all expire at one instant)."""
        expires = lot_expiry_ms(self.setup.start, 0)
        events = []
        for o, org in enumerate(self.setup.orgs):
            if org.credits and org.credits.initial_micro > 0:
                amount = org.credits.initial_micro
                self._lots[o].push(expires, amount)
                self._expiries.append((expires, o))  # one instant: the list stays a heap
                self.balance[o] += amount
                self._back[o] = expires
                events.append(LedgerEvent(0, o, "credits_purchased", int(self.balance[o]), amount))
        return events

    def next_refill_after(self, t: int) -> int:
        """The first month refill strictly after `t` (NEVER when none): the instants that end
        the engine's windows (lot expiries are charged inside them, `expiries_between`)."""
        i = np.searchsorted(self._refills, t, side="right")
        return int(self._refills[i]) if i < len(self._refills) else NEVER

    def next_fixed_after(self, t: int) -> int:
        """The first refill or expiry of a lot held now strictly after `t` (NEVER when none):
        when something next happens without a call (the server's idle wait).

        An expiry whose lots were all spent by `t` removes nothing and is no org
        instant: its entry is moved on to the org's first lot still held.
        """
        nxt = self.next_refill_after(t)
        while self._expiries:
            expires, o = self._expiries[0]
            held = self.lots_of(o).first_expiry()  # all spent before t taken from the front
            if held <= expires:
                break
            heapq.heapreplace(self._expiries, (held, o)) if held < NEVER else heapq.heappop(self._expiries)
        if self._expiries:
            nxt = min(nxt, self._expiries[0][0])
        return int(nxt)

    def apply_refill(self, t: int) -> tuple[list[LedgerEvent], NDArray[np.bool_]]:
        """Refill every pool if `t` is a month start (SPEC §3 Pools); returns the events and
        which orgs had an instant at `t` (all of them, or none)."""
        touched = np.zeros(len(self.setup.orgs), dtype=bool)
        events: list[LedgerEvent] = []
        if t in self._refill_set:
            self.pool_remaining[:] = self.pool_capacity
            events += [LedgerEvent(t, o, "pools_refilled") for o in range(len(touched))]
            touched[:] = True
        return events, touched

    # -- lot expiries (charged inside windows: `_charging`, `_stepping`) --
    def expiring(self, t1: int) -> NDArray[np.bool_]:
        """Which orgs hold a lot, once their spending so far is taken, that expires before t1.

        Only those can have a lot expiry with a rest before t1.  Entries of orgs whose
        first held lot expires later are moved on to it (as `next_fixed_after` does).
        """
        mask = np.zeros(len(self.setup.orgs), dtype=bool)
        seen = set()
        while self._expiries and self._expiries[0][0] < t1:
            seen.add(heapq.heappop(self._expiries)[1])
        for o in seen:
            first = self.lots_of(o).first_expiry()
            mask[o] = first < t1
            if first < NEVER:
                heapq.heappush(self._expiries, (first, o))
        return mask

    def expiries_between(self, orgs: NDArray[np.int64], t_from: NDArray[np.int64],
                         t1: int) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
        """The lot expiries of each org in `orgs` (ascending) in [t_from[j], t1) (`t_from`
        aligned with `orgs`): arrays
        (org, instant, held), one per lot, in the order of the org's lots: `held` is what
        the lot and those ahead of it hold now, the org's spending so far taken.

        What an expiry removes depends on what the org spends before it
        (`expired_rest`), so an expiry listed here may remove nothing.
        """
        parts = []
        for o, start in zip(orgs.tolist(), t_from.tolist()):
            t, held = self.lots_of(o).expiring_before(t1)
            keep = t >= start
            parts.append((np.full(int(keep.sum()), o, dtype=np.int64), t[keep], held[keep]))
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return tuple(np.concatenate(column) for column in zip(*parts))  # type: ignore[return-value]

    def remove_expired(self, orgs: NDArray[np.int64], amounts: NDArray[np.int64]) -> None:
        """Remove `amounts[j]` from the lots of org `orgs[j]` (distinct) at their expiry: the
        rests `expired_rest` found.

        The expiring lots are the org's first: removing their rest takes it from the
        front of the lots, as spending does, so it is passed to the lots with the
        spending (`lots_of`), after what `add_lots` took ahead.
        """
        self.balance[orgs] -= amounts
        self._unsettled[orgs] += amounts

    def _watch_expiry(self, o: int) -> None:
        """An entry for org o's first lot expiry: after its lots expire or one is put first.

        Spending may empty the first lots; their entry then comes early and finds
        nothing to expire, and it is renewed for the lot now first.
        """
        first = self._lots[o].first_expiry()
        if first != NEVER:
            heapq.heappush(self._expiries, (first, o))

    # -- credits --------------------------------------------------------
    def add_lots(self, o: int, t: NDArray[np.int64], amount: int, spent: NDArray[np.int64]) -> None:
        """A lot of `amount` bought at each instant of `t` (ascending): a window's recharges of
        one org.

        `spent[j]` is what the org spends from its balance before the purchase
        at `t[j]` and has not yet passed to `spend_many` (which follows).
        It only matters for a lot that expires before one the org holds (bought
        on a 02-29): that lot is put ahead, so what was spent before it is taken
        from the lots first, and `spend_many` does not take it again.
        """
        expires = lot_expiries_ms(self.setup.start, t)
        lots = self.lots_of(o)
        first = lots.first_expiry()
        if expires[0] >= lots.last_expiry() and (len(expires) == 1 or (np.diff(expires) >= 0).all()):
            lots.append(expires, amount)
        else:
            ahead = int(self._spent_ahead[o])
            for e, s in zip(expires.tolist(), spent.tolist()):
                if e < lots.last_expiry():
                    lots.take(s - ahead)
                    ahead = s
                    lots.insert(e, amount)
                else:
                    lots.push(e, amount)
            self._spent_ahead[o] = ahead
        self.balance[o] += amount * len(expires)
        self.exhausted_reported[o] = False
        if lots.first_expiry() != first:
            self._watch_expiry(o)
        self._back[o] = lots.last_expiry()

    def add_lots_many(self, org: NDArray[np.int64], t: NDArray[np.int64], spent: NDArray[np.int64]) -> None:
        """A lot of org[j]'s recharge amount bought at t[j], for a window's recharges of many orgs
        in (org, instant) order; `spent` as in `add_lots`.

        Leaves every org as `add_lots` would, org by org, with no Python step per org in
        the common case: every new lot of the org expires, in order, at or after the
        last it holds (all purchases but those on a 02-29).  Those lots are held back
        (`_held_back`) and appended to the org's lots when they are next looked at
        (`lots_of`), behind the others and before its spending is taken, as
        `spend_many` defers that.  Whether the org holds any lot once its spending is
        taken, which `add_lots` asks its lots, is read from its balance: an org's
        balance is what its lots hold, less the spending not yet taken from them
        (`_unsettled`), plus what was taken ahead (`_spent_ahead`); lots hold more
        than nothing, no take exceeds what they hold.  Any other org takes `add_lots`.
        """
        if not len(org):
            return
        if org[0] == org[-1]:  # one org (stepped, or busy alone): `add_lots` costs less than a pass
            o = int(org[0])
            self.add_lots(o, t, int(self.recharge_amounts[o]), spent)
            return
        expires = lot_expiries_ms(self.setup.start, t)
        opens = first_of_runs(org)
        starts = np.flatnonzero(opens)
        ends = np.append(starts[1:], len(org))
        orgs = org[starts]
        amounts = self.recharge_amounts[orgs]
        unordered = np.zeros(len(starts), dtype=bool)
        back = np.flatnonzero((expires[1:] < expires[:-1]) & ~opens[1:]) + 1
        unordered[np.cumsum(opens)[back] - 1] = True
        # held nothing once its spending is taken (its last expiry reads -1 in `add_lots`)
        empty = self.balance[orgs] == self._spent_ahead[orgs]
        behind = empty | (expires[starts] >= self._back[orgs])
        bulk = behind & ~unordered & (amounts > 0)
        stepped = ~bulk | empty  # orgs with a Python step: `add_lots`, or a new first lot watched
        for o, a, b, amount, alone in zip(orgs[stepped].tolist(), starts[stepped].tolist(), ends[stepped].tolist(),
                                          amounts[stepped].tolist(), bulk[stepped].tolist()):
            if alone:  # its first lot is new: its expiry is watched (`_watch_expiry`)
                heapq.heappush(self._expiries, (int(expires[a]), o))
            else:
                self.add_lots(o, t[a:b], amount, spent[a:b])
        if bulk.any():
            rows = bulk[np.cumsum(opens) - 1]
            self._held_back.append((org[rows], expires[rows]))
            self._held_back_count += int(rows.sum())
            self._has_held_back[orgs[bulk]] = True
            self._back[orgs[bulk]] = expires[ends[bulk] - 1]
            np.add.at(self.balance, orgs[bulk], amounts[bulk] * (ends - starts)[bulk])
            self.exhausted_reported[orgs[bulk]] = False
            if self._held_back_count > self._held_back_limit:
                self._append_held_back()

    def _append_held_back(self) -> None:
        """Append the lots `add_lots_many` held back to their orgs' lots, org by org in one pass."""
        if not self._held_back:
            return
        org = np.concatenate([chunk[0] for chunk in self._held_back])
        expires = np.concatenate([chunk[1] for chunk in self._held_back])
        self._held_back.clear()
        self._held_back_count = 0
        order = np.argsort(org, kind="stable")  # each org's lots in the order they were bought
        org, expires = org[order], expires[order]
        starts = np.flatnonzero(first_of_runs(org))
        ends = [*starts[1:].tolist(), len(org)]
        orgs = org[starts]
        unsettled = self._unsettled
        for o, a, b, amount in zip(orgs.tolist(), starts.tolist(), ends, self.recharge_amounts[orgs].tolist()):
            lots = self._lots[o]
            lots.append(expires[a:b], amount)
            if unsettled[o]:  # spent lots dropped now: an org never looked at keeps only what it holds
                lots.take(int(unsettled[o]))
                unsettled[o] = 0
        self._has_held_back[orgs] = False

    def spend_many(self, amounts: NDArray[np.int64]) -> None:
        """Take `amounts[o]` from each org o's lots, the one expiring first first (a window's
        payments, in bulk or stepped).

        The lots are not walked here (10,000 orgs would be 10,000 Python steps a window):
        what was spent is taken from the front of the lots when they are next looked at
        (`lots_of`).  That leaves them as spending at once would, lots added in between
        included: no charge ever costs more than the balance, so what was spent before a
        lot was added never reaches a lot added behind the others.  A lot added ahead of
        others (`add_lots`) first had what was spent before it taken (`_spent_ahead`).
        """
        self.balance -= amounts
        self._unsettled += amounts - self._spent_ahead
        self._spent_ahead[:] = 0

    def lots_of(self, o: int) -> LotQueue:
        """Org o's lots, the one expiring first first, with all it spent taken from them."""
        if self._has_held_back[o]:
            self._append_held_back()
        lots = self._lots[o]
        if self._unsettled[o]:
            lots.take(int(self._unsettled[o]))
            self._unsettled[o] = 0
        return lots

    # -- auto-recharge (SPEC §3 Credits) ----------------------------------
    # "Auto-recharge: after all events of an instant for an org, if enabled and the balance is
    # strictly below `recharge_below` and no retry wait is pending, one attempt: on or before
    # `card_expires` it adds a lot of `recharge_amount`, else it fails and no attempt is made
    # before `retry_after` has passed."  Its three clauses are `recharge_wanted`,
    # `attempt_allowed` and `card_accepts`, each one expression for one org's scalars
    # (the stepping path, with `recharge_rules`) or for arrays; the predicates below apply them
    # to the ledger's orgs, for the bulk paths.

    def wants_recharge(self, balance, orgs=slice(None)):
        """Whether an org with this balance asks for a recharge: enabled and strictly below the
        trigger.  `balance` and `orgs` are an org's (scalars) or arrays of the same shape."""
        return recharge_wanted(self.recharge_on[orgs], balance, self.recharge_below[orgs])

    def may_attempt(self, t, orgs=slice(None)):
        """No retry wait is pending at instant `t` (scalars or arrays, as `wants_recharge`)."""
        return attempt_allowed(t, self.retry_until[orgs])

    def card_valid(self, t, orgs=slice(None)):
        """An attempt at `t` succeeds: the card is valid through the end of its last day."""
        return card_accepts(t, self.card_until_ms[orgs])

    def recharge_rules(self, orgs: NDArray[np.int64]) -> dict[str, NDArray]:
        """The settings of `orgs` that the three predicates above and the retry wait read,
        and their state (retry wait, balance, exhausted-reported flag), one array each:
        what the stepping loop (`_stepping.step`) takes."""
        return {"on": self.recharge_on[orgs], "below": self.recharge_below[orgs],
                "amount": self.recharge_amounts[orgs], "card_until": self.card_until_ms[orgs],
                "retry_after": self.retry_after[orgs],
                "retry_until": self.retry_until[orgs], "balance": self.balance[orgs],
                "reported": self.exhausted_reported[orgs]}

    def exhausted_unreported(self, orgs: NDArray[np.int64]) -> NDArray[np.bool_]:
        """SPEC §3 Credits: which of `orgs` (distinct) report a refusal for too low a balance,
        at most once until credits are next added (`add_lots`, `add_lots_many` clear the flag);
        those are flagged as reported."""
        new = ~self.exhausted_reported[orgs]
        self.exhausted_reported[orgs[new]] = True
        return new

    def recharge_pending(self, t0: int, t1: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Orgs whose recharge check may run in [t0, t1), and those of them for which it must fail.

        A check that fails (the card has expired by the earliest instant it
        can run) leaves the balance as it is: it only reports and waits.
        """
        pending = self.wants_recharge(self.balance) & self.may_attempt(t1 - 1)
        fails = pending & ~self.card_valid(np.maximum(self.retry_until, t0))
        return pending, fails

    def report_exhausted(self, orgs: NDArray[np.int64], t: NDArray[np.int64]) -> list[LedgerEvent]:
        """balance_exhausted for each of `orgs` (distinct, in order) at its instant `t`, at most
        once until credits are next added (`exhausted_unreported`)."""
        new = self.exhausted_unreported(orgs)
        orgs = orgs[new]
        return [LedgerEvent(at, o, "balance_exhausted", balance) for o, at, balance
                in zip(orgs.tolist(), t[new].tolist(), self.balance[orgs].tolist())]
