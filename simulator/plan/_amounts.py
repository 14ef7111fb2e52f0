"""Amounts a person types into the admin center: whole currency units, three significant digits.

A plan is searched on this grid, not on micro-units: nobody types 81,537.25, and the admin
center takes whole amounts.  Every whole number up to 999, then 1,000, 1,010, ... 9,990,
10,000, 10,100, ...: neighbours differ by at most 1 %, so rounding up to the grid costs at most
1 % over the exact threshold, and a bisection over ~4,000 grid points below 10 million takes
12 steps.  The grid is indexed (`value_at`, `index_at_least`) so a search steps along it.
"""

from __future__ import annotations

from rating_core import MICRO

from ..units import format_micro_grouped

SMALL = 999  # 1 .. 999: every whole unit
PER_DECADE = 900  # 100 .. 999 times a power of ten
MAX_UNITS = 1_000_000_000  # the scenario's money limit, in whole units


def value_at(index: int) -> int:
    """The grid's value at `index` (0 -> 1, 998 -> 999, 999 -> 1,000, 1,899 -> 9,990, ...)."""
    if index < 0:
        raise ValueError(f"grid index must be >= 0, got {index}")
    if index < SMALL:
        return index + 1
    decade, rest = divmod(index - SMALL, PER_DECADE)
    return (100 + rest) * 10 ** (decade + 1)


def index_at_least(units: float) -> int:
    """The index of the smallest grid value >= `units` (at least the grid's first value, 1)."""
    lo, hi = 0, SMALL + PER_DECADE * 7  # value_at(hi) is 1e10 > MAX_UNITS
    while lo < hi:
        mid = (lo + hi) // 2
        if value_at(mid) >= units:
            hi = mid
        else:
            lo = mid + 1
    return lo


def at_least(units: float) -> int:
    """The smallest grid value >= `units` (whole units, >= 1)."""
    return value_at(index_at_least(units))


def units_of(micros: int) -> float:
    """Micro-units as (float) whole units, for the search's arithmetic on spend: never shown."""
    return micros / MICRO


def money_text(units: int) -> str:
    """Whole units as a scenario's money string (`"84700"`)."""
    return str(int(units))


def show_units(units: int, currency: str) -> str:
    """84700 -> '84,700 USD' (whole units, as the admin center shows them)."""
    return f"{units:,} {currency}"


def show_micros(micros: int, currency: str) -> str:
    """Micro-units shown exactly, as every callsim output shows money: '81,234.570000 USD'."""
    return f"{format_micro_grouped(int(micros))} {currency}"
