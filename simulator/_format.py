"""Exact text for money and instants, shared by every output.

Money travels as integer micro-units and time as integer milliseconds since
the simulation start (see `rating_core._model`).  Their text forms must be
byte-identical wherever they appear (cdrs.csv, cdrs.msgpack, events.jsonl,
summary.json, the report, the server), so they are produced here and nowhere
else.  No float ever touches a money amount or an instant: the scalar helpers
use `divmod`, and the vectorised ones use polars fixed-point decimals and
integer table lookups.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
from numpy.typing import NDArray

from rating_core._model import MICRO, MS_PER_S

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)

_MS_PER_MINUTE = 60 * MS_PER_S
_MS_PER_DAY = 24 * 60 * _MS_PER_MINUTE

# A Decimal(38, s) holds any int64 count of 10^-s units, times 10^s, with room to spare.
_DECIMAL_PRECISION = 38


def epoch_ms(start: datetime) -> int:
    """Milliseconds from the Unix epoch to `start`, exactly.

    `start` must be timezone-aware (the scenario's start is UTC) and a whole
    number of milliseconds: every instant in callsim is `epoch_ms(start) + t_ms`
    with integer `t_ms`, so a sub-millisecond start would have no exact text.
    """
    if start.tzinfo is None:
        raise ValueError(f"start must be timezone-aware, got {start!r}")
    ms, rest = divmod(start - EPOCH, _ONE_MS)
    if rest:
        raise ValueError(f"start must be a whole number of milliseconds, got {start.isoformat()}")
    return ms


def format_micro(micro: int) -> str:
    """Integer micro-units -> decimal text with 6 decimals: 1 -> "0.000001", 10**6 -> "1.000000"."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    return f"{sign}{whole}.{frac:06d}"


def format_ms(ms: int) -> str:
    """Integer milliseconds -> seconds with 3 decimals: 1500 -> "1.500" (durations)."""
    sign = "-" if ms < 0 else ""
    whole, frac = divmod(abs(ms), MS_PER_S)
    return f"{sign}{whole}.{frac:03d}"


def format_epoch_ms_iso(epoch_milliseconds: int) -> str:
    """Unix-epoch milliseconds -> `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC)."""
    moment = _NAIVE_EPOCH + timedelta(milliseconds=epoch_milliseconds)
    return moment.isoformat(timespec="milliseconds") + "Z"


def format_ms_iso(start: datetime, ms: int) -> str:
    """The instant `ms` milliseconds after `start` as `2026-11-01T00:00:10.000Z`."""
    return format_epoch_ms_iso(epoch_ms(start) + ms)


# --- vectorised variants -------------------------------------------------------------
# The decimal expressions are what the CDR writer puts in its `select`; the Series
# functions serve callers that hold plain arrays.


def micro_decimal_expr(micro: pl.Expr) -> pl.Expr:
    """Int64 micro-units -> Decimal(38, 6) holding exactly micro / 10^6.

    The cast multiplies by 10^6 and the division by 10^6 then leaves no
    remainder, so the result is exact whatever polars' rounding mode; polars
    prints a Decimal(·, 6) with all six decimals, as `format_micro` does.
    """
    return micro.cast(pl.Decimal(_DECIMAL_PRECISION, 6)) / MICRO


def ms_seconds_decimal_expr(ms: pl.Expr) -> pl.Expr:
    """Int64 milliseconds -> Decimal(38, 3) seconds, exactly (see `micro_decimal_expr`)."""
    return ms.cast(pl.Decimal(_DECIMAL_PRECISION, 3)) / MS_PER_S


@functools.cache
def _clock_tables() -> tuple[pl.Series, pl.Series]:
    """"HH:MM:" for each minute of a day and "SS.mmmZ" for each ms of a minute (61,440 strings)."""
    hours_minutes = pl.Series([f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)])
    seconds_ms = pl.Series([f"{s:02d}.{ms:03d}Z" for s in range(60) for ms in range(MS_PER_S)])
    return hours_minutes, seconds_ms


def _date_table(first_day: int, last_day: int) -> pl.Series:
    """"YYYY-MM-DDT" for each epoch day in [first_day, last_day]."""
    dates = [(_NAIVE_EPOCH + timedelta(days=d)).date().isoformat() + "T" for d in range(first_day, last_day + 1)]
    return pl.Series(dates, dtype=pl.String)


def format_epoch_ms_iso_arrays(*arrays: NDArray[np.int64]) -> list[pl.Series]:
    """Vectorised `format_epoch_ms_iso` for several arrays at once: String Series, element for
    element identical to the scalar function.

    Each instant is three table lookups (date, hour:minute, second.millis) and
    one concat: about 4x cheaper than chrono's `strftime`, which was the
    largest single cost of writing cdrs.csv.  The arrays share one date table
    spanning only the days present (its size is bounded by the simulated
    duration, not by the row count) and are collected together, so in
    parallel.
    """
    arrays_ = [np.asarray(a, dtype=np.int64) for a in arrays]
    if sum(len(a) for a in arrays_) == 0:
        return [pl.Series([], dtype=pl.String) for _ in arrays_]
    split = [np.divmod(a, _MS_PER_DAY) for a in arrays_]
    first_day = min(int(days.min()) for days, _ in split if len(days))
    last_day = max(int(days.max()) for days, _ in split if len(days))
    dates = pl.lit(_date_table(first_day, last_day))
    hours_minutes, seconds_ms = (pl.lit(t) for t in _clock_tables())
    series = []
    for days, ms_of_day in split:
        minute_of_day, ms_of_minute = np.divmod(ms_of_day, _MS_PER_MINUTE)
        index = pl.DataFrame({"day": days - first_day, "minute": minute_of_day, "ms": ms_of_minute})
        series.append(
            index.lazy().select(
                pl.concat_str(
                    dates.gather(pl.col("day")),
                    hours_minutes.gather(pl.col("minute")),
                    seconds_ms.gather(pl.col("ms")),
                )
            )
        )
    return [frame.to_series() for frame in pl.collect_all(series)]


def format_epoch_ms_iso_array(epoch_milliseconds: NDArray[np.int64]) -> pl.Series:
    """Vectorised `format_epoch_ms_iso` (see `format_epoch_ms_iso_arrays`)."""
    return format_epoch_ms_iso_arrays(epoch_milliseconds)[0]


def format_micro_array(micro: NDArray[np.int64]) -> pl.Series:
    """Vectorised `format_micro`: a String Series, element for element identical."""
    decimals = micro_decimal_expr(pl.lit(pl.Series(micro, dtype=pl.Int64)))
    return pl.select(decimals.cast(pl.String)).to_series()


def format_ms_iso_array(start: datetime, ms: NDArray[np.int64]) -> pl.Series:
    """Vectorised `format_ms_iso`: a String Series, element for element identical."""
    return format_epoch_ms_iso_array(np.asarray(ms, dtype=np.int64) + epoch_ms(start))
