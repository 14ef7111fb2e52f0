"""Longest-prefix match of E.164 numbers against a tariff table, in bulk.

Numbers travel as int64 digits.  The numbers of d digits fill the interval
[10**(d-1), 10**d), and within it a prefix of L <= d digits matches exactly
one sub-interval (4930 matches [4930 * 10**(d-4), 4931 * 10**(d-4))).  So the
positive number line cuts into pieces that each have one longest prefix, and
a batch is routed by one `searchsorted` over the cut points and one gather,
whatever the numbers.  A prefix longer than a number never covers it: its
intervals lie among the longer numbers.

The pieces of the numbers of d digits are those of d - 1 digits times ten
(one more digit keeps every match), with the prefixes of exactly d digits
painted over them, each on the one number it equals.  Building costs a few
array passes per digit count, however many prefixes there are.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ._model import Tariff
from ._runs import first_of_runs

_MAX_DIGITS = 19  # of a positive int64
_INT64_END = np.uint64(1 << 63)  # the first value past int64


class PrefixTable:
    """Cut points of the positive number line, and the longest prefix of each piece."""

    def __init__(self, tariffs: Sequence[Tariff]) -> None:
        self.tariffs = tuple(tariffs)
        self._edges, self._longest = _pieces(self.tariffs)

    def match(self, numbers: NDArray[np.int64]) -> NDArray[np.int64]:
        """Per number, the index of the tariff with the longest prefix of its digits (the
        first of equal prefixes); -1 when none matches or the number is not positive."""
        piece = np.searchsorted(self._edges, np.asarray(numbers, dtype=np.int64), side="right")
        return self._longest.take(piece)


def _pieces(tariffs: Sequence[Tariff]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Ascending cut points, and the tariff (or -1) of each piece.

    With k = the number of cut points <= x, piece k is where x lies; piece 0
    holds every number below 1.
    """
    by_length: dict[int, dict[int, int]] = {}
    for i, t in enumerate(tariffs):
        by_length.setdefault(len(t.prefix), {}).setdefault(int(t.prefix), i)  # first row wins
    # the pieces of the numbers of `digits` digits: their starts (uint64 holds 10**19) and owners
    starts, owners = np.array([1], dtype=np.uint64), np.array([-1], dtype=np.int64)
    levels = []
    for digits in range(1, _MAX_DIGITS + 1):
        if digits > 1:
            starts = starts * np.uint64(10)
        starts, owners = _paint(starts, owners, by_length.get(digits, {}), digits)
        levels.append((starts, owners))
    edges = np.concatenate([s for s, _ in levels])
    longest = np.concatenate([[-1], *(o for _, o in levels)])
    reachable = edges < _INT64_END
    return edges[reachable].astype(np.int64), longest[: 1 + int(reachable.sum())]


def _paint(starts: NDArray[np.uint64], owners: NDArray[np.int64], prefixes: dict[int, int],
           digits: int) -> tuple[NDArray[np.uint64], NDArray[np.int64]]:
    """The pieces with each prefix of exactly `digits` digits owning the one number it equals."""
    low, high = 10 ** (digits - 1), 10**digits
    points = sorted((p, i) for p, i in prefixes.items() if low <= p < high)  # "01" matches nothing
    if not points:
        return starts, owners
    at = np.array([p for p, _ in points], dtype=np.uint64)
    index = np.array([i for _, i in points], dtype=np.int64)
    after = at + np.uint64(1)
    # sorted and deduplicated by hand: np.union1d imports numpy.ma (~15 ms of every start-up)
    cuts = np.sort(np.concatenate([starts, at, after[after < np.uint64(high)]]))
    cuts = cuts[first_of_runs(cuts)]
    below = owners[np.searchsorted(starts, cuts, side="right") - 1]
    hit = np.minimum(np.searchsorted(at, cuts), len(at) - 1)
    painted = np.where(at[hit] == cuts, index[hit], below)
    changes = first_of_runs(painted)  # merge equal neighbours
    return cuts[changes], painted[changes]
