"""The server-wide budget for what clients make `callsim serve` hold, summed over connections.

Each connection has its own limits (one frame of input, `--max-output-buffer`
of unread replies), but 10,000 connections times ~9 MiB is more memory than
most machines have.  `BufferBudget` bounds the sum of every connection's
unread replies and partly received frame (`Limits.max_buffered_bytes`):

* past half of it (`soft`), a connection holding more than its share
  (`soft` / connections) is not read until the total is back under `soft`
  or its own replies drain under its share: backpressure on the connections
  holding the most, never on the small ones, so one client cannot spend the
  budget and starve the others;
* past all of it (`limit`), the connections holding the most are dropped
  (`slow_consumer`, their calls hung up), the biggest first, until the total
  is within it again.

The total is checked as soon as anything adds to it (a read, replies packed),
so it passes `limit` only until that check has shed someone, except for the
last message of a connection being closed and while the server stops (it ends
every call at once and closes every connection a moment later).
"""

from __future__ import annotations

from operator import attrgetter
from typing import Protocol

import trio

MEMORY_SHARE = 4  # the default budget is a quarter of the memory available at start
FALLBACK_BYTES = 1 << 30  # where /proc/meminfo cannot be read
MIN_READ = 4096  # the smallest read when the budget is tight


class Holder(Protocol):
    """A connection, as the budget sees it."""

    held: int  # bytes counted against the budget (kept by `BufferBudget.change`)

    def shed(self, limit: int) -> None:
        """Drop the connection at once; it must `leave` the budget before returning."""


class BufferBudget:
    """The sum of the bytes connections hold, and what to do when it is too much."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.soft = limit // 2
        self.total = 0
        self.dropped = 0  # connections shed for the budget
        self._holders: set[Holder] = set()
        self._waiting: dict[Holder, trio.Event] = {}  # paused holders, woken when `total` <= `soft`
        self._shedding = False

    def join(self, holder: Holder) -> None:
        holder.held = 0
        self._holders.add(holder)

    def leave(self, holder: Holder) -> None:
        """Forget `holder` and what it held (its buffers are dropped with it)."""
        if holder in self._holders:
            self._holders.discard(holder)
            self._waiting.pop(holder, None)
            self.change(holder, -holder.held)

    def change(self, holder: Holder, delta: int) -> None:
        """`holder` holds `delta` bytes more (or fewer); paused holders wake once the total is
        back under `soft`."""
        holder.held += delta
        self.total += delta
        if delta < 0 and self._waiting and self.total <= self.soft:
            for event in self._waiting.values():
                event.set()
            self._waiting.clear()

    def share(self) -> int:
        """What each connection may hold before it is paused, once the total is past `soft`."""
        return self.soft // max(len(self._holders), 1)

    def crowded(self, holder: Holder) -> bool:
        """True if `holder` must not be read now: the total is past `soft` and it holds more than
        its share."""
        return self.total > self.soft and holder.held > self.share()

    def roomy(self, most: int) -> bool:
        """True while every connection may read `most` bytes at once and the total stay under
        `soft`: reads need not be sized to the moment they complete."""
        return self.total + len(self._holders) * most <= self.soft

    def read_size(self, holder: Holder, most: int) -> int:
        """How many bytes `holder` may read now: `most` while the budget is roomy; otherwise what
        is left of its share, at least MIN_READ (so a frame always progresses).  Reads alone then
        keep the total under `soft` + connections x MIN_READ."""
        if self.roomy(most):
            return most
        return max(min(self.share() - holder.held, most), MIN_READ)

    def wake_on_relief(self, holder: Holder, event: trio.Event) -> None:
        """Set `event` once the total is back under `soft`."""
        self._waiting[holder] = event

    def enforce(self) -> None:
        """Past `limit`: shed the biggest holders until the total is within it."""
        if self._shedding:  # a holder being shed sends its last words, which come back here
            return
        self._shedding = True
        try:
            while self.total > self.limit and self._holders:
                biggest = max(self._holders, key=attrgetter("held"))
                self.dropped += 1
                biggest.shed(self.limit)
                self.leave(biggest)  # in case it did not: the loop must make progress
        finally:
            self._shedding = False


def default_budget(floor: int) -> tuple[int, int | None]:
    """The budget `callsim serve` takes when not told: a quarter of MemAvailable, at least `floor`.

    Returns (budget, available bytes or None when that cannot be read: the budget
    is then FALLBACK_BYTES).
    """
    available = _mem_available()
    budget = FALLBACK_BYTES if available is None else available // MEMORY_SHARE
    return max(budget, floor), available


def _mem_available() -> int | None:
    """What the machine (or its cgroup) has available, as `callsim run`'s work estimate sees it."""
    from ..scenario.estimate import available_memory

    return available_memory()
