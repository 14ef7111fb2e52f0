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
