"""What a sweep runs: the grid of settings (the product of every `--set`) times the seeds.

Seeds are derived from the scenario's own seed with numpy's `SeedSequence.spawn`, so a sweep
is reproducible from the file alone, the i-th seed does not depend on how many were asked
for (200 seeds are the 100 of a smaller sweep and 100 more), and every grid point runs the
same seeds: settings are compared on the same traffic draws (common random numbers), which
makes a difference between two settings the settings' and not the luck of the draw.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._overrides import Override

Point = tuple[Override, ...]
"""One grid point: the overrides of one setting, in `--set` order (() without any)."""

MAX_SEED = 2**63 - 1  # the scenario schema's bound (`[simulation] seed`)


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: the scenario with `point` applied, traffic drawn with `seed`."""

    point: Point
    seed: int


def derive_seeds(base_seed: int, n: int) -> list[int]:
    """`n` seeds derived from `base_seed`: the first 63 bits of each child's state of
    `SeedSequence(base_seed).spawn(n)`; deterministic, and a prefix of any longer list."""
    children = np.random.SeedSequence(base_seed).spawn(n)
    return [int(child.generate_state(1, np.uint64)[0]) & MAX_SEED for child in children]


def grid(sets: Sequence[Sequence[Override]]) -> list[Point]:
    """Every combination of one value per `--set` (the first `--set` varies slowest).

    Raises ValueError when two `--set`s name the same path.
    """
    seen: set[str] = set()
    for values in sets:
        path = values[0].path
        if path in seen:
            raise ValueError(f"--set {path} given twice: give its values once, separated by commas")
        seen.add(path)
    return [tuple(point) for point in itertools.product(*sets)]


def run_specs(points: Sequence[Point], seeds: Sequence[int]) -> list[RunSpec]:
    """Each point with each seed, point by point."""
    return [RunSpec(point, seed) for point in points for seed in seeds]
