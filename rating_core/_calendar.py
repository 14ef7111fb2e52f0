"""Calendar arithmetic in integer ms since the simulation start.

Months are uneven, so refills, lot expiries and card validity are computed on
real UTC datetimes once, then handled as plain integer instants by the core.
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

MS_PER_DAY = 86_400_000


def to_ms(start: datetime, instant: datetime) -> int:
    """Exact ms from `start` to `instant` (timedelta is exact to the microsecond)."""
    return (instant - start) // timedelta(milliseconds=1)


def at_ms(start: datetime, ms: int) -> datetime:
    """The UTC datetime `ms` after `start`."""
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
    bought = at_ms(start, purchased_ms)
    return purchased_ms + _twelve_months_ms(bought.date())


def lot_expiries_ms(start: datetime, purchased_ms: NDArray[np.int64]) -> NDArray[np.int64]:
    """`lot_expiry_ms` of many purchases (a window's recharges): one calendar step per day."""
    offset = to_ms(datetime(start.year, start.month, start.day, tzinfo=timezone.utc), start)
    days = (purchased_ms + offset) // MS_PER_DAY  # whole UTC days since the start's midnight
    if not len(days):
        return purchased_ms.copy()
    first = start.date()
    lo, hi = int(days.min()), int(days.max())
    if hi - lo < len(days):  # a window's purchases span a few days: one figure per day of the span
        later = np.array([_twelve_months_ms(first + timedelta(days=d)) for d in range(lo, hi + 1)], dtype=np.int64)
        return purchased_ms + later[days - lo]
    distinct, which = np.unique(days, return_inverse=True)
    later = np.array([_twelve_months_ms(first + timedelta(days=int(d))) for d in distinct], dtype=np.int64)
    return purchased_ms + later[which.reshape(-1)]


@lru_cache(maxsize=4096)
def _twelve_months_ms(day: date) -> int:
    """ms from any instant of `day` to the same time 12 months later (the day clamped to the
    month's end): the time of day is kept, so one figure per day, cached (a busy org buys a lot
    every few seconds)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return to_ms(midnight, add_months(midnight, 12))


@lru_cache(maxsize=4096)
def card_valid_until_ms(start: datetime, card_expires: date | None) -> int | None:
    """First instant at which the card is no longer valid (it is valid through its last day).

    Counted in ms from the card's last day rather than as a datetime of the day after, which
    the calendar cannot hold for the usual "never expires" date 9999-12-31.  Cached: thousands
    of orgs share a few expiry dates.
    """
    if card_expires is None:
        return None
    d = card_expires
    return to_ms(start, datetime(d.year, d.month, d.day, tzinfo=timezone.utc)) + MS_PER_DAY
