"""Scenario loading (SPEC §2): exact values for valid files, one exact line per mistake."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import CallKind, Credits, Plans, Tariff, User
from simulator.scenario import (
    Bound,
    CallExpectation,
    CallSpec,
    Problem,
    ScenarioError,
    TotalsExpectation,
    TrafficSpec,
    load_scenario,
    parse_scenario,
)
from simulator.scenario._loader import _Routes

# SPEC §2's example (two comments shortened).
SPEC_EXAMPLE = """\
[simulation]
name = "quickstart"
seed = 7                          # drives every random draw; same seed => identical outputs
start = "2026-11-01T00:00:00Z"    # UTC
duration = "1d"                   # "90s", "15m", "2h", "30d", or an integer of seconds
currency = "USD"

[plans]                           # optional; these are the defaults
domestic_minutes = { default = 3000 }   # per user per month, keyed by user country
international_minutes = 600             # per international-calling-plan user per month
dial_out_minutes = 60                   # per audio-conferencing user per month
dial_out_zones = ["A"]                  # tariff zones the dial-out pool covers

[[tariff]]                        # outbound and dial-out destinations, longest prefix wins
prefix = "1"                      # E.164 digits without '+'
country = "US"
zone = "A"
per_minute = "0.02"               # decimal string, currency units per minute
increment = "60/60"               # first/next increment in whole seconds ("1/1", "30/6", ...)
plan_excluded = false             # true: premium destination, never paid from a pool

[[toll_free_tariff]]              # inbound toll-free, rated by the CALLER's prefix
prefix = "44"
per_minute = "0.05"
increment = "60/60"

[[orgs]]
id = "contoso"
toll_free_numbers = ["+18005550100"]

[orgs.credits]                    # optional: no table = the organisation has no credits
initial = "100.00"                # one lot purchased at simulation start
auto_recharge = true
recharge_below = "20.00"          # trigger: balance strictly below this
recharge_amount = "50.00"
card_expires = "2027-06-30"       # valid through the end of that UTC day
retry_after = "24h"               # after a failed recharge, no new attempt before this

[[orgs.users]]
id = "alice"                      # a single user ...
country = "US"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits"]

[[orgs.users]]
group = "sales"                   # ... or a group: ids sales-0001 .. sales-0050
count = 50
country = "US"
licenses = ["e5", "domestic_calling_plan"]

[[traffic]]                       # generated calls: Poisson arrivals, exponential holding
org = "contoso"
type = "domestic"                 # domestic | international | conference_dial_out | toll_free
calls_per_hour = 120
holding_mean = "3m"
users = "sales"                   # optional: a group or user id (default: all users of org)
destinations = ["1212", "1415"]   # optional prefixes; toll_free: caller prefixes

[[calls]]                         # explicit calls, for exact QA cases
at = "10s"                        # offset from start
org = "contoso"
user = "alice"                    # omitted for toll_free
type = "outbound"                 # outbound (= domestic|international) | conference_dial_out
to = "+12125550100"
from = "+442071234567"            # required for toll_free, optional otherwise
duration = "2h"                   # holding time if nothing cuts the call
"""

MINIMAL = """\
[simulation]
name = "minimal"
seed = 0
start = "2026-11-01T00:00:00Z"
duration = "1h"
currency = "EUR"

[[orgs]]
id = "acme"

