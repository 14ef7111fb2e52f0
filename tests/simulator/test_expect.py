"""`[[expect]]` (docs/expectations.md): each kind passes and fails as it should, every failure
is reported with expected against actual, and a wrong expectation is refused before the run.

Most scenarios here are SPEC §5's worked examples, whose CDRs and events the SPEC states exactly.
"""

from __future__ import annotations

import json
import random
import re
import textwrap
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from simulator import cli, expect
from simulator.scenario._expect_schema import EVENT_KINDS, Bound, EventExpectation, say_ms
from simulator.outputs import EVENT_FIELDS
from simulator.units import format_ms_iso, parse_money_micro
from tests.scenarios import SCENARIOS


# SPEC §5: tariff 1 -> US, zone A, 0.02/min, 60/60; 60 domestic minutes; alice (US) calls
# +12125550100 at 0 s for 2 h.  The run lasts 3 h so that every end is inside it.
WORKED = """\
[simulation]
name = "worked"
seed = 1
start = "2026-11-01T00:00:00Z"
duration = "3h"
currency = "USD"

[plans]
domestic_minutes = {{ default = 60 }}

[[tariff]]
prefix = "1"
country = "US"
zone = "A"
per_minute = "0.02"
increment = "60/60"

[[orgs]]
id = "contoso"
{credits}
[[orgs.users]]
id = "alice"
country = "US"
licenses = [{licenses}]

[[calls]]
at = "0s"
org = "contoso"
user = "alice"
type = "outbound"
to = "+12125550100"
duration = "2h"
"""

POOL_ONLY = WORKED.format(credits="", licenses='"phone_system", "domestic_calling_plan"')
WITH_CREDITS = WORKED.format(
    credits='[orgs.credits]\ninitial = "1.00"\n',
    licenses='"phone_system", "domestic_calling_plan", "communications_credits"',
)
WITH_RECHARGE = WORKED.format(
    credits='[orgs.credits]\ninitial = "1.00"\nauto_recharge = true\n'
    'recharge_below = "0.50"\nrecharge_amount = "5.00"\ncard_expires = "2027-06-30"\n',
    licenses='"phone_system", "domestic_calling_plan", "communications_credits"',
)


def scenario_file(tmp_path: Path, base: str, expect: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(base + "\n" + textwrap.dedent(expect), encoding="utf-8")
    return path


def check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str, expect: str
) -> tuple[int, str]:
    """`callsim check` of `base` plus `expect`: (exit status, the report on stdout or stderr)."""
    path = scenario_file(tmp_path, base, expect)
    status = cli.main(["check", str(path)])
    captured = capsys.readouterr()
    if status == cli.EXIT_USAGE:
        return status, without_file_and_line(captured.err, path)
    report = captured.out[captured.out.index("\n\n") + 2:]  # after the run's own summary lines
    return status, report


def without_file_and_line(err: str, path: Path) -> str:
    """Problem lines start with `FILE:LINE: `; these tests are about what follows."""
    return re.sub(rf"^{re.escape(str(path))}(:\d+)?: ", "", err, flags=re.MULTILINE)


def passes(tmp_path: Path, capsys: pytest.CaptureFixture[str], base: str, expect: str) -> None:
    status, report = check(tmp_path, capsys, base, expect)
    assert status == cli.EXIT_OK, report
    assert report.endswith("passed\n")


# -- per call ----------------------------------------------------------------------------------


def test_spec_worked_example_pool_only_passes_exactly(tmp_path, capsys) -> None:
    passes(tmp_path, capsys, POOL_ONLY, """
        [[expect]]
        call = 1
        end_reason = "dropped_balance_exhausted"
        end_at = "3600s"
        call_type = "domestic"
        duration = "1h"
        billed_s = 3600
        pool = "domestic:US"
        pool_s = 3600
        credits_charged = "0.000000"
    """)


def test_spec_worked_example_with_credits_passes_exactly(tmp_path, capsys) -> None:
    passes(tmp_path, capsys, WITH_CREDITS, """
        [[expect]]
        call = 1
        end_reason = "dropped_balance_exhausted"
        end_at = "6600s"
        billed_s = 6600
        pool_s = 3600
        credits_charged = "1.00"

        [[expect]]
        org = "contoso"
        event = "balance_exhausted"
        at = "6600s"
        balance = "0"
    """)


