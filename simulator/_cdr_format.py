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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

import msgpack
import numpy as np
import polars as pl
from numpy.typing import NDArray

from rating_core._model import CALL_TYPE_NAMES, END_REASON_NAMES, MS_PER_S, CdrBatch, Tables

from ._format import (
    epoch_ms,
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

# Rows per msgpack chunk: bounds the Python lists and the packer buffer alive at once
# (a million rows of Python objects is hundreds of MB), at no measurable cost per row.
MSGPACK_CHUNK_ROWS = 16_384

_NANOS_PER_MS = 1_000_000


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


def _seconds_and_nanos(epoch_milliseconds: NDArray[np.int64]) -> tuple[list[int], list[int]]:
    """Split epoch ms into msgpack Timestamp arguments (floor divmod: nanos stay in [0, 1e9))."""
    seconds, ms = np.divmod(epoch_milliseconds, MS_PER_S)
    return seconds.tolist(), (ms * _NANOS_PER_MS).tolist()


def _phones(digits: NDArray[np.int64]) -> list[str | None]:
    return [f"+{d}" if d > 0 else None for d in digits.tolist()]


def _money(micro: NDArray[np.int64]) -> list[str]:
    return pl.select(micro_decimal_expr(pl.lit(pl.Series(micro))).cast(pl.String)).to_series().to_list()


def msgpack_columns(batch: CdrBatch, lookups: CdrLookups) -> list[list[Any]]:
    """The batch as Python lists, for `pack_cdr_rows`: `CDR_COLUMNS` order, values msgpack-native.

    ints stay ints, duration is a float of seconds, money the same decimal text
    as the CSV (exact), empty fields None.  Each instant is two lists, seconds
    and nanoseconds: `pack_cdr_rows` makes the msgpack Timestamp just before
    packing it, so that no Timestamp outlives its row (see `pack_cdr_rows`).
    """
    start = batch.start_ms + lookups.epoch_ms
    end = batch.end_ms + lookups.epoch_ms
    n = len(batch)
    return [
        batch.call_id.tolist(),
        lookups.raw_orgs[batch.org].tolist(),
        lookups.raw_users[batch.user].tolist(),
        lookups.raw_call_types[batch.call_type].tolist(),
        _phones(batch.from_number),
        _phones(batch.to_number),
        lookups.raw_countries[batch.country].tolist(),
        lookups.raw_zones[batch.zone].tolist(),
        *_seconds_and_nanos(start),
        *_seconds_and_nanos(end),
        ((end - start) / MS_PER_S).tolist(),
        batch.billed_s.tolist(),
        lookups.raw_pools[used_pool(batch)].tolist(),
        batch.pool_s.tolist(),
        _money(batch.credits_micro),
        [lookups.currency] * n,
        lookups.raw_end_reasons[batch.end_reason].tolist(),
    ]


def pack_cdr_rows(packer: msgpack.Packer, columns: Sequence[list[Any]]) -> None:
    """Pack one msgpack map per row into `packer` (autoreset=False), keys in `CDR_COLUMNS` order.

    A dict display per row is the fastest way the msgpack library offers to
    emit a stream of maps (faster than dict(zip(...)) or pack_map_pairs).
    The dict and its Timestamps die right after packing: objects that stay
    alive for a whole chunk (two Timestamps a row) keep triggering the cyclic
    GC, which measured at ~2 µs a row.
    """
    pack = packer.pack
    timestamp = msgpack.Timestamp
    for (
        call_id, org_id, user_id, call_type, from_number, to_number, country, zone,
        start_s, start_ns, end_s, end_ns, duration_s, billed_s, pool, pool_s, credits, currency,
        end_reason,
    ) in zip(*columns):
        pack(
            {
                "call_id": call_id,
                "org_id": org_id,
                "user_id": user_id,
                "call_type": call_type,
                "from_number": from_number,
                "to_number": to_number,
                "destination_country": country,
                "zone": zone,
                "start_time": timestamp(start_s, start_ns),
                "end_time": timestamp(end_s, end_ns),
                "duration_s": duration_s,
                "billed_s": billed_s,
                "pool": pool,
                "pool_s": pool_s,
                "credits_charged": credits,
                "currency": currency,
                "end_reason": end_reason,
            }
        )


def write_msgpack(batch: CdrBatch, lookups: CdrLookups, packer: msgpack.Packer, out: BinaryIO) -> None:
    """Append the batch's cdrs.msgpack records to `out`, `MSGPACK_CHUNK_ROWS` rows at a time."""
    for first in range(0, len(batch), MSGPACK_CHUNK_ROWS):
        chunk = batch.take(slice(first, first + MSGPACK_CHUNK_ROWS))
        pack_cdr_rows(packer, msgpack_columns(chunk, lookups))
        with packer.getbuffer() as packed:  # no copy; released before the reset
            out.write(packed)
        packer.reset()
