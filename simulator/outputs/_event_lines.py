"""events.jsonl lines from `EventColumns`, a chunk of events at a time.

A busy org with a small recharge amount has a `recharge_succeeded` event at
almost every instant (millions an hour, ~130 bytes each); encoding each with
`json.dumps` costs microseconds, most of what the run has for a call.  The
lines are those `event_line(event_record(...))` writes (SPEC §4; `json.dumps`
spacing, UTF-8 kept), laid out in one byte matrix per chunk, a row per event:

    {"time": "TIME", "org_id": ORG, "event": "HEAD AMOUNT MID BALANCE END

HEAD, MID and END are the texts of the event's kind around its values; what is
the same on every line of the chunk (the org of a busy org's chunk, its one or
two kinds, the amount of its recharges) is constant bytes, written once per
layout and never again.  The rest is written a column at a time from tables.
A slot is as wide as its widest text in the chunk, the others padded with NUL
bytes, which JSON text never holds raw (`json.dumps` escapes every control
character): the lines are the matrix's bytes less its NULs.  A chunk of one
width, the usual one, has none and is written as it is; a few a line go with
`bytes.replace` (a `memchr` scan), more with one mask selection.
"""

from __future__ import annotations

import functools
import json
from datetime import date
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from rating_core import EVENT_KINDS as KINDS
from rating_core import EVENT_REASONS as REASONS
from rating_core import NO_AMOUNT, NO_BALANCE, EventColumns

from ..units import format_micro
from ._byte_columns import ENCODE_ROWS, column_view, divmod_by, item_view
from ._csv_columns import decimals, instants

_FAILED = KINDS.index("recharge_failed")
_MS_PER_MINUTE = 60_000
_LAST_MINUTE = ((date(9999, 12, 31) - date(1970, 1, 1)).days + 1) * 1_440 - 1  # since the Unix epoch
# NULs a line below which `bytes.replace` drops them faster than a mask selection (~8 ns a
# NUL against ~0.3 ns a byte of the whole matrix).
_REPLACE_NULS_PER_ROW = 4
_LAYOUTS_KEPT = 8  # matrices kept, each with its layout's constant bytes (~2 MB each) ...
_MATRIX_BYTES = 8 << 20  # ... and at most this: a chunk's lines go through it in pieces
_AMOUNT, _BALANCE = "amount", "balance"  # the value placeholders of `_PIECES`


