"""Longest-prefix match of E.164 numbers against a tariff table, in bulk.

Numbers travel as int64 digits.  For each prefix length present in the table
(longest first) the numbers are truncated to that many leading digits and
looked up with `searchsorted` in the sorted prefixes of that length, so routing
a batch costs a handful of array passes, never a Python loop per call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ._model import Tariff

_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)


def digit_count(numbers: NDArray[np.int64]) -> NDArray[np.int64]:
    """Number of decimal digits of each positive number (0 for 0)."""
    return np.searchsorted(_POW10, numbers, side="right").astype(np.int64)


class PrefixTable:
    """Sorted per-length prefix tables over a list of tariffs."""

    def __init__(self, tariffs: Sequence[Tariff]) -> None:
        self.tariffs = tuple(tariffs)
        lengths = sorted({len(t.prefix) for t in self.tariffs}, reverse=True)
        self._levels: list[tuple[int, NDArray[np.int64], NDArray[np.int64]]] = []
        for length in lengths:
            rows = [(int(t.prefix), i) for i, t in enumerate(self.tariffs) if len(t.prefix) == length]
            rows.sort()
            prefixes = np.array([p for p, _ in rows], dtype=np.int64)
            index = np.array([i for _, i in rows], dtype=np.int64)
            self._levels.append((length, prefixes, index))

    def match(self, numbers: NDArray[np.int64]) -> NDArray[np.int64]:
        """Index of the longest matching tariff for each number, -1 when none matches."""
        numbers = np.asarray(numbers, dtype=np.int64)
        result = np.full(len(numbers), -1, dtype=np.int64)
        if not len(numbers):
            return result
        digits = digit_count(numbers)
        for length, prefixes, index in self._levels:
            todo = (result < 0) & (digits >= length)
            if not todo.any():
                continue
            head = numbers[todo] // _POW10[digits[todo] - length]
            pos = np.searchsorted(prefixes, head)
            pos_c = np.minimum(pos, len(prefixes) - 1)
            hit = prefixes[pos_c] == head
            sub = np.flatnonzero(todo)
            result[sub[hit]] = index[pos_c[hit]]
        return result