[[orgs.users]]
id = "bob"
country = "FR"
licenses = []
"""


def variant(old: str, new: str, base: str = SPEC_EXAMPLE) -> str:
    """The example with one exact piece of text replaced."""
    assert base.count(old) == 1, old
    return base.replace(old, new)


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "scenario.toml")
    return str(info.value).splitlines()


def only_problem(text: str) -> str:
    lines = problems(text)
    assert len(lines) == 1, lines
    return lines[0]


# -- valid files ----------------------------------------------------------------------------


def test_spec_example_loads_with_exact_values() -> None:
    s = parse_scenario(SPEC_EXAMPLE)
    assert (s.name, s.seed, s.source) == ("quickstart", 7, "<string>")
    setup = s.setup
    assert setup.start == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert setup.start.tzinfo is not None
    assert setup.end_ms == 86_400_000
    assert setup.currency == "USD"
    assert setup.plans == Plans({"default": 3000}, 600, 60, ("A",))
    assert setup.tariffs == (Tariff("1", 20_000, 60, 60, "US", "A", False),)
    assert setup.toll_free_tariffs == (Tariff("44", 50_000, 60, 60),)
    (org,) = setup.orgs
    assert org.id == "contoso"
    assert org.toll_free_numbers == ("+18005550100",)
    assert org.token is None
    assert org.credits == Credits(
        initial_micro=100_000_000,
        auto_recharge=True,
        recharge_below_micro=20_000_000,
        recharge_amount_micro=50_000_000,
        card_expires=date(2027, 6, 30),
        retry_after_ms=86_400_000,
    )
    assert len(org.users) == 51
    assert org.users[0] == User(
        "alice", "US", frozenset({"phone_system", "domestic_calling_plan", "communications_credits"})
    )
    sales = org.users[1:]
    assert [u.id for u in sales] == [f"sales-{n:04d}" for n in range(1, 51)]
    assert sales[0].id == "sales-0001" and sales[-1].id == "sales-0050"
    # e5 is kept as written; the core expands it (User.effective_licenses).
    assert all(u.licenses == frozenset({"e5", "domestic_calling_plan"}) for u in sales)
    assert s.groups == {(0, "sales"): tuple(range(1, 51))}
    assert s.traffic == (
        TrafficSpec(
            org=0,
            type="domestic",
            calls_per_hour=120.0,
            holding_mean_ms=180_000,
            users=tuple(range(1, 51)),
            destinations=("1212", "1415"),
        ),
    )
    assert s.calls == (
        CallSpec(
            at_ms=10_000,
            org=0,
            user=0,
            kind=CallKind.OUTBOUND,
            to_number=12125550100,
            from_number=442071234567,
            duration_ms=7_200_000,
        ),
    )
    assert s.expectations == ()


def test_load_scenario_reads_a_file_and_names_its_source(tmp_path: Path) -> None:
    path = tmp_path / "quickstart.toml"
    path.write_text(SPEC_EXAMPLE, encoding="utf-8")
    s = load_scenario(path)
    assert s.source == str(path)
    assert s.setup.end_ms == 86_400_000


def test_optional_tables_take_spec_defaults() -> None:
    s = parse_scenario(MINIMAL)
    assert s.setup.plans == Plans()
    assert s.setup.tariffs == () and s.setup.toll_free_tariffs == ()
    org = s.setup.orgs[0]
    assert org.credits is None and org.toll_free_numbers == ()
    assert org.users == (User("bob", "FR", frozenset()),)
    assert (s.traffic, s.calls, s.groups, s.expectations) == ((), (), {}, ())


def test_domestic_minutes_without_default_keeps_3000() -> None:
    text = MINIMAL + '[plans]\ndomestic_minutes = { FR = 1000 }\ndial_out_zones = []\n'
    plans = parse_scenario(text).setup.plans
    assert dict(plans.domestic_minutes) == {"default": 3000, "FR": 1000}
    assert plans.dial_out_zones == ()


def test_credits_defaults() -> None:
    text = variant('[[orgs.users]]\nid = "bob"', '[orgs.credits]\n\n[[orgs.users]]\nid = "bob"', MINIMAL)
    assert parse_scenario(text).setup.orgs[0].credits == Credits(
        initial_micro=0, auto_recharge=False, card_expires=None, retry_after_ms=86_400_000
    )


@pytest.mark.parametrize(
    ("written", "ms"),
    [
        ("90", 90_000),
        ('"90s"', 90_000),
        ('"1.5s"', 1_500),
        ('"250ms"', 250),
        ('"15m"', 900_000),
        ('"2h"', 7_200_000),
        ('"30d"', 2_592_000_000),
        ('"0.5m"', 30_000),
    ],
)
def test_durations_are_exact_milliseconds(written: str, ms: int) -> None:
    text = variant('duration = "1h"', f"duration = {written}", MINIMAL)
    assert parse_scenario(text).setup.end_ms == ms


@pytest.mark.parametrize(
    ("written", "micro"),
    [('"0"', 0), ('"0.1"', 100_000), ('"1"', 1_000_000), ('"12.345678"', 12_345_678)],
)
def test_money_is_exact_micro_units(written: str, micro: int) -> None:
    text = variant('per_minute = "0.02"', f"per_minute = {written}")
    assert parse_scenario(text).setup.tariffs[0].per_minute_micro == micro


def test_start_accepts_plus_zero_offset_and_toml_datetimes() -> None:
    utc = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for written in ('"2026-11-01T00:00:00+00:00"', "2026-11-01T00:00:00Z", "2026-11-01T00:00:00+00:00"):
        text = variant('start = "2026-11-01T00:00:00Z"', f"start = {written}", MINIMAL)
        start = parse_scenario(text).setup.start
        assert start == utc and start.tzinfo == timezone.utc


def test_card_expires_accepts_a_toml_date() -> None:
    text = variant('card_expires = "2027-06-30"', "card_expires = 2027-06-30")
    credits = parse_scenario(text).setup.orgs[0].credits
    assert credits is not None and credits.card_expires == date(2027, 6, 30)


def test_group_ids_grow_beyond_four_digits_when_count_needs_it() -> None:
    s = parse_scenario(variant("count = 50", "count = 12345"))
    users = s.setup.orgs[0].users
    assert (users[1].id, users[-1].id) == ("sales-00001", "sales-12345")


def test_traffic_without_users_means_all_users_and_toll_free_means_none() -> None:
    text = SPEC_EXAMPLE.replace('users = "sales" ', "#") + (
        '[[traffic]]\norg = "contoso"\ntype = "toll_free"\ncalls_per_hour = 1.5\n'
        'holding_mean = 60\n'
        '[[traffic]]\norg = "contoso"\ntype = "international"\ncalls_per_hour = 1\n'
        'holding_mean = "1m"\nusers = "alice"\n'
    )
    domestic, toll_free, international = parse_scenario(text).traffic
    assert domestic.users == tuple(range(51))
    assert (toll_free.users, toll_free.calls_per_hour, toll_free.destinations) == ((), 1.5, None)
    assert international.users == (0,)


def test_toll_free_call_has_no_user_and_users_are_numbered_across_orgs() -> None:
    text = SPEC_EXAMPLE + (
        '[[orgs]]\nid = "fabrikam"\ntoken = "s3cret"\n'
        '[[orgs.users]]\nid = "carol"\ncountry = "GB"\nlicenses = ["phone_system"]\n'
        '[[calls]]\nat = 0\norg = "contoso"\ntype = "toll_free"\nto = "+18005550100"\n'
        'from = "+442071234567"\nduration = 0\n'
        '[[calls]]\nat = "1.5s"\norg = "fabrikam"\nuser = "carol"\n'
        'type = "conference_dial_out"\nto = "+442071234567"\nduration = "1m"\n'
    )
    s = parse_scenario(text)
    assert s.setup.orgs[1].token == "s3cret"
    _, toll_free, dial_out = s.calls
    assert toll_free == CallSpec(0, 0, -1, CallKind.TOLL_FREE, 18005550100, 442071234567, 0)
    assert dial_out == CallSpec(1_500, 1, 51, CallKind.CONFERENCE_DIAL_OUT, 442071234567, 0, 60_000)
    assert s.setup.users()[51][1].id == "carol"


def test_expect_tables_are_parsed_once_by_the_loader() -> None:
    """`[[expect]]` comes out of the loader as frozen expectations: nothing parses it again."""
    text = SPEC_EXAMPLE + '[[expect]]\ncall = 1\nend_reason = "hangup"\n[[expect]]\ncalls = { min = 1 }\n'
    first, second = parse_scenario(text).expectations
    assert first == CallExpectation(index=0, call=1, call_id=None, checks={"end_reason": "hangup"})
    assert isinstance(second, TotalsExpectation) and second.index == 1 and second.org is None
    assert second.checks == {"calls": Bound(1, None, "count")}
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.call = 2  # type: ignore[misc]


def test_expect_tables_are_checked_with_the_rest() -> None:  # details: tests/simulator/test_expect.py
    text = SPEC_EXAMPLE + '[[expect]]\ncall = 1\nend_at = "1 h"\n'
    assert only_problem(text) == (
        'expect[0].end_at: expected a duration like "90s", "15m", "2h", "1d" or an integer of '
        'seconds, got "1 h"'
    )


# -- one line per mistake -----------------------------------------------------------------


def test_unknown_key_in_an_org_is_an_error() -> None:
    text = variant('id = "contoso"\n', 'id = "contoso"\ncredit = "5.00"\n')
    assert only_problem(text) == "orgs[0].credit: unknown key"


def test_unknown_top_level_and_nested_keys_are_errors() -> None:
    text = variant('retry_after = "24h"', 'retry_after = "24h"\nretry = "1h"') + "[simulaton]\n"
    assert problems(text) == ["simulaton: unknown key", "orgs[0].credits.retry: unknown key"]


def test_unknown_license_names_the_user_place_as_in_spec() -> None:
    text = variant('licenses = ["e5", "domestic_calling_plan"]', 'licenses = ["e5", "foo"]')
    assert only_problem(text) == (
        'orgs[0].users[1].licenses: unknown license "foo" (valid: audio_conferencing, '
        "communications_credits, domestic_calling_plan, e5, international_calling_plan, "
        "phone_system)"
    )


def test_money_as_a_float_is_refused() -> None:
    text = variant('per_minute = "0.02"', "per_minute = 0.02")
    assert only_problem(text) == 'tariff[0].per_minute: expected a decimal string like "0.02", got 0.02'


def test_money_as_an_integer_is_refused() -> None:
    text = variant('recharge_amount = "50.00"', "recharge_amount = 50")
    assert only_problem(text) == 'orgs[0].credits.recharge_amount: expected a decimal string like "50", got 50'


def test_money_with_more_than_six_decimals_is_refused() -> None:
    text = variant('per_minute = "0.05"', 'per_minute = "0.0000001"')
    assert only_problem(text) == (
        'toll_free_tariff[0].per_minute: at most 6 decimals (micro-units), got "0.0000001"'
    )


def test_negative_money_and_zero_recharge_amount_are_refused() -> None:
    text = variant('initial = "100.00"', 'initial = "-1"')
    text = variant('recharge_amount = "50.00"', 'recharge_amount = "0.00"', text)
    assert problems(text) == [
        'orgs[0].credits.initial: must not be negative, got "-1"',
        'orgs[0].credits.recharge_amount: must be greater than 0, got "0.00"',
    ]


@pytest.mark.parametrize(
    ("written", "line"),
    [
        ('"0.0001s"', 'simulation.duration: "0.0001s" is not a whole number of milliseconds'),
        (
            '"5 minutes"',
            'simulation.duration: expected a duration like "90s", "15m", "2h", "1d" '
            'or an integer of seconds, got "5 minutes"',
        ),
        (
            "1.5",
            'simulation.duration: expected a duration like "90s", "15m", "2h", "1d" '
            "or an integer of seconds, got 1.5",
        ),
        ('"0s"', 'simulation.duration: must be greater than 0, got "0s"'),
    ],
)
def test_bad_durations_are_refused(written: str, line: str) -> None:
    assert only_problem(variant('duration = "1d"', f"duration = {written}")) == line


def test_negative_call_duration_and_zero_holding_mean_are_refused() -> None:
    text = variant('duration = "2h"', "duration = -1")
    text = variant('holding_mean = "3m"', "holding_mean = 0", text)
    assert problems(text) == [
        "traffic[0].holding_mean: must be greater than 0, got 0",
        "calls[0].duration: must not be negative, got -1",
    ]


@pytest.mark.parametrize(
    ("written", "line"),
    [
        ('"60"', 'tariff[0].increment: expected "first/next" in whole seconds like "60/60", got "60"'),
        ('"0/60"', 'tariff[0].increment: increments must be at least 1 second, got "0/60"'),
        ("60", 'tariff[0].increment: expected "first/next" in whole seconds like "60/60", got 60'),
    ],
)
def test_bad_increments_are_refused(written: str, line: str) -> None:
    text = variant('increment = "60/60"               #', f"increment = {written} #")
    assert only_problem(text) == line


def test_numbers_must_be_e164() -> None:
    text = variant('to = "+12125550100"', 'to = "12125550100"')
    text = variant('toll_free_numbers = ["+18005550100"]', 'toll_free_numbers = ["+0800"]', text)
    expected = 'expected an E.164 number like "+12125550100" (+ and 2 to 15 digits)'
    assert problems(text) == [
        f'orgs[0].toll_free_numbers[0]: {expected}, got "+0800"',
        f'calls[0].to: {expected}, got "12125550100"',
    ]


def test_prefixes_must_be_digits_without_plus() -> None:
    text = variant('prefix = "1" ', 'prefix = "+1" ')
    text = variant('destinations = ["1212", "1415"]', 'destinations = ["1212", "0"]', text)
    expected = 'expected a prefix of 1 to 15 digits without "+", like "44"'
    assert problems(text) == [
        f'tariff[0].prefix: {expected}, got "+1"',
        f'traffic[0].destinations[1]: {expected}, got "0"',
    ]


def test_empty_destinations_are_refused() -> None:
    text = variant('destinations = ["1212", "1415"]', "destinations = []")
    assert only_problem(text) == "traffic[0].destinations: must not be empty"


def test_missing_required_key() -> None:
    text = variant("seed = 7 ", "#")
    assert only_problem(text) == "simulation.seed: required"


def test_missing_orgs_and_simulation() -> None:
    assert problems('[plans]\ndial_out_minutes = 5\n') == ["simulation: required", "orgs: required"]


def test_wrong_toml_types_are_named_plainly() -> None:
    text = variant("seed = 7 ", 'seed = "7" ')
    text = variant("plan_excluded = false", 'plan_excluded = "no"', text)
    assert problems(text) == [
        'simulation.seed: expected an integer, got "7"',
        'tariff[0].plan_excluded: expected true or false, got "no"',
    ]


def test_codes_and_choices_are_checked() -> None:
    text = variant('currency = "USD"', 'currency = "usd"')
    text = variant('country = "US"\nzone', 'country = "USA"\nzone', text)
    text = variant('type = "outbound"', 'type = "domestic"', text)
    assert problems(text) == [
        'simulation.currency: expected a 3-letter uppercase currency code like "USD", got "usd"',
        'tariff[0].country: expected a 2-letter uppercase country code like "US", got "USA"',
        'calls[0].type: expected one of "outbound", "conference_dial_out", "toll_free", got '
        '"domestic" (explicit calls say "outbound"; domestic or international follows from `to`)',
    ]


def test_toml_syntax_error_names_the_line() -> None:
    text = variant('zone = "A"', "zone = A")
    assert only_problem(text) == "scenario.toml: TOML syntax error at line 17, column 8: Invalid value"


def test_unknown_org_in_traffic_and_calls() -> None:
    text = variant('org = "contoso"\ntype = "domestic"', 'org = "contosa"\ntype = "domestic"')
    text = variant('org = "contoso"\nuser', 'org = "fabrikam"\nuser', text)
    assert problems(text) == [
        'traffic[0].org: unknown org "contosa"',
        'calls[0].org: unknown org "fabrikam"',
    ]


def test_users_must_belong_to_the_org() -> None:
    text = variant('users = "sales"', 'users = "marketing"')
    text = variant('user = "alice"', 'user = "bob"', text)
    assert problems(text) == [
        'traffic[0].users: no group or user "marketing" in org "contoso"',
        'calls[0].user: no user "bob" in org "contoso"',
    ]


def test_a_call_user_may_not_be_a_group() -> None:
    text = variant('user = "alice"', 'user = "sales"')
    assert only_problem(text) == (
        'calls[0].user: "sales" is a group; name one of its users, like "sales-0001"'
    )


def test_outbound_call_needs_a_user() -> None:
    text = variant('user = "alice"', "#")
    assert only_problem(text) == "calls[0].user: required for outbound calls"


def test_toll_free_call_needs_from_and_no_user() -> None:
    text = variant('type = "outbound"', 'type = "toll_free"')
    text = variant('from = "+442071234567"', "#", text)
    assert problems(text) == [
        "calls[0].user: not allowed for toll_free calls (the caller is outside the org)",
        "calls[0].from: required for toll_free calls",
    ]


def test_toll_free_traffic_takes_no_users() -> None:
    text = variant('type = "domestic"', 'type = "toll_free"')
    assert only_problem(text) == (
        "traffic[0].users: not allowed for toll_free traffic (callers are outside the org)"
    )


def test_traffic_that_cannot_happen_is_still_valid() -> None:
    # simulator/traffic.py: such a source yields no calls; it is not a scenario mistake.
    text = MINIMAL.replace('[[orgs.users]]\nid = "bob"\ncountry = "FR"\nlicenses = []\n', "")
    text += '[[traffic]]\norg = "acme"\ntype = "domestic"\ncalls_per_hour = 1\nholding_mean = 60\n'
    text += '[[traffic]]\norg = "acme"\ntype = "toll_free"\ncalls_per_hour = 1\nholding_mean = 60\n'
    s = parse_scenario(text)
    assert s.setup.orgs[0].users == ()
    assert [t.users for t in s.traffic] == [(), ()]


@pytest.mark.parametrize(("at", "shown"), [('"2d"', "2d"), ('"24h"', "1d"), ("86401", "86401s")])
def test_call_at_or_after_the_end_is_refused(at: str, shown: str) -> None:
    text = variant('at = "10s"', f"at = {at}")
    assert only_problem(text) == f"calls[0].at: {shown} is not before the end of the simulation (1d)"


@pytest.mark.parametrize(
    ("written", "line"),
    [
        (
            '"2026-11-01T01:00:00+01:00"',
            'simulation.start: must be in UTC ("Z" or "+00:00"), got "2026-11-01T01:00:00+01:00"',
        ),
        (
            "2026-11-01T01:00:00+01:00",
            'simulation.start: must be in UTC ("Z" or "+00:00"), got 2026-11-01T01:00:00+01:00',
        ),
        (
            '"2026-11-01T00:00:00"',
            'simulation.start: "2026-11-01T00:00:00" has no UTC offset: write it in UTC with "Z", '
            'like "2026-11-01T00:00:00Z"',
        ),
        (
            "2026-11-01T00:00:00",
            'simulation.start: 2026-11-01T00:00:00 has no UTC offset: write it in UTC with "Z", '
            'like "2026-11-01T00:00:00Z"',
        ),
        (
            '"2026-11-01"',
            'simulation.start: expected an RFC 3339 UTC date-time like "2026-11-01T00:00:00Z", '
            'got "2026-11-01"',
        ),
        ('"2026-02-30T00:00:00Z"', 'simulation.start: not a valid date-time: "2026-02-30T00:00:00Z"'),
    ],
)
def test_start_must_be_utc(written: str, line: str) -> None:
    text = variant('start = "2026-11-01T00:00:00Z"', f"start = {written}")
    assert only_problem(text) == line


def test_bad_card_expiry_date() -> None:
    text = variant('card_expires = "2027-06-30"', 'card_expires = "30/06/2027"')
    assert only_problem(text) == (
        'orgs[0].credits.card_expires: expected a date like "2027-06-30", got "30/06/2027"'
    )


def test_auto_recharge_needs_threshold_and_amount() -> None:
    text = variant('recharge_below = "20.00"', "#")
    text = variant('recharge_amount = "50.00"', "#", text)
    assert problems(text) == [
        "orgs[0].credits.recharge_below: required when auto_recharge = true",
        "orgs[0].credits.recharge_amount: required when auto_recharge = true",
    ]


def test_user_is_either_one_id_or_a_counted_group() -> None:
    text = variant('id = "alice" ', 'id = "alice"\ngroup = "x"\ncount = 2 ')
    text = variant("count = 50\n", "", text)
    assert problems(text) == [
        'orgs[0].users[0]: give either "id" (one user) or "group" with "count", not both',
        'orgs[0].users[1].count: required with "group"',
    ]


def test_group_count_must_be_positive() -> None:
    text = variant("count = 50", "count = 0")
    assert only_problem(text) == "orgs[0].users[1].count: must be at least 1, got 0"


def test_domestic_minutes_keys_are_default_or_country_codes() -> None:
    text = variant("domestic_minutes = { default = 3000 }", "domestic_minutes = { us = 10 }")
    assert only_problem(text) == (
        'plans.domestic_minutes.us: expected "default" or a 2-letter uppercase country code, '
        'got key "us"'
    )


def test_absurd_sizes_are_refused_before_they_overflow_or_exhaust_memory() -> None:
    text = variant('duration = "1d"', 'duration = "36526d"')
    text = variant("count = 50", "count = 1000001", text)
    text = variant('initial = "100.00"', 'initial = "1000000000.000001"', text)
    text = variant('increment = "60/60"               #', 'increment = "3601/60" #', text)
    assert problems(text) == [
        'simulation.duration: must be at most 36525d (100 years), got "36526d"',
        'tariff[0].increment: increments must be at most 3600 seconds, got "3601/60"',
        'orgs[0].credits.initial: too large: must be at most "1000000000", got "1000000000.000001"',
        "orgs[0].users[1].count: must be at most 1000000, got 1000001",
    ]


def test_duplicates_are_reported_at_the_second_definition() -> None:
    text = SPEC_EXAMPLE + (
        '[[tariff]]\nprefix = "1"\ncountry = "CA"\nzone = "A"\nper_minute = "0.01"\n'
        'increment = "1/1"\n'
        '[[orgs]]\nid = "contoso"\n'
        '[[orgs.users]]\nid = "dave"\ncountry = "US"\nlicenses = []\n'
        '[[orgs.users]]\nid = "dave"\ncountry = "US"\nlicenses = []\n'
        '[[orgs.users]]\nid = "sales-0002"\ncountry = "US"\nlicenses = []\n'
        '[[orgs.users]]\ngroup = "sales"\ncount = 3\ncountry = "US"\nlicenses = []\n'
    )
    assert problems(text) == [
        'tariff[1].prefix: duplicate prefix "1" (first at tariff[0])',
        'orgs[1].id: duplicate org id "contoso" (first at orgs[0].id)',
        'orgs[1].users[1].id: duplicate user id "dave" (first at orgs[1].users[0].id)',
        'orgs[1].users[3].group: member id "sales-0002" is already a user id (at orgs[1].users[2].id)',
    ]


def test_group_names_and_user_ids_share_one_namespace() -> None:
    user = '\n[[orgs.users]]\n{} = "{}"\ncountry = "FR"\nlicenses = []\n'
    group = user + "count = 2\n"
    text = (
        MINIMAL
        + group.format("group", "bob")
        + group.format("group", "team")
        + user.format("id", "team")
        + user.format("id", "team-0002")
        + group.format("group", "team")
    )
    assert problems(text) == [
        'orgs[0].users[1].group: "bob" is already a user id (at orgs[0].users[0].id)',
        'orgs[0].users[3].id: "team" is already a group (at orgs[0].users[2].group)',
        'orgs[0].users[4].id: duplicate user id "team-0002" (first at orgs[0].users[2].group)',
        'orgs[0].users[5].group: duplicate group "team" (first at orgs[0].users[2].group)',
    ]


@pytest.mark.parametrize(("old", "new", "place"), [
    ('id = "contoso"', r'id = "con\u0000toso"', "orgs[0].id"),
    ('id = "alice" ', r'id = "al\nice" ', "orgs[0].users[0].id"),
    ('group = "sales" ', r'group = "sa\u001bles" ', "orgs[0].users[1].group"),
    ('id = "contoso"', 'id = "contoso"\ntoken = "s3\\u0007cret"', "orgs[0].token"),
])
def test_control_characters_in_ids_are_refused_in_one_line(old: str, new: str, place: str) -> None:
    """They would reach CSV fields, metric labels and token variable names."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario(variant(old, new), "scenario.toml")
    problem = info.value.problems[0]  # others may follow: an org id others name is unknown
    assert problem.place == place and problem.problem.startswith(
        "must not contain control characters, got U+00")
    assert "cret" not in problem.located()  # a token is not echoed


