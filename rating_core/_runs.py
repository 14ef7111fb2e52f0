"""Runs of equal neighbours in a 1-D array (sorted keys, painted pieces), found in one pass."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def first_of_runs(values: NDArray) -> NDArray[np.bool_]:
    """True at the first element of each run of equal neighbours."""
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return first
