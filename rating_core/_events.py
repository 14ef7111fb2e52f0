"""Ledger events held as columns: a window's events, in output order.

A busy org with a small recharge amount recharges at almost every instant (a
million `recharge_succeeded` an hour).  Found in bulk, those events stay
arrays from the charging to events.jsonl (formatted a column at a time);
the few others (refills, expiries, refusals, stepped instants) are
`LedgerEvent` objects turned into columns once per window.  Iterating gives
`LedgerEvent`s, for the consumers that look at events one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

from ._model import LedgerEvent

#: Event kinds in their order within an org instant (SPEC §3); the code of a kind is its index.
KINDS = ("credits_purchased", "pools_refilled", "credits_expired", "balance_exhausted",
         "recharge_succeeded", "recharge_failed")
KIND_CODE = {kind: code for code, kind in enumerate(KINDS)}
#: Kinds without an amount / without a balance (their columns hold 0 there).
NO_AMOUNT = frozenset({"pools_refilled", "balance_exhausted", "recharge_failed"})
NO_BALANCE = frozenset({"pools_refilled"})
#: recharge_failed reasons; the code of a reason is its index, -1 for none.
REASONS = ("card_expired",)
RECHARGE_SUCCEEDED = KIND_CODE["recharge_succeeded"]
RECHARGE_FAILED = KIND_CODE["recharge_failed"]
BALANCE_EXHAUSTED = KIND_CODE["balance_exhausted"]
CREDITS_EXPIRED = KIND_CODE["credits_expired"]
CARD_EXPIRED = REASONS.index("card_expired")


class EventColumns:
    """Events as parallel columns: time_ms, org, kind (a `KINDS` code), balance and amount
    (micro-units), reason (a `REASONS` code, -1 for none)."""

    __slots__ = ("time_ms", "org", "kind", "balance", "amount", "reason")

    def __init__(self, time_ms: NDArray[np.int64], org: NDArray[np.int64], kind: NDArray[np.int8],
                 balance: NDArray[np.int64], amount: NDArray[np.int64], reason: NDArray[np.int8]) -> None:
        self.time_ms, self.org, self.kind = time_ms, org, kind
        self.balance, self.amount, self.reason = balance, amount, reason

    @classmethod
    def empty(cls) -> "EventColumns":
        return cls.from_events([])

    @classmethod
    def from_events(cls, events: Sequence[LedgerEvent]) -> "EventColumns":
        """The columns of `events`, in the order given.

        Raises ValueError for an unknown kind, or a field its kind has left unset (a bug
        in the producer: the shape of a line comes from the kind, SPEC §4).
        """
        for e in events:
            if e.kind not in KIND_CODE:
                raise ValueError(f"unknown ledger event kind {e.kind!r}")
            if (e.balance_micro is None and e.kind not in NO_BALANCE) or (
                    e.amount_micro is None and e.kind not in NO_AMOUNT) or (
                    (e.reason is None) == (e.kind == "recharge_failed")):
                raise ValueError(f"{e.kind} event at {e.time_ms} ms has unset or stray fields")
        return cls(
            np.array([e.time_ms for e in events], dtype=np.int64),
            np.array([e.org for e in events], dtype=np.int64),
            np.array([KIND_CODE[e.kind] for e in events], dtype=np.int8),
            np.array([e.balance_micro or 0 for e in events], dtype=np.int64),
            np.array([e.amount_micro or 0 for e in events], dtype=np.int64),
            np.array([-1 if e.reason is None else REASONS.index(e.reason) for e in events], dtype=np.int8),
        )

    @classmethod
    def recharges(cls, time_ms: NDArray[np.int64], org: NDArray[np.int64], balance: NDArray[np.int64],
                  amount: NDArray[np.int64]) -> "EventColumns":
        """`recharge_succeeded` at each (time_ms, org): the balance after it and its amount."""
        n = len(time_ms)
        return cls(time_ms, org, np.full(n, RECHARGE_SUCCEEDED, dtype=np.int8), balance, amount,
                   np.full(n, -1, dtype=np.int8))

    @classmethod
    def concat(cls, parts: Sequence["EventColumns"]) -> "EventColumns":
        parts = [p for p in parts if len(p)]
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in cls.__slots__))

    def take(self, index: NDArray[np.intp]) -> "EventColumns":
        return EventColumns(*(getattr(self, name)[index] for name in self.__slots__))

    def in_time_order(self) -> "EventColumns":
        """Sorted by (time, org), keeping the given order within each org instant.

        A window's events are runs already in order (bulk recharges org by org, each
        stepped org's events): a thousand orgs' runs cost a stable sort (timsort merging
        them) ~8 times what one sort of unique keys does, so (time, org) and each event's
        position are packed into one int64 key when they fit (positions in the low bits
        keep the given order among equal pairs, and give the order back).  A window
        already in order is not copied.
        """
        n = len(self)
        if n < 2:
            return self
        first = int(self.time_ms.min())
        span, width = int(self.time_ms.max()) - first + 1, int(self.org.max()) + 1
        if span >= (1 << 62) // width:
            return self.take(np.lexsort((self.org, self.time_ms)))  # stable
        key = (self.time_ms - first) * width + self.org
        if (key[1:] >= key[:-1]).all():
            return self
        bits = n.bit_length()
        if span < (1 << (62 - bits)) // width:
            order = np.sort((key << bits) | np.arange(n)) & ((1 << bits) - 1)
        else:
            order = np.argsort(key, kind="stable")
        return self.take(order)

    def of(self, kind: str) -> NDArray[np.bool_]:
        """Which events are of `kind`."""
        return self.kind == KIND_CODE[kind]

    def __len__(self) -> int:
        return len(self.time_ms)

    def __iter__(self) -> Iterator[LedgerEvent]:
        columns = zip(self.time_ms.tolist(), self.org.tolist(), self.kind.tolist(), self.balance.tolist(),
                      self.amount.tolist(), self.reason.tolist())
        for t, o, k, balance, amount, reason in columns:
            kind = KINDS[k]
            yield LedgerEvent(t, o, kind, None if kind in NO_BALANCE else balance,
                              None if kind in NO_AMOUNT else amount, None if reason < 0 else REASONS[reason])
