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

from ._byte_columns import ByteTable, Field, RowJoiner, used
from ._csv_columns import decimals, instants

_FAILED = KINDS.index("recharge_failed")
_NO_AMOUNT = np.array([kind in NO_AMOUNT for kind in KINDS])
_NO_BALANCE = np.array([kind in NO_BALANCE for kind in KINDS])


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


class EventLines:
    """Writes events as events.jsonl lines, for one run's org ids and start."""

    def __init__(self, org_ids: Sequence[str], start_epoch_ms: int) -> None:
        self._start_epoch_ms = start_epoch_ms
        self._orgs = ByteTable([_json(o) + b', "event": "' for o in org_ids])
        self._heads = ByteTable(_heads())
        # after the amount: the balance's key, for the kinds with both
        self._mids = ByteTable([b"" if kind in NO_AMOUNT else b'", "balance": "' for kind in KINDS]
                               + [b""] * len(REASONS))
        self._ends = ByteTable([b"" if kind in NO_BALANCE else b'"}\n' for kind in KINDS]
                               + [b'"}\n'] * len(REASONS))
        self._joiner = RowJoiner()

    def write(self, events: EventColumns, out: BinaryIO) -> None:
        if not len(events):
            return
        kind = events.kind.astype(np.intp)
        head = np.where(kind == _FAILED, len(KINDS) + events.reason.astype(np.intp), kind)
        parts = [
            b'{"time": "', *instants(self._start_epoch_ms + events.time_ms), b'", "org_id": ',
            self._orgs.take(events.org), self._heads.take(head),
            _blank(decimals(events.amount, 6), _NO_AMOUNT[kind]), self._mids.take(head),
            _blank(decimals(events.balance, 6), _NO_BALANCE[kind]), self._ends.take(head),
        ]
        self._joiner.write(parts, out)


def _blank(field: Field, rows: NDArray[np.bool_]) -> Field:
    """`field` with no bytes in use in `rows`."""
    if not rows.any():
        return field
    mask = field.mask.copy()
    mask[rows] = used(field.width, np.zeros(1, dtype=np.int64))[0]
    return Field(field.items, mask)