def test_duplicate_tokens_are_refused_without_echoing_them() -> None:
    text = variant('id = "contoso"\n', 'id = "contoso"\ntoken = "s3cret"\n')
    text += '[[orgs]]\nid = "fabrikam"\ntoken = "s3cret"\n'
    line = only_problem(text)
    assert line == "orgs[1].token: same token as orgs[0].token; server mode tells orgs apart by token"
    assert "s3cret" not in line


def test_several_problems_are_reported_together() -> None:
    text = variant("seed = 7 ", "seed = -1 ")
    text = variant('per_minute = "0.02"', "per_minute = 0.02", text)
    text = variant('licenses = ["e5", "domestic_calling_plan"]', 'licenses = ["foo", "bar"]', text)
    text = variant('org = "contoso"\nuser', 'org = "nobody"\nuser', text)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "scenario.toml")
    assert [str(p) for p in info.value.problems] == [
        "simulation.seed: must be at least 0, got -1",
        'tariff[0].per_minute: expected a decimal string like "0.02", got 0.02',
        'orgs[0].users[1].licenses: unknown licenses "foo", "bar" (valid: audio_conferencing, '
        "communications_credits, domestic_calling_plan, e5, international_calling_plan, "
        "phone_system)",
        'calls[0].org: unknown org "nobody"',
    ]
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)