def test_spec_worked_example_with_recharge_passes_exactly(tmp_path, capsys) -> None:
    passes(tmp_path, capsys, WITH_RECHARGE, """
        [[expect]]
        call = 1
        end_reason = "hangup"
        end_at = "2h"
        billed_s = 7200
        credits_charged = "1.2"

        [[expect]]
        org = "contoso"
        event = "recharge_succeeded"
        at = "5100s"
        amount = "5.00"
        balance = "5.48"
        count = 1

        [[expect]]
        org = "contoso"
        final_balance = "4.80"
        recharges_succeeded = 1
    """)


def test_wrong_end_at_exits_1_and_the_diff_names_the_expectation(tmp_path, capsys) -> None:
    status, report = check(tmp_path, capsys, POOL_ONLY, """
        [[expect]]
        call = 1
        end_reason = "dropped_balance_exhausted"
        end_at = "50m"
    """)
    assert status == cli.EXIT_CHECK_FAILED
    assert report == (
        "FAILED expect[0]: call = 1 (calls[0], at 0s, call_id 1)\n"
        "  end_at: expected 50m, actual 1h (2026-11-01T01:00:00.000Z)\n"
        "\n"
        "check: 1 of 1 expectation failed\n"
    )


@pytest.mark.parametrize(
    ("field", "wrong", "line"),
    [
        ("end_reason", '"hangup"',
         'end_reason: expected "hangup", actual "dropped_balance_exhausted"'),
        ("call_type", '"international"', 'call_type: expected "international", actual "domestic"'),
        ("duration", '"59m"', "duration: expected 59m, actual 1h"),
        ("billed_s", "{ min = 3601 }", "billed_s: expected at least 3601, actual 3600"),
        ("pool", '""', 'pool: expected "", actual "domestic:US"'),
        ("pool_s", "{ max = 60 }", "pool_s: expected at most 60, actual 3600"),
        ("credits_charged", '"0.01"', "credits_charged: expected 0.010000, actual 0.000000"),
        ("end_at", '{ min = "1m", max = "59m" }', "end_at: expected 1m to 59m, actual 1h ("),
    ],
)
def test_each_call_field_fails_when_the_cdr_differs(tmp_path, capsys, field, wrong, line) -> None:
    expect = f"[[expect]]\ncall = 1\n{field} = {wrong}\n"
    status, report = check(tmp_path, capsys, POOL_ONLY, expect)
    assert status == cli.EXIT_CHECK_FAILED
    assert f"\n  {line}" in report


def test_every_failed_expectation_is_reported_and_passing_ones_are_not(tmp_path, capsys) -> None:
    status, report = check(tmp_path, capsys, POOL_ONLY, """
        [[expect]]
        call = 1
        billed_s = 60
        pool_s = 60

        [[expect]]
        call = 1
        end_reason = "dropped_balance_exhausted"

        [[expect]]
        org = "contoso"
        calls = 2
    """)
    assert status == cli.EXIT_CHECK_FAILED
    blocks = report.split("\n\n")
    assert blocks[0].splitlines() == [
        "FAILED expect[0]: call = 1 (calls[0], at 0s, call_id 1)",
        "  billed_s: expected 60, actual 3600",
        "  pool_s: expected 60, actual 3600",
    ]
    assert blocks[1].splitlines() == ["FAILED expect[2]: totals of org contoso",
                                      "  calls: expected 2, actual 1"]
    assert blocks[2] == "check: 2 of 3 expectations failed\n"


TWO_AT_ONCE = POOL_ONLY.replace(
    'licenses = ["phone_system", "domestic_calling_plan"]',
    'licenses = ["phone_system", "domestic_calling_plan"]\n\n'
    '[[orgs.users]]\nid = "bob"\ncountry = "US"\nlicenses = []',
) + """
[[calls]]
at = "0s"
org = "contoso"
user = "bob"
type = "outbound"
to = "+12125550100"
duration = "1m"
"""


def test_call_n_is_the_nth_calls_entry_even_at_the_same_instant(tmp_path, capsys) -> None:
    passes(tmp_path, capsys, TWO_AT_ONCE, """
        [[expect]]
        call = 2
        end_reason = "not_licensed"

        [[expect]]
        call_id = 2
        end_reason = "not_licensed"

        [[expect]]
        call_id = 1
        end_reason = "dropped_balance_exhausted"
    """)


