"""`rating_core._crossings`: a busy org's recharges found second by second, against the rule
applied one instant at a time (SPEC §3 "Credits": after each instant's charges, one recharge
when the balance is below the trigger).  The engine-level comparison with the reference is in
test_differential.py (`busy_recharge_cases`)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rating_core._crossings as crossings
from rating_core import RatingEngine, Tuning, canonical_cdrs, canonical_events
from rating_core._crossings import Charges, by_millisecond, search
from rating_core._model import CdrBatch, Credits, Org, Plans, RatingSetup, Tariff, User

from .test_differential import engine_matches_reference_with_lots
from ..strategies import arrivals_from_rows


def instant_by_instant(entries, balance: int, below: int, amount: int, trailing: bool = False, others=()):
    """(solved, [(t, balance after, spent)]) for one org, applying the rule at each instant
    (its charges' instants and `others`): unsolved when an instant leaves the balance below 0,
    or (unless `trailing`) still below the trigger after its one recharge: the cases `search`
    leaves to the row-by-row path (`by_millisecond` takes the trailing ones)."""
    cost_at: dict[int, int] = defaultdict(int)
    for nb, inc_s, next_s, count, first_cost, next_cost in entries:
        cost_at[nb] += first_cost
        for k in range(count - 1):
            cost_at[nb + 1000 * (inc_s + k * next_s)] += next_cost
    for t in others:
        cost_at[t] += 0
    spent, found = 0, []
    for t in sorted(cost_at):
        spent += cost_at[t]
        left = balance + len(found) * amount - spent
        if left < 0:
            return False, []
        if left < below:
            left += amount
            found.append((t, left, spent))
            if left < below and not trailing:
                return False, []
    return True, found


@st.composite
def busy_orgs(draw):
    """Up to three orgs' charges in one window that starts and ends off a second."""
    t0 = draw(st.integers(0, 5_000))
    t1 = t0 + draw(st.integers(1, 300_000))
    orgs, entries = [], []
    for o in range(draw(st.integers(1, 3))):
        rows = []
        for _ in range(draw(st.integers(0, 25))):
            nb = draw(st.integers(t0, t1 - 1))
            inc_s, next_s = draw(st.sampled_from(((1, 1), (6, 6), (30, 6), (60, 60), (60, 1), (1, 60))))
            most = 1 + max(0, (t1 - 1 - nb - 1000 * inc_s) // (1000 * next_s) + 1) if nb + 1000 * inc_s < t1 else 1
            rows.append((nb, inc_s, next_s, draw(st.integers(1, most)), draw(st.integers(0, 40)),
                         draw(st.integers(0, 40))))
        below = draw(st.integers(0, 200))
        orgs.append((below + draw(st.integers(0, 200)), below, draw(st.integers(1, 300))))
        entries.append(rows)
    return t0, t1, orgs, entries


def ledger_of(orgs) -> "Ledger":
    """A ledger whose orgs hold (balance, trigger, amount), recharges on, cards valid."""
    from datetime import datetime, timezone

    from rating_core._ledger import Ledger

    led = Ledger(RatingSetup(
        start=datetime(2026, 11, 1, tzinfo=timezone.utc), end_ms=3_600_000, currency="USD",
        plans=Plans({"default": 0}, 0, 0, ()), tariffs=(), toll_free_tariffs=(),
        orgs=tuple(Org(f"o{i}", (), (), Credits(balance, True, below, amount, None, 1_000))
                   for i, (balance, below, amount) in enumerate(orgs)),
    ))
    led.start_events()  # the initial lots
    return led


@settings(max_examples=300, deadline=None)
@given(busy_orgs(), st.data(), st.sampled_from((crossings.SPAN_MS, 4_999, 60_000)))
def test_by_millisecond_finds_the_recharges_the_rule_makes_instant_by_instant(case, data, span_ms):
    """`by_millisecond`, for orgs whose balance may trail the trigger (instants without a
    charge recharge too: arrivals, hang-ups): exactly the rule's recharges, every org solved
    unless an instant would take its balance below zero; the window held a span of any
    length at a time (`SPAN_MS`: trains begun in an earlier span, first charges after it)."""
    t0, t1, orgs, entries = case
    others = [data.draw(st.lists(st.integers(t0 - 5, t1 + 5), max_size=8)) for _ in orgs]
    flat = [(o, *row) for o, rows in enumerate(entries) for row in rows]
    cols = list(zip(*flat)) if flat else [()] * 7
    charges = Charges(*(np.array(c, dtype=np.int64) for c in cols))
    other_org = np.array([o for o, ts in enumerate(others) for _ in ts], dtype=np.int64)
    other_t = np.array([t for ts in others for t in ts], dtype=np.int64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crossings, "SPAN_MS", span_ms)
        found = by_millisecond(ledger_of(orgs), np.arange(len(orgs)), charges, other_org, other_t, t0, t1)
    for o, rows in enumerate(entries):
        inside = [t for t in others[o] if t0 <= t < t1]
        solved, want = instant_by_instant(rows, *orgs[o], trailing=True, others=inside)
        assert bool(found.solved[o]) == solved, o
        if solved:
            mine = found.org == o
            got = list(zip(found.t[mine].tolist(), found.balance[mine].tolist(), found.spent[mine].tolist()))
            assert got == want, o


@settings(max_examples=400, deadline=None)
@given(busy_orgs(), st.sampled_from((crossings.CELLS, 1_000, 3_000)))
def test_search_finds_the_recharges_the_rule_makes_instant_by_instant(case, cells):
    """Every org `search` solves has exactly the recharges (instant, balance after, spent) that
    the rule makes instant by instant, and it solves every org whose balance neither goes
    below 0 nor trails its trigger; in chunks of any size (`CELLS`)."""
    t0, t1, orgs, entries = case
    flat = [(o, *row) for o, rows in enumerate(entries) for row in rows]
    cols = list(zip(*flat)) if flat else [()] * 7
    charges = Charges(*(np.array(c, dtype=np.int64) for c in cols))
    balance, below, amount = (np.array(c, dtype=np.int64) for c in zip(*orgs))
    ids = np.arange(len(orgs))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crossings, "CELLS", cells)
        found = search(ids, balance, below, amount, charges, t0, t1, len(orgs), rows_per_cell=0)
    for o, rows in enumerate(entries):
        solved, want = instant_by_instant(rows, *orgs[o])
        assert bool(found.solved[o]) == solved, o
        if solved:
            mine = found.org == o
            got = list(zip(found.t[mine].tolist(), found.balance[mine].tolist(), found.spent[mine].tolist()))
            assert got == want, o


def busy_org(amount_micro: int, users: int = 40) -> RatingSetup:
    """One org of `users`, two tariffs (1/1 and 30/6), credits that recharge by `amount_micro`."""
    from datetime import datetime, timezone

    credits = Credits(initial_micro=5_000_000, auto_recharge=True, recharge_below_micro=1_000_000,
                      recharge_amount_micro=amount_micro, card_expires=None, retry_after_ms=60_000)
    licenses = frozenset({"phone_system", "domestic_calling_plan", "communications_credits"})
    return RatingSetup(
        start=datetime(2026, 11, 1, tzinfo=timezone.utc), end_ms=2 * 3_600_000, currency="USD",
        plans=Plans({"default": 0}, 0, 0, ()),
        tariffs=(Tariff("1", 60_000, 1, 1, "US", "A"), Tariff("1212", 90_001, 30, 6, "US", "A")),
        toll_free_tariffs=(),
        orgs=(Org("busy", tuple(User(f"u{i}", "US", licenses) for i in range(users)), (), credits),),
    )


def busy_arrivals(n: int, seed: int, longest_ms: int = 30 * 60_000):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 2 * 3_600_000, n))
    t[1::7] = t[::7][: len(t[1::7])]  # some calls answered on one millisecond
    rows = [(int(ti), 0, int(rng.integers(0, 40)), 0, int(rng.choice([12125550100, 14155550100])), 0,
             int(rng.integers(0, longest_ms))) for ti in t]
    return arrivals_from_rows(rows)


