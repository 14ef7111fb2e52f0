"""Probes of the engine's crossing paths (`rating_core._crossings`: `search`, `by_millisecond`)
on every case family of the differential tests, the paths forced (`crossing_rows=0`) and
windows halved (`split_rows`): SPEC §3 "Vectorised batch processing must give exactly the
results of applying these rules one event at a time"."""

from __future__ import annotations

import tracemalloc

import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st

import rating_core._crossings as crossings
from rating_core._crossings import Charges, search

from ..strategies import below_increment_cases, busy_recharge_cases, expiry_cases, recharge_cases, windowed_cases
from .test_differential import (
    CASES,
    EXAMPLES,
    engine_matches_reference_in_windows,
    engine_matches_reference_with_lots,
    server_matches_reference,
    windowed,
)

FORCED = st.fixed_dictionaries({"crossing_rows": st.just(0), "split_rows": st.sampled_from((16_384, 4, 1))})


@st.composite
def ticked(draw, cases):
    """A case cut as a server's ticks cut time: runs of 1 ms windows around arrivals (charges
    and hang-ups fall on them), then ticks of a few seconds, off any second."""
    setup, arrivals = draw(cases)
    cuts = set()
    for t in draw(st.lists(st.sampled_from([int(x) for x in arrivals.t_ms] or [0]), max_size=4)):
        cuts |= set(range(t - 2, t + draw(st.integers(1, 40))))
        cuts |= {t + 1000 * k for k in range(1, 8)}
    tick = draw(st.sampled_from((1_500, 2_500, 6_001, 59_999)))
    phase = draw(st.integers(0, tick - 1))
    cuts |= set(range(phase, setup.end_ms, tick))
    return setup, arrivals, sorted(c for c in cuts if 0 < c < setup.end_ms)


@settings(CASES, max_examples=max(EXAMPLES // 3, 50))
@given(windowed_cases(), FORCED)
def test_any_case_with_the_crossing_paths_forced(case, tuning):
    """Any rating case (pools, licences, toll-free, zero rates, cards, ends on boundaries)."""
    note(f"tuning={tuning}")
    engine_matches_reference_in_windows(case, **tuning)


@settings(CASES, max_examples=max(EXAMPLES // 2, 50))
@given(st.one_of(windowed(recharge_cases()), windowed(below_increment_cases()), windowed(expiry_cases())), FORCED)
def test_recharging_trailing_and_expiring_orgs_with_the_crossing_paths_forced(case, tuning):
    """Orgs recharging every few increments, stuck below their trigger, or holding lots that
    expire under load: CDRs, events, balances and lots as the reference's."""
    setup, arrivals, cuts = case
    note(f"cuts={cuts} tuning={tuning}")
    engine_matches_reference_with_lots(setup, arrivals, cuts, **tuning)


@settings(CASES, max_examples=max(EXAMPLES // 6, 30))
@given(st.one_of(windowed(below_increment_cases()), windowed(busy_recharge_cases()), ticked(busy_recharge_cases())),
       FORCED, st.sampled_from((1, 1_000, 10**9)))
def test_orgs_fed_as_a_server_with_the_crossing_paths_forced(case, tuning, watch_ms):
    """Trailing and busy orgs fed as `callsim serve` feeds the engine: hang-ups told as they
    happen, in random windows or in ticks (`ticked`)."""
    setup, arrivals, cuts = case
    note(f"cuts={cuts} tuning={tuning} watch_ms={watch_ms}")
    server_matches_reference(setup, arrivals, cuts, watch_ms=watch_ms, **tuning)


@settings(CASES, max_examples=max(EXAMPLES // 6, 30))
@given(ticked(below_increment_cases()), FORCED)
def test_trailing_orgs_in_ticks_with_the_crossing_paths_forced(case, tuning):
    setup, arrivals, cuts = case
    note(f"cuts={cuts} tuning={tuning}")
    engine_matches_reference_with_lots(setup, arrivals, cuts, **tuning)


def test_the_search_holds_cells_for_the_window_not_for_an_hour_long_increment(monkeypatch):
    """2,000 orgs, three charges each on "1/3600" billing in a window of 2.5 s (a `--speed 250`
    tick): each call's second increment is a train of one charge, an hour apart from the
    next.  The search's arrays are as long as the window's seconds (a few cells an org), not
    as its longest increment (7,200 cells an org: 115 MB an array, over a gigabyte in all
    with 10,000 orgs).  Step 3's millisecond cells (`CELLS` of them at once, by design) are capped
    low to leave them out."""
    monkeypatch.setattr(crossings, "CELLS", 16_000)
    n = 2_000
    org = np.repeat(np.arange(n), 3)
    ones = np.ones(len(org), dtype=np.int64)
    charges = Charges(org, np.tile(np.array([0, 100, 200]), n), ones, np.full(len(org), 3_600), 2 * ones,
                      5 * ones, 7 * ones)
    orgs = np.arange(n)
    tracemalloc.start()
    try:
        found = search(orgs, np.full(n, 30), np.full(n, 10), np.full(n, 100), charges, 0, 2_500, n, rows_per_cell=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, peak
    # 15 at 0, 100, 200 (balance 15), 7 at 1,000: 22 reaches the first threshold (30 - 10 + 1)
    assert found.solved.all() and found.t.tolist() == [1_000] * n and found.balance.tolist() == [108] * n


def test_the_search_holds_cells_for_some_orgs_at_a_time_not_for_every_org_and_second() -> None:
    """10,000 orgs, each one call billed per second through an hour (as many charges as
    seconds: each qualifies at the default `crossing_rows`): their per-second arrays are built
    a few hundred orgs at a time (`CELLS`), not 10,000 × 3,600 cells at once (827 MB before),
    with each org's recharges unchanged."""
    n, hour = 10_000, 3_600_000
    org = np.arange(n, dtype=np.int64)
    ones = np.ones(n, dtype=np.int64)
    charges = Charges(org, (org * 37) % 1_000, ones, ones, np.full(n, 3_600), 1_000 * ones, 1_000 * ones)
    balance, below, amount = np.full(n, 2_000_000), np.full(n, 1_000_000), np.full(n, 500_000)
    tracemalloc.start()
    try:
        found = search(org, balance, below, amount, charges, 0, hour, n, rows_per_cell=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, peak
    # 1,001 charges of 1,000 reach the first threshold (1,000,001): each org's 1,001st second
    first = found.t[np.flatnonzero(np.r_[True, found.org[1:] != found.org[:-1]])]
    assert found.solved.all() and len(found.t) == 6 * n
    assert first.tolist() == (1_000 * 1_000 + (org * 37) % 1_000).tolist()
