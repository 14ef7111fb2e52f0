"""Configuration and record types shared by the rating core and its callers.

Everything the core needs to rate calls arrives as these frozen objects (the
tenant, its users, tariffs, plans, credits) or as struct-of-arrays batches
(arrivals in, CDRs out).  The core never parses files: the simulator's scenario
loader builds these, and tests build them directly.

Units: money is integer micro-units (1e-6 of the currency), time is integer
milliseconds since the simulation start, increments are whole seconds.
"""

from __future__ import annotations

import enum
import functools
import itertools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._columns import with_room

MICRO = 1_000_000
MS_PER_S = 1_000

LICENSES = frozenset(
    {
        "phone_system",
        "domestic_calling_plan",
        "international_calling_plan",
        "audio_conferencing",
        "communications_credits",
        "e5",
    }
)


class CallKind(enum.IntEnum):
    """What was asked for at arrival (the scenario's `type` of an explicit call)."""

    OUTBOUND = 0
    CONFERENCE_DIAL_OUT = 1
    TOLL_FREE = 2


class CallType(enum.IntEnum):
    """The CDR's `call_type`: the kind after routing (SPEC §3 admission step 3)."""

    OUTBOUND = 0  # only for an outbound call that was unroutable
    DOMESTIC = 1
    INTERNATIONAL = 2
    CONFERENCE_DIAL_OUT = 3
    TOLL_FREE = 4


CALL_TYPE_NAMES = ("outbound", "domestic", "international", "conference_dial_out", "toll_free")


class EndReason(enum.IntEnum):
    """How a call ended (SPEC §3 Failing, admission); `END_REASON_NAMES` spells each in outputs."""

    HANGUP = 0
    DROPPED_BALANCE_EXHAUSTED = 1
    BLOCKED_NO_BALANCE = 2
    NOT_LICENSED = 3
    UNROUTABLE = 4
    SIMULATION_END = 5


END_REASON_NAMES = (
    "hangup",
    "dropped_balance_exhausted",
    "blocked_no_balance",
    "not_licensed",
    "unroutable",
    "simulation_end",
)


@dataclass(frozen=True)
class Tariff:
    """One `[[tariff]]` or `[[toll_free_tariff]]` row (toll-free rows have no country/zone)."""

    prefix: str  # E.164 digits without '+'
    per_minute_micro: int
    first_s: int
    next_s: int
    country: str = ""
    zone: str = ""
    plan_excluded: bool = False


@dataclass(frozen=True)
class Plans:
    """Minutes per user per month; `domestic_minutes` always holds a "default" key."""

    domestic_minutes: Mapping[str, int] = field(default_factory=lambda: {"default": 3000})
    international_minutes: int = 600
    dial_out_minutes: int = 60
    dial_out_zones: tuple[str, ...] = ("A",)


@dataclass(frozen=True)
class Credits:
    """An org's `[orgs.credits]` table."""

    initial_micro: int = 0
    auto_recharge: bool = False
    recharge_below_micro: int = 0
    recharge_amount_micro: int = 0
    card_expires: date | None = None  # valid through the end of that UTC day; None: never expires
    retry_after_ms: int = 24 * 3600 * MS_PER_S


@dataclass(frozen=True)
class User:
    """One user of an org: their country sets the pools they feed and draw from."""

    id: str
    country: str  # ISO 3166 alpha-2
    licenses: frozenset[str]  # as written; `e5` is expanded by `effective_licenses`

    @functools.cached_property  # read per user by the pools and the admission tables
    def effective_licenses(self) -> frozenset[str]:
        """The licenses with `e5` expanded to phone_system + audio_conferencing (SPEC §2)."""
        if "e5" in self.licenses:
            return self.licenses | {"phone_system", "audio_conferencing"}
        return self.licenses


