"""`Ledger.add_lots_many` (a window's recharges of many orgs in one pass) leaves every org as
`Ledger.add_lots` called org by org does: its lots, balance, exhausted flag, unsettled and
ahead-spent amounts, and the expiry watch, through purchases on 2028-02-29 (whose lots expire
before those bought late on 02-28), orgs whose lots are all spent, and orgs with spending not
yet taken from their lots."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import numpy as np
import pytest

from rating_core._ledger import HELD_BACK, Ledger
from rating_core._lots import NEVER
from rating_core._model import Credits, Org, Plans, RatingSetup, User

START = datetime(2028, 2, 28, 12, tzinfo=timezone.utc)
HOUR = 3_600_000
LICENSES = frozenset({"phone_system", "communications_credits"})


def many_orgs(n: int, rng: random.Random) -> RatingSetup:
    """n orgs, some with an initial lot, each with its own recharge amount."""
    orgs = []
    for i in range(n):
        credits = Credits(initial_micro=rng.choice([0, 0, 50, 1_000]), auto_recharge=True,
                          recharge_below_micro=10_000, recharge_amount_micro=rng.randrange(1, 40))
        orgs.append(Org(f"o{i}", (User(f"u{i}", "US", LICENSES),), (), credits))
    return RatingSetup(start=START, end_ms=400 * 24 * HOUR, currency="USD", plans=Plans({"default": 0}),
                       tariffs=(), toll_free_tariffs=(), orgs=tuple(orgs))


def add_org_by_org(led: Ledger, org, t, spent) -> None:
    for o in np.unique(org).tolist():
        mine = org == o
        led.add_lots(o, t[mine], int(led.recharge_amounts[o]), spent[mine])


def state(led: Ledger) -> tuple:
    """What the ledger reports without looking at the lots: balances, flags, the expiry watch."""
    return (led.balance.tolist(), led.exhausted_reported.tolist(), led._spent_ahead.tolist(), list(led._expiries))


def lots(led: Ledger) -> tuple:
    """Every org's lots with its spending taken from them (`lots_of`, which both ledgers may do
    at any time: when spending is taken is the ledger's own affair)."""
    held = [led.lots_of(o) for o in range(len(led.balance))]
    return [q.held() for q in held], [q.first_expiry() for q in held], state(led)


def a_window(led: Ledger, t0: int, span: int, rng: random.Random):
    """Recharges of a random set of orgs in [t0, t0 + span), in (org, instant) order, each with
    what the org spent before it (never more than its balance), and each org's spending."""
    org, t, spent = [], [], []
    spending = np.zeros(len(led.balance), dtype=np.int64)
    for o in sorted(rng.sample(range(len(led.balance)), rng.randrange(1, len(led.balance)))):
        instants = sorted(rng.sample(range(t0, t0 + span), rng.randrange(1, 30)))
        amount, so_far = int(led.recharge_amounts[o]), 0
        for k, at in enumerate(instants):
            so_far += rng.randrange(int(led.balance[o]) + k * amount - so_far + 1)
            org.append(o), t.append(at), spent.append(so_far)
        # spending after the last recharge: sometimes all the org holds
        held = int(led.balance[o]) + len(instants) * amount
        spending[o] = rng.choice([so_far, held, rng.randrange(so_far, held + 1)])
    arrays = (np.array(org, dtype=np.int64), np.array(t, dtype=np.int64), np.array(spent, dtype=np.int64))
    return arrays, spending


@pytest.mark.parametrize("held_back", [HELD_BACK, 50])
def test_many_orgs_in_one_pass_match_org_by_org(held_back):
    """`held_back`: how many lots the ledger holds back at most (50: appended every few windows)."""
    for seed in range(8):
        rng = random.Random(seed)
        setup = many_orgs(40, rng)
        bulk, single = Ledger(setup, held_back), Ledger(setup)
        assert bulk.start_events() == single.start_events()
        t0 = 0
        # windows of 1 to 6 hours from 02-28 12:00 to 03-01 12:00, across the leap day
        while t0 < 24 * HOUR:
            span = rng.randrange(1, 7) * HOUR
            (org, t, spent), spending = a_window(bulk, t0, span, rng)
            flagged = np.array([rng.random() < 0.3 for _ in range(len(setup.orgs))])
            for led in (bulk, single):
                led.exhausted_reported[:] = flagged
            # in one pass, or two before the spending (what the first spent ahead counts in the second)
            cut = t < t0 + rng.choice([span, rng.randrange(span)])
            for part in (cut, ~cut):
                bulk.add_lots_many(org[part], t[part], spent[part])
                add_org_by_org(single, org[part], t[part], spent[part])
                assert state(bulk) == state(single)
            bulk.spend_many(spending)
            single.spend_many(spending)
            assert state(bulk) == state(single)
            if rng.random() < 0.3:  # else the spending stays untaken, the new lots held back
                assert lots(bulk) == lots(single)
            t0 += span
        assert lots(bulk) == lots(single)
        # a year on: the same lots expire at the same instants, with the same rests
        orgs = np.arange(len(setup.orgs))
        assert bulk.next_fixed_after(t0) == single.next_fixed_after(t0) < NEVER
        found = bulk.expiries_between(orgs, np.zeros(len(orgs), dtype=np.int64), NEVER)
        assert [a.tolist() for a in found] == [
            a.tolist() for a in single.expiries_between(orgs, np.zeros(len(orgs), dtype=np.int64), NEVER)]
        org, expires, held = found
        assert len(org) and (np.diff(expires)[org[1:] == org[:-1]] >= 0).all()
        last = np.append(org[1:] != org[:-1], True)  # every lot expires: all each org holds goes
        for led in (bulk, single):
            led.remove_expired(org[last], held[last])
            assert led.balance.tolist() == [0] * len(setup.orgs)
        assert lots(bulk) == lots(single) and bulk.next_fixed_after(t0) == single.next_fixed_after(t0)


def test_a_leap_day_window_takes_the_org_by_org_path():
    """A window from 02-28 20:00 to 02-29 04:00: its 02-29 lots expire before its 02-28 ones."""
    rng = random.Random(1)
    setup = many_orgs(3, rng)
    bulk, single = Ledger(setup), Ledger(setup)
    bulk.start_events(), single.start_events()
    org = np.array([0, 0, 1, 2, 2], dtype=np.int64)
    t = np.array([8, 14, 15, 9, 10], dtype=np.int64) * HOUR
    spent = np.array([0, 5, 0, 0, 0], dtype=np.int64)
    bulk.add_lots_many(org, t, spent)
    add_org_by_org(single, org, t, spent)
    assert lots(bulk) == lots(single)
    expiries = [e for e, _ in bulk.lots_of(0).held()]
    assert expiries == sorted(expiries) and expiries[0] < expiries[-1] - 6 * HOUR
