"""Columns that grow by doubling, so appending rows stays O(1) per row on average."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def with_room(columns: Sequence[NDArray], kept: int, needed: int, minimum: int) -> list[NDArray]:
    """`columns` if they can hold `needed` rows, else new columns of the same dtypes.

    New columns hold max(2 × needed, minimum) rows, their first `kept` rows copied
    from the old ones (the rest is uninitialised).  `columns` are of equal length.
    """
    if needed <= len(columns[0]):
        return list(columns)
    capacity = max(2 * needed, minimum)
    grown = [np.empty(capacity, dtype=col.dtype) for col in columns]
    for new, old in zip(grown, columns):
        new[:kept] = old[:kept]
    return grown
