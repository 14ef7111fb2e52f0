"""events.jsonl lines built a column at a time (`simulator._event_lines`) are the bytes that
`event_line(event_record(...))` writes one event at a time: every kind, any org id (quotes,
backslashes, non-ASCII), money of any size, instants across days, months and years."""

from __future__ import annotations

import dataclasses
import io
import random
from datetime import datetime, timezone

import pytest

from rating_core import EVENT_KINDS as KINDS
from rating_core import NO_AMOUNT, NO_BALANCE, EventColumns, LedgerEvent, Tables
from simulator.outputs._event_lines import EventLines
from simulator.units import epoch_ms
from simulator.outputs import event_line, event_record

START = datetime(2027, 12, 31, 23, 59, 59, 999_000, tzinfo=timezone.utc)
ORGS = ("acme", 'say "hi"', "back\\slash", "zürich-ünïcode", "日本", "")


def random_events(rng: random.Random, n: int) -> list[LedgerEvent]:
    events = []
    for _ in range(n):
        kind = rng.choice(KINDS)
        money = [0, 1, -1, 999_999, 1_000_000, -10**15, 10**18, rng.randrange(10**13)]
        events.append(LedgerEvent(
            rng.choice([0, 1, 86_400_000, rng.randrange(10**12)]), rng.randrange(len(ORGS)), kind,
            None if kind in NO_BALANCE else rng.choice(money),
            None if kind in NO_AMOUNT else rng.choice(money),
            "card_expired" if kind == "recharge_failed" else None))
    return events


def assert_column_lines_are_per_event(orgs: tuple[str, ...], events: list[LedgerEvent], chunk_rows: int,
                                      start: datetime = START) -> None:
    """`EventLines` writes the bytes `event_line(event_record(...))` gives, event by event."""
    out = io.BytesIO()
    EventLines(orgs, epoch_ms(start), chunk_rows).write(EventColumns.from_events(events), out)
    tables = Tables(orgs, (), (), (), (), ())
    assert out.getvalue().decode() == "".join(event_line(event_record(e, tables, epoch_ms(start)))
                                              for e in events)


@pytest.mark.parametrize("chunk_rows", [1, 7, 300, 16_384])
def test_column_lines_are_the_per_event_lines(chunk_rows: int):
    tables = Tables(ORGS, (), (), (), (), ())
    for seed in range(5):
        events = random_events(random.Random(seed), 300)
        out = io.BytesIO()
        EventLines(ORGS, epoch_ms(START), chunk_rows).write(EventColumns.from_events(events), out)
        want = "".join(event_line(event_record(e, tables, epoch_ms(START))) for e in events)
        assert out.getvalue().decode() == want


