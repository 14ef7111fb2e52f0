"""events.jsonl lines from `EventColumns`, a column at a time.

A busy org with a small recharge amount has a `recharge_succeeded` event at
almost every instant (a million an hour); encoding each with `json.dumps`
costs microseconds, most of what the run has for a call.  The lines are
those `event_line(event_record(...))` writes (SPEC §4; `json.dumps` spacing,
UTF-8 kept), built from byte columns like cdrs.csv (`_byte_columns`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from rating_core import EVENT_KINDS as KINDS
from rating_core import EVENT_REASONS as REASONS
from rating_core import NO_AMOUNT, NO_BALANCE, EventColumns

from ._byte_columns import ENCODE_ROWS, ByteTable, Field, RowJoiner, used
from ._csv_columns import decimals, instants

_FAILED = KINDS.index("recharge_failed")


def _json(text: str) -> bytes:
    return json.dumps(text, ensure_ascii=False).encode()


def _heads() -> list[bytes]:
    """The text from the kind's name to the first value's opening quote, per kind code, then
    per reason of recharge_failed (code len(KINDS) + reason)."""
    heads = []
    for kind in KINDS:
        if kind == "pools_refilled":
            heads.append(b'pools_refilled"}\n')
        elif kind in NO_AMOUNT:
            heads.append(kind.encode() + b'", "balance": "')
        else:
            heads.append(kind.encode() + b'", "amount": "')
    return heads + [b'recharge_failed", "reason": ' + _json(r) + b', "balance": "' for r in REASONS]


# Per head code (`_heads`): the kind's name, after the amount (the balance's key, for the kinds
# with both) and after the balance.
_HEAD_KINDS = [*KINDS, *["recharge_failed"] * len(REASONS)]
_MIDS = [b"" if kind in NO_AMOUNT else b'", "balance": "' for kind in _HEAD_KINDS]
_ENDS = [b"" if kind in NO_BALANCE else b'"}\n' for kind in _HEAD_KINDS]


class _Layout:
    """The parts of the lines of a chunk whose events have these head codes (`_heads`).

    One code: its texts are constant bytes, written once per shape by `RowJoiner`, and a
    value its kind lacks is no part at all.  Several: tables of only theirs, as narrow as
    the longest of them, taken per row by `remap[head]`.
    """

    def __init__(self, codes: Sequence[int]) -> None:
        kinds = [_HEAD_KINDS[c] for c in codes]
        self.amount = any(k not in NO_AMOUNT for k in kinds)  # some line has an amount
        self.balance = any(k not in NO_BALANCE for k in kinds)
        self.blank_amount = np.array([_HEAD_KINDS[c] in NO_AMOUNT for c in range(len(_HEAD_KINDS))])
        self.blank_balance = np.array([_HEAD_KINDS[c] in NO_BALANCE for c in range(len(_HEAD_KINDS))])
        texts = [[table[c] for c in codes] for table in (_heads(), _MIDS, _ENDS)]
        self.constant = len(codes) == 1
        if self.constant:
            self.head, self.mid, self.end = (t[0] for t in texts)
        else:
            self.remap = np.zeros(len(_HEAD_KINDS), dtype=np.intp)
            self.remap[list(codes)] = np.arange(len(codes))
            self.heads, self.mids, self.ends = (ByteTable(t) for t in texts)
        self.mixed_amount = self.amount and any(k in NO_AMOUNT for k in kinds)
        self.mixed_balance = self.balance and any(k in NO_BALANCE for k in kinds)


class EventLines:
    """Writes events as events.jsonl lines, for one run's org ids and start, `chunk_rows`
    events encoded at a time (`ENCODE_ROWS`; the bytes do not depend on it).

    A busy org's events come in long chunks of one org and one or two kinds (a recharge at
    every instant, now and then a `balance_exhausted`): what is the same on every line of
    a chunk is written as constant bytes, never taken row by row (`_Layout`).
    """

    def __init__(self, org_ids: Sequence[str], start_epoch_ms: int, chunk_rows: int = ENCODE_ROWS) -> None:
        self._start_epoch_ms = start_epoch_ms
        self._chunk_rows = chunk_rows
        self._org_texts = [_json(o) + b', "event": "' for o in org_ids]
        self._orgs = ByteTable(self._org_texts) if org_ids else None
        self._layouts: dict[tuple[int, ...], _Layout] = {}
        self._joiner = RowJoiner()

    def write(self, events: EventColumns, out: BinaryIO) -> None:
        for first in range(0, len(events), self._chunk_rows):
            self._write_chunk(events.take(slice(first, first + self._chunk_rows)), out)

    def _write_chunk(self, events: EventColumns, out: BinaryIO) -> None:
        kind = events.kind.astype(np.intp)
        head = np.where(kind == _FAILED, len(KINDS) + events.reason.astype(np.intp), kind)
        codes = tuple(np.flatnonzero(np.bincount(head, minlength=len(_HEAD_KINDS))).tolist())
        layout = self._layouts.get(codes)
        if layout is None:
            layout = self._layouts[codes] = _Layout(codes)
        org = events.org
        parts: list[bytes | Field] = [
            b'{"time": "', *instants(self._start_epoch_ms + events.time_ms), b'", "org_id": ',
            self._org_texts[int(org[0])] if int(org.min()) == int(org.max()) else self._orgs.take(org),
        ]
        index = None if layout.constant else layout.remap[head]
        parts.append(layout.head if index is None else layout.heads.take(index))
        if layout.amount:
            amount = decimals(events.amount, 6)
            parts.append(_blank(amount, layout.blank_amount[head]) if layout.mixed_amount else amount)
        parts.append(layout.mid if index is None else layout.mids.take(index))
        if layout.balance:
            balance = decimals(events.balance, 6)
            parts.append(_blank(balance, layout.blank_balance[head]) if layout.mixed_balance else balance)
        parts.append(layout.end if index is None else layout.ends.take(index))
        self._joiner.write(parts, out)


def _blank(field: Field, rows: NDArray[np.bool_]) -> Field:
    """`field` with no bytes in use in `rows`."""
    if not rows.any():
        return field
    mask = field.mask.copy()
    mask[rows] = used(field.width, np.zeros(1, dtype=np.int64))[0]
    return Field(field.items, mask)