@pytest.mark.parametrize("amount_micro", [2_000_000, 50_000, 20_000])
def test_a_busy_org_recharges_as_the_reference_whichever_path_finds_it(amount_micro, monkeypatch):
    """100 calls of one org over two hours, recharging every few seconds (2.00), at almost
    every charge (0.05), or by less than some charges cost (0.02: the balance may trail the
    trigger): the same CDRs, events and lots as the reference, and the second-by-second search
    solves the windows it can (all of them at 2.00)."""
    calls = []
    real = crossings.search

    def spy(orgs, *args, **kwargs):
        found = real(orgs, *args, **kwargs)
        calls.append(bool(found.solved[orgs].all()))
        return found

    monkeypatch.setattr("rating_core._charging.search", spy)
    setup, arrivals = busy_org(amount_micro), busy_arrivals(100, amount_micro, 10 * 60_000)
    engine_matches_reference_with_lots(setup, arrivals, [900_000, 1_800_001, 3_600_000], crossing_rows=0)
    assert calls, "the search never ran"
    if amount_micro == 2_000_000:
        assert all(calls)


def test_search_and_rows_agree_on_a_large_org():
    """5,000 calls of 1/1 and 30/6 billing in one org (the shape the search is for): CDRs and
    events byte-identical whether its recharges are found second by second or row by row."""
    setup, arrivals = busy_org(3_000_000, users=400), busy_arrivals(5_000, 7)
    outputs = []
    for rows in (1, 10**12):
        engine = RatingEngine(setup, Tuning(crossing_rows=rows))
        steps = [engine.advance(arrivals, setup.end_ms), engine.finish()]
        outputs.append((canonical_cdrs(engine.tables, CdrBatch.concat([s.cdrs for s in steps])),
                        canonical_events(engine.tables, [e for s in steps for e in s.events]),
                        engine.ledger.lots_of(0).held(), int(engine.ledger.balance[0])))
    assert outputs[0] == outputs[1]
    assert sum(1 for e in outputs[0][1] if e[2] == "recharge_succeeded") > 100


