"""`TrafficPlan`: the arrivals of a scenario window by window, numbered in SPEC §3 order.

Each source's calls come from `_draws` on its own fixed grid; this module merges them with
the explicit `[[calls]]` and numbers them: arrival order, and at one instant explicit calls in
file order, then generated calls in `[[traffic]]` order, each source in its own draw order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rating_core import Arrivals
from ..units import epoch_ms
from ._batch import SourceDraws
from ._draws import CELLS_PER_WEEK, GRID_MS, MS_PER_HOUR, TARGET_CALLS_PER_DRAW, all_source_tables

if TYPE_CHECKING:  # the loader is a sibling package; traffic only reads its objects
    from ..scenario import CallSpec, Scenario

__all__ = ["TrafficPlan", "expected_calls"]


def merge_ahead_ms(calls_per_hour: float) -> int:
    """How far ahead of the windows the sources' calls are merged and numbered: the span
    holding ~TARGET_CALLS_PER_DRAW calls at the sources' summed mean rate, one grid cell to a
    week.

    Merging has a fixed cost per call of `chunk` or `window_end`; merging ~a draw block's worth
    of calls at a time and slicing it keeps tiny windows cheap.  A quiet scenario (a few calls
    an hour over years) merges a week of its sources' calls at once rather than a day: a
    seventh of the merges, the same calls (at most ~TARGET_CALLS_PER_DRAW ahead).
    """
    per_cell = calls_per_hour * GRID_MS / MS_PER_HOUR
    if per_cell <= 0:
        return CELLS_PER_WEEK * GRID_MS
    return max(1, math.ceil(min(TARGET_CALLS_PER_DRAW / per_cell, CELLS_PER_WEEK))) * GRID_MS


def _spec_order(t_ms: NDArray[np.int64], rank: NDArray[np.int32], sources: int) -> NDArray[np.intp]:
    """The order of calls by (time, rank), their given order among equal pairs (SPEC §3:
    the rank is -1 for explicit calls, else the `[[traffic]]` index)."""
    if len(t_ms) and int(t_ms.max()) < 2**62 // (sources + 2):
        # one int64 key; a stable sort of concatenated sorted runs merges them in linear time
        return np.argsort(t_ms * (sources + 2) + (rank.astype(np.int64) + 1), kind="stable")
    return np.lexsort((rank, t_ms))


@dataclass
class _Run:
    """Drawn calls not numbered yet, in SPEC §3 order: by time, then `rank` (the part: -1 for
    explicit calls, else the `[[traffic]]` index), then draw order."""

    calls: Arrivals
    rank: NDArray[np.int32]

    @classmethod
    def of(cls, calls: Arrivals, rank: NDArray[np.int32], sources: int) -> _Run:
        """A run of calls given each part's calls in time order, parts in rank order or each
        rank's calls in draw order."""
        order = _spec_order(calls.t_ms, rank, sources)
        return cls(calls.take(order), rank[order])

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
    return calls.take(_spec_order(calls.t_ms, np.concatenate([r.rank for r in runs]), sources))


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
        tables = self._tables = all_source_tables(scenario)
        self._sources = SourceDraws(tables, children, self.end_ms)
        explicit = _explicit_arrivals(scenario.calls, self.end_ms)
        self._runs = [_Run(explicit, np.full(len(explicit), -1, dtype=np.int32))]
        # Ids do not depend on how far ahead calls are merged (see `merge_ahead_ms`).
        busy = sum(t.mean_per_hour for t in tables if t.drawable)
        self._merge_ahead_ms = merge_ahead_ms(busy)
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
        # which sources must draw for a window: one comparison over all of them
        due = np.flatnonzero(self._sources.drawn_to < until)
        if len(due):
            calls, rank = self._sources.draw(due, until)
            # one source's calls, in draw order, are in time order
            self._runs.append(_Run(calls, rank) if len(due) == 1
                              else _Run.of(calls, rank, len(self._tables)))
        heads, rests = [], []
        for run in self._runs:
            head, rest = run.split(until)
            heads.append(head)
            if len(rest.calls):
                rests.append(rest)
        self._runs = rests
        merged = _merge_runs(heads, len(self._tables))
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

    Each source's rate integrated over the run (`calls_per_hour` x duration when flat), over
    the sources that can produce calls, plus the explicit calls inside the run.
    """
    setup = scenario.setup
    start = epoch_ms(setup.start)
    generated = sum(src.expected_calls(start, setup.end_ms) for src in all_source_tables(scenario))
    explicit = sum(1 for c in scenario.calls if 0 <= c.at_ms < setup.end_ms)
    return generated + explicit