def test_a_bad_org_does_not_cause_false_reports_about_references_to_it() -> None:
    text = variant('initial = "100.00"', "initial = 100")
    assert only_problem(text) == (
        'orgs[0].credits.initial: expected a decimal string like "100", got 100'
    )


def test_items_that_are_not_tables_are_refused() -> None:
    text = 'plans = 3\ntariff = "1"\ncalls = [1]\n' + MINIMAL
    assert problems(text) == [
        'tariff: expected an array, got "1"',
        "plans: expected a table, got 3",
        "calls[0]: expected a table, got 1",
    ]


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.problems == [Problem(str(path), "no such file")]
    assert str(info.value) == f"{path}: no such file"


def test_a_file_that_is_not_utf8_is_a_scenario_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(MINIMAL.replace('"minimal"', '"caf\xe9"').encode("latin-1"))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: not UTF-8 text (line 2)"


def test_problem_prints_as_place_colon_problem() -> None:
    assert str(Problem("orgs[0].id", "required")) == "orgs[0].id: required"
    assert str(ScenarioError([Problem("a", "b"), Problem("c", "d")])) == "a: b\nc: d"


# -- limits of the calendar and of numbers -----------------------------------------------


def test_a_card_valid_through_9999_12_31_never_expires_in_the_run() -> None:
    from rating_core import card_valid_until_ms

    s = parse_scenario(variant('card_expires = "2027-06-30"', 'card_expires = "9999-12-31"'))
    credits = s.setup.orgs[0].credits
    assert credits is not None and credits.card_expires == date(9999, 12, 31)
    until = card_valid_until_ms(s.setup.start, credits.card_expires)
    assert until is not None and until > s.setup.end_ms


