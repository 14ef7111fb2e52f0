"""Rounds of many sources' draws are exactly each source's draws made alone.

`reference_block` is one source's block drawn on its own, step by step as SPEC's model reads
(the generator calls in the order `simulator.traffic._batch` documents, then the arrays built
from them for that block alone).  Random sets of sources -- every type, one caller or many,
countries with one candidate or several, weighted tables with whole numbers, per-call bounds,
every holding distribution, rate profiles from a start between two minutes, rates from none
to thousands an hour -- drawn in rounds up to random instants must give every source the
calls of its own blocks, and leave every generator where its own blocks leave it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import CallKind, Org, Plans, RatingSetup, Tariff, User
from simulator.scenario import Destination, Holding, RateProfile, TrafficSpec
from simulator.traffic._batch import SourceDraws
from simulator.traffic._draws import GRID_MS, SourceTables, all_source_tables, cells_per_draw
from simulator.traffic._numbers import Weighted
from simulator.units import MAX_DURATION_MS
from tests.simulator.test_traffic import FakeScenario

HOUR = 3_600_000
LICENSES = frozenset({"phone_system", "domestic_calling_plan", "audio_conferencing"})
COLUMNS = ("t_ms", "org", "user", "kind", "to_number", "from_number", "holding_ms")


def _tariff(prefix: str, country: str) -> Tariff:
    return Tariff(prefix=prefix, per_minute_micro=20_000, first_s=60, next_s=60, country=country,
                  zone="A")


# org 0: users 0-3 in the US, 4-5 in GB, three toll-free numbers; org 1: user 6 in FR, one
# number; org 2: user 7 in the US, no number.  FR has one tariff, so one candidate.
ORG_USERS = ((0, 1, 2, 3, 4, 5), (6,), (7,))


def setup(start: datetime, end_ms: int) -> RatingSetup:
    def users(country: str, n: int, first: int) -> tuple[User, ...]:
        return tuple(User(f"{country}-{first + i}", country, LICENSES) for i in range(n))

    return RatingSetup(
        start=start, end_ms=end_ms, currency="USD", plans=Plans(),
        tariffs=(_tariff("1", "US"), _tariff("1212", "US"), _tariff("44", "GB"),
                 _tariff("4420", "GB"), _tariff("33", "FR"), _tariff("4930123456789", "DE")),
        toll_free_tariffs=(Tariff(prefix="44", per_minute_micro=50_000, first_s=60, next_s=60),),
        orgs=(Org("a", users("US", 4, 0) + users("GB", 2, 4),
                  toll_free_numbers=("+18005550100", "+18005550101", "+448081570000")),
              Org("b", users("FR", 1, 6), toll_free_numbers=("+18005550102",)),
              Org("c", users("US", 1, 7))),
    )


# --------------------------------------------------------------------------- the reference


def reference_block(src: SourceTables, rng: np.random.Generator, first_cell: int,
                    n_cells: int) -> dict[str, np.ndarray]:
    """One block of one source, drawn alone."""
    block_start = first_cell * GRID_MS - src.rates.phase_ms
    if src.profile is None:  # one count for the block, times uniform in it
        n = int(rng.poisson(src.rates.flat * n_cells))
        t_ms = block_start + rng.integers(0, n_cells * GRID_MS, size=n, dtype=np.int64)
    else:  # a count per run of cells in one local hour, times uniform in their run
        rate = src.rates.expected(first_cell, n_cells)  # each cell's, from its own hour
        hour = src.rates.profile.hour_of_week(src.rates.epoch0_ms + (first_cell + np.arange(n_cells)) * GRID_MS)
        run_start = np.flatnonzero(np.diff(hour, prepend=-1))
        run_cells = np.diff(np.append(run_start, n_cells))
        counts = rng.poisson(rate[run_start] * run_cells)
        n = int(counts.sum())
        t_ms = block_start + np.repeat(run_start * GRID_MS, counts)
        t_ms += rng.integers(0, np.repeat(run_cells * GRID_MS, counts), dtype=np.int64)
    t_ms.sort()
    holding = src.holding
    if holding.kind == "exponential":
        ms = rng.exponential(holding.mean_ms, size=n)
    elif holding.kind == "lognormal":
        ms = np.minimum(rng.lognormal(holding.mu, holding.sigma, size=n), MAX_DURATION_MS)
    else:
        ms = holding._inverse_cdf(rng.random(n))
    slot = rng.integers(0, len(src.slots), size=n)
    groups, group = src.groups, src.slot_group[slot]
    if isinstance(groups, Weighted):
        u = rng.random(n) * groups.cumulative[-1]
        idx = np.minimum(np.searchsorted(groups.cumulative, u, side="right"), groups.last)
    else:
        count = groups.count[group]
        k = rng.integers(0, groups.common, size=n) % count if groups.common else rng.integers(0, count)
        idx = groups.members[groups.offset[group] + k]
    scale = src.prefixes.scale[idx]
    trailing = rng.integers(0, int(src.prefixes.scale.max()), size=n, dtype=np.int64)
    number = src.prefixes.value[idx] * scale + trailing % scale
    if src.kind == CallKind.TOLL_FREE:
        to_number = src.to_numbers[rng.integers(0, len(src.to_numbers), size=n)]
        from_number = number
    else:
        to_number, from_number = number, np.zeros(n, dtype=np.int64)
    return {"t_ms": t_ms, "org": np.full(n, src.org, dtype=np.int32), "user": src.slots[slot],
            "kind": np.full(n, int(src.kind), dtype=np.int8), "to_number": to_number,
            "from_number": from_number, "holding_ms": np.maximum(np.rint(ms), 1).astype(np.int64)}


def reference_source(src: SourceTables, rng: np.random.Generator, until: int,
                     end_ms: int) -> dict[str, np.ndarray]:
    """A source's calls in [0, end), its blocks drawn alone until one reaches `until`."""
    blocks = []
    first, drawn_to = 0, 0 if src.drawable else end_ms
    while drawn_to < until:
        cells = cells_per_draw(src.calls_per_hour) if src.profile is None else src.rates.cells_from(first)
        blocks.append(reference_block(src, rng, first, cells))
        first += cells
        drawn_to = first * GRID_MS - src.rates.phase_ms
    calls = {c: np.concatenate([b[c] for b in blocks]) if blocks else np.empty(0) for c in COLUMNS}
    kept = (calls["t_ms"] >= 0) & (calls["t_ms"] < end_ms)
    return {c: v[kept] for c, v in calls.items()}


