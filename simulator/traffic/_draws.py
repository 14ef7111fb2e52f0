"""One traffic source's calls, drawn block by block on a fixed grid of simulated time.

The model: a Poisson process whose rate is constant within each local hour of the week (a
flat source: one rate), on a grid of `GRID_MS` cells.  A block is whole cells; per run of its
cells inside one local hour, n ~ Poisson(expected calls of the run) arrivals at uniform
integer ms of the run: given their number, the arrivals of a Poisson process of constant rate
are independent and uniform, so this is the exact non-homogeneous process with the
piecewise-constant hourly rate, with no rejection step, for one Poisson draw an hour (a flat
source's block is one run: one draw a block).  A profile's cells are whole minutes of the
local clock (its UTC offset is whole minutes), so no cell straddles two hours, and nothing
depends on how the run is cut into windows.  (A run that starts between two whole minutes
has its first profile cell begin before the start; the calls drawn there are dropped.)

Then, per call: a holding time from the source's distribution (rounded to whole ms, at least
1 ms); a caller uniform among the source's users; a destination (`_numbers`).

Draw blocks are whole cells holding ~TARGET_CALLS_PER_DRAW expected calls, up to a day (a
source quieter than that holds ~QUIET_CALLS_PER_DRAW, a day to a week with a profile, to a
year without), their lengths a function of the source's rates only (never of the caller's
windows, the playback speed or the duration), so the random stream, and with it every call,
is fixed by the scenario and seed.
`_batch` makes the draws, for many sources at once, in the order it documents.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rating_core import CallKind, RatingSetup, parse_number
from ..units import MAX_DURATION_MS, epoch_ms
from ._numbers import DefaultDestinations, Groups, Prefixes, Weighted

if TYPE_CHECKING:  # the loader's values; traffic only reads them
    from ..scenario import Holding, RateProfile, Scenario, TrafficSpec

GRID_MS = 60_000
"""Grid cell of the Poisson draws.  Part of the random stream: changing it changes every call."""

TARGET_CALLS_PER_DRAW = 16_384
"""Expected calls per draw block: big enough to amortise numpy call overhead, small enough that
the buffer of drawn-but-not-yet-returned calls stays a few MB per source."""

MAX_CELLS_PER_DRAW = 1_440
"""Longest draw block of a busy source, and shortest of a quiet one (one day of cells); a
quiet source with a rate profile draws at most a week (CELLS_PER_WEEK)."""

QUIET_CALLS_PER_DRAW = 256
"""Expected calls per draw block of a source quieter than ~10 calls an hour.  A block
costs a few numpy calls whatever it holds (~20 µs), ~256 calls about as much: a source of
0.01 calls/h drawing a day at a time would spend a long run on empty blocks, one drawing
TARGET_CALLS_PER_DRAW would draw centuries that a short run never uses."""

MAX_FLAT_CELLS_PER_DRAW = 525_600
"""Longest draw block of a flat source (a year of cells)."""

MS_PER_HOUR = 3_600_000
CELLS_PER_HOUR = MS_PER_HOUR // GRID_MS
CELLS_PER_WEEK = 168 * CELLS_PER_HOUR

_KIND_BY_TYPE = {
    "domestic": CallKind.OUTBOUND,
    "international": CallKind.OUTBOUND,
    "conference_dial_out": CallKind.CONFERENCE_DIAL_OUT,
    "toll_free": CallKind.TOLL_FREE,
}


# --------------------------------------------------------------------------- arrival rate


@dataclass(frozen=True)
class CellRates:
    """Expected calls per grid cell, and where the cells lie.

    Cell k covers simulated ms [k x GRID_MS - phase_ms, (k + 1) x GRID_MS - phase_ms).  Flat
    sources have phase 0 and one rate (`flat`); profile sources a rate per hour of the week
    (`by_hour`, indexed as `profile.per_hour`) and cells on whole minutes, cell 0 starting at
    `epoch0_ms` (ms since the Unix epoch).
    """

    flat: float
    profile: RateProfile | None = None
    by_hour: NDArray[np.float64] | None = None
    epoch0_ms: int = 0
    phase_ms: int = 0
    week: NDArray[np.float64] | None = None  # expected calls before each cell of the first week

    @classmethod
    def of(cls, spec: TrafficSpec, start_epoch_ms: int) -> CellRates:
        profile: RateProfile | None = spec.rate_profile
        if profile is None:
            return _flat_rates(spec.calls_per_hour)
        phase = start_epoch_ms % GRID_MS  # the offset is whole minutes: so are local minutes
        by_hour = np.array(profile.per_hour, dtype=np.float64) * GRID_MS / MS_PER_HOUR
        rates = cls(0.0, profile, by_hour, start_epoch_ms - phase, phase)
        week = np.concatenate([[0.0], np.cumsum(rates.expected(0, CELLS_PER_WEEK))])
        return cls(0.0, profile, by_hour, start_epoch_ms - phase, phase, week)

    def expected(self, first_cell: int, n_cells: int) -> float | NDArray[np.float64]:
        """Expected calls of each of the cells from `first_cell` on (a scalar when flat)."""
        if self.profile is None or self.by_hour is None:
            return self.flat
        cells = self.epoch0_ms + (first_cell + np.arange(n_cells, dtype=np.int64)) * GRID_MS
        return self.by_hour[self.profile.hour_of_week(cells)]

    def cells_from(self, first_cell: int) -> int:
        """How many cells from `first_cell` a profile source's next draw block takes: as many
        as it takes to expect ~TARGET_CALLS_PER_DRAW calls if that is at most a day (at least
        one cell); else ~QUIET_CALLS_PER_DRAW calls, a day to a week.

        Quiet nights and busy hours alike make blocks of about the target, for a busy source
        (a block costs a dozen numpy calls whatever it holds, and one far above the target
        falls out of the CPU's caches).  Flat sources take `cells_per_draw` of their rate
        every time.
        """
        return _block_cells(self._cells_expecting(first_cell, TARGET_CALLS_PER_DRAW),
                            lambda: self._cells_expecting(first_cell, QUIET_CALLS_PER_DRAW), CELLS_PER_WEEK)

    def _cells_expecting(self, first_cell: int, calls: float) -> int:
        """The cells from `first_cell` on it takes to expect `calls` calls (the cells repeat
        weekly: `week`, the running sum over one week, answers for any cell)."""
        assert self.week is not None, "a flat source's blocks are all cells_per_draw long"
        per_week = float(self.week[-1])
        if calls > per_week:  # more than any week holds: longer than the longest block
            return CELLS_PER_WEEK + 1
        weeks, cell = divmod(first_cell, CELLS_PER_WEEK)
        goal = weeks * per_week + float(self.week[cell]) + calls
        goal_weeks, rest = divmod(goal, per_week)
        end = int(goal_weeks) * CELLS_PER_WEEK + int(np.searchsorted(self.week, rest, side="left"))
        return end - first_cell

    def hours(self, first_cell: int, n_cells: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """A profile source's cells from `first_cell` on in runs that each lie in one local
        hour (the rate's): each run's length in cells, and its expected calls."""
        assert self.profile is not None and self.by_hour is not None
        start = self.epoch0_ms + first_cell * GRID_MS
        head = min(n_cells, self.profile.ms_to_next_hour(start) // GRID_MS)
        full, tail = divmod(n_cells - head, CELLS_PER_HOUR)
        lengths = np.full(1 + full + (tail > 0), CELLS_PER_HOUR, dtype=np.int64)
        lengths[0] = head
        if tail:
            lengths[-1] = tail
        starts = start + (np.cumsum(lengths) - lengths) * GRID_MS
        return lengths, self.by_hour[self.profile.hour_of_week(starts)] * lengths


# --------------------------------------------------------------------------- holding times


@dataclass(frozen=True)
class HoldingDraw:
    """Draws holding times in ms: exponential (`holding` None: mean `mean_ms`), lognormal, or
    by the inverse CDF through (`probabilities`, `durations`), piecewise linear."""

    kind: str
    mean_ms: float
    mu: float = 0.0
    sigma: float = 0.0
    probabilities: NDArray[np.float64] | None = None
    durations: NDArray[np.float64] | None = None

    @classmethod
    def of(cls, spec: TrafficSpec) -> HoldingDraw:
        holding: Holding | None = spec.holding
        if holding is None:
            return _exponential(spec.holding_mean_ms)
        if holding.kind == "lognormal":
            return cls("lognormal", holding.mean_ms, math.log(holding.median_ms), holding.sigma)
        return cls(holding.kind, holding.mean_ms,
                   probabilities=np.array(holding.probabilities, dtype=np.float64),
                   durations=np.array(holding.durations_ms, dtype=np.float64))

    def sample(self, rng: np.random.Generator, n: int) -> NDArray[np.float64]:
        """n holding times in ms, not yet whole (`whole_ms`): at most 100 years (a lognormal
        tail must not overflow int64 ms)."""
        if self.kind == "exponential":
            return rng.exponential(self.mean_ms, size=n)
        if self.kind == "lognormal":
            return np.minimum(rng.lognormal(self.mu, self.sigma, size=n), MAX_DURATION_MS)
        return self._inverse_cdf(rng.random(n))

    def _inverse_cdf(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """The linear interpolation between the points around each u.

        `side="right"` takes the last point at or below u, so a stretch of zero probability (an
        empty histogram bin: two equal probabilities) is never the one interpolated in.
        """
        p, d = self.probabilities, self.durations
        assert p is not None and d is not None
        i = np.clip(np.searchsorted(p, u, side="right") - 1, 0, len(p) - 2)
        fraction = (u - p[i]) / (p[i + 1] - p[i])
        return d[i] + fraction * (d[i + 1] - d[i])


def whole_ms(ms: NDArray[np.float64]) -> NDArray[np.int64]:
    """Holding times rounded to whole ms, at least 1 ms (a zero-length call is a rounding
    artefact, not a call)."""
    return np.maximum(np.rint(ms), 1).astype(np.int64)


# Thousands of one-user sources share a few flat rates and holding means: one object each.
@lru_cache(maxsize=1024)
def _flat_rates(calls_per_hour: float) -> CellRates:
    return CellRates(calls_per_hour * GRID_MS / MS_PER_HOUR)


@lru_cache(maxsize=1024)
def _exponential(mean_ms: int) -> HoldingDraw:
    return HoldingDraw("exponential", float(mean_ms))


# --------------------------------------------------------------------------- one source


@dataclass(frozen=True)
class SourceTables:
    """What one `[[traffic]]` source draws from, resolved to arrays once.

    `slots` are the possible callers (global user indices; a single -1 for toll-free) and
    `slot_group` each caller's candidate prefix group.  The drawn prefix completes into the
    `to` number, or for toll-free into the caller's `from` number, `to` then being uniform
    among `to_numbers` (the org's toll-free numbers).  `calls_per_hour` is the busiest rate
    (the flat one, or a profile's peak hour).
    """

    org: int
    kind: CallKind
    calls_per_hour: float
    rates: CellRates
    holding: HoldingDraw
    slots: NDArray[np.int32]
    slot_group: NDArray[np.intp]
    groups: Groups | Weighted
    prefixes: Prefixes
    to_numbers: NDArray[np.int64]  # toll-free only
    profile: RateProfile | None = None

    @property
    def mean_per_hour(self) -> float:
        """The flat rate, or a profile's mean over the week."""
        if self.profile is None:
            return self.calls_per_hour
        return sum(self.profile.per_hour) / len(self.profile.per_hour)

    @property
    def drawable(self) -> bool:
        """False when this source can produce no call at all (see simulator.traffic)."""
        if self.calls_per_hour <= 0 or len(self.slots) == 0 or len(self.prefixes.digits) == 0:
            return False
        return self.kind != CallKind.TOLL_FREE or len(self.to_numbers) > 0

    def expected_calls(self, start_epoch_ms: int, end_ms: int) -> float:
        """Expected arrivals in [0, end_ms): the rate integrated over the run."""
        if not self.drawable:
            return 0.0
        if self.profile is None:
            return self.calls_per_hour * end_ms / MS_PER_HOUR
        return self.profile.calls_between(start_epoch_ms, start_epoch_ms + end_ms)


def _source_tables(
    spec: TrafficSpec, setup: RatingSetup, defaults: DefaultDestinations, start_epoch_ms: int
) -> SourceTables:
    """Resolve a source's callers and candidate destinations against the rating setup."""
    kind = _KIND_BY_TYPE[spec.type]
    shape = (spec.org, kind, spec.calls_per_hour, CellRates.of(spec, start_epoch_ms),
             HoldingDraw.of(spec))
    if spec.type == "toll_free":
        slots, slot_group = np.array([-1], dtype=np.int32), np.zeros(1, dtype=np.intp)
        to_numbers = np.array(
            [parse_number(n) for n in setup.orgs[spec.org].toll_free_numbers], dtype=np.int64
        )
        if spec.weighted is None:
            callers = spec.destinations
            if callers is None:
                callers = tuple(t.prefix for t in setup.toll_free_tariffs)
            prefixes = Prefixes.of(callers)
            groups: Groups | Weighted = Groups.of([range(len(prefixes.digits))])
        else:
            prefixes = Prefixes.of_entries(spec.weighted)
            groups = Weighted.of([e.weight for e in spec.weighted])
        return SourceTables(*shape, slots, slot_group, groups, prefixes, to_numbers,
                            spec.rate_profile)

    no_numbers = np.empty(0, dtype=np.int64)
    slots = np.array(spec.users, dtype=np.int32)
    if spec.weighted is not None:
        prefixes = Prefixes.of_entries(spec.weighted)
        slot_group = np.zeros(len(slots), dtype=np.intp)
        groups = Weighted.of([e.weight for e in spec.weighted])
    elif spec.destinations is not None:
        prefixes = Prefixes.of(spec.destinations)
        slot_group = np.zeros(len(slots), dtype=np.intp)
        groups = Groups.of([range(len(prefixes.digits))])
    else:
        prefixes, slot_group, groups = defaults.of(spec)
    return SourceTables(*shape, slots, slot_group, groups, prefixes, no_numbers,
                        spec.rate_profile)


# Resolved tables by id() of the (immutable) scenario, dropped when the scenario is collected.
_RESOLVED: dict[int, list[SourceTables]] = {}


def all_source_tables(scenario: Scenario) -> list[SourceTables]:
    """Every `[[traffic]]` source resolved, in file order; what they share is resolved once.

    Resolved once per scenario object: a run asks for them three times (the CDR workers'
    decision, the window size, the plan), and at 10,000 sources each resolution costs a
    tenth of a second.  Callers only read the tables.
    """
    key = id(scenario)
    tables = _RESOLVED.get(key)
    if tables is None:
        setup = scenario.setup
        defaults = DefaultDestinations(setup)
        start = epoch_ms(setup.start)
        tables = [_source_tables(spec, setup, defaults, start) for spec in scenario.traffic]
        _RESOLVED[key] = tables
        weakref.finalize(scenario, _RESOLVED.pop, key, None)  # runs before the id can be reused
    return tables


def cells_per_draw(calls_per_hour: float) -> int:
    """A flat source's draw block length in grid cells: ~TARGET_CALLS_PER_DRAW expected calls
    if that is at most a day (at least 1 cell); else ~QUIET_CALLS_PER_DRAW expected calls, at
    least a day and at most a year.

    A function of the source's rate only, never of the caller's chunks, the speed or the
    duration: see the module docstring.
    """
    per_cell = calls_per_hour * GRID_MS / MS_PER_HOUR
    if per_cell <= 0:
        return MAX_CELLS_PER_DRAW
    return _block_cells(TARGET_CALLS_PER_DRAW / per_cell, lambda: QUIET_CALLS_PER_DRAW / per_cell,
                        MAX_FLAT_CELLS_PER_DRAW)


def _block_cells(busy: float, quiet: Callable[[], float], longest: int) -> int:
    """A block's length in cells, from the cells it takes to expect TARGET_CALLS_PER_DRAW
    calls (`busy`) and, asked only for a source too quiet for that in a day, those it takes to
    expect QUIET_CALLS_PER_DRAW (`quiet()`): `busy` if at most a day (at least one cell), else
    `quiet` from a day to `longest` (capped before rounding: 1e-306 calls/h makes it infinite)."""
    if busy <= MAX_CELLS_PER_DRAW:
        return max(1, math.ceil(busy))
    return max(MAX_CELLS_PER_DRAW, math.ceil(min(quiet(), longest)))
