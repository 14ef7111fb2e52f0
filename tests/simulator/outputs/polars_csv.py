"""The ORACLE for cdrs.csv: an independent writer built on polars, kept for the tests.

`simulator.outputs._csv_columns` builds cdrs.csv with numpy alone (faster, and no
polars import in a run); this module is the former writer, an independent
implementation of the same text: exact polars decimals for money and
durations, string tables quoted here, times from three string tables, and
`DataFrame.write_csv` with quoting off.  tests/simulator/outputs/test_csv_columns.py requires
the two to agree byte for byte, tests/simulator/outputs/test_outputs.py checks this one against
the scalar formatters in `simulator.units._text`.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, MICRO, MS_PER_S, CdrBatch, Tables
from simulator.units import epoch_ms

_NAIVE_EPOCH = datetime(1970, 1, 1)
_MS_PER_MINUTE = 60 * MS_PER_S
_MS_PER_DAY = 24 * 60 * _MS_PER_MINUTE

# A Decimal(38, s) holds any int64 count of 10^-s units, times 10^s, with room to spare.
_DECIMAL_PRECISION = 38

#: keyword arguments for `DataFrame.write_csv` that, with `csv_frame`, give the cdrs.csv rows.
CSV_WRITE_OPTIONS: dict[str, Any] = {
    "include_header": False,
    "separator": ",",
    "line_terminator": "\n",
    "quote_style": "never",
    "null_value": "",
}


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
    """Vectorised `format_epoch_ms_iso` for several arrays at once: String Series.

    Each instant is three table lookups (date, hour:minute, second.millis) and
    one concat; the arrays share one date table spanning only the days present.
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


def csv_field(text: str) -> str | None:
    """One table string as a CSV field (RFC 4180): quoted only if it must be; "" -> None (empty)."""
    if text == "":
        return None
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_table(texts: Iterable[str]) -> pl.Series:
    """The quoted strings, and None (an empty field) at index -1."""
    return pl.Series([csv_field(t) for t in texts] + [None], dtype=pl.String)


def _gather(table: pl.Series, index: str) -> pl.Expr:
    return pl.lit(table).gather(pl.col(index))


def _phone(column: str) -> pl.Expr:
    digits = pl.col(column)
    return pl.when(digits > 0).then(pl.format("+{}", digits))


def csv_frame(batch: CdrBatch, tables: Tables, start: datetime, currency: str) -> pl.DataFrame:
    """The batch as a frame whose `write_csv(**CSV_WRITE_OPTIONS)` is exactly the cdrs.csv rows."""
    epoch = epoch_ms(start)
    start_time, end_time = format_epoch_ms_iso_arrays(batch.start_ms + epoch, batch.end_ms + epoch)
    raw = pl.DataFrame(
        {
            "call_id": batch.call_id,
            "org": batch.org,
            "user": batch.user,
            "call_type": batch.call_type,
            "from_number": batch.from_number,
            "to_number": batch.to_number,
            "country": batch.country,
            "zone": batch.zone,
            "start_time": start_time,
            "end_time": end_time,
            "duration_ms": batch.end_ms - batch.start_ms,
            "billed_s": batch.billed_s,
            # rule 9: a pool is shown only if seconds were taken from it
            "pool": np.where(batch.pool_s > 0, batch.pool, -1),
            "pool_s": batch.pool_s,
            "credits_micro": batch.credits_micro,
            "end_reason": batch.end_reason,
        }
    )
    return raw.select(
        pl.col("call_id"),
        _gather(_csv_table(tables.org_ids), "org").alias("org_id"),
        _gather(_csv_table(tables.user_ids), "user").alias("user_id"),
        _gather(_csv_table(CALL_TYPE_NAMES), "call_type").alias("call_type"),
        _phone("from_number").alias("from_number"),
        _phone("to_number").alias("to_number"),
        _gather(_csv_table(tables.countries), "country").alias("destination_country"),
        _gather(_csv_table(tables.zones), "zone").alias("zone"),
        pl.col("start_time"),
        pl.col("end_time"),
        ms_seconds_decimal_expr(pl.col("duration_ms")).alias("duration_s"),
        pl.col("billed_s"),
        _gather(_csv_table(tables.pool_names), "pool").alias("pool"),
        pl.col("pool_s"),
        micro_decimal_expr(pl.col("credits_micro")).alias("credits_charged"),
        pl.lit(csv_field(currency) or "").alias("currency"),
        _gather(_csv_table(END_REASON_NAMES), "end_reason").alias("end_reason"),
    )


def polars_csv_rows(batch: CdrBatch, tables: Tables, start: datetime, currency: str) -> bytes:
    """The batch's cdrs.csv rows (no header) as polars writes them."""
    out = io.BytesIO()
    csv_frame(batch, tables, start, currency).write_csv(out, **CSV_WRITE_OPTIONS)
    return out.getvalue()
