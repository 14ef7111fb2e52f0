"""Calendar arithmetic in integer ms since the simulation start.

Months are uneven, so refills, lot expiries and card validity are computed on
real UTC datetimes once, then handled as plain integer instants by the core.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone


def to_ms(start: datetime, instant: datetime) -> int:
    """Exact ms from `start` to `instant` (timedelta is exact to the microsecond)."""
    return (instant - start) // timedelta(milliseconds=1)


def at_ms(start: datetime, ms: int) -> datetime:
    return start + timedelta(milliseconds=ms)


def month_starts(start: datetime, end_ms: int) -> list[int]:
    """00:00 UTC of every 1st of month strictly after `start` and strictly before the end."""
    out = []
    year, month = start.year, start.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        t = to_ms(start, datetime(year, month, 1, tzinfo=timezone.utc))
        if t >= end_ms:
            return out
        out.append(t)


def add_months(instant: datetime, months: int) -> datetime:
    """Same day and time `months` later, the day clamped to the month's last day."""
    total = instant.month - 1 + months
    year, month = instant.year + total // 12, total % 12 + 1
    day = min(instant.day, calendar.monthrange(year, month)[1])
    return instant.replace(year=year, month=month, day=day)


def lot_expiry_ms(start: datetime, purchased_ms: int) -> int:
    """A lot bought at `purchased_ms` expires 12 calendar months later."""
    return to_ms(start, add_months(at_ms(start, purchased_ms), 12))


MS_PER_DAY = 86_400_000


def card_valid_until_ms(start: datetime, card_expires: date | None) -> int | None:
    """First instant at which the card is no longer valid (it is valid through its last day).

    Counted in ms from the card's last day rather than as a datetime of the day after, which
    the calendar cannot hold for the usual "never expires" date 9999-12-31.
    """
    if card_expires is None:
        return None
    d = card_expires
    return to_ms(start, datetime(d.year, d.month, d.day, tzinfo=timezone.utc)) + MS_PER_DAY
