"""Runs of equal neighbours in a 1-D array (sorted keys, painted pieces, rows grouped by org),
found in one pass, and sums within them."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def first_of_runs(values: NDArray) -> NDArray[np.bool_]:
    """True at the first element of each run of equal neighbours."""
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return first


def run_starts(values: NDArray) -> NDArray[np.intp]:
    """Index where each run of equal neighbours begins."""
    return np.flatnonzero(first_of_runs(values))


def run_bounds(values: NDArray) -> tuple[list[int], list[int]]:
    """(starts, ends) of the runs of equal neighbours, as Python ints (for a loop over runs)."""
    starts = run_starts(values)
    return starts.tolist(), [*starts[1:].tolist(), len(values)]


def distinct(values: NDArray) -> NDArray:
    """The distinct values, sorted (a sort and a pass: np.unique's hashing is slower here)."""
    values = np.sort(values)
    return values[first_of_runs(values)]


def grouped_cumsum(values: NDArray[np.int64], starts: NDArray[np.intp]) -> NDArray[np.int64]:
    """Cumulative sums restarting at each index of `starts` (the first is 0): running totals
    within groups laid out contiguously."""
    cum = np.cumsum(values)
    if not len(values):
        return cum
    before = cum[starts] - values[starts]  # the total of the groups before each
    return cum - np.repeat(before, np.diff(np.append(starts, len(values))))


def paid_through(paid, row_key, keys, org, width: int) -> NDArray[np.int64]:
    """What each org's rows cost from its first row up to and including instant `keys[i]`:
    `paid` is the running total of the rows' costs, from 0, over `row_key` (org * width + t)."""
    return (paid[np.searchsorted(row_key, keys, side="right")]
            - paid[np.searchsorted(row_key, org * width, side="left")])