@dataclass(frozen=True)
class Org:
    """One tenant: its users, toll-free numbers and credits (None: a balance of 0)."""

    id: str
    users: Sequence[User]  # a tuple, or `Users` (groups kept whole) from a scenario file
    toll_free_numbers: tuple[str, ...] = ()  # "+1800..." strings as written
    credits: Credits | None = None
    token: str | None = None  # server mode (`callsim serve`) authentication


@dataclass(frozen=True)
class RatingSetup:
    """Everything the rating core is configured with: SPEC §2 minus traffic."""

    start: datetime  # UTC, tz-aware
    end_ms: int  # simulation duration in ms
    currency: str
    plans: Plans
    tariffs: tuple[Tariff, ...]
    toll_free_tariffs: tuple[Tariff, ...]
    orgs: tuple[Org, ...]

    def users(self) -> list[tuple[int, User]]:
        """All users as (org index, user), in the global user numbering used by `Arrivals.user`."""
        return [(o, u) for o, org in enumerate(self.orgs) for u in org.users]

    @functools.cached_property
    def user_kinds(self) -> tuple[UserKind, ...]:
        """The users in global order as runs of users alike but for their ids: the pools and
        the admission tables are built per run, and a group of a million users is one."""
        alike = operator.attrgetter("country", "licenses")
        kinds = []
        for o, org in enumerate(self.orgs):
            if hasattr(org.users, "kinds"):  # `Users`: a group is one part
                kinds += [UserKind(o, *kind) for kind in org.users.kinds()]
                continue
            for (country, licenses), members in itertools.groupby(org.users, alike):
                first = next(members)
                count = 1 + len(list(members))
                kinds.append(UserKind(o, count, country, first.effective_licenses))
        return tuple(kinds)


class UserKind(NamedTuple):
    """`count` users of org `org`, next to each other in the numbering, alike but for their ids."""

    org: int
    count: int
    country: str
    licenses: frozenset[str]  # effective: `e5` expanded


def parse_number(text: str) -> int:
    """'+12125550100' -> 12125550100.  Numbers travel through the core as int64 digits."""
    return int(text.lstrip("+"))


def format_number(digits: int) -> str:
    """12125550100 -> '+12125550100'; 0 (no number) -> ''."""
    return f"+{digits}" if digits > 0 else ""


@dataclass
class Arrivals:
    """A batch of call arrivals, struct of arrays, sorted by (t_ms, call_id).

    `user` is the global user index (see `RatingSetup.users`), -1 for toll-free.
    `from_number` is 0 when absent.  `holding_ms` is how long the caller would
    stay if nothing cut the call.
    """

    call_id: NDArray[np.int64]
    t_ms: NDArray[np.int64]
    org: NDArray[np.int32]
    user: NDArray[np.int32]
    kind: NDArray[np.int8]
    to_number: NDArray[np.int64]
    from_number: NDArray[np.int64]
    holding_ms: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.call_id)

    @classmethod
    def empty(cls) -> "Arrivals":
        """A batch of no arrivals, with the columns' dtypes."""
        return cls(*(np.empty(0, dtype=dt) for dt in _ARRIVAL_DTYPES))

    @classmethod
    def concat(cls, parts: "list[Arrivals]") -> "Arrivals":
        """The batches one after another (the caller keeps them in (t_ms, call_id) order)."""
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _ARRIVAL_FIELDS))

    def take(self, idx: NDArray[np.intp] | slice) -> "Arrivals":
        """The arrivals at `idx` (an index array, a mask or a slice)."""
        return Arrivals(*(getattr(self, f)[idx] for f in _ARRIVAL_FIELDS))


_ARRIVAL_FIELDS = ("call_id", "t_ms", "org", "user", "kind", "to_number", "from_number", "holding_ms")
_ARRIVAL_DTYPES = (np.int64, np.int64, np.int32, np.int32, np.int8, np.int64, np.int64, np.int64)


