"""The vectorised rating core against the sequential reference, on random cases.

SPEC §3: "Vectorised batch processing must give exactly the results of applying these
rules one event at a time."  Each case is rated by `reference.run_reference` and by
`rating_core.RatingEngine` fed in random windows; CDRs and events must be identical.
The reference's own invariants are checked on the same cases, so a bug shared by both
implementations still has to get past them.

More examples:  CALLSIM_DIFF_EXAMPLES=5000 python -m pytest tests/rating_core/test_differential.py
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from rating_core._model import Arrivals, CallKind, CdrBatch, RatingSetup
from ..reference import (
    longest_prefix,
    month_starts_ms,
    pool_capacities_s,
    run_reference,
)
from ..strategies import (
    anchors_ms,
    below_increment_cases,
    busy_recharge_cases,
    expiry_cases,
    rating_cases,
    recharge_cases,
    traffic_cases,
    window_cuts,
    windowed_cases,
)

EXAMPLES = int(os.environ.get("CALLSIM_DIFF_EXAMPLES", "300"))
CASES = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CDR_COLUMNS = ("call_id", "org_id", "user_id", "call_type", "from_number", "to_number",
               "destination_country", "zone", "start_ms", "end_ms", "billed_s", "pool",
               "pool_s", "credits_micro", "end_reason")
EVENT_COLUMNS = ("time_ms", "org_id", "event", "amount_micro", "balance_micro", "reason")
EVENT_RANK = {name: i for i, name in enumerate((
    "credits_purchased", "pools_refilled", "credits_expired", "balance_exhausted",
    "recharge_succeeded", "recharge_failed"))}
EVENT_RANK["recharge_failed"] = EVENT_RANK["recharge_succeeded"]  # at most one of them
REJECTED = {"unroutable", "not_licensed", "blocked_no_balance"}


# --------------------------------------------------------------------------- the engine


def engine_api():
    """The engine's entry points; skip (only) while `rating_core` has no RatingEngine yet."""
    import rating_core

    if not hasattr(rating_core, "RatingEngine"):
        pytest.skip("rating_core.RatingEngine does not exist yet")
    from rating_core import RatingEngine, canonical_cdrs, canonical_events

    return RatingEngine, canonical_cdrs, canonical_events


def run_engine_in_windows(setup: RatingSetup, arrivals: Arrivals, cuts: list[int], engine=None):
    """Feed the engine window by window: arrivals in [t, cut), then advance to `cut`."""
    RatingEngine, canonical_cdrs, canonical_events = engine_api()
    engine = engine or RatingEngine(setup)
    batches, events = [], []
    t = 0
    for cut in [*cuts, setup.end_ms]:
        window = np.flatnonzero((arrivals.t_ms >= t) & (arrivals.t_ms < cut))
        step = engine.advance(arrivals.take(window), cut)
        batches.append(step.cdrs)
        events += step.events
        t = cut
    step = engine.finish()
    batches.append(step.cdrs)
    events += step.events
    return (canonical_cdrs(engine.tables, CdrBatch.concat(batches)),
            canonical_events(engine.tables, events))


def first_difference(what: str, columns: tuple[str, ...], expected: list, actual: list) -> str:
    """A readable account of where two row lists first part ways ("" if they don't)."""
    for i, (want, got) in enumerate(zip(expected, actual)):
        if tuple(want) != tuple(got):
            fields = "\n".join(f"    {name}: reference={w!r} engine={g!r}"
                               for name, w, g in zip(columns, want, got) if w != g)
            return (f"{what}[{i}] differs:\n  reference: {want}\n  engine:    {got}\n{fields}")
    if len(expected) != len(actual):
        longer, who = (expected, "reference") if len(expected) > len(actual) else (actual, "engine")
        return (f"{what}: reference has {len(expected)} rows, engine {len(actual)}; "
                f"first extra ({who}): {longer[min(len(expected), len(actual))]}")
    return ""


