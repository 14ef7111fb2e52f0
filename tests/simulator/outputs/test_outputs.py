"""cdrs.csv, cdrs.msgpack, events.jsonl and summary.json byte for byte (SPEC §4, rating-rules 9)."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rating_core import CDR_DTYPES, CDR_FIELDS, CdrBatch, CdrBuffer, EventColumns, LedgerEvent, Tables
from .polars_csv import format_epoch_ms_iso_array, format_micro_array, format_ms_iso_array
from simulator.units import (
    epoch_ms,
    format_epoch_ms_iso,
    format_micro,
    format_ms,
    format_ms_iso,
)
from simulator.outputs import _cdr_format
from rating_core import group_sum
from simulator.outputs._summary import _money_texts, summary_text
from simulator.outputs import CDR_COLUMNS, CdrWriter, EventWriter, SummaryBuilder, event_record

# A start one minute before New Year, so rows cross a day, a month and a year.
START = datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)

TABLES = Tables(
    org_ids=("contoso", "fab,rikam"),
    user_ids=("alice", 'bob "the builder"', "carol"),
    countries=("US", "GB"),
    zones=("A", "B"),
    pool_names=("domestic:US", "dial_out", "international:GB"),
    pool_orgs=(0, 0, 1),
)

# call_id, org, user, call_type, from, to, country, zone, start_ms, end_ms, billed_s, pool, pool_s,
# credits_micro, end_reason -- in output order (end_ms, call_id)
ROWS = [
    (3, 0, 0, 0, 0, 999, -1, -1, 5, 5, 0, -1, 0, 0, 4),  # unroutable outbound
    (4, 0, 1, 2, 0, 442071234567, 1, 1, 7, 7, 0, -1, 0, 0, 3),  # not licensed, keeps type and route
    (5, 0, -1, 4, 442071234567, 18005550100, -1, -1, 9, 9, 0, -1, 0, 0, 2),  # toll-free blocked
    (1, 0, 0, 1, 12125550199, 12125550100, 0, 0, 0, 61_500, 120, 0, 120, 0, 0),  # across the year
    (2, 1, 2, 2, 0, 12125550100, 0, 0, 1_000, 121_000, 120, 2, 60, 1, 1),  # 1 micro of credits
    (7, 1, -1, 4, 33142685300, 18005550199, -1, -1, 100_000, 159_999, 60, -1, 0, 1_000_000, 0),
    # pool index set but 0 s taken: no pool shown
    (6, 0, 1, 3, 0, 12125550123, 0, 0, 100, 3_600_100, 3600, 1, 0, 123_456_789_012_345, 5),
]

HEADER = (
    "call_id,org_id,user_id,call_type,from_number,to_number,destination_country,zone,"
    "start_time,end_time,duration_s,billed_s,pool,pool_s,credits_charged,currency,end_reason\n"
)

EXPECTED_CSV = HEADER + (
    "3,contoso,alice,outbound,,+999,,,2026-12-31T23:59:00.005Z,2026-12-31T23:59:00.005Z,"
    "0.000,0,,0,0.000000,USD,unroutable\n"
    '4,contoso,"bob ""the builder""",international,,+442071234567,GB,B,'
    "2026-12-31T23:59:00.007Z,2026-12-31T23:59:00.007Z,0.000,0,,0,0.000000,USD,not_licensed\n"
    "5,contoso,,toll_free,+442071234567,+18005550100,,,2026-12-31T23:59:00.009Z,"
    "2026-12-31T23:59:00.009Z,0.000,0,,0,0.000000,USD,blocked_no_balance\n"
    "1,contoso,alice,domestic,+12125550199,+12125550100,US,A,2026-12-31T23:59:00.000Z,"
    "2027-01-01T00:00:01.500Z,61.500,120,domestic:US,120,0.000000,USD,hangup\n"
    '2,"fab,rikam",carol,international,,+12125550100,US,A,2026-12-31T23:59:01.000Z,'
    "2027-01-01T00:01:01.000Z,120.000,120,international:GB,60,0.000001,USD,dropped_balance_exhausted\n"
    '7,"fab,rikam",,toll_free,+33142685300,+18005550199,,,2027-01-01T00:00:40.000Z,'
    "2027-01-01T00:01:39.999Z,59.999,60,,0,1.000000,USD,hangup\n"
    '6,contoso,"bob ""the builder""",conference_dial_out,,+12125550123,US,A,2026-12-31T23:59:00.100Z,'
    "2027-01-01T00:59:00.100Z,3600.000,3600,,0,123456789.012345,USD,simulation_end\n"
)