def _json(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


def _pieces() -> list[tuple[bytes | str, ...]]:
    """Per head code, the line from the kind's name on: texts and value placeholders.  The head
    code is the kind's code, or len(KINDS) + reason for a recharge_failed."""
    heads: list[tuple[bytes | str, ...]] = []
    for kind in KINDS:
        name = kind.encode()
        if kind in NO_BALANCE:
            heads.append((name + b'"}\n',))
        elif kind in NO_AMOUNT:  # a recharge_failed's own lines are those with its reason
            heads.append((name + b'", "balance": "', _BALANCE, b'"}\n'))
        else:
            heads.append((name + b'", "amount": "', _AMOUNT, b'", "balance": "', _BALANCE, b'"}\n'))
    for reason in REASONS:
        heads.append((b'recharge_failed", "reason": ' + _json(reason) + b', "balance": "', _BALANCE, b'"}\n'))
    return heads


_PIECES = _pieces()
_HEAD_CODES = len(_PIECES)
_HAS_AMOUNT = np.array([_AMOUNT in p for p in _PIECES])
_HAS_BALANCE = np.array([_BALANCE in p for p in _PIECES])


def _texts_around(code: int, values: dict[str, bytes | None]) -> tuple[bytes, bytes, bytes]:
    """A head code's HEAD, MID and END texts: a value of the chunk's constants (`values`, the
    same text on every line that has it) is text, a varying one (None) ends a slot."""
    slots, slot = [b"", b"", b""], 0
    for piece in _PIECES[code]:
        if isinstance(piece, bytes):
            slots[slot] += piece
        elif values[piece] is not None:
            slots[slot] += values[piece]
        else:
            slot = 1 if piece == _AMOUNT else 2
    return slots[0], slots[1], slots[2]


def _nul_padded(entries: Sequence[bytes], width: int, right: bool = False) -> NDArray[np.void]:
    """Entries of at most `width` bytes, on the left (`right`: the right) of `width`, NULs around."""
    data = np.zeros((len(entries), width), dtype=np.uint8)
    for row, entry in zip(data, entries):
        if entry:
            place = row[width - len(entry):] if right else row[:len(entry)]
            place[:] = np.frombuffer(entry, dtype=np.uint8)
    return item_view(data) if width else np.zeros(len(entries), dtype=np.dtype((np.void, 1)))


# --- money -----------------------------------------------------------------------------------
# `format_micro` text, right-aligned: the last eight bytes are "W.FF" (the whole part's last digit,
# the point, two decimals: a thousand texts) and "FFFF" (ten thousand), before them the whole
# part's other digits in NUL-padded quads, and a blank row (no value) all NULs.


@functools.cache
def _tails() -> tuple[NDArray[np.void], NDArray[np.void]]:
    """"W.FF" by (last whole digit * 100 + first two decimals), "FFFF" by the last four
    decimals, each with a blank entry last."""
    points = [f"{i // 100}.{i % 100:02d}".encode() for i in range(1_000)] + [b""]
    quads = [f"{i:04d}".encode() for i in range(10_000)] + [b""]
    return _nul_padded(points, 4), _nul_padded(quads, 4)


@functools.cache
def _leads(width: int) -> NDArray[np.void]:
    """The leading digits of a number below 10**width, NUL-padded on the left; 0 has none."""
    return _nul_padded([b""] + [str(q).encode() for q in range(1, 10**width)], width, right=True)


@functools.cache
def _inner_quads() -> NDArray[np.void]:
    """Four digits under other digits (q zero-padded), then four leading ones (10_000 + q:
    NUL-padded, none for 0)."""
    return np.concatenate([_nul_padded([f"{q:04d}".encode() for q in range(10_000)], 4), _leads(4)])


def _digit_count(values: NDArray[np.int64]) -> int:
    """How many digits the largest of these non-negative values has (0 for 0)."""
    return len(str(int(values.max()))) if len(values) and int(values.max()) > 0 else 0


class _Money:
    """One money column of a chunk as a slot: `constant` text when every line that has a value
    has the same one (`absent` when none has), else `width` bytes of NUL-padded text a row."""

    def __init__(self, micro: NDArray[np.int64], blank: NDArray[np.bool_] | None) -> None:
        values = micro if blank is None else micro[~blank]
        self.absent = not len(values)
        self.constant: bytes | None = None
        self.width = self.nuls = 0
        if self.absent:
            return
        low, high = int(values.min()), int(values.max())
        if low == high:
            self.constant = format_micro(low).encode()
            return
        n = len(micro)
        if low >= 0:
            # "W.FF" index and the rest of the whole part from one division by 10_000
            tens = micro // 10_000
            self._quads = micro - tens * 10_000
            self._rest = tens // 1_000
            self._point = tens - self._rest * 1_000
            if blank is not None:
                self._quads[blank] = 10_000
                self._point[blank] = 1_000
                self._rest[blank] = 0
            lead = _digit_count(self._rest)
            self.width = lead + 8
            digits = sum(int(np.count_nonzero(self._rest >= 10**k)) for k in range(lead))
            self.nuls = n * lead - digits + (int(np.count_nonzero(blank)) * 8 if blank is not None else 0)
            self._text = None
        else:  # a sign to place: the CSV encoder's text, its unused bytes made NULs
            field = decimals(micro, 6)
            full = field.items.view(np.uint8).reshape(n, field.width)
            used = field.mask.view(np.uint8).reshape(n, field.width).copy()
            if blank is not None:
                used[blank] = 0
            counts = used.sum(axis=1, dtype=np.int64)
            self.width = int(counts.max())
            self.nuls = n * self.width - int(counts.sum())
            self._text = np.ascontiguousarray((full * used)[:, field.width - self.width:])

    def put(self, matrix: NDArray[np.uint8], offset: int, rows: slice) -> None:
        """Write the texts of these rows of the chunk in columns offset.. of `matrix`."""
        if self._text is not None:
            column_view(matrix, offset, self.width)[:] = item_view(self._text[rows])
            return
        lead, rest = self.width - 8, self._rest[rows]
        end = offset + lead
        while end - offset > 4:  # quads under other digits, right to left
            rest, quad = divmod_by(rest, 10_000)
            end -= 4
            column_view(matrix, end, 4)[:] = _inner_quads().take(quad + 10_000 * (rest == 0))
        if end > offset:
            column_view(matrix, offset, end - offset)[:] = _leads(end - offset).take(rest)
        points, quads = _tails()
        column_view(matrix, offset + lead, 4)[:] = points.take(self._point[rows])
        column_view(matrix, offset + lead + 4, 4)[:] = quads.take(self._quads[rows])


# --- instants --------------------------------------------------------------------------------


class _Minutes:
    """"YYYY-MM-DDTHH:MM" of the minutes since the Unix epoch a run's events fall in, a table
    of the minutes about the last chunk's kept for the next ones (events come in time order)."""

    SPAN = 1_440  # minutes a table holds at least

    def __init__(self) -> None:
        self._first = 0
        self._texts = np.zeros(0, dtype=np.dtype((np.void, 16)))

    def take(self, minute: NDArray[np.int64]) -> NDArray[np.void] | None:
        """The texts of these minutes, or None when they span more than a table is worth."""
        first, last = int(minute.min()), int(minute.max())
        if last - first >= max(self.SPAN, len(minute)):
            return None
        if first < self._first or last >= self._first + len(self._texts):
            # a day of minutes, not past the calendar's last (`instants` refuses it)
            count = max(last - first + 1, min(self.SPAN, _LAST_MINUTE + 1 - first))
            day_months, day_minutes, _ = instants(np.arange(first, first + count, dtype=np.int64) * _MS_PER_MINUTE)
            texts = np.empty((count, 16), dtype=np.uint8)
            column_view(texts, 0, 8)[:] = day_months.items
            column_view(texts, 8, 8)[:] = day_minutes.items
            self._first, self._texts = first, item_view(texts)
        return self._texts.take(minute - self._first)


@functools.cache
def _seconds() -> NDArray[np.void]:
    """":SS.mmmZ" for each millisecond of a minute."""
    return instants(np.arange(_MS_PER_MINUTE, dtype=np.int64))[2].items


# --- lines -----------------------------------------------------------------------------------


class _Layout:
    """A matrix for one chunk shape, its constant bytes written, and where its slots start;
    as many rows as a chunk has, or as `_MATRIX_BYTES` holds of lines this wide."""

    def __init__(self, segments: tuple, rows: int) -> None:
        width = sum(len(s) if isinstance(s, bytes) else s[-1] for s in segments)
        rows = max(1, min(rows, _MATRIX_BYTES // width))
        self.matrix = np.zeros((rows, width), dtype=np.uint8)
        self.offsets: dict[str, int] = {}
        offset = 0
        for segment in segments:
            if isinstance(segment, bytes):
                self.matrix[:, offset:offset + len(segment)] = np.frombuffer(segment, dtype=np.uint8)
                offset += len(segment)
            else:
                self.offsets[segment[0]] = offset
                offset += segment[-1]
        self._tables: dict[str, NDArray[np.void]] = {}

    def table(self, name: str, entries: Sequence[bytes], width: int) -> NDArray[np.void]:
        """The slot's texts, built once per layout."""
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = _nul_padded([e[:width] for e in entries], width)
        return table


class EventLines:
    """Writes events as events.jsonl lines, for one run's org ids and start, `chunk_rows`
    events at a time (`ENCODE_ROWS`; the bytes do not depend on it)."""

    def __init__(self, org_ids: Sequence[str], start_epoch_ms: int, chunk_rows: int = ENCODE_ROWS) -> None:
        self._start_epoch_ms = start_epoch_ms
        self._chunk_rows = chunk_rows
        self._orgs = [_json(o) + b', "event": "' for o in org_ids]
        self._org_lengths = np.array([len(o) for o in self._orgs], dtype=np.int64)
        self._org_tables: dict[int, NDArray[np.void]] = {}  # by width: a few a run
        self._layouts: dict[tuple, _Layout] = {}
        self._minutes = _Minutes()

    def write(self, events: EventColumns, out: BinaryIO) -> None:
        for first in range(0, len(events), self._chunk_rows):
            self._write_chunk(events.take(slice(first, first + self._chunk_rows)), out)

    def _write_chunk(self, events: EventColumns, out: BinaryIO) -> None:
        n = len(events)
        kind = events.kind.astype(np.intp)
        head = np.where(kind == _FAILED, len(KINDS) + events.reason.astype(np.intp), kind)
        money = {_AMOUNT: _Money(events.amount, _blank(_HAS_AMOUNT, head)),
                 _BALANCE: _Money(events.balance, _blank(_HAS_BALANCE, head))}
        segments, nuls = self._segments(events, head, money)
        layout = self._layout(tuple(_merged(segments)))
        offsets, epoch_ms = layout.offsets, self._start_epoch_ms + events.time_ms
        for first in range(0, n, len(layout.matrix)):  # one piece, but for very long org ids
            rows = slice(first, min(n, first + len(layout.matrix)))
            matrix = layout.matrix[:rows.stop - first]
            self._put_times(matrix, offsets["time"], epoch_ms[rows])
            for segment in segments:
                if isinstance(segment, bytes) or segment[0] == "time":
                    continue
                name, offset = segment[0], offsets[segment[0]]
                if name in money:
                    money[name].put(matrix, offset, rows)
                elif name == "org":
                    column_view(matrix, offset, segment[1])[:] = self._org_table(segment[1]).take(events.org[rows])
                else:
                    table = layout.table(name, segment[1], segment[2])
                    column_view(matrix, offset, segment[2])[:] = table.take(head[rows])
            if not nuls:
                out.write(matrix)
            elif nuls <= _REPLACE_NULS_PER_ROW * n:
                out.write(matrix.tobytes().replace(b"\0", b""))
            else:
                flat = matrix.reshape(-1)
                out.write(flat[flat != 0])

    def _segments(self, events: EventColumns, head: NDArray[np.intp],
                  money: dict[str, _Money]) -> tuple[list, int]:
        """A chunk's line as segments, constant bytes or slots (name, [texts by head code,]
        width), and how many NULs its slots hold in all."""
        per_code = np.bincount(head, minlength=_HEAD_CODES)
        codes = np.flatnonzero(per_code).tolist()
        values = {name: b"" if m.absent else m.constant for name, m in money.items()}  # None: varying
        texts = [_texts_around(c, values) for c in range(_HEAD_CODES)]
        segments: list = [b'{"time": "', ("time", 24), b'", "org_id": ']
        nuls = 0
        low_org, high_org = int(events.org.min()), int(events.org.max())
        if low_org == high_org:
            segments.append(self._orgs[low_org])
        else:
            lengths = self._org_lengths.take(events.org)
            width = int(lengths.max())
            segments.append(("org", width))
            nuls += len(events) * width - int(lengths.sum())
        for k, name in enumerate(("head", _AMOUNT, "mid", _BALANCE, "end")):
            if name in money:
                if values[name] is None:
                    segments.append((name, money[name].width))
                    nuls += money[name].nuls
                continue
            slot = tuple(texts[c][k // 2] for c in range(_HEAD_CODES))
            present = {slot[c] for c in codes}
            if len(present) == 1:
                segments.append(present.pop())
            else:
                width = max(len(t) for t in present)
                segments.append((name, slot, width))
                nuls += sum(int(per_code[c]) * (width - len(slot[c])) for c in codes)
        return segments, nuls

    def _put_times(self, matrix: NDArray[np.uint8], offset: int, epoch_ms: NDArray[np.int64]) -> None:
        minute = epoch_ms // _MS_PER_MINUTE
        texts = self._minutes.take(minute)
        if texts is None:  # sparse events: three lookups a row, no table of every minute
            for k, field in enumerate(instants(epoch_ms)):
                column_view(matrix, offset + 8 * k, 8)[:] = field.items
            return
        column_view(matrix, offset, 16)[:] = texts
        column_view(matrix, offset + 16, 8)[:] = _seconds().take(epoch_ms - minute * _MS_PER_MINUTE)

    def _org_table(self, width: int) -> NDArray[np.void]:
        """The orgs' texts in `width` bytes (a chunk's orgs are no longer: longer ones, never
        taken, are cut)."""
        table = self._org_tables.get(width)
        if table is None:
            table = self._org_tables[width] = _nul_padded([o[:width] for o in self._orgs], width)
        return table

    def _layout(self, segments: tuple) -> _Layout:
        layout = self._layouts.get(segments)
        if layout is None:
            if len(self._layouts) >= _LAYOUTS_KEPT:
                self._layouts.pop(next(iter(self._layouts)))
            layout = self._layouts[segments] = _Layout(segments, self._chunk_rows)
        return layout


def _blank(has: NDArray[np.bool_], head: NDArray[np.intp]) -> NDArray[np.bool_] | None:
    """The rows whose kind has no such value (`has` by head code), None if every row's has."""
    blank = ~has[head]
    return blank if blank.any() else None


def _merged(segments: list) -> list:
    """Adjacent constant texts as one; empty ones dropped."""
    merged: list = []
    for segment in segments:
        if isinstance(segment, bytes):
            if not segment:
                continue
            if merged and isinstance(merged[-1], bytes):
                merged[-1] += segment
                continue
        merged.append(segment)
    return merged
