"""Call arrivals of a scenario: generated `[[traffic]]` plus explicit `[[calls]]`, in call_id order.

This module is pure numpy: no Trio, no clock, no I/O.  The switch asks a `TrafficPlan` for the
arrivals of successive windows of simulated time and gets `Arrivals` batches whose `call_id`s
follow SPEC §3 (arrival order; ties at one instant: explicit calls in file order, then generated
calls in `[[traffic]]` order, each source in its own draw order).

Why it is built this way:

* **Same seed, same calls, whatever the caller does.**  One `PCG64(seed)` root generator is
  split with `spawn` into one child per traffic source, so a source's draws never depend on
  another source (adding a source does not change the others' calls).  Each source draws on a
  fixed grid of simulated time (`GRID_MS` cells, grouped into fixed draws of whole cells, see
  `_cells_per_draw`), never on the caller's window, so any sequence of `chunk` windows -- one
  minute, one hour, 7 h 13 min, or the whole run at once -- returns exactly the same arrays, at
  any playback speed.  Draws are never cut at the end of the simulation either (calls at or after
  the end are dropped after drawing), so a longer run starts with exactly the calls of a
  shorter one.
* **Fast.**  Everything is drawn per draw block with whole-array numpy calls; there is no Python
  loop per call or per cell.  Blocks hold about `TARGET_CALLS_PER_DRAW` expected calls, so a
  month of 1.4 M calls is ~100 block draws in all.  `TrafficPlan` also merges and numbers
  ahead in windows of about that size, so tiny `chunk` windows are mostly array slicing.
  Drawn calls wait in time-sorted runs (`_Run`, one per round of draws, whatever sources drew
  in it), so a window costs its own calls and the sources that must draw for it, never a step
  per source: with 10,000 sources, asking each one every window cost more than the rating.
* **Model.**  Per grid cell, n ~ Poisson(calls_per_hour x cell / 1 h) arrivals at uniform integer
  ms in the cell (a homogeneous Poisson process at 1 ms resolution); holding ~ exponential(mean)
  rounded to whole ms, at least 1 ms (a zero-length call is a rounding artefact, not a call);
  the user is uniform among the source's users; the number is a uniform destination prefix
  followed by uniform random digits (`_Prefixes`).

A source with nothing to draw from -- a zero rate, no users (non toll-free), no candidate
prefix (no tariffs and no `destinations`, or `destinations = []`), or for toll-free no
`toll_free_numbers` of its org -- yields no calls instead of failing: the scenario is still
valid, that traffic simply cannot happen.  Its child generator is still spawned, so the other
sources' calls do not change.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rating_core import Arrivals, CallKind, RatingSetup, parse_number

if TYPE_CHECKING:  # the loader is a sibling module; traffic only reads its objects
    from .scenario import CallSpec, Scenario, TrafficSpec

__all__ = ["GRID_MS", "TrafficPlan", "expected_calls"]

GRID_MS = 60_000
"""Grid cell of the Poisson draws.  Part of the random stream: changing it changes every call."""

TARGET_CALLS_PER_DRAW = 16_384
"""Expected calls per draw block: big enough to amortise numpy call overhead, small enough that
the buffer of drawn-but-not-yet-returned calls stays a few MB per source."""

MAX_CELLS_PER_DRAW = 1_440
"""Longest draw block (one day of cells), so quiet sources do not draw months ahead."""

MS_PER_HOUR = 3_600_000
E164_MIN_DIGITS = 11  # generated numbers are at least this long ...
E164_MAX_DIGITS = 15  # ... and never longer than E.164 allows (unless the prefix already is)

_KIND_BY_TYPE = {
    "domestic": CallKind.OUTBOUND,
    "international": CallKind.OUTBOUND,
    "conference_dial_out": CallKind.CONFERENCE_DIAL_OUT,
    "toll_free": CallKind.TOLL_FREE,
}


# --------------------------------------------------------------------------- number tables


@dataclass(frozen=True)
class _Prefixes:
    """Distinct digit prefixes and how to complete each one into a full number.

    A number is `value * scale + uniform(0, scale)`: the prefix followed by random digits up to
    max(11, len(prefix) + 1) digits, capped at 15 (E.164).  The extra digit for long prefixes
    keeps the numbers of one prefix distinct from each other.
    """

    digits: tuple[str, ...]
    value: NDArray[np.int64]
    scale: NDArray[np.int64]  # 10 ** trailing digits

    @classmethod
    def of(cls, prefixes: Sequence[str]) -> _Prefixes:
        digits = tuple(dict.fromkeys(prefixes))  # dedupe, keep first-seen order
        lengths = [min(E164_MAX_DIGITS, max(E164_MIN_DIGITS, len(p) + 1)) for p in digits]
        trailing = [max(0, n - len(p)) for p, n in zip(digits, lengths)]
        return cls(
            digits=digits,
            value=np.array([int(p) for p in digits], dtype=np.int64),
            scale=np.array([10**k for k in trailing], dtype=np.int64),
        )

    def complete(self, rng: np.random.Generator, idx: NDArray[np.intp]) -> NDArray[np.int64]:
        """Random full numbers for the prefixes `idx` (one draw of trailing digits per call).

        Scales are powers of ten, so each divides the largest: one draw below the largest,
        taken modulo each call's scale, is exactly uniform and much faster than per-call bounds.
        """
        scale = self.scale[idx]
        trailing = rng.integers(0, int(self.scale.max()), size=len(idx), dtype=np.int64)
        return self.value[idx] * scale + trailing % scale


@dataclass(frozen=True)
class _Groups:
    """Candidate prefix lists, one per group, concatenated (CSR layout) for vectorised picks."""

    members: NDArray[np.intp]  # prefix indices, group after group
    offset: NDArray[np.intp]
    count: NDArray[np.intp]
    common: int  # a multiple of every count (their lcm), 0 if too large for one int64 draw

    @classmethod
    def of(cls, groups: Sequence[Sequence[int]]) -> _Groups:
        count = np.array([len(g) for g in groups], dtype=np.intp)
        offset = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.intp)
        members = np.array([i for g in groups for i in g], dtype=np.intp)
        lcm = math.lcm(*(int(c) for c in count if c > 0))
        return cls(members=members, offset=offset, count=count, common=lcm if lcm < 2**62 else 0)

    def pick(self, rng: np.random.Generator, group: NDArray[np.intp]) -> NDArray[np.intp]:
        """One uniform member of each call's group.

        A draw below a common multiple of the group sizes, modulo each size, is exactly uniform
        and ~3x faster than a draw with one bound per call (the fallback for huge multiples).
        """
        count = self.count[group]
        if self.common:
            k = rng.integers(0, self.common, size=len(group)) % count
        else:
            k = rng.integers(0, count)
        return self.members[self.offset[group] + k]


# --------------------------------------------------------------------------- one source


@dataclass(frozen=True)
class _SourceTables:
    """What one `[[traffic]]` source draws from, resolved to arrays once.

    `slots` are the possible callers (global user indices; a single -1 for toll-free) and
    `slot_group` each caller's candidate prefix group.  The drawn prefix completes into the
    `to` number, or for toll-free into the caller's `from` number, `to` then being uniform
    among `to_numbers` (the org's toll-free numbers).
    """

    org: int
    kind: CallKind
    calls_per_hour: float
    holding_mean_ms: float
    slots: NDArray[np.int32]
    slot_group: NDArray[np.intp]
    groups: _Groups
    prefixes: _Prefixes
    to_numbers: NDArray[np.int64]  # toll-free only

    @property
    def drawable(self) -> bool:
        """False when this source can produce no call at all (see the module docstring)."""
        if self.calls_per_hour <= 0 or len(self.slots) == 0 or len(self.prefixes.digits) == 0:
            return False
        return self.kind != CallKind.TOLL_FREE or len(self.to_numbers) > 0


def _source_tables(
    spec: TrafficSpec, setup: RatingSetup, defaults: _DefaultDestinations
) -> _SourceTables:
    """Resolve a source's callers and candidate destinations against the rating setup."""
    kind = _KIND_BY_TYPE[spec.type]
    no_numbers = np.empty(0, dtype=np.int64)
    if spec.type == "toll_free":
        callers = spec.destinations
        if callers is None:
            callers = tuple(t.prefix for t in setup.toll_free_tariffs)
        prefixes = _Prefixes.of(callers)
        slots, slot_group = np.array([-1], dtype=np.int32), np.zeros(1, dtype=np.intp)
        groups = _Groups.of([range(len(prefixes.digits))])
        to_numbers = np.array(
            [parse_number(n) for n in setup.orgs[spec.org].toll_free_numbers], dtype=np.int64
        )
        return _SourceTables(spec.org, kind, spec.calls_per_hour, spec.holding_mean_ms,
                             slots, slot_group, groups, prefixes, to_numbers)

    slots = np.array(spec.users, dtype=np.int32)
    if spec.destinations is not None:
        prefixes = _Prefixes.of(spec.destinations)
        slot_group = np.zeros(len(slots), dtype=np.intp)
        groups = _Groups.of([range(len(prefixes.digits))])
    else:
        prefixes, slot_group, groups = defaults.of(spec)
    return _SourceTables(spec.org, kind, spec.calls_per_hour, spec.holding_mean_ms,
                         slots, slot_group, groups, prefixes, no_numbers)


def _all_source_tables(scenario: Scenario) -> list[_SourceTables]:
    """Every `[[traffic]]` source resolved, in file order; what they share is resolved once."""
    setup = scenario.setup
    defaults = _DefaultDestinations(setup)
    return [_source_tables(spec, setup, defaults) for spec in scenario.traffic]


class _DefaultDestinations:
    """Tariff prefixes a source calls when it names no `destinations`.

    domestic: prefixes of the caller's own country; international: of any other country;
    conference_dial_out: all.  When a caller's country leaves nothing (no tariff of its
    country, or only its country), it falls back to all prefixes: the call is then rated as it
    routes (e.g. an international source whose only tariff is domestic makes domestic calls).
    One group per distinct caller country keeps the per-call pick vectorised.

    Built once for all sources: the prefix table, every user's country and each country's
    candidates are shared, so resolving a source costs its own callers, not the whole setup
    (10,000 one-user orgs with a source each would otherwise be quadratic).
    """

    def __init__(self, setup: RatingSetup) -> None:
        first_country: dict[str, str] = {}
        for t in setup.tariffs:
            first_country.setdefault(t.prefix, t.country)
        self._prefixes = _Prefixes.of(list(first_country))
        self._countries = list(first_country.values())
        self._everything = list(range(len(self._countries)))
        self._user_country = [user.country for org in setup.orgs for user in org.users]
        self._candidates: dict[tuple[str, bool], list[int]] = {}

    def of(self, spec: TrafficSpec) -> tuple[_Prefixes, NDArray[np.intp], _Groups]:
        """The source's prefixes, each caller's candidate group, and the groups."""
        if spec.type == "conference_dial_out":
            everything = _Groups.of([self._everything])
            return self._prefixes, np.zeros(len(spec.users), dtype=np.intp), everything
        slot_country = [self._user_country[u] for u in spec.users]
        distinct = list(dict.fromkeys(slot_country))
        domestic = spec.type == "domestic"
        groups = [self._candidates_of(c, domestic) for c in distinct]
        group_of = {c: g for g, c in enumerate(distinct)}
        slot_group = np.array([group_of[c] for c in slot_country], dtype=np.intp)
        return self._prefixes, slot_group, _Groups.of(groups or [self._everything])

    def _candidates_of(self, country: str, domestic: bool) -> list[int]:
        key = (country, domestic)
        if key not in self._candidates:
            own = [i for i, tc in enumerate(self._countries) if (tc == country) == domestic]
            self._candidates[key] = own or self._everything
        return self._candidates[key]


def _cells_per_draw(calls_per_hour: float) -> int:
    """Draw block length in grid cells: ~TARGET_CALLS_PER_DRAW expected calls, 1..one day.

    A function of the rate only (never of the caller's chunks, the speed or the duration), so
    the random stream, and with it every call, is fixed by the scenario and seed.
    """
    per_cell = calls_per_hour * GRID_MS / MS_PER_HOUR
    if per_cell <= 0:
        return MAX_CELLS_PER_DRAW
    return int(min(MAX_CELLS_PER_DRAW, max(1, math.ceil(TARGET_CALLS_PER_DRAW / per_cell))))


def _draw_block(
    src: _SourceTables, rng: np.random.Generator, first_cell: int, n_cells: int
) -> Arrivals:
    """All calls of `n_cells` grid cells from `first_cell` on, sorted by time (call_id unset).

    The order of the draws below is part of the random stream: keep it.
    """
    counts = rng.poisson(src.calls_per_hour * GRID_MS / MS_PER_HOUR, size=n_cells)
    n = int(counts.sum())
    cell_start = (first_cell + np.arange(n_cells, dtype=np.int64)) * GRID_MS
    t_ms = np.repeat(cell_start, counts) + rng.integers(0, GRID_MS, size=n, dtype=np.int64)
    t_ms.sort()  # cells are disjoint, so this sorts within each cell and keeps cells in order
    holding_ms = np.maximum(np.rint(rng.exponential(src.holding_mean_ms, size=n)), 1)
    slot = rng.integers(0, len(src.slots), size=n)
    number = src.prefixes.complete(rng, src.groups.pick(rng, src.slot_group[slot]))
    if src.kind == CallKind.TOLL_FREE:
        to_number = src.to_numbers[rng.integers(0, len(src.to_numbers), size=n)]
        from_number = number
    else:
        to_number, from_number = number, np.zeros(n, dtype=np.int64)
    return Arrivals(
        call_id=np.zeros(n, dtype=np.int64),
        t_ms=t_ms,
        org=np.full(n, src.org, dtype=np.int32),
        user=src.slots[slot],
        kind=np.full(n, int(src.kind), dtype=np.int8),
        to_number=to_number,
        from_number=from_number,
        holding_ms=holding_ms.astype(np.int64),
    )


class _SourceDraws:
    """One source's arrivals in time order, drawn block by block on the fixed grid."""

    def __init__(self, src: _SourceTables, rng: np.random.Generator, end_ms: int) -> None:
        self._src = src
        self._rng = rng
        self._end_ms = end_ms
        self._cells = _cells_per_draw(src.calls_per_hour)
        self._next_cell = 0
        # Nothing to draw: pretend everything up to the end has been drawn (and was empty).
        self.drawn_to_ms = 0 if src.drawable else end_ms

    def draw_to(self, t1: int) -> list[Arrivals]:
        """The next blocks, up to the first that reaches t1 (t1 <= end): every call before t1
        not drawn yet, and the rest of that block's cells."""
        blocks = []
        while self.drawn_to_ms < t1:
            blocks.append(self._draw_next())
        return blocks

    def _draw_next(self) -> Arrivals:
        block = _draw_block(self._src, self._rng, self._next_cell, self._cells)
        self._next_cell += self._cells
        self.drawn_to_ms = self._next_cell * GRID_MS
        if self.drawn_to_ms > self._end_ms:  # drawn in full for stability, kept up to the end
            block = block.take(slice(0, int(np.searchsorted(block.t_ms, self._end_ms))))
        return block


@dataclass
class _Run:
    """Drawn calls not numbered yet, in SPEC §3 order: by time, then `rank` (the part: -1 for
    explicit calls, else the `[[traffic]]` index), then draw order."""

    calls: Arrivals
    rank: NDArray[np.int32]

    @classmethod
    def of(cls, parts: Sequence[Arrivals], ranks: Sequence[int]) -> _Run:
        """A run of time-sorted parts given in rank order (the stable sort keeps the rest)."""
        calls = Arrivals.concat(list(parts))
        rank = np.repeat(np.array(ranks, dtype=np.int32), [len(p) for p in parts])
        if len(parts) > 1:
            order = np.argsort(calls.t_ms, kind="stable")
            calls, rank = calls.take(order), rank[order]
        return cls(calls, rank)

    def split(self, t: int) -> tuple[_Run, _Run]:
        """(the calls before t, the others)."""
        cut = int(np.searchsorted(self.calls.t_ms, t, side="left"))
        head = _Run(self.calls.take(slice(0, cut)), self.rank[:cut])
        return head, _Run(self.calls.take(slice(cut, None)), self.rank[cut:])


def _merge_runs(runs: Sequence[_Run], sources: int) -> Arrivals:
    """The calls of several runs in one SPEC §3 order (call_id unset)."""
    runs = [r for r in runs if len(r.calls)]
    if not runs:
        return Arrivals.empty()
    if len(runs) == 1:
        return runs[0].calls
    calls = Arrivals.concat([r.calls for r in runs])
    rank = np.concatenate([r.rank for r in runs]).astype(np.int64) + 1
    if int(calls.t_ms.max()) < 2**62 // (sources + 2):
        # one int64 key; a stable sort of concatenated sorted runs merges them in linear time
        order = np.argsort(calls.t_ms * (sources + 2) + rank, kind="stable")
    else:
        order = np.lexsort((rank, calls.t_ms))
    return calls.take(order)


# --------------------------------------------------------------------------- explicit calls


def _explicit_arrivals(calls: Sequence[CallSpec], end_ms: int) -> Arrivals:
    """`[[calls]]` as one batch sorted by time, file order among equal times.

    Calls outside [0, end) cannot arrive during the run and are left out.
    """
    kept = [c for c in calls if 0 <= c.at_ms < end_ms]
    batch = Arrivals(
        call_id=np.zeros(len(kept), dtype=np.int64),
        t_ms=np.array([c.at_ms for c in kept], dtype=np.int64),
        org=np.array([c.org for c in kept], dtype=np.int32),
        user=np.array([c.user for c in kept], dtype=np.int32),
        kind=np.array([int(c.kind) for c in kept], dtype=np.int8),
        to_number=np.array([c.to_number for c in kept], dtype=np.int64),
        from_number=np.array([c.from_number for c in kept], dtype=np.int64),
        holding_ms=np.array([c.duration_ms for c in kept], dtype=np.int64),
    )
    return batch.take(np.argsort(batch.t_ms, kind="stable"))


# --------------------------------------------------------------------------- public API


class TrafficPlan:
    """All arrivals of a scenario, drawn chunk by chunk on a fixed grid of simulated time.

    Windows must be asked for contiguously from 0 (`chunk(0, a)`, `chunk(a, b)`, ...); the
    result does not depend on where the windows are cut.  `chunks()` walks the whole run in
    steps of `chunk_ms`.
    """

    def __init__(self, scenario: Scenario, chunk_ms: int = 3_600_000) -> None:
        if chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be positive, got {chunk_ms}")
        setup = scenario.setup
        self.end_ms: int = setup.end_ms
        self.chunk_ms = chunk_ms
        root = np.random.Generator(np.random.PCG64(scenario.seed))
        children = root.spawn(len(scenario.traffic))
        tables = _all_source_tables(scenario)
        self._sources = [_SourceDraws(t, rng, self.end_ms) for t, rng in zip(tables, children)]
        # which sources must draw for a window: one comparison over all of them
        self._drawn_to = np.array([s.drawn_to_ms for s in self._sources], dtype=np.int64)
        self._runs = [_Run.of([_explicit_arrivals(scenario.calls, self.end_ms)], [-1])]
        # Merging has a fixed cost per call of `chunk`; merging ~one draw block of all sources
        # at a time and slicing it keeps tiny windows cheap.  Ids do not depend on it.
        busy = sum(t.calls_per_hour for t in tables if t.drawable)
        self._merge_ahead_ms = _cells_per_draw(busy) * GRID_MS
        self._ready = Arrivals.empty()  # merged and numbered, not yet handed out
        self._ready_to_ms = 0  # every call before this instant is numbered
        self._position_ms = 0
        self._next_call_id = 1

    def chunk(self, t0_ms: int, t1_ms: int) -> Arrivals:
        """Arrivals with t0 <= t < t1 (and t < end), sorted by (t_ms, call_id), call_ids set.

        Raises ValueError unless t0 is where the previous window ended (0 at first) and
        t1 >= t0: skipping or repeating a window would silently lose or duplicate calls.
        """
        if t0_ms != self._position_ms:
            raise ValueError(f"chunk must start at {self._position_ms} ms, got {t0_ms} ms")
        if t1_ms < t0_ms:
            raise ValueError(f"chunk end {t1_ms} ms is before its start {t0_ms} ms")
        self._position_ms = t1_ms
        until = min(t1_ms, self.end_ms)
        if until > self._ready_to_ms:
            ahead = min(self.end_ms, self._ready_to_ms + self._merge_ahead_ms)
            self._number_until(max(until, ahead))
        cut = int(np.searchsorted(self._ready.t_ms, until, side="left"))
        batch = self._ready.take(slice(0, cut))
        self._ready = self._ready.take(slice(cut, None))
        return batch

    def window_end(self, t0_ms: int, t1_ms: int, max_calls: int) -> int:
        """Where to end a window from t0 (the position) so that it holds at most `max_calls`
        arrivals: t1 if [t0, t1) holds no more, else the instant of the first call beyond them
        (t0 + 1 when more than `max_calls` arrive at t0 itself: an instant is never split).

        Lets a caller bound a window's work and memory by its calls rather than its length;
        the calls drawn to find the cut are kept for the next `chunk`s.
        """
        if t0_ms != self._position_ms:
            raise ValueError(f"window must start at {self._position_ms} ms, got {t0_ms} ms")
        until = min(t1_ms, self.end_ms)
        while self._ready_to_ms < until and len(self._ready) <= max_calls:
            self._number_until(min(until, self._ready_to_ms + self._merge_ahead_ms))
        if len(self._ready) <= max_calls:
            return t1_ms
        beyond = int(self._ready.t_ms[max_calls])
        return t1_ms if beyond >= until else max(beyond, t0_ms + 1)

    def _number_until(self, until: int) -> None:
        """Merge and number every call in [ready_to, until) after the ones already ready."""
        due = np.flatnonzero(self._drawn_to < until)
        if len(due):
            parts, ranks = [], []
            for s in due.tolist():
                for block in self._sources[s].draw_to(until):
                    parts.append(block)
                    ranks.append(s)
                self._drawn_to[s] = self._sources[s].drawn_to_ms
            self._runs.append(_Run.of(parts, ranks))
        heads, rests = [], []
        for run in self._runs:
            head, rest = run.split(until)
            heads.append(head)
            if len(rest.calls):
                rests.append(rest)
        self._runs = rests
        merged = _merge_runs(heads, len(self._sources))
        merged.call_id = np.arange(self._next_call_id, self._next_call_id + len(merged), dtype=np.int64)
        self._next_call_id += len(merged)
        self._ready = Arrivals.concat([self._ready, merged]) if len(self._ready) else merged
        self._ready_to_ms = until

    def chunks(self) -> Iterator[tuple[int, int, Arrivals]]:
        """(t0, t1, arrivals) for successive `chunk_ms` windows from the position to the end."""
        while self._position_ms < self.end_ms:
            t0 = self._position_ms
            t1 = min(t0 + self.chunk_ms, self.end_ms)
            yield t0, t1, self.chunk(t0, t1)


def expected_calls(scenario: Scenario) -> float:
    """Expected number of arrivals over the whole run, for progress bars.

    Sum of calls_per_hour x duration over the sources that can produce calls, plus the
    explicit calls inside the run.
    """
    setup = scenario.setup
    hours = setup.end_ms / MS_PER_HOUR
    generated = sum(src.calls_per_hour * hours for src in _all_source_tables(scenario) if src.drawable)
    explicit = sum(1 for c in scenario.calls if 0 <= c.at_ms < setup.end_ms)
    return generated + explicit