_DTYPES = CDR_DTYPES


def make_batch(rows: list[tuple[int, ...]]) -> CdrBatch:
    columns = list(zip(*rows)) if rows else [()] * len(_DTYPES)
    return CdrBatch(*(np.array(c, dtype=dt) for c, dt in zip(columns, _DTYPES)))


def write_cdrs(out: Path, batches: list[CdrBatch], currency: str = "USD", buffer_rows: int = 1) -> None:
    """buffer_rows=1 formats every batch on its own, as a busy run with large batches would."""
    with CdrWriter(out, TABLES, START, currency, buffer_rows=buffer_rows) as writer:
        for batch in batches:
            writer.write(batch)


def _columns(batch: CdrBatch) -> list[list[int]]:
    return [getattr(batch, f).tolist() for f in CDR_FIELDS]


def test_cdr_buffer_gives_back_what_was_appended_in_order_and_starts_over() -> None:
    # tiny capacity: the columns grow (and are copied) several times
    buffer = CdrBuffer(capacity=2)
    parts = [make_batch(ROWS[:3]), make_batch([]), make_batch(ROWS[3:4]), make_batch(ROWS[4:])]
    for part in parts:
        buffer.append(part)
    assert len(buffer) == len(ROWS)
    taken = buffer.take()
    assert _columns(taken) == _columns(CdrBatch.concat(parts))
    assert [getattr(taken, f).dtype for f in CDR_FIELDS] == list(CDR_DTYPES)
    assert len(buffer) == 0 and len(buffer.take()) == 0
    buffer.append(make_batch(ROWS[5:]))  # the batch taken above is not overwritten
    assert _columns(buffer.take()) == _columns(make_batch(ROWS[5:]))
    assert _columns(taken) == _columns(make_batch(ROWS))


# --- formatting helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0.000000"), (1, "0.000001"), (999_999, "0.999999"), (1_000_000, "1.000000"),
        (-1, "-0.000001"), (2**63 - 1, "9223372036854.775807"),
    ],
)
def test_format_micro_is_exact_decimal_text(micro: int, text: str) -> None:
    assert format_micro(micro) == text
    assert format_micro_array(np.array([micro], dtype=np.int64)).to_list() == [text]


def test_format_micro_array_matches_decimal_arithmetic() -> None:
    rng = random.Random(7)
    values = [rng.randrange(-(2**63), 2**63) for _ in range(2000)]
    values += [rng.randrange(0, 10**7) for _ in range(2000)]
    expected = [f"{Decimal(v).scaleb(-6):.6f}" for v in values]
    assert [format_micro(v) for v in values] == expected
    assert format_micro_array(np.array(values, dtype=np.int64)).to_list() == expected


def test_format_ms_prints_three_decimals() -> None:
    assert [format_ms(v) for v in (0, 1, 1_500, 3_600_000)] == ["0.000", "0.001", "1.500", "3600.000"]


def test_iso_times_are_utc_with_milliseconds() -> None:
    assert format_ms_iso(START, 0) == "2026-12-31T23:59:00.000Z"
    assert format_ms_iso(START, 60_001) == "2027-01-01T00:00:00.001Z"
    leap = datetime(2028, 2, 28, 23, 59, 59, 999_000, tzinfo=timezone.utc)
    assert format_ms_iso(leap, 1) == "2028-02-29T00:00:00.000Z"


def test_vectorised_iso_times_match_scalar_across_days_months_years() -> None:
    rng = random.Random(3)
    values = [rng.randrange(0, 4_102_444_800_000) for _ in range(3000)]  # 1970 .. 2100
    values += [1_798_761_599_999, 1_798_761_600_000, 951_782_400_000]  # New Year 2027, 2000-02-29
    expected = [
        (datetime(1970, 1, 1) + timedelta(milliseconds=v)).isoformat(timespec="milliseconds") + "Z"
        for v in values
    ]
    assert [format_epoch_ms_iso(v) for v in values] == expected
    assert format_epoch_ms_iso_array(np.array(values, dtype=np.int64)).to_list() == expected
    assert format_ms_iso_array(START, np.array([0, 60_000])).to_list() == [
        "2026-12-31T23:59:00.000Z",
        "2027-01-01T00:00:00.000Z",
    ]


