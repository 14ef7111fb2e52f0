"""The sequential reference (the oracle) against SPEC §5 and hand-worked cases.

Each test pins one rule of SPEC §3 or docs/rating-rules.md, computed by hand, so that the
oracle the differential test trusts is itself checked against the contract.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

from rating_core._model import CallKind, Credits, Org, Plans, RatingSetup, Tariff, User
from ..reference import (
    lot_expiry_ms,
    month_starts_ms,
    ms_between,
    pool_capacities_s,
    run_reference,
)
from ..strategies import arrivals_from_rows

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAY_MS = 86_400_000
US_NUMBER = 12125550100
GB_NUMBER = 442071234567
TOLL_FREE = "+18005550100"
US_TARIFF = Tariff("1", 20_000, 60, 60, country="US", zone="A")
GB_TARIFF = Tariff("44", 60_000, 60, 60, country="GB", zone="B")
PLAN = frozenset({"phone_system", "domestic_calling_plan"})
PLAN_CREDITS = PLAN | {"communications_credits"}
CREDITS_ONLY = frozenset({"phone_system", "international_calling_plan", "communications_credits"})


def setup_of(
    licenses=PLAN,
    credits: Credits | None = None,
    *,
    start: datetime = START,
    end_ms: int = DAY_MS,
    tariffs=(US_TARIFF, GB_TARIFF),
    toll_free_tariffs=(),
    plans: Plans = Plans({"default": 60}, international_minutes=0, dial_out_minutes=0),
    orgs: int = 1,
    toll_free_numbers=(TOLL_FREE,),
) -> RatingSetup:
    """SPEC §5's world: one org `contoso` (more: `org1`, ...) with user `alice` (US)."""
    return RatingSetup(
        start=start,
        end_ms=end_ms,
        currency="USD",
        plans=plans,
        tariffs=tuple(tariffs),
        toll_free_tariffs=tuple(toll_free_tariffs),
        orgs=tuple(
            Org("contoso" if i == 0 else f"org{i}", (User("alice" if i == 0 else f"u{i}", "US",
                frozenset(licenses)),), tuple(toll_free_numbers), credits)
            for i in range(orgs)
        ),
    )


def call(t_ms: int, holding_ms: int, to: int = US_NUMBER, *, org: int = 0,
         kind: CallKind = CallKind.OUTBOUND, frm: int = 0) -> tuple:
    user = -1 if kind == CallKind.TOLL_FREE else org  # one user per org in `setup_of`
    return (t_ms, org, user, int(kind), to, frm, holding_ms)


def rate(setup: RatingSetup, *calls: tuple, state: bool = False):
    return run_reference(setup, arrivals_from_rows(list(calls)), return_state=state)


def cdr(rows: list[tuple], call_id: int = 1) -> dict:
    """One CDR row as a dict, for readable assertions."""
    names = ("call_id", "org_id", "user_id", "call_type", "from_number", "to_number",
             "destination_country", "zone", "start_ms", "end_ms", "billed_s", "pool", "pool_s",
             "credits_micro", "end_reason")
    (row,) = [r for r in rows if r[0] == call_id]
    return dict(zip(names, row))


def summary(row: dict) -> tuple:
    return (row["end_ms"], row["billed_s"], row["pool"], row["pool_s"], row["credits_micro"],
            row["end_reason"])


# --------------------------------------------------------------------------- SPEC §5


def test_spec_example_1_pool_runs_out_and_call_drops():
    cdrs, events = rate(setup_of(PLAN), call(0, 7_200_000))
    assert cdrs == [(1, "contoso", "alice", "domestic", "", "+12125550100", "US", "A",
                     0, 3_600_000, 3600, "domestic:US", 3600, 0, "dropped_balance_exhausted")]
    assert events == []


