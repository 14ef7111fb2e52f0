"""Lots are spent and expired in expiry order, which a leap day takes out of purchase order.

SPEC §3: credits are taken "from the lot that expires first", and a lot expires 12 calendar
months after its purchase, the day clamped to the month's end.  A lot bought on 2028-02-29
at 06:00 therefore expires on 2029-02-28 at 06:00, six hours before the lot bought on
2028-02-28 at 12:00: it is spent first and expires at its own instant.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from rating_core._lots import NEVER
from rating_core._model import Credits, Org, Plans, RatingSetup, Tariff, User
from ..reference import run_reference
from ..strategies import arrivals_from_rows
from .test_differential import engine_matches_reference_with_lots

START = datetime(2028, 2, 28, 12, tzinfo=timezone.utc)
HOUR, DAY = 3_600_000, 86_400_000
LICENSES = frozenset({"phone_system", "domestic_calling_plan", "communications_credits"})
A_EXPIRES = 366 * DAY  # 2029-02-28T12:00, the initial lot (bought 2028-02-28T12:00)
B_EXPIRES = A_EXPIRES - 6 * HOUR  # 2029-02-28T06:00, the recharge of 2028-02-29T06:00


def leap_setup() -> RatingSetup:
    """No pool; 10.00 at the start, recharges of 1.00 below 9.99; calls of 0.02 a minute."""
    credits = Credits(initial_micro=10_000_000, auto_recharge=True, recharge_below_micro=9_990_000,
                      recharge_amount_micro=1_000_000, card_expires=None, retry_after_ms=60_000)
    return RatingSetup(start=START, end_ms=368 * DAY, currency="USD", plans=Plans({"default": 0}),
                       tariffs=(Tariff("1", 20_000, 60, 60, "US", "A"),), toll_free_tariffs=(),
                       orgs=(Org("o", (User("u", "US", LICENSES),), (), credits),))


def two_calls():
    """0.02 at 2028-02-29T06:00 (it triggers the recharge), 0.02 at 07:00 (paid from that lot)."""
    return arrivals_from_rows([(18 * HOUR, 0, 0, 0, 12125550100, 0, 30_000),
                               (19 * HOUR, 0, 0, 0, 12125550100, 0, 30_000)])


def credit_events(events):
    return [e for e in events if e[2] != "pools_refilled"]


EXPECTED = [
    (0, "o", "credits_purchased", 10_000_000, 10_000_000, None),
    (18 * HOUR, "o", "recharge_succeeded", 1_000_000, 10_980_000, None),
    # 19 h: 0.02 from the recharge's lot, which expires first: A 9.98, B 0.98
    (B_EXPIRES, "o", "credits_expired", 980_000, 9_980_000, None),
    (B_EXPIRES, "o", "recharge_succeeded", 1_000_000, 10_980_000, None),
    (A_EXPIRES, "o", "credits_expired", 9_980_000, 1_000_000, None),
    (A_EXPIRES, "o", "recharge_succeeded", 1_000_000, 2_000_000, None),
]


def test_the_reference_spends_and_expires_a_leap_day_lot_first():
    _, events = run_reference(leap_setup(), two_calls())
    assert credit_events(events)[:len(EXPECTED)] == EXPECTED


# one window (the recharge and both charges in one bulk pass), a cut between the calls,
# and a cut between the two expiries
@pytest.mark.parametrize("cuts", [[], [18 * HOUR + 30_000], [B_EXPIRES + 1]])
def test_the_engine_spends_and_expires_a_leap_day_lot_first(cuts):
    _, events = engine_matches_reference_with_lots(leap_setup(), two_calls(), cuts)
    assert credit_events(events)[:len(EXPECTED)] == EXPECTED


def test_an_expiry_of_lots_spent_by_then_is_not_due():
    """A lot spent whole removes nothing when it expires: its instant is no org instant, so
    the next instant due (the server's idle wait) skips it, and it is not listed among the
    expiries to charge; a lot with a rest still expires at its own instant."""
    from rating_core import RatingEngine

    engine = RatingEngine(leap_setup())
    ledger = engine.ledger
    ledger.add_lots(0, np.array([HOUR]), 1_000_000, np.array([0]))  # a second lot, an hour after the first
    t = A_EXPIRES - 10 * DAY  # past the last refill before the expiries
    assert ledger.next_fixed_after(t) == A_EXPIRES  # the initial lot, 10.00 held
    ledger.spend_many(np.array([10_000_000]))  # the initial lot spent whole
    assert ledger.next_fixed_after(t) == A_EXPIRES + HOUR  # the second lot's, 1.00 held
    ledger.spend_many(np.array([400_000]))
    assert ledger.next_fixed_after(t) == A_EXPIRES + HOUR  # 0.60 left: it expires then
    ledger.spend_many(np.array([600_000]))
    assert A_EXPIRES + HOUR < ledger.next_fixed_after(t) < NEVER  # nothing expires: the next refill
    assert ledger.expiries_between(np.array([0]), np.array([t]), NEVER)[1].tolist() == []
