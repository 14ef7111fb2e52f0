"""Explicit calls read without their model (`_plain_calls`) read as `CallModel` reads them, and
every entry it does not take is still checked, and reported, by the model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import CallKind
from simulator.scenario import CallSpec, ScenarioError, parse_scenario
from simulator.scenario._plain_calls import PlainCall, PlainCalls
from simulator.scenario._schema import CallModel, validate
from simulator.units import MAX_DURATION_MS
from tests.simulator.scenario.test_scenario import MINIMAL

HEAD = MINIMAL.replace('duration = "1h"', 'duration = "1d"') + """
[[orgs.users]]
group = "desk"
count = 3
country = "FR"
licenses = []
"""

ODD = [None, True, False, 0, 1, -1, 5, 2.5, float("nan"), "", " ", "x", "1h", "90s", "0ms",
       "1.5s", "007m", "1.0005s", "-1s", "36525d", "36526d", "9" * 13 + "ms", "+12125550100",
       "+0212", "+1", "12125550100", "+1234567890123456", "outbound", "toll_free",
       "conference_dial_out", "domestic", "bob\n", "bob\u2028", "b\u00e9b", "desk-0002",
       [], {}, ["+12125550100"], MAX_DURATION_MS // 1000, MAX_DURATION_MS // 1000 + 1]
KEYS = ["at", "org", "user", "type", "to", "from", "duration", "extra"]


def model_values(item: object) -> PlainCall | None:
    """What the pydantic model makes of an entry, in `PlainCall`'s terms."""
    model, problems = validate(CallModel, item, "calls[0]")
    if model is None:
        return None
    return PlainCall(model.at, model.org, model.user, model.type, int(model.to[1:]),
                     None if model.from_ is None else int(model.from_[1:]), model.duration)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(ODD), min_size=3, max_size=8))
def test_plain_reading_agrees_with_the_model_whenever_it_reads(item: dict) -> None:
    plain = PlainCalls()
    found = plain.read(item)
    assert found is None or found == model_values(item)
    assert plain.read(item) == found  # what it remembered reads alike


def test_the_usual_forms_are_read_plainly() -> None:
    plain = PlainCalls()
    item = {"at": "36ms", "org": "acme", "user": "bob", "type": "outbound",
            "to": "+12125550100", "duration": "3m"}
    assert plain.read(item) == model_values(item) == PlainCall(
        36, "acme", "bob", "outbound", 12125550100, None, 180_000)
    toll_free = {"at": 5, "org": "acme", "type": "toll_free", "to": "+18005550100",
                 "from": "+442071234567", "duration": 90}
    assert plain.read(toll_free) == model_values(toll_free)
    assert plain.read({**item, "at": True}) is None  # `true` is no duration, even after 1
    assert plain.read({**item, "at": 1.0}) is None


def test_calls_read_plainly_and_by_the_model_give_the_same_specs() -> None:
    text = HEAD + """
[[calls]]
at = "1.5s"
org = "acme"
user = "desk-0002"
type = "outbound"
to = "+12125550100"
duration = "2m"

[[calls]]
at = 1
org = "acme"
user = "desk-0002"
type = "outbound"
to = "+12125550100"
duration = 120

[[calls]]
at = "0ms"
org = "acme"
type = "toll_free"
to = "+18005550100"
from = "+442071234567"
duration = "90s"
"""
    calls = parse_scenario(text).calls
    assert calls == (
        CallSpec(1_500, 0, 2, CallKind.OUTBOUND, 12125550100, 0, 120_000),
        CallSpec(1_000, 0, 2, CallKind.OUTBOUND, 12125550100, 0, 120_000),
        CallSpec(0, 0, -1, CallKind.TOLL_FREE, 18005550100, 442071234567, 90_000),
    )


def test_problems_of_many_calls_name_each_entry_and_its_line() -> None:
    """The lines and words the loader gave when it checked every call with its model."""
    good = '\n[[calls]]\nat = "{at}ms"\norg = "acme"\nuser = "bob"\ntype = "outbound"\nto = "+12125550100"\nduration = "3m"\n'
    entries = [good.format(at=k) for k in range(6)]
    entries[2] = entries[2].replace('user = "bob"', 'user = "desk"')
    entries[3] = entries[3].replace('"3m"', '"3x"')
    entries[4] = entries[4].replace('org = "acme"', 'org = "nobody"')
    entries[5] = entries[5].replace('at = "5ms"', 'at = "2d"')
    text = HEAD + "".join(entries)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "calls.toml")
    assert [p.located() for p in info.value.problems] == [
        'calls.toml:41: calls[2].user: "desk" is a group; name one of its users, like "desk-0001"',
        'calls.toml:52: calls[3].duration: expected a duration like "90s", "15m", "2h", "1d" or an '
        'integer of seconds, got "3x"',
        'calls.toml:56: calls[4].org: unknown org "nobody"',
        "calls.toml:63: calls[5].at: 2d is not before the end of the simulation (1d)",
    ]


def test_toml_nested_past_its_limit_is_one_line() -> None:
    text = HEAD + "x = " + "[" * 1000 + "]" * 1000 + "\n"
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "deep.toml")
    assert [p.located() for p in info.value.problems] == ["deep.toml: TOML nested too deeply"]


def test_a_toml_1_1_inline_table_may_span_lines() -> None:
    table = '[simulation]\nname = "minimal"\nseed = 0\nstart = "2026-11-01T00:00:00Z"\nduration = "1d"\ncurrency = "EUR"\n'
    inline = ('simulation = { name = "minimal", seed = 0, start = "2026-11-01T00:00:00Z",\n'
              '               duration = "1d", currency = "EUR" }\n')
    assert HEAD.count(table) == 1
    assert parse_scenario(HEAD.replace(table, inline)) == parse_scenario(HEAD)