def test_spec_example_2_credits_pay_fifty_more_minutes():
    cdrs, events = rate(setup_of(PLAN_CREDITS, Credits(initial_micro=1_000_000)),
                        call(0, 7_200_000))
    assert summary(cdr(cdrs)) == (6_600_000, 6600, "domestic:US", 3600, 1_000_000,
                                  "dropped_balance_exhausted")
    assert events == [
        (0, "contoso", "credits_purchased", 1_000_000, 1_000_000, None),
        (6_600_000, "contoso", "balance_exhausted", None, 0, None),
    ]


def test_spec_example_3_auto_recharge_keeps_the_call_up():
    credits = Credits(1_000_000, auto_recharge=True, recharge_below_micro=500_000,
                      recharge_amount_micro=5_000_000, card_expires=date(2027, 6, 30))
    cdrs, events, state = rate(setup_of(PLAN_CREDITS, credits), call(0, 7_200_000), state=True)
    assert summary(cdr(cdrs)) == (7_200_000, 7200, "domestic:US", 3600, 1_200_000, "hangup")
    assert events == [
        (0, "contoso", "credits_purchased", 1_000_000, 1_000_000, None),
        (5_100_000, "contoso", "recharge_succeeded", 5_000_000, 5_480_000, None),
    ]
    assert state.balances_micro == {"contoso": 4_800_000}


# --------------------------------------------------------------------------- end reasons


def test_hangup_bills_every_started_increment():
    cdrs, _ = rate(setup_of(), call(1000, 61_000))
    assert summary(cdr(cdrs)) == (62_000, 120, "domestic:US", 120, 0, "hangup")


def test_unroutable_outbound_is_type_outbound_without_country():
    cdrs, _ = rate(setup_of(), call(5, 60_000, to=33123456789))
    row = cdr(cdrs)
    assert (row["call_type"], row["destination_country"], row["zone"]) == ("outbound", "", "")
    assert summary(row) == (5, 0, "", 0, 0, "unroutable")


def test_unroutable_dial_out_keeps_its_type():
    cdrs, _ = rate(setup_of(), call(5, 60_000, to=33123456789, kind=CallKind.CONFERENCE_DIAL_OUT))
    row = cdr(cdrs)
    assert (row["call_type"], row["end_reason"], row["zone"]) == ("conference_dial_out",
                                                                  "unroutable", "")


def test_not_licensed_keeps_type_country_and_zone():
    cdrs, _ = rate(setup_of(frozenset({"e5", "communications_credits"})),
                   call(7, 60_000, to=GB_NUMBER))
    row = cdr(cdrs)
    assert (row["call_type"], row["destination_country"], row["zone"]) == ("international",
                                                                           "GB", "B")
    assert summary(row) == (7, 0, "", 0, 0, "not_licensed")


def test_routing_comes_before_licensing():
    cdrs, _ = rate(setup_of(frozenset()), call(0, 60_000, to=33123456789))
    assert cdr(cdrs)["end_reason"] == "unroutable"


def test_dial_out_needs_audio_conferencing_which_e5_grants():
    plans = Plans({"default": 60}, dial_out_minutes=1)
    cdrs, _ = rate(setup_of(frozenset({"e5"}), plans=plans),
                   call(0, 90_000, kind=CallKind.CONFERENCE_DIAL_OUT))
    assert summary(cdr(cdrs)) == (60_000, 60, "dial_out", 60, 0, "dropped_balance_exhausted")
    cdrs, _ = rate(setup_of(PLAN, plans=plans), call(0, 90_000, kind=CallKind.CONFERENCE_DIAL_OUT))
    assert cdr(cdrs)["end_reason"] == "not_licensed"


def test_blocked_no_balance_ends_at_start():
    cdrs, events = rate(setup_of(CREDITS_ONLY, Credits(initial_micro=59_999)),
                        call(3000, 60_000, to=GB_NUMBER))
    assert summary(cdr(cdrs)) == (3000, 0, "", 0, 0, "blocked_no_balance")
    assert events[-1] == (3000, "contoso", "balance_exhausted", None, 59_999, None)