def run_engine_as_server(setup: RatingSetup, arrivals: Arrivals, cuts: list[int], tuning=None):
    """Feed the engine as `callsim serve` does: holding times unknown (FOREVER) at setup, and
    each hang-up told with `hangup()` before the window it falls in (or, for a call hung up in
    the window it arrives in, as its holding time, as the exchange does)."""
    RatingEngine, canonical_cdrs, canonical_events = engine_api()
    from rating_core import FOREVER_MS, Tuning

    engine = RatingEngine(setup, tuning or Tuning())
    hang_at = arrivals.t_ms + arrivals.holding_ms
    batches, events = [], []
    t = 0
    for cut in [*cuts, setup.end_ms]:
        earlier = np.flatnonzero((arrivals.t_ms < t) & (hang_at >= t) & (hang_at < cut))
        engine.hangup(arrivals.call_id[earlier], hang_at[earlier])
        window = arrivals.take(np.flatnonzero((arrivals.t_ms >= t) & (arrivals.t_ms < cut)))
        window.holding_ms = np.where(window.t_ms + window.holding_ms < cut, window.holding_ms, FOREVER_MS)
        step = engine.advance(window, cut)
        batches.append(step.cdrs)
        events += step.events
        t = cut
    at_end = np.flatnonzero(hang_at == setup.end_ms)  # hung up at the very end: `hangup`, not cut
    engine.hangup(arrivals.call_id[at_end], hang_at[at_end])
    step = engine.finish()
    batches.append(step.cdrs)
    events += step.events
    return (canonical_cdrs(engine.tables, CdrBatch.concat(batches)),
            canonical_events(engine.tables, events))


@st.composite
def server_cases(draw):
    """A rating case cut into many short windows, as a server's ticks cut time, with the
    call table's watch horizon drawn too (so windows use the watch, outrun it, or rebuild it)."""
    setup, arrivals = draw(rating_cases())
    interesting = sorted({t for t in [int(x) for x in arrivals.t_ms] + anchors_ms(setup)
                          for t in (t, t + 1, t + 1_000, t + 60_000)})
    cuts = set(draw(st.lists(st.sampled_from(interesting), max_size=40)))
    cuts |= set(draw(st.lists(st.integers(0, max(setup.end_ms - 1, 0)), max_size=10)))
    watch_ms = draw(st.sampled_from((1, 1_000, 60_000, 10**9)))
    return setup, arrivals, sorted(c for c in cuts if 0 < c < setup.end_ms), watch_ms


@CASES
@given(server_cases())
def test_engine_fed_as_a_server_matches_reference(case):
    """Hang-ups told as they happen (`RatingEngine.hangup`), many short windows: the path of
    `callsim serve`, including the call table's watch of rows due soon."""
    setup, arrivals, cuts, watch_ms = case
    engine_api()
    note(f"cuts={cuts} watch_ms={watch_ms}")
    server_matches_reference(setup, arrivals, cuts, watch_ms=watch_ms)


@CASES
@given(windowed_cases())
def test_engine_matches_reference_in_any_windows(case):
    engine_matches_reference_in_windows(case)


def engine_matches_reference_in_windows(case, **tuning):
    """Assert that the engine, built with `Tuning(**tuning)` and fed in the case's windows,
    gives the reference's CDRs and events."""
    setup, arrivals, cuts = case
    RatingEngine, _, _ = engine_api()  # skip before the reference runs, while there is no engine
    from rating_core import Tuning

    note(f"cuts={cuts}")
    want_cdrs, want_events = run_reference(setup, arrivals)
    engine = RatingEngine(setup, Tuning(**tuning))
    got_cdrs, got_events = run_engine_in_windows(setup, arrivals, cuts, engine)
    problem = (first_difference("cdrs", CDR_COLUMNS, want_cdrs, got_cdrs)
               or first_difference("events", EVENT_COLUMNS, want_events, got_events))
    assert not problem, problem


