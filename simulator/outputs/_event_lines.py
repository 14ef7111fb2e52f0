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

from ..units import format_micro
from ._byte_columns import ENCODE_ROWS, ByteTable, Field, RowJoiner, unmasked, used
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


# Per head code (`_heads`): the kind's name, the texts up to the first value, after the amount
# (the balance's key, for the kinds with both) and after the balance; which values it lacks.
_HEAD_KINDS = [*KINDS, *["recharge_failed"] * len(REASONS)]
_HEADS = _heads()
_MIDS = [b"" if kind in NO_AMOUNT else b'", "balance": "' for kind in _HEAD_KINDS]
_ENDS = [b"" if kind in NO_BALANCE else b'"}\n' for kind in _HEAD_KINDS]
_BLANK_AMOUNT = np.array([kind in NO_AMOUNT for kind in _HEAD_KINDS])
_BLANK_BALANCE = np.array([kind in NO_BALANCE for kind in _HEAD_KINDS])
_FRONTS_KEPT = 64  # amounts whose texts a layout keeps (one per org recharging, say)


class _Layout:
    """The parts of the lines of a chunk whose events have these head codes (`_heads`).

    One code: its texts are constant bytes, written once per shape by `RowJoiner`, and a
    value its kind lacks is no part at all.  Several: tables of only theirs, as narrow as
    the longest of them, taken per row by `remap[head]` (constant bytes where they agree).
    An amount that is the same on every line that has one (an org's recharges) is text of
    the head (`front`).
    """

    def __init__(self, codes: Sequence[int]) -> None:
        self.codes = codes
        kinds = [_HEAD_KINDS[c] for c in codes]
        self.amount = any(k not in NO_AMOUNT for k in kinds)  # some line has an amount
        self.balance = any(k not in NO_BALANCE for k in kinds)
        self.mixed_amount = self.amount and any(k in NO_AMOUNT for k in kinds)  # and some has none
        self.mixed_balance = self.balance and any(k in NO_BALANCE for k in kinds)
        self.constant = len(codes) == 1
        self.remap = np.zeros(len(_HEAD_KINDS), dtype=np.intp)
        self.remap[list(codes)] = np.arange(len(codes))
        self.ends = self._texts([_ENDS[c] for c in codes])
        self._fronts: dict[bytes | None, tuple[bytes | ByteTable, bytes | ByteTable | None]] = {}

    def _texts(self, texts: list[bytes]) -> bytes | ByteTable:
        """The texts of the codes, per row; constant bytes when they are all the same (the ends
        of a recharge and of a balance_exhausted line, say)."""
        return texts[0] if len(set(texts)) == 1 else ByteTable(texts)

    def front(self, amount: bytes | None) -> tuple[bytes | ByteTable, bytes | ByteTable | None]:
        """The texts from the kind's name to the first value's quote, and those after the
        amount; with `amount` (its text, the same on every line that has one), from the kind's
        name to the balance's quote, and nothing after it."""
        front = self._fronts.get(amount)
        if front is None:
            if amount is None:
                front = (self._texts([_HEADS[c] for c in self.codes]), self._texts([_MIDS[c] for c in self.codes]))
            else:
                front = (self._texts([_HEADS[c] + (b"" if _BLANK_AMOUNT[c] else amount + _MIDS[c])
                                      for c in self.codes]), None)
            if len(self._fronts) < _FRONTS_KEPT:
                self._fronts[amount] = front
        return front


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
        self._orgs = ByteTable([_json(o) + b', "event": "' for o in org_ids])
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
        parts: list[bytes | Field] = [
            b'{"time": "', *instants(self._start_epoch_ms + events.time_ms), b'", "org_id": ',
            _unmasked(self._orgs.column(events.org)),
        ]
        index = None if layout.constant else layout.remap[head]

        def per_row(texts: bytes | ByteTable) -> bytes | Field:
            return texts if isinstance(texts, bytes) else texts.take(index)

        no_amount = _BLANK_AMOUNT[head] if layout.mixed_amount else None
        amount = _same_text(events.amount, no_amount) if layout.amount else None
        front, mids = layout.front(amount)
        parts.append(per_row(front))
        if layout.amount and amount is None:
            parts.append(_money(events.amount, no_amount))
        if mids is not None:
            parts.append(per_row(mids))
        if layout.balance:
            if layout.mixed_balance:
                parts.append(_money(events.balance, _BLANK_BALANCE[head]))
            else:  # every line has one: the same on all is constant bytes
                parts.append(_same_text(events.balance, None) or _money(events.balance, None))
        parts.append(per_row(layout.ends))
        self._joiner.write(parts, out)


def _unmasked(part: bytes | Field) -> bytes | Field:
    """`unmasked` for a part that may be constant bytes (one org in the chunk)."""
    return part if isinstance(part, bytes) else unmasked(part)


def _same_text(micro: NDArray[np.int64], blank: NDArray[np.bool_] | None) -> bytes | None:
    """The money text of every row but those `blank`, if it is the same on all of them."""
    if blank is not None:
        micro = micro[~blank]
    if not len(micro) or int(micro.min()) != int(micro.max()):
        return None
    return format_micro(int(micro[0])).encode()


def _money(micro: NDArray[np.int64], blank: NDArray[np.bool_] | None) -> Field:
    """Each row's money text, none where `blank`; without a mask when every row's text is as
    long (a recharging org's balances hover about its threshold: "4.999000", "5.000000")."""
    field = decimals(micro, 6)
    return unmasked(field) if blank is None else _blank(field, blank)


def _blank(field: Field, rows: NDArray[np.bool_]) -> Field:
    """`field` with no bytes in use in `rows`."""
    if not rows.any():
        return field
    mask = field.mask.copy()
    mask[rows] = used(field.width, np.zeros(1, dtype=np.int64))[0]
    return Field(field.items, mask)
