"""The column-at-a-time CSV encoders against the scalar formatters, and cdrs.csv against polars.

`simulator.outputs._csv_columns` exists only to be fast; what the text must be is
defined by the scalar formatters in `simulator.units._text` (and `str(int)`), and
for whole rows by the polars writer that produced cdrs.csv before it
(tests/simulator/outputs/polars_csv.py, the oracle).  Every encoder is checked on drawn values,
including the edges where the text changes length or form: powers of ten,
signs, int64's extremes, month, year and leap-day ends, strings that need
quoting.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .polars_csv import polars_csv_rows
from rating_core import CdrBatch, Tables
from simulator.outputs import _cdr_format
from simulator.outputs._byte_columns import Field, RowJoiner
from simulator.outputs._cdr_format import CSV_HEADER, CdrLookups, write_csv
from simulator.outputs._csv_columns import TextTable, decimals, instants, integers, prefixed_digits, quoted
from simulator.units import EPOCH, format_epoch_ms_iso, format_micro, format_ms
from .test_outputs import EXPECTED_CSV, ROWS, START, TABLES, make_batch, random_batch

INT64_MAX = 2**63 - 1
# every length change of the decimal text, and its neighbours
TEN_POWERS = [s * (10**k + d) for k in range(19) for d in (-1, 0, 1) for s in (1, -1) if 10**k + d <= INT64_MAX]
INT64 = st.integers(-INT64_MAX, INT64_MAX)  # -2**63 has no absolute value: see the test of its error
INTS = st.lists(st.one_of(INT64, st.sampled_from(TEN_POWERS + [0, INT64_MAX, -INT64_MAX])), max_size=40)
NON_NEGATIVE = st.lists(st.one_of(st.integers(0, INT64_MAX), st.sampled_from([v for v in TEN_POWERS if v >= 0])),
                        max_size=40)


def joined(parts: list[bytes | Field], rows_per_pass: int = 2048) -> list[str]:
    """Each row's text, from records ended by a newline part."""
    out = io.BytesIO()
    RowJoiner(rows_per_pass).write([*parts, b"\n"], out)
    return out.getvalue().decode().split("\n")[:-1]


