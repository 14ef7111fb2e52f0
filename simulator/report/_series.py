"""Time profiles for the report, reconstructed from CDRs and ledger events.

A CDR says what a call cost in total, not when each increment was paid, so
the balance and pool curves are approximations (the report says so): a call's
pool seconds are spread evenly over the first `pool_s` seconds of the call
and its credits over the rest (the pool pays first, `payment_windows`).  Purchases, recharges, expiries and refills come from
events.jsonl with their exact instants.  At the end of the run the curves land
exactly on summary.json's final balances and pool remainders.

Everything is vectorised over the CDRs: a record's contribution to the
cumulative curve at query time t is a ramp, w * ((t - s)+ - (t - e)+) with
w = amount / (e - s), so the curves at all query times are a couple of
`np.bincount`s over "first query index after s (or e)" and a cumulative sum,
whatever the number of calls.  Times are integer ms since the run start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._data import EVENT_KINDS, RunData

__all__ = [
    "ActiveCalls",
    "BalanceCurve",
    "PoolCurve",
    "active_calls",
    "balance_curves",
    "bin_edges",
    "ends_per_bin",
    "pool_curves",
    "time_grid",
]

#: query points per curve: finer than a chart's pixel columns.
GRID_POINTS = 2_000


def time_grid(duration_ms: int, points: int = GRID_POINTS) -> NDArray[np.int64]:
    """`points` evenly spaced instants from 0 to `duration_ms`, both included."""
    return np.unique(np.linspace(0, max(duration_ms, 0), points).round().astype(np.int64))


def with_jumps(grid: NDArray[np.int64], instants: NDArray[np.int64], duration_ms: int) -> NDArray[np.int64]:
    """The grid plus each instant and the ms before it, so a step (a recharge, a refill)
    is drawn as a vertical jump rather than a slope across a grid interval."""
    extra = np.concatenate([instants - 1, instants])
    extra = extra[(extra >= 0) & (extra <= duration_ms)]
    return np.union1d(grid, extra)


def _index_after(at: NDArray[np.int64], t: NDArray[np.int64], *, inclusive: bool) -> NDArray[np.intp]:
    """First query index whose time is > t (or >= t when `inclusive`)."""
    return np.searchsorted(at, t, side="left" if inclusive else "right")


def _cumulative(keys: NDArray[np.intp], n_keys: int, index: NDArray[np.intp],
                weights: NDArray[np.float64] | None, n_at: int) -> NDArray[np.float64]:
    """Sum of weights (or counts) per key over records whose index <= query index."""
    flat = keys * (n_at + 1) + index
    sums = np.bincount(flat, weights=weights, minlength=n_keys * (n_at + 1))
    return np.cumsum(sums.reshape(n_keys, n_at + 1), axis=1)[:, :n_at]


def spread_cumulative(keys: NDArray[np.intp], n_keys: int, start: NDArray[np.int64],
                      end: NDArray[np.int64], amount: NDArray[np.float64],
                      at: NDArray[np.int64]) -> NDArray[np.float64]:
    """(n_keys, len(at)): per key, the amount accrued by each query time, each record's
    amount spread evenly over [start, end) (a zero-length record counts in full from start)."""
    at = np.asarray(at, dtype=np.int64)
    out = np.zeros((n_keys, len(at)))
    if len(start) == 0 or n_keys == 0:
        return out
    t = at.astype(np.float64)
    instant = end <= start
    if instant.any():
        out += _cumulative(keys[instant], n_keys, _index_after(at, start[instant], inclusive=True),
                           amount[instant], len(at))
    ramp = ~instant
    if ramp.any():
        k, s, e, a = keys[ramp], start[ramp], end[ramp], amount[ramp]
        w = a / (e - s)
        for edge, sign in ((s, 1.0), (e, -1.0)):
            index = _index_after(at, edge, inclusive=False)
            rate = _cumulative(k, n_keys, index, w, len(at))
            offset = _cumulative(k, n_keys, index, w * edge, len(at))
            out += sign * (t * rate - offset)
    return out


def step_cumulative(keys: NDArray[np.intp], n_keys: int, time: NDArray[np.int64],
                    amount: NDArray[np.float64], at: NDArray[np.int64]) -> NDArray[np.float64]:
    """(n_keys, len(at)): per key, the sum of amounts whose time <= query time."""
    if len(time) == 0 or n_keys == 0:
        return np.zeros((n_keys, len(at)))
    return _cumulative(keys, n_keys, _index_after(at, time, inclusive=True), amount, len(at))


@dataclass(frozen=True)
class PaymentWindows:
    """When, within each call, its pool seconds and its credits were (taken to be) paid."""

    pool_from: NDArray[np.int64]
    pool_to: NDArray[np.int64]
    credits_from: NDArray[np.int64]  # credits are paid from here to the call's end
    straddles_refill: NDArray[np.bool_]  # the call was connected across a refill of its org


def payment_windows(run: RunData) -> PaymentWindows:
    """Each increment is paid from the pool first and the rest from credits (SPEC §3), and a
    pool that runs dry stays dry until the next monthly refill, so a call's pool seconds are
    its first `pool_s` billed seconds: the pool pays over [start, start + pool_s] and credits
    over the rest of the call (both clipped to the call's end).

    A call connected across a refill of its org's pools is the exception: typically it was
    paying credits because the pool had run dry, and the refill let the pool pay again.  Its
    pool seconds are placed right after the refill, its credits over the whole call.
    """
    cdrs, events = run.cdrs, run.events
    start, end = cdrs.start_ms, np.maximum(cdrs.end_ms, cdrs.start_ms)
    refill = events.of("pools_refilled")
    # the first refill of the call's org after its start: one search over (org, time) keys
    span = run.duration_ms + 2
    refill_keys = np.sort(events.org[refill].astype(np.int64) * span + events.time_ms[refill])
    after = np.searchsorted(refill_keys, cdrs.org.astype(np.int64) * span + start, side="right")
    found = np.minimum(after, max(len(refill_keys) - 1, 0))
    next_key = refill_keys[found] if len(refill_keys) else np.full(len(start), -1, dtype=np.int64)
    next_refill = next_key - cdrs.org.astype(np.int64) * span
    straddles = (after < len(refill_keys)) & (next_refill > start) & (next_refill < end) \
        & (cdrs.pool_s > 0)
    pool_from = np.where(straddles, next_refill, start)
    pool_to = np.minimum(pool_from + cdrs.pool_s * 1000, end)
    credits_from = np.where(straddles, start, pool_to)
    return PaymentWindows(pool_from, pool_to, credits_from, straddles)


# --- credit balance --------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceCurve:
    """One org's reconstructed balance (currency units) and its exact ledger events."""

    org: int
    at_ms: NDArray[np.int64]
    balance: NDArray[np.float64]
    # (time_ms, balance in currency units) per marker kind, from events.jsonl
    markers: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]]


