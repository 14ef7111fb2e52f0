"""CdrBatch -> cdrs.csv bytes and cdrs.msgpack records, column at a time.

The switch produces CDRs as struct-of-arrays batches of integers; this module
turns a whole batch into text in a handful of vectorised polars/numpy passes,
because a per-row Python formatter (the csv module costs ~6.5 µs a row) would
eat most of the >= 300k calls/s budget.

Strings come from small tables (org ids, user ids, countries, zones, pool
names, enum names).  Each table gets a trailing `None`, so the index -1 that
CdrBatch uses for "none" reads as an empty field without a branch.  For the
CSV the table entries are quoted once, up front (RFC 4180), and polars writes
with quoting off: every other field is digits, dots, dashes, colons or names
we control, so quoting the tables is quoting everything that could need it,
and the bytes never depend on polars' quoting heuristics.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import msgspec
import numpy as np
import polars as pl
from numpy.typing import NDArray

from rating_core._model import CALL_TYPE_NAMES, END_REASON_NAMES, MS_PER_S, CdrBatch, Tables

from ._format import (
    epoch_ms,
    format_epoch_ms_iso_array,
    format_epoch_ms_iso_arrays,
    micro_decimal_expr,
    ms_seconds_decimal_expr,
)

CDR_COLUMNS = (
    "call_id", "org_id", "user_id", "call_type", "from_number", "to_number",
    "destination_country", "zone", "start_time", "end_time", "duration_s", "billed_s",
    "pool", "pool_s", "credits_charged", "currency", "end_reason",
)

CSV_HEADER = (",".join(CDR_COLUMNS) + "\n").encode()

#: keyword arguments for `DataFrame.write_csv` that, with `csv_frame`, give the cdrs.csv rows.
CSV_WRITE_OPTIONS: dict[str, Any] = {
    "include_header": False,
    "separator": ",",
    "line_terminator": "\n",
    "quote_style": "never",
    "null_value": "",
}

# Rows per msgpack chunk: bounds the Python objects alive at once.  Small enough that the
# allocator reuses the same memory chunk after chunk (16k rows cost ~10 page faults a row).
MSGPACK_CHUNK_ROWS = 4_096


def csv_field(text: str) -> str | None:
    """One table string as a CSV field (RFC 4180): quoted only if it must be; "" -> None (empty)."""
    if text == "":
        return None
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_table(texts: Iterable[str]) -> pl.Series:
    return pl.Series([csv_field(t) for t in texts] + [None], dtype=pl.String)


def _raw_table(texts: Iterable[str]) -> NDArray[np.object_]:
    values: list[str | None] = [t if t != "" else None for t in texts]
    table = np.empty(len(values) + 1, dtype=object)
    table[:-1] = values
    table[-1] = None
    return table


@dataclass(frozen=True)
class CdrLookups:
    """Everything per-run the formatters need: string tables (CSV-quoted and raw) and the epoch."""

    epoch_ms: int
    currency: str
    csv_currency: str
    csv_orgs: pl.Series
    csv_users: pl.Series
    csv_countries: pl.Series
    csv_zones: pl.Series
    csv_pools: pl.Series
    csv_call_types: pl.Series
    csv_end_reasons: pl.Series
    raw_orgs: NDArray[np.object_]
    raw_users: NDArray[np.object_]
    raw_countries: NDArray[np.object_]
    raw_zones: NDArray[np.object_]
    raw_pools: NDArray[np.object_]
    raw_call_types: NDArray[np.object_]
    raw_end_reasons: NDArray[np.object_]

    @classmethod
    def build(cls, tables: Tables, start: datetime, currency: str) -> "CdrLookups":
        return cls(
            epoch_ms=epoch_ms(start),
            currency=currency,
            csv_currency=csv_field(currency) or "",
            csv_orgs=_csv_table(tables.org_ids),
            csv_users=_csv_table(tables.user_ids),
            csv_countries=_csv_table(tables.countries),
            csv_zones=_csv_table(tables.zones),
            csv_pools=_csv_table(tables.pool_names),
            csv_call_types=_csv_table(CALL_TYPE_NAMES),
            csv_end_reasons=_csv_table(END_REASON_NAMES),
            raw_orgs=_raw_table(tables.org_ids),
            raw_users=_raw_table(tables.user_ids),
            raw_countries=_raw_table(tables.countries),
            raw_zones=_raw_table(tables.zones),
            raw_pools=_raw_table(tables.pool_names),
            raw_call_types=_raw_table(CALL_TYPE_NAMES),
            raw_end_reasons=_raw_table(END_REASON_NAMES),
        )


def used_pool(batch: CdrBatch) -> NDArray[np.int32]:
    """The pool index to show per row: -1 unless seconds were actually taken from it (rule 9)."""
    return np.where(batch.pool_s > 0, batch.pool, -1).astype(np.int32, copy=False)


# --- CSV --------------------------------------------------------------------------------


def _gather(table: pl.Series, index: str) -> pl.Expr:
    return pl.lit(table).gather(pl.col(index))


def _phone(column: str) -> pl.Expr:
    digits = pl.col(column)
    return pl.when(digits > 0).then(pl.format("+{}", digits))


def csv_frame(batch: CdrBatch, lookups: CdrLookups) -> pl.DataFrame:
    """The batch as a frame whose `write_csv(**CSV_WRITE_OPTIONS)` is exactly the cdrs.csv rows.

    Times are built as strings by table lookup (`format_epoch_ms_iso_arrays`);
    money and durations stay exact decimals, which the CSV writer prints
    faster than we could build their strings.
    """
    start_time, end_time = format_epoch_ms_iso_arrays(
        batch.start_ms + lookups.epoch_ms, batch.end_ms + lookups.epoch_ms
    )
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
            "pool": used_pool(batch),
            "pool_s": batch.pool_s,
            "credits_micro": batch.credits_micro,
            "end_reason": batch.end_reason,
        }
    )
    return raw.select(
        pl.col("call_id"),
        _gather(lookups.csv_orgs, "org").alias("org_id"),
        _gather(lookups.csv_users, "user").alias("user_id"),
        _gather(lookups.csv_call_types, "call_type").alias("call_type"),
        _phone("from_number").alias("from_number"),
        _phone("to_number").alias("to_number"),
        _gather(lookups.csv_countries, "country").alias("destination_country"),
        _gather(lookups.csv_zones, "zone").alias("zone"),
        pl.col("start_time"),
        pl.col("end_time"),
        ms_seconds_decimal_expr(pl.col("duration_ms")).alias("duration_s"),
        pl.col("billed_s"),
        _gather(lookups.csv_pools, "pool").alias("pool"),
        pl.col("pool_s"),
        micro_decimal_expr(pl.col("credits_micro")).alias("credits_charged"),
        pl.lit(lookups.csv_currency).alias("currency"),
        _gather(lookups.csv_end_reasons, "end_reason").alias("end_reason"),
    )


# --- msgpack ----------------------------------------------------------------------------


class CdrRecord(msgspec.Struct, gc=False):
    """One cdrs.msgpack record: msgspec encodes a Struct as a map with keys in field order.

    Instants are timezone-aware datetimes, which msgspec encodes as the msgpack
    Timestamp extension (the same bytes `msgpack.Timestamp` packs).  gc=False:
    the records hold only strings, numbers and datetimes, so they cannot form
    cycles, and a chunk of them must not keep triggering the cyclic GC.
    """

    call_id: int
    org_id: str
    user_id: str
    call_type: str
    from_number: str | None
    to_number: str | None
    destination_country: str | None
    zone: str | None
    start_time: datetime
    end_time: datetime
    duration_s: float
    billed_s: int
    pool: str | None
    pool_s: int
    credits_charged: str
    currency: str
    end_reason: str


assert CdrRecord.__struct_fields__ == CDR_COLUMNS

_INSTANTS = list[datetime]


# Below 2**32 s from the epoch (until 2106) a double of seconds is within 0.24 µs of every
# millisecond instant, so msgspec's rounding to the nearest microsecond gives it exactly.
_FLOAT_EXACT_MS = 2**32 * MS_PER_S


def _instants(epoch_milliseconds: NDArray[np.int64]) -> list[datetime]:
    """Epoch ms as UTC datetimes, exactly, converted in bulk by msgspec.

    From float seconds where that is exact (see `_FLOAT_EXACT_MS`); beyond,
    from the CSV's ISO text, three times slower.  tests/test_outputs.py
    checks both against integer arithmetic.
    """
    if len(epoch_milliseconds) == 0:
        return []
    if int(np.abs(epoch_milliseconds).max()) < _FLOAT_EXACT_MS:
        return msgspec.convert((epoch_milliseconds / MS_PER_S).tolist(), _INSTANTS, strict=False)
    return msgspec.convert(format_epoch_ms_iso_array(epoch_milliseconds).to_list(), _INSTANTS)


def msgpack_text(batch: CdrBatch) -> pl.DataFrame:
    """The batch's numbers and money as text, by the CSV's vectorised expressions (exact money).

    Built once per batch: each polars pass has a fixed cost of a few ms,
    which would dominate if paid per `MSGPACK_CHUNK_ROWS` chunk.
    """
    frame = pl.DataFrame(
        {"from_number": batch.from_number, "to_number": batch.to_number, "credits": batch.credits_micro}
    )
    return frame.select(
        _phone("from_number"), _phone("to_number"), micro_decimal_expr(pl.col("credits")).cast(pl.String)
    )


def msgpack_columns(batch: CdrBatch, text: pl.DataFrame, lookups: CdrLookups) -> list[list[Any]]:
    """The batch as Python lists in `CDR_COLUMNS` order, values msgpack-native.

    ints stay ints, instants are UTC datetimes, duration is a float of
    seconds, numbers and money the same text as the CSV, empty fields None.
    `text` is `msgpack_text` of the same rows.
    """
    return [
        batch.call_id.tolist(),
        lookups.raw_orgs[batch.org].tolist(),
        lookups.raw_users[batch.user].tolist(),
        lookups.raw_call_types[batch.call_type].tolist(),
        text["from_number"].to_list(),
        text["to_number"].to_list(),
        lookups.raw_countries[batch.country].tolist(),
        lookups.raw_zones[batch.zone].tolist(),
        _instants(batch.start_ms + lookups.epoch_ms),
        _instants(batch.end_ms + lookups.epoch_ms),
        ((batch.end_ms - batch.start_ms) / MS_PER_S).tolist(),
        batch.billed_s.tolist(),
        lookups.raw_pools[used_pool(batch)].tolist(),
        batch.pool_s.tolist(),
        text["credits"].to_list(),
        [lookups.currency] * len(batch),
        lookups.raw_end_reasons[batch.end_reason].tolist(),
    ]


@functools.cache
def _array_header_size(n: int) -> int:
    """Bytes of the msgpack array header the encoder writes before n elements (asked of msgspec)."""
    return len(msgspec.msgpack.encode([None] * n)) - n  # each None is one byte


def write_msgpack(batch: CdrBatch, lookups: CdrLookups, encoder: msgspec.msgpack.Encoder,
                  out: BinaryIO) -> None:
    """Append the batch's cdrs.msgpack records to `out`, `MSGPACK_CHUNK_ROWS` rows at a time.

    Each chunk is encoded as one msgpack array of maps into a reused buffer,
    and written without its array header: the stream of maps.  One encoder
    call per chunk instead of per row, and no fresh buffer each time.
    """
    text = msgpack_text(batch)
    buffer = bytearray()
    for first in range(0, len(batch), MSGPACK_CHUNK_ROWS):
        chunk = batch.take(slice(first, first + MSGPACK_CHUNK_ROWS))
        records = list(map(CdrRecord, *msgpack_columns(chunk, text.slice(first, MSGPACK_CHUNK_ROWS), lookups)))
        encoder.encode_into(records, buffer)
        with memoryview(buffer) as packed, packed[_array_header_size(len(records)):] as maps:
            out.write(maps)