def test_a_call_id_that_never_happened_fails(tmp_path, capsys) -> None:
    status, report = check(tmp_path, capsys, POOL_ONLY, '[[expect]]\ncall_id = 99\nbilled_s = 0\n')
    assert status == cli.EXIT_CHECK_FAILED
    assert "FAILED expect[0]: call_id = 99\n  CDR: expected one row, actual none\n" in report


# -- events ------------------------------------------------------------------------------------


def test_event_at_an_instant_passes_and_fails(tmp_path, capsys) -> None:
    status, report = check(tmp_path, capsys, WITH_RECHARGE, """
        [[expect]]
        event = "recharge_succeeded"
        at = "5100s"

        [[expect]]
        org = "contoso"
        event = "recharge_succeeded"
        at = "5040s"
    """)
    assert status == cli.EXIT_CHECK_FAILED
    assert report.split("\n\n")[0].splitlines() == [
        "FAILED expect[1]: event recharge_succeeded of contoso, at 1h 24m",
        "  count: expected at least 1, actual 0",
        "  1 recharge_succeeded events of contoso in all:",
        "    at 1h 25m (amount 5.000000, balance 5.480000)",
    ]


def test_event_fields_must_all_match(tmp_path, capsys) -> None:
    status, report = check(tmp_path, capsys, WITH_RECHARGE, """
        [[expect]]
        event = "recharge_succeeded"
        balance = { min = "5.00", max = "6.00" }
        amount = "5"

        [[expect]]
        event = "recharge_succeeded"
        balance = "5.47"
    """)
    assert status == cli.EXIT_CHECK_FAILED
    assert "FAILED expect[1]: event recharge_succeeded, balance 5.470000\n" in report
    assert "FAILED expect[0]" not in report


def test_event_counts_exact_range_and_window(tmp_path, capsys) -> None:
    passes(tmp_path, capsys, WITH_RECHARGE, """
        [[expect]]
        event = "credits_purchased"
        count = 1

        [[expect]]
        event = "recharge_failed"
        count = 0

        [[expect]]
        event = "recharge_succeeded"
        at = { min = "1h", max = "2h" }
        count = { min = 1, max = 1 }

        [[expect]]
        event = "recharge_succeeded"
        at = { max = "5099s" }
        count = 0
    """)
    status, report = check(tmp_path, capsys, WITH_RECHARGE, """
        [[expect]]
        org = "contoso"
        event = "balance_exhausted"
        count = { min = 1 }
    """)
    assert status == cli.EXIT_CHECK_FAILED
    assert report.split("\n\n")[0].splitlines() == [
        "FAILED expect[0]: event balance_exhausted of contoso",
        "  count: expected at least 1, actual 0",
        "  there are no balance_exhausted events of contoso at all",
    ]


# -- totals ------------------------------------------------------------------------------------


def test_org_totals_exact_and_ranges_pass(tmp_path, capsys) -> None:
    passes(tmp_path, capsys, WITH_RECHARGE, """
        [[expect]]
        org = "contoso"
        calls = 1
        billed_s = { min = 7200, max = 7200 }
        credits_charged = "1.200000"
        credits_purchased = { min = "6" }
        credits_expired = "0"
        recharges_succeeded = 1
        recharges_failed = 0
        final_balance = "4.8"
        pool_s_by_pool = { "domestic:US" = 3600 }
        pool_remaining_s = { "domestic:US" = 0 }

        [expect.calls_by_end_reason]
        hangup = 1
        dropped_balance_exhausted = 0

        [expect.calls_by_call_type]
        domestic = { min = 1 }

        [[expect]]
        billed_s = 7200
        final_balance = { min = "4.00", max = "5.00" }
    """)


def test_org_totals_fail_with_the_key_path(tmp_path, capsys) -> None:
    status, report = check(tmp_path, capsys, WITH_RECHARGE, """
        [[expect]]
        final_balance = "4.79"
        calls_by_end_reason = { hangup = 0, simulation_end = { min = 1 } }
    """)
    assert status == cli.EXIT_CHECK_FAILED
    assert report.split("\n\n")[0].splitlines() == [
        "FAILED expect[0]: totals of the whole run",
        "  final_balance: expected 4.790000, actual 4.800000",
        "  calls_by_end_reason.hangup: expected 0, actual 1",
        "  calls_by_end_reason.simulation_end: expected at least 1, actual 0",
    ]