def test_start_must_be_aware_and_whole_milliseconds() -> None:
    assert epoch_ms(START) == 1_798_761_540_000
    with pytest.raises(ValueError):
        epoch_ms(datetime(2026, 11, 1))
    with pytest.raises(ValueError):
        epoch_ms(datetime(2026, 11, 1, 0, 0, 0, 500, tzinfo=timezone.utc))


# --- cdrs.csv ---------------------------------------------------------------------------------


def test_cdrs_csv_exact_bytes(tmp_path: Path) -> None:
    write_cdrs(tmp_path, [make_batch(ROWS)])
    assert (tmp_path / "cdrs.csv").read_bytes() == EXPECTED_CSV.encode()


def test_cdrs_csv_is_rfc4180_readable(tmp_path: Path) -> None:
    write_cdrs(tmp_path, [make_batch(ROWS)])
    with open(tmp_path / "cdrs.csv", newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    assert [r["org_id"] for r in records][-3:] == ["fab,rikam", "fab,rikam", "contoso"]
    assert records[1]["user_id"] == 'bob "the builder"'
    assert all(len(r) == len(CDR_COLUMNS) for r in records)


@pytest.mark.parametrize("buffer_rows", [1, 3, 10_000])
def test_batching_does_not_change_the_bytes(tmp_path: Path, buffer_rows: int) -> None:
    whole, pieces = tmp_path / "whole", tmp_path / "pieces"
    write_cdrs(whole, [make_batch(ROWS)])
    batches = [make_batch(ROWS[:2]), make_batch([]), make_batch(ROWS[2:3]), make_batch(ROWS[3:])]
    write_cdrs(pieces, batches, buffer_rows=buffer_rows)
    for name in ("cdrs.csv", "cdrs.msgpack"):
        assert (whole / name).read_bytes() == (pieces / name).read_bytes()


def test_flush_writes_buffered_rows(tmp_path: Path) -> None:
    writer = CdrWriter(tmp_path, TABLES, START, "USD", buffer_rows=1_000)
    writer.write(make_batch(ROWS))
    assert (tmp_path / "cdrs.csv").read_bytes() == HEADER.encode()  # no row yet
    writer.flush()
    assert (tmp_path / "cdrs.csv").read_bytes() == EXPECTED_CSV.encode()
    assert writer.rows_written == len(ROWS)
    writer.close()
    writer.close()
    assert (tmp_path / "cdrs.csv").read_bytes() == EXPECTED_CSV.encode()


def test_empty_run_has_header_only_csv_and_empty_msgpack(tmp_path: Path) -> None:
    write_cdrs(tmp_path, [])
    assert (tmp_path / "cdrs.csv").read_bytes() == HEADER.encode()
    assert (tmp_path / "cdrs.msgpack").read_bytes() == b""


def test_pool_is_empty_when_no_pool_seconds_were_used(tmp_path: Path) -> None:
    # Row 6 carries pool index 1 (dial_out) but pool_s 0: rule 9 says empty.
    write_cdrs(tmp_path, [make_batch(ROWS[-1:])])
    with open(tmp_path / "cdrs.csv", newline="", encoding="utf-8") as f:
        (row,) = csv.DictReader(f)
    assert row["pool"] == "" and row["pool_s"] == "0"


def test_currency_is_written_on_every_row(tmp_path: Path) -> None:
    write_cdrs(tmp_path, [make_batch(ROWS[:1])], currency="EUR")
    assert (tmp_path / "cdrs.csv").read_text().splitlines()[1].split(",")[15] == "EUR"


def test_writer_can_skip_msgpack(tmp_path: Path) -> None:
    with CdrWriter(tmp_path, TABLES, START, "USD", write_msgpack=False) as writer:
        writer.write(make_batch(ROWS))
    assert (tmp_path / "cdrs.csv").read_bytes() == EXPECTED_CSV.encode()
    assert not (tmp_path / "cdrs.msgpack").exists()


# --- cdrs.msgpack -----------------------------------------------------------------------------


def read_msgpack(path: Path) -> list[dict]:
    with open(path, "rb") as f:
        return list(msgpack.Unpacker(f, timestamp=3))


def test_msgpack_records_have_native_types(tmp_path: Path) -> None:
    write_cdrs(tmp_path, [make_batch(ROWS)])
    records = read_msgpack(tmp_path / "cdrs.msgpack")
    assert len(records) == len(ROWS)
    first, year_crossing = records[0], records[3]
    assert list(first) == list(CDR_COLUMNS)
    assert first["user_id"] == "alice" and first["from_number"] is None and first["pool"] is None
    assert first["destination_country"] is None and first["zone"] is None
    assert year_crossing["call_id"] == 1 and year_crossing["billed_s"] == 120
    assert year_crossing["end_time"] == datetime(2027, 1, 1, 0, 0, 1, 500_000, tzinfo=timezone.utc)
    assert year_crossing["duration_s"] == 61.5
    assert records[-1]["credits_charged"] == "123456789.012345"


def csv_text(value: object) -> str:
    """A msgpack value as the CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def test_msgpack_round_trip_equals_csv(tmp_path: Path) -> None:
    write_cdrs(tmp_path, [make_batch(ROWS)])
    with open(tmp_path / "cdrs.csv", newline="", encoding="utf-8") as f:
        csv_rows = list(csv.DictReader(f))
    records = read_msgpack(tmp_path / "cdrs.msgpack")
    assert [{k: csv_text(v) for k, v in r.items()} for r in records] == csv_rows


# --- events.jsonl ----------------------------------------------------------------------------


EVENTS = [
    LedgerEvent(0, 0, "credits_purchased", balance_micro=100_000_000, amount_micro=100_000_000),
    LedgerEvent(60_000, 0, "pools_refilled"),
    LedgerEvent(61_000, 1, "balance_exhausted", balance_micro=1),
    LedgerEvent(61_000, 1, "recharge_failed", balance_micro=1, reason="card_expired"),
    LedgerEvent(5_100_000, 0, "recharge_succeeded", balance_micro=5_480_000, amount_micro=5_000_000),
    LedgerEvent(5_200_000, 0, "credits_expired", balance_micro=0, amount_micro=480_000),
]

EXPECTED_EVENTS = (
    '{"time": "2026-12-31T23:59:00.000Z", "org_id": "contoso", "event": "credits_purchased", '
    '"amount": "100.000000", "balance": "100.000000"}\n'
    '{"time": "2027-01-01T00:00:00.000Z", "org_id": "contoso", "event": "pools_refilled"}\n'
    '{"time": "2027-01-01T00:00:01.000Z", "org_id": "fab,rikam", "event": "balance_exhausted", '
    '"balance": "0.000001"}\n'
    '{"time": "2027-01-01T00:00:01.000Z", "org_id": "fab,rikam", "event": "recharge_failed", '
    '"reason": "card_expired", "balance": "0.000001"}\n'
    '{"time": "2027-01-01T01:24:00.000Z", "org_id": "contoso", "event": "recharge_succeeded", '
    '"amount": "5.000000", "balance": "5.480000"}\n'
    '{"time": "2027-01-01T01:25:40.000Z", "org_id": "contoso", "event": "credits_expired", '
    '"amount": "0.480000", "balance": "0.000000"}\n'
)


def test_events_jsonl_exact_lines_for_every_kind(tmp_path: Path) -> None:
    with EventWriter(tmp_path, TABLES, START) as writer:
        writer.write(EVENTS[:2])
        writer.write([])
        writer.write(EVENTS[2:])
    assert (tmp_path / "events.jsonl").read_text(encoding="utf-8") == EXPECTED_EVENTS


def test_empty_run_has_empty_events_file(tmp_path: Path) -> None:
    EventWriter(tmp_path, TABLES, START).close()
    assert (tmp_path / "events.jsonl").read_bytes() == b""


def test_event_missing_its_kinds_field_is_a_bug() -> None:
    with pytest.raises(ValueError, match="amount_micro"):
        event_record(LedgerEvent(0, 0, "credits_purchased", balance_micro=1), TABLES, 0)
    with pytest.raises(ValueError, match="unknown"):
        event_record(LedgerEvent(0, 0, "credits_stolen"), TABLES, 0)


# --- summary.json ----------------------------------------------------------------------------


def build_summary(batches: list[CdrBatch]) -> dict:
    builder = SummaryBuilder(TABLES, "USD", "new-year", 7, start=START)
    for batch in batches:
        builder.add_cdrs(batch)
    builder.add_events(EVENTS)
    return builder.finish([5_000_000, 1], [0, 60, 3540], complete=False, simulated_until_ms=3_600_100)


def test_summary_counts_per_org_and_total() -> None:
    summary = build_summary([make_batch(ROWS)])
    assert list(summary) == [
        "scenario", "seed", "currency", "start", "simulated_until", "complete", "orgs", "total",
    ]
    assert summary["simulated_until"] == "2027-01-01T00:59:00.100Z"
    assert summary["complete"] is False
    assert list(summary["orgs"]) == ["contoso", "fab,rikam"]
    assert summary["orgs"]["contoso"] == {
        "calls": 5,
        "calls_by_end_reason": {
            "hangup": 1, "dropped_balance_exhausted": 0, "blocked_no_balance": 1,
            "not_licensed": 1, "unroutable": 1, "simulation_end": 1,
        },
        "calls_by_call_type": {
            "outbound": 1, "domestic": 1, "international": 1, "conference_dial_out": 1, "toll_free": 1,
        },
        "billed_s": 3720,
        "pool_s_by_pool": {"domestic:US": 120, "dial_out": 0},
        "pool_remaining_s": {"domestic:US": 0, "dial_out": 60},
        "credits_charged": "123456789.012345",
        "recharges_succeeded": 1,
        "recharges_failed": 0,
        "credits_purchased": "105.000000",
        "credits_expired": "0.480000",
        "final_balance": "5.000000",
    }
    total = summary["total"]
    assert total["calls"] == len(ROWS)
    assert total["calls_by_end_reason"]["hangup"] == 2
    assert total["calls_by_call_type"]["toll_free"] == 2
    assert total["billed_s"] == 3900
    assert total["pool_s_by_pool"] == {"domestic:US": 120, "dial_out": 0, "international:GB": 60}
    assert total["credits_charged"] == "123456790.012346"
    assert total["recharges_failed"] == 1
    assert total["final_balance"] == "5.000001"


def test_summary_does_not_depend_on_batching() -> None:
    assert build_summary([make_batch(ROWS)]) == build_summary(
        [make_batch(ROWS[:3]), make_batch([]), make_batch(ROWS[3:])]
    )


@pytest.mark.parametrize("largest", [0, 1, 10**6, 2**53 // 1000, 2**53 // 1000 + 1, 2**53, 2**62])
def test_summary_sums_are_exact_int64_whatever_the_size(largest: int) -> None:
    # float64 weights add integers exactly only below 2**53: the sums switch to np.add.at there
    rng = np.random.default_rng(largest)
    values = rng.integers(-largest, largest, 1000, endpoint=True)
    values[:2] = [largest, -largest]
    if largest < 2**62:
        values[2:10] = largest  # a run of the largest: a partial sum of 8 * largest
    keys = rng.integers(0, 3, 1000)
    want = np.zeros(4, dtype=np.int64)
    np.add.at(want, keys, values)
    got = group_sum(keys, values, 4)
    assert got.dtype == np.int64 and got.tolist() == want.tolist()
    assert group_sum(keys[:0], values[:0], 4).tolist() == [0, 0, 0, 0]
    keys[0] = -1  # "no pool" is the last key, as np.add.at wraps it
    want = np.zeros(4, dtype=np.int64)
    np.add.at(want, keys, values)
    assert group_sum(keys, values, 4).tolist() == want.tolist()


def test_summary_pools_by_name_add_up_across_orgs() -> None:
    tables = Tables(("a", "b"), ("u", "v"), ("US",), ("A",), ("domestic:US", "domestic:US"), (0, 1))
    builder = SummaryBuilder(tables, "USD", "s", 1, start=START)
    batch = make_batch([ROWS[3], (8, 1, 1, 1, 0, 1, 0, 0, 0, 60_000, 60, 1, 60, 0, 0)])
    builder.add_cdrs(batch)
    summary = builder.finish([0, 0], None, True, 60_000)
    assert summary["orgs"]["b"]["pool_s_by_pool"] == {"domestic:US": 60}
    assert summary["total"]["pool_s_by_pool"] == {"domestic:US": 180}
    assert "pool_remaining_s" not in summary["total"]


def test_summary_json_file(tmp_path: Path) -> None:
    summary = build_summary([make_batch(ROWS)])
    SummaryBuilder.write(tmp_path, summary)
    text = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "scenario": "new-year",')
    assert json.loads(text) == summary


_JSON_TEXT = st.text(st.characters(exclude_categories=("Cs",)))  # any str a TOML file can hold
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | _JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_JSON_TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_JSON_TEXT, _JSON_VALUES, max_size=6))
def test_summary_text_is_json_dumps_indented(document: dict) -> None:
    # summary.json's bytes are those of json.dumps(indent=2, ensure_ascii=False), whoever writes them
    assert summary_text(document) == json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def test_summary_of_many_orgs_and_pools_is_that_of_each_org() -> None:
    # every org's section from its own counters, each with its own pool, whatever their number
    n = 300
    tables = Tables(tuple(f"org{o}" for o in range(n)), ("u",), ("US",), ("A",),
                    tuple(f"domestic:{o % 7}" for o in range(n)), tuple(range(n)))
    rows = [(o + 1, o, 0, 1, 0, 12125550100, 0, 0, 0, 60_000, 60, o, o + 60, 1_000 * o, 0) for o in range(n)]
    builder = SummaryBuilder(tables, "USD", "s", 1, start=START)
    builder.add_cdrs(make_batch(rows))
    summary = builder.finish(list(range(n)), list(range(n)), True, 60_000)
    for o in (0, 1, 150, n - 1):
        section = summary["orgs"][f"org{o}"]
        assert section["calls"] == 1 and section["calls_by_end_reason"]["hangup"] == 1
        assert section["pool_s_by_pool"] == {f"domestic:{o % 7}": o + 60}
        assert section["pool_remaining_s"] == {f"domestic:{o % 7}": o}
        assert section["credits_charged"] == format_micro(1_000 * o)
        assert section["final_balance"] == format_micro(o)
    assert summary["total"]["calls"] == n
    assert summary["total"]["pool_s_by_pool"]["domestic:0"] == sum(o + 60 for o in range(0, n, 7))


def test_summary_rejects_balances_for_the_wrong_number_of_orgs() -> None:
    with pytest.raises(ValueError):
        SummaryBuilder(TABLES, "USD", "s", 1, start=START).finish([0], None, True, 0)


def test_msgpack_reading_recipe_from_docs(tmp_path: Path) -> None:
    write_cdrs(tmp_path, [make_batch(ROWS)])
    with open(tmp_path / "cdrs.msgpack", "rb") as f:
        unpacker = msgpack.Unpacker(f, timestamp=3)  # Timestamps -> aware UTC datetimes
        ids = [record["call_id"] for record in unpacker]
    assert ids == [r[0] for r in ROWS]
    buf = io.BytesIO((tmp_path / "cdrs.msgpack").read_bytes())
    raw = list(msgpack.Unpacker(buf))  # default: msgpack.Timestamp objects
    assert raw[0]["start_time"] == msgpack.Timestamp(1_798_761_540, 5_000_000)


def random_batch(n: int, seed: int) -> CdrBatch:
    rng = np.random.default_rng(seed)
    end = np.sort(rng.integers(0, 40 * 86_400_000, n))
    start = np.maximum(end - rng.integers(0, 7_200_000, n), 0)
    pool = rng.integers(-1, 3, n)
    rows = list(zip(
        np.arange(1, n + 1), rng.integers(0, 2, n), rng.integers(-1, 3, n), rng.integers(0, 5, n),
        np.where(rng.random(n) < 0.5, 0, rng.integers(1, 10**15, n)), rng.integers(1, 10**15, n),
        rng.integers(-1, 2, n), rng.integers(-1, 2, n), start, end, rng.integers(0, 7200, n),
        pool, np.where(pool >= 0, rng.integers(0, 7200, n), 0), rng.integers(0, 10**12, n),
        rng.integers(0, 6, n),
    ))
    return make_batch(rows)


def test_large_batch_msgpack_matches_csv_across_chunks(tmp_path: Path) -> None:
    batch = random_batch(40_000, seed=11)  # more than two msgpack chunks
    write_cdrs(tmp_path, [batch.take(slice(0, 25_000)), batch.take(slice(25_000, None))])
    with open(tmp_path / "cdrs.csv", newline="", encoding="utf-8") as f:
        csv_rows = list(csv.DictReader(f))
    records = read_msgpack(tmp_path / "cdrs.msgpack")
    assert len(records) == len(csv_rows) == len(batch)
    assert [{k: csv_text(v) for k, v in r.items()} for r in records] == csv_rows
    micro = batch.credits_micro.tolist()
    assert [r["credits_charged"] for r in csv_rows] == [format_micro(m) for m in micro]


@pytest.mark.parametrize("rows", [1, 15, 16, 17, 40])
def test_msgpack_records_do_not_depend_on_the_chunk_size(tmp_path: Path, monkeypatch, rows: int) -> None:
    """Rows split across encoding chunks come out whole, once each, in order: the same bytes."""
    batch = random_batch(rows, seed=rows)
    write_cdrs(tmp_path / "whole", [batch])
    monkeypatch.setattr(_cdr_format, "CHUNK_ROWS", 16)
    write_cdrs(tmp_path / "chunked", [batch])
    chunked = (tmp_path / "chunked" / "cdrs.msgpack").read_bytes()
    assert chunked == (tmp_path / "whole" / "cdrs.msgpack").read_bytes()
    assert [r["call_id"] for r in read_msgpack(tmp_path / "chunked" / "cdrs.msgpack")] == batch.call_id.tolist()


def test_table_strings_are_quoted_only_when_needed(tmp_path: Path) -> None:
    tables = Tables(("plain", "ünï cöde", 'line\nbreak'), ("u",), ("US",), ("",), ("p",), (0,))
    rows = [(i + 1, i, 0, 1, 0, 1, 0, 0, 0, 0, 0, -1, 0, 0, 0) for i in range(3)]
    with CdrWriter(tmp_path, tables, START, "USD") as writer:
        writer.write(make_batch(rows))
    text = (tmp_path / "cdrs.csv").read_text(encoding="utf-8")
    assert ",plain,u," in text and ",ünï cöde,u," in text and ',"line\nbreak",u,' in text
    with open(tmp_path / "cdrs.csv", newline="", encoding="utf-8") as f:
        records = list(csv.DictReader(f))
    assert [r["org_id"] for r in records] == ["plain", "ünï cöde", "line\nbreak"]
    assert {r["zone"] for r in records} == {""}  # an empty table string is an empty field
    assert [r["zone"] for r in read_msgpack(tmp_path / "cdrs.msgpack")] == [None] * 3


def test_summary_event_figures_are_those_of_one_event_at_a_time() -> None:
    """Purchases, recharges and expiries per org, from events of every kind and several orgs
    in batches of any size, are the sums an event-by-event tally gives."""
    from .test_event_lines import ORGS, random_events

    rng = random.Random(5)
    # money that an int64 sum holds (some big enough for the exact path of `group_sum`)
    events = [e for e in random_events(rng, 3_000) if e.amount_micro is None or 0 <= e.amount_micro < 10**15]
    tables = Tables(ORGS, (), (), (), (), ())
    builder = SummaryBuilder(tables, "USD", "s", 1, start=START)
    for first in range(0, len(events), 700):
        builder.add_events(EventColumns.from_events(events[first:first + 700]))
    counts = builder.counts()
    for org in range(len(ORGS)):
        mine = [e for e in events if e.org == org]
        assert counts.recharges_succeeded[org] == sum(e.kind == "recharge_succeeded" for e in mine)
        assert counts.recharges_failed[org] == sum(e.kind == "recharge_failed" for e in mine)
        assert counts.credits_purchased[org] == sum(
            e.amount_micro for e in mine if e.kind in ("credits_purchased", "recharge_succeeded"))
        assert counts.credits_expired[org] == sum(e.amount_micro for e in mine if e.kind == "credits_expired")


@given(st.lists(st.integers(-(2**63) + 1, 2**63 - 1), max_size=50))
def test_summary_money_made_a_column_at_a_time_is_format_micro(amounts: list[int]) -> None:
    assert _money_texts(np.array(amounts, dtype=np.int64)) == [format_micro(a) for a in amounts]
