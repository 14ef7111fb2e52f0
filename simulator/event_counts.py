"""Event expectations counted on events.jsonl in one pass, whatever their number.

An org that recharges at every call writes millions of events, and a QA file
may hold thousands of `[[expect]] event = ...` tables (one per time window,
say).  Testing every line against every expectation costs their product; here
the file is read once, by polars, into a few columns of the expected kinds'
lines (instant, org, and the money and reasons the expectations ask about), and
each expectation is then a binary search of its kind and org's instants (the
lines are in time order, SPEC §4) and a vectorised test of its fields there.

The few lines a failure shows are read again, as `json.loads` reads them, so
that they are shown as the file has them.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from .scenario import Bound, EventExpectation
from .units import epoch_ms, parse_money_micro

__all__ = ["EventCounts", "count_events", "offset_ms", "window_of"]

_MONEY = ("amount", "balance")
_BLOCK_BYTES = 16 << 20  # read and parsed at a time: what a check holds beside the columns
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class EventCounts:
    """What one expectation found: `matched` lines (kind, org, instant and fields), `similar`
    lines of its kind and org, and the numbers of the lines its failure shows."""

    matched: int
    similar: int
    shown_lines: tuple[int, ...]


def offset_ms(text: str, start: datetime) -> int:
    """An output time (`2026-11-01T01:05:20.000Z`) as ms since the simulation start."""
    return (datetime.fromisoformat(text) - start) // _ONE_MS


def window_of(at: Bound | None) -> tuple[int, int] | None:
    """The instants an `at` looks near, for showing the nearest events: its range, or its one
    bound when open on one side (`low` alone: that instant; `high` alone: from the start)."""
    if at is None:
        return None
    low = at.low if at.low is not None else 0
    return low, at.high if at.high is not None else low


def count_events(expectations: Sequence[EventExpectation], path: Path, start: datetime,
                 shown_at_most: int) -> tuple[list[EventCounts], dict[int, tuple[int, dict[str, Any]]]]:
    """Count each expectation's lines in events.jsonl (at `path`, of a run that started at
    `start`) in one pass; for each that fails with an `at` or fields, find the `shown_at_most`
    lines its note shows: the first of its kind and org, or with an `at` the nearest to it
    (`window_of`), earlier lines first among equally near ones.

    Returns the counts, in the order of `expectations`, and the shown lines by number: (their
    instant in ms since the start, their object as `json.loads` reads it).
    Raises ValueError for a line that is not a JSON object.
    """
    columns = _Columns(expectations, path, start)
    counts: list[EventCounts] = []
    for e in expectations:
        group = columns.group(e)
        if group is None:
            counts.append(EventCounts(0, 0, ()))
            continue
        matched = group.matched(e)
        shown: tuple[int, ...] = ()
        if not e.count.holds(matched) and (e.at is not None or e.fields):
            shown = tuple(columns.line[group.nearest(e, shown_at_most)].tolist())
        counts.append(EventCounts(matched, len(group.rows), shown))
    wanted = sorted({line for c in counts for line in c.shown_lines})
    records = {n: (offset_ms(record["time"], start), record) for n, record in columns.lines_at(wanted)}
    return counts, records


class _Group:
    """The lines of one kind and org (or every org): `rows` (in `_Columns`) ordered by instant,
    earlier lines first among equal instants (file order for a run's file), and the instants."""

    def __init__(self, columns: "_Columns", rows: NDArray[np.intp]) -> None:
        self.columns, t = columns, columns.t[rows]
        if len(t) > 1 and not (t[1:] >= t[:-1]).all():
            order = np.argsort(t, kind="stable")
            rows, t = rows[order], t[order]
        self.rows, self.t = rows, t

    def _between(self, low: int | None, high: int | None) -> tuple[int, int]:
        """Where the lines from `low` to `high` (inclusive, None: open) start and stop."""
        first = 0 if low is None else int(np.searchsorted(self.t, low, "left"))
        stop = len(self.t) if high is None else int(np.searchsorted(self.t, high, "right"))
        return first, max(first, stop)

    def matched(self, e: EventExpectation) -> int:
        first, stop = self._between(e.at.low, e.at.high) if e.at is not None else (0, len(self.t))
        rows = self.rows[first:stop]
        ok = np.ones(len(rows), dtype=bool)
        for name, expected in e.fields.items():
            values = self.columns.fields[name][rows]
            if isinstance(expected, Bound):
                ok &= self.columns.has_money[name][rows]
                if expected.low is not None:
                    ok &= values >= expected.low
                if expected.high is not None:
                    ok &= values <= expected.high
            else:
                ok &= values == expected
        return int(ok.sum())

    def nearest(self, e: EventExpectation, count: int) -> NDArray[np.intp]:
        """The rows of the `count` lines a failure of `e` shows (see `count_events`)."""
        window = window_of(e.at)
        if window is None:
            return np.sort(self.rows)[:count]
        low, high = window
        first, stop = self._between(low, high)
        t, n = self.t, len(self.t)
        # the candidates: the first lines inside, and before and after it those as near as the
        # count-th nearest (every line of that instant: the earliest lines of it are wanted)
        before = int(np.searchsorted(t, t[first - count], "left")) if first >= count else 0
        after = int(np.searchsorted(t, t[stop + count - 1], "right")) if stop + count <= n else n
        inside = np.sort(self.rows[first:stop])[:count]
        near = np.concatenate([self.rows[before:first], inside, self.rows[stop:after]])
        near_t = self.columns.t[near]
        distance = np.maximum(np.maximum(low - near_t, near_t - high), 0)
        return near[np.lexsort((near, distance))][:count]


class _Columns:
    """The lines of the expected kinds (and orgs, if every expectation names one), read from
    events.jsonl in one pass: line number, instant (ms since the start), kind and org (indexes
    in `kinds` and `orgs`), and the fields the expectations ask about: money in micro-units
    (`has_money` False where a line has none) and texts."""

    def __init__(self, expectations: Sequence[EventExpectation], path: Path, start: datetime) -> None:
        self.path, self.start = path, start
        self.kinds = {kind: code for code, kind in enumerate(sorted({e.event for e in expectations}))}
        self.orgs: dict[str, int] = {}
        names = sorted({name for e in expectations for name in e.fields})
        named = {e.org for e in expectations}
        only_orgs = None if None in named else sorted(o for o in named if o is not None)
        self._blocks: list[tuple[int, int, int]] = []  # (first line, offset, bytes) of each read
        parts: list[dict[str, NDArray]] = []
        lines = 0
        for offset, block in _blocks(path):
            frame = _frame(path, lines, block, names)
            self._blocks.append((lines, offset, len(block)))
            lines += len(frame)
            wanted = pl.col("event").is_in(list(self.kinds))
            if only_orgs is not None:
                wanted &= pl.col("org_id").is_in(only_orgs)
            frame = frame.filter(wanted)
            if len(frame):
                parts.append(self._columns(frame, names))
        joined = {}
        for key, dtype in [("line", np.uint32), ("t", np.int64), ("kind", np.int8), ("org", np.int32),
                           *((n, np.int64 if n in _MONEY else object) for n in names),
                           *((f"{n}?", bool) for n in names if n in _MONEY)]:
            # a column at a time, its parts dropped as it is made: a run's file has millions of lines
            joined[key] = np.concatenate([p.pop(key) for p in parts]) if parts else np.zeros(0, dtype=dtype)
        self.line, self.t, self.kind, self.org = joined["line"], joined["t"], joined["kind"], joined["org"]
        self.fields = {n: joined[n] for n in names}
        self.has_money = {n: joined[f"{n}?"] for n in names if n in _MONEY}
        self._groups: dict[tuple[str, int | None], _Group] = {}

    def _columns(self, frame: pl.DataFrame, names: Sequence[str]) -> dict[str, NDArray]:
        for org in frame["org_id"].unique().to_list():
            self.orgs.setdefault(org, len(self.orgs))
        columns = {
            "line": frame["line"].to_numpy(),  # polars numbers rows in u32
            "t": self._instants(frame["time"]),
            "kind": frame["event"].replace_strict(self.kinds, return_dtype=pl.Int8).to_numpy(),
            "org": frame["org_id"].replace_strict(self.orgs, default=-1, return_dtype=pl.Int32).to_numpy(),
        }
        for name in names:
            if name in _MONEY:
                columns[name], columns[f"{name}?"] = _micro(frame[name])
            else:
                columns[name] = frame[name].to_numpy().astype(object)
        return columns

    def _instants(self, text: pl.Series) -> NDArray[np.int64]:
        """Times as `offset_ms` reads them: "YYYY-MM-DDTHH:MM" parsed once per minute (polars
        caches repeated texts), seconds and ms as integers; in Python if any is written
        another way."""
        minute = text.str.slice(0, 16).str.to_datetime("%Y-%m-%dT%H:%M", time_unit="ms", strict=False)
        ms = text.str.slice(17, 2).cast(pl.Int64, strict=False) * 1_000 + \
            text.str.slice(20, 3).cast(pl.Int64, strict=False)
        t = minute.dt.epoch("ms") + ms - epoch_ms(self.start)
        shaped = (text.str.len_bytes() == 24) & (text.str.slice(16, 1) == ":") & \
            (text.str.slice(19, 1) == ".") & text.str.ends_with("Z") & t.is_not_null()
        if shaped.all():
            return t.to_numpy().astype(np.int64)
        return np.array([offset_ms(s, self.start) for s in text], dtype=np.int64)

    def group(self, e: EventExpectation) -> _Group | None:
        """The lines of `e`'s kind and org; None when its org has none."""
        org = None if e.org is None else self.orgs.get(e.org, -1)
        if org == -1:
            return None
        group = self._groups.get((e.event, org))
        if group is None:
            of_kind = self.kind == self.kinds[e.event]
            rows = np.flatnonzero(of_kind if org is None else of_kind & (self.org == org))
            group = self._groups[(e.event, org)] = _Group(self, rows)
        return group

    def lines_at(self, wanted: Sequence[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        """The objects of these lines (sorted numbers), as `json.loads` reads them; a read of
        the blocks that hold them."""
        firsts = [first for first, _, _ in self._blocks]
        k = 0
        with open(self.path, "rb") as file:
            while k < len(wanted):
                first, offset, size = self._blocks[bisect.bisect_right(firsts, wanted[k]) - 1]
                file.seek(offset)
                lines = [line for line in file.read(size).split(b"\n") if line.strip()]
                while k < len(wanted) and wanted[k] < first + len(lines):
                    yield wanted[k], json.loads(lines[wanted[k] - first])
                    k += 1


def _blocks(path: Path) -> Iterator[tuple[int, bytes]]:
    """events.jsonl in blocks of whole lines, each with its offset in the file."""
    with open(path, "rb") as file:
        offset = 0
        while data := file.read(_BLOCK_BYTES):
            if len(data) == _BLOCK_BYTES:  # not the end: up to the last whole line
                cut = data.rfind(b"\n") + 1
                if cut:
                    data = data[:cut]
                    file.seek(offset + cut)
                else:  # a line longer than a block
                    data += file.readline()
            yield offset, data
            offset += len(data)


def _frame(path: Path, first_line: int, block: bytes, fields: Sequence[str]) -> pl.DataFrame:
    """A block's lines as text columns: time, org_id, event and these `fields` (null where a
    line has no such key), numbered from `first_line` (blank lines are none)."""
    schema = {key: pl.String for key in ("time", "org_id", "event", *fields)}
    try:
        frame = pl.read_ndjson(block, schema=schema)
    except pl.exceptions.PolarsError as err:
        raise ValueError(f"{path}: from line {first_line + 1}: not one JSON object a line ({err})") from None
    return frame.with_row_index("line", offset=first_line)


def _micro(text: pl.Series) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Money texts as micro-units (`parse_money_micro`), and which lines have one."""
    six_decimals = text.str.contains(r"^[0-9]+\.[0-9]{6}$").fill_null(False)
    values = text.str.replace(".", "", literal=True).cast(pl.Int64, strict=False).fill_null(0).to_numpy()
    values, has = values.astype(np.int64), six_decimals.to_numpy().copy()
    for row in np.flatnonzero(~has & text.is_not_null().to_numpy()):  # written some other way
        values[row], has[row] = parse_money_micro(text[int(row)]), True
    values[~has] = 0
    return values, has