# -- invalid expectations: exit 2 before anything runs -------------------------------------------


@pytest.mark.parametrize(
    ("expect", "line"),
    [
        ('call = 1\nend_at = "4h"', 'expect[0].end_at: 4h is after the end of the simulation (3h)'),
        ('call = 1\nend_at = "1 hour"',
         'expect[0].end_at: expected a duration like "90s", "15m", "2h", "1d" or an integer of '
         'seconds, got "1 hour"'),
        ('call = 2\nbilled_s = 1', "expect[0].call: no [[calls]] entry 2 (the scenario has 1)"),
        ("call = 0\nbilled_s = 1", "expect[0].call: must be at least 1, got 0"),
        ('call = 1\nend_reason = "hung_up"',
         'expect[0].end_reason: expected one of "hangup", "dropped_balance_exhausted", '
         '"blocked_no_balance", "not_licensed", "unroutable", "simulation_end", got "hung_up"'),
        ("call = 1\ncredits_charged = 0.5",
         'expect[0].credits_charged: expected a decimal string like "0.5", got 0.5'),
        ('call = 1\nbilled_s = "100..200"',
         'expect[0].billed_s: write a range as { min = 3600, max = 7200 }, got "100..200"'),
        ("call = 1\nbilled_s = { min = 200, max = 100 }",
         "expect[0].billed_s: min 200 is greater than max 100"),
        ("call = 1\nbilled_s = {}",
         'expect[0].billed_s: a range needs "min", "max" or both, like { min = 3600, max = 7200 }'),
        ("call = 1\nbiled_s = 1", "expect[0].biled_s: unknown key"),
        ("call = 1", "expect[0]: nothing to check: add end_reason, call_type, end_at, duration, "
                     "billed_s, pool, pool_s or credits_charged"),
        ("call = 1\ncall_id = 1\nbilled_s = 1",
         'expect[0]: give either "call" (a [[calls]] entry) or "call_id", not both'),
        ('call = 1\npool = "domestic:GB"',
         'expect[0].pool: no pool "domestic:GB" in the scenario '
         '(pools: "domestic:US"; "" for none)'),
        ('event = "recharge_failed"\nat = -1', "expect[0].at: must not be negative, got -1"),
        ('event = "top_up"', 'expect[0].event: expected one of "credits_purchased", '
         '"recharge_succeeded", "recharge_failed", "balance_exhausted", "credits_expired", '
         '"pools_refilled", got "top_up"'),
        ('event = "pools_refilled"\namount = "1"',
         "expect[0].amount: pools_refilled events carry nothing but time and org_id"),
        ('event = "recharge_failed"\namount = "1"',
         "expect[0].amount: recharge_failed events carry only reason and balance"),
        ('event = "recharge_failed"\norg = "fabrikam"', 'expect[0].org: unknown org "fabrikam"'),
        ('event = "recharge_failed"\ncount = -1',
         "expect[0].count: must be a whole number >= 0, got -1"),
        ('org = "contoso"\ncalls_by_end_reason = { dropped = 1 }',
         'expect[0].calls_by_end_reason.dropped: expected one of "hangup", '
         '"dropped_balance_exhausted", "blocked_no_balance", "not_licensed", "unroutable", '
         '"simulation_end", got "dropped"'),
        ('org = "contoso"\npool_remaining_s = { "dial_out" = 0 }',
         'expect[0].pool_remaining_s: no pool "dial_out": org "contoso" has "domestic:US"'),
        ('final_balance = { min = "1", mean = "2" }',
         'expect[0].final_balance: a range has only "min" and "max", got "mean"; write it like '
         '{ min = "10.00", max = "20.00" }'),
        ('evnt = "recharge_failed"', "expect[0].evnt: unknown key"),
        ('org = "contoso"', 'expect[0]: nothing to check: give "call" or "call_id" (one call), '
         '"event" (events), or totals like final_balance or calls_by_end_reason '
         "(docs/expectations.md)"),
    ],
)
def test_invalid_expectations_exit_2_with_the_place(tmp_path, capsys, expect, line) -> None:
    status, err = check(tmp_path, capsys, POOL_ONLY, "[[expect]]\n" + expect + "\n")
    assert status == cli.EXIT_USAGE
    assert line in err.splitlines(), err


