"""The first instant each pool hits 0, found without slowing every window down.

The rating core pays a window's increments in bulk and reports only the pools' remainders at
the window's end.  A pool that ends a window at 0 hit 0 somewhere in it; to name the instant,
the window is rated again from a copy of the engine taken before it, halving the span until
it is one ms wide (the engine's results do not depend on how time is cut into windows).  A
copy costs ~0.2 ms, so it is taken only before a window in which some pool could run dry:
one whose remainder is no more than every call that may be connected in the window could
take (each call at most the window's length plus one increment).  Windows must not contain a
monthly refill (the driver ends them there): a pool could hit 0 and be refilled unseen.

A pool that starts at 0 (no minutes) counts as exhausted at 0.  Only the first exhaustion of
each pool is looked for; later months' are not.
"""

from __future__ import annotations

import copy

import numpy as np
from numpy.typing import NDArray

from rating_core import Arrivals, RatingEngine

NEVER = -1


class PoolWatch:
    """Per pool, the first instant it hit 0 (`NEVER` until it does)."""

    def __init__(self, engine: RatingEngine) -> None:
        setup = engine.setup
        self._pool_org = np.asarray(engine.tables.pool_orgs, dtype=np.int64)
        self._n_orgs = len(setup.orgs)
        self.exhausted_ms = np.where(engine.pool_remaining() == 0, 0, NEVER).astype(np.int64)
        self._max_increment_s = max(
            [max(t.first_s, t.next_s) for t in (*setup.tariffs, *setup.toll_free_tariffs)], default=0)
        # Not copied: read-only, or (the admission's memo of earlier calls) a cache of pure
        # results that a probe may add to without changing what the engine does.
        self._shared = {id(setup): setup, id(engine.tables): engine.tables, id(engine.admission): engine.admission}

    def before(self, engine: RatingEngine, arrivals: Arrivals, t1: int) -> RatingEngine | None:
        """A copy of the engine if a pool could run dry in [now, t1), else None."""
        open_pools = self.exhausted_ms == NEVER
        if not open_pools.any():
            return None
        bound = self._most_taken(engine, arrivals, t1)
        rem = engine.ledger.pool_remaining
        if not (open_pools & (rem <= bound[self._pool_org])).any():
            return None
        return copy.deepcopy(engine, dict(self._shared))

    def after(self, engine: RatingEngine, snapshot: RatingEngine | None, arrivals: Arrivals,
              t0: int, t1: int) -> None:
        """Record the pools that hit 0 in the window [t0, t1) just rated from `snapshot`."""
        hit = (self.exhausted_ms == NEVER) & (engine.ledger.pool_remaining == 0)
        for pool in np.flatnonzero(hit).tolist():
            if snapshot is None:
                raise AssertionError(f"pool {pool} ran dry in a window judged safe: the bound is wrong")
            self.exhausted_ms[pool] = _first_empty(snapshot, arrivals, t0, t1, pool, self._shared)

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


def _first_empty(start: RatingEngine, arrivals: Arrivals, t0: int, t1: int, pool: int,
                 shared: dict[int, object]) -> int:
    """The instant in [t0, t1) at which `pool` hit 0, rating copies of `start` (the engine at
    t0) over halves of the span: the pool is above 0 at `lo` and at 0 by `hi`."""
    lo, hi, engine = t0, t1, start
    while hi - lo > 1:
        mid = (lo + hi) // 2
        probe = copy.deepcopy(engine, dict(shared))
        a, b = np.searchsorted(arrivals.t_ms, [lo, mid], side="left")
        probe.advance(arrivals.take(slice(int(a), int(b))), mid)
        if probe.ledger.pool_remaining[pool] == 0:
            hi = mid
        else:
            lo, engine = mid, probe
    return lo