def test_simulation_end_bills_what_was_charged():
    cdrs, _ = rate(setup_of(end_ms=100_000), call(0, 7_200_000))
    assert summary(cdr(cdrs)) == (100_000, 120, "domestic:US", 120, 0, "simulation_end")


def test_zero_holding_call_is_a_hangup_billed_nothing():
    cdrs, _ = rate(setup_of(), call(500, 0))
    assert summary(cdr(cdrs)) == (500, 0, "", 0, 0, "hangup")


# --------------------------------------------------------------------------- boundaries


def test_hangup_exactly_at_a_boundary_is_not_charged():
    cdrs, _ = rate(setup_of(), call(0, 120_000))
    assert summary(cdr(cdrs)) == (120_000, 120, "domestic:US", 120, 0, "hangup")


def test_hangup_exactly_at_end_is_hangup():
    cdrs, _ = rate(setup_of(end_ms=90_000), call(30_000, 60_000))
    assert summary(cdr(cdrs)) == (90_000, 60, "domestic:US", 60, 0, "hangup")


def test_boundary_at_end_is_not_charged():
    cdrs, _ = rate(setup_of(end_ms=120_000), call(0, 600_000))
    assert summary(cdr(cdrs)) == (120_000, 120, "domestic:US", 120, 0, "simulation_end")


def test_first_and_next_increments():
    tariff = Tariff("1", 60_000, 30, 6, country="US", zone="A")
    cdrs, _ = rate(setup_of(tariffs=(tariff,)), call(0, 31_000), call(0, 30_000), call(0, 37_001))
    assert [cdr(cdrs, i)["billed_s"] for i in (1, 2, 3)] == [36, 30, 42]


# --------------------------------------------------------------------------- money


def test_credit_cost_rounds_up_to_the_micro_unit():
    tariff = Tariff("44", 10_000, 1, 1, country="GB", zone="B")  # 0.01 per minute
    cdrs, _ = rate(setup_of(CREDITS_ONLY, Credits(initial_micro=1_000_000), tariffs=(tariff,)),
                   call(0, 1000, to=GB_NUMBER), call(0, 3000, to=GB_NUMBER))
    assert cdr(cdrs, 1)["credits_micro"] == 167  # ceil(10000 / 60)
    assert cdr(cdrs, 2)["credits_micro"] == 3 * 167  # each increment rounds on its own


def test_increment_split_between_pool_and_credits():
    plans = Plans({"default": 1})
    tariff = Tariff("1", 60_000, 45, 45, country="US", zone="A")
    cdrs, _ = rate(setup_of(PLAN_CREDITS, Credits(initial_micro=1_000_000), tariffs=(tariff,),
                            plans=plans), call(0, 60_000))
    # 45 s from the pool, then 15 s pool + 30 s credits at 0.06/min = 30_000
    assert summary(cdr(cdrs)) == (60_000, 90, "domestic:US", 60, 30_000, "hangup")


def test_refusal_without_credits_license_emits_nothing():
    cdrs, events = rate(setup_of(PLAN, Credits(initial_micro=0), plans=Plans({"default": 0})),
                        call(0, 60_000))
    assert cdr(cdrs)["end_reason"] == "blocked_no_balance"
    assert events == []


def test_toll_free_pays_from_credits_with_empty_user_country_zone():
    tf = Tariff("44", 120_000, 60, 60)
    cdrs, _ = rate(setup_of(frozenset(), Credits(initial_micro=1_000_000), toll_free_tariffs=(tf,)),
                   call(0, 90_000, to=18005550100, kind=CallKind.TOLL_FREE, frm=GB_NUMBER))
    assert cdr(cdrs) == dict(
        call_id=1, org_id="contoso", user_id="", call_type="toll_free",
        from_number="+442071234567", to_number="+18005550100", destination_country="",
        zone="", start_ms=0, end_ms=90_000, billed_s=120, pool="", pool_s=0,
        credits_micro=240_000, end_reason="hangup",
    )