@pytest.mark.parametrize(
    ("start", "duration", "place"),
    [
        ("9999-01-01T00:00:00Z", "1d", "simulation.start"),
        ("9998-11-30T00:00:00Z", "2d", "simulation.duration"),
        ("9990-01-01T00:00:00Z", "36500d", "simulation.duration"),
    ],
)
def test_a_run_must_end_where_its_lots_can_still_expire(start, duration, place) -> None:
    text = variant('start = "2026-11-01T00:00:00Z"', f'start = "{start}"')
    text = variant('duration = "1d"  ', f'duration = "{duration}"  ', text)
    assert only_problem(text) == (
        f"{place}: the simulation must end by 9998-12-01 (lots bought during it expire 12 "
        "months later, and the calendar ends with the year 9999)"
    )


def test_the_latest_end_is_accepted_and_its_lots_expiry_is_representable() -> None:
    from rating_core import lot_expiry_ms, month_starts

    text = variant('start = "2026-11-01T00:00:00Z"', 'start = "9998-11-30T00:00:00Z"')
    setup = parse_scenario(text).setup
    assert lot_expiry_ms(setup.start, setup.end_ms - 1) > setup.end_ms
    assert month_starts(setup.start, setup.end_ms) == []


def test_a_number_too_long_for_python_is_one_line_with_its_line() -> None:
    text = variant("seed = 7 ", "seed = " + "9" * 5000 + " ")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "scenario.toml")
    assert [p.located() for p in info.value.problems] == [
        "scenario.toml:3: seed: number too large: 5000 digits"
    ]


