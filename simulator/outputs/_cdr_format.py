"""CdrBatch -> cdrs.csv rows and cdrs.msgpack records, column at a time.

The switch produces CDRs as struct-of-arrays batches of integers; this module
turns a whole batch into bytes in a handful of vectorised numpy passes
(`_csv_columns`, `_msgpack_columns`), because a per-row Python formatter (the
csv module costs ~6.5 µs a row) would eat most of the >= 300k calls/s budget.

Strings come from small tables (org ids, user ids, countries, zones, pool
names, enum names), encoded once per run.  Each table gets a trailing empty
entry, so the index -1 that CdrBatch uses for "none" reads as an empty field
(nil in msgpack) without a branch.  For the CSV the entries are quoted once,
up front (RFC 4180): every other field is digits, dots, dashes, colons or
names we control, so quoting the tables is quoting everything that could need
it.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Generic, Protocol, TypeVar

import msgspec
import numpy as np
from numpy.typing import NDArray

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, MS_PER_S, CdrBatch, Tables

from . import _csv_columns as csv_columns
from ._byte_columns import ENCODE_ROWS, Field, RowJoiner
from ._msgpack_columns import (
    StringTable,
    decimals,
    floats,
    integers,
    map_header,
    prefixed_digits,
    timestamps,
)
from ..units import epoch_ms

T = TypeVar("T")

CDR_COLUMNS = (
    "call_id", "org_id", "user_id", "call_type", "from_number", "to_number",
    "destination_country", "zone", "start_time", "end_time", "duration_s", "billed_s",
    "pool", "pool_s", "credits_charged", "currency", "end_reason",
)

CSV_HEADER = (",".join(CDR_COLUMNS) + "\n").encode()


def _table_texts(tables: Tables) -> dict[str, Sequence[str]]:
    """The strings of each of `StringTables`' tables."""
    return {"orgs": tables.org_ids, "users": tables.user_ids, "call_types": CALL_TYPE_NAMES,
            "countries": tables.countries, "zones": tables.zones, "pools": tables.pool_names,
            "end_reasons": END_REASON_NAMES}


# cdrs.csv: each table's entries carry the separator that follows the field, on the left or
# the right (True) of the table's width (see csv_parts)
_CSV_LAYOUT: dict[str, tuple[bytes, bool]] = {
    "orgs": (b",", False), "users": (b",", True), "call_types": (b",", False),
    "countries": (b",", False), "zones": (b",", True), "pools": (b",", False),
    "end_reasons": (b"\n", False),
}


def _packed_table(texts: Sequence[str]) -> StringTable:
    """The msgpack strings of a table, "" as nil, plus nil at index -1."""
    if hasattr(texts, "parts"):  # `UserIds` (groups kept whole): no id is ""
        return StringTable(texts, extra=[None])
    return StringTable([t if t != "" else None for t in texts] + [None])


@dataclass(frozen=True)
class StringTables(Generic[T]):
    """The string tables of a run in one output format (CSV `TextTable`s, msgpack `StringTable`s)."""

    orgs: T
    users: T
    countries: T
    zones: T
    pools: T
    call_types: T
    end_reasons: T


@dataclass(frozen=True)
class CdrLookups:
    """Everything per-run the formatters need: string tables (CSV-quoted and msgpack) and the epoch.

    Each format's tables are built when the file that needs them is opened (`prepare`), not
    before: a file's worker writes one format, and a run of a million users has a million ids
    to quote or pack (~1 s a format).
    """

    epoch_ms: int
    currency: str
    texts: dict[str, Sequence[str]]

    @classmethod
    def build(cls, tables: Tables, start: datetime, currency: str) -> "CdrLookups":
        return cls(epoch_ms=epoch_ms(start), currency=currency, texts=_table_texts(tables))

    @functools.cached_property
    def csv(self) -> StringTables[csv_columns.TextTable]:
        """The tables as CSV fields, quoted once."""
        return StringTables(**{name: csv_columns.TextTable(t, *_CSV_LAYOUT[name])
                               for name, t in self.texts.items()})

    @functools.cached_property
    def packed(self) -> StringTables[StringTable]:
        """The tables as msgpack strings."""
        return StringTables(**{name: _packed_table(t) for name, t in self.texts.items()})

    def prepare(self, fmt: str) -> None:
        """Build the tables of `fmt` ("csv" or "msgpack") now: `CdrFile` does it when opened,
        so that a file worker builds them as soon as its file is named, while the run draws its
        first calls; on the first batch they would hold up the CDRs waiting (~0.1 s at 10,000
        orgs).  In one process (no workers) it costs the same, only earlier."""
        if fmt == "csv":
            self.csv
        else:
            self.packed