def test_toll_free_without_credits_table_is_blocked_and_reported():
    tf = Tariff("44", 120_000, 60, 60)
    cdrs, events = rate(setup_of(toll_free_tariffs=(tf,)),
                        call(0, 90_000, to=18005550100, kind=CallKind.TOLL_FREE, frm=GB_NUMBER))
    assert cdr(cdrs)["end_reason"] == "blocked_no_balance"
    assert events == [(0, "contoso", "balance_exhausted", None, 0, None)]


def test_toll_free_unroutable_cases():
    tf = Tariff("44", 0, 60, 60)
    setup = setup_of(toll_free_tariffs=(tf,))
    cdrs, _ = rate(setup,
                   call(0, 1000, to=18005550199, kind=CallKind.TOLL_FREE, frm=GB_NUMBER),  # not ours
                   call(0, 1000, to=18005550100, kind=CallKind.TOLL_FREE, frm=0),  # no caller
                   call(0, 1000, to=18005550100, kind=CallKind.TOLL_FREE, frm=US_NUMBER),  # no tariff
                   call(0, 1000, to=18005550100, kind=CallKind.TOLL_FREE, frm=GB_NUMBER))
    assert [cdr(cdrs, i)["end_reason"] for i in (1, 2, 3, 4)] == ["unroutable"] * 3 + ["hangup"]
    assert cdr(cdrs, 1)["call_type"] == "toll_free"


def test_longest_prefix_wins():
    tariffs = (Tariff("1", 60_000, 60, 60, country="US", zone="A", plan_excluded=True),
               Tariff("121", 120_000, 60, 60, country="US", zone="B", plan_excluded=True),
               Tariff("12", 180_000, 60, 60, country="US", zone="C", plan_excluded=True))
    cdrs, _ = rate(setup_of(PLAN_CREDITS, Credits(initial_micro=1_000_000), tariffs=tariffs),
                   call(0, 1000, to=12125550100), call(0, 1000, to=13125550100))
    assert (cdr(cdrs, 1)["zone"], cdr(cdrs, 1)["credits_micro"]) == ("B", 120_000)
    assert (cdr(cdrs, 2)["zone"], cdr(cdrs, 2)["credits_micro"]) == ("A", 60_000)


def test_plan_excluded_destination_never_uses_the_pool():
    tariff = Tariff("1", 60_000, 60, 60, country="US", zone="A", plan_excluded=True)
    cdrs, _ = rate(setup_of(PLAN_CREDITS, Credits(initial_micro=1_000_000), tariffs=(tariff,)),
                   call(0, 1000))
    assert summary(cdr(cdrs)) == (1000, 60, "", 0, 60_000, "hangup")


def test_pool_capacities():
    users = (User("a", "US", frozenset({"domestic_calling_plan"})),
             User("b", "US", frozenset({"international_calling_plan"})),
             User("c", "GB", frozenset({"e5", "domestic_calling_plan"})),
             User("d", "DE", frozenset({"e5", "communications_credits"})))
    setup = setup_of(plans=Plans({"default": 10, "GB": 7}, international_minutes=3,
                                 dial_out_minutes=2))
    caps = pool_capacities_s(setup, Org("x", users))
    assert caps == {"domestic:US": 60 * 20, "international:US": 60 * 3, "domestic:GB": 60 * 7,
                    "dial_out": 60 * 4}


# --------------------------------------------------------------------------- instants


def test_refill_happens_before_boundary_at_same_instant():
    start = datetime(2026, 1, 31, 23, 59, tzinfo=timezone.utc)
    cdrs, events = rate(setup_of(start=start, plans=Plans({"default": 1})), call(0, 150_000))
    assert summary(cdr(cdrs)) == (120_000, 120, "domestic:US", 120, 0,
                                  "dropped_balance_exhausted")
    assert events == [(60_000, "contoso", "pools_refilled", None, None, None)]