# --------------------------------------------------------------------------- random sources


WEEK = st.lists(st.sampled_from([0.0, 0.3, 1.0, 4.0]), min_size=168, max_size=168)
HOLDINGS = st.sampled_from([
    None, Holding.lognormal(120_000, 0.9), Holding.lognormal(3_000_000_000_000, 4.0),
    Holding.inverse_cdf((0.0, 0.5, 1.0), (0, 60_000, 600_000)),
    Holding.histogram((0, 30_000, 60_000, 300_000), (10.0, 0.0, 30.0)),
])
WEIGHTED = st.sampled_from([
    None, None,
    (Destination("1212", 3.0), Destination("1415", 1.0), Destination("1312", 0.0)),
    (Destination("442071234567", 1.0, number=True), Destination("12125550100", 2.0, number=True)),
    (Destination("44", 1.0), Destination("4930123456", 1.0, number=True)),
])


@st.composite
def sources(draw: st.DrawFn) -> TrafficSpec:
    kind = draw(st.sampled_from(["domestic", "international", "conference_dial_out", "toll_free"]))
    org = draw(st.integers(0, 2))
    if kind == "toll_free":
        users: tuple[int, ...] = ()
    else:
        # now and then no caller at all: a source with nothing to draw
        users = tuple(draw(st.lists(st.sampled_from(ORG_USERS[org]), min_size=draw(st.sampled_from([0, 1, 1, 1])),
                                    max_size=4, unique=True)))
    rate = draw(st.sampled_from([0.0, 0.05, 3.0, 40.0, 40.0, 600.0, 600.0, 5_000.0]))
    profile = None
    if draw(st.booleans()):
        profile = RateProfile(tuple(w * rate for w in draw(WEEK)),
                              draw(st.sampled_from([0, -5 * HOUR, 330 * 60_000])))
        rate = profile.peak
    weighted = draw(WEIGHTED)
    destinations = draw(st.sampled_from([None, ("1212", "33"), ("4930123456789",)]))
    if weighted is not None:
        destinations = tuple(d.digits for d in weighted)
    return TrafficSpec(org, kind, rate, 180_000, users, destinations, profile, draw(HOLDINGS),
                       weighted)


def tables_of(scenario: FakeScenario, per_call_bounds: list[bool]) -> list[SourceTables]:
    """The scenario's tables, some uniform picks made with one bound per call (as groups
    whose sizes have no common multiple small enough for one draw are)."""
    tables = all_source_tables(scenario)
    return [dataclasses.replace(t, groups=dataclasses.replace(t.groups, common=0))
            if per_call and not isinstance(t.groups, Weighted) else t
            for t, per_call in zip(tables, per_call_bounds)]


@settings(max_examples=100, deadline=None)
@given(specs=st.lists(sources(), min_size=1, max_size=8),
       per_call=st.lists(st.booleans(), min_size=8, max_size=8),
       start_ms=st.sampled_from([0, 17_500, 13 * HOUR + 59_999]),
       end_ms=st.one_of(st.integers(1, 4 * 24 * HOUR), st.sampled_from([2 * HOUR, 3 * 24 * HOUR + 1])),
       cuts=st.lists(st.floats(0.0, 1.0), max_size=4), seed=st.integers(0, 2**32))
def test_sources_drawn_in_rounds_draw_what_each_draws_alone(
        specs: list[TrafficSpec], per_call: list[bool], start_ms: int, end_ms: int,
        cuts: list[float], seed: int) -> None:
    start = datetime(2026, 11, 4, tzinfo=timezone.utc) + timedelta(milliseconds=start_ms)
    scenario = FakeScenario("batch", seed, setup(start, end_ms), tuple(specs))
    tables = tables_of(scenario, per_call)
    alone = np.random.Generator(np.random.PCG64(seed)).spawn(len(tables))
    together = np.random.Generator(np.random.PCG64(seed)).spawn(len(tables))
    draws = SourceDraws(tables, together, end_ms)

    got: list[dict[str, list[np.ndarray]]] = [{c: [] for c in COLUMNS} for _ in tables]
    for until in sorted(int(c * end_ms) for c in cuts) + [end_ms]:
        due = np.flatnonzero(draws.drawn_to < until)
        if not len(due):
            continue
        calls, rank = draws.draw(due, until)
        assert set(rank.tolist()) <= set(due.tolist())
        for s in due.tolist():
            mine = rank == s
            for c in COLUMNS:
                got[s][c].append(getattr(calls, c)[mine])

    for s, src in enumerate(tables):
        expected = reference_source(src, alone[s], end_ms, end_ms)
        for c in COLUMNS:
            mine = np.concatenate(got[s][c]) if got[s][c] else np.empty(0)
            np.testing.assert_array_equal(mine, expected[c], err_msg=f"source {s} {c}")
        assert together[s].bit_generator.state == alone[s].bit_generator.state, s
