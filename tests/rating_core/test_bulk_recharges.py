"""Auto-recharges found in bulk (`rating_core._recharges`), not stepped one instant each.

A busy org whose recharge amount is a few increments' worth recharges every few seconds.
Those recharges are no special instants: the engine must find them from the cumulative
cost and never fall back to one-increment-at-a-time stepping, and still agree with the
sequential reference, lots included.  The condition itself has one home in the ledger.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import numpy as np
import pytest

import rating_core._charging as charging
from rating_core._ledger import Ledger
from rating_core._model import Credits, Org, Plans, RatingSetup, Tariff, User
from ..strategies import arrivals_from_rows
from .test_differential import engine_matches_reference_with_lots

START = datetime(2026, 11, 1, 23, 55, tzinfo=timezone.utc)  # the card of 2026-11-01 expires 5 minutes in
LICENSES = frozenset({"phone_system", "domestic_calling_plan", "communications_credits"})


def busy_org(amount: int, card: date | None = None) -> RatingSetup:
    """One org of 4 users with a 4-minute pool: 300 calls of ~3 minutes over 10 minutes, each
    later increment 0.012, recharges of `amount` below 1.00 (a card valid through `card`)."""
    credits = Credits(initial_micro=3_000_000, auto_recharge=True, recharge_below_micro=1_000_000,
                      recharge_amount_micro=amount, card_expires=card, retry_after_ms=60_000)
    users = tuple(User(f"u{i}", "US", LICENSES) for i in range(4))
    return RatingSetup(start=START, end_ms=3_600_000 * 2, currency="USD", plans=Plans({"default": 1}),
                       tariffs=(Tariff("1", 12_000, 60, 60, "US", "A"),), toll_free_tariffs=(),
                       orgs=(Org("busy", users, (), credits),))


def busy_calls():
    return arrivals_from_rows([(i * 2_000, 0, i % 4, 0, 12125550100, 0, 170_000 + 37 * i)
                              for i in range(300)])


@pytest.fixture
def no_stepping(monkeypatch):
    """Fail if the engine steps an instant or an org one increment at a time."""
    def refuse(*args, **kwargs):
        raise AssertionError("stepped: recharges should be found in bulk")

    monkeypatch.setattr(charging.Charger, "_step_instants", refuse)
    monkeypatch.setattr(charging.Charger, "_step_orgs", refuse)


CUTS = ([], [60_000, 61_000, 300_000], list(range(30_000, 900_000, 30_000)))


@pytest.mark.parametrize("amount", [100_000, 20_000])  # ~8 and ~2 increments' worth
@pytest.mark.parametrize("cuts", CUTS)
def test_frequent_recharges_are_found_in_bulk_and_match_the_reference(no_stepping, amount, cuts):
    _, events = engine_matches_reference_with_lots(busy_org(amount), busy_calls(), cuts)
    kinds = [e[2] for e in events]
    assert kinds.count("recharge_succeeded") > 50 and "balance_exhausted" not in kinds


@pytest.mark.parametrize("amount", [12_001, 5_000])  # about one increment, less than one
@pytest.mark.parametrize("cuts", CUTS)
def test_recharges_trailing_the_cost_match_the_reference(amount, cuts):
    """The balance trails the trigger: every instant recharges once, until charges are refused
    (each refusal a special instant, stepped) and calls are dropped."""
    _, events = engine_matches_reference_with_lots(busy_org(amount), busy_calls(), cuts)
    kinds = [e[2] for e in events]
    assert kinds.count("recharge_succeeded") > 100 and "balance_exhausted" in kinds


def test_a_card_expiring_mid_run_steps_only_its_failed_attempts_and_refusals(monkeypatch):
    """The card is valid through 2026-11-01: the recharge attempt due after midnight fails (a
    special instant, stepped), then the org waits `retry_after` and fails again; the
    recharges before midnight are found in bulk."""
    steps = []
    step_instants = charging.Charger._step_instants
    monkeypatch.setattr(charging.Charger, "_step_instants",
                        lambda self, orgs, t, *a: steps.extend(t[orgs].tolist()) or step_instants(self, orgs, t, *a))
    cdrs, events = engine_matches_reference_with_lots(busy_org(100_000, card=date(2026, 11, 1)), busy_calls(), [])
    kinds = [e[2] for e in events]
    assert kinds.count("recharge_succeeded") > 10 and kinds.count("recharge_failed") >= 1
    failures = [e[0] for e in events if e[2] == "recharge_failed"]
    assert failures[0] >= 300_000 and failures[0] in steps
    refused = [r[9] for r in cdrs if r[14] in ("dropped_balance_exhausted", "blocked_no_balance")]
    assert set(steps) <= set(failures + refused), "only failing attempts and refused charges are stepped"


def test_the_recharge_condition_is_strictly_below_the_trigger_and_enabled():
    """SPEC §3: "if enabled and the balance is strictly below `recharge_below`"."""
    on = Credits(initial_micro=0, auto_recharge=True, recharge_below_micro=500, recharge_amount_micro=1)
    off = Credits(initial_micro=0, auto_recharge=False, recharge_below_micro=500, recharge_amount_micro=1)
    setup = RatingSetup(start=START, end_ms=1, currency="USD", plans=Plans({"default": 0}), tariffs=(),
                        toll_free_tariffs=(), orgs=(Org("on", (), (), on), Org("off", (), (), off),
                                                    Org("none", (), (), None)))
    ledger = Ledger(setup)
    balance = np.array([499, 499, 0])
    assert ledger.wants_recharge(balance).tolist() == [True, False, False]
    assert ledger.wants_recharge(np.array([500, 0, 0])).tolist() == [False, False, False]
    assert ledger.wants_recharge(499, 0) and not ledger.wants_recharge(500, 0)