def test_no_refill_at_start_even_on_the_first_of_a_month():
    assert month_starts_ms(START, 31 * DAY_MS) == [30 * DAY_MS]
    assert month_starts_ms(START, 30 * DAY_MS) == []


def test_same_instant_charges_by_answer_instant_then_call_id():
    plans = Plans({"default": 2})
    cdrs, _ = rate(setup_of(plans=plans), call(0, 600_000), call(60_000, 600_000),
                   call(60_000, 600_000))
    # At 60 s one minute is left: call 1 (answered first) takes it, calls 2 and 3 are blocked.
    assert summary(cdr(cdrs, 1))[:2] == (120_000, 120)
    assert [cdr(cdrs, i)["end_reason"] for i in (2, 3)] == ["blocked_no_balance"] * 2


def test_lower_call_id_wins_a_tie():
    cdrs, _ = rate(setup_of(plans=Plans({"default": 1})), call(0, 30_000), call(0, 30_000))
    assert [cdr(cdrs, i)["end_reason"] for i in (1, 2)] == ["hangup", "blocked_no_balance"]


def test_events_in_one_instant_follow_rule_order_then_org_order():
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    year = ms_between(start, datetime(2027, 1, 1, tzinfo=timezone.utc))
    credits = Credits(1_000_000, auto_recharge=True, recharge_below_micro=500_000,
                      recharge_amount_micro=1_000_000, card_expires=date(2026, 6, 30))
    setup = setup_of(CREDITS_ONLY, credits, start=start, end_ms=year + 3_600_000, orgs=2)
    _, events = rate(setup, call(year, 60_000, to=GB_NUMBER))
    at_year = [e for e in events if e[0] == year]
    assert at_year == [
        (year, "contoso", "pools_refilled", None, None, None),
        (year, "contoso", "credits_expired", 1_000_000, 0, None),
        (year, "contoso", "balance_exhausted", None, 0, None),
        (year, "contoso", "recharge_failed", None, 0, "card_expired"),
        (year, "org1", "pools_refilled", None, None, None),
        (year, "org1", "credits_expired", 1_000_000, 0, None),
        (year, "org1", "recharge_failed", None, 0, "card_expired"),
    ]


# --------------------------------------------------------------------------- lots


def test_lot_expiry_is_twelve_calendar_months_clamped():
    jan31 = datetime(2026, 1, 31, 8, 30, tzinfo=timezone.utc)
    assert lot_expiry_ms(jan31, 0) == ms_between(jan31, datetime(2027, 1, 31, 8, 30,
                                                                 tzinfo=timezone.utc))
    feb29 = datetime(2028, 2, 29, 12, tzinfo=timezone.utc)
    assert lot_expiry_ms(feb29, 0) == ms_between(feb29, datetime(2029, 2, 28, 12,
                                                                 tzinfo=timezone.utc))
    assert lot_expiry_ms(feb29, DAY_MS) == lot_expiry_ms(feb29, 0) + DAY_MS  # Mar 1 -> Mar 1


def test_lot_rest_expires_with_the_lot():
    start = datetime(2028, 2, 29, 12, tzinfo=timezone.utc)
    expiry = ms_between(start, datetime(2029, 2, 28, 12, tzinfo=timezone.utc))
    setup = setup_of(CREDITS_ONLY, Credits(initial_micro=1_000_000), start=start,
                     end_ms=expiry + DAY_MS)
    cdrs, events, state = rate(setup, call(1000, 120_000, to=GB_NUMBER), state=True)
    assert cdr(cdrs)["credits_micro"] == 120_000
    assert (expiry, "contoso", "credits_expired", 880_000, 0, None) in events
    assert state.balances_micro == {"contoso": 0}


