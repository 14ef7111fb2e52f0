"""The column-at-a-time msgpack encoder against per-value msgpack libraries, byte for byte.

`simulator.outputs._msgpack_columns` exists only to be fast; what the bytes must be is
defined by msgspec (which encoded cdrs.msgpack one object at a time before) and,
for whole records, by msgpack-python's `packb` of the row as a dict, which is
what docs/outputs.md promises.  Every encoder is checked on drawn values,
including each boundary between msgpack's forms.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone

import msgpack
import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import CALL_TYPE_NAMES, CDR_FIELDS, END_REASON_NAMES, MS_PER_S, CdrBatch
from simulator.outputs._cdr_format import CDR_COLUMNS, CdrLookups, used_pool, write_msgpack
from simulator.units import format_micro
from simulator.outputs._msgpack_columns import (
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
from .test_outputs import START, TABLES, random_batch

INT64 = st.integers(-(2**63), 2**63 - 1)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# every edge between two msgpack integer forms, and its neighbours
INT_EDGES = [e + d for e in (-(2**63), -(2**31), -(2**15), -128, -32, 0, 128, 256, 2**16, 2**32, 2**63 - 1)
             for d in (-1, 0, 1) if -(2**63) <= e + d < 2**63]


def joined(parts: list[bytes | Field], rows_per_pass: int = 2048) -> bytes:
    out = io.BytesIO()
    RowJoiner(rows_per_pass).write(parts, out)
    return out.getvalue()


def encoded(values: list) -> bytes:
    return b"".join(msgspec.msgpack.encode(v) for v in values)


def int64s(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


@given(st.lists(st.one_of(INT64, st.sampled_from(INT_EDGES)), min_size=1, max_size=60))
def test_integers_take_the_smallest_form_as_msgspec_does(values: list[int]) -> None:
    assert joined([integers(int64s(values))]) == encoded(values)


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=40))
def test_floats_are_float64_as_msgspec_writes_them(values: list[float]) -> None:
    assert joined([floats(np.array(values, dtype=np.float64))]) == encoded(values)


MS_RANGE = st.integers(-(2**35) * MS_PER_S, 2**35 * MS_PER_S)  # 881..3058: all three Timestamp forms
TIMESTAMP_EDGES = [s * MS_PER_S + d for s in (0, 2**32, 2**34) for d in (-1000, -1, 0, 1, 1000)]


@given(st.lists(st.one_of(MS_RANGE, st.sampled_from(TIMESTAMP_EDGES)), min_size=1, max_size=40))
def test_timestamps_are_exact_milliseconds_in_the_form_both_libraries_choose(ms: list[int]) -> None:
    got = joined([timestamps(int64s(ms))])
    assert got == encoded([EPOCH + timedelta(milliseconds=m) for m in ms])
    assert got == b"".join(msgpack.packb(msgpack.Timestamp.from_unix_nano(m * 1_000_000)) for m in ms)


TEXTS = st.one_of(st.none(), st.text(max_size=40), st.text(min_size=250, max_size=300))


@given(st.lists(TEXTS, min_size=1, max_size=8), st.data())
def test_string_tables_give_each_row_its_string(table: list[str | None], data: st.DataObject) -> None:
    index = data.draw(st.lists(st.integers(-len(table), len(table) - 1), min_size=1, max_size=30))
    got = joined([StringTable(table).take(np.array(index))])
    assert got == encoded([table[i] for i in index])


@given(st.lists(st.one_of(INT64, st.sampled_from([0, 1, 9, 10, 9999, 10**4, 10**18 - 1, 10**18])),
                min_size=1, max_size=40))
def test_prefixed_digits_are_the_number_as_text_or_nil(values: list[int]) -> None:
    got = joined(prefixed_digits(int64s(values), b"+"))
    assert got == encoded([f"+{v}" if v > 0 else None for v in values])


@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=40), st.integers(1, 9))
def test_decimals_print_every_place(values: list[int], places: int) -> None:
    def text(v: int) -> str:
        whole, fraction = divmod(abs(v), 10**places)
        return f"{'-' if v < 0 else ''}{whole}.{fraction:0{places}d}"

    assert joined(decimals(int64s(values), places)) == encoded([text(v) for v in values])


def test_six_place_decimals_are_format_micro() -> None:
    values = [0, 1, 999_999, 1_000_000, 123_456_789_012_345, -1, -1_000_001]
    assert joined(decimals(int64s(values), 6)) == encoded([format_micro(v) for v in values])


@given(st.integers(0, 40), st.integers(1, 7), st.integers(0, 2**40), st.data())
def test_rows_come_out_whole_and_in_order_at_any_pass_size(n: int, rows_per_pass: int, top: int,
                                                          data: st.DataObject) -> None:
    """Constant parts between fields, several passes, a last short pass: each row's map in order."""
    values = data.draw(st.lists(st.integers(0, top), min_size=n, max_size=n))
    texts = ["a", None, "ccc"]
    index = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    parts = [map_header(2), b"\xa1k", integers(int64s(values)), b"\xa1s", StringTable(texts).take(np.array(index, dtype=int))]
    expected = b"".join(msgspec.msgpack.encode({"k": v, "s": texts[i]}) for v, i in zip(values, index))
    assert joined(parts, rows_per_pass) == expected


