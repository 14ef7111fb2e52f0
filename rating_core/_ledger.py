"""The money side of each org: pooled minutes, credit lots, auto-recharge.

State is held per org in arrays (balances, recharge settings) and per pool in
arrays (remaining seconds), so the charging code can read and update it in
bulk.  Lots are a FIFO per org: purchase order is expiry order, so spending
from "the lot that expires first" is spending from the front.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._calendar import card_valid_until_ms, lot_expiries_ms, lot_expiry_ms, month_starts
from ._model import LedgerEvent, RatingSetup

NEVER = np.iinfo(np.int64).max


@dataclass
class Lot:
    """A purchase of credits: its expiry instant and what is left of it."""

    expires_ms: int
    rest_micro: int


def pool_capacities(setup: RatingSetup) -> list[tuple[int, str, int]]:
    """(org, pool name, capacity seconds) for every pool with a positive capacity (SPEC §3 Pools)."""
    plans = setup.plans
    out = []
    for o, org in enumerate(setup.orgs):
        domestic: dict[str, int] = {}
        international: dict[str, int] = {}
        dial_out = 0
        for user in org.users:
            lic = user.effective_licenses
            cc = user.country
            if lic & {"domestic_calling_plan", "international_calling_plan"}:
                minutes = plans.domestic_minutes.get(cc, plans.domestic_minutes["default"])
                domestic[cc] = domestic.get(cc, 0) + minutes
            if "international_calling_plan" in lic:
                international[cc] = international.get(cc, 0) + plans.international_minutes
            if "audio_conferencing" in lic:
                dial_out += plans.dial_out_minutes
        for cc in sorted(domestic):
            out.append((o, f"domestic:{cc}", 60 * domestic[cc]))
        for cc in sorted(international):
            out.append((o, f"international:{cc}", 60 * international[cc]))
        out.append((o, "dial_out", 60 * dial_out))
    return [p for p in out if p[2] > 0]


class Ledger:
    """Pools, balances and lots of every org, and the rules that change them."""

    def __init__(self, setup: RatingSetup) -> None:
        self.setup = setup
        pools = pool_capacities(setup)
        self.pool_org = np.array([p[0] for p in pools], dtype=np.int64)
        self.pool_names = tuple(p[1] for p in pools)
        self.pool_capacity = np.array([p[2] for p in pools], dtype=np.int64)
        self.pool_remaining = self.pool_capacity.copy()
        n = len(setup.orgs)
        self.balance = np.zeros(n, dtype=np.int64)
        self._lots: list[deque[Lot]] = [deque() for _ in range(n)]
        # spent from the balance, not yet taken from the lots (see `spend_many`)
        self._unsettled = np.zeros(n, dtype=np.int64)
        credits = [org.credits for org in setup.orgs]
        self.recharge_on = np.array([bool(c and c.auto_recharge) for c in credits])
        self.recharge_below = np.array([c.recharge_below_micro if c else 0 for c in credits], np.int64)
        self.recharge_amount = [c.recharge_amount_micro if c else 0 for c in credits]
        self.recharge_amounts = np.array(self.recharge_amount, dtype=np.int64)  # for bulk passes
        self.retry_after = [c.retry_after_ms if c else 0 for c in credits]
        # first instant at which the card is no longer valid (NEVER: it never expires)
        until = [card_valid_until_ms(setup.start, c.card_expires) if c else None for c in credits]
        self.card_until_ms = np.array([NEVER if u is None else u for u in until], dtype=np.int64)
        self.retry_until = np.full(n, -1, dtype=np.int64)
        self.exhausted_reported = np.zeros(n, dtype=bool)
        self._refills = month_starts(setup.start, setup.end_ms)
        self._refill_set = set(self._refills)
        self._expiries: list[tuple[int, int]] = []  # heap of (expires_ms, org)

    # -- fixed instants -------------------------------------------------
    def start_events(self) -> list[LedgerEvent]:
        """The initial lot of every org with credits, bought at t = 0."""
        events = []
        for o, org in enumerate(self.setup.orgs):
            if org.credits and org.credits.initial_micro > 0:
                amount = org.credits.initial_micro
                self.add_lot(o, 0, amount)
                events.append(LedgerEvent(0, o, "credits_purchased", int(self.balance[o]), amount))
        return events

    def next_fixed_after(self, t: int) -> int:
        """The first refill or lot expiry strictly after `t` (NEVER when none)."""
        nxt = NEVER
        i = np.searchsorted(self._refills, t, side="right")
        if i < len(self._refills):
            nxt = self._refills[i]
        while self._expiries and self._expiries[0][0] <= t:
            # already handled at its instant; popping keeps the heap small
            heapq.heappop(self._expiries)
        if self._expiries:
            nxt = min(nxt, self._expiries[0][0])
        return int(nxt)

    def apply_fixed(self, t: int) -> tuple[list[LedgerEvent], NDArray[np.bool_]]:
        """Refill and expire at `t`; returns events and which orgs had an instant at `t`."""
        touched = np.zeros(len(self.setup.orgs), dtype=bool)
        events: list[LedgerEvent] = []
        if t in self._refill_set:
            self.pool_remaining[:] = self.pool_capacity
            events += [LedgerEvent(t, o, "pools_refilled") for o in range(len(touched))]
            touched[:] = True
        while self._expiries and self._expiries[0][0] == t:
            _, o = heapq.heappop(self._expiries)
            expired = self._expire_lots(o, t)
            touched[o] |= bool(expired)
            events += expired
        return events, touched

    def _expire_lots(self, o: int, t: int) -> list[LedgerEvent]:
        events = []
        lots = self.lots_of(o)
        while lots and lots[0].expires_ms <= t:
            lot = lots.popleft()
            if lot.rest_micro > 0:
                self.balance[o] -= lot.rest_micro
                events.append(
                    LedgerEvent(t, o, "credits_expired", int(self.balance[o]), lot.rest_micro)
                )
        return events

    # -- credits --------------------------------------------------------
    def add_lot(self, o: int, t: int, amount: int) -> None:
        """Org o buys `amount` at t: a lot expiring 12 months later (SPEC §3 Credits)."""
        expires = lot_expiry_ms(self.setup.start, t)
        self.lots_of(o).append(Lot(expires, amount))
        self.balance[o] += amount
        self.exhausted_reported[o] = False
        heapq.heappush(self._expiries, (expires, o))

    def add_lots(self, o: int, t: NDArray[np.int64], amount: int) -> None:
        """`add_lot` at each instant of `t` (ascending): a window's recharges of one org."""
        expires = lot_expiries_ms(self.setup.start, t).tolist()
        self.lots_of(o).extend([Lot(e, amount) for e in expires])
        self.balance[o] += amount * len(expires)
        self.exhausted_reported[o] = False
        for e in expires:
            heapq.heappush(self._expiries, (e, o))

    def spend(self, o: int, amount: int) -> None:
        """Take `amount` from the org's lots, the one expiring first first."""
        self.balance[o] -= amount
        self._unsettled[o] += amount

    def spend_many(self, amounts: NDArray[np.int64]) -> None:
        """`spend` for every org at once: `amounts[o]` from org o (a window's bulk payments).

        The lots are not walked here (10,000 orgs would be 10,000 Python steps a window):
        what was spent is taken from the front of the lots when they are next looked at
        (`lots_of`).  That leaves them as spending at once would, lots added in between
        included: no charge ever costs more than the balance, so what was spent before a
        lot was added never reaches that lot.
        """
        self.balance -= amounts
        self._unsettled += amounts

    def lots_of(self, o: int) -> deque[Lot]:
        """Org o's lots, the one expiring first first, with all it spent taken from them."""
        lots = self._lots[o]
        if self._unsettled[o]:
            self._take_from_lots(lots, int(self._unsettled[o]))
            self._unsettled[o] = 0
        return lots

    @staticmethod
    def _take_from_lots(lots: deque[Lot], amount: int) -> None:
        while amount > 0:
            lot = lots[0]
            take = min(lot.rest_micro, amount)
            lot.rest_micro -= take
            amount -= take
            if lot.rest_micro == 0:
                lots.popleft()

    # -- auto-recharge (SPEC §3 Credits) ----------------------------------
    # "Auto-recharge: after all events of an instant for an org, if enabled and the balance is
    # strictly below `recharge_below` and no retry wait is pending, one attempt: on or before
    # `card_expires` it adds a lot of `recharge_amount`, else it fails and no attempt is made
    # before `retry_after` has passed."  The three predicates below are that sentence; the
    # stepping check (`recharge_check`) and the bulk paths of the charging all ask them.

    def wants_recharge(self, balance, orgs=slice(None)):
        """Whether an org with this balance asks for a recharge: enabled and strictly below the
        trigger.  `balance` and `orgs` are an org's (scalars) or arrays of the same shape."""
        return self.recharge_on[orgs] & (balance < self.recharge_below[orgs])

    def may_attempt(self, t, orgs=slice(None)):
        """No retry wait is pending at instant `t` (scalars or arrays, as `wants_recharge`)."""
        return t >= self.retry_until[orgs]

    def card_valid(self, t, orgs=slice(None)):
        """An attempt at `t` succeeds: the card is valid through the end of its last day."""
        return t < self.card_until_ms[orgs]

    def recharge_check(self, o: int, t: int) -> LedgerEvent | None:
        """SPEC §3 auto-recharge: after all events of an org instant."""
        if not (self.wants_recharge(self.balance[o], o) and self.may_attempt(t, o)):
            return None
        if self.card_valid(t, o):
            return self.recharge(o, t)
        self.retry_until[o] = t + self.retry_after[o]
        return LedgerEvent(t, o, "recharge_failed", int(self.balance[o]), reason="card_expired")

    def recharge(self, o: int, t: int) -> LedgerEvent:
        """A successful attempt at `t`: a lot of `recharge_amount`."""
        amount = self.recharge_amount[o]
        self.add_lot(o, t, amount)
        return LedgerEvent(t, o, "recharge_succeeded", int(self.balance[o]), amount)

    def recharge_pending(self, t0: int, t1: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Orgs whose recharge check may run in [t0, t1), and those of them for which it must fail.

        A check that fails (the card has expired by the earliest instant it
        can run) leaves the balance as it is: it only reports and waits.
        """
        pending = self.wants_recharge(self.balance) & self.may_attempt(t1 - 1)
        fails = pending & ~self.card_valid(np.maximum(self.retry_until, t0))
        return pending, fails

    def report_exhausted(self, o: int, t: int) -> LedgerEvent | None:
        """balance_exhausted, at most once until credits are next added."""
        if self.exhausted_reported[o]:
            return None
        self.exhausted_reported[o] = True
        return LedgerEvent(t, o, "balance_exhausted", int(self.balance[o]))
