"""Hypothesis strategies for rating cases: a `RatingSetup`, its `Arrivals`, window cuts.

The cases are small (at most 40 calls) but built to hit the corners of SPEC §3 often:
overlapping tariff prefixes, tiny pools and balances, odd micro-unit rates (so rounding
up matters), starts a minute before a month end, 13-14 month runs (lot expiries),
arrivals colliding on one millisecond or landing exactly on other calls' increment
boundaries, month starts and lot expiries, and holding times of 0 or exact multiples of
increments (hang-up exactly on a boundary or at the end).

Only `rating_cases` and `window_cuts` are strategies.  The pieces are plain functions of
`draw` over a few cached primitive strategies: building fresh strategy objects for every
call made generation ~50x slower than the reference itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from itertools import product
from typing import Any, TypeVar

import numpy as np
from hypothesis import strategies as st

from rating_core._model import (
    LICENSES,
    Arrivals,
    CallKind,
    Credits,
    Org,
    Plans,
    RatingSetup,
    Tariff,
    User,
)
from .reference import add_months, lot_expiry_ms, month_starts_ms, ms_between

T = TypeVar("T")
Draw = Callable[[st.SearchStrategy[Any]], Any]

COUNTRIES = ("US", "GB", "DE")
PREFIX_COUNTRY = {
    "1": "US", "12": "US", "121": "US", "1212": "US",
    "44": "GB", "4420": "GB", "49": "DE", "491": "DE",
}
TOLL_FREE_PREFIXES = ("1", "12", "44", "4420", "49")
INCREMENTS = ((1, 1), (6, 6), (30, 6), (60, 60), (60, 1), (1, 60))
NUMBERS = (
    12125550100, 12135550100, 14155550100, 18005550100, 442071234567, 441611234567,
    4930123456, 491701234567, 33123456789,  # the last one routes nowhere
)
TOLL_FREE_NUMBERS = ("+18005550100", "+448000000001")
STARTS = (
    datetime(2026, 1, 31, 23, 59, tzinfo=timezone.utc),
    datetime(2026, 11, 1, tzinfo=timezone.utc),
    datetime(2027, 12, 31, 23, 58, 30, tzinfo=timezone.utc),
    datetime(2028, 2, 29, 12, tzinfo=timezone.utc),
    datetime(2026, 3, 31, 23, 59, 59, tzinfo=timezone.utc),
)
COMMON_LICENSES = (
    frozenset({"phone_system", "domestic_calling_plan"}),
    frozenset({"phone_system", "domestic_calling_plan", "communications_credits"}),
    frozenset({"phone_system", "international_calling_plan", "communications_credits"}),
    frozenset({"e5", "domestic_calling_plan", "communications_credits"}),
    frozenset({"e5", "international_calling_plan"}),
    frozenset({"audio_conferencing", "communications_credits"}),
)
ALL_LICENSES = tuple(sorted(LICENSES))
RATES = (0, 1, 7, 10_000, 12_345, 20_000, 99_999, 333_333)
MONEY = (0, 1, 20_000, 50_000, 123_457, 1_000_000)
RECHARGE_AMOUNTS = (10_000, 50_000, 200_001, 1_000_000, 2_000_000)  # not tiny: one lot per instant
RETRY_AFTER_MS = (1, 1000, 60_000, 3_600_000, 86_400_000)
DIAL_OUT_ZONES = (("A",), ("A", "B"), (), ("B",))
STEPS_MS = (1000, 6000, 30_000, 60_000)
KINDS = (CallKind.OUTBOUND,) * 3 + (CallKind.CONFERENCE_DIAL_OUT, CallKind.TOLL_FREE)
# Several choices folded into one pick each, the usual case first (it is what shrinks).
TARIFF_SHAPES = tuple(product(INCREMENTS, "AAB", (False, False, False, True)))
LICENSE_SETS = COMMON_LICENSES * 10 + tuple(
    frozenset(x for i, x in enumerate(ALL_LICENSES) if mask >> i & 1)
    for mask in range(2 ** len(ALL_LICENSES))
)
USER_SHAPES = tuple(product(COUNTRIES, LICENSE_SETS))
CALL_SHAPES = tuple(product(KINDS, range(len(NUMBERS)), (0, 0, 0, 0, 0) + NUMBERS))
OFFSETS_MS = tuple(k * step for k in range(-3, 9) for step in STEPS_MS)
MONTH_MS = 31 * 24 * 3600 * 1000
DAY_MS = 24 * 3600 * 1000
MAX_HOLDING_MS = 2 * 3600 * 1000


# --------------------------------------------------------------------------- primitives


@lru_cache(maxsize=4096)
def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


def integer(draw: Draw, lo: int, hi: int) -> int:
    return draw(_integers(lo, hi))


def pick(draw: Draw, options: Sequence[T]) -> T:
    """One of `options`; shrinks towards the first."""
    return options[integer(draw, 0, len(options) - 1)]


def chance(draw: Draw, one_in: int) -> bool:
    """True with probability about 1/one_in."""
    return integer(draw, 1, one_in) == 1


def subset(draw: Draw, options: Sequence[T]) -> list[T]:
    """Any subset, from one bitmask draw (hypothesis costs ~0.1 ms a draw here)."""
    mask = integer(draw, 0, 2 ** len(options) - 1)
    return [x for i, x in enumerate(options) if mask >> i & 1]


def arrivals_from_rows(rows: list[tuple[int, int, int, int, int, int, int]]) -> Arrivals:
    """Arrivals from (t_ms, org, user, kind, to, from, holding_ms) rows.

    Rows are sorted by time (stably, so draw order breaks ties) and numbered 1, 2, 3 ...
    as SPEC §3 numbers calls.
    """
    rows = sorted(rows, key=lambda row: row[0])
    t, org, user, kind, to, frm, holding = zip(*rows) if rows else [()] * 7
    return Arrivals(
        call_id=np.arange(1, len(rows) + 1, dtype=np.int64),
        t_ms=np.array(t, dtype=np.int64),
        org=np.array(org, dtype=np.int32),
        user=np.array(user, dtype=np.int32),
        kind=np.array(kind, dtype=np.int8),
        to_number=np.array(to, dtype=np.int64),
        from_number=np.array(frm, dtype=np.int64),
        holding_ms=np.array(holding, dtype=np.int64),
    )


# --------------------------------------------------------------------------- setup


def draw_rate(draw: Draw) -> int:
    """Per-minute rates, often odd so that ceil(per_minute × r / 60) rounds."""
    return pick(draw, RATES) if chance(draw, 2) else integer(draw, 0, 2_000_000)


def draw_tariffs(draw: Draw, prefixes: Sequence[str], toll_free: bool) -> tuple[Tariff, ...]:
    """A few tariffs whose prefixes overlap, so longest-prefix match matters."""
    rows = []
    # Short (country) prefixes are usually present, so most numbers route somewhere.
    short = [p for p in prefixes if len(p) <= 2 and not chance(draw, 8)]
    chosen = short + subset(draw, [p for p in prefixes if len(p) > 2])
    for prefix in sorted(chosen) or [prefixes[0]]:
        (first_s, next_s), zone, excluded = pick(draw, TARIFF_SHAPES)
        extra = {} if toll_free else dict(
            country=PREFIX_COUNTRY[prefix], zone=zone, plan_excluded=excluded
        )
        rows.append(Tariff(prefix, draw_rate(draw), first_s, next_s, **extra))
    return tuple(rows)


def draw_plans(draw: Draw) -> Plans:
    """Small plan minutes, so pools run out within a few calls."""
    domestic = {"default": integer(draw, 0, 3)}
    if chance(draw, 2):
        domestic[pick(draw, COUNTRIES)] = integer(draw, 0, 3)
    return Plans(domestic, integer(draw, 0, 3), integer(draw, 0, 3), pick(draw, DIAL_OUT_ZONES))


def draw_money(draw: Draw) -> int:
    return pick(draw, MONEY) if chance(draw, 2) else integer(draw, 0, 2_000_000)


def draw_card(draw: Draw, start: datetime) -> date | None:
    """Never expires, expired before the start, on its first day, or later."""
    how = integer(draw, 0, 3)
    if how == 0:
        return None
    if how == 1:
        return start.date() - timedelta(days=integer(draw, 0, 1))
    return start.date() + timedelta(days=integer(draw, 0, 420 if how == 2 else 2))


def draw_credits(draw: Draw, start: datetime) -> Credits | None:
    """Small balances, auto-recharge on or off, small retry waits."""
    if chance(draw, 5):
        return None
    return Credits(
        initial_micro=draw_money(draw),
        auto_recharge=chance(draw, 2),
        recharge_below_micro=draw_money(draw),
        recharge_amount_micro=pick(draw, RECHARGE_AMOUNTS),
        card_expires=draw_card(draw, start),
        retry_after_ms=pick(draw, RETRY_AFTER_MS),
    )


def draw_org(draw: Draw, i: int, start: datetime) -> Org:
    users = tuple(
        User(f"o{i}-u{u}", *pick(draw, USER_SHAPES)) for u in range(integer(draw, 1, 4))
    )
    return Org(f"org{i}", users, tuple(subset(draw, TOLL_FREE_NUMBERS)),
               draw_credits(draw, start))


def draw_start(draw: Draw) -> datetime:
    """Mostly instants just before a month end (refills early in the run)."""
    if chance(draw, 4):
        first = datetime(2026, 1, 1, tzinfo=timezone.utc)
        return first + timedelta(seconds=integer(draw, 0, 4 * 365 * 86_400))
    return pick(draw, STARTS)


def draw_end_ms(draw: Draw, start: datetime) -> tuple[int, bool]:
    """(end_ms, long_run): minutes to hours, a few days, or 13-14 months."""
    how = integer(draw, 0, 4)
    if how <= 2:
        return (pick(draw, (60_000, 120_000, 3_600_000)) if how == 0
                else integer(draw, 1, 4 * 3_600_000)), False
    if how == 3:
        return integer(draw, 1, 3 * DAY_MS), False
    thirteen_months = ms_between(start, add_months(start, 13))
    return thirteen_months + integer(draw, 0, MONTH_MS), True


def draw_setup(draw: Draw) -> tuple[RatingSetup, bool]:
    start = draw_start(draw)
    end_ms, long_run = draw_end_ms(draw, start)
    setup = RatingSetup(
        start=start,
        end_ms=end_ms,
        currency="USD",
        plans=draw_plans(draw),
        tariffs=draw_tariffs(draw, tuple(PREFIX_COUNTRY), toll_free=False),
        toll_free_tariffs=draw_tariffs(draw, TOLL_FREE_PREFIXES, toll_free=True),
        orgs=tuple(draw_org(draw, i, start) for i in range(integer(draw, 1, 4))),
    )
    return setup, long_run


# --------------------------------------------------------------------------- arrivals


def anchors_ms(setup: RatingSetup) -> list[int]:
    """Instants worth landing on: start, refills, the first lots' expiry, just before end."""
    anchors = [0, setup.end_ms - 1] + month_starts_ms(setup.start, setup.end_ms)
    expiry = lot_expiry_ms(setup.start, 0)
    return anchors + ([expiry] if expiry < setup.end_ms else [])


