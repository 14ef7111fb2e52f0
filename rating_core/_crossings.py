"""A busy org's auto-recharges in a window, found from its cost second by second.

SPEC §3 Credits: after all events of an instant, an org strictly below
`recharge_below` (L) with no retry wait pending makes one attempt, which on or
before `card_expires` adds a lot of `recharge_amount` (A).  Take an org whose
balance B is at or above L when the window starts, whose card is valid through
it and whose charges are each paid in full (from a pool that does not run dry,
or from credits).  While no instant's charges cross two thresholds at once, its
j-th recharge comes at the first instant whose cumulative credit cost C (the
charges of that instant included) reaches

    T_j = B - L + 1 + (j - 1)·A,

the first at which `recharge_wanted(B + (j - 1)·A - C)` holds (`_recharges`
unrolls the same rule, instant by instant).  Finding T_j needs C at every
instant, and C only changes at charges, which SPEC §3 "Increments" puts on
whole seconds after a call's answer: every charge of a call falls at the same
millisecond of a second, the first at its next boundary, the others every
`next_s` seconds.  So, with no row per increment:

1. the cost of each second of the window, per org: the first charges by a keyed
   sum; the others are arithmetic trains, summed per increment length q by a
   difference array over seconds and a running sum with stride q;
2. the second in which each threshold is reached, by one search over the
   running totals;
3. within each such second, the cost of each millisecond (the same difference
   arrays, over those seconds only) and the instant of each threshold.

The result is exact or refused: an org is left to the row-by-row path when two
thresholds fall on one instant (the balance would trail the trigger, and
instants without a charge would recharge too) or when its balance could fall
below zero after an instant's charges (a charge might be refused).  Otherwise
no charge of the window is refused (each charge's balance before it is at least
what the instant's charges leave, plus its cost), and every check but those at
the thresholds finds the balance at or above L.

Cost: O(calls + seconds × orgs + 1000 × seconds with a threshold), against one
sorted row per increment: a second of per-second billing with 5,000 calls
connected is 5,000 rows.

When an org's recharge is smaller than what one instant's charges cost, or its
balance starts below the trigger, the balance trails the trigger and every org
instant recharges, those without a charge too.  `by_millisecond` then lists
the org's instants (charges, arrivals, hang-ups, refills) from the same
difference arrays over every millisecond of the window, and `_recharges`'
running minimum gives each one's recharges; it too leaves an org whose
balance an instant's charges would take below zero to the row-by-row path.
Cost O(calls + milliseconds of the window) an org.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._ledger import Ledger
from ._recharges import Recharges, recharges_along
from ._runs import distinct, group_sum, offsets_within, run_bounds

MS = 1_000  # milliseconds in a second: a call's charges share their millisecond within it
CELLS = 1 << 22  # millisecond cells (8 bytes each, three arrays) searched at once in step 3
# `by_millisecond` is worth it for an org with at least one charge this many milliseconds of
# the window: a millisecond costs it a few array passes, a row a sort and a dozen passes
ROWS_PER_MS = 4
WIDEST_MS = 1 << 21  # ... and whose window is at most this long (~35 min): it lists up to one instant a ms
SPAN_MS = 1 << 20  # `by_millisecond` holds this many milliseconds of a window at a time (~17 min)


@dataclass
class Charges:
    """One window's charges of the orgs searched, one entry per connected call (see `search`).

    Each entry is charged `first_cost` at `nb` and then `next_cost` at
    `nb + 1000 × (inc_s + k × next_s)` for k = 0 .. count - 2; costs are credit costs
    (0 for a call its pool pays).
    """

    org: NDArray[np.int64]
    nb: NDArray[np.int64]
    inc_s: NDArray[np.int64]
    next_s: NDArray[np.int64]
    count: NDArray[np.int64]
    first_cost: NDArray[np.int64]
    next_cost: NDArray[np.int64]


@dataclass
class Found(Recharges):
    """The recharges of the orgs a search solved, in (org, instant) order."""

    solved: NDArray[np.bool_]  # per org: its recharges are these (maybe none)

    @classmethod
    def joined(cls, parts: "list[Found]") -> "Found":
        """The recharges of searches of distinct orgs, in (org, instant) order."""
        cols = [np.concatenate([getattr(p, c) for p in parts]) for c in ("org", "t", "balance", "spent")]
        order = np.lexsort((cols[1], cols[0]))
        return cls(*(c[order] for c in cols), np.logical_or.reduce([p.solved for p in parts]))


def window_seconds(t0: int, t1: int) -> int:
    """How many whole seconds the window [t0, t1) touches: the per-second search's columns."""
    return (t1 - 1) // MS - t0 // MS + 1