def used_pool(batch: CdrBatch) -> NDArray[np.int32]:
    """The pool index to show per row: -1 unless seconds were actually taken from it (rule 9)."""
    return np.where(batch.pool_s > 0, batch.pool, -1).astype(np.int32, copy=False)


# Rows encoded at a time: bounds the memory of one batch's fields (~0.5 KB a row for the
# CSV, ~1 KB for msgpack), and keeps them in the CPU's cache (`ENCODE_ROWS`).
CHUNK_ROWS = ENCODE_ROWS


def _write_chunks(parts: Callable[[CdrBatch, "CdrLookups"], list[bytes | Field]], batch: CdrBatch,
                  lookups: "CdrLookups", joiner: RowJoiner, out: BinaryIO) -> None:
    for first in range(0, len(batch), CHUNK_ROWS):
        joiner.write(parts(batch.take(slice(first, first + CHUNK_ROWS)), lookups), out)


# --- CSV --------------------------------------------------------------------------------


def _folded(values: NDArray[np.integer],
            encode: Callable[[NDArray[np.integer]], "Field | list[bytes | Field]"]) -> list[bytes | Field]:
    """`encode(values)` as parts; when every row of the chunk has the same value (pool seconds
    once an org's pool is dry, the credits of pool-paid calls), the one text of them all,
    made by the same encoder: constant bytes cost `RowJoiner` nothing a row."""
    same = int(values.min()) == int(values.max())
    encoded = encode(values[:1] if same else values)
    parts = encoded if isinstance(encoded, list) else [encoded]
    if not same:
        return parts
    text = io.BytesIO()
    RowJoiner(1).write(parts, text)
    return [text.getvalue()]


def _csv_money(micro: NDArray[np.integer]) -> Field:
    return csv_columns.decimals(micro, 6)


def _packed_money(micro: NDArray[np.integer]) -> list[bytes | Field]:
    return decimals(micro, 6)


def _csv_number(numbers: NDArray[np.int64]) -> bytes | Field:
    """A phone number column: "+" and the digits, empty where there is none; no bytes at all
    when no row of the chunk has one (calls of users without a number: every stress shape)."""
    return csv_columns.prefixed_digits(numbers, b"+") if int(numbers.max()) > 0 else b""


def csv_parts(batch: CdrBatch, lookups: CdrLookups) -> list[bytes | Field]:
    """The batch's cdrs.csv rows as `RowJoiner` parts.

    Numbers are right-aligned in their fields, and each table string carries
    the separator after it, on the left or the right of its field
    (`_CSV_LAYOUT`), so that most neighbours' paddings touch: the joiner's
    mask selection costs about as much per gap of padding in a row as per ten
    bytes of text (~5 % of the time, all told).
    """
    tables = lookups.csv
    return [
        csv_columns.integers(batch.call_id), b",",
        tables.orgs.column(batch.org),
        tables.users.column(batch.user),
        tables.call_types.column(batch.call_type),
        _csv_number(batch.from_number), b",",
        _csv_number(batch.to_number), b",",
        tables.countries.column(batch.country),
        tables.zones.column(batch.zone),
        *csv_columns.instants(batch.start_ms + lookups.epoch_ms), b",",
        *csv_columns.instants(batch.end_ms + lookups.epoch_ms), b",",
        csv_columns.decimals(batch.end_ms - batch.start_ms, 3), b",",
        *_folded(batch.billed_s, csv_columns.integers), b",",
        tables.pools.column(used_pool(batch)),
        *_folded(batch.pool_s, csv_columns.integers), b",",
        *_folded(batch.credits_micro, _csv_money), b"," + csv_columns.quoted(lookups.currency) + b",",
        tables.end_reasons.column(batch.end_reason),
    ]


