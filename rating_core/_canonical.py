"""Engine output as plain tuples of strings and integers, for comparing with the reference."""

from __future__ import annotations

from ._model import CALL_TYPE_NAMES, END_REASON_NAMES, CdrBatch, LedgerEvent, Tables, format_number


def canonical_cdrs(tables: Tables, batch: CdrBatch) -> list[tuple]:
    """(call_id, org_id, user_id, call_type, from, to, country, zone, start_ms, end_ms,
    billed_s, pool, pool_s, credits_micro, end_reason) per CDR, in batch order."""
    out = []
    for i in range(len(batch)):
        u, c, z, p = (int(batch.user[i]), int(batch.country[i]), int(batch.zone[i]), int(batch.pool[i]))
        out.append((
            int(batch.call_id[i]), tables.org_ids[batch.org[i]], tables.user_ids[u] if u >= 0 else "",
            CALL_TYPE_NAMES[batch.call_type[i]], format_number(int(batch.from_number[i])),
            format_number(int(batch.to_number[i])), tables.countries[c] if c >= 0 else "",
            tables.zones[z] if z >= 0 else "", int(batch.start_ms[i]), int(batch.end_ms[i]),
            int(batch.billed_s[i]), tables.pool_names[p] if p >= 0 else "", int(batch.pool_s[i]),
            int(batch.credits_micro[i]), END_REASON_NAMES[batch.end_reason[i]],
        ))
    return out


def canonical_events(tables: Tables, events: list[LedgerEvent]) -> list[tuple]:
    """(time_ms, org_id, event, amount_micro, balance_micro, reason) per event."""
    return [
        (e.time_ms, tables.org_ids[e.org], e.kind, e.amount_micro, e.balance_micro, e.reason)
        for e in events
    ]
