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


def last_of_runs(values: NDArray) -> NDArray[np.bool_]:
    """True at the last element of each run of equal neighbours."""
    last = np.ones(len(values), dtype=bool)
    last[:-1] = values[1:] != values[:-1]
    return last


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


def grouped_cummin(values: NDArray[np.int64], group: NDArray[np.int64], span: int) -> NDArray[np.int64]:
    """Running minimum restarting with each group: `group` numbers each element's group,
    0, 1, 2, ... in order; the values lie within less than `span` of each other
    (max - min < span).

    Each group is shifted below every earlier one, so one running minimum over the
    whole array never carries a value across a group's start; group by group when
    the shift would not fit in int64.
    """
    if not len(values):
        return values
    if int(group[-1]) < (1 << 62) // span:
        shift = group * span
        return np.minimum.accumulate(values - shift) + shift
    out = values.copy()
    for a, b in zip(*run_bounds(group)):
        out[a:b] = np.minimum.accumulate(values[a:b])
    return out
