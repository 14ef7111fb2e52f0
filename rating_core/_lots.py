"""One org's credit lots, in expiry order, held as arrays.

A busy org with a small recharge amount buys a lot at almost every instant
(a million an hour): the lots are two int64 arrays (expiry, rest) with a
front index, so a window's purchases are appended, and a window's spending
taken, with array operations rather than one Python object each.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

NEVER = np.iinfo(np.int64).max


class LotQueue:
    """Lots in expiry order (ties in purchase order); credits are taken from the front."""

    def __init__(self) -> None:
        self._expires = np.zeros(8, dtype=np.int64)
        self._rest = np.zeros(8, dtype=np.int64)
        self._front = 0  # lots before it are spent or expired
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._front

    def held(self) -> list[tuple[int, int]]:
        """(expires_ms, rest_micro) of each lot with a rest, the first to expire first."""
        live = slice(self._front, self._end)
        return [(e, r) for e, r in zip(self._expires[live].tolist(), self._rest[live].tolist()) if r > 0]

    def first_expiry(self) -> int:
        """Expiry of the front lot (NEVER when there is none)."""
        return int(self._expires[self._front]) if self._end > self._front else NEVER

    def last_expiry(self) -> int:
        """Expiry of the back lot (-1 when there is none)."""
        return int(self._expires[self._end - 1]) if self._end > self._front else -1

    def append(self, expires: NDArray[np.int64], amount: int) -> None:
        """Lots of `amount` expiring at `expires`, each no earlier than the back lot's."""
        n = len(expires)
        self._make_room(n)
        self._expires[self._end:self._end + n] = expires
        self._rest[self._end:self._end + n] = amount
        self._end += n

    def push(self, expires: int, amount: int) -> None:
        """One lot at the back (stepped recharges: one at a time)."""
        self._make_room(1)
        self._expires[self._end], self._rest[self._end] = expires, amount
        self._end += 1

    def insert(self, expires: int, amount: int) -> None:
        """One lot, after every lot expiring no later (rare: a purchase on 02-29)."""
        self._make_room(1)
        live = slice(self._front, self._end)
        at = self._front + int(np.searchsorted(self._expires[live], expires, side="right"))
        self._expires[at + 1:self._end + 1] = self._expires[at:self._end].copy()
        self._rest[at + 1:self._end + 1] = self._rest[at:self._end].copy()
        self._expires[at], self._rest[at] = expires, amount
        self._end += 1

    def take(self, amount: int) -> None:
        """Take `amount` (at most what the lots hold) from the front, spilling into the next."""
        if amount <= 0:
            return
        if self._end > self._front:  # most charges: within the front lot
            rest = int(self._rest[self._front])
            if amount < rest:
                self._rest[self._front] = rest - amount
                return
            if amount == rest:
                self._front += 1
                return
        span = 16
        while True:  # look only as far as the amount reaches: a backlog stays untouched
            stop = min(self._end, self._front + span)
            held = np.cumsum(self._rest[self._front:stop])
            if held[-1] >= amount or stop == self._end:
                break
            span *= 4
        emptied = int(np.searchsorted(held, amount, side="right"))  # lots taken whole
        if emptied < len(held):
            self._rest[self._front + emptied] = held[emptied] - amount
        self._front += emptied

    def expiring_before(self, t1: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The expiry of each lot that expires before t1, and what it and the lots ahead of
        it hold in all (a running total from the front): what its expiry removes with theirs,
        unless taken first (`_ledger.expired_rest`).  Lots expiring at one instant are
        listed one each (each expiry is its own event)."""
        if self.first_expiry() >= t1:  # the common case: nothing expires before t1
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        stop = self._front + int(np.searchsorted(self._expires[self._front:self._end], t1, side="left"))
        return self._expires[self._front:stop].copy(), np.cumsum(self._rest[self._front:stop])

    def _make_room(self, n: int) -> None:
        live = self._end - self._front
        if self._end + n <= len(self._expires):
            return
        size = max(8, 2 * (live + n))
        for name in ("_expires", "_rest"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=np.int64)
            new[:live] = old[self._front:self._end]
            setattr(self, name, new)
        self._front, self._end = 0, live
