"""An org stuck below its trigger, each recharge smaller than one increment's cost.

About every other charge is refused and the org recharges at almost every instant: each
window holds thousands of special instants, so the engine steps the org one increment at a
time (`_stepper.Stepper`), and keeps stepping it from the start of the next window
without a bulk pass first, until a window meets fewer special instants than
`Tuning.step_below` allows.  Whatever the path, the results are the reference's.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import rating_core._charging as charging
from rating_core._model import Credits, Org, Plans, RatingSetup, Tariff, User
from ..strategies import arrivals_from_rows
from .test_differential import engine_matches_reference_with_lots

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
LICENSES = frozenset({"phone_system", "domestic_calling_plan", "communications_credits"})
MINUTE = 60_000


def stuck_org(amount: int, card=None, retry_after_ms: int = 60_000) -> RatingSetup:
    """One org without a pool: each minute costs 0.02, recharges of `amount` below 5.00."""
    credits = Credits(initial_micro=0, auto_recharge=True, recharge_below_micro=5_000_000,
                      recharge_amount_micro=amount, card_expires=card, retry_after_ms=retry_after_ms)
    users = tuple(User(f"u{i}", "US", LICENSES) for i in range(3))
    return RatingSetup(start=START, end_ms=40 * MINUTE, currency="USD", plans=Plans({"default": 0}),
                       tariffs=(Tariff("1", 20_000, 60, 60, "US", "A"),), toll_free_tariffs=(),
                       orgs=(Org("stuck", users, (), credits),))


def busy_calls(n: int = 400):
    """Four calls on one millisecond every 12 s for 20 minutes, each ~3 minutes (~60
    connected at once): four charges an instant, where one recharge pays about one."""
    return arrivals_from_rows([(i // 4 * 12_000, 0, i % 3, 0, 12125550100, 0, 150_000 + 997 * (i % 61))
                               for i in range(n)])


@pytest.fixture
def bulk_passes(monkeypatch):
    """The windows in which the engine looked for special instants in bulk."""
    seen = []
    first_special = charging.Charger._first_special

    def spy(self, cursor, t1, *args):
        seen.append(t1)
        return first_special(self, cursor, t1, *args)

    monkeypatch.setattr(charging.Charger, "_first_special", spy)
    return seen


CUTS = [m * MINUTE for m in range(1, 40)]  # a window a minute, as a server's ticks would cut


@pytest.mark.parametrize("compile_after, step_slice", [(0, 50_000), (10**9, 50_000), (10**9, 8)])
@pytest.mark.parametrize("amount", [10_000, 1, 19_999, 20_000, 21_000])  # half, tiny, about one increment
def test_a_stuck_org_is_stepped_window_after_window_and_matches_the_reference(bulk_passes, amount, compile_after,
                                                                              step_slice):
    """Compiled, or by Python in spans of any length or halved down to ~8 items (one
    minute cut into 7.5-second slices)."""
    cdrs, events = engine_matches_reference_with_lots(stuck_org(amount), busy_calls(), CUTS,
                                                      compile_after=compile_after, step_slice=step_slice)
    kinds = [e[2] for e in events]
    refused = [r for r in cdrs if r[14] in ("blocked_no_balance", "dropped_balance_exhausted")]
    assert kinds.count("recharge_succeeded") > 90 and len(refused) > 50
    busy = [t for t in bulk_passes if MINUTE < t <= 20 * MINUTE]  # while calls keep arriving
    assert not busy, "after its first window, the org is stepped without a bulk pass"


def test_without_step_below_the_bulk_passes_run_every_window_and_agree(bulk_passes):
    engine_matches_reference_with_lots(stuck_org(10_000), busy_calls(), CUTS, step_below=0)
    assert len({t for t in bulk_passes if MINUTE < t <= 20 * MINUTE}) == 19


@pytest.mark.parametrize("compile_after", [0, 10**9])
def test_a_failing_card_in_that_state_waits_retry_after_and_matches_the_reference(compile_after):
    """The card is valid through 2026-11-01: the run starts at 23:50, so from the tenth
    minute each attempt fails and the org waits a minute before the next."""
    setup = stuck_org(10_000, card=START.date(), retry_after_ms=MINUTE)
    late = RatingSetup(**{**setup.__dict__, "start": START.replace(hour=23, minute=50)})
    _, events = engine_matches_reference_with_lots(late, busy_calls(), CUTS, compile_after=compile_after)
    failed = [e[0] for e in events if e[2] == "recharge_failed"]
    assert failed and failed[0] >= 10 * MINUTE
    assert all(b - a >= MINUTE for a, b in zip(failed, failed[1:]))


def test_an_org_that_stops_being_refused_leaves_stepping():
    """Calls stop after 20 minutes and end by the 24th: a window with nothing special
    possible sends the org back to the bulk path."""
    from rating_core import RatingEngine

    engine = RatingEngine(stuck_org(10_000))
    arrivals = busy_calls()
    engine.advance(arrivals.take(arrivals.t_ms < 5 * MINUTE), 5 * MINUTE)
    engine.advance(arrivals.take((arrivals.t_ms >= 5 * MINUTE) & (arrivals.t_ms < 6 * MINUTE)), 6 * MINUTE)
    assert engine._charger.stepping[0]
    engine.advance(arrivals.take(arrivals.t_ms >= 6 * MINUTE), 30 * MINUTE)
    engine.advance(arrivals.take(arrivals.t_ms >= 30 * MINUTE), 40 * MINUTE)
    assert not engine._charger.stepping[0]


@pytest.mark.parametrize("compile_after, compiled", [(10**9, False), (0, True)])
def test_the_stepping_loop_runs_compiled_or_by_python_as_compile_after_says(monkeypatch, compile_after, compiled):
    from rating_core import RatingEngine, Tuning
    from rating_core import _stepping

    seen = []
    step = _stepping.step

    def spy(*args, **kwargs):
        seen.append(kwargs["compiled"])
        return step(*args, **kwargs)

    monkeypatch.setattr(_stepping, "step", spy)
    engine = RatingEngine(stuck_org(10_000), Tuning(compile_after=compile_after))
    arrivals, start = busy_calls(), 0
    for cut in CUTS:  # a window a minute
        engine.advance(arrivals.take((arrivals.t_ms >= start) & (arrivals.t_ms < cut)), cut)
        start = cut
    assert engine._charger.stepped_items > 400
    assert set(seen) == {compiled}


def test_the_loop_is_compiled_when_the_items_foreseen_pass_compile_after():
    """numba's load (~0.3 s) is paid only by runs that step many items: those so far, and
    those to come at the pace so far until the run's end (here 40 minutes)."""
    from rating_core import RatingEngine, Tuning

    charger = RatingEngine(stuck_org(10_000), Tuning(compile_after=4_000))._charger
    charger.stepped_since = 5 * MINUTE
    assert not charger.compile_stepping(6 * MINUTE, 100)  # 100 a minute: 3,500 by the end
    charger.stepped_items = 100
    assert not charger.compile_stepping(7 * MINUTE, 10)  # 110 in 2 minutes: 1,925
    assert not charger.compile_stepping(7 * MINUTE, 250)  # 350 in 2 minutes: 6,125, but too few done
    assert charger.compile_stepping(8 * MINUTE, 1_000)  # 1,100 in 3 minutes: 12,833
    charger.stepped_items = 3_999
    assert not charger.compile_stepping(40 * MINUTE, 1)  # the end: 4,000 in all
    assert charger.compile_stepping(40 * MINUTE, 2)
    assert not RatingEngine(stuck_org(10_000), Tuning(compile_after=None))._charger.compile_stepping(
        40 * MINUTE, 10**9)


def test_without_a_writable_cache_directory_the_loop_is_built_uncached(monkeypatch):
    """numba refuses cache=True where it finds no directory to write (a read-only install
    and home): the loop is then compiled in the process, and stepping gives the same answer."""
    import numba.core.caching

    from rating_core import _stepping

    monkeypatch.setattr(numba.core.caching.CacheImpl, "_locator_classes", [])
    monkeypatch.setattr(_stepping, "_compiled", [])
    loop = _stepping.compiled_loop()
    assert loop._cache.__class__.__name__ == "NullCache"
    engine_matches_reference_with_lots(stuck_org(20_000), busy_calls(), CUTS, compile_after=0)
    assert _stepping._compiled == [loop] and loop.signatures