@pytest.mark.parametrize("kinds", [
    ("recharge_succeeded",), ("balance_exhausted", "recharge_succeeded"), ("pools_refilled",),
    ("recharge_failed",), ("pools_refilled", "balance_exhausted"), ("credits_expired", "pools_refilled"),
])
@pytest.mark.parametrize("chunk_rows", [16, 1000])
@pytest.mark.parametrize("same_money", [False, True])
def test_chunks_of_one_org_and_few_kinds_are_the_per_event_lines(kinds: tuple[str, ...], chunk_rows: int,
                                                                  same_money: bool):
    # what a busy org's windows hold: long runs of one org, one or two kinds (constant texts),
    # often one amount (its recharges), now and then one balance (stuck at 0)
    rng = random.Random(f"{kinds}{chunk_rows}{same_money}")
    events = [e for e in random_events(rng, 5000) if e.kind in kinds][:1000]
    events = [dataclasses.replace(e, org=(i // 300) % len(ORGS)) for i, e in enumerate(events)]
    if same_money:
        events = [dataclasses.replace(e, amount_micro=None if e.amount_micro is None else -20_000,
                                      balance_micro=None if e.balance_micro is None else 10**18)
                  for e in events]
    tables = Tables(ORGS, (), (), (), (), ())
    out = io.BytesIO()
    EventLines(ORGS, epoch_ms(START), chunk_rows).write(EventColumns.from_events(events), out)
    assert out.getvalue().decode() == "".join(event_line(event_record(e, tables, epoch_ms(START)))
                                              for e in events)


def test_no_events_write_nothing():
    out = io.BytesIO()
    EventLines(ORGS, epoch_ms(START)).write(EventColumns.from_events([]), out)
    assert out.getvalue() == b""


def test_columns_give_back_the_events():
    events = random_events(random.Random(7), 200)
    assert list(EventColumns.from_events(events)) == events


def test_an_event_missing_a_field_its_kind_has_is_refused():
    for event in (LedgerEvent(0, 0, "recharge_succeeded", 5), LedgerEvent(0, 0, "balance_exhausted"),
                  LedgerEvent(0, 0, "recharge_failed", 5), LedgerEvent(0, 0, "no_such_kind")):
        with pytest.raises(ValueError):
            EventColumns.from_events([event])


@pytest.mark.parametrize("kind", ["recharge_succeeded", "credits_expired", "balance_exhausted", "recharge_failed"])
def test_chunks_whose_money_texts_are_of_one_length_are_the_per_event_lines(kind: str):
    """A recharging org's balances hover about its threshold, all as many digits: such a chunk's
    lines are laid out without a mask selection (`unmasked`); negative balances and org ids
    of one length too."""
    orgs = ("o1", "o2", "ü3")
    rng = random.Random(kind)
    for low, high in ((1_000_000, 9_999_999), (-9_999_999, -1_000_000), (10**17, 10**18 - 1)):
        events = [LedgerEvent(t * 7, rng.randrange(2) if t % 3 else 0, kind,
                              rng.randrange(low, high + 1),
                              None if kind in NO_AMOUNT else rng.randrange(low, high + 1),
                              "card_expired" if kind == "recharge_failed" else None)
                  for t in range(500)]
        tables = Tables(orgs, (), (), (), (), ())
        out = io.BytesIO()
        EventLines(orgs, epoch_ms(START), 128).write(EventColumns.from_events(events), out)
        assert out.getvalue().decode() == "".join(event_line(event_record(e, tables, epoch_ms(START)))
                                                  for e in events)


@pytest.mark.parametrize("kinds", [("recharge_succeeded",), ("recharge_succeeded", "balance_exhausted"),
                                   ("credits_expired", "pools_refilled", "recharge_failed")])
def test_money_of_every_length_is_the_per_event_text(kinds: tuple[str, ...]):
    """Non-negative money of 1 to 19 digits in one chunk (whole parts written in quads, NULs
    before the shorter ones), beside lines without the value (all NULs there)."""
    int64_max = 2**63 - 1
    rng = random.Random(str(kinds))
    events = []
    for t in range(2_000):
        kind = kinds[t % len(kinds)]
        digits = rng.randrange(1, 20)
        money = [rng.randrange(10 ** (digits - 1) - (digits == 1), min(10**digits, int64_max + 1))
                 for _ in range(2)]
        events.append(LedgerEvent(t, t % 2, kind, None if kind in NO_BALANCE else money[0],
                                  None if kind in NO_AMOUNT else money[1],
                                  "card_expired" if kind == "recharge_failed" else None))
    for chunk_rows in (50, 2_000):
        assert_column_lines_are_per_event(ORGS, events, chunk_rows)


@pytest.mark.parametrize("start, step_ms", [
    (datetime(9999, 12, 31, 23, 58, tzinfo=timezone.utc), 7),  # a table of minutes stops at the calendar's end
    (datetime(1, 1, 1, tzinfo=timezone.utc), 1),
    (START, 3 * 86_400_000 + 1),  # days apart: no table of every minute between
    (START, 61_001),
])
def test_instants_anywhere_in_the_calendar_are_the_per_event_text(start: datetime, step_ms: int):
    last_ms = (datetime(9999, 12, 31, 23, 59, 59, 999_000, tzinfo=timezone.utc) - start) // \
        (datetime(2000, 1, 1, 0, 0, 0, 1000) - datetime(2000, 1, 1))
    times = sorted({min(t * step_ms, last_ms) for t in range(3_000)})
    events = [LedgerEvent(t, 0, "balance_exhausted", t) for t in times]
    assert_column_lines_are_per_event(ORGS, events, 1_000, start)


def test_the_bytes_do_not_depend_on_the_order_chunks_come_in():
    """A writer keeps its tables of minutes and its layouts from chunk to chunk: chunks out of
    time order, and of every layout, still get their own lines."""
    rng = random.Random(11)
    parts = [EventColumns.from_events(random_events(rng, rng.randrange(1, 200))) for _ in range(40)]
    tables = Tables(ORGS, (), (), (), (), ())
    lines = EventLines(ORGS, epoch_ms(START), 64)
    for part in parts:
        out = io.BytesIO()
        lines.write(part, out)
        assert out.getvalue().decode() == "".join(event_line(event_record(e, tables, epoch_ms(START)))
                                                  for e in part)


def test_lines_wider_than_the_matrix_allows_go_through_it_in_pieces(monkeypatch: pytest.MonkeyPatch):
    """A layout's matrix holds `_MATRIX_BYTES` at most (an org id of kilobytes would make a
    chunk's gigabytes): the chunk's lines then go through it a few rows at a time."""
    from simulator.outputs import _event_lines

    monkeypatch.setattr(_event_lines, "_MATRIX_BYTES", 2_000)
    orgs = ("x" * 700, "y", "ü" * 300)
    events = random_events(random.Random(9), 400)
    events = [dataclasses.replace(e, org=e.org % len(orgs)) for e in events]
    for chunk_rows in (3, 100):
        assert_column_lines_are_per_event(orgs, events, chunk_rows)