def test_lots_are_spent_oldest_first_and_an_empty_lot_expires_silently():
    start = datetime(2026, 1, 31, tzinfo=timezone.utc)
    expiry = ms_between(start, datetime(2027, 1, 31, tzinfo=timezone.utc))
    credits = Credits(50_000, auto_recharge=True, recharge_below_micro=40_000,
                      recharge_amount_micro=100_000)
    per_second = Tariff("44", 60_000, 1, 1, country="GB", zone="B")  # 1_000 per second
    setup = setup_of(CREDITS_ONLY, credits, start=start, end_ms=expiry + 5_000,
                     tariffs=(per_second,))
    # Call 1 spends 20_000 (at 10 s the balance is 39_000: recharge, a lot expiring at
    # expiry + 10 s); call 2 spends 40_000: 30_000 empties the first lot, 10_000 comes
    # from the recharge lot.  The first lot then expires with nothing left: no event.
    cdrs, events, state = rate(setup, call(0, 20_000, to=GB_NUMBER),
                               call(DAY_MS, 40_000, to=GB_NUMBER), state=True)
    assert [cdr(cdrs, i)["credits_micro"] for i in (1, 2)] == [20_000, 40_000]
    assert not [e for e in events if e[2] == "credits_expired"]
    assert state.balances_micro == {"contoso": 90_000}


# --------------------------------------------------------------------------- recharge


def unroutable_at(*times_ms: int) -> list[tuple]:
    """Calls whose only effect is to give the org an instant (rules item 1)."""
    return [call(t, 1000, to=33123456789) for t in times_ms]


def test_retry_after_an_expired_card():
    credits = Credits(0, auto_recharge=True, recharge_below_micro=1_000_000,
                      recharge_amount_micro=1_000_000, card_expires=date(2026, 10, 31),
                      retry_after_ms=60_000)
    _, events = rate(setup_of(credits=credits), *unroutable_at(30_000, 60_000, 90_000, 200_000))
    failed = [e[0] for e in events if e[2] == "recharge_failed"]
    # 0: start check; 60_000: first instant at or after 0 + 60 s; 200_000: after 120_000
    assert failed == [0, 60_000, 200_000]


def test_card_valid_through_the_end_of_its_day():
    credits = Credits(0, auto_recharge=True, recharge_below_micro=1_000_000,
                      recharge_amount_micro=10_000, card_expires=date(2026, 11, 1),
                      retry_after_ms=DAY_MS)
    _, events = rate(setup_of(credits=credits, end_ms=2 * DAY_MS),
                     *unroutable_at(DAY_MS - 1, DAY_MS, DAY_MS + 1))
    assert [(e[0], e[2]) for e in events] == [
        (0, "recharge_succeeded"), (DAY_MS - 1, "recharge_succeeded"),
        (DAY_MS, "recharge_failed"),
    ]
    assert events[1][4] == 20_000


def test_balance_exhausted_at_most_once_until_credits_added():
    tariff = Tariff("44", 1_800_000, 1, 1, country="GB", zone="B")  # 30_000 per second
    credits = Credits(0, auto_recharge=True, recharge_below_micro=15_000,
                      recharge_amount_micro=10_000)
    _, events = rate(setup_of(CREDITS_ONLY, credits, tariffs=(tariff,)),
                     *(call(t, 5000, to=GB_NUMBER) for t in (1000, 2000, 3000)))
    assert events == [
        (0, "contoso", "recharge_succeeded", 10_000, 10_000, None),
        (1000, "contoso", "balance_exhausted", None, 10_000, None),
        (1000, "contoso", "recharge_succeeded", 10_000, 20_000, None),
        (2000, "contoso", "balance_exhausted", None, 20_000, None),
    ]


def test_initial_purchase_comes_before_the_start_check():
    credits = Credits(100, auto_recharge=True, recharge_below_micro=500, recharge_amount_micro=1000)
    _, events = rate(setup_of(credits=credits))
    assert events == [
        (0, "contoso", "credits_purchased", 100, 100, None),
        (0, "contoso", "recharge_succeeded", 1000, 1100, None),
    ]