def int64s(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


# --- numbers ---------------------------------------------------------------------------------


@given(INTS)
def test_integers_are_str_of_int(values: list[int]) -> None:
    assert joined([integers(int64s(values))]) == [str(v) for v in values]


@given(NON_NEGATIVE)
def test_non_negative_integers_need_no_sign_column(values: list[int]) -> None:
    assert joined([integers(int64s(values))]) == [str(v) for v in values]


def test_integers_read_unsigned_columns_and_refuse_what_int64_cannot_hold() -> None:
    assert joined([integers(np.array([0, 7, INT64_MAX], dtype=np.uint64))]) == ["0", "7", str(INT64_MAX)]
    with pytest.raises(ValueError):
        integers(np.array([2**63], dtype=np.uint64))
    for encode in (integers, lambda v: decimals(v, 3)):
        with pytest.raises(ValueError, match="2\\*\\*63"):
            encode(int64s([5, -(2**63)]))


@given(INTS)
def test_six_place_decimals_are_format_micro(values: list[int]) -> None:
    assert joined([decimals(int64s(values), 6)]) == [format_micro(v) for v in values]


@given(INTS)
def test_three_place_decimals_are_format_ms(values: list[int]) -> None:
    assert joined([decimals(int64s(values), 3)]) == [format_ms(v) for v in values]


@given(INTS, st.integers(1, 12))
def test_decimals_print_every_place(values: list[int], places: int) -> None:
    def text(v: int) -> str:
        whole, fraction = divmod(abs(v), 10**places)
        return f"{'-' if v < 0 else ''}{whole}.{fraction:0{places}d}"

    assert joined([decimals(int64s(values), places)]) == [text(v) for v in values]


@given(INTS, st.sampled_from([b"+", b"00", b"tel:+"]))
def test_prefixed_digits_are_the_number_after_the_prefix_or_empty(values: list[int], prefix: bytes) -> None:
    expected = [f"{prefix.decode()}{v}" if v > 0 else "" for v in values]
    assert joined([b"<", prefixed_digits(int64s(values), prefix), b">"]) == [f"<{e}>" for e in expected]


# --- instants --------------------------------------------------------------------------------

MS_PER_DAY = 86_400_000
FIRST_MS = int((datetime(1, 1, 1, tzinfo=timezone.utc) - EPOCH).total_seconds()) * 1000
LAST_MS = int((datetime(9999, 12, 31, tzinfo=timezone.utc) - EPOCH).total_seconds()) * 1000 + MS_PER_DAY - 1


def ms_at(*when: int) -> int:
    return int((datetime(*when, tzinfo=timezone.utc) - EPOCH).total_seconds() * 1000)


# the last and first millisecond around month, year and leap-day ends (1900 and 2100 have no
# 29 February, 2000 has; 1600 starts an era of the calendar's 400-year cycle), and the Unix epoch
CALENDAR_EDGES = [ms_at(*d) + s for d in ((1970, 1, 1), (2000, 2, 29), (2000, 3, 1), (1900, 3, 1), (2100, 3, 1),
                                          (2026, 12, 1), (2027, 1, 1), (2028, 2, 29), (2028, 3, 1), (1969, 12, 31),
                                          (1600, 3, 1), (1601, 1, 1))
                  for s in (-1, 0, 1, 59_999, 60_000)]


@given(st.integers(FIRST_MS + 400 * MS_PER_DAY, LAST_MS - 400 * MS_PER_DAY),
       st.lists(st.integers(-400 * MS_PER_DAY, 400 * MS_PER_DAY), max_size=40))
def test_instants_are_format_epoch_ms_iso(around: int, offsets: list[int]) -> None:
    """A batch of instants within 800 days of each other, anywhere in years 1..9999."""
    ms = [around + d for d in offsets]
    assert joined(instants(int64s(ms))) == [format_epoch_ms_iso(m) for m in ms]


@given(st.lists(st.sampled_from(CALENDAR_EDGES), min_size=1, max_size=30))
def test_instants_at_month_year_and_leap_day_ends(ms: list[int]) -> None:
    assert joined(instants(int64s(ms))) == [format_epoch_ms_iso(m) for m in ms]


def test_instants_spanning_many_days_in_one_batch() -> None:
    """130 years of days in one column: one date table for all of them."""
    rng = np.random.default_rng(3)
    ms = np.concatenate([rng.integers(0, ms_at(2100, 1, 1), 5000), int64s(CALENDAR_EDGES)])
    assert joined(instants(ms)) == [format_epoch_ms_iso(int(m)) for m in ms]


def test_instants_reach_the_ends_of_datetimes_calendar_and_no_further() -> None:
    for ms in ([FIRST_MS, FIRST_MS + 1, FIRST_MS + MS_PER_DAY], [LAST_MS - MS_PER_DAY, LAST_MS - 1, LAST_MS]):
        assert joined(instants(int64s(ms))) == [format_epoch_ms_iso(m) for m in ms]
    for outside in (FIRST_MS - 1, LAST_MS + 1):
        with pytest.raises(ValueError, match="1..9999"):
            instants(int64s([0, outside]))


# --- strings ---------------------------------------------------------------------------------

QUOTABLE = st.text(st.sampled_from('ab,"\r\n é'), max_size=12)
TEXTS = st.one_of(st.just(""), QUOTABLE, st.text(max_size=30))


def rfc4180(text: str) -> str:
    """A field as SPEC §4 promises it: quoted only if it holds a comma, a quote, CR or LF."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


@given(TEXTS)
def test_quoted_follows_rfc4180(text: str) -> None:
    assert quoted(text) == rfc4180(text).encode()


@given(st.lists(TEXTS, max_size=8), st.sampled_from([b"", b",", b"\n"]), st.booleans(), st.data())
def test_text_tables_give_each_row_its_field(table: list[str], end: bytes, right: bool,
                                             data: st.DataObject) -> None:
    """Index -1 (no value) and "" are an empty field; `end` follows each field wherever it sits."""
    index = data.draw(st.lists(st.integers(-1, len(table) - 1), min_size=1, max_size=30))
    out = io.BytesIO()
    RowJoiner(7).write([b"<", TextTable(table, end, right).take(np.array(index)), b">"], out)
    expected = "".join(f"<{rfc4180(table[i]) if i >= 0 else ''}{end.decode()}>" for i in index)
    assert out.getvalue().decode() == expected


@given(st.lists(TEXTS, min_size=1, max_size=8), st.data())
def test_text_table_fields_read_back_with_the_csv_module(table: list[str], data: st.DataObject) -> None:
    index = data.draw(st.lists(st.integers(0, len(table) - 1), min_size=1, max_size=10))
    column = TextTable(table).take(np.array(index))
    out = io.BytesIO()
    RowJoiner().write([b"x,", column, b",", column, b"\n"], out)
    rows = list(csv.reader(io.StringIO(out.getvalue().decode(), newline="")))
    assert rows == [["x", table[i], table[i]] for i in index]


# --- whole cdrs.csv rows, against the polars oracle -------------------------------------------

HOSTILE = Tables(
    org_ids=("contoso", "fab,rikam", 'say "hi"'),
    user_ids=("alice", "line\nbreak", "", "ünï cöde", "cr\rhere"),
    countries=("US", ""),
    zones=("A", "zone, with comma"),
    pool_names=("domestic:US", "dial_out", "international:GB"),
    pool_orgs=(0, 0, 1),
)


def numpy_csv(batches: list[CdrBatch], tables: Tables, currency: str = "USD", rows_per_pass: int = 2048) -> bytes:
    lookups, joiner, out = CdrLookups.build(tables, START, currency), RowJoiner(rows_per_pass), io.BytesIO()
    for batch in batches:
        write_csv(batch, lookups, joiner, out)
    return out.getvalue()


def oracle_csv(batches: list[CdrBatch], tables: Tables, currency: str = "USD") -> bytes:
    return b"".join(polars_csv_rows(b, tables, START, currency) for b in batches)


@pytest.mark.parametrize("seed", [1, 2])
def test_cdrs_csv_rows_are_polars_rows(seed: int) -> None:
    batch = random_batch(65_536, seed=seed)
    assert numpy_csv([batch], TABLES) == oracle_csv([batch], TABLES)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(0, 2**32), st.sampled_from(["USD", "EUR", "a,b"]))
def test_cdrs_csv_rows_at_the_edges_of_every_column(n: int, seed: int, currency: str) -> None:
    """Drawn batches (empty and single rows included) whose columns reach their extremes,
    negative money and durations too, which the switch never writes but the text must
    still be right for."""
    rng = np.random.default_rng(seed)
    batch = random_batch(n, seed=seed)
    batch.org[:] = rng.integers(-1, 3, n)
    batch.user[:] = rng.integers(-1, 5, n)
    batch.zone[:] = rng.integers(-1, 2, n)
    batch.from_number[:] = rng.choice([-5, 0, 1, 9, 10, 10**15, INT64_MAX], n)
    batch.call_id[:] = rng.choice([0, 1, 9_999, 10_000, 10**12, INT64_MAX], n)
    batch.credits_micro[:] = rng.choice([0, 1, 999_999, 10**6, -1, -(10**6), 2**62, -INT64_MAX, INT64_MAX], n)
    batch.end_ms[:] = batch.start_ms + rng.choice([0, 1, 999, 1_000, -1, -1_500, 10**12], n)
    assert numpy_csv([batch], HOSTILE, currency) == oracle_csv([batch], HOSTILE, currency)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 25), max_size=6), st.integers(1, 9), st.integers(0, 2**32))
def test_rows_are_whole_and_in_order_across_batches_and_joiner_passes(sizes: list[int], rows_per_pass: int,
                                                                       seed: int) -> None:
    """One joiner for batches whose fields change width and sign from one to the next."""
    batches = []
    for k, size in enumerate(sizes):
        batch = random_batch(size, seed=seed + k)
        scale = 10 ** (k * 3)
        batch.billed_s[:] = batch.billed_s * scale * (-1) ** k
        batch.credits_micro[:] = batch.credits_micro * (-1) ** k
        batches.append(batch)
    assert numpy_csv(batches, HOSTILE, rows_per_pass=rows_per_pass) == oracle_csv(batches, HOSTILE)


@pytest.mark.parametrize("rows", [1, 15, 16, 17, 40])
def test_csv_rows_do_not_depend_on_the_chunk_size(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    batch = random_batch(rows, seed=rows)
    whole = numpy_csv([batch], TABLES)
    monkeypatch.setattr(_cdr_format, "CHUNK_ROWS", 16)
    assert numpy_csv([batch], TABLES, rows_per_pass=5) == whole == oracle_csv([batch], TABLES)


def test_exact_rows_of_the_outputs_test() -> None:
    """The hand-written expected file of tests/simulator/outputs/test_outputs.py, through write_csv alone."""
    assert CSV_HEADER + numpy_csv([make_batch(ROWS)], TABLES) == EXPECTED_CSV.encode()
