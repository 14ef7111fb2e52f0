"""Connected calls as a struct of arrays.

Rows are kept in call_id order (calls arrive in call_id order and compaction
keeps the order), which is the order SPEC §3 charges simultaneous increments
in.  Ended rows are only flagged; the table compacts itself when they pile up,
so appending and ending calls stay O(batch), not O(table).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

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

    def __init__(self) -> None:
        self.n = 0
        self.dead = 0
        self.col: dict[str, NDArray] = {k: np.empty(1024, dtype=t) for k, t in COLUMNS.items()}

    def view(self, name: str) -> NDArray:
        return self.col[name][: self.n]

    def append(self, rows: dict[str, NDArray]) -> None:
        m = len(rows["call_id"])
        if self.n + m > len(self.col["call_id"]):
            cap = max(2 * (self.n + m), 1024)
            for k, a in self.col.items():
                grown = np.empty(cap, dtype=a.dtype)
                grown[: self.n] = a[: self.n]
                self.col[k] = grown
        for k, a in self.col.items():
            a[self.n : self.n + m] = rows[k]
        self.n += m

    def end(self, idx: NDArray[np.intp]) -> None:
        self.col["alive"][idx] = False
        self.dead += len(idx)

    def end_one(self, i: int) -> None:
        self.col["alive"][i] = False
        self.dead += 1

    def compact(self) -> None:
        """Drop ended rows once they are at least half the table."""
        if self.dead < 1024 or 2 * self.dead < self.n:
            return
        keep = np.flatnonzero(self.view("alive"))
        for k, a in self.col.items():
            a[: len(keep)] = a[keep]
        self.n, self.dead = len(keep), 0

    def active(self) -> NDArray[np.intp]:
        return np.flatnonzero(self.view("alive"))