MARKER_KINDS = ("credits_purchased", "recharge_succeeded", "recharge_failed",
                "balance_exhausted", "credits_expired")


def balance_curves(run: RunData, orgs: list[int], grid: NDArray[np.int64]) -> list[BalanceCurve]:
    """balance(t) = purchased(t) - expired(t) - charged(t) for each org in `orgs`.

    Purchases and expiries are exact steps from events.jsonl; charges are the
    CDRs' credits spread over each call (module docstring).
    """
    if not orgs:
        return []
    events, cdrs = run.events, run.cdrs
    slot = np.full(len(run.org_ids), -1, dtype=np.intp)
    slot[orgs] = np.arange(len(orgs))
    ledger = np.isin(events.kind, [_kind("credits_purchased"), _kind("recharge_succeeded"),
                                   _kind("credits_expired")]) & (slot[events.org] >= 0)
    at = with_jumps(grid, events.time_ms[ledger], run.duration_ms)
    signed = np.where(events.kind == _kind("credits_expired"), -1, 1) * events.amount_micro
    added = step_cumulative(slot[events.org[ledger]], len(orgs), events.time_ms[ledger],
                            signed[ledger] / 1e6, at)
    mine = slot[cdrs.org] >= 0
    paid = mine & (cdrs.credits_micro != 0)
    windows = payment_windows(run)
    charged = spread_cumulative(slot[cdrs.org[paid]], len(orgs), windows.credits_from[paid],
                                cdrs.end_ms[paid], cdrs.credits_micro[paid] / 1e6, at)
    curves = []
    for i, org in enumerate(orgs):
        markers = {}
        for kind in MARKER_KINDS:
            mask = events.of(kind, org)
            markers[kind] = (events.time_ms[mask], events.balance_micro[mask] / 1e6)
        curves.append(BalanceCurve(org, at, added[i] - charged[i], markers))
    return curves


