"""The server's replies and pushes, as msgpack-ready maps (docs/protocol.md "Server messages").

Built in one place so the protocol document, the server and the clients agree
on every field.  Money and times use the exact text of cdrs.csv (`simulator.units`):
a client can compare an `ended` message with the CSV row byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Union

import msgspec

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, CdrBatch, Tables, format_number

from ..units import epoch_ms, format_epoch_ms_iso, format_micro, format_ms
from ._wire import PROTOCOL_VERSION


def welcome(org: str, currency: str, max_frame: int, max_inflight: int, idle_timeout_s: float) -> dict[str, Any]:
    return {
        "op": "welcome", "org": org, "protocol": PROTOCOL_VERSION, "currency": currency,
        "max_frame": max_frame, "max_inflight": max_inflight, "idle_timeout_s": idle_timeout_s,
    }


# The two messages sent for every call are Structs: msgspec builds and encodes them ~2x faster
# than dicts, and encodes them as exactly the same maps (the tag `op` first, then the fields
# in order), which is what the protocol specifies.
class Answered(msgspec.Struct, tag_field="op", tag="answered", gc=False):
    ref: Union[int, str]
    call_id: int


class _CallEnd(msgspec.Struct, tag_field="op", gc=False):
    """`ended` without the CDR columns (hello's `cdr` false), or `disconnected`."""

    ref: Union[int, str]
    call_id: int
    end_reason: str
    end_time: str
    billed_s: int
    credits_charged: str


class Ended(_CallEnd, tag="ended"):
    pass


class Disconnected(_CallEnd, tag="disconnected"):
    pass


Message = Union[dict[str, Any], msgspec.Struct]  # what goes to a client: encodes as a map


def answered(ref: int | str, call_id: int) -> Answered:
    return Answered(ref, call_id)


def answered_many(refs: list[int | str], first_call_id: int) -> list[Answered]:
    """`answered` for setups with consecutive call ids (one frame's): one list comprehension."""
    return list(map(Answered, refs, range(first_call_id, first_call_id + len(refs))))


def rejected(ref: int | str, call_id: int, end_reason: int) -> dict[str, Any]:
    return {"op": "rejected", "ref": ref, "call_id": call_id, "end_reason": END_REASON_NAMES[end_reason]}


PONG: dict[str, Any] = {"op": "pong"}


class IsoTimes(dict):
    """Epoch milliseconds -> `format_epoch_ms_iso` text: `times[ms]`, cached.

    The calls that end in one tick end within a few milliseconds of each
    other (often in the same one), so nearly every lookup hits, and a hit
    is a plain dict lookup; the text is the same as `simulator.units` writes.
    """

    def __init__(self) -> None:
        super().__init__()
        self._seconds: dict[int, str] = {}

    def __missing__(self, epoch_milliseconds: int) -> str:
        if len(self) > 4096:
            self.clear()
        second, ms = divmod(epoch_milliseconds, 1000)
        head = self._seconds.get(second)
        if head is None:
            if len(self._seconds) > 4096:
                self._seconds.clear()
            head = self._seconds[second] = format_epoch_ms_iso(second * 1000)[:-5]  # drop ".000Z"
        text = self[epoch_milliseconds] = f"{head}.{ms:03d}Z"
        return text


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
        self._money = MoneyTexts()
        self._batch: CdrBatch | None = None  # the batch `_columns` were read from
        self._columns: tuple[list[int], ...] = ()

    def messages(self, batch: CdrBatch, rows: list[int], refs: list[int | str],
                 full: bool) -> list[Message]:
        """For each row, `disconnected` (cut by the server) or `ended` (hung up).

        `full` says whether the client wants the CDR columns in `ended`
        (hello's `cdr`); without them `ended` has the same fields as
        `disconnected`.  Only the columns needed are gathered (numpy), then
        the dicts are built row by row with cached texts: a few microseconds
        a call at most.
        """
        if full:
            return self._full(batch, rows, refs)
        call_id, end, billed, credits, reason = self._short_columns(batch)
        names, iso, epoch, money = END_REASON_NAMES, self._iso, self._epoch, self._money
        return [
            _END_TYPE[reason[r]](ref, call_id[r], names[reason[r]], iso[epoch + end[r]], billed[r],
                                 money[credits[r]])
            for r, ref in zip(rows, refs)
        ]

    def _short_columns(self, batch: CdrBatch) -> tuple[list[int], ...]:
        """The columns of the short messages as lists, converted once per batch (the exchange asks
        for one batch's rows connection by connection)."""
        if batch is not self._batch:
            self._batch = batch
            self._columns = (batch.call_id.tolist(), batch.end_ms.tolist(), batch.billed_s.tolist(),
                             batch.credits_micro.tolist(), batch.end_reason.tolist())
        return self._columns

    def _full(self, batch: CdrBatch, rows: list[int], refs: list[int | str]) -> list[Message]:
        """`ended` with every CDR column (`disconnected` for calls the server cut)."""
        b, iso, epoch, money = batch.take(rows), self._iso, self._epoch, self._money
        users, countries, zones, pools = self._users, self._countries, self._zones, self._pools
        out: list[Message] = []
        for (ref, call_id, org, user, call_type, frm, to, country, zone, start, end, billed,
             pool, pool_s, credits, reason) in zip(
                refs, b.call_id.tolist(), b.org.tolist(), b.user.tolist(), b.call_type.tolist(),
                b.from_number.tolist(), b.to_number.tolist(), b.country.tolist(), b.zone.tolist(),
                b.start_ms.tolist(), b.end_ms.tolist(), b.billed_s.tolist(), b.pool.tolist(),
                b.pool_s.tolist(), b.credits_micro.tolist(), b.end_reason.tolist()):
            if reason in _CUT:
                out.append(Disconnected(ref, call_id, END_REASON_NAMES[reason], iso[epoch + end], billed,
                                        money[credits]))
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
                "start_time": iso[epoch + start],
                "end_time": iso[epoch + end],
                "duration_s": format_ms(end - start),
                "billed_s": billed,
                "pool": pools[pool] if pool_s > 0 else None,
                "pool_s": pool_s,
                "credits_charged": money[credits],
                "currency": self._currency,
                "end_reason": END_REASON_NAMES[reason],
            })
        return out


class MoneyTexts(dict):
    """Micro-units -> `format_micro` text: `money[micro]`, cached (calls on one tariff cost the
    same few amounts)."""

    def __missing__(self, micro: int) -> str:
        if len(self) > 4096:
            self.clear()
        text = self[micro] = format_micro(micro)
        return text


_CUT = frozenset({END_REASON_NAMES.index("dropped_balance_exhausted"), END_REASON_NAMES.index("simulation_end")})
_END_TYPE = tuple(Disconnected if r in _CUT else Ended for r in range(len(END_REASON_NAMES)))


def _names(table: tuple[str, ...]) -> tuple[str | None, ...]:
    """A name table whose index -1 (CdrBatch's "none") reads None."""
    return (*table, None)