def test_invalid_expectations_are_reported_together_and_nothing_runs(tmp_path, capsys) -> None:
    path = scenario_file(tmp_path, POOL_ONLY, """
        [[expect]]
        call = 1
        end_at = "1 h"

        [[expect]]
        event = "recharge_failed"
        count = "2"
    """)
    out = tmp_path / "out"
    assert cli.main(["check", str(path), "--out", str(out)]) == cli.EXIT_USAGE
    assert without_file_and_line(capsys.readouterr().err, path).splitlines() == [
        'expect[0].end_at: expected a duration like "90s", "15m", "2h", "1d" or an integer of '
        'seconds, got "1 h"',
        "expect[1].count: expected a whole number, got \"2\"",
    ]
    assert not out.exists()


def test_check_needs_expectations(tmp_path, capsys) -> None:
    path = scenario_file(tmp_path, POOL_ONLY, "")
    assert cli.main(["check", str(path)]) == cli.EXIT_USAGE
    assert "no [[expect]] tables, nothing to check" in capsys.readouterr().err


# -- the command line ----------------------------------------------------------------------------


def test_run_check_keeps_the_outputs_and_exits_1_on_failure(tmp_path, capsys) -> None:
    path = scenario_file(tmp_path, POOL_ONLY, '[[expect]]\ncall = 1\nend_reason = "hangup"\n')
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out), "--check", "--quiet"]) == 1
    assert "check: 1 of 1 expectation failed" in capsys.readouterr().out
    assert (out / "cdrs.csv").exists()
    assert cli.main(["run", str(path), "--out", str(out), "--quiet"]) == cli.EXIT_OK


def test_check_out_keeps_the_files(tmp_path, capsys) -> None:
    path = scenario_file(tmp_path, POOL_ONLY, '[[expect]]\ncall = 1\nbilled_s = 3600\n')
    out = tmp_path / "kept"
    assert cli.main(["check", str(path), "--out", str(out), "--quiet"]) == cli.EXIT_OK
    assert (out / "summary.json").exists()


def test_bundled_quickstart_passes_callsim_check(capsys) -> None:
    status = cli.main(["check", str(SCENARIOS / "quickstart.toml")])
    out = capsys.readouterr().out
    assert status == cli.EXIT_OK, out
    assert out.endswith("expectations passed\n")


def test_bundled_toll_free_campaign_passes_callsim_check(capsys) -> None:
    status = cli.main(["check", str(SCENARIOS / "toll_free_campaign.toml"), "--quiet"])
    assert status == cli.EXIT_OK, capsys.readouterr().out


def _bundled_with_expectations() -> list[str]:
    """Every scenario in scenarios/ that has [[expect]] tables (read as TOML, not run)."""
    return sorted(p.name for p in SCENARIOS.glob("*.toml")
                  if "expect" in tomllib.loads(p.read_text(encoding="utf-8")))


def test_the_bundled_scenarios_with_expectations_are_found() -> None:
    """The check below runs on what the glob finds: make sure it finds the three of them."""
    assert {"quickstart.toml", "toll_free_campaign.toml",
            "enterprise_month.toml"} <= set(_bundled_with_expectations())


@pytest.mark.parametrize("name", _bundled_with_expectations())
def test_every_bundled_scenario_passes_callsim_check(name, capsys) -> None:
    """Each bundled scenario's expectations hold (the month takes a few seconds)."""
    status = cli.main(["check", str(SCENARIOS / name)])
    out = capsys.readouterr().out
    assert status == cli.EXIT_OK, out
    assert out.endswith("expectations passed\n")


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.glob("*.toml")))
def test_every_bundled_scenario_validates(name, capsys) -> None:
    assert cli.main(["validate", str(SCENARIOS / name)]) == cli.EXIT_OK


# -- small pieces --------------------------------------------------------------------------------


def test_event_kinds_match_the_event_writer() -> None:
    assert {k: tuple(key for key, _ in v) for k, v in EVENT_FIELDS.items()} == EVENT_KINDS


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "0s"), (20_601, "20.601s"), (7_540, "7.54s"), (3_920_000, "1h 5m 20s"),
     (86_400_000, "1d"), (90_061_001, "1d 1h 1m 1.001s")],
)
def test_durations_read_like_people_write_them(ms, text) -> None:
    assert say_ms(ms) == text