def draw_arrival_ms(draw: Draw, setup: RatingSetup, bases: list[int]) -> int:
    """Uniform, or an anchor / an earlier arrival plus or minus whole increments."""
    if chance(draw, 4):
        return integer(draw, 0, setup.end_ms - 1)
    t = pick(draw, bases) + pick(draw, OFFSETS_MS)
    return min(max(t, 0), setup.end_ms - 1)


def draw_holding_ms(draw: Draw, setup: RatingSetup, t: int) -> int:
    """0, whole seconds, exact multiples of increments, up to the end exactly, rarely long.

    Never above 2 h: the reference pays every increment, and 1/1 for days is too slow.
    """
    how = integer(draw, 0, 5)
    if how == 0:
        return 0
    if how == 1:
        return integer(draw, 0, 300) * 1000
    if how == 2:
        return integer(draw, 1, 20) * pick(draw, (6000, 60_000))
    if how == 3 and setup.end_ms - t <= MAX_HOLDING_MS:
        return setup.end_ms - t
    return integer(draw, 0, MAX_HOLDING_MS if chance(draw, 10) else 600_000)


def draw_arrival(draw: Draw, setup: RatingSetup, bases: list[int]) -> tuple:
    """One (t_ms, org, user, kind, to, from, holding_ms) row."""
    t = draw_arrival_ms(draw, setup, bases)
    org = integer(draw, 0, len(setup.orgs) - 1)
    kind, to_index, frm = pick(draw, CALL_SHAPES)
    to = NUMBERS[to_index]
    if kind == CallKind.TOLL_FREE:
        ours = [int(n.lstrip("+")) for n in setup.orgs[org].toll_free_numbers]
        if ours and to_index < 7:  # mostly one of the org's own toll-free numbers
            to = ours[to_index % len(ours)]
        user = -1
    else:
        user = pick(draw, [i for i, (o, _) in enumerate(setup.users()) if o == org])
    return (t, org, user, int(kind), to, frm, draw_holding_ms(draw, setup, t))


