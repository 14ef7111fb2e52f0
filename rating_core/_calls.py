"""Connected calls as a struct of arrays.

Rows are kept in call_id order (calls arrive in call_id order and compaction
keeps the order), which is the order SPEC §3 charges simultaneous increments
in.  Ended rows are only flagged; the table compacts itself when they pile up,
so appending and ending calls stay O(batch), not O(table).

It also keeps a *watch*: the rows that may have something due (an
increment boundary or a hang-up) before `watch_until`.  Every other live row
is due at or after it, so a short window (a server tick, a real-time step)
looks at these few rows instead of the whole table: a tick then costs
O(due calls), not O(connected calls).  The watch is rebuilt by one pass
after each window that had to look at every row, kept up to date as rows are
appended or hung up, and dropped when compaction renumbers the rows.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._columns import with_room
from ._runs import first_of_runs
from ._tuning import Tuning

# name -> dtype of every column
COLUMNS: dict[str, type] = {
    "call_id": np.int64,
    "org": np.int64,
    "user": np.int32,
    "call_type": np.int8,
    "from_number": np.int64,
    "to_number": np.int64,
    "country": np.int32,
    "zone": np.int32,
    "start_ms": np.int64,
    "hangup_ms": np.int64,
    "next_ms": np.int64,  # instant of the next increment boundary
    "inc_s": np.int64,  # length of the increment due at next_ms
    "next_s": np.int64,  # length of every increment after the first
    "inc_cost": np.int64,  # credit cost of the increment due at next_ms, if wholly credit-paid
    "next_cost": np.int64,
    "pool": np.int64,
    "credits_ok": np.bool_,
    "rate": np.int64,
    "billed_s": np.int64,
    "pool_s": np.int64,
    "credits_micro": np.int64,
    "alive": np.bool_,
}


class CallTable:
    """Columns are `self.col[name][: self.n]`; use `view(name)` for the live prefix."""

    def __init__(self, watch_ms: int = Tuning.watch_ms) -> None:
        self.watch_ms = watch_ms  # how far ahead of a full pass the watch looks
        self.n = 0
        self.dead = 0
        self.col: dict[str, NDArray] = {k: np.empty(1024, dtype=t) for k, t in COLUMNS.items()}
        self.watch_until = -1  # no watch yet
        self._watch = np.empty(0, dtype=np.intp)  # sorted row numbers

    def view(self, name: str) -> NDArray:
        """Column `name` over the rows in use (ended ones included until compaction)."""
        return self.col[name][: self.n]

    def append(self, rows: dict[str, NDArray]) -> None:
        """New calls (every column, in call_id order after the rows already there)."""
        m = len(rows["call_id"])
        if self.n + m > len(self.col["call_id"]):
            self.col = dict(zip(self.col, with_room(list(self.col.values()), self.n, self.n + m, 1024)))
        for k, a in self.col.items():
            a[self.n : self.n + m] = rows[k]
        if self.watch_until >= 0:  # new rows are numbered after every watched one: still sorted
            new = np.arange(self.n, self.n + m)
            self._watch = np.concatenate([self._watch, new[self._due_at(new) < self.watch_until]])
        self.n += m

    def end(self, idx: NDArray[np.intp]) -> None:
        """Flag rows `idx` ended; `compact` drops them later."""
        self.col["alive"][idx] = False
        self.dead += len(idx)

    def compact(self) -> None:
        """Drop ended rows once they are at least half the table."""
        if self.dead < 1024 or 2 * self.dead < self.n:
            return
        keep = np.flatnonzero(self.view("alive"))
        for k, a in self.col.items():
            a[: len(keep)] = a[keep]
        self.n, self.dead = len(keep), 0
        self.watch_until = -1  # rows renumbered

    # -- the watch ------------------------------------------------------------------------
    def due_candidates(self, t1: int) -> NDArray[np.intp] | None:
        """Rows that may have an increment or a hang-up before t1; None: look at every row."""
        return self._watch if t1 <= self.watch_until else None

    def rewatch(self, t: int) -> None:
        """After a window that looked at every row: watch the rows due before t + watch_ms."""
        self.watch_until = t + self.watch_ms
        self._watch = np.flatnonzero(self.view("alive") & (self._due_at() < self.watch_until))

    def prune_watch(self) -> None:
        """After a window that used the watch: drop the rows that ended or are no longer due."""
        w = self._watch
        if len(w):
            self._watch = w[self.col["alive"][w] & (self._due_at(w) < self.watch_until)]

    def watch(self, rows: NDArray[np.intp]) -> None:
        """Rows whose hang-up instant was just brought forward."""
        if self.watch_until < 0 or not len(rows):
            return
        rows = np.sort(rows[self._due_at(rows) < self.watch_until])
        w = self._watch
        if not len(w):
            self._watch = rows[first_of_runs(rows)]
            return
        # A few rows into a sorted watch of thousands: merged, not sorted again (union1d), and
        # not by np.insert or np.unique, whose overheads would be most of a server tick's hang-ups.
        at = np.searchsorted(w, rows)
        new = (w[np.minimum(at, len(w) - 1)] != rows) | (at == len(w))
        new &= first_of_runs(rows)
        rows, at = rows[new], at[new]
        merged = np.empty(len(w) + len(rows), dtype=w.dtype)
        dest = at + np.arange(len(rows))  # where each new row lands once the ones before it are in
        old = np.ones(len(merged), dtype=bool)
        old[dest] = False
        merged[dest] = rows
        merged[old] = w
        self._watch = merged

    def next_due_bound(self) -> int | None:
        """From the watch alone, an instant no live row is due before (None: no watch).

        Exact when a watched row is due before `watch_until`; else `watch_until` itself."""
        if self.watch_until < 0:
            return None
        w = self._watch[self.col["alive"][self._watch]]
        return int(self._due_at(w).min(initial=self.watch_until))

    def _due_at(self, rows: NDArray[np.intp] | None = None) -> NDArray[np.int64]:
        """min(next boundary, hang-up) of the given rows, or of every row."""
        if rows is None:
            return np.minimum(self.view("next_ms"), self.view("hangup_ms"))
        return np.minimum(self.col["next_ms"][rows], self.col["hangup_ms"][rows])

    def active(self) -> NDArray[np.intp]:
        """Rows of the calls still connected."""
        return np.flatnonzero(self.view("alive"))