def _kind(name: str) -> int:
    return EVENT_KINDS.index(name)


# --- pools -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolCurve:
    """One pool of one org: remaining seconds over time and its (estimated) capacity."""

    org: int
    pool_name: str
    capacity_s: int
    at_ms: NDArray[np.int64]
    remaining_s: NDArray[np.float64]
    capacity_exact: bool  # False when a call straddled a refill (see `pool_curves`)
    refills_ms: NDArray[np.int64]  # the org's pools_refilled instants


def pool_curves(run: RunData, orgs: list[int], grid: NDArray[np.int64]) -> list[PoolCurve]:
    """Remaining seconds of every pool of the orgs in `orgs`.

    Pools drain as CDRs bill pool_s (see `payment_windows`) and are reset to
    capacity at each `pools_refilled` event of their org.  The capacity is not
    in the run files; it is remaining-at-end (summary.json) plus what was used
    since the org's last refill (or since the start).  That is exact unless a
    call straddled a refill: then it assumes the call's pool seconds were all
    after the refill, which is exact when the pool had run dry before it and
    overestimates by that call's earlier pool seconds otherwise.
    """
    events, cdrs = run.events, run.cdrs
    keys: list[tuple[int, str]] = []
    for org in orgs:
        section = run.summary["orgs"][run.org_ids[org]]
        keys += [(org, name) for name in section.get("pool_remaining_s", section["pool_s_by_pool"])]
    refill_mask = events.of("pools_refilled") & np.isin(events.org, orgs)
    at = with_jumps(grid, events.time_ms[refill_mask], run.duration_ms)
    at = np.union1d(at, [run.duration_ms])
    if not keys:
        return []
    slot = np.full((len(run.org_ids), len(run.pool_names)), -1, dtype=np.intp)
    for i, (org, name) in enumerate(keys):
        slot[org, run.pool_names.index(name)] = i
    used = cdrs.pool >= 0
    key_of = np.full(len(cdrs), -1, dtype=np.intp)
    key_of[used] = slot[cdrs.org[used], cdrs.pool[used]]
    mine = (key_of >= 0) & (cdrs.pool_s > 0)
    windows = payment_windows(run)
    consumed = spread_cumulative(key_of[mine], len(keys), windows.pool_from[mine],
                                 windows.pool_to[mine], cdrs.pool_s[mine].astype(np.float64), at)
    curves = []
    for i, (org, name) in enumerate(keys):
        refills = events.time_ms[events.of("pools_refilled", org)]
        refills = refills[refills <= run.duration_ms]
        # consumed at the last refill at or before each query time (0 before the first)
        base = np.zeros(len(at))
        if len(refills):
            last = np.searchsorted(refills, at, side="right") - 1
            at_refill = consumed[i][np.searchsorted(at, refills)]
            base = np.where(last >= 0, at_refill[np.maximum(last, 0)], 0.0)
        since_refill = consumed[i] - base
        section = run.summary["orgs"][run.org_ids[org]]
        if name not in section.get("pool_remaining_s", {}):
            continue  # a run whose summary has no remainders: no capacity to draw against
        of_pool = mine & (key_of == i)
        # in whole seconds, from the CDRs: the spread sums above are floats
        paid_since = of_pool & (windows.pool_from >= refills[-1]) if len(refills) else of_pool
        straddles = bool(np.any(of_pool & windows.straddles_refill))
        capacity = int(section["pool_remaining_s"][name]) + int(cdrs.pool_s[paid_since].sum())
        remaining = np.clip(capacity - since_refill, 0, capacity) if capacity > 0 else since_refill * 0
        curves.append(PoolCurve(org, name, capacity, at, remaining, not straddles, refills))
    return curves