def test_bounds_are_inclusive_and_say_what_they_allow() -> None:
    assert str(Bound(3, 3, "count")) == "3"
    assert str(Bound(1, None, "count")) == "at least 1"
    assert str(Bound(None, 5_000_000, "money")) == "at most 5.000000"
    assert str(Bound(60_000, 3_600_000, "time")) == "1m to 1h"
    assert Bound(1, 2, "count").holds(1) and Bound(1, 2, "count").holds(2)
    assert not Bound(1, 2, "count").holds(3)


def _events_file(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@settings(max_examples=200, deadline=None)
@given(times=st.lists(st.integers(0, 50), max_size=40),
       low=st.none() | st.integers(0, 50), high=st.none() | st.integers(0, 50), windowed=st.booleans())
def test_a_failed_event_note_shows_the_events_a_sort_of_all_would(tmp_path_factory, times, low, high,
                                                                   windowed) -> None:
    """The nearest events to `at` (earlier lines first among equals), or the first ones, as a
    sort of every event of the kind would pick them, whatever order the lines are in, among
    lines of another org and kind."""
    if low is not None and high is not None and low > high:
        low, high = high, low
    if low is None and high is None:  # an `at` bounds at least one side
        low = 0
    at = Bound(low, high, "time") if windowed else None
    never = {"balance": Bound(-1, -1, "money")}  # a failure with fields: its note shows events
    e = EventExpectation(0, "recharge_succeeded", "contoso", at, never, Bound(1, None, "count"))
    records, every = [], []
    for t in times:
        record = {"time": format_ms_iso(START, t), "org_id": "contoso", "event": "recharge_succeeded",
                  "amount": "5.00", "balance": f"{t}.000000"}
        records += [record, {**record, "org_id": "other"}, {**record, "event": "credits_purchased"}]
        every.append((t, expect._say_event(record, t, False)))
    path = _events_file(tmp_path_factory.mktemp("events") / "events.jsonl", records)
    [failure] = expect._check_events([e], path, START)
    if at is None:
        wanted = every[:expect._SHOWN_EVENTS]
    else:
        lo = low if low is not None else 0
        hi = high if high is not None else lo
        nearest = sorted(every, key=lambda s: max(lo - s[0], s[0] - hi, 0))
        wanted = sorted(nearest[:expect._SHOWN_EVENTS])
    if not times:
        assert failure.note == ("there are no recharge_succeeded events of contoso at all",)
        return
    assert failure.note[0].startswith(f"{len(times)} recharge_succeeded events of contoso in all")
    assert list(failure.note[1:]) == [f"  {text}" for _, text in wanted]


START = datetime(2026, 11, 1, tzinfo=timezone.utc)  # the worked examples' start


# -- many event expectations: one pass, the verdicts and notes of one line at a time --------------

KINDS_SEEN = ("recharge_succeeded", "balance_exhausted", "recharge_failed", "credits_expired")
ORG_IDS = ("acme", "ünï \"co\"", "zeta")


def _reference_failures(expectations: list[EventExpectation], records: list[dict]) -> list[expect.Failure]:
    """Every expectation tested against every line, as QA would by hand: the oracle."""
    failures = []
    for e in expectations:
        similar, matched = [], 0
        for line, record in enumerate(records):
            if record["event"] != e.event or (e.org is not None and record["org_id"] != e.org):
                continue
            t = expect.offset_ms(record["time"], START)
            similar.append((t, line, record))
            fields_ok = all(
                expected.holds(parse_money_micro(record[key])) if isinstance(expected, Bound)
                else record[key] == expected for key, expected in e.fields.items())
            matched += (e.at is None or e.at.holds(t)) and fields_ok
        if e.count.holds(matched):
            continue
        who = f"of {e.org}" if e.org is not None else "of any org"
        if not similar:
            note: tuple[str, ...] = (f"there are no {e.event} events {who} at all",)
        elif e.at is None and not e.fields:
            note = ()
        else:
            if e.at is None:
                picked = similar[:expect._SHOWN_EVENTS]
            else:
                lo = e.at.low if e.at.low is not None else 0
                hi = e.at.high if e.at.high is not None else lo
                picked = sorted(similar, key=lambda s: (max(lo - s[0], s[0] - hi, 0), s[1]))[:expect._SHOWN_EVENTS]
            shown = [(t, expect._say_event(record, t, e.org is None)) for t, _, record in picked]
            if e.at is not None:
                shown.sort()
            head = f"{len(similar)} {e.event} events {who} in all"
            if len(similar) > len(shown):
                head += f", the {len(shown)} {'nearest' if e.at is not None else 'first'}"
            note = (head + ":", *(f"  {text}" for _, text in shown))
        failures.append(expect.Failure(e.index, expect._event_title(e), (
            expect.Mismatch("count", str(e.count), str(matched)),), note))
    return failures


def _random_records(rng: random.Random, n: int, in_order: bool) -> list[dict]:
    records, t = [], 0
    for _ in range(n):
        t = t + rng.choice([0, 0, 1, 250, 60_000]) if in_order else rng.randrange(3_600_000)
        kind = rng.choice(KINDS_SEEN)
        record = {"time": format_ms_iso(START, t), "org_id": rng.choice(ORG_IDS), "event": kind}
        if kind in ("recharge_succeeded", "credits_expired"):
            record["amount"] = rng.choice(["0.020000", "5.000000", "5.00"])  # a hand-written one too
        if kind == "recharge_failed":
            record["reason"] = rng.choice(["card_expired", "other"])
        record["balance"] = f"{rng.randrange(8)}.{rng.randrange(10**6):06d}"
        records.append(record)
    return records


def _random_expectations(rng: random.Random, n: int, last_ms: int) -> list[EventExpectation]:
    expectations = []
    for index in range(n):
        kind = rng.choice(KINDS_SEEN + ("pools_refilled",))
        org = rng.choice(ORG_IDS + (None, "nobody"))
        at = None
        if rng.random() < 0.7:
            low = rng.choice([None, rng.randrange(last_ms + 1)])
            high = rng.choice([None, low if low is not None else 0, (low or 0) + rng.randrange(0, 600_000)])
            at = Bound(low, high, "time") if (low, high) != (None, None) else None
        fields: dict = {}
        carried = EVENT_KINDS[kind]
        if "balance" in carried and rng.random() < 0.4:
            low = rng.randrange(-1_000_000, 8_000_000)
            fields["balance"] = Bound(low, rng.choice([None, low + rng.randrange(3_000_000)]), "money")
        if "amount" in carried and rng.random() < 0.3:
            fields["amount"] = Bound(5_000_000, 5_000_000, "money")
        if "reason" in carried and rng.random() < 0.5:
            fields["reason"] = rng.choice(["card_expired", "other"])
        count = rng.choice([Bound(1, None, "count"), Bound(0, 0, "count"), Bound(2, 40, "count"),
                            Bound(None, 3, "count")])
        expectations.append(EventExpectation(index, kind, org, at, fields, count))
    return expectations


@pytest.mark.parametrize("in_order", [True, False])
def test_many_event_expectations_get_the_verdicts_and_notes_of_one_line_at_a_time(tmp_path, in_order) -> None:
    """Hundreds of expectations of every shape (kinds, orgs or none, windows open on either side,
    money ranges, reasons, counts) over lines of a run (in time order) or not: each verdict and
    note is the one testing every line against it gives."""
    rng = random.Random(f"many{in_order}")
    records = _random_records(rng, 3_000, in_order)
    last_ms = max(expect.offset_ms(r["time"], START) for r in records)
    expectations = _random_expectations(rng, 600, last_ms)
    path = _events_file(tmp_path / "events.jsonl", records)
    failures = list(expect._check_events(expectations, path, START))
    assert 100 < len(failures) < 550  # both verdicts are exercised
    assert failures == _reference_failures(expectations, records)


def test_thousands_of_event_expectations_are_checked_in_one_pass(tmp_path, capsys) -> None:
    """`callsim check` with an expectation for every 5 s of a 3 h run (2,160 in all): only the
    window of the one recharge (at 5100 s) passes, every other shows it as the nearest."""
    windows = "".join(f"""
        [[expect]]
        org = "contoso"
        event = "recharge_succeeded"
        at = {{ min = "{5 * k}s", max = "{5 * k + 4}s" }}
        count = 1
    """ for k in range(2_160))
    status, report = check(tmp_path, capsys, WITH_RECHARGE, windows)
    assert status == cli.EXIT_CHECK_FAILED
    assert report.endswith("check: 2159 of 2160 expectations failed\n")
    assert "FAILED expect[1020]" not in report
    assert report.count("    at 1h 25m (amount 5.000000, balance 5.480000)\n") == 2159
