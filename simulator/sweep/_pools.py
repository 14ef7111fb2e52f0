"""The first instant each pool hits 0, read from a window's charges without re-rating it.

The rating core pays a window's increments in bulk and reports only the pools' remainders at
the window's end.  A pool P that ends a window [t0, t1) at 0 hit 0 at some instant T in it, and
SPEC §3 pins T down from what each call of P took in the window:

1. Before T, P is above 0, so every increment of a call of P is paid from it in full
   (`pool_part` = min(remaining, s) = s: were it less, P would hit 0 there, and that is T).
2. From T on, P is at 0 (no refill inside the window: the driver ends windows at refills), so
   no increment takes anything from it.
3. So the seconds a call took from P in the window, Δ > 0, are its first in-window increments
   in full and maybe part of one more at T: its last charge from P is at the boundary where its
   in-window increments first add up to Δ, and T is the latest of those over the calls of P.

A call's in-window increments start at its next boundary with its current increment (for a
call connected at t0, read before the window) or at its answer with the tariff's first
increment (for an arrival, as admission gives it), then follow every `next_s` seconds.  Only
those few numbers are kept, and only before a window in which P could run dry: one whose
remainder is no more than every call that may be connected in it could take (each at most the
window's length plus one increment).

A pool that starts at 0 (no minutes) counts as exhausted at 0.  Only the first exhaustion of
each pool is looked for; later months' are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rating_core import Arrivals, CdrBatch, RatingEngine

NEVER = -1


@dataclass(frozen=True)
class _Connected:
    """The calls of the pools at risk connected at the window's start: what step 3 needs."""

    call_id: NDArray[np.int64]
    pool: NDArray[np.int64]
    pool_s: NDArray[np.int64]
    next_ms: NDArray[np.int64]  # their next boundary
    inc_s: NDArray[np.int64]  # ... and its length
    next_s: NDArray[np.int64]


class PoolWatch:
    """Per pool, the first instant it hit 0 (`NEVER` until it does)."""

    def __init__(self, engine: RatingEngine) -> None:
        setup = engine.setup
        self._pool_org = np.asarray(engine.tables.pool_orgs, dtype=np.int64)
        self._n_orgs = len(setup.orgs)
        self.exhausted_ms = np.where(engine.pool_remaining() == 0, 0, NEVER).astype(np.int64)
        self._max_increment_s = max(
            [max(t.first_s, t.next_s) for t in (*setup.tariffs, *setup.toll_free_tariffs)], default=0)

    def before(self, engine: RatingEngine, arrivals: Arrivals, t1: int) -> _Connected | None:
        """What `after` needs if a pool could run dry in [now, t1), else None."""
        open_pools = self.exhausted_ms == NEVER
        if not open_pools.any():
            return None
        rem = engine.ledger.pool_remaining
        risky = open_pools & (rem <= self._most_taken(engine, arrivals, t1)[self._pool_org])
        if not risky.any():
            return None
        calls = engine.calls
        pool = calls.view("pool")
        rows = np.flatnonzero(calls.view("alive") & (pool >= 0))
        rows = rows[risky[pool[rows]]]
        return _Connected(*(calls.view(name)[rows].copy()
                            for name in ("call_id", "pool", "pool_s", "next_ms", "inc_s", "next_s")))

    def after(self, engine: RatingEngine, connected: _Connected | None, arrivals: Arrivals, cdrs: CdrBatch) -> None:
        """Record the pools that hit 0 in the window just rated (`connected`: `before`'s)."""
        hit = np.flatnonzero((self.exhausted_ms == NEVER) & (engine.ledger.pool_remaining == 0))
        if not len(hit):
            return
        if connected is None:
            raise AssertionError(f"pools {hit.tolist()} ran dry in a window judged safe: the bound is wrong")
        admitted = engine.admission.admit(arrivals)  # pure: the same answers as in the window
        calls = engine.calls
        alive = calls.view("alive")
        for pool in hit.tolist():
            new = admitted.pool == pool
            call_id = np.concatenate([connected.call_id[connected.pool == pool], arrivals.call_id[new]])
            mine = connected.pool == pool
            before = np.concatenate([connected.pool_s[mine], np.zeros(int(new.sum()), dtype=np.int64)])
            first_ms = np.concatenate([connected.next_ms[mine], arrivals.t_ms[new]])
            first_s = np.concatenate([connected.inc_s[mine], admitted.first_s[new]])
            next_s = np.concatenate([connected.next_s[mine], admitted.next_s[new]])
            ended = cdrs.pool == pool
            live = alive & (calls.view("pool") == pool)
            after = _look_up(call_id, np.concatenate([cdrs.call_id[ended], calls.view("call_id")[live]]),
                             np.concatenate([cdrs.pool_s[ended], calls.view("pool_s")[live]]))
            taken = after - before
            paid = taken > 0
            self.exhausted_ms[pool] = int(_last_charge_ms(first_ms[paid], first_s[paid], next_s[paid],
                                                          taken[paid]).max())

    def by_org(self) -> NDArray[np.int64]:
        """Per org, the first instant any of its pools hit 0 (`NEVER`: none did)."""
        out = np.full(self._n_orgs, np.iinfo(np.int64).max, dtype=np.int64)
        hit = self.exhausted_ms != NEVER
        np.minimum.at(out, self._pool_org[hit], self.exhausted_ms[hit])
        return np.where(out == np.iinfo(np.int64).max, NEVER, out)

    def _most_taken(self, engine: RatingEngine, arrivals: Arrivals, t1: int) -> NDArray[np.int64]:
        """Per org, an upper bound of the pool seconds its calls may take in [now, t1)."""
        t0, inc = engine.now, self._max_increment_s
        calls = engine.calls
        alive = calls.view("alive")
        org = calls.view("org")[alive]
        held_ms = np.minimum(calls.view("hangup_ms")[alive], t1) - t0
        new_ms = np.minimum(arrivals.holding_ms, t1 - arrivals.t_ms)
        bound = np.zeros(self._n_orgs, dtype=np.int64)
        np.add.at(bound, org, held_ms // 1000 + 1 + inc)
        np.add.at(bound, arrivals.org, new_ms // 1000 + 1 + inc)
        return bound


def _look_up(wanted: NDArray[np.int64], ids: NDArray[np.int64], values: NDArray[np.int64]) -> NDArray[np.int64]:
    """values[ids == w] for each w of `wanted` (0 where absent: a call that took nothing)."""
    order = np.argsort(ids)
    ids, values = ids[order], values[order]
    at = np.minimum(np.searchsorted(ids, wanted), max(len(ids) - 1, 0))
    found = (ids[at] == wanted) if len(ids) else np.zeros(len(wanted), dtype=bool)
    return np.where(found, values[at] if len(ids) else 0, 0)


def _last_charge_ms(first_ms: NDArray[np.int64], first_s: NDArray[np.int64], next_s: NDArray[np.int64],
                    taken_s: NDArray[np.int64]) -> NDArray[np.int64]:
    """The boundary at which each call's in-window increments (`first_s` at `first_ms`, then
    `next_s` each) first add up to `taken_s` (> 0): its last charge from the pool (step 3)."""
    more = np.maximum(-(-(taken_s - first_s) // np.maximum(next_s, 1)), 0)  # increments after the first
    return first_ms + 1000 * np.where(more > 0, first_s + next_s * (more - 1), 0)
