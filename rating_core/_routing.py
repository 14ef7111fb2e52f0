"""Longest-prefix match of E.164 numbers against a tariff table, in bulk.

Numbers travel as int64 digits.  Scaled to 18 digits (4930 -> 493000000000000000),
the numbers a prefix matches fill one interval, and the intervals of a table
cut the line into pieces, each covered by one longest prefix: a batch is
routed by one `searchsorted` over those pieces.  The scaled number forgets how
many digits it had, so a prefix longer than the number ("4930" for the number
493) is refused, and those rare numbers (and any of 19 digits) are matched
the slow way: for each prefix length, longest first, truncated to that many
leading digits and looked up among the prefixes of that length.  Either way a
batch costs a handful of array passes, never a Python loop per call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from ._model import Tariff

_POW10 = np.array([10**k for k in range(19)], dtype=np.int64)
_SCALE = 18  # digits of a scaled number; int64 holds 10**18


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
        self._edges, self._longest, self._longest_len = _pieces(self.tariffs)

    def match(self, numbers: NDArray[np.int64]) -> NDArray[np.int64]:
        """Index of the longest matching tariff for each number, -1 when none matches."""
        numbers = np.asarray(numbers, dtype=np.int64)
        if not len(numbers):
            return np.full(0, -1, dtype=np.int64)
        digits = digit_count(numbers)
        scalable = (numbers > 0) & (digits <= _SCALE)
        scaled = numbers * _POW10[np.where(scalable, _SCALE - digits, 0)]
        piece = np.searchsorted(self._edges, scaled, side="right") - 1
        result = np.where(scalable, self._longest[piece], -1)
        slow = (scalable & (self._longest_len[piece] > digits)) | ((numbers > 0) & ~scalable)
        if slow.any():
            result[slow] = self._match_by_length(numbers[slow], digits[slow])
        return result

    def _match_by_length(self, numbers: NDArray[np.int64], digits: NDArray[np.int64]) -> NDArray[np.int64]:
        """The same match, one prefix length at a time (longest first)."""
        result = np.full(len(numbers), -1, dtype=np.int64)
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


def _pieces(tariffs: Sequence[Tariff]) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Cut points of the 18-digit line, and each piece's longest covering prefix (tariff index,
    -1 for none) and its length.  Painted shortest prefix first, so longer ones win; within a
    length the lowest index paints last, as the lookup by length finds it first."""
    spans = []
    for i, t in enumerate(tariffs):
        length = len(t.prefix)
        if length <= _SCALE:
            unit = 10 ** (_SCALE - length)
            spans.append((length, -i, int(t.prefix) * unit, (int(t.prefix) + 1) * unit, i))
    edges = np.array(sorted({0, *(lo for _, _, lo, _, _ in spans), *(hi for _, _, _, hi, _ in spans)}),
                     dtype=np.int64)
    longest = np.full(len(edges), -1, dtype=np.int64)
    longest_len = np.zeros(len(edges), dtype=np.int64)
    for length, _, lo, hi, i in sorted(spans):
        first, end = np.searchsorted(edges, [lo, hi])
        longest[first:end] = i
        longest_len[first:end] = length
    return edges, longest, longest_len