@st.composite
def windowed(draw, cases):
    """A case of the `cases` strategy plus the cut points at which to feed it in windows."""
    setup, arrivals = draw(cases)
    return setup, arrivals, draw(window_cuts(setup, arrivals))


@settings(CASES, max_examples=max(EXAMPLES // 2, 50))
@given(windowed(recharge_cases()))
def test_engine_matches_reference_when_orgs_recharge_every_few_increments(case):
    """Orgs whose credits recharge every few increments, beside dead and exhausted ones: the
    bulk recharges (`rating_core._recharges`) against the reference, lots included (each
    recharge is a lot; charges spend from the front)."""
    setup, arrivals, cuts = case
    note(f"cuts={cuts}")
    engine_matches_reference_with_lots(setup, arrivals, cuts, crossing_rows=0)


@settings(CASES, max_examples=max(EXAMPLES // 2, 50))
@given(windowed(busy_recharge_cases()), st.sampled_from((0, 1, 10**9)), st.sampled_from((16_384, 4)))
def test_engine_finds_recharges_second_by_second_as_the_reference(case, crossing_rows, split_rows):
    """Orgs recharging every few charges with many calls connected, under two increments:
    their recharges found second by second (`rating_core._crossings`: always tried at a
    `crossing_rows` of 0, for busy orgs at 1, never at 10^9), or row by row where that
    search cannot prove them, against the reference, lots included."""
    setup, arrivals, cuts = case
    note(f"cuts={cuts}")
    engine_matches_reference_with_lots(setup, arrivals, cuts, crossing_rows=crossing_rows, split_rows=split_rows)


@settings(CASES, max_examples=max(EXAMPLES // 6, 30))
@given(windowed(busy_recharge_cases()), st.sampled_from((1, 1_000, 10**9)))
def test_engine_fed_as_a_server_finds_recharges_second_by_second_as_the_reference(case, watch_ms):
    """The same busy orgs, fed as `callsim serve` feeds the engine."""
    setup, arrivals, cuts = case
    note(f"cuts={cuts} watch_ms={watch_ms}")
    server_matches_reference(setup, arrivals, cuts, watch_ms=watch_ms, crossing_rows=0)


@st.composite
def windowed_below_increment_cases(draw):
    """A case of `below_increment_cases`, its window cuts, and the sizes of the engine's fast
    paths: stepping after one pass, after 16 special instants, or whenever the specials come
    closer than 1, 256 or 10^9 increments (always); the stepping loop run compiled from the
    first item, after 64, or by Python throughout, in spans of any length or halved down to
    1 or 40 items."""
    setup, arrivals = draw(below_increment_cases())
    return setup, arrivals, draw(window_cuts(setup, arrivals)), draw(tunings())


@st.composite
def tunings(draw):
    """Sizes of the engine's fast paths that send windows down every path (see above)."""
    return {"max_specials": draw(st.sampled_from((16, 1, 3))),
            "step_below": draw(st.sampled_from((256, 0, 1, 10**9))),
            "split_rows": draw(st.sampled_from((16_384, 4))),
            "compile_after": draw(st.sampled_from((0, 64, 10**9))),
            "step_slice": draw(st.sampled_from((50_000, 1, 40))),
            "crossing_rows": draw(st.sampled_from((1, 0)))}


@settings(CASES, max_examples=max(EXAMPLES // 3, 50))
@given(windowed_below_increment_cases())
def test_engine_matches_reference_when_recharges_are_below_one_increment(case):
    """Orgs stuck below their trigger, each recharge smaller than one increment's cost (or
    about one): about every other charge refused, a recharge at almost every instant, cards
    that expire mid-run.  The stepping path (`_stepper.Stepper`) against the reference,
    lots included, whatever path the tuning sends each window down."""
    setup, arrivals, cuts, tuning = case
    note(f"cuts={cuts} tuning={tuning}")
    engine_matches_reference_with_lots(setup, arrivals, cuts, **tuning)


@st.composite
def windowed_expiry_cases(draw):
    """A case of `expiry_cases`, cut often on its lot expiries, and a tuning (`tunings`)."""
    setup, arrivals = draw(expiry_cases())
    year = [t for t in arrivals.t_ms.tolist() if t > 3 * 3_600_000]
    cuts = set(draw(window_cuts(setup, arrivals)))
    cuts |= {draw(st.sampled_from(year)) + draw(st.sampled_from((0, 1, -1))) for _ in range(2)} if year else set()
    return setup, arrivals, sorted(c for c in cuts if 0 < c < setup.end_ms), draw(tunings())


@settings(CASES, max_examples=max(EXAMPLES // 3, 50))
@given(windowed_expiry_cases())
def test_engine_matches_reference_when_lots_expire_under_load(case):
    """Lots bought in a busy first hour expire a year later among charges, recharges and
    refusals, some partly spent first, several at one instant: each removes its rest as
    the reference does, first in its instant, inside the engine's windows (bulk and
    stepped, whatever path the tuning sends each window down)."""
    setup, arrivals, cuts, tuning = case
    note(f"cuts={cuts} tuning={tuning}")
    engine_matches_reference_with_lots(setup, arrivals, cuts, **tuning)


@settings(CASES, max_examples=max(EXAMPLES // 6, 30))
@given(windowed_expiry_cases(), st.sampled_from((1, 1_000, 10**9)))
def test_engine_fed_as_a_server_matches_reference_when_lots_expire_under_load(case, watch_ms):
    """The same expiring lots, fed as `callsim serve` feeds the engine."""
    setup, arrivals, cuts, tuning = case
    note(f"cuts={cuts} watch_ms={watch_ms}")
    server_matches_reference(setup, arrivals, cuts, watch_ms=watch_ms, **tuning)


@settings(CASES, max_examples=max(EXAMPLES // 6, 30))
@given(windowed_below_increment_cases(), st.sampled_from((1, 1_000, 10**9)))
def test_engine_fed_as_a_server_matches_reference_when_recharges_are_below_one_increment(case, watch_ms):
    """The same orgs stuck below their trigger, fed as `callsim serve` feeds the engine (hang-ups
    told as they happen, the cuts as its ticks)."""
    setup, arrivals, cuts, tuning = case
    note(f"cuts={cuts} tuning={tuning} watch_ms={watch_ms}")
    server_matches_reference(setup, arrivals, cuts, watch_ms=watch_ms, **tuning)


def server_matches_reference(setup: RatingSetup, arrivals: Arrivals, cuts: list[int], **tuning) -> None:
    """Assert that the engine fed as `callsim serve` feeds it (`run_engine_as_server`, built
    with `Tuning(**tuning)`) gives the reference's CDRs and events."""
    from rating_core import Tuning

    want_cdrs, want_events = run_reference(setup, arrivals)
    got_cdrs, got_events = run_engine_as_server(setup, arrivals, cuts, Tuning(**tuning))
    problem = (first_difference("cdrs", CDR_COLUMNS, want_cdrs, got_cdrs)
               or first_difference("events", EVENT_COLUMNS, want_events, got_events))
    assert not problem, problem


def engine_matches_reference_with_lots(setup: RatingSetup, arrivals: Arrivals, cuts: list[int], **tuning):
    """Assert that the engine (built with `Tuning(**tuning)`) fed in windows gives the
    reference's CDRs, events, final balances and lots (those with a rest, in order); returns
    the reference's (cdrs, events)."""
    RatingEngine, _, _ = engine_api()
    from rating_core import Tuning

    want_cdrs, want_events, state = run_reference(setup, arrivals, return_state=True)
    engine = RatingEngine(setup, Tuning(**tuning))
    got_cdrs, got_events = run_engine_in_windows(setup, arrivals, cuts, engine)
    problem = (first_difference("cdrs", CDR_COLUMNS, want_cdrs, got_cdrs)
               or first_difference("events", EVENT_COLUMNS, want_events, got_events))
    assert not problem, problem
    for o, org in enumerate(setup.orgs):
        lots = engine.ledger.lots_of(o).held()
        assert lots == state.lots[org.id], org.id
        assert engine.ledger.balance[o] == state.balances_micro[org.id]
    return want_cdrs, want_events


@settings(CASES, max_examples=max(EXAMPLES // 2, 50))
@given(windowed(traffic_cases()))
def test_engine_matches_reference_on_generated_traffic(case):
    """Calls drawn by `simulator.traffic` from sources with rate profiles (closed hours, UTC
    offsets), lognormal, empirical and histogram holding times and weighted destinations
    (whole numbers, weights of 0, numbers that route nowhere), fed in random windows."""
    engine_matches_reference_in_windows(case)


@settings(CASES, max_examples=max(EXAMPLES // 3, 50))
@given(windowed_cases())
def test_engine_stepping_fallback_matches_reference(case):
    """Same, with the engine's bulk path giving up after one special instant per window,
    so its one-increment-at-a-time fallback is what gets compared."""
    engine_matches_reference_in_windows(case, max_specials=1)


@settings(CASES, max_examples=max(EXAMPLES // 3, 50))
@given(windowed_cases())
def test_engine_halving_slow_windows_matches_reference(case):
    """Same, with every window whose slow orgs have more than one increment to expand charged
    as two halves (big runs do it above `Tuning.split_rows`; the cases here are small)."""
    engine_matches_reference_in_windows(case, split_rows=1)


@settings(CASES, max_examples=max(EXAMPLES // 3, 50))
@given(windowed_cases())
def test_engine_with_array_admission_matches_reference(case):
    """Same, with every window admitted by the array passes rather than the small-batch memo
    (the cases here are small, so the memo is what the tests above compare)."""
    engine_matches_reference_in_windows(case, small_batch=0)


@CASES
@given(rating_cases())
def test_admission_memo_gives_the_array_passes_results(case):
    """Admitting a small batch from the memo (and again, once it is filled) is the array passes."""
    from rating_core._admission import Admission, Admitted
    from rating_core._ledger import Ledger

    setup, arrivals = case
    if not len(arrivals):
        return
    admission = Admission(setup, Ledger(setup))
    want = admission._admit_arrays(arrivals)
    for _ in range(2):  # first misses (fills the memo), then hits
        got = admission.admit(arrivals)
        for name in Admitted.__dataclass_fields__:
            w, g = getattr(want, name), getattr(got, name)
            assert g.dtype == w.dtype and g.tolist() == w.tolist(), name


# --------------------------------------------------------------------------- invariants


def billed_for(duration_ms: int, first_s: int, next_s: int) -> int:
    """Seconds of the increments whose boundary falls before `duration_ms` after answer."""
    if duration_ms <= 0:
        return 0
    later_ms = max(0, duration_ms - first_s * 1000)
    return first_s + -(-later_ms // (next_s * 1000)) * next_s


def tariff_of(setup: RatingSetup, kind: int, to: int, frm: int):
    if kind == CallKind.TOLL_FREE:
        return longest_prefix(setup.toll_free_tariffs, frm)
    return longest_prefix(setup.tariffs, to)


def check_cdr(setup: RatingSetup, row: tuple, kind: int, t_ms: int, holding_ms: int, to: int,
              frm: int) -> None:
    """Invariants of one CDR that follow from SPEC §3 without replaying the ledger."""
    r = dict(zip(CDR_COLUMNS, row))
    start, end, reason = r["start_ms"], r["end_ms"], r["end_reason"]
    assert start == t_ms and start <= end <= setup.end_ms
    if reason in REJECTED:
        assert (end, r["billed_s"], r["pool_s"], r["credits_micro"]) == (start, 0, 0, 0)
        return
    assert reason in {"hangup", "dropped_balance_exhausted", "simulation_end"}
    if reason == "hangup":
        assert end == start + holding_ms
    elif reason == "simulation_end":
        assert end == setup.end_ms < start + holding_ms
    else:
        assert end < min(start + holding_ms, setup.end_ms)
    tariff = tariff_of(setup, kind, to, frm)
    increments = billed_for(end - start, tariff.first_s, tariff.next_s)
    assert r["billed_s"] == increments, "billed = increments started before the end"
    assert 0 <= r["pool_s"] <= r["billed_s"] and (r["pool"] == "") == (r["pool_s"] == 0)
    credit_s = r["billed_s"] - r["pool_s"]
    least = -(-tariff.per_minute_micro * credit_s // 60)
    n_increments = 0 if end == start else 1 + (r["billed_s"] - tariff.first_s) // tariff.next_s
    assert least <= r["credits_micro"] <= least + n_increments, "each increment rounds up once"


def check_events(setup: RatingSetup, events: list[tuple]) -> None:
    """Time order, org order, in-instant rule order, refills, balance_exhausted once."""
    org_index = {org.id: i for i, org in enumerate(setup.orgs)}
    keys = [(e[0], org_index[e[1]], EVENT_RANK[e[2]]) for e in events]
    assert keys == sorted(keys), "events by time, org, then in-instant order"
    assert all(0 <= e[0] < setup.end_ms for e in events)
    assert all(e[4] is None or e[4] >= 0 for e in events), "balances never negative"
    refills = month_starts_ms(setup.start, setup.end_ms)
    for org in setup.orgs:
        mine = [e for e in events if e[1] == org.id]
        assert [e[0] for e in mine if e[2] == "pools_refilled"] == refills
        reported = False
        for e in mine:
            if e[2] == "balance_exhausted":
                assert not reported, "balance_exhausted twice without credits added"
                reported = True
            elif e[2] in ("credits_purchased", "recharge_succeeded"):
                reported = False


def check_money_and_pools(setup: RatingSetup, cdrs: list[tuple], events: list[tuple], state):
    """Credits are conserved; no pool gives more than its capacity per month."""
    charged, pooled = Counter(), defaultdict(Counter)
    for row in cdrs:
        r = dict(zip(CDR_COLUMNS, row))
        charged[r["org_id"]] += r["credits_micro"]
        pooled[r["org_id"]][r["pool"]] += r["pool_s"]
    months = 1 + len(month_starts_ms(setup.start, setup.end_ms))
    for org in setup.orgs:
        added = sum(e[3] for e in events
                    if e[1] == org.id and e[2] in ("credits_purchased", "recharge_succeeded"))
        expired = sum(e[3] for e in events if e[1] == org.id and e[2] == "credits_expired")
        assert added - expired - charged[org.id] == state.balances_micro[org.id]
        capacity = pool_capacities_s(setup, org)
        for pool, seconds in pooled[org.id].items():
            assert pool == "" or seconds <= months * capacity[pool]


@CASES
@given(rating_cases())
def test_reference_invariants(case):
    setup, arrivals = case
    cdrs, events, state = run_reference(setup, arrivals, return_state=True)
    assert sorted(row[0] for row in cdrs) == [int(i) for i in arrivals.call_id]
    assert [(r[9], r[0]) for r in cdrs] == sorted((r[9], r[0]) for r in cdrs)
    by_id = {int(arrivals.call_id[i]): i for i in range(len(arrivals))}
    for row in cdrs:
        i = by_id[row[0]]
        check_cdr(setup, row, int(arrivals.kind[i]), int(arrivals.t_ms[i]),
                  int(arrivals.holding_ms[i]), int(arrivals.to_number[i]),
                  int(arrivals.from_number[i]))
    check_events(setup, events)
    check_money_and_pools(setup, cdrs, events, state)
