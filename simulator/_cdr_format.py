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
and the bytes never depend on polars' quoting heuristics.  The msgpack records
are built from the same integer columns by `_msgpack_columns`, never through a
Python object per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Generic, TypeVar

import msgspec
import numpy as np
import polars as pl
from numpy.typing import NDArray

from rating_core._model import CALL_TYPE_NAMES, END_REASON_NAMES, MS_PER_S, CdrBatch, Tables

from ._msgpack_columns import (
    Field,
    RowJoiner,
    StringTable,
    decimals,
    floats,
    integers,
    map_header,
    prefixed_digits,
    timestamps,
)
from ._format import (
    epoch_ms,
    format_epoch_ms_iso_arrays,
    micro_decimal_expr,
    ms_seconds_decimal_expr,
)

T = TypeVar("T")

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

def csv_field(text: str) -> str | None:
    """One table string as a CSV field (RFC 4180): quoted only if it must be; "" -> None (empty)."""
    if text == "":
        return None
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_table(texts: Iterable[str]) -> pl.Series:
    return pl.Series([csv_field(t) for t in texts] + [None], dtype=pl.String)


def _packed_table(texts: Iterable[str]) -> StringTable:
    """The msgpack strings of a table, "" as nil, plus nil at index -1."""
    return StringTable([t if t != "" else None for t in texts] + [None])


@dataclass(frozen=True)
class StringTables(Generic[T]):
    """The string tables of a run in one output format (CSV-quoted Series, msgpack StringTables)."""

    orgs: T
    users: T
    countries: T
    zones: T
    pools: T
    call_types: T
    end_reasons: T

    @classmethod
    def build(cls, tables: Tables, table: Callable[[Iterable[str]], T]) -> "StringTables[T]":
        return cls(*map(table, (tables.org_ids, tables.user_ids, tables.countries, tables.zones,
                                tables.pool_names, CALL_TYPE_NAMES, END_REASON_NAMES)))


@dataclass(frozen=True)
class CdrLookups:
    """Everything per-run the formatters need: string tables (CSV-quoted and msgpack) and the epoch."""

    epoch_ms: int
    currency: str
    csv_currency: str
    csv: StringTables[pl.Series]
    packed: StringTables[StringTable]

    @classmethod
    def build(cls, tables: Tables, start: datetime, currency: str) -> "CdrLookups":
        return cls(
            epoch_ms=epoch_ms(start),
            currency=currency,
            csv_currency=csv_field(currency) or "",
            csv=StringTables.build(tables, _csv_table),
            packed=StringTables.build(tables, _packed_table),
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
        _gather(lookups.csv.orgs, "org").alias("org_id"),
        _gather(lookups.csv.users, "user").alias("user_id"),
        _gather(lookups.csv.call_types, "call_type").alias("call_type"),
        _phone("from_number").alias("from_number"),
        _phone("to_number").alias("to_number"),
        _gather(lookups.csv.countries, "country").alias("destination_country"),
        _gather(lookups.csv.zones, "zone").alias("zone"),
        pl.col("start_time"),
        pl.col("end_time"),
        ms_seconds_decimal_expr(pl.col("duration_ms")).alias("duration_s"),
        pl.col("billed_s"),
        _gather(lookups.csv.pools, "pool").alias("pool"),
        pl.col("pool_s"),
        micro_decimal_expr(pl.col("credits_micro")).alias("credits_charged"),
        pl.lit(lookups.csv_currency).alias("currency"),
        _gather(lookups.csv.end_reasons, "end_reason").alias("end_reason"),
    )


# --- msgpack ----------------------------------------------------------------------------

# Rows encoded at a time: bounds the memory of one batch's fields (~1 KB a row).
MSGPACK_CHUNK_ROWS = 65_536

_MAP_HEADER = map_header(len(CDR_COLUMNS))
_PACKED_KEYS = [msgspec.msgpack.encode(key) for key in CDR_COLUMNS]


def msgpack_parts(batch: CdrBatch, lookups: CdrLookups) -> list[bytes | Field]:
    """The batch's cdrs.msgpack records as `RowJoiner` parts: map header, then key and value.

    ints stay ints, instants are Timestamps, duration is a float of seconds,
    numbers and money the same text as the CSV, empty fields nil.
    """
    values: list[list[bytes | Field]] = [
        [integers(batch.call_id)],
        [lookups.packed.orgs.take(batch.org)],
        [lookups.packed.users.take(batch.user)],
        [lookups.packed.call_types.take(batch.call_type)],
        prefixed_digits(batch.from_number, b"+"),
        prefixed_digits(batch.to_number, b"+"),
        [lookups.packed.countries.take(batch.country)],
        [lookups.packed.zones.take(batch.zone)],
        [timestamps(batch.start_ms + lookups.epoch_ms)],
        [timestamps(batch.end_ms + lookups.epoch_ms)],
        [floats((batch.end_ms - batch.start_ms) / MS_PER_S)],
        [integers(batch.billed_s)],
        [lookups.packed.pools.take(used_pool(batch))],
        [integers(batch.pool_s)],
        decimals(batch.credits_micro, 6),
        [msgspec.msgpack.encode(lookups.currency)],
        [lookups.packed.end_reasons.take(batch.end_reason)],
    ]
    parts: list[bytes | Field] = [_MAP_HEADER]
    for key, value in zip(_PACKED_KEYS, values, strict=True):
        parts += [key, *value]
    return parts


def write_msgpack(batch: CdrBatch, lookups: CdrLookups, joiner: RowJoiner, out: BinaryIO) -> None:
    """Append the batch's cdrs.msgpack records to `out` (`joiner` is kept from batch to batch)."""
    for first in range(0, len(batch), MSGPACK_CHUNK_ROWS):
        joiner.write(msgpack_parts(batch.take(slice(first, first + MSGPACK_CHUNK_ROWS)), lookups), out)
