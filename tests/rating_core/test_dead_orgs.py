"""Orgs that cannot pay anything: the engine's per-call fast path against the reference.

`Charger._dead_at_start` / `_settle_dead` / `_fail_recharges` settle an org whose balance
cannot pay any credit-paid increment in a window (every such increment costs 0 or more
than the balance, no pool runs dry, no recharge can succeed before the window ends) one
call at a time, and run its failing recharge checks at its org instants without stepping.

Each case is small and hand-computed.  It is rated by the sequential reference
(`tests/reference.py`, the oracle) and by the engine fed in several window cuttings
(chosen to start or end windows exactly on the interesting instants); both must agree,
and the reference must give the hand-computed CDRs and events, so a bug shared by both
still fails.  The `dead_path` fixture checks that the fast path really ran, so the
cases keep covering it.

The random differential test rarely reaches some of these corners (retry_after = 0 is
never drawn; checks at hang-ups or at a pool-paid call's boundaries are rare; card
expiry exactly at a window start is rare): hence the deterministic cases here.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone

import numpy as np
import pytest

import rating_core._charging as charging
from rating_core._model import CallKind, Credits, Org, Plans, RatingSetup, Tariff, User
from ..reference import month_starts_ms, run_reference
from ..strategies import arrivals_from_rows
from .test_differential import (
    CDR_COLUMNS,
    EVENT_COLUMNS,
    first_difference,
    run_engine_in_windows,
)

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
EXPIRED = date(2026, 10, 31)  # valid through 2026-10-31: invalid from t = 0 of START
US = 12125550100
GB = 442071234567
TOLL_FREE = 18005550100
UNROUTABLE = 33123456789
PLAN = frozenset({"phone_system", "domestic_calling_plan"})
PLAN_CREDITS = PLAN | {"communications_credits"}
OUT, TF = CallKind.OUTBOUND, CallKind.TOLL_FREE


# --------------------------------------------------------------------------- helpers


def world(*orgs: tuple, us=(20_000, 60, 60), gb=(20_000, 60, 60), toll_free=(20_000, 60, 60),
          minutes: int = 0, start: datetime = START, end_ms: int = 3_600_000) -> RatingSetup:
    """Orgs `org0`, `org1`, ... given as (licenses of each user, credits); users are US.

    Tariffs (per_minute_micro, first_s, next_s): `1` -> US zone A, `44` -> GB zone B, and
    toll-free callers from `44`.  `minutes` is every user's domestic plan (pool) size.
    """
    return RatingSetup(
        start=start, end_ms=end_ms, currency="USD",
        plans=Plans({"default": minutes}, international_minutes=0, dial_out_minutes=0),
        tariffs=(Tariff("1", *us, country="US", zone="A"), Tariff("44", *gb, country="GB", zone="B")),
        toll_free_tariffs=(Tariff("44", *toll_free),),
        orgs=tuple(
            Org(f"org{i}", tuple(User(f"o{i}u{k}", "US", lic) for k, lic in enumerate(licenses)),
                ("+18005550100",), credits)
            for i, (licenses, credits) in enumerate(orgs)
        ),
    )


def dead_card(initial: int = 0, retry_after_ms: int = 3_600_000, below: int = 1_000_000,
              card: date | None = EXPIRED, amount: int = 5_000_000) -> Credits:
    """Auto-recharge on, below the threshold, with a card that (by default) has expired."""
    return Credits(initial, True, below, amount, card, retry_after_ms)


def call(t: int, holding: int, to: int = US, *, org: int = 0, user: int = 0, kind=OUT) -> dict:
    return dict(t=t, holding=holding, to=to, org=org, user=user, kind=kind)


def arrivals(setup: RatingSetup, calls: list[dict]):
    index = {(o, u.id): i for i, (o, u) in enumerate(setup.users())}
    rows = []
    for c in calls:
        if c["kind"] == TF:
            rows.append((c["t"], c["org"], -1, int(TF), TOLL_FREE, GB, c["holding"]))
        else:
            user = index[(c["org"], f"o{c['org']}u{c['user']}")]
            rows.append((c["t"], c["org"], user, int(c["kind"]), c["to"], 0, c["holding"]))
    return arrivals_from_rows(rows)


def rate_both(setup: RatingSetup, calls: list[dict], cuts: list[list[int]] = ()):
    """Reference outputs, after checking that the engine gives the same in every cutting.

    Besides the given cuttings: one window per `advance` (no cuts), and a cut at, and one
    ms after, every arrival.
    """
    arr = arrivals(setup, calls)
    want_cdrs, want_events = run_reference(setup, arr)
    around = sorted({t + d for t in arr.t_ms.tolist() for d in (0, 1)} - {0})
    for cut in [[], around, *cuts]:
        cut = sorted({c for c in cut if 0 < c < setup.end_ms})
        got_cdrs, got_events = run_engine_in_windows(setup, arr, cut)
        problem = (first_difference("cdrs", CDR_COLUMNS, want_cdrs, got_cdrs)
                   or first_difference("events", EVENT_COLUMNS, want_events, got_events))
        assert not problem, f"cuts={cut}\n{problem}"
    return {row[0]: summary(row) for row in want_cdrs}, want_events


def summary(row: tuple) -> tuple:
    """(end_ms, billed_s, pool, pool_s, credits_micro, end_reason) of one CDR row."""
    r = dict(zip(CDR_COLUMNS, row))
    return (r["end_ms"], r["billed_s"], r["pool"], r["pool_s"], r["credits_micro"], r["end_reason"])


def blocked(t: int) -> tuple:
    return (t, 0, "", 0, 0, "blocked_no_balance")


def failed(t: int, org: str = "org0", balance: int = 0) -> tuple:
    return (t, org, "recharge_failed", None, balance, "card_expired")


def exhausted(t: int, org: str = "org0", balance: int = 0) -> tuple:
    return (t, org, "balance_exhausted", None, balance, None)


@pytest.fixture
def dead_path(monkeypatch):
    """Counts what the dead-org fast path did: calls it settled, recharge checks it ran.

    Tolerant of the hooks being renamed away (then nothing is asserted about coverage);
    the outcome assertions still hold the engine to the reference.
    """
    seen = Counter()

    def spy(name, count):
        orig = getattr(charging.Charger, name, None)
        if orig is None:
            return

        def wrapped(self, *args):
            out = args[-1]
            n, m = len(out.events), len(out.recharges)
            result = orig(self, *args)
            seen[name] += count(args, [*out.events[n:], *(e for c in out.recharges[m:] for e in c)])
            return result

        seen[name] += 0
        monkeypatch.setattr(charging.Charger, name, wrapped)

    spy("_settle_dead", lambda args, ev: int(np.count_nonzero(args[1])))
    spy("_fail_recharges", lambda args, ev: sum(e.kind == "recharge_failed" for e in ev))

    def expect(settled: bool = True, checks: bool = False):
        if "_settle_dead" in seen and settled:
            assert seen["_settle_dead"] > 0, "no call was settled by the dead-org path"
        if "_fail_recharges" in seen and checks:
            assert seen["_fail_recharges"] > 0, "no failing recharge check ran in the dead-org path"

    seen.expect = expect
    return seen


# --------------------------------------------------------------------------- refusals


def test_balance_one_below_the_cost_blocks_every_call(dead_path):
    """19,999 < 20,000: blocked at the first increment; balance_exhausted once."""
    setup = world(([PLAN_CREDITS], dead_card(initial=19_999)))
    cdrs, events = rate_both(setup, [call(10_000, 120_000), call(70_000, 30_000),
                                     call(70_000, 0)], cuts=[[10_000], [70_000]])
    assert cdrs == {1: blocked(10_000), 2: blocked(70_000),
                    3: (70_000, 0, "", 0, 0, "hangup")}  # holding 0: never charged
    assert events == [(0, "org0", "credits_purchased", 19_999, 19_999, None),
                      failed(0, balance=19_999), exhausted(10_000, balance=19_999)]
    dead_path.expect()


def test_balance_exactly_the_cost_pays_then_the_call_drops(dead_path):
    """20,000 = cost: the first minute is paid; the second is refused mid-call.

    A call arriving at the very ms of the refusal is blocked; the dropped call's later
    hang-up (300 s) is no org instant, so it carries no recharge check.
    """
    setup = world(([PLAN_CREDITS], dead_card(initial=20_000, retry_after_ms=100_000)),
                  end_ms=600_000)
    calls = [call(0, 300_000), call(60_000, 30_000), call(120_000, 5000, to=UNROUTABLE)]
    cdrs, events = rate_both(setup, calls, cuts=[[60_000], [59_999], [60_001], [30_000, 60_000]])
    assert cdrs == {1: (60_000, 60, "", 0, 20_000, "dropped_balance_exhausted"),
                    2: blocked(60_000),
                    3: (120_000, 0, "", 0, 0, "unroutable")}
    assert events == [(0, "org0", "credits_purchased", 20_000, 20_000, None),
                      failed(0), exhausted(60_000), failed(120_000)]
    dead_path.expect(checks=True)


def test_mid_call_increment_cheaper_than_a_first_one_keeps_the_org_paying(dead_path):
    """60/1 at 0.06/min: a first increment costs 60,000, each later one 1,000.

    Call 1 had its first minute from the pool; with 2,500 left it pays 1-second
    increments at 60 s and 61 s and drops at 62 s.  Call 2 arrives at 60.5 s: its first
    increment (60,000) is more than the balance (1,500), but the org is not dead, since
    call 1's current increment is payable.
    """
    setup = world(([PLAN_CREDITS], dead_card(initial=2_500)), us=(60_000, 60, 1), minutes=1,
                  end_ms=600_000)
    cdrs, events = rate_both(setup, [call(0, 300_000), call(60_500, 60_000)],
                             cuts=[[30_000], [60_000], [61_000], [62_000], [30_000, 60_501]])
    assert cdrs == {1: (62_000, 62, "domestic:US", 60, 2_000, "dropped_balance_exhausted"),
                    2: blocked(60_500)}
    assert events == [(0, "org0", "credits_purchased", 2_500, 2_500, None),
                      failed(0, balance=2_500), exhausted(60_500, balance=1_500)]
    dead_path.expect()


def test_mid_call_increment_dearer_than_a_first_one(dead_path):
    """1/60 at 0.03/min: a first increment costs 500, each later one 30,000.

    Call 1 pays its first second (balance 500) and is refused at 1 s.  Call 2, arriving
    at 0.8 s, can still pay its first second (500 <= 500): it drops at 1.8 s.
    """
    setup = world(([PLAN_CREDITS], dead_card(initial=1_000)), us=(30_000, 1, 60), end_ms=60_000)
    cdrs, events = rate_both(setup, [call(0, 30_000), call(800, 30_000)],
                             cuts=[[500], [1000], [1_800], [900, 1_800]])
    assert cdrs == {1: (1_000, 1, "", 0, 500, "dropped_balance_exhausted"),
                    2: (1_800, 1, "", 0, 500, "dropped_balance_exhausted")}
    assert events == [(0, "org0", "credits_purchased", 1_000, 1_000, None),
                      failed(0, balance=500), exhausted(1_000)]
    dead_path.expect()


def test_pool_runs_dry_then_the_call_drops_in_a_later_window(dead_path):
    """The pool (60 s) pays the first minute; the next boundary is refused (balance 0)."""
    setup = world(([PLAN_CREDITS], dead_card()), minutes=1, end_ms=600_000)
    cdrs, events = rate_both(setup, [call(0, 300_000), call(90_000, 10_000)],
                             cuts=[[30_000], [60_000], [30_000, 90_000]])
    assert cdrs == {1: (60_000, 60, "domestic:US", 60, 0, "dropped_balance_exhausted"),
                    2: blocked(90_000)}
    assert events == [failed(0), exhausted(60_000)]
    dead_path.expect()


# --------------------------------------------------------------------------- rate 0, licenses


def test_rate_zero_calls_stay_free_while_others_are_refused(dead_path):
    """US calls at rate 0 cost nothing from credits (even with no credits table), GB ones
    cost 20,000 a minute: in the same org, the first run on and the second are refused."""
    setup = world(([PLAN_CREDITS], None), us=(0, 60, 60), minutes=1, end_ms=600_000)
    calls = [call(0, 200_000), call(30_000, 150_000), call(60_000, 60_000, to=GB),
             call(100_000, 200_000, to=GB)]
    cdrs, events = rate_both(setup, calls, cuts=[[100_000], [45_000, 60_000], [150_000]])
    assert cdrs == {1: (200_000, 240, "domestic:US", 60, 0, "hangup"),
                    2: (180_000, 180, "", 0, 0, "hangup"),
                    3: blocked(60_000), 4: blocked(100_000)}
    assert events == [exhausted(60_000)]  # no credits table: balance 0, still reported
    dead_path.expect()


def test_free_calls_move_on_to_their_next_increment_length(dead_path):
    """Toll-free at rate 0 with 30/6 increments, free while a paid call is refused: the
    first increment (30 s) and then 6-second ones, whichever window each falls in."""
    setup = world(([PLAN_CREDITS], dead_card()), toll_free=(0, 30, 6), end_ms=120_000)
    calls = [call(0, 50_000, kind=TF), call(20_000, 55_000, kind=TF), call(31_000, 10_000)]
    cdrs, events = rate_both(setup, calls, cuts=[[10_000], [30_000], [31_000, 40_000]])
    # boundaries 0, 30, 36, 42, 48 s (54 s is after the hang-up) and 20, 50, 56, 62, 68, 74 s
    assert cdrs == {1: (50_000, 54, "", 0, 0, "hangup"), 2: (75_000, 60, "", 0, 0, "hangup"),
                    3: blocked(31_000)}
    assert events == [failed(0), exhausted(31_000)]
    dead_path.expect()


def test_rate_zero_without_credits_license_is_refused_once_the_pool_is_empty(dead_path):
    """No communications_credits: even a free increment cannot be paid from credits."""
    setup = world(([PLAN], dead_card(retry_after_ms=1_000)), us=(0, 60, 60), minutes=1,
                  end_ms=600_000)
    cdrs, events = rate_both(setup, [call(0, 300_000), call(10_000, 20_000)],
                             cuts=[[30_000], [60_000]])
    assert cdrs == {1: (60_000, 60, "domestic:US", 60, 0, "dropped_balance_exhausted"),
                    2: blocked(10_000)}
    # no balance_exhausted for a refusal because credits are not allowed (rules item 7);
    # the checks still run at every org instant (0, 10 s, 60 s; the blocked call's
    # hang-up at 30 s is no instant)
    assert events == [failed(0), failed(10_000), failed(60_000)]
    dead_path.expect(checks=True)


def test_balance_exhausted_waits_for_a_refusal_that_was_allowed_credits(dead_path):
    """User 0 has no credits license, user 1 has; toll-free calls always may use credits."""
    setup = world(([PLAN, PLAN_CREDITS], Credits(initial_micro=0)), end_ms=60_000)
    calls = [call(5_000, 10_000), call(9_000, 10_000, user=1), call(9_000, 10_000, kind=TF),
             call(12_000, 10_000, kind=TF)]
    cdrs, events = rate_both(setup, calls, cuts=[[5_000], [9_000]])
    assert cdrs == {1: blocked(5_000), 2: blocked(9_000), 3: blocked(9_000), 4: blocked(12_000)}
    assert events == [exhausted(9_000)]
    dead_path.expect()


# --------------------------------------------------------------------------- recharge checks


def test_pool_paid_boundaries_are_check_instants(dead_path):
    """Balance 0 < 1, card expired, retry 90 s; a call paid from the pool has boundaries
    at 0, 60, ..., 240 s and hangs up at 300 s.  Checks: 0, then the first instant at or
    after 90 s (120 s), then at or after 210 s (240 s); 300 s < 330 s."""
    setup = world(([PLAN_CREDITS], dead_card(below=1, retry_after_ms=90_000)), minutes=60,
                  end_ms=600_000)
    cdrs, events = rate_both(setup, [call(0, 300_000), call(1_000, 10_000, to=GB)],
                             cuts=[[120_000], [119_999, 120_001], [90_000], [240_000, 300_000]])
    assert cdrs == {1: (300_000, 300, "domestic:US", 300, 0, "hangup"), 2: blocked(1_000)}
    assert events == [failed(0), exhausted(1_000), failed(120_000), failed(240_000)]
    dead_path.expect(checks=True)


def test_hangups_and_rejected_arrivals_are_check_instants_refused_calls_hangups_are_not(
        dead_path):
    """Retry 10 s.  A free toll-free call (rate 0) hangs up at 50 s: an instant.  Call 2 is
    blocked at 20 s (exhausted, then the check fails at the same instant, in that order);
    its would-be hang-up at 65 s is no instant.  An unroutable arrival at 80 s is one."""
    setup = world(([PLAN_CREDITS], dead_card(below=1, retry_after_ms=10_000)),
                  toll_free=(0, 60, 60), end_ms=120_000)
    calls = [call(0, 50_000, kind=TF), call(20_000, 45_000), call(80_000, 1_000, to=UNROUTABLE)]
    cdrs, events = rate_both(setup, calls, cuts=[[20_000], [50_000], [65_000], [30_000, 80_000]])
    assert cdrs == {1: (50_000, 60, "", 0, 0, "hangup"), 2: blocked(20_000),
                    3: (80_000, 0, "", 0, 0, "unroutable")}
    assert events == [failed(0), exhausted(20_000), failed(20_000), failed(50_000),
                      failed(80_000)]
    dead_path.expect(checks=True)


@pytest.mark.parametrize("retry_ms, times", [
    (0, [0, 6_000, 12_000, 12_001, 18_000, 24_000, 30_000]),
    (1, [0, 6_000, 12_000, 12_001, 18_000, 24_000, 30_000]),
    (1_000, [0, 6_000, 12_000, 18_000, 24_000, 30_000]),
    (6_000, [0, 6_000, 12_000, 18_000, 24_000, 30_000]),
    (7_000, [0, 12_000, 24_000]),
    (12_001, [0, 12_001, 30_000]),
])
def test_several_failed_checks_in_one_window(dead_path, retry_ms, times):
    """A free 6/6 toll-free call (boundaries 0..24 s, hang-up 30 s) and unroutable arrivals
    at 12 s (on a boundary) and 12.001 s: one check per instant, once retry_after passed."""
    setup = world(([PLAN_CREDITS], dead_card(below=1, retry_after_ms=retry_ms)),
                  toll_free=(0, 6, 6), end_ms=60_000)
    calls = [call(0, 30_000, kind=TF), call(12_000, 1_000, to=UNROUTABLE),
             call(12_001, 1_000, to=UNROUTABLE)]
    cdrs, events = rate_both(setup, calls, cuts=[[12_000], [12_001], [6_000, 12_000, 18_000]])
    assert cdrs[1] == (30_000, 30, "", 0, 0, "hangup")
    assert events == [failed(t) for t in times]
    dead_path.expect(checks=True)


@pytest.mark.parametrize("retry_ms", [1, 999, 1_000, 2_500])
def test_a_long_chain_of_failed_checks_in_one_window(dead_path, retry_ms):
    """Free 1/1 toll-free calls on distinct ms (a charge instant every second each) keep an
    org with an expired card checking: with a short wait, thousands of checks in one window,
    each the first instant at or after the last one plus the wait (the checks are found by
    doubling along that chain: every length from 1 to 2**k must come out right)."""
    setup = world(([PLAN_CREDITS], dead_card(below=1, retry_after_ms=retry_ms)),
                  toll_free=(0, 1, 1), end_ms=600_000)
    calls = [call(7 * k + (k % 3), 590_000 - 7 * k, kind=TF) for k in range(40)]
    _, events = rate_both(setup, calls, cuts=[[300_000], [123_457, 400_000]])
    # each call's instants: its arrival and charges every second, then its hang-up
    instants = sorted({c["t"] + ms for c in calls for ms in [*range(0, c["holding"], 1_000), c["holding"]]})
    checks, ready = [], 0
    for t in instants:  # the rule, instant by instant
        if t >= ready:
            checks.append(t)
            ready = t + retry_ms
    assert events == [failed(t) for t in checks]
    assert len(checks) > (20_000 if retry_ms == 1 else 150)  # checks at every instant, or every few seconds
    dead_path.expect(checks=True)


def test_card_expiring_at_a_window_start_or_inside_a_window(dead_path):
    """Start 23:00, card valid through that day: invalid from t = 1 h.  Recharges of 1
    micro keep the balance below the threshold, so every instant before 1 h recharges and
    every one from 1 h on fails (retry 60 s)."""
    start = datetime(2026, 11, 1, 23, tzinfo=timezone.utc)
    hour = 3_600_000
    setup = world(([PLAN_CREDITS], dead_card(card=date(2026, 11, 1), amount=1,
                                             retry_after_ms=60_000)),
                  start=start, end_ms=2 * hour)
    calls = [call(1_000_000, 1_000, to=UNROUTABLE), call(hour - 1, 1_000, to=UNROUTABLE),
             call(hour, 90_000), call(hour + 30_000, 90_000), call(hour + 60_000, 90_000)]
    cdrs, events = rate_both(setup, calls, cuts=[[hour], [hour - 1], [hour + 1], [3_000_000],
                                                 [hour - 1, hour]])
    assert {i: cdrs[i] for i in (3, 4, 5)} == {3: blocked(hour), 4: blocked(hour + 30_000),
                                                5: blocked(hour + 60_000)}
    succeeded = [(t, "org0", "recharge_succeeded", 1, b, None)
                 for t, b in ((0, 1), (1_000_000, 2), (hour - 1, 3))]
    assert events == succeeded + [exhausted(hour, balance=3), failed(hour, balance=3),
                                  failed(hour + 60_000, balance=3)]
    dead_path.expect(checks=True)


def test_check_exactly_when_the_retry_wait_ends(dead_path):
    """The check at 0 fails (expired card, retry 1 h): the next one runs at the first
    instant at or after 1 h, here exactly 1 h, also when a window starts there."""
    hour = 3_600_000
    setup = world(([PLAN_CREDITS], dead_card(retry_after_ms=hour)), end_ms=2 * hour)
    cdrs, events = rate_both(setup, [call(hour - 1, 10_000), call(hour, 10_000),
                                     call(hour + 1, 10_000)],
                             cuts=[[hour], [hour + 1], [hour - 1]])
    assert cdrs == {1: blocked(hour - 1), 2: blocked(hour), 3: blocked(hour + 1)}
    assert events == [failed(0), exhausted(hour - 1), failed(hour)]
    dead_path.expect(checks=True)


# --------------------------------------------------------------------------- boundaries, end


def test_hangup_or_end_exactly_at_the_boundary_that_would_be_refused(dead_path):
    """Pool 60 s, balance 0: the boundary at 60 s would be refused, but a hang-up exactly
    there comes first, and at the end of the simulation nothing is charged."""
    setup = world(([PLAN_CREDITS], dead_card()), minutes=1, end_ms=240_000)
    calls = [call(0, 60_000), call(60_000, 60_000), call(120_000, 500_000, to=GB)]
    cdrs, events = rate_both(setup, calls, cuts=[[30_000], [60_000], [90_000, 120_000]])
    assert cdrs == {1: (60_000, 60, "domestic:US", 60, 0, "hangup"), 2: blocked(60_000),
                    3: blocked(120_000)}
    assert events == [failed(0), exhausted(60_000)]
    setup = world(([PLAN_CREDITS], dead_card()), minutes=1, end_ms=60_000)
    cdrs, events = rate_both(setup, [call(0, 120_000)], cuts=[[30_000], [59_999]])
    assert cdrs == {1: (60_000, 60, "domestic:US", 60, 0, "simulation_end")}
    assert events == [failed(0)]


def test_refill_instant_runs_the_check_and_revives_the_pool(dead_path):
    """Start 23:30 on the 30th: refill at 30 min.  Retry 60 s.  Before the refill every
    credit-paid increment is refused; at the refill the pool pays a new call's first
    minute, and its second is refused."""
    start = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)
    refill = 1_800_000
    setup = world(([PLAN_CREDITS], dead_card(retry_after_ms=60_000)), minutes=1, start=start,
                  end_ms=3_600_000)
    calls = [call(0, 3_000_000), call(1_700_000, 10_000), call(refill, 600_000)]
    cdrs, events = rate_both(setup, calls, cuts=[[refill - 1], [refill + 1], [1_000_000]])
    assert cdrs == {1: (60_000, 60, "domestic:US", 60, 0, "dropped_balance_exhausted"),
                    2: blocked(1_700_000),
                    3: (refill + 60_000, 60, "domestic:US", 60, 0, "dropped_balance_exhausted")}
    assert events == [failed(0), exhausted(60_000), failed(60_000), failed(1_700_000),
                      (refill, "org0", "pools_refilled", None, None, None), failed(refill),
                      failed(refill + 60_000)]
    dead_path.expect(checks=True)


def test_lot_expiry_instant_runs_the_check_after_credits_expired(dead_path):
    """5,000 left can pay nothing (a minute costs 20,000).  At the lot's expiry, a year
    on (also a refill), credits_expired comes before the failing check; a call arriving
    at that very instant is blocked without a second balance_exhausted."""
    expiry = 365 * 86_400_000  # 2026-11-01 -> 2027-11-01
    setup = world(([PLAN_CREDITS], dead_card(initial=5_000)), end_ms=expiry + 60_000)
    cdrs, events = rate_both(setup, [call(1_000, 10_000), call(expiry, 10_000)],
                             cuts=[[expiry], [expiry + 1]])
    assert cdrs == {1: blocked(1_000), 2: blocked(expiry)}
    refills = month_starts_ms(START, setup.end_ms)  # instants too: each runs a check
    assert refills[-1] == expiry
    monthly = [e for r in refills[:-1] for e in
               ((r, "org0", "pools_refilled", None, None, None), failed(r, balance=5_000))]
    assert events == [(0, "org0", "credits_purchased", 5_000, 5_000, None),
                      failed(0, balance=5_000), exhausted(1_000, balance=5_000), *monthly,
                      (expiry, "org0", "pools_refilled", None, None, None),
                      (expiry, "org0", "credits_expired", 5_000, 0, None), failed(expiry)]
    dead_path.expect(checks=True)


# --------------------------------------------------------------------------- several orgs


def test_several_orgs_dead_and_alive_in_one_window(dead_path):
    """org0 has no credits table (toll-free still may use credits: balance 0); org1 is
    dead with an expired card (retry 30 s); org2 pays normally.  Events interleave by
    (time, org)."""
    setup = world(([PLAN_CREDITS], None),
                  ([PLAN_CREDITS], dead_card(below=1, retry_after_ms=30_000)),
                  ([PLAN_CREDITS], Credits(initial_micro=1_000_000)),
                  end_ms=300_000)
    calls = [call(0, 90_000, org=2), call(30_000, 10_000, kind=TF, org=0),
             call(30_000, 10_000, org=1), call(45_000, 10_000, org=1, kind=TF),
             call(60_000, 10_000, org=1, to=UNROUTABLE)]
    cdrs, events = rate_both(setup, calls, cuts=[[30_000], [30_001], [60_000]])
    assert cdrs == {1: (90_000, 120, "", 0, 40_000, "hangup"), 2: blocked(30_000),
                    3: blocked(30_000), 4: blocked(45_000),
                    5: (60_000, 0, "", 0, 0, "unroutable")}
    assert events == [failed(0, "org1"), (0, "org2", "credits_purchased", 1_000_000, 1_000_000, None),
                      exhausted(30_000, "org0"), exhausted(30_000, "org1"), failed(30_000, "org1"),
                      failed(60_000, "org1")]
    dead_path.expect(checks=True)


def test_checks_a_second_apart_walk_every_instant_of_a_busy_dead_org(dead_path):
    """retry_after = 1 s and calls every 0.4 s, free ones paying each 6 s: a check at the
    first org instant at or after each wait, hundreds in one window, as the reference runs them."""
    setup = world(([PLAN_CREDITS], dead_card(retry_after_ms=1_000)), us=(0, 6, 6), end_ms=300_000)
    calls = [call(400 * i, 20_000 + 37 * i, to=US if i % 3 else GB) for i in range(500)]
    cdrs, events = rate_both(setup, calls, cuts=[[100_000], [77_777, 200_001]])
    checks = [e[0] for e in events if e[2] == "recharge_failed"]
    assert len(checks) > 150 and all(b - a >= 1_000 for a, b in zip(checks, checks[1:]))
    assert any(r[5] == "blocked_no_balance" for r in cdrs.values())
    dead_path.expect(checks=True)