def write_csv(batch: CdrBatch, lookups: CdrLookups, joiner: RowJoiner, out: BinaryIO) -> None:
    """Append the batch's cdrs.csv rows to `out` (`joiner` is kept from batch to batch)."""
    _write_chunks(csv_parts, batch, lookups, joiner, out)


# --- msgpack ----------------------------------------------------------------------------

_MAP_HEADER = map_header(len(CDR_COLUMNS))
_PACKED_KEYS = [msgspec.msgpack.encode(key) for key in CDR_COLUMNS]
_PACKED_NIL = msgspec.msgpack.encode(None)


def _packed_number(numbers: NDArray[np.int64]) -> list[bytes | Field]:
    """A phone number as a msgpack string, nil where there is none (`_csv_number`)."""
    return list(prefixed_digits(numbers, b"+")) if int(numbers.max()) > 0 else [_PACKED_NIL]


def msgpack_parts(batch: CdrBatch, lookups: CdrLookups) -> list[bytes | Field]:
    """The batch's cdrs.msgpack records as `RowJoiner` parts: map header, then key and value.

    ints stay ints, instants are Timestamps, duration is a float of seconds,
    numbers and money the same text as the CSV, empty fields nil.
    """
    values: list[list[bytes | Field]] = [
        [integers(batch.call_id)],
        [lookups.packed.orgs.column(batch.org)],
        [lookups.packed.users.column(batch.user)],
        [lookups.packed.call_types.column(batch.call_type)],
        _packed_number(batch.from_number),
        _packed_number(batch.to_number),
        [lookups.packed.countries.column(batch.country)],
        [lookups.packed.zones.column(batch.zone)],
        [timestamps(batch.start_ms + lookups.epoch_ms)],
        [timestamps(batch.end_ms + lookups.epoch_ms)],
        [floats((batch.end_ms - batch.start_ms) / MS_PER_S)],
        _folded(batch.billed_s, integers),
        [lookups.packed.pools.column(used_pool(batch))],
        _folded(batch.pool_s, integers),
        _folded(batch.credits_micro, _packed_money),
        [msgspec.msgpack.encode(lookups.currency)],
        [lookups.packed.end_reasons.column(batch.end_reason)],
    ]
    parts: list[bytes | Field] = [_MAP_HEADER]
    for key, value in zip(_PACKED_KEYS, values, strict=True):
        parts += [key, *value]
    return parts


def write_msgpack(batch: CdrBatch, lookups: CdrLookups, joiner: RowJoiner, out: BinaryIO) -> None:
    """Append the batch's cdrs.msgpack records to `out` (`joiner` is kept from batch to batch)."""
    _write_chunks(msgpack_parts, batch, lookups, joiner, out)


#: Each CDR file's format: its encoder and the bytes the file starts with.
CDR_FILE_FORMATS: dict[str, tuple[Callable[[CdrBatch, CdrLookups, RowJoiner, BinaryIO], None], bytes]] = {
    "csv": (write_csv, CSV_HEADER),
    "msgpack": (write_msgpack, b""),
}


class CdrSink(Protocol):
    """Where CDR batches go, in output order: a file of them (`CdrFile`, or an extra file)."""

    def write(self, batch: CdrBatch) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class ExtraCdrFile(Protocol):
    """A file of the CDRs in a layout of its own, written beside cdrs.csv (`CdrWriter`'s
    `extra_files`): `open` creates it and returns its sink.  Formatted in the process that
    writes cdrs.csv, a worker's for big runs: then the object is pickled to it."""

    path: Path  # where `open` creates it (named in a write error)

    def open(self) -> CdrSink: ...


class CdrFile:
    """One CDR file formatted in this process (`fmt`: "csv" or "msgpack", `CDR_FILE_FORMATS`).

    `CdrWriter` writes through it, and so does a worker process (`_cdr_workers`).
    """

    def __init__(self, path: Path, fmt: str, lookups: CdrLookups) -> None:
        self._encode, header = CDR_FILE_FORMATS[fmt]
        lookups.prepare(fmt)
        self._file = open(path, "wb")
        self._file.write(header)
        self._file.flush()  # a run stopped before its first batch still leaves the header
        self._lookups, self._joiner = lookups, RowJoiner()

    def write(self, batch: CdrBatch) -> None:
        self._encode(batch, self._lookups, self._joiner, self._file)
        self._file.flush()  # a killed run's file ends at a batch, not inside a buffered row

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
