"""Lot expiries inside windows against the reference: lots bought at t = 0 that expire on a
refill, expiries straddling a refill, lots bought late on 02-28 expiring in the window of
02-29 purchases (put ahead), lots expiring at one instant, the next instant due; and
the grouped running minimum the bulk paths count recharges and total rests with."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from rating_core._model import CallKind, Credits, Org, Plans, RatingSetup, Tariff, User
from ..reference import lot_expiry_ms, month_starts_ms, run_reference
from ..strategies import (
    COMMON_LICENSES,
    EARLY_MS,
    arrivals_from_rows,
    expiry_anchors_ms,
    expiry_cases,
    integer,
    pick,
    window_cuts,
)
from .test_differential import engine_matches_reference_with_lots, server_matches_reference, tunings

N = max(int(os.environ.get("CALLSIM_DIFF_EXAMPLES", "300")) // 3, 50)
CASES = settings(max_examples=N, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def cases(draw):
    """An `expiry_cases` case of up to 8 orgs, cut on its expiries and last refills, and a tuning."""
    setup, arrivals = draw(expiry_cases(max_orgs=8))
    bought = [t for t in arrivals.t_ms.tolist() if t <= EARLY_MS]
    interesting = sorted(set(expiry_anchors_ms(setup, bought)) | set(month_starts_ms(setup.start, setup.end_ms)[-2:]))
    cuts = set(draw(window_cuts(setup, arrivals)))
    for _ in range(integer(draw, 0, 4)):
        cuts.add(pick(draw, interesting) + pick(draw, (0, 1, -1)))
    return setup, arrivals, sorted(c for c in cuts if 0 < c < setup.end_ms), draw(tunings())


@CASES
@given(cases())
def test_expiries_in_windows(case):
    """The engine fed in windows cut on expiries and refills, down every path the tuning picks."""
    setup, arrivals, cuts, tuning = case
    note(f"cuts={cuts} tuning={tuning}")
    engine_matches_reference_with_lots(setup, arrivals, cuts, **tuning)


@CASES
@given(cases(), st.sampled_from((1, 1_000, 10**9)))
def test_expiries_as_server(case, watch_ms):
    """The same cases fed as `callsim serve` feeds the engine (hang-ups told as they happen)."""
    setup, arrivals, cuts, tuning = case
    note(f"cuts={cuts}")
    server_matches_reference(setup, arrivals, cuts, watch_ms=watch_ms, **tuning)


@CASES
@given(cases())
def test_next_due_never_after_an_expiry(case):
    """`next_due_ms` is never later than the next credits_expired of the reference."""
    from rating_core import RatingEngine, Tuning

    setup, arrivals, cuts, tuning = case
    _, want_events = run_reference(setup, arrivals)
    expiries = sorted(e[0] for e in want_events if e[2] == "credits_expired")
    engine = RatingEngine(setup, Tuning(**tuning))
    t = 0
    for cut in [*cuts, setup.end_ms]:
        window = arrivals.take(np.flatnonzero((arrivals.t_ms >= t) & (arrivals.t_ms < cut)))
        engine.advance(window, cut)
        t = cut
        later = [e for e in expiries if e >= engine.now]
        if later:
            assert engine.next_due_ms() <= later[0], (engine.now, later[0])


def _leap_same_instant_case(extra_offsets):
    """Lots bought 2028-02-28T12:00 (the initial one and a recharge) expire together at
    2029-02-28T12:00, a lot bought on 02-29 a minute after that time of day (its day clamped
    to 02-28) a minute later."""
    start = datetime(2028, 2, 28, 12, tzinfo=timezone.utc)
    year = lot_expiry_ms(start, 0)
    assert lot_expiry_ms(start, 86_400_000) == year
    rate = 20_000  # 0.02 a minute, 60/60: 20_000 an increment
    orgs = tuple(Org(f"org{i}", (User(f"o{i}-u0", "US", COMMON_LICENSES[1]),), (), Credits(
        100_000, True, 90_000 + 10_000 * i, 50_000, None, 1)) for i in range(2))
    setup = RatingSetup(start=start, end_ms=year + 3_600_000, currency="USD",
                        plans=Plans({"default": 0}, 0, 0, ()),
                        tariffs=(Tariff("1", rate, 60, 60, "US", "A"),), toll_free_tariffs=(), orgs=orgs)
    rows = []
    for o in range(2):
        rows += [(0, o, o, 0, 12125550100, 0, 60_000), (86_400_000, o, o, 0, 12125550100, 0, 120_000)]
        rows += [(year + d, o, o, 0, 12125550100, 0, h) for d, h in extra_offsets]

    rows = [(t, o, u, int(CallKind.OUTBOUND), to, frm, h) for t, o, u, _, to, frm, h in rows]
    return setup, arrivals_from_rows(rows), year


@settings(max_examples=N, deadline=None)
@given(st.lists(st.tuples(st.sampled_from((-120_000, -60_000, -1, 0, 1, 60_000)),
                          st.sampled_from((0, 1, 59_999, 60_000, 600_000))), max_size=6),
       st.lists(st.sampled_from((-1, 0, 1, 60_000, -60_000)), max_size=3), tunings())
def test_lots_expiring_at_one_instant_expire_one_by_one(offsets, cut_offsets, tuning):
    """Each lot expiring at an instant is its own credits_expired, in lot order (a 02-29 lot
    just after), whatever is charged around those instants and however the windows are cut."""
    setup, arrivals, year = _leap_same_instant_case(offsets)
    cuts = sorted({year + c for c in cut_offsets})
    _, events = engine_matches_reference_with_lots(setup, arrivals, cuts, **tuning)
    if not offsets:  # nothing spent since the first day: the initial lot less 60 s + 120 s of calls
        expired = [(e[0] - year, e[3]) for e in events if e[1] == "org1" and e[2] == "credits_expired"]
        assert expired == [(0, 100_000 - 3 * 20_000), (0, 50_000), (60_000, 50_000)]


def test_grouped_running_minimum_restarts_with_each_group():
    """`_runs.grouped_cummin` (recharges counted in bulk; negated, the rests lot expiries
    remove) against a loop, with values near the int64 limit (the group-by-group fallback),
    and the runs' last elements `_runs.last_of_runs` marks."""
    from rating_core._runs import grouped_cummin, last_of_runs

    rng = np.random.default_rng(5)
    for top in (10, 10**6, 2**62):
        group = np.sort(rng.integers(0, 30, 400))
        group = np.cumsum(np.append(True, group[1:] != group[:-1])) - 1  # 0, 1, 2, ... in order
        values = rng.integers(-(top // 2), top - top // 2, 400, dtype=np.int64)  # max - min < top
        want = values.copy()
        for k in range(1, len(values)):
            if group[k] == group[k - 1]:
                want[k] = min(want[k - 1], values[k])
        assert grouped_cummin(values, group, top).tolist() == want.tolist()
        assert last_of_runs(group).tolist() == [k == len(group) - 1 or group[k + 1] != group[k]
                                                for k in range(len(group))]
    assert last_of_runs(np.zeros(0)).tolist() == []