def search(orgs: NDArray[np.int64], balance: NDArray[np.int64], below: NDArray[np.int64],
           amount: NDArray[np.int64], charges: Charges, t0: int, t1: int, n_orgs: int,
           rows_per_cell: int = 1) -> Found:
    """The recharges in [t0, t1) of `orgs` (ascending), each with `balance` >= `below`
    (its trigger), `amount` > 0, a card valid and no retry wait pending through the window.

    `charges`: every charge of those orgs in the window (entries of other orgs are
    ignored), all in [t0, t1).  Returns the recharges of the orgs solved (see the
    module's docstring for those that are not); an org whose charges are fewer than
    `rows_per_cell` times the 1,000 cells of each second with a recharge is not
    solved either (its rows cost less).
    """
    seconds = window_seconds(t0, t1)
    per = max(1, CELLS // (2 * seconds))  # orgs whose seconds (lanes < 2 × seconds) fit in CELLS
    if len(orgs) <= per:
        return _search(orgs, balance, below, amount, charges, t0, t1, n_orgs, rows_per_cell)
    return Found.joined([_search(orgs[a:a + per], balance[a:a + per], below[a:a + per], amount[a:a + per], charges,
                                 t0, t1, n_orgs, rows_per_cell) for a in range(0, len(orgs), per)])


def _search(orgs: NDArray[np.int64], balance: NDArray[np.int64], below: NDArray[np.int64],
            amount: NDArray[np.int64], charges: Charges, t0: int, t1: int, n_orgs: int,
            rows_per_cell: int) -> Found:
    """`search` for orgs whose arrays fit in `CELLS`."""
    slot_of = np.full(n_orgs, -1, dtype=np.int64)
    slot_of[orgs] = np.arange(len(orgs))
    g = slot_of[charges.org]
    costly = (g >= 0) & (charges.count > 0) & ((charges.first_cost > 0) | ((charges.next_cost > 0) & (charges.count > 1)))
    ch = _Entries(charges, costly, g[costly], t0)
    seconds = window_seconds(t0, t1)
    per_second = _cost_per_second(ch, len(orgs), seconds)
    through = per_second.cumsum(axis=1)  # C at the end of each second
    total = through[:, -1]
    head = balance - below  # what may be spent before the first recharge
    count = np.where(total > head, (total - head + amount - 1) // np.maximum(amount, 1), 0)
    rows = np.bincount(ch.g, weights=ch.count, minlength=len(orgs))
    ok = count <= rows  # each recharge needs an instant with a charge of its own
    count = np.where(ok, count, 0)
    j = offsets_within(count)
    slot = np.repeat(np.arange(len(orgs)), count)
    thresholds = head[slot] + 1 + j * amount[slot]
    # step 2: one search over every org's running totals, each shifted above the previous org's
    shift = np.concatenate([[0], np.cumsum(total + 1)[:-1]])
    at = np.searchsorted((through + shift[:, None]).ravel(), thresholds + shift[slot], side="left")
    crossed = distinct(at)  # slot * seconds + second
    # step 3 costs a thousand cells a second with a threshold: more than the org's rows, and
    # they are cheaper (an org whose recharges are a few charges apart)
    ok &= np.bincount(crossed // seconds, minlength=len(orgs)) * (MS * rows_per_cell) <= rows
    if not ok.all():
        keep = ok[slot]
        slot, j, thresholds, at = slot[keep], j[keep], thresholds[keep], at[keep]
        crossed = crossed[ok[crossed // seconds]]
    start_s = t0 // MS
    t, cost = _instants(ch, crossed, np.searchsorted(crossed, at), thresholds, through.ravel(), seconds, shift,
                        slot, start_s)
    # refused: two thresholds on one instant, or a balance below zero after an instant's charges
    same = np.zeros(len(t), dtype=bool)
    same[1:] = (t[1:] == t[:-1]) & (slot[1:] == slot[:-1])
    ok[slot[same]] = False
    ok[slot[balance[slot] + j * amount[slot] - cost < 0]] = False
    ok &= balance + count * amount - total >= 0
    keep = ok[slot]
    slot, j, t, cost = slot[keep], j[keep], t[keep], cost[keep]
    solved = np.zeros(n_orgs, dtype=bool)
    solved[orgs[ok]] = True
    return Found(orgs[slot], t, balance[slot] + (j + 1) * amount[slot] - cost, cost, solved)


class _Entries:
    """The costly charges, in seconds from the window's first and milliseconds within a second."""

    def __init__(self, charges: Charges, m: NDArray[np.bool_], g: NDArray[np.int64], t0: int) -> None:
        self.g = g
        nb = charges.nb[m]
        self.first = nb // MS - t0 // MS  # second of the first charge
        self.ms = nb % MS
        self.train = self.first + charges.inc_s[m]  # second of the second charge
        self.q = charges.next_s[m]
        self.count = charges.count[m]
        self.first_cost = charges.first_cost[m]
        self.next_cost = charges.next_cost[m]
        self.trains = np.flatnonzero((self.count > 1) & (self.next_cost > 0))


def _cost_per_second(ch: _Entries, n: int, seconds: int) -> NDArray[np.int64]:
    """(n, seconds): what each org's charges of each second cost."""
    cost = group_sum(ch.g * seconds + ch.first, ch.first_cost, n * seconds)
    for q, idx in _by_length(ch.q, ch.trains):
        cost += _trains(ch.g[idx], ch.train[idx], ch.count[idx] - 1, ch.next_cost[idx], q, n, seconds)
    return cost.reshape(n, seconds)


def _by_length(q: NDArray[np.int64], trains: NDArray[np.intp]):
    """(length, entries) for each increment length among the entries `trains` (`q`: every entry's)."""
    lengths = q[trains]
    for length in distinct(lengths).tolist():
        yield length, trains[lengths == length]


def _trains(group: NDArray[np.int64], start: NDArray[np.int64], count: NDArray[np.int64],
            weight: NDArray[np.int64], step: int, n: int, span: int) -> NDArray[np.int64]:
    """(n * span,): per group in [0, n) and cell of [0, span), the weight of the trains there.

    A train of group g has `count` > 0 charges `step` cells apart from `start`, all inside
    the span, each weighing `weight`: +w at its start and -w `count` steps on, summed with
    stride `step` within each group's lanes, which are fewer than 2 × span cells (a -w past
    them has nothing left to cancel)."""
    if step >= span:  # a train has one charge in the span, at its start
        return group_sum(group * span + start, weight, n * span)
    laps = -(-span // step)
    width = laps * step
    key = group * width + start
    end = start + count * step
    inside = end < width
    diff = group_sum(np.concatenate([key, (key - start + end)[inside]]), np.concatenate([weight, -weight[inside]]),
                     n * width)
    return diff.reshape(n, laps, step).cumsum(axis=1).reshape(n, width)[:, :span].ravel()


def _instants(ch: _Entries, crossed, which, thresholds, through, seconds: int, shift, slot, start_s: int):
    """The instant of each threshold and C through it, from the cost of each millisecond of
    the seconds `crossed` (slot * seconds + second, sorted; `which`: each threshold's)."""
    t = np.empty(len(thresholds), dtype=np.int64)
    cost = np.empty(len(thresholds), dtype=np.int64)
    per = max(1, CELLS // MS)
    for a in range(0, len(crossed), per):
        part = crossed[a:a + per]
        mine = (which >= a) & (which < a + len(part))
        cum = _cost_per_ms(ch, part, seconds).cumsum(axis=1)
        second = part % seconds
        before = np.where(second > 0, through[part - 1], 0)  # C at the end of the second before
        cum += before[:, None]
        s = part // seconds
        pos = np.searchsorted((cum + shift[s][:, None]).ravel(), thresholds[mine] + shift[slot[mine]], side="left")
        row, ms = pos // MS, pos % MS
        t[mine] = (start_s + second[row]) * MS + ms
        cost[mine] = cum[row, ms]
    return t, cost


def _cost_per_ms(ch: _Entries, part: NDArray[np.int64], seconds: int) -> NDArray[np.int64]:
    """(len(part), 1000): what the charges of each millisecond of the seconds `part` cost."""
    n = len(part)
    cost = np.zeros(n * MS, dtype=np.int64)
    key = ch.g * seconds + ch.first
    pos = np.minimum(np.searchsorted(part, key), n - 1)
    hit = part[pos] == key
    cost += group_sum(pos[hit] * MS + ch.ms[hit], ch.first_cost[hit], n * MS)
    s, second = part // seconds, part % seconds
    for q, idx in _by_length(ch.q, ch.trains):
        # the seconds in (slot, second mod q, second) order: a train's seconds are one run of them
        k2 = (s * q + second % q) * seconds + second
        order = np.argsort(k2, kind="stable")
        k2 = k2[order]
        first = ch.train[idx]
        lane = (ch.g[idx] * q + first % q) * seconds
        lo = np.searchsorted(k2, lane + first, side="left")
        hi = np.searchsorted(k2, lane + first + (ch.count[idx] - 2) * q, side="right")
        use = hi > lo
        ms, c = ch.ms[idx][use], ch.next_cost[idx][use]
        diff = group_sum(np.concatenate([lo[use] * MS + ms, hi[use] * MS + ms]), np.concatenate([c, -c]), (n + 1) * MS)
        cost.reshape(n, MS)[order] += diff.reshape(n + 1, MS).cumsum(axis=0)[:n]
    return cost.reshape(n, MS)


def by_millisecond(led: Ledger, orgs: NDArray[np.int64], charges: Charges, other_org: NDArray[np.int64],
                   other_t: NDArray[np.int64], t0: int, t1: int) -> Found:
    """The recharges in [t0, t1) of `orgs` (ascending), whatever their balance, each with
    recharges enabled, an amount > 0, a card valid and no retry wait pending through the window.

    `charges`: every charge of those orgs in the window, pool-paid ones too (their
    instants are org instants); (`other_org`, `other_t`): their other org instants in it
    (arrivals, hang-ups, refills; others ignored).  An org is solved unless an instant's
    charges would take its balance below zero (a charge might be refused).
    """
    n_orgs = len(led.balance)
    width = t1 - t0
    mine = np.zeros(n_orgs, dtype=bool)
    mine[orgs] = True
    keep = mine[charges.org] & (charges.count > 0)
    order = np.flatnonzero(keep)[np.argsort(charges.org[keep], kind="stable")]
    at = np.flatnonzero(mine[other_org] & (other_t >= t0) & (other_t < t1))
    at = at[np.argsort(other_org[at], kind="stable")]
    parts = []
    for a, b in zip(*run_bounds(charges.org[order])):
        idx = order[a:b]
        o = int(charges.org[idx[0]])
        ones = np.ones(b - a, dtype=np.int64)
        lo, hi = np.searchsorted(other_org[at], [o, o + 1])
        others = np.sort(other_t[at[lo:hi]])
        carried = 0  # what the org's charges before the span cost
        for c0 in range(t0, t1, SPAN_MS):  # a span at a time: memory follows SPAN_MS, not the window
            span = min(t1, c0 + SPAN_MS) - c0
            instants = _per_ms(charges, idx, ones, ones, c0, span)
            inside = others[np.searchsorted(others, c0):np.searchsorted(others, c0 + span)]
            instants += np.bincount(inside - c0, minlength=span)
            k = np.flatnonzero(instants)
            cost = _per_ms(charges, idx, charges.first_cost[idx], charges.next_cost[idx], c0, span).cumsum()
            parts.append((np.full(len(k), o, dtype=np.int64), k + c0, cost[k] + carried))
            carried += int(cost[-1])
    if not parts:
        return Found(*(np.empty(0, dtype=np.int64) for _ in range(4)), mine)
    org, t, spent = (np.concatenate(c) for c in zip(*parts))
    run = recharges_along(led, org, t, spent)
    amount = led.recharge_amounts[org]
    refused_at = led.balance[org] + run.before * amount - spent < 0
    solved = mine.copy()
    solved[org[refused_at]] = False
    done = run.checks & solved[org]
    return Found(org[done], t[done], led.balance[org[done]] + run.after[done] * amount[done] - spent[done],
                 spent[done], solved)


def _per_ms(charges: Charges, idx: NDArray[np.intp], first: NDArray[np.int64], later: NDArray[np.int64],
            t0: int, width: int) -> NDArray[np.int64]:
    """(width,): the sum over the charges `idx` (one org's) at each millisecond of [t0, t0 + width),
    each first charge weighing `first`, each later one `later` (costs, or ones to count them);
    charges outside that span are left out."""
    nb = charges.nb[idx] - t0
    inside = (nb >= 0) & (nb < width)
    out = group_sum(nb[inside], first[inside], width)
    count = charges.count[idx]
    for length, i in _by_length(charges.next_s[idx], np.flatnonzero((count > 1) & (later != 0))):
        step = MS * length
        start = nb[i] + MS * charges.inc_s[idx][i]  # each train's first charge
        before = np.where(start < 0, (step - 1 - start) // step, 0)  # its charges before the span
        start, left = start + before * step, count[i] - 1 - before
        keep = (left > 0) & (start < width)
        out += _trains(np.zeros(int(keep.sum()), dtype=np.int64), start[keep], left[keep], later[i][keep], step, 1,
                       width)
    return out