def test_a_number_too_long_in_an_array_is_located_by_its_line() -> None:
    text = variant("seed = 7 ", "seed = 7\nx = [\n  1,\n  " + "9" * 5000 + "]\n")
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "scenario.toml")
    assert [p.located() for p in info.value.problems] == [
        "scenario.toml:6: number too large: 5000 digits"
    ]


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ('initial = "100.00"', 'initial = "' + "9" * 5000 + '"',
         'orgs[0].credits.initial: too large: must be at most "1000000000", got "9999999999999'),
        ('holding_mean = "3m"', 'holding_mean = "' + "9" * 30 + 'h"',
         "traffic[0].holding_mean: must be at most 36525d (100 years), got "),
        ('increment = "60/60"              ', 'increment = "60/' + "9" * 40 + '" ',
         "tariff[0].increment: increments must be at most 3600 seconds, got "),
        ("calls_per_hour = 120", "calls_per_hour = 1e12",
         "traffic[0].calls_per_hour: too large: must be at most 1e+09, got 1000000000000.0"),
        ("calls_per_hour = 120", "calls_per_hour = 1" + "0" * 400,  # float() overflows on it
         "traffic[0].calls_per_hour: too large: must be at most 1e+09, got 10000000000000000000"
         "… (401 digits)"),
        ("seed = 7 ", "seed = 0x" + "f" * 5000 + " ",  # tomllib reads it; str() cannot
         "simulation.seed: must be at most 9223372036854775807, got an integer of ~6,021 digits"),
    ],
    ids=["money", "duration", "increment", "rate", "integer-rate", "hex-seed"],
)
def test_huge_numbers_are_too_large_not_malformed(old: str, new: str, line: str) -> None:
    found = only_problem(variant(old, new))
    assert found.startswith(line), found
    assert len(found) < 200  # the value is shortened: one readable line


