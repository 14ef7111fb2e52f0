"""Longest-prefix match in bulk (rating_core/_routing.py) against `str.startswith`, number by number."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import PrefixTable, Tariff

# what scenarios allow (simulator/_units.py): 1 to 15 digits, no leading zero
PREFIX = st.from_regex(r"[1-9][0-9]{0,6}", fullmatch=True) | st.from_regex(r"[1-9][0-9]{12,14}", fullmatch=True)


def longest_match(prefixes: list[str], number: int) -> int:
    """The obvious way: the longest prefix the number's digits start with; the first such row on a tie."""
    if number <= 0:
        return -1
    digits = str(number)
    best = -1
    for i, prefix in enumerate(prefixes):
        if digits.startswith(prefix) and (best < 0 or len(prefix) > len(prefixes[best])):
            best = i
    return best


@st.composite
def tables_and_numbers(draw: st.DrawFn) -> tuple[list[str], list[int]]:
    prefixes = draw(st.lists(PREFIX, min_size=0, max_size=12))
    numbers = []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.integers(0, 3))
        if kind == 0 or not prefixes:  # anything, 19 digits and non-positive included
            numbers.append(draw(st.integers(-5, 2**63 - 1)))
        else:  # a prefix, cut short, or with digits (often zeros) after it
            prefix = draw(st.sampled_from(prefixes))
            tail = draw(st.text("0" if kind == 2 else "0123456789", max_size=8))
            text = (prefix[: draw(st.integers(1, len(prefix)))] if kind == 3 else prefix + tail).lstrip("0")
            if text and int(text) < 2**63:
                numbers.append(int(text))
    return prefixes, numbers


@settings(max_examples=500, deadline=None)
@given(tables_and_numbers())
def test_match_is_the_longest_prefix_the_number_starts_with(case: tuple[list[str], list[int]]) -> None:
    prefixes, numbers = case
    table = PrefixTable([Tariff(p, 1, 1, 1) for p in prefixes])
    got = table.match(np.array(numbers, dtype=np.int64)).tolist()
    assert got == [longest_match(prefixes, n) for n in numbers]


def test_a_prefix_longer_than_the_number_does_not_match_it() -> None:
    """493 scales like 4930: the piece it falls in belongs to "4930", which must not be used."""
    table = PrefixTable([Tariff("49", 1, 1, 1), Tariff("4930", 1, 1, 1)])
    assert table.match(np.array([493, 4930, 49301, 49, 4, 0])).tolist() == [0, 1, 1, 0, -1, -1]


def test_toll_free_numbers_of_ten_thousand_orgs_route_to_their_own_org():
    """A toll-free call is the called org's when the number is one of that org's (SPEC §3
    Admission 1), whatever the count of orgs: keys of org and number stay within int64."""
    from datetime import datetime, timezone

    from rating_core._model import CallKind, Credits, Org, Plans, RatingSetup, User

    from ..strategies import arrivals_from_rows
    from .test_differential import engine_matches_reference_with_lots

    n = 10_000
    orgs = tuple(Org(f"o{i}", (User(f"u{i}", "US", frozenset({"phone_system"})),),
                     (f"+1800{i:07d}",), Credits(initial_micro=1_000_000)) for i in range(n))
    setup = RatingSetup(start=datetime(2026, 11, 1, tzinfo=timezone.utc), end_ms=600_000, currency="USD",
                        plans=Plans({"default": 0}), tariffs=(Tariff("44", 20_000, 60, 60, "GB", "A"),),
                        toll_free_tariffs=(Tariff("44", 20_000, 60, 60),), orgs=orgs)
    tf = int(CallKind.TOLL_FREE)
    rows = [(0, n - 1, -1, tf, 18000000000 + n - 1, 442071234567, 90_000),  # its own number
            (1, n - 1, -1, tf, 18000000000, 442071234567, 90_000),  # org 0's number: not its own
            (2, 0, -1, tf, 18000000000, 442071234567, 90_000),
            (3, 9_224, -1, tf, 18000009224, 442071234567, 90_000)]
    cdrs, _ = engine_matches_reference_with_lots(setup, arrivals_from_rows(rows), [300_000])
    assert [row[14] for row in sorted(cdrs)] == ["hangup", "unroutable", "hangup", "hangup"]