@st.composite
def rating_cases(draw: Draw) -> tuple[RatingSetup, Arrivals]:
    """A random setup and its arrivals: up to 40 calls, or 8 on a 13-14 month run."""
    setup, long_run = draw_setup(draw)
    bases = anchors_ms(setup)
    rows = []
    for _ in range(integer(draw, 0, 8 if long_run else 40)):
        rows.append(draw_arrival(draw, setup, bases))
        bases.append(rows[-1][0])  # later calls collide with / align on earlier ones
    return setup, arrivals_from_rows(rows)


# --------------------------------------------------------------------------- frequent recharges

RECHARGE_INCREMENTS = ((1, 1), (6, 6), (30, 6), (60, 60))
RECHARGE_STARTS = (  # the card, valid through its day, expires a minute or a second into the run
    datetime(2026, 11, 1, 23, 59, tzinfo=timezone.utc),
    datetime(2027, 2, 28, 23, 59, 59, tzinfo=timezone.utc),
    datetime(2026, 11, 2, 9, tzinfo=timezone.utc),
    # lots bought on 02-29 expire before those bought late on 02-28 (2029-02-28, each at its time)
    datetime(2028, 2, 28, 23, 59, 30, tzinfo=timezone.utc),
)


def draw_recharge_credits(draw: Draw, start: datetime, cost: int) -> Credits | None:
    """Credits that recharge every few increments: amounts around one increment's `cost`, a
    trigger near the balance; or the credits of a dead (card expired, nothing left) or an
    exhausted (nothing left, no recharge) org."""
    how = integer(draw, 0, 9)
    if how == 0:
        return None  # a balance of 0, never topped up
    if how == 1:  # dead: the card expired before the start
        return Credits(integer(draw, 0, cost), True, integer(draw, 0, 3 * cost), integer(draw, 1, 3 * cost),
                       start.date() - timedelta(days=1), pick(draw, RETRY_AFTER_MS))
    if how == 2:  # exhausted: a little, no recharge
        return Credits(integer(draw, 0, 2 * cost), False, 0, 0, None, 1)
    below = integer(draw, 0, 4 * cost)
    return Credits(
        initial_micro=max(0, below + integer(draw, -cost, 3 * cost)),
        auto_recharge=True,
        recharge_below_micro=below,
        # mostly a few increments' worth; sometimes less than one (the balance trails the trigger)
        recharge_amount_micro=integer(draw, 1, cost) if chance(draw, 4) else integer(draw, cost, 8 * cost),
        card_expires=pick(draw, (None, None, start.date() + timedelta(days=1), start.date())),
        retry_after_ms=pick(draw, RETRY_AFTER_MS),
    )