# --- calls -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveCalls:
    """Connected calls per time bin: the mean by call type, and the highest total."""

    edges_ms: NDArray[np.int64]  # bin edges, len(bins) + 1; the last bin may be shorter
    mean_by_type: NDArray[np.float64]  # (n call types, bins): time-weighted mean (Erlangs)
    peak: NDArray[np.int64]  # (bins,): most calls connected at once, all types
    max_level: int  # the run's peak of connected calls ...
    max_at_ms: int  # ... first reached at this instant


def bin_edges(duration_ms: int, bin_ms: int) -> NDArray[np.int64]:
    """0, bin, 2 bin, ... up to and including `duration_ms` (at least one bin)."""
    edges = np.arange(0, max(duration_ms, 1), bin_ms, dtype=np.int64)
    return np.append(edges, max(duration_ms, 1))


def active_calls(run: RunData, n_types: int, bin_ms: int) -> ActiveCalls:
    """Mean connected calls per bin by type (connected ms in the bin / bin length, a
    cumulative ramp per call like the balance) and the exact peak in each bin."""
    cdrs = run.cdrs
    edges = bin_edges(run.duration_ms, bin_ms)
    connected_ms = spread_cumulative(cdrs.call_type.astype(np.intp), n_types, cdrs.start_ms,
                                     cdrs.end_ms, (cdrs.end_ms - cdrs.start_ms).astype(np.float64),
                                     edges)
    mean = np.diff(connected_ms, axis=1) / np.diff(edges)
    times, level = connected_levels(run)
    peak = np.zeros(len(edges) - 1, dtype=np.int64)
    if len(times):
        # level carried into each bin from before it, then every change inside it
        carried = np.searchsorted(times, edges[:-1], side="left") - 1
        peak = np.where(carried >= 0, level[np.maximum(carried, 0)], 0)
        bins = np.minimum(times // bin_ms, len(peak) - 1)
        present, first = np.unique(bins, return_index=True)
        peak[present] = np.maximum(peak[present], np.maximum.reduceat(level, first))
    max_level, max_at = _peak(times, level)
    return ActiveCalls(edges, np.maximum(mean, 0.0), peak, max_level, max_at)


def connected_levels(run: RunData) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Every start and end of a connected call in time order, and the number of calls
    connected just after it.  At one instant ends come before starts (hang-ups before
    answers, SPEC §3), so a call ending at t and one starting at t are never both counted."""
    cdrs = run.cdrs
    connected = cdrs.end_ms > cdrs.start_ms
    n = int(connected.sum())
    keys = np.concatenate([2 * cdrs.end_ms[connected], 2 * cdrs.start_ms[connected] + 1])
    order = np.argsort(keys, kind="stable")
    level = np.cumsum(np.where(order >= n, 1, -1))
    return keys[order] // 2, level


def _peak(times: NDArray[np.int64], level: NDArray[np.int64]) -> tuple[int, int]:
    """The highest level and the first instant it is reached (0, 0 without calls)."""
    if len(times) == 0:
        return 0, 0
    best = int(np.argmax(level))
    return int(level[best]), int(times[best])


def ends_per_bin(run: RunData, n_reasons: int, bin_ms: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Calls ended in each `bin_ms` interval by end reason: (bin edges, (n_reasons, bins))."""
    edges = bin_edges(run.duration_ms, bin_ms)
    n_bins = len(edges) - 1
    index = np.minimum(run.cdrs.end_ms // bin_ms, n_bins - 1)
    flat = run.cdrs.end_reason.astype(np.intp) * n_bins + index
    counts = np.bincount(flat, minlength=n_reasons * n_bins).reshape(n_reasons, n_bins)
    return edges, counts
