"""Runs of equal neighbours in a 1-D array (sorted keys, painted pieces, rows grouped by org),
found in one pass, and sums within them or over keys."""

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


def offsets_within(counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """0, 1, .., k-1 for each count k, concatenated: the number of each expanded row within its group."""
    return np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


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


# Below this, every partial sum of float64 weights is an integer held exactly.
_EXACT_FLOAT = 2**53


def group_sum(keys: NDArray, values: NDArray, n: int) -> NDArray[np.int64]:
    """Exact int64 sums of `values` grouped by `keys` in [0, n) (a key of -1 is n - 1).

    `np.bincount` with the values as weights (~3 ns a value, where `np.add.at` takes
    ~30 with mixed dtypes) whenever no partial sum can reach 2**53, so that float64
    adds integers exactly, and the keys are in [0, n); `np.add.at` otherwise (money
    beyond 9 * 10**9 units, or the -1 key of "no pool").
    """
    if not len(values):
        return np.zeros(n, dtype=np.int64)
    largest = max(abs(int(values.max())), abs(int(values.min())))
    if largest * len(values) < _EXACT_FLOAT and 0 <= int(keys.min()) and int(keys.max()) < n:
        return np.bincount(keys, weights=values, minlength=n).astype(np.int64)
    out = np.zeros(n, dtype=np.int64)
    np.add.at(out, keys, values)
    return out