def test_an_org_whose_searches_keep_failing_is_searched_less_and_less(monkeypatch):
    """A search that solves nothing (as one that meets a refusal) costs its arrays and then
    the rows anyway: after k failures in a row the org sits out 2**k - 1 windows.  Two hours
    in one-minute windows of an org recharging every few seconds, both searches made to fail:
    a handful of searches instead of one a window, and the reference's CDRs, events and lots."""
    searches = []

    def failing(real):
        def search_that_fails(*args, **kwargs):
            found = real(*args, **kwargs)
            searches.append(real.__name__)
            return crossings.Found(found.org[:0], found.t[:0], found.balance[:0], found.spent[:0],
                                   np.zeros_like(found.solved))
        return search_that_fails

    monkeypatch.setattr("rating_core._charging.search", failing(crossings.search))
    monkeypatch.setattr("rating_core._charging.by_millisecond", failing(crossings.by_millisecond))
    setup, arrivals = busy_org(2_000_000), busy_arrivals(100, 3, 10 * 60_000)
    engine_matches_reference_with_lots(setup, arrivals, list(range(60_000, 2 * 3_600_000, 60_000)), crossing_rows=0)
    # each searched window tries both; searched windows 1 + 2 + 4 + ... apart: ~7 of 120
    assert 3 <= len(searches) / 2 <= 12, searches


def test_a_search_that_succeeds_ends_the_back_off(monkeypatch):
    """Searched windows fail, fail, fail, succeed, then fail twice: after the success the
    count starts again, so the org is searched in the very next window (the third failure in
    a row would have kept it out for three, and without the reset the fifth, for seven)."""
    windows = []  # the t0 of each window searched, in order
    verdicts = [False, False, False, True, False, False]

    def scheduled(real):
        def search(*args, **kwargs):
            found = real(*args, **kwargs)
            t0 = args[5]
            if not windows or windows[-1] != t0:
                windows.append(t0)
            if len(windows) <= len(verdicts) and not verdicts[len(windows) - 1]:
                return crossings.Found(found.org[:0], found.t[:0], found.balance[:0], found.spent[:0],
                                       np.zeros_like(found.solved))
            return found
        return search

    monkeypatch.setattr("rating_core._charging.search", scheduled(crossings.search))
    monkeypatch.setattr("rating_core._charging.by_millisecond", scheduled(crossings.by_millisecond))
    setup, arrivals = busy_org(2_000_000), busy_arrivals(1_000, 3, 10 * 60_000)  # calls in every window
    engine_matches_reference_with_lots(setup, arrivals, list(range(60_000, 2 * 3_600_000, 60_000)), crossing_rows=0)
    gaps = [(b - a) // 60_000 for a, b in zip(windows, windows[1:7])]
    assert gaps == [1, 2, 4, 1, 1, 2], windows  # skipped 0, 1, 3; after the success 0, then 1
