"""summary.json: per-org and total counters, accumulated batch by batch (SPEC §4).

CDR batches and ledger events are folded into small integer arrays with
`np.bincount` (`rating_core.group_sum` for money and seconds, exact in int64), so the cost
per row is a few vectorised passes whatever the batch size: an org stuck
below its recharge trigger has a ledger event at almost every instant.  The
layout is documented in docs/outputs.md.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES, EVENT_KINDS, CdrBatch, EventColumns, LedgerEvent, Tables, group_sum

from .._gc import gc_paused
from . import _csv_columns as csv_columns
from ._byte_columns import RowJoiner
from ..units import epoch_ms, format_epoch_ms_iso, format_micro
from ._out_dir import SUMMARY_JSON, SUMMARY_PARTIAL

_PURCHASED, _SUCCEEDED, _FAILED, _EXPIRED = (EVENT_KINDS.index(kind) for kind in (
    "credits_purchased", "recharge_succeeded", "recharge_failed", "credits_expired"))


_N_REASONS = len(END_REASON_NAMES)
_N_TYPES = len(CALL_TYPE_NAMES)


def _counts_by(
    org: NDArray[np.intp], category: NDArray[np.int8], n_orgs: int, n_categories: int
) -> NDArray[np.int64]:
    """(org, category) -> count, as an n_orgs x n_categories matrix, in one bincount."""
    flat = org * n_categories + category.astype(np.intp)
    return np.bincount(flat, minlength=n_orgs * n_categories).reshape(n_orgs, n_categories)


def summary_text(summary: dict[str, Any]) -> str:
    """summary.json's text: `json.dumps(summary, indent=2, ensure_ascii=False)` and a newline.

    msgspec writes the same bytes (tests/simulator/outputs/test_outputs.py) ~20x faster than
    json's indenting encoder, which is pure Python: 0.3 s for the 8 MB of 10,000 orgs, at the
    end of the run.  Same bytes for what a summary holds (dicts, lists, str, int, bool,
    None); not for floats (json writes 1e-05 and NaN, msgspec 0.00001 and null).
    """
    return msgspec.json.format(msgspec.json.encode(summary), indent=2).decode() + "\n"


class SummaryBuilder:
    """Accumulates CDRs and ledger events; `finish` turns the totals into summary.json's dict.

    `start` is needed to print `simulated_until` as a time; it is keyword-only
    so it cannot be confused with the positional run metadata.
    """

    def __init__(
        self, tables: Tables, currency: str, scenario_name: str, seed: int, *, start: datetime
    ) -> None:
        self._tables = tables
        self._currency = currency
        self._scenario_name = scenario_name
        self._seed = seed
        self._start_epoch_ms = epoch_ms(start)
        n_orgs = len(tables.org_ids)
        self._by_reason = np.zeros((n_orgs, _N_REASONS), dtype=np.int64)
        self._by_type = np.zeros((n_orgs, _N_TYPES), dtype=np.int64)
        self._billed_s = np.zeros(n_orgs, dtype=np.int64)
        self._credits_charged = np.zeros(n_orgs, dtype=np.int64)
        self._pool_s = np.zeros(len(tables.pool_names), dtype=np.int64)
        self._pools_by_org: list[list[int]] = [[] for _ in range(n_orgs)]
        for pool, owner in enumerate(tables.pool_orgs):
            self._pools_by_org[owner].append(pool)
        self._recharges_succeeded = np.zeros(n_orgs, dtype=np.int64)
        self._recharges_failed = np.zeros(n_orgs, dtype=np.int64)
        self._credits_purchased = np.zeros(n_orgs, dtype=np.int64)
        self._credits_expired = np.zeros(n_orgs, dtype=np.int64)

    def add_cdrs(self, batch: CdrBatch) -> None:
        """Fold one batch of CDRs into the counters (vectorised; any batch size)."""
        if len(batch) == 0:
            return
        n_orgs = len(self._tables.org_ids)
        org = batch.org.astype(np.intp)
        self._by_reason += _counts_by(org, batch.end_reason, n_orgs, _N_REASONS)
        self._by_type += _counts_by(org, batch.call_type, n_orgs, _N_TYPES)
        self._billed_s += group_sum(org, batch.billed_s, n_orgs)
        self._credits_charged += group_sum(org, batch.credits_micro, n_orgs)
        used = (batch.pool_s > 0) & (batch.pool >= 0)
        self._pool_s += group_sum(batch.pool[used].astype(np.intp), batch.pool_s[used], len(self._pool_s))

    def add_events(self, events: EventColumns | Iterable[LedgerEvent]) -> None:
        """Count recharges and sum purchases and expiries per org."""
        if not isinstance(events, EventColumns):
            events = EventColumns.from_events(list(events))
        if not len(events):
            return
        # one pass per figure over (org, kind) pairs: a recharging org has tens of events a call
        n_orgs, n_kinds = len(self._tables.org_ids), len(EVENT_KINDS)
        pair = events.org * n_kinds + events.kind
        counts = np.bincount(pair, minlength=n_orgs * n_kinds).reshape(n_orgs, n_kinds)
        amounts = group_sum(pair, events.amount, n_orgs * n_kinds).reshape(n_orgs, n_kinds)
        self._credits_purchased += amounts[:, _PURCHASED] + amounts[:, _SUCCEEDED]
        self._recharges_succeeded += counts[:, _SUCCEEDED]
        self._recharges_failed += counts[:, _FAILED]
        self._credits_expired += amounts[:, _EXPIRED]

    def counts(self) -> "SummaryCounts":
        """The integer counters so far, per org (copies): what summary.json is made of."""
        return SummaryCounts(
            by_reason=self._by_reason.copy(), billed_s=self._billed_s.copy(),
            credits_charged=self._credits_charged.copy(), credits_purchased=self._credits_purchased.copy(),
            recharges_succeeded=self._recharges_succeeded.copy(),
            recharges_failed=self._recharges_failed.copy(), credits_expired=self._credits_expired.copy(),
        )

    def finish(
        self,
        final_balances_micro: Sequence[int],
        pool_remaining_s: Sequence[int] | None,
        complete: bool,
        simulated_until_ms: int,
    ) -> dict[str, Any]:
        """The summary.json object.

        `final_balances_micro` is per org; `pool_remaining_s` per global pool
        index, or None to leave the `pool_remaining_s` entries out.
        `complete` is False for a run cut short (Ctrl-C), whose counters then
        cover the CDRs written up to `simulated_until_ms`.
        """
        n_orgs = len(self._tables.org_ids)
        if len(final_balances_micro) != n_orgs:
            raise ValueError(f"{len(final_balances_micro)} final balances for {n_orgs} orgs")
        n_pools = len(self._tables.pool_names)
        if pool_remaining_s is not None and len(pool_remaining_s) != n_pools:
            raise ValueError(f"{len(pool_remaining_s)} pool remainders for {n_pools} pools")
        remaining = None if pool_remaining_s is None else [int(s) for s in pool_remaining_s]
        balances = [int(b) for b in final_balances_micro]
        pool_s = self._pool_s.tolist()
        # plain ints and money texts, made a column at a time: a run may have 10,000 orgs and
        # as many pools
        money = _money_texts(np.concatenate([self._credits_charged, self._credits_purchased,
                                             self._credits_expired, np.array(balances, dtype=np.int64)]))
        per_org = zip(self._by_reason.tolist(), self._by_type.tolist(), self._billed_s.tolist(),
                      self._recharges_succeeded.tolist(), self._recharges_failed.tolist(),
                      *(money[k * n_orgs:(k + 1) * n_orgs] for k in range(4)))
        with gc_paused():  # a few dicts and strings an org, no cycles
            orgs = {
                org_id: self._section(_Counters(*counters), self._pools_by_org[o], pool_s, remaining)
                for o, (org_id, counters) in enumerate(zip(self._tables.org_ids, per_org))
            }
        total = _Counters(
            by_reason=self._by_reason.sum(axis=0).tolist(),
            by_type=self._by_type.sum(axis=0).tolist(),
            billed_s=int(self._billed_s.sum()),
            recharges_succeeded=int(self._recharges_succeeded.sum()),
            recharges_failed=int(self._recharges_failed.sum()),
            credits_charged=format_micro(int(self._credits_charged.sum())),
            credits_purchased=format_micro(int(self._credits_purchased.sum())),
            credits_expired=format_micro(int(self._credits_expired.sum())),
            final_balance=format_micro(sum(balances)),
        )
        return {
            "scenario": self._scenario_name,
            "seed": self._seed,
            "currency": self._currency,
            "start": format_epoch_ms_iso(self._start_epoch_ms),
            "simulated_until": format_epoch_ms_iso(self._start_epoch_ms + simulated_until_ms),
            "complete": complete,
            "orgs": orgs,
            "total": self._section(total, list(range(len(pool_s))), pool_s, remaining),
        }

    @staticmethod
    def write(out_dir: Path, summary: dict[str, Any] | str) -> None:
        """Write `summary` (or its text, `summary_text`, made beforehand) to out_dir/summary.json:
        indent 2, keys in insertion order, UTF-8.

        Written whole under a temporary name, then renamed: summary.json is the sign that a
        run finished (docs/outputs.md), so it never exists half-written.
        """
        text = summary if isinstance(summary, str) else summary_text(summary)
        partial = out_dir / SUMMARY_PARTIAL
        partial.write_text(text, encoding="utf-8", newline="\n")
        partial.replace(out_dir / SUMMARY_JSON)

    # --- sections ------------------------------------------------------------------------

    def _by_pool_name(self, seconds: Sequence[int], pools: Iterable[int]) -> dict[str, int]:
        """Seconds keyed by pool name; pools sharing a name (different orgs) are added up."""
        out: dict[str, int] = {}
        for p in pools:
            name = self._tables.pool_names[p]
            out[name] = out.get(name, 0) + seconds[p]
        return out

    def _section(self, c: "_Counters", pools: list[int], pool_s: list[int],
                 remaining: list[int] | None) -> dict[str, Any]:
        section: dict[str, Any] = {
            "calls": sum(c.by_reason),
            "calls_by_end_reason": dict(zip(END_REASON_NAMES, c.by_reason)),
            "calls_by_call_type": dict(zip(CALL_TYPE_NAMES, c.by_type)),
            "billed_s": c.billed_s,
            "pool_s_by_pool": self._by_pool_name(pool_s, pools),
        }
        if remaining is not None:
            section["pool_remaining_s"] = self._by_pool_name(remaining, pools)
        section.update(
            {
                "credits_charged": c.credits_charged,
                "recharges_succeeded": c.recharges_succeeded,
                "recharges_failed": c.recharges_failed,
                "credits_purchased": c.credits_purchased,
                "credits_expired": c.credits_expired,
                "final_balance": c.final_balance,
            }
        )
        return section


@dataclass(frozen=True)
class SummaryCounts:
    """summary.json's counters by org index (money in micro-units): `by_reason` is
    n_orgs x len(END_REASON_NAMES), the others one value per org."""

    by_reason: NDArray[np.int64]
    billed_s: NDArray[np.int64]
    credits_charged: NDArray[np.int64]
    credits_purchased: NDArray[np.int64]
    recharges_succeeded: NDArray[np.int64]
    recharges_failed: NDArray[np.int64]
    credits_expired: NDArray[np.int64]


@dataclass(frozen=True)
class _Counters:
    """One summary section's numbers (an org's, or the total), money as its text."""

    by_reason: list[int]
    by_type: list[int]
    billed_s: int
    recharges_succeeded: int
    recharges_failed: int
    credits_charged: str
    credits_purchased: str
    credits_expired: str
    final_balance: str


def _money_texts(micro: NDArray[np.int64]) -> list[str]:
    """`format_micro` of each amount, made a column at a time (`csv_columns.decimals` writes
    the same text): 40,000 amounts of 10,000 orgs cost 30 ms one by one.  Not -2**63, which
    no sum of a run's amounts reaches (ValueError)."""
    out = io.BytesIO()
    RowJoiner().write([csv_columns.decimals(micro, 6), b"\n"], out)
    return out.getvalue().decode().split("\n")[:-1]
