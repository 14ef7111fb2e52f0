"""The server's replies and pushes, as msgpack-ready maps (docs/protocol.md "Server messages").

Built in one place so the protocol document, the server and the clients agree
on every field.  Money and times use the exact text of cdrs.csv (`_format`):
a client can compare an `ended` message with the CSV row byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, CdrBatch, Tables, format_number

from ._format import epoch_ms, format_epoch_ms_iso, format_micro, format_ms
from ._wire import PROTOCOL_VERSION


def welcome(org: str, currency: str, max_frame: int, max_inflight: int, idle_timeout_s: float) -> dict[str, Any]:
    return {
        "op": "welcome", "org": org, "protocol": PROTOCOL_VERSION, "currency": currency,
        "max_frame": max_frame, "max_inflight": max_inflight, "idle_timeout_s": idle_timeout_s,
    }


def answered(ref: int | str, call_id: int) -> dict[str, Any]:
    return {"op": "answered", "ref": ref, "call_id": call_id}


def rejected(ref: int | str, call_id: int, end_reason: int) -> dict[str, Any]:
    return {"op": "rejected", "ref": ref, "call_id": call_id, "end_reason": END_REASON_NAMES[end_reason]}


PONG: dict[str, Any] = {"op": "pong"}


class IsoTimes:
    """Epoch milliseconds -> `format_epoch_ms_iso` text, with the whole-second part cached.

    The calls that end in one tick end within a few milliseconds of each
    other, so nearly every lookup hits; the text is the same as `_format`'s.
    """

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def __call__(self, epoch_milliseconds: int) -> str:
        second, ms = divmod(epoch_milliseconds, 1000)
        head = self._cache.get(second)
        if head is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            head = self._cache[second] = format_epoch_ms_iso(second * 1000)[:-5]  # drop ".000Z"
        return f"{head}.{ms:03d}Z"


class CdrMessages:
    """Builds the per-call end messages of CdrBatch rows; one per server (tables are fixed)."""

    def __init__(self, tables: Tables, start: datetime, currency: str) -> None:
        self._org_ids = tables.org_ids
        self._users, self._countries, self._zones, self._pools = (
            _names(tables.user_ids), _names(tables.countries), _names(tables.zones),
            _names(tables.pool_names))
        self._epoch = epoch_ms(start)
        self._currency = currency
        self._iso = IsoTimes()

    def messages(self, batch: CdrBatch, rows: list[int], refs: list[int | str],
                 full: list[bool]) -> list[dict[str, Any]]:
        """For each row, `disconnected` (cut by the server) or `ended` (hung up), in one pass.

        `full[k]` says whether row k's client wants the CDR columns in `ended`
        (hello's `cdr`); without them `ended` has the same fields as `disconnected`.

        Columns are gathered for just these rows with numpy, then turned into
        dicts row by row: a few microseconds a call, where formatting field by
        field from the batch cost four times that.
        """
        b, iso, epoch = batch.take(rows), self._iso, self._epoch
        users, countries, zones, pools = self._users, self._countries, self._zones, self._pools
        out: list[dict[str, Any]] = []
        for (cdr, ref, call_id, org, user, call_type, frm, to, country, zone, start, end, billed,
             pool, pool_s, credits, reason) in zip(
                full, refs, b.call_id.tolist(), b.org.tolist(), b.user.tolist(), b.call_type.tolist(),
                b.from_number.tolist(), b.to_number.tolist(), b.country.tolist(), b.zone.tolist(),
                b.start_ms.tolist(), b.end_ms.tolist(), b.billed_s.tolist(), b.pool.tolist(),
                b.pool_s.tolist(), b.credits_micro.tolist(), b.end_reason.tolist()):
            if reason in _CUT or not cdr:
                out.append({
                    "op": "disconnected" if reason in _CUT else "ended", "ref": ref, "call_id": call_id,
                    "end_reason": END_REASON_NAMES[reason], "end_time": iso(epoch + end),
                    "billed_s": billed, "credits_charged": format_micro(credits),
                })
                continue
            out.append({
                "op": "ended", "ref": ref, "call_id": call_id,
                "org_id": self._org_ids[org],
                "user_id": users[user],
                "call_type": CALL_TYPE_NAMES[call_type],
                "from_number": format_number(frm) or None,
                "to_number": format_number(to) or None,
                "destination_country": countries[country],
                "zone": zones[zone],
                "start_time": iso(epoch + start),
                "end_time": iso(epoch + end),
                "duration_s": format_ms(end - start),
                "billed_s": billed,
                "pool": pools[pool] if pool_s > 0 else None,
                "pool_s": pool_s,
                "credits_charged": format_micro(credits),
                "currency": self._currency,
                "end_reason": END_REASON_NAMES[reason],
            })
        return out


_CUT = frozenset({END_REASON_NAMES.index("dropped_balance_exhausted"), END_REASON_NAMES.index("simulation_end")})


def _names(table: tuple[str, ...]) -> tuple[str | None, ...]:
    """A name table whose index -1 (CdrBatch's "none") reads None."""
    return (*table, None)