def test_problems_name_the_file_and_line_of_their_place(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(variant('licenses = ["e5", "domestic_calling_plan"]', 'licenses = ["e6"]'))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    (problem,) = info.value.problems
    assert (problem.file, problem.line) == (str(path), 48)
    assert problem.located().startswith(f"{path}:48: orgs[0].users[1].licenses: unknown license")


# -- warnings: valid parts that do nothing --------------------------------------------------


def warnings_of(text: str) -> list[str]:
    return [str(w) for w in parse_scenario(text).warnings]


def test_the_spec_example_has_no_warnings() -> None:
    assert warnings_of(SPEC_EXAMPLE) == []


def test_a_scenario_without_calls_is_warned_about() -> None:
    assert warnings_of(MINIMAL) == [
        "traffic: no [[traffic]] and no [[calls]]: `callsim run` makes no calls "
        "(`callsim serve` ignores both)"
    ]


def test_toll_free_traffic_of_an_org_without_toll_free_numbers_is_warned_about() -> None:
    text = variant('toll_free_numbers = ["+18005550100"]', "toll_free_numbers = []")
    text += '[[traffic]]\norg = "contoso"\ntype = "toll_free"\ncalls_per_hour = 1\nholding_mean = 60\n'
    assert warnings_of(text) == [
        'traffic[1].type: org "contoso" has no toll_free_numbers: this traffic makes no calls'
    ]


def test_dial_out_zones_no_tariff_has_are_warned_about() -> None:
    text = variant('dial_out_zones = ["A"]', 'dial_out_zones = ["A", "Z"]')
    assert warnings_of(text) == [
        'plans.dial_out_zones[1]: no [[tariff]] has zone "Z": the dial-out pool never pays for it'
    ]


def test_destinations_no_tariff_routes_are_warned_about() -> None:
    text = variant('destinations = ["1212", "1415"]', 'destinations = ["1212", "33", "12"]')
    text += '[[traffic]]\norg = "contoso"\ntype = "toll_free"\ncalls_per_hour = 1\n'
    text += 'holding_mean = 60\ndestinations = ["44", "49"]\n'
    assert warnings_of(text) == [  # "12" is routed in part (by "1"): not warned about
        'traffic[0].destinations[1]: no [[tariff]] prefix routes "33": its calls are all '
        "unroutable",
        'traffic[1].destinations[1]: no [[toll_free_tariff]] prefix routes "49": its calls are '
        "all unroutable",
    ]


def test_warnings_name_their_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(variant('dial_out_zones = ["A"]', 'dial_out_zones = ["Z"]'))
    (warning,) = load_scenario(path).warnings
    assert warning.located().startswith(f"{path}:12: plans.dial_out_zones[0]: ")


def test_a_quoted_key_is_shown_quoted_so_its_problem_stays_one_line() -> None:
    text = variant("[simulation]\n", '[simulation]\n"a\\nb" = 1\n"x.y" = 2\n')
    assert problems(text) == [
        'simulation."a\\nb": unknown key',
        'simulation."x.y": unknown key',
    ]


def test_a_run_with_a_card_valid_through_9999_12_31_recharges(tmp_path: Path) -> None:
    import json

    from simulator import cli

    path = tmp_path / "s.toml"
    path.write_text(variant('card_expires = "2027-06-30"', 'card_expires = "9999-12-31"'))
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == cli.EXIT_OK
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("0123", min_size=1, max_size=4), max_size=6),
       st.text("0123", min_size=1, max_size=5))
def test_a_destination_is_routed_when_a_tariff_prefix_starts_it_or_it_starts_one(
    tariffs: list[str], prefix: str
) -> None:
    routes = _Routes(tariffs)
    assert routes(prefix) == any(prefix.startswith(t) or t.startswith(prefix) for t in tariffs)
