"""Every source's draw blocks, drawn round by round for all the sources due at once.

A source's calls are fixed by its own generator and its blocks (`_draws`): per block, the
generator calls below, in this order, with these arguments:

1. a flat source: `poisson(calls per cell × cells)`, n; a source with a rate profile:
   `poisson(expected calls of each run of cells in one local hour)` (`CellRates.hours`), n =
   their sum;
2. a flat source: `integers(0, cells × GRID_MS, size=n, dtype=int64)`, each call's ms within
   its block; a source with a rate profile: `integers(0, each call's run's length in ms,
   dtype=int64)`, its ms within its run;
3. the holding times (`HoldingDraw.sample`);
4. `integers(0, len(slots), size=n)`: each call's caller;
5. the prefix pick (`Groups.draw`: `integers(0, common, size=n)`, or `Weighted.draw`);
6. `integers(0, largest scale, size=n, dtype=int64)`: the trailing digits
   (`Prefixes.draw_trailing`);
7. toll-free only: `integers(0, len(to_numbers), size=n)`: the org number called.

A round makes exactly those calls, source after source, and nothing else per source: a
call whose range holds one value (`integers(0, 1)`: one caller, one candidate, a whole
number) or whose size is 0 draws nothing from the generator, so it is left out.  What the
draws become -- times sorted within each block, whole-ms holding times, callers, numbers --
is then computed once for all the round's calls from the tables of every source laid end to
end (`SourceIndex`), element by element the arithmetic of `_draws` and `_numbers`
(tests/simulator/traffic/test_batch.py holds it to each source's blocks drawn alone).  A
round costs each source its generator calls (~20 µs for a block of a few hundred calls, most of it inside
numpy) and whole-array work over its calls, instead of a dozen array steps per source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rating_core import Arrivals, CallKind
from ._draws import (CELLS_PER_WEEK, GRID_MS, MAX_FLAT_CELLS_PER_DRAW, SourceTables, cells_per_draw,
                     whole_ms)
from ._numbers import Groups, Prefixes, Weighted

# A call's ms within its block is below MAX_FLAT_CELLS_PER_DRAW x GRID_MS (a year, < 2**35; a
# profile's blocks are a week at most):
# the block's index above those bits sorts every block's times in one sort, blocks in order
# (2**28 blocks a round at most: far more than there are sources).
_IN_BLOCK_BITS = 35
assert CELLS_PER_WEEK <= MAX_FLAT_CELLS_PER_DRAW and MAX_FLAT_CELLS_PER_DRAW * GRID_MS <= 1 << _IN_BLOCK_BITS
_IN_BLOCK = (1 << _IN_BLOCK_BITS) - 1

_TOLL_FREE = int(CallKind.TOLL_FREE)


@dataclass(frozen=True)
class SourceIndex:
    """Every source's callers, prefix groups, prefixes and toll-free numbers laid end to end.

    Source s's caller slot i is `slot_base[s] + i`: its user `users[...]` and its group
    `slot_group[...]`, a group of `groups` whose members are places in `prefixes`.  Tables
    shared by several sources (the tariffs' prefixes, most often) are laid out once.  A
    weighted table is one group holding its entries in order: the place its pick draws,
    below the group's size, is the member `Groups.member` finds.  Source s's toll-free
    numbers start at `to_base[s]` in `to_numbers`.
    """

    org: NDArray[np.int32]
    kind: NDArray[np.int8]
    slot_base: NDArray[np.int64]
    users: NDArray[np.int32]
    slot_group: NDArray[np.intp]
    groups: Groups
    prefixes: Prefixes
    to_base: NDArray[np.int64]
    to_numbers: NDArray[np.int64]

    @classmethod
    def of(cls, tables: Sequence[SourceTables]) -> SourceIndex:
        def joined(parts: list, dtype: type) -> NDArray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)

        prefix_base: dict[int, int] = {}
        group_base: dict[tuple[int, int], int] = {}
        values, scales, counts, offsets, members = [], [], [], [], []
        group_bases = []
        n_prefixes = n_groups = n_members = 0
        for src in tables:
            prefixes, groups = src.prefixes, src.groups
            pbase = prefix_base.get(id(prefixes))
            if pbase is None:
                pbase = prefix_base[id(prefixes)] = n_prefixes
                values.append(prefixes.value)
                scales.append(prefixes.scale)
                n_prefixes += len(prefixes.value)
            gbase = group_base.get((id(groups), id(prefixes)))
            if gbase is None:
                gbase = group_base[(id(groups), id(prefixes))] = n_groups
                if isinstance(groups, Weighted):
                    entries = len(prefixes.value)
                    counts.append([entries])
                    offsets.append([n_members])
                    members.append(pbase + np.arange(entries))
                else:
                    counts.append(groups.count)
                    offsets.append(n_members + groups.offset)
                    members.append(pbase + groups.members)
                n_members += len(members[-1])
                n_groups += len(counts[-1])
            group_bases.append(gbase)
        slots = np.array([len(t.slots) for t in tables], dtype=np.int64)
        to_count = np.array([len(t.to_numbers) for t in tables], dtype=np.int64)
        slot_group = (np.repeat(np.array(group_bases, dtype=np.intp), slots)
                      + joined([t.slot_group for t in tables], np.intp))
        return cls(
            org=np.array([t.org for t in tables], dtype=np.int32),
            kind=np.array([int(t.kind) for t in tables], dtype=np.int8),
            slot_base=np.cumsum(slots) - slots,
            users=joined([t.slots for t in tables], np.int32),
            slot_group=slot_group,
            groups=Groups(members=joined(members, np.intp), offset=joined(offsets, np.intp),
                          count=joined(counts, np.intp), common=0),
            prefixes=Prefixes(digits=(), value=joined(values, np.int64),
                              scale=joined(scales, np.int64)),
            to_base=np.cumsum(to_count) - to_count,
            to_numbers=joined([t.to_numbers for t in tables], np.int64),
        )


class _Zeros:
    """Read-only views of one zero array: the draws a source need not make."""

    def __init__(self) -> None:
        self._zeros = np.zeros(0, dtype=np.int64)

    def __call__(self, n: int) -> NDArray[np.int64]:
        if n > len(self._zeros):
            self._zeros = np.zeros(max(n, 2 * len(self._zeros)), dtype=np.int64)
            self._zeros.flags.writeable = False
        return self._zeros[:n]


@dataclass
class _Round:
    """The raw draws of one round, job by job (a job: one block of one source)."""

    sources: list[int]
    first_cell: list[int]
    cells: list[int]
    calls: list[int]
    in_block: list[NDArray[np.int64]]  # each call's ms in its block, not sorted
    holding: list[NDArray[np.float64]]
    slot: list[NDArray[np.int64]]
    pick: list[NDArray[np.int64]]
    trailing: list[NDArray[np.int64]]
    to_pick: list[NDArray[np.int64]]


class SourceDraws:
    """Every source's position on its grid, and rounds of draws for the sources due.

    `drawn_to[s]`: every call of source s before this instant has been drawn (sources with
    nothing to draw start at the end).  `draw(due, until)` draws each due source's next
    blocks, block after block, until each has drawn to `until`.
    """

    def __init__(self, tables: Sequence[SourceTables], rngs: Sequence[np.random.Generator],
                 end_ms: int) -> None:
        self._tables = list(tables)
        self._rngs = list(rngs)
        self._index = SourceIndex.of(self._tables)
        self._end_ms = end_ms
        self._zeros = _Zeros()
        self._phase = np.array([t.rates.phase_ms for t in tables], dtype=np.int64)
        # flat sources draw blocks of one length, a function of their rate (`cells_per_draw`)
        self._flat_cells = [cells_per_draw(t.calls_per_hour) if t.profile is None else 0
                            for t in tables]
        self._next_cell = np.zeros(len(self._tables), dtype=np.int64)
        # the cell after the one the end lies in: calls of later cells are drawn, not kept
        self._end_cell = (-((-end_ms - self._phase) // GRID_MS)).tolist()
        drawable = np.array([t.drawable for t in tables], dtype=bool)
        self.drawn_to = np.where(drawable, 0, end_ms).astype(np.int64)

    def draw(self, due: NDArray[np.intp], until: int) -> tuple[Arrivals, NDArray[np.int32]]:
        """The next blocks of the sources `due` (in increasing order), until each has drawn to
        `until`: their calls in [0, end) (call_id unset) and each call's source index, each
        source's calls in draw order (so in time order), not sorted across sources."""
        batches, ranks = [], []
        while len(due):
            calls, rank = self._draw_round(due.tolist())
            batches.append(calls)
            ranks.append(rank)
            due = due[self.drawn_to[due] < until]
        if len(batches) == 1:
            return batches[0], ranks[0]
        return Arrivals.concat(batches), np.concatenate(ranks)

    def _draw_round(self, sources: list[int]) -> tuple[Arrivals, NDArray[np.int32]]:
        """One block of each of `sources`: the generator calls, then the arrays built."""
        raw = self._generate(sources)
        calls, rank = self._build(raw)
        jobs = np.array(sources, dtype=np.intp)
        self._next_cell[jobs] += np.array(raw.cells, dtype=np.int64)
        self.drawn_to[jobs] = self._next_cell[jobs] * GRID_MS - self._phase[jobs]
        return calls, rank

    def _generate(self, sources: list[int]) -> _Round:
        """Each source's generator calls for its next block, in the order the module
        docstring gives: nothing but these calls may touch a generator."""
        tables, rngs = self._tables, self._rngs
        flat_cells, next_cell = self._flat_cells, self._next_cell.tolist()
        raw = _Round(sources, [], [], [], [], [], [], [], [], [])
        zeros, end_cell = self._zeros, self._end_cell
        for s in sources:
            src, rng = tables[s], rngs[s]
            first = next_cell[s]
            if src.profile is None:
                cells = flat_cells[s]
                n = int(rng.poisson(src.rates.flat * cells))
            else:
                cells = src.rates.cells_from(first)
                lengths, expected = src.rates.hours(first, cells)
                counts = rng.poisson(expected)
                n = int(counts.sum())
            raw.first_cell.append(first)
            raw.cells.append(cells)
            if n == 0:
                raw.calls.append(0)
                continue
            if src.profile is None:
                in_block = rng.integers(0, cells * GRID_MS, size=n, dtype=np.int64)
            else:  # uniform within its part of a local hour
                span = (lengths * GRID_MS).repeat(counts)
                in_block = (np.cumsum(lengths) * GRID_MS).repeat(counts) - span
                in_block += rng.integers(0, span, dtype=np.int64)
            holding = src.holding.sample(rng, n)
            n_slots = len(src.slots)
            # one caller: `integers(0, 1)` has one value and draws nothing
            slot = rng.integers(0, n_slots, size=n) if n_slots > 1 else zeros(n)
            pick = src.groups.draw(rng, src.slot_group, slot)
            trailing = src.prefixes.draw_trailing(rng, n)
            to_pick = None
            if src.kind == CallKind.TOLL_FREE:
                n_to = len(src.to_numbers)
                to_pick = rng.integers(0, n_to, size=n) if n_to > 1 else zeros(n)
            if first + cells > end_cell[s]:  # drawn in full, kept up to the end's cell
                # the calls before the end's cell, in time order, take the first draws of the
                # other columns (`_build` pairs each block's sorted times with them in order)
                in_block = in_block[in_block < (end_cell[s] - first) * GRID_MS]
                n = len(in_block)
                holding, slot, pick, trailing = holding[:n], slot[:n], pick[:n], trailing[:n]
                to_pick = None if to_pick is None else to_pick[:n]
            raw.calls.append(n)
            raw.in_block.append(in_block)
            raw.holding.append(holding)
            raw.slot.append(slot)
            raw.pick.append(pick)
            raw.trailing.append(trailing)
            if to_pick is not None:
                raw.to_pick.append(to_pick)
        return raw

    def _build(self, raw: _Round) -> tuple[Arrivals, NDArray[np.int32]]:
        """The round's calls from its draws, in job order, each job's calls sorted by time
        (call_id unset), and each call's source; calls outside [0, end) left out.

        A value all the round's jobs share (theirs, when the round is one busy source's
        block; their org's, when one org has them all) is taken as a scalar.
        """
        index = self._index
        calls = np.array(raw.calls, dtype=np.int64)
        if not calls.any():
            return Arrivals.empty(), np.empty(0, dtype=np.int32)
        sources = np.array(raw.sources, dtype=np.int64)
        in_block = _joined(raw.in_block)
        block_start = np.array(raw.first_cell, dtype=np.int64) * GRID_MS - self._phase[sources]
        one = len(sources) == 1
        if one:
            t_ms = block_start[0] + np.sort(in_block)
        else:
            # sorted within each block: the job is the key's high part, so jobs keep their place
            job = np.arange(len(sources), dtype=np.int64) << _IN_BLOCK_BITS
            key = np.sort(np.repeat(job, calls) | in_block)
            t_ms = np.repeat(block_start, calls) + (key & _IN_BLOCK)
        # drawn in full, kept in [0, end): a first cell begun before the start, a last block
        # drawn past the end
        kept: NDArray[np.bool_] | slice = slice(None)
        if int(t_ms.min()) < 0 or int(t_ms.max()) >= self._end_ms:
            kept = (t_ms >= 0) & (t_ms < self._end_ms)
            t_ms = t_ms[kept]
        n = len(t_ms)

        def each(per_job: NDArray) -> NDArray:  # each call's value, or the one of them all
            if one or not (per_job != per_job[0]).any():
                return per_job[0]
            return np.repeat(per_job, calls)[kept]

        source = each(sources)
        slot = each(index.slot_base[sources]) + _joined(raw.slot)[kept]
        group = index.slot_group[slot]
        prefix = index.groups.member(group, _joined(raw.pick)[kept])
        number = index.prefixes.number(prefix, _joined(raw.trailing)[kept])
        kind = each(index.kind[sources])
        to_number, from_number = number, np.zeros(n, dtype=np.int64)
        if raw.to_pick:  # called from the number drawn, at one of the org's numbers
            to_pick = _joined(raw.to_pick)  # the toll-free jobs' calls, drawn
            toll_free = np.broadcast_to(kind == _TOLL_FREE, (n,))
            if isinstance(kept, np.ndarray):
                to_pick = to_pick[kept[np.repeat(index.kind[sources] == _TOLL_FREE, calls)]]
            to_base = index.to_base[source if np.ndim(source) == 0 else source[toll_free]]
            to_number = number.copy()
            to_number[toll_free] = index.to_numbers[to_base + to_pick]
            from_number[toll_free] = number[toll_free]
        batch = Arrivals(
            call_id=np.zeros(n, dtype=np.int64),
            t_ms=t_ms,
            org=_column(each(index.org[sources]), n),
            user=index.users[slot],
            kind=_column(kind, n),
            to_number=to_number,
            from_number=from_number,
            holding_ms=whole_ms(_joined(raw.holding)[kept]),
        )
        return batch, _column(source, n).astype(np.int32)


def _joined(parts: list[NDArray]) -> NDArray:
    """The parts end to end (the one part itself, not a copy)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _column(value: NDArray, n: int) -> NDArray:
    """A per-call column from each call's value, or from the one value of them all."""
    return np.full(n, value) if np.ndim(value) == 0 else value