def test_a_joiner_follows_fields_that_change_width_between_batches() -> None:
    joiner, out = RowJoiner(3), io.BytesIO()
    batches = [[1, 2, 3, 4], [10**12], [5, -(2**40), 7], []]
    for values in batches:
        if values:
            joiner.write([b"\x91", *prefixed_digits(int64s(values), b"+")], out)
    assert out.getvalue() == b"".join(msgspec.msgpack.encode([f"+{v}" if v > 0 else None])
                                      for values in batches for v in values)


def test_map_header_is_msgspecs_for_small_and_sixteen_bit_maps() -> None:
    for size in (0, 1, 15, 16, 17, 200, 70_000):
        record = msgspec.msgpack.encode({f"k{i}": None for i in range(size)})
        assert record.startswith(map_header(size))
        assert len(record) - len(map_header(size)) == sum(len(msgspec.msgpack.encode(f"k{i}")) + 1 for i in range(size))


# --- whole CDR records -------------------------------------------------------------------------


def packb_record(batch: CdrBatch, i: int, lookups: CdrLookups) -> bytes:
    """One CDR as docs/outputs.md defines it: msgpack-python's packb of the row as a dict."""
    def table(names: tuple[str, ...], index: int) -> str | None:
        return names[index] or None if index >= 0 else None

    def instant(ms: int) -> msgpack.Timestamp:
        return msgpack.Timestamp.from_unix_nano((lookups.epoch_ms + ms) * 1_000_000)

    def number(digits: int) -> str | None:
        return f"+{digits}" if digits > 0 else None

    row = {f: int(getattr(batch, f)[i]) for f in CDR_FIELDS}
    record = [
        row["call_id"], table(TABLES.org_ids, row["org"]), table(TABLES.user_ids, row["user"]),
        CALL_TYPE_NAMES[row["call_type"]], number(row["from_number"]), number(row["to_number"]),
        table(TABLES.countries, row["country"]), table(TABLES.zones, row["zone"]),
        instant(row["start_ms"]), instant(row["end_ms"]), (row["end_ms"] - row["start_ms"]) / MS_PER_S,
        row["billed_s"], table(TABLES.pool_names, int(used_pool(batch)[i])), row["pool_s"],
        format_micro(row["credits_micro"]), lookups.currency, END_REASON_NAMES[row["end_reason"]],
    ]
    return msgpack.packb(dict(zip(CDR_COLUMNS, record, strict=True)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cdr_records_are_packb_of_each_row_as_a_dict(seed: int) -> None:
    batch = random_batch(3_000, seed=seed)
    lookups = CdrLookups.build(TABLES, START, "USD")
    out = io.BytesIO()
    write_msgpack(batch, lookups, RowJoiner(), out)
    assert out.getvalue() == b"".join(packb_record(batch, i, lookups) for i in range(len(batch)))


@settings(max_examples=30)
@given(st.integers(0, 200), st.integers(0, 2**32))
def test_cdr_records_at_the_edges_of_every_column(n: int, seed: int) -> None:
    """Drawn batches whose columns reach their extremes: the widest numbers, money and instants."""
    rng = np.random.default_rng(seed)
    batch = random_batch(n, seed=seed)
    batch.from_number[:] = rng.choice([0, 1, 10**15, 2**63 - 1], n)
    batch.credits_micro[:] = rng.choice([0, 1, 10**6, 2**62], n)
    batch.end_ms[:] = batch.start_ms + rng.choice([0, 1, 999, 10**12], n)
    lookups = CdrLookups.build(TABLES, START, "EUR")
    out = io.BytesIO()
    write_msgpack(batch, lookups, RowJoiner(7), out)
    assert out.getvalue() == b"".join(packb_record(batch, i, lookups) for i in range(len(batch)))


def test_a_msgpack_file_builds_no_csv_tables() -> None:
    """A worker writes one format: a million users' ids are quoted for the CSV only by the
    CSV's worker, and packed only by the msgpack one's."""
    lookups = CdrLookups.build(TABLES, START, "USD")
    assert "csv" not in vars(lookups) and "packed" not in vars(lookups)
    write_msgpack(random_batch(10, seed=4), lookups, RowJoiner(), io.BytesIO())
    assert "packed" in vars(lookups) and "csv" not in vars(lookups)
