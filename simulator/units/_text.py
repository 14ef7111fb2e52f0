"""Exact text for money and instants, shared by every output.

Money travels as integer micro-units and time as integer milliseconds since
the simulation start (see `rating_core._model`).  Their text forms must be
byte-identical wherever they appear (cdrs.csv, cdrs.msgpack, events.jsonl,
summary.json, the report, the server), so they are defined here and nowhere
else: the CDR files, which format whole columns at once (`_csv_columns`,
`_msgpack_columns`), are held to these functions by their tests.  No float
ever touches a money amount or an instant: these use `divmod`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from rating_core import MICRO, MS_PER_S

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_ONE_MS = timedelta(milliseconds=1)


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


def format_micro_grouped(micro: int) -> str:
    """`format_micro` with thousands separators, for people: 61499999500 -> "61,499.999500".

    Reports and summaries show money exactly, as the files hold it: rounding to cents would
    turn a balance of 0.000500 into 0.00."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    return f"{sign}{whole:,}.{frac:06d}"


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