def draw_org_call(draw: Draw, setup: RatingSetup, users: list, t: int, toll_free_one_in: int) -> tuple:
    """(t, org, user, kind, to, from) of a call to the "1" tariff from a random org: toll-free to
    the org's number about once in `toll_free_one_in` when it has one, else one of its users'."""
    org = integer(draw, 0, len(setup.orgs) - 1)
    if setup.orgs[org].toll_free_numbers and chance(draw, toll_free_one_in):
        return (t, org, -1, int(CallKind.TOLL_FREE), 18005550100, 12125550199)
    user = pick(draw, [u for u, (o, _) in enumerate(users) if o == org])
    return (t, org, user, int(CallKind.OUTBOUND), 12125550100, 0)


@st.composite
def recharge_cases(draw: Draw) -> tuple[RatingSetup, Arrivals]:
    """Busy orgs whose credits recharge every few increments (SPEC §3 "Credits"), mixed with
    dead, exhausted and healthy ones: up to 40 overlapping calls over an hour or two, tiny
    pools, recharge amounts near one increment's cost, thresholds near the balance, cards
    that expire mid-run.  The bulk recharges of the rating core against the reference."""
    start = pick(draw, RECHARGE_STARTS)
    end_ms = integer(draw, 60_000, 2 * 3_600_000)
    first_s, next_s = pick(draw, RECHARGE_INCREMENTS)
    rate = integer(draw, 1_000, 60_000)
    cost = -(-rate * next_s // 60)  # one later increment, paid from credits
    orgs = []
    for i in range(integer(draw, 1, 4)):
        users = tuple(User(f"o{i}-u{u}", "US", COMMON_LICENSES[1] if u or not chance(draw, 4) else COMMON_LICENSES[0])
                      for u in range(integer(draw, 1, 3)))
        orgs.append(Org(f"org{i}", users, ("+18005550100",) if chance(draw, 2) else (),
                        draw_recharge_credits(draw, start, cost)))
    setup = RatingSetup(
        start=start, end_ms=end_ms, currency="USD",
        plans=Plans({"default": pick(draw, (0, 600, 1, 2))}, 0, 0, ()),  # 600: calls the pool pays throughout
        tariffs=(Tariff("1", rate, first_s, next_s, "US", "A"),),
        toll_free_tariffs=(Tariff("1", integer(draw, 0, 2) * rate, first_s, next_s),),
        orgs=tuple(orgs),
    )
    users = setup.users()
    rows = []
    bases = [0, 1000, 60_000]
    for _ in range(integer(draw, 1, 40)):
        t = draw_arrival_ms(draw, setup, bases)
        rows.append(draw_org_call(draw, setup, users, t, 3) + (integer(draw, 0, 20 * 60_000),))
        bases.append(t)
    return setup, arrivals_from_rows(rows)


@st.composite
def busy_recharge_cases(draw: Draw) -> tuple[RatingSetup, Arrivals]:
    """Orgs recharging every few charges while many calls are connected, under two tariffs of
    different increments (SPEC §3 "Increments", "Credits"): calls answered on one millisecond,
    on one millisecond of different seconds, or whole increments apart; amounts from below
    one charge to many; triggers near the balance; pools that run dry; cards that expire
    mid-run.  The engine finds such orgs' recharges second by second (`rating_core._crossings`)
    whenever it can prove them, and row by row otherwise."""
    start = pick(draw, RECHARGE_STARTS)
    end_ms = integer(draw, 60_000, 3_600_000)
    increments = [pick(draw, RECHARGE_INCREMENTS) for _ in range(2)]
    rates = [integer(draw, 1_000, 60_000) for _ in range(2)]
    cost = max(-(-rate * next_s // 60) for rate, (_, next_s) in zip(rates, increments))
    orgs = []
    for i in range(integer(draw, 1, 3)):
        users = tuple(User(f"o{i}-u{u}", "US", COMMON_LICENSES[1] if u or not chance(draw, 4) else COMMON_LICENSES[0])
                      for u in range(integer(draw, 1, 3)))
        credits = draw_recharge_credits(draw, start, cost)
        if credits is not None and credits.auto_recharge and chance(draw, 2):  # many charges a recharge
            credits = replace(credits, recharge_amount_micro=integer(draw, cost, 40 * cost))
        orgs.append(Org(f"org{i}", users, ("+18005550100",) if chance(draw, 3) else (), credits))
    setup = RatingSetup(
        start=start, end_ms=end_ms, currency="USD",
        plans=Plans({"default": pick(draw, (0, 600, 1, 2))}, 0, 0, ()),
        tariffs=(Tariff("1", rates[0], *increments[0], "US", "A"), Tariff("1212", rates[1], *increments[1], "US", "A")),
        toll_free_tariffs=(Tariff("1", rates[1], *increments[1]),),
        orgs=tuple(orgs),
    )
    users = setup.users()
    rows = []
    bases = [0, 1000, 60_000]
    for _ in range(integer(draw, 1, 60)):
        if chance(draw, 3):  # the same millisecond of another second
            t = min(max(pick(draw, bases) + 1000 * integer(draw, -5, 60), 0), end_ms - 1)
        else:
            t = draw_arrival_ms(draw, setup, bases)
        t_, org, user, kind, to, frm = draw_org_call(draw, setup, users, t, 4)
        if kind == int(CallKind.OUTBOUND) and chance(draw, 2):
            to = 14155550100  # the other tariff ("1"; 1212... routes to "1212")
        rows.append((t_, org, user, kind, to, frm, integer(draw, 0, 20 * 60_000)))
        bases.append(t)
    return setup, arrivals_from_rows(rows)


# --------------------------------------------------------------------------- stuck below the trigger


def draw_stuck_credits(draw: Draw, start: datetime, cost: int) -> Credits:
    """Credits whose balance trails a trigger far above it, recharged by less than one
    increment's `cost` (or just more): about every other charge is refused and the org
    recharges at almost every instant.  The card may expire a second, a minute or a day
    into the run (then attempts fail and wait `retry_after`)."""
    how = integer(draw, 0, 3)
    if how == 0:
        amount = 1  # the smallest recharge: almost every charge refused
    elif how == 1:
        amount = integer(draw, max(1, cost - 3), cost + 3)  # about one increment
    else:
        amount = integer(draw, 1, cost)
    return Credits(
        initial_micro=integer(draw, 0, 2 * cost),
        auto_recharge=True,
        recharge_below_micro=integer(draw, 20 * cost, 200 * cost),
        recharge_amount_micro=amount,
        card_expires=pick(draw, (None, None, start.date(), start.date() + timedelta(days=1))),
        retry_after_ms=pick(draw, RETRY_AFTER_MS),
    )


@st.composite
def below_increment_cases(draw: Draw) -> tuple[RatingSetup, Arrivals]:
    """Busy orgs whose recharge amount is below one increment's cost, or near it (SPEC §3
    "Credits", "Paying one increment"): up to 60 calls crowded into a few minutes, many of
    them connected at once, charges colliding on one millisecond, tiny pools that run dry,
    beside an org of ordinary credits.  The stepping path against the reference."""
    start = pick(draw, RECHARGE_STARTS)
    end_ms = integer(draw, 60_000, 40 * 60_000)
    first_s, next_s = pick(draw, RECHARGE_INCREMENTS)
    rate = integer(draw, 1_000, 60_000)
    cost = -(-rate * max(first_s, next_s) // 60)  # the dearer increment, paid from credits
    orgs = []
    for i in range(integer(draw, 1, 3)):
        users = tuple(User(f"o{i}-u{u}", "US", COMMON_LICENSES[1]) for u in range(integer(draw, 1, 3)))
        credits = draw_stuck_credits(draw, start, cost) if i == 0 or chance(draw, 2) else \
            draw_recharge_credits(draw, start, cost)
        orgs.append(Org(f"org{i}", users, ("+18005550100",) if chance(draw, 3) else (), credits))
    setup = RatingSetup(
        start=start, end_ms=end_ms, currency="USD",
        plans=Plans({"default": pick(draw, (0, 0, 1, 2))}, 0, 0, ()),
        tariffs=(Tariff("1", rate, first_s, next_s, "US", "A"),),
        toll_free_tariffs=(Tariff("1", rate, first_s, next_s),),
        orgs=tuple(orgs),
    )
    users = setup.users()
    rows = []
    span = integer(draw, 1_000, end_ms)  # arrivals crowd into the first `span` ms
    bases = [0, 1000]
    for _ in range(integer(draw, 1, 60)):
        t = min(draw_arrival_ms(draw, setup, bases), span) if chance(draw, 2) else integer(draw, 0, span - 1)
        rows.append(draw_org_call(draw, setup, users, t, 4) + (integer(draw, 0, 15 * 60_000),))
        bases.append(t)
    return setup, arrivals_from_rows(rows)


# --------------------------------------------------------------------------- lots expiring under load

EXPIRY_STARTS = (
    datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc),  # lots bought at t = 0 expire on a refill
    datetime(2026, 10, 31, 23, 59, tzinfo=timezone.utc),  # expiries straddle a refill
    datetime(2028, 2, 28, 23, 59, 30, tzinfo=timezone.utc),
    datetime(2026, 11, 1, 9, tzinfo=timezone.utc),
    # lots bought late on 2027-02-28 expire in the window of 2028-02-29 purchases (put ahead)
    datetime(2027, 2, 28, 23, 0, tzinfo=timezone.utc),
    datetime(2027, 2, 28, 23, 59, 30, tzinfo=timezone.utc),
)
EARLY_MS = 2 * 3_600_000  # the busy span in which an expiry case's orgs buy their lots


@st.composite
def expiry_cases(draw: Draw, max_orgs: int = 4) -> tuple[RatingSetup, Arrivals]:
    """Orgs that buy lots in a first busy hour or two and are busy again a year later, when
    those lots expire (SPEC §3 "Credits": each lot's rest is removed at its expiry, first
    in its instant): recharges and charges crowd around the expiries, calls arrive exactly
    on them, lots are partly spent before they expire, several expire at one instant (the
    initial lot and a recharge at t = 0), some on a refill; orgs stuck below their
    trigger, recharging, or not.  The lot expiries charged inside windows (bulk and
    stepped) against the reference."""
    start = pick(draw, EXPIRY_STARTS)
    year = lot_expiry_ms(start, 0)
    end_ms = year + integer(draw, 1, 2 * 3_600_000)
    first_s, next_s = pick(draw, RECHARGE_INCREMENTS)
    rate = integer(draw, 1_000, 60_000)
    cost = -(-rate * max(first_s, next_s) // 60)
    orgs = []
    for i in range(integer(draw, 1, max_orgs)):
        users = tuple(User(f"o{i}-u{u}", "US", COMMON_LICENSES[1]) for u in range(integer(draw, 1, 3)))
        how = integer(draw, 0, 3)
        if how == 0:
            credits = draw_stuck_credits(draw, start, cost)
        elif how == 1:
            credits = draw_recharge_credits(draw, start, cost)
        else:  # no recharge, or a recharge with a card that never expires
            credits = Credits(integer(draw, 0, 20 * cost), how == 3, integer(draw, 0, 20 * cost) * (how == 3),
                              integer(draw, 1, 20 * cost) * (how == 3), None, 1)
        orgs.append(Org(f"org{i}", users, ("+18005550100",) if chance(draw, 3) else (), credits))
    setup = RatingSetup(
        start=start, end_ms=end_ms, currency="USD",
        plans=Plans({"default": pick(draw, (0, 0, 1, 2, 600))}, 0, 0, ()),
        tariffs=(Tariff("1", rate, first_s, next_s, "US", "A"),),
        toll_free_tariffs=(Tariff("1", rate, first_s, next_s),),
        orgs=tuple(orgs),
    )
    users = setup.users()
    rows = []
    early = integer(draw, 1, EARLY_MS)  # the first busy span: lots are bought
    bases = [0, 1, 1000]
    for _ in range(integer(draw, 1, 30)):
        t = min(draw_arrival_ms(draw, setup, bases), early) if chance(draw, 2) else integer(draw, 0, early)
        rows.append(draw_org_call(draw, setup, users, t, 4) + (integer(draw, 0, 15 * 60_000),))
        bases.append(t)
    # a year on: around and exactly on the expiries of lots bought at those instants
    expiries = expiry_anchors_ms(setup, bases)
    for _ in range(integer(draw, 0, 40)):
        t = pick(draw, expiries) + pick(draw, (0, 0, -1, 1, -1000, integer(draw, -30 * 60_000, 30 * 60_000)))
        rows.append(draw_org_call(draw, setup, users, min(max(t, early), end_ms - 1), 4)
                    + (integer(draw, 0, 15 * 60_000),))
    return setup, arrivals_from_rows(rows)


def expiry_anchors_ms(setup: RatingSetup, bought_ms: list[int]) -> list[int]:
    """The expiries of lots bought at `bought_ms` and at t = 0 (instants worth landing on)."""
    return sorted({lot_expiry_ms(setup.start, t) for t in bought_ms} | {lot_expiry_ms(setup.start, 0)})


@st.composite
def window_cuts(draw: Draw, setup: RatingSetup, arrivals: Arrivals) -> list[int]:
    """Sorted distinct cut points in (0, end_ms), often on arrivals, refills or boundaries."""
    interesting = [int(t) for t in arrivals.t_ms] + anchors_ms(setup)
    interesting += [t + k * 60_000 for t in interesting[:5] for k in (1, 2)]
    cuts = []
    for _ in range(integer(draw, 0, 6)):
        if chance(draw, 2):
            cuts.append(pick(draw, interesting) + pick(draw, (0, 0, 1, -1)))
        else:
            cuts.append(integer(draw, 0, setup.end_ms))
    return sorted({c for c in cuts if 0 < c < setup.end_ms})


@st.composite
def windowed_cases(draw: Draw) -> tuple[RatingSetup, Arrivals, list[int]]:
    """A rating case plus the cut points at which to feed it to the engine in windows."""
    setup, arrivals = draw(rating_cases())
    return setup, arrivals, draw(window_cuts(setup, arrivals))


# --------------------------------------------------------------------------- generated traffic

SHAPE_WEIGHTS = (0.0, 0.0, 0.1, 0.5, 1.0, 2.0, 3.5)
UTC_OFFSETS_MS = tuple(m * 60_000 for m in (0, -300, 330, 345, -570, 840, -720))
ROUTED_AND_NOT = tuple(str(n) for n in NUMBERS)  # whole numbers; the last one routes nowhere


def draw_rate_profile(draw: Draw, calls_per_hour: float):
    """24 or 168 hourly weights, many of them 0 (closed hours), at a whole-minute UTC offset."""
    from simulator.scenario import RateProfile

    hours = 24 if chance(draw, 2) else 168
    levels = [pick(draw, SHAPE_WEIGHTS) for _ in range(8)]
    pattern = [levels[integer(draw, 0, 7)] for _ in range(24)]
    week = pattern * 7 if hours == 24 else [w * pick(draw, (1.0, 1.0, 0.0, 0.3)) for w in pattern * 7]
    if not any(week):
        week[integer(draw, 0, 167)] = 1.0
    return RateProfile(tuple(calls_per_hour * w for w in week), pick(draw, UTC_OFFSETS_MS))


def draw_holding(draw: Draw):
    """Exponential (None), lognormal, empirical quantiles or a histogram with empty bins; short
    enough (medians of seconds to minutes) that the reference pays every increment quickly."""
    from simulator.scenario import Holding

    how = integer(draw, 0, 3)
    if how == 0:
        return None
    if how == 1:
        return Holding.lognormal(integer(draw, 1, 180) * 1000, pick(draw, (0.0, 0.5, 0.9, 1.2)))
    durations = sorted(integer(draw, 0, 1200) * 1000 for _ in range(integer(draw, 2, 5)))
    if how == 2:
        inner = sorted({integer(draw, 1, 99) / 100 for _ in range(len(durations) - 2)})
        probabilities = (0.0, *inner, 1.0)
        return Holding.inverse_cdf(probabilities, tuple(durations[:len(probabilities)]))
    edges = tuple(sorted(set(durations) | {durations[0] + 1000}))
    counts = [float(pick(draw, (0, 1, 5))) for _ in range(len(edges) - 1)]
    counts[-1] = counts[-1] or 1.0
    return Holding.histogram(edges, tuple(counts))


def draw_weighted(draw: Draw, toll_free: bool):
    """None (the default or uniform destinations) or a weighted table of prefixes and numbers,
    some of weight 0, some that route nowhere."""
    from simulator.scenario import Destination

    if chance(draw, 3):
        return None
    prefixes = TOLL_FREE_PREFIXES if toll_free else tuple(PREFIX_COUNTRY) + ("33",)
    entries = []
    for _ in range(integer(draw, 1, 4)):
        weight = float(pick(draw, (1, 1, 3, 0, 0.25)))
        if chance(draw, 3):
            entries.append(Destination(pick(draw, ROUTED_AND_NOT), weight, number=True))
        else:
            entries.append(Destination(pick(draw, prefixes), weight))
    if not any(e.weight for e in entries):
        entries[0] = Destination(entries[0].digits, 1.0, entries[0].number)
    return tuple(entries)


def draw_traffic_spec(draw: Draw, setup: RatingSetup, o: int, expected_calls: float):
    """One source of org `o` with a profile (mostly), a holding distribution and destinations,
    at a rate that makes about `expected_calls` calls over the run."""
    from simulator.scenario import TrafficSpec

    kind = pick(draw, ("domestic", "international", "conference_dial_out", "toll_free"))
    offset = sum(len(org.users) for org in setup.orgs[:o])
    users = () if kind == "toll_free" else tuple(offset + u for u in range(len(setup.orgs[o].users)))
    rate = expected_calls * 3_600_000 / setup.end_ms
    profile = draw_rate_profile(draw, rate) if not chance(draw, 4) else None
    holding = draw_holding(draw)
    weighted = draw_weighted(draw, kind == "toll_free")
    destinations = tuple(e.digits for e in weighted) if weighted else None
    mean_ms = round(holding.mean_ms) if holding else integer(draw, 1, 300) * 1000
    peak = profile.peak if profile else rate
    return TrafficSpec(o, kind, peak, mean_ms, users, destinations, profile, holding, weighted)


@st.composite
def traffic_cases(draw: Draw) -> tuple[RatingSetup, Arrivals]:
    """A random setup whose calls come from `simulator.traffic`: one to three sources with rate
    profiles, lognormal, empirical or histogram holding times and weighted destinations; about
    30 calls expected (6 on a 13-14 month run), at most 60."""
    from dataclasses import dataclass

    from simulator.traffic import TrafficPlan

    @dataclass(frozen=True)
    class Generated:  # the part of `simulator.scenario.Scenario` that TrafficPlan reads
        name: str
        seed: int
        setup: RatingSetup
        traffic: tuple
        calls: tuple = ()

    setup, long_run = draw_setup(draw)
    n_sources = integer(draw, 1, 3)
    budget = (6 if long_run else 30) / n_sources
    traffic = tuple(draw_traffic_spec(draw, setup, integer(draw, 0, len(setup.orgs) - 1), budget)
                    for _ in range(n_sources))
    plan = TrafficPlan(Generated("generated", integer(draw, 0, 2**32), setup, traffic))
    arrivals = plan.chunk(0, setup.end_ms)
    keep = np.flatnonzero(np.arange(len(arrivals)) < 60)  # a rare busy draw: keep the case small
    arrivals = arrivals.take(keep)
    return setup, arrivals
