"""Synthetic PSTN usage exports with a known model, drawn from one seeded Generator: the fit
must give the model back (busy hour, rates, holding times), and 1,000,000 rows time the import."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from simulator.usage import EXPORT_COLUMNS, EXPORT_HEADER

START = datetime(2026, 11, 2, tzinfo=timezone.utc)  # a Monday
MS_PER_HOUR = 3_600_000


def office_week(peak: float = 60.0) -> np.ndarray:
    """168 rates: weekdays 08:00-18:00 busy with a peak on Tuesday 10:00, nights and weekends quiet."""
    rates = np.full(168, peak * 0.02)
    for day in range(5):
        rates[day * 24 + 8:day * 24 + 18] = peak * 0.5
        rates[day * 24 + 10] = peak * 0.7
    rates[1 * 24 + 10] = peak  # Tuesday 10:00
    return rates


def arrivals(rates: np.ndarray, weeks: int, rng: np.random.Generator, offset_min: int = 0) -> np.ndarray:
    """Start instants (UTC ms) of a Poisson process with `rates` per local hour of the week."""
    starts = []
    for hour in range(weeks * 168):
        count = rng.poisson(rates[hour % 168])
        local = START.timestamp() * 1000 + hour * MS_PER_HOUR
        starts.append(local - offset_min * 60_000 + rng.integers(0, MS_PER_HOUR, count))
    return np.sort(np.concatenate(starts)).astype(np.int64)


def write_export(path: Path, rates: np.ndarray, weeks: int = 4, seed: int = 16, offset_min: int = 0,
                 median_s: float = 120.0, sigma: float = 0.8, users: int = 50) -> int:
    """A domestic-only export (user_out, Domestic, +1 numbers, MCOPSTN1); returns its rows."""
    rng = np.random.default_rng(seed)
    starts = arrivals(rates, weeks, rng, offset_min)
    n = len(starts)
    durations = np.maximum(np.round(rng.lognormal(np.log(median_s), sigma, n)), 1).astype(np.int64)
    user = rng.integers(0, users, n)
    area = rng.choice(np.array([212, 415, 312, 617]), n, p=[0.4, 0.3, 0.2, 0.1])
    number = rng.integers(2_000_000, 9_999_999, n)
    sign = "-" if offset_min < 0 else "+"
    offset_text = f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    with open(path, "wb") as out:
        out.write(EXPORT_HEADER)
        lines = []
        for i in range(n):
            local = datetime.fromtimestamp((starts[i] + offset_min * 60_000) / 1000, timezone.utc)
            start = local.strftime("%Y-%m-%dT%H:%M:%S") + (offset_text if offset_min else "Z")
            lines.append(f"u{i},c{i},,US,o{user[i]},user{user[i]:03d}@contoso.com,User {user[i]},,user_out,"
                         f"Subscriber,Domestic,United States,+1{area[i]}{number[i]},{start},,{durations[i]},"
                         f"0.00,0.00,USD,MCOPSTN1\r\n")
            if len(lines) == 100_000:
                out.write("".join(lines).encode())
                lines = []
        out.write("".join(lines).encode())
    assert len(EXPORT_COLUMNS) == 20
    return n