@dataclass
class CdrBatch:
    """Finished calls, struct of arrays, sorted by (end_ms, call_id).

    Strings are indices into the engine's tables (`RatingEngine.tables`):
    org -> org ids, user -> global user index (-1: none), country/zone -> index
    into `countries`/`zones` (-1: empty), pool -> global pool index (-1: none
    used, i.e. pool_s == 0).
    """

    call_id: NDArray[np.int64]
    org: NDArray[np.int32]
    user: NDArray[np.int32]
    call_type: NDArray[np.int8]
    from_number: NDArray[np.int64]
    to_number: NDArray[np.int64]
    country: NDArray[np.int32]
    zone: NDArray[np.int32]
    start_ms: NDArray[np.int64]
    end_ms: NDArray[np.int64]
    billed_s: NDArray[np.int64]
    pool: NDArray[np.int32]
    pool_s: NDArray[np.int64]
    credits_micro: NDArray[np.int64]
    end_reason: NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.call_id)

    @classmethod
    def concat(cls, parts: "list[CdrBatch]") -> "CdrBatch":
        """The batches one after another, in the order given."""
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in CDR_FIELDS))

    def take(self, idx: NDArray[np.intp] | slice) -> "CdrBatch":
        """The CDRs at `idx` (an index array, a mask or a slice)."""
        return CdrBatch(*(getattr(self, f)[idx] for f in CDR_FIELDS))


CDR_FIELDS = (
    "call_id", "org", "user", "call_type", "from_number", "to_number", "country", "zone",
    "start_ms", "end_ms", "billed_s", "pool", "pool_s", "credits_micro", "end_reason",
)
CDR_DTYPES = (
    np.int64, np.int32, np.int32, np.int8, np.int64, np.int64, np.int32, np.int32,
    np.int64, np.int64, np.int64, np.int32, np.int64, np.int64, np.int8,
)


class CdrBuffer:
    """CdrBatches appended one after another, taken back as one batch.

    `CdrBatch.concat` costs about a microsecond per part and column: a second
    of server ticks (a thousand batches of a few CDRs) would take ~20 ms to merge,
    in one GIL-holding burst that every setup in flight would wait out.  Appending
    to columns that grow by doubling costs the same per batch, spread over
    the ticks, and `take` hands the filled columns over without copying.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._cols = self._empty(capacity)
        self._n = 0

    @staticmethod
    def _empty(capacity: int) -> list[NDArray]:
        return [np.empty(capacity, dtype=dt) for dt in CDR_DTYPES]

    def __len__(self) -> int:
        return self._n

    def append(self, batch: CdrBatch) -> None:
        """Add `batch`'s CDRs after those appended so far (copied: the batch may be reused)."""
        m = len(batch)
        if not m:
            return
        n, end = self._n, self._n + m
        self._cols = with_room(self._cols, n, end, self._capacity)
        for col, name in zip(self._cols, CDR_FIELDS):
            col[n:end] = getattr(batch, name)
        self._n = end

    def take(self) -> CdrBatch:
        """Everything appended since the last `take`, in order; the buffer starts over empty."""
        batch = CdrBatch(*(col[: self._n] for col in self._cols))
        self._cols = self._empty(max(self._capacity, self._n))
        self._n = 0
        return batch


@dataclass(frozen=True)
class LedgerEvent:
    """One events.jsonl record before formatting.

    kind: credits_purchased | recharge_succeeded | recharge_failed |
    balance_exhausted | credits_expired | pools_refilled.
    amount_micro is set for purchases, recharges and expiries; reason for
    recharge_failed ("card_expired"); balance_micro for all but pools_refilled.
    """

    time_ms: int
    org: int
    kind: str
    balance_micro: int | None = None
    amount_micro: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Tables:
    """Index -> string tables for formatting CdrBatch and LedgerEvent."""

    org_ids: tuple[str, ...]
    user_ids: Sequence[str]  # global user index; `UserIds` (groups kept whole) from the engine
    countries: tuple[str, ...]
    zones: tuple[str, ...]
    pool_names: tuple[str, ...]  # global pool index -> "domestic:US" | "international:US" | "dial_out"
    pool_orgs: tuple[int, ...]  # global pool index -> org index
