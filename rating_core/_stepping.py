"""The stepping loop: one org's increments paid one at a time, as the rules read.

An org stuck below its auto-recharge trigger, each recharge about one increment's
cost or less, has a refused charge every few increments and a recharge at almost
every instant.  Those decisions are sequential (a refusal ends its call: no later
boundary, no hang-up instant; each instant's recharge depends on the balance its
charges leave), so they are taken in one loop.  Python runs it over lists (~0.5 µs
an item); when a run's stepped items, foreseen at their pace so far, pass
`Tuning.compile_after` (`Charger.compile_stepping`), the same function runs compiled
by numba over arrays (`compiled_loop`), ~50 times faster once numba is loaded
(~0.3 s a process).  `_stepper.Stepper` prepares the loop's input and applies
its outcome in bulk.

Every decision asks its rule's home (`_increments`, `_ledger`): Python calls the
functions themselves, numba compiles the same functions into the loop.  numba
keys its on-disk cache on this file alone, not on the files of the functions it
calls, so the compiled loop closes over a digest of those rules' source and of
the constants it reads from elsewhere (`_cache_key`): editing them recompiles the
loop instead of reusing a stale build.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import inspect
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._events import BALANCE_EXHAUSTED, CARD_EXPIRED, CREDITS_EXPIRED, RECHARGE_FAILED, RECHARGE_SUCCEEDED
from ._increments import boundary_ms, ceil_cost, exhausts, pool_part, refused
from ._ledger import (
    attempt_allowed,
    card_accepts,
    expired_rest,
    next_attempt_ms,
    recharge_wanted,
)

#: SPEC §3 order within an org instant: lot expiries, hang-ups, charges (by call_id), the rest.
EXPIRY, HANGUP, CHARGE, OTHER = 0, 1, 2, 3

#: The rules the loop asks, from their one home: run by Python, or compiled into the loop.
RULES = (boundary_ms, ceil_cost, pool_part, refused, exhausts, expired_rest,
         recharge_wanted, attempt_allowed, card_accepts, next_attempt_ms)


class Stepped(NamedTuple):
    """What stepping some orgs over their spans did.

    Per call (the order of `calls` given to `step`): the increments it paid, their
    seconds, pool seconds and credit cost; the refusals (an index into those calls,
    the instant) and the events as columns, in the loop's order (org by org), each
    with its org (an index into the orgs stepped); per org, its retry wait and
    exhausted-reported flag after its span.
    """

    paid: NDArray[np.int64]
    paid_s: NDArray[np.int64]
    paid_pool_s: NDArray[np.int64]
    paid_cost: NDArray[np.int64]
    refused_ref: NDArray[np.int64]
    refused_at: NDArray[np.int64]
    event_t: NDArray[np.int64]
    event_kind: NDArray[np.int64]
    event_balance: NDArray[np.int64]
    event_amount: NDArray[np.int64]
    event_reason: NDArray[np.int64]
    event_org: NDArray[np.int64]
    retry_until: NDArray[np.int64]
    reported: NDArray[np.bool_]


def _put(rows, n, row):
    """`rows` with `row` as its row n, n being the number of rows so far.

    By Python `rows` is a list and `row` is appended (a 2-D array when numba is
    told not to compile: `_put_rows`); compiled, numba runs `_put_rows`
    (`compiled_loop`).
    """
    if isinstance(rows, list):
        rows.append(row)
        return rows
    return _put_rows(rows, n, row)


def _put_rows(rows, n, row):
    """`_put` for a 2-D array: row n set to `row`, the array grown (doubled) first when full.
    (No annotations: numba requires an overload's parameters to be `_put`'s.)"""
    if n == len(rows):
        grown = np.empty((2 * len(rows) + 1, rows.shape[1]), dtype=rows.dtype)
        grown[:n] = rows
        rows = grown
    for j in range(rows.shape[1]):
        rows[n, j] = row[j]
    return rows


def _loop_over(cache_key: str):
    """The stepping loop, closing over `cache_key` (which numba folds into its cache key)."""

    def loop(times, kinds, refs, orgs, inc_s, next_s, inc_cost, next_cost, pool_of, remaining, rate, credits_ok,
             until, left, held, ons, belows, amounts, card_untils, retry_afters, retry_untils, balances,
             reporteds, alive, paid_n, paid_s, paid_take, paid_cost, gone, events, events_to):
        """See `step`: the items in order, each charge paid or refused, each instant's check.

        Reads its columns and fills its outputs by index only (`alive`, the `paid_*`
        per call, the org's state and `events_to`, the end of its events, per org;
        `gone`, `events` through `_put`), so that Python runs it over lists and numba
        over arrays.  One org's items follow
        another's: its queued boundaries all come before its cue (they are queued only
        before it), so each org is stepped whole, with its own state, before the next.
        """
        cache_key  # a closure variable: numba folds its value into the compiled loop's cache key
        # event codes as int64 values: one build of `_put` for every row it writes
        SUCCEEDED, FAILED, EXHAUSTED = np.int64(RECHARGE_SUCCEEDED), np.int64(RECHARGE_FAILED), np.int64(BALANCE_EXHAUSTED)
        EXPIRED, NONE, ZERO = np.int64(CARD_EXPIRED), np.int64(-1), np.int64(0)
        LOT_EXPIRED = np.int64(CREDITS_EXPIRED)
        n_gone, n_events = 0, 0
        taken = 0  # taken from the front of the lots since `held` was counted: spent and expired
        # heap of (boundary, call) of calls that paid their last listed boundary; its first
        # element, popped at once, only tells numba the type of its items
        later = [(times[0], refs[0])]
        later.pop()
        now, had = -1, False  # the instant being stepped, and whether it is an org instant
        k, n = 0, len(times)
        g = orgs[0]  # the org being stepped, and its state
        on, below, amount, card_until, retry_after = ons[g], belows[g], amounts[g], card_untils[g], retry_afters[g]
        retry_until, balance, reported = retry_untils[g], balances[g], reporteds[g]
        while k < n:
            # the sorted items, with the queued boundaries merged in (SPEC §3 order)
            if len(later) > 0 and (later[0][0] < times[k] or later[0][0] == times[k] and (
                    kinds[k] == OTHER or kinds[k] == CHARGE and later[0][1] < refs[k])):
                t, ref = heapq.heappop(later)
                kind = CHARGE
            else:
                t, kind, ref = times[k], kinds[k], refs[k]
                if orgs[k] != g:  # the last org's cue is behind: its state is kept, the next's taken
                    retry_untils[g], balances[g], reporteds[g] = retry_until, balance, reported
                    events_to[g] = n_events
                    g = orgs[k]
                    on, below, amount, card_until = ons[g], belows[g], amounts[g], card_untils[g]
                    retry_after, retry_until, balance, reported = retry_afters[g], retry_untils[g], balances[g], reporteds[g]
                    now, had, taken = -1, False, 0
                k += 1
            if t != now:
                # the check after all events of the instant (SPEC §3 Credits)
                if had and recharge_wanted(on, balance, below) and attempt_allowed(now, retry_until):
                    if card_accepts(now, card_until):
                        balance += amount
                        events = _put(events, n_events, (now, SUCCEEDED, balance, amount, NONE))
                        reported = False  # reported once until credits are next added
                    else:
                        retry_until = next_attempt_ms(now, retry_after)
                        events = _put(events, n_events, (now, FAILED, balance, ZERO, EXPIRED))
                    n_events += 1
                now, had = t, False
            if kind == CHARGE:
                if not alive[ref]:
                    continue  # refused earlier: no boundary any more
                had = True
                s, p = inc_s[ref], pool_of[ref]
                if p >= 0 and remaining[p] > 0:
                    take = pool_part(remaining[p], s)
                    cost = ceil_cost(rate[ref], s - take)
                else:
                    take, cost = 0, inc_cost[ref]
                if refused(s - take, credits_ok[ref], cost, balance):
                    if not reported and exhausts(s - take, credits_ok[ref], cost, balance):
                        reported = True
                        events = _put(events, n_events, (t, EXHAUSTED, balance, ZERO, NONE))
                        n_events += 1
                    alive[ref] = False
                    gone = _put(gone, n_gone, (ref, t))
                    n_gone += 1
                    continue
                if take:
                    remaining[p] -= take
                balance -= cost
                taken += cost
                paid_n[ref] += 1
                paid_s[ref] += s
                paid_take[ref] += take
                paid_cost[ref] += cost
                inc_s[ref], inc_cost[ref] = next_s[ref], next_cost[ref]
                if left[ref] > 1:
                    left[ref] -= 1
                elif left[ref]:  # its last listed boundary, and it may have more: queue the next
                    nxt = boundary_ms(t, s, 0, 1)  # SPEC §3 Increments: `s` after this one
                    if nxt < until[ref]:
                        heapq.heappush(later, (nxt, ref))
            elif kind == HANGUP:
                had = had or alive[ref]  # a refused call has already ended
            elif kind == EXPIRY:
                rest = expired_rest(held[ref], taken)
                if rest > 0:  # an empty lot's expiry is no org instant
                    had = True
                    balance -= rest
                    taken += rest
                    events = _put(events, n_events, (t, LOT_EXPIRED, balance, rest, NONE))
                    n_events += 1
            else:
                had = True
        retry_untils[g], balances[g], reporteds[g] = retry_until, balance, reported
        events_to[g] = n_events
        return gone, n_gone, events, n_events

    return loop


def step(times: NDArray[np.int64], kinds: NDArray[np.int64], refs: NDArray[np.int64], orgs: NDArray[np.int64],
         calls: dict[str, NDArray], left: NDArray[np.int64], remaining: NDArray[np.int64], held: NDArray[np.int64],
         state: dict[str, NDArray], room: int, compiled: bool) -> Stepped:
    """Step some orgs' items in order, each decision as its rule says.

    `times`, `kinds`, `refs`, `orgs`: the items of each org in turn (`orgs`, an index
    into the orgs stepped, ascending), each org's sorted in SPEC §3 order (`kinds`
    EXPIRY, HANGUP, CHARGE or OTHER; `refs` the index of the call in `calls` for HANGUP
    and CHARGE, into `held` for EXPIRY) and ending with an OTHER item at its span's
    end (the cue of its last check).  `held`: per lot expiry, what the org's lots
    expiring by then hold at its span's start (`Ledger.expiries_between`).
    `calls`: per call, `inc_s`, `next_s`, `inc_cost`, `next_cost` (its next
    increment and those after), `pool` (an index into `remaining`, -1 for none),
    `rate`, `credits_ok` and `until` (its hang-up or its org's span's end).  `left`:
    the boundaries listed for a call that may have more (its next is queued after the
    last), 0 for a call listed to the end.  `remaining`: pool seconds.  `state`: per
    org, its recharge rule (`on`, `below`, `amount`, `card_until`, `retry_after`, as
    `Ledger.recharge_rules`) and its state before (`retry_until`, `balance`,
    `reported`).  `room`: a guess of the events to come.  `compiled`: run the loop
    compiled (`compiled_loop`) rather than by Python; the outcome is the same.
    Returns the outcome (`Stepped`); nothing else changes.
    """
    n = len(calls["inc_s"])
    columns = {"times": times, "kinds": kinds, "refs": refs, "orgs": orgs, "inc_s": calls["inc_s"].copy(),
               "next_s": calls["next_s"], "inc_cost": calls["inc_cost"].copy(), "next_cost": calls["next_cost"],
               "pool_of": calls["pool"], "remaining": remaining.copy(), "rate": calls["rate"],
               "credits_ok": calls["credits_ok"], "until": calls["until"], "left": left.copy(), "held": held,
               "ons": state["on"], "belows": state["below"], "amounts": state["amount"],
               "card_untils": state["card_until"], "retry_afters": state["retry_after"]}
    after = {"retry_untils": state["retry_until"].copy(), "balances": state["balance"].copy(),
             "reporteds": state["reported"].copy(), "events_to": np.zeros(len(state["balance"]), dtype=np.int64)}
    paid = np.zeros((4, n), dtype=np.int64)  # per call: increments, seconds, pool seconds, credit cost
    names = ("paid_n", "paid_s", "paid_take", "paid_cost")
    if compiled:
        out = {"alive": np.ones(n, dtype=np.bool_), **dict(zip(names, paid)),
               "gone": np.empty((min(room, n) + 1, 2), dtype=np.int64),
               "events": np.empty((room + 1, 5), dtype=np.int64)}
        gone, n_gone, events, n_events = compiled_loop()(**columns, **after, **out)
        gone, events = gone[:n_gone], events[:n_events]
    else:  # Python reads and writes list items several times faster than numpy scalars
        after = {name: column.tolist() for name, column in after.items()}
        out = {"alive": [True] * n, **dict(zip(names, paid.tolist())), "gone": [], "events": []}
        gone, _, events, _ = LOOP(**{name: column.tolist() for name, column in columns.items()}, **after, **out)
        paid = np.array([out[name] for name in names], dtype=np.int64).reshape(4, n)
        gone = np.array(gone, dtype=np.int64).reshape(-1, 2)
        events = np.array(events, dtype=np.int64).reshape(-1, 5)
    events_to = np.asarray(after["events_to"], dtype=np.int64)
    event_org = np.repeat(np.arange(len(events_to)), np.diff(events_to, prepend=0))
    return Stepped(*paid, *gone.T, *events.T, event_org, np.asarray(after["retry_untils"], dtype=np.int64),
                   np.asarray(after["reporteds"], dtype=bool))


def _cache_key(namespace: dict | None = None) -> str:
    """A digest of what the compiled loop depends on outside this file: the source of
    every rule it asks (`RULES`) and the value of every constant it reads (the event
    codes of `_events`), looked up in `namespace` (this module's by default)."""
    namespace = globals() if namespace is None else namespace
    names = LOOP.__code__.co_names
    constants = sorted(f"{name}={namespace[name]!r}" for name in names
                       if isinstance(namespace.get(name), (int, float, str)))
    text = "".join(inspect.getsource(rule) for rule in RULES) + "\n".join(constants)
    return hashlib.sha256(text.encode()).hexdigest()


#: The loop as Python runs it; `compiled_loop` compiles the same code.
LOOP = _loop_over("")
_compiled = []


def compiled_loop():
    """The loop compiled with numba: built on first use, from numba's on-disk cache when it has it.

    numba is imported here, not with the module: its import and the load of the
    compiled loop take ~0.3 s, which only runs that step many increments repay.
    """
    if not _compiled:
        numba = _numba()
        loop = _loop_over(_cache_key())
        try:
            _compiled.append(numba.njit(cache=True)(loop))
        except RuntimeError:  # no writable cache directory: the loop is built in each process
            _compiled.append(numba.njit(loop))
    return _compiled[0]


@functools.cache
def _numba():
    """numba, told once how to compile what the loop calls: the rules (still plain functions
    to Python, compiled inline into the loop) and `_put` over arrays (`_put_rows`)."""
    import numba
    from numba.extending import overload, register_jitable

    for function in RULES:
        register_jitable(function)
    overload(_put)(lambda rows, n, row: _put_rows)
    return numba
