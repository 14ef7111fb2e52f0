"""SPEC §3 admission, in bulk: route, check licenses, type the call, pick its funding.

A call's outcome depends on a few facts: its kind, the tariff row its number
matches (none, or whether the row is plan-excluded and in a dial-out zone),
its user's licenses, and whether the destination is in the user's country.
The rules are written once, for one call, as plain functions (`_call_type`,
`_licensed`, `_pool_kind`), and evaluated at start for every combination of
those facts (960 of them) into small tables.  A batch then costs a few
gathers: route, gather the row's and the user's facts, add them into one key
per call, and read the outcome from the tables.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray

from ._columns import with_room
from ._ledger import Ledger
from ._model import Arrivals, CallKind, CallType, EndReason, RatingSetup, Tariff, parse_number
from ._routing import PrefixTable
from ._tuning import Tuning

_LICENSE_BITS = {
    "phone_system": 1,
    "domestic_calling_plan": 2,
    "international_calling_plan": 4,
    "audio_conferencing": 8,
    "communications_credits": 16,
}
PHONE, DOMESTIC_PLAN, INTL_PLAN, AUDIO, CREDITS = (1, 2, 4, 8, 16)
MEMO_SIZE = 65_536  # distinct (org, user, kind, to, from) remembered; forgotten all at once when full

# The funding pool a call draws from, by kind; the pool itself depends on the user (org, country).
NO_POOL, DOMESTIC_POOL, INTERNATIONAL_POOL, DIAL_OUT_POOL = range(4)

# A tariff row's facts as one code: plan-excluded (1) + in a dial-out zone (2); UNROUTED: no row.
_EXCLUDED, _DIAL_ZONE, UNROUTED = 1, 2, 4
# Key of a call into the outcome tables: ((kind * 5 + route) * 32 + license bits) * 2 + same country.
_KINDS, _ROUTES, _BITS = len(CallKind), UNROUTED + 1, 32
_POOL_KINDS = 4
_TOLL_FREE = int(CallKind.TOLL_FREE)  # numpy compares plain ints ~4x faster than IntEnums


@dataclass
class Admitted:
    """Per arrival: the routed attributes; `reject` is -1 for calls that go on to be charged."""

    reject: NDArray[np.int8]
    call_type: NDArray[np.int8]
    country: NDArray[np.int32]
    zone: NDArray[np.int32]
    rate: NDArray[np.int64]
    first_s: NDArray[np.int64]
    next_s: NDArray[np.int64]
    pool: NDArray[np.int64]
    credits_ok: NDArray[np.bool_]


# --- the rules, for one call --------------------------------------------------------------


def _call_type(kind: int, routed: bool, same_country: bool) -> int:
    """Admission step 3."""
    if kind == CallKind.TOLL_FREE:
        return CallType.TOLL_FREE
    if kind == CallKind.CONFERENCE_DIAL_OUT:
        return CallType.CONFERENCE_DIAL_OUT
    if not routed:
        return CallType.OUTBOUND
    return CallType.DOMESTIC if same_country else CallType.INTERNATIONAL


def _licensed(kind: int, bits: int) -> bool:
    """Admission step 2."""
    if kind == CallKind.OUTBOUND:
        return bool(bits & PHONE) and bool(bits & (DOMESTIC_PLAN | INTL_PLAN))
    if kind == CallKind.CONFERENCE_DIAL_OUT:
        return bool(bits & AUDIO)
    return True


def _pool_kind(call_type: int, bits: int, route: int) -> int:
    """Admission step 4, the pool (an unrouted call is rejected and draws from none)."""
    if route == UNROUTED or route & _EXCLUDED:
        return NO_POOL
    if call_type == CallType.DOMESTIC:
        return DOMESTIC_POOL
    if call_type == CallType.INTERNATIONAL and bits & INTL_PLAN:
        return INTERNATIONAL_POOL
    if call_type == CallType.CONFERENCE_DIAL_OUT and route & _DIAL_ZONE:
        return DIAL_OUT_POOL
    return NO_POOL


def _reject(kind: int, bits: int, route: int) -> int:
    """Steps 1 and 2: the end reason of a call that is not charged at all, -1 for the others."""
    if route == UNROUTED:
        return EndReason.UNROUTABLE
    return -1 if _licensed(kind, bits) else EndReason.NOT_LICENSED


def _credits_ok(kind: int, bits: int) -> bool:
    """Step 4, the credits."""
    return kind == CallKind.TOLL_FREE or bool(bits & CREDITS)


@dataclass(frozen=True)
class _Outcomes:
    """The rules evaluated for every key: call type, rejection, pool kind, credits allowed."""

    call_type: NDArray[np.int8]
    reject: NDArray[np.int8]
    pool_kind: NDArray[np.int64]
    credits_ok: NDArray[np.bool_]

    @classmethod
    def tabulate(cls) -> "_Outcomes":
        rows = []
        for kind in range(_KINDS):
            for route in range(_ROUTES):
                for bits in range(_BITS):
                    for same in (False, True):
                        call_type = _call_type(kind, route != UNROUTED, same)
                        rows.append((call_type, _reject(kind, bits, route),
                                     _pool_kind(call_type, bits, route), _credits_ok(kind, bits)))
        columns = list(zip(*rows))
        return cls(np.array(columns[0], dtype=np.int8), np.array(columns[1], dtype=np.int8),
                   np.array(columns[2], dtype=np.int64), np.array(columns[3], dtype=bool))


_OUTCOMES = _Outcomes.tabulate()
_KIND_KEY = np.arange(_KINDS, dtype=np.int64) * (_ROUTES * _BITS * 2)


class Admission:
    """Lookup tables built once from the setup; `admit` rates a batch of arrivals."""

    def __init__(self, setup: RatingSetup, ledger: Ledger, small_batch: int = Tuning.small_batch) -> None:
        self.small_batch = small_batch  # batches up to this size are admitted through the memo
        countries = sorted(
            {k.country for k in setup.user_kinds} | {t.country for t in setup.tariffs if t.country}
        )
        zones = sorted({t.zone for t in setup.tariffs if t.zone})
        self.countries, self.zones = tuple(countries), tuple(zones)
        cidx = {c: i for i, c in enumerate(countries)}
        zidx = {z: i for i, z in enumerate(zones)}
        self.outbound = PrefixTable(setup.tariffs)
        self.toll_free = PrefixTable(setup.toll_free_tariffs)
        self._routes = _RouteColumns.build(setup.tariffs, setup.toll_free_tariffs, cidx, zidx,
                                           set(setup.plans.dial_out_zones))
        # toll-free match -> row of the combined table (-1, no match, stays -1)
        n_out, n_tf = len(setup.tariffs), len(setup.toll_free_tariffs)
        self._tf_row = np.append(np.arange(n_out, n_out + n_tf, dtype=np.int64), -1)
        # each org's toll-free numbers as keys org * len(numbers) + the number's index among the
        # distinct ones: within int64 for any count of orgs (a number itself has up to 15 digits)
        owner = np.array([o for o, org in enumerate(setup.orgs) for _ in org.toll_free_numbers],
                         dtype=np.int64)
        owned = np.array([parse_number(n) for org in setup.orgs for n in org.toll_free_numbers],
                         dtype=np.int64)
        self._tf_numbers = np.unique(owned)
        self._tf_keys = np.sort(owner * len(self._tf_numbers) + np.searchsorted(self._tf_numbers, owned))
        self._users = _UserColumns.build(setup, ledger, cidx)
        # (org, user, kind, to, from) -> row of `_known`, the admissions of the calls remembered
        self._memo: dict[tuple[int, int, int, int, int], int] = {}
        self._known: Admitted | None = None

    def admit(self, a: Arrivals) -> Admitted:
        """Route, license, type and fund each arrival.

        The outcome depends only on the call's (org, user, kind, to, from) and on
        tables fixed at start.  Small batches (a server tick's few setups) are
        answered from a memo of earlier identical calls, a dict look-up a call and
        one gather per column: the array passes cost ~0.2 ms whatever the batch size.
        """
        if not 0 < len(a) <= self.small_batch:
            return self._admit_arrays(a)
        keys = list(zip(a.org.tolist(), a.user.tolist(), a.kind.tolist(),
                        a.to_number.tolist(), a.from_number.tolist()))
        memo = self._memo
        missing = [i for i, key in enumerate(keys) if key not in memo]
        if missing:
            self._remember(a, keys, missing)
        rows = np.array([memo[key] for key in keys], dtype=np.intp)
        known = self._known
        return Admitted(*(getattr(known, name)[rows] for name in _ADMITTED_FIELDS))

    def _remember(self, a: Arrivals, keys: list[tuple[int, int, int, int, int]], missing: list[int]) -> None:
        """Admit the arrivals not in the memo with the array passes and add them to it."""
        memo = self._memo
        if len(memo) + len(missing) > MEMO_SIZE:
            memo.clear()
            self._known = None
            missing = list(range(len(keys)))
        fresh: dict[tuple[int, int, int, int, int], int] = {}
        for i in missing:  # a batch may repeat a key: each is admitted once
            fresh.setdefault(keys[i], i)
        admitted = self._admit_arrays(a.take(np.fromiter(fresh.values(), dtype=np.intp, count=len(fresh))))
        start, end = len(memo), len(memo) + len(fresh)
        known = self._known or Admitted(*(np.empty(0, dtype=getattr(admitted, name).dtype)
                                          for name in _ADMITTED_FIELDS))
        known = self._known = Admitted(*with_room([getattr(known, name) for name in _ADMITTED_FIELDS],
                                                  start, end, 64))
        for name in _ADMITTED_FIELDS:
            getattr(known, name)[start:end] = getattr(admitted, name)
        for k, key in enumerate(fresh, start=start):
            memo[key] = k

    def _admit_arrays(self, a: Arrivals) -> Admitted:
        tf_row = self._tf_row.take(self.toll_free.match(a.from_number))
        toll_free = np.where(self._is_toll_free_number(a), tf_row, -1)
        row = np.where(a.kind != _TOLL_FREE, self.outbound.match(a.to_number), toll_free)  # -1: unrouted
        r, u = self._routes, self._users
        country = r.country.take(row)
        key = (_KIND_KEY.take(a.kind) + r.key.take(row) + u.key.take(a.user)
               + (country == u.country.take(a.user)))
        return Admitted(
            reject=_OUTCOMES.reject.take(key),
            call_type=_OUTCOMES.call_type.take(key),
            country=country,
            zone=r.zone.take(row),
            rate=r.rate.take(row),
            first_s=r.first_s.take(row),
            next_s=r.next_s.take(row),
            pool=u.pools.take(u.pool_base.take(a.user) + _OUTCOMES.pool_kind.take(key)),
            credits_ok=_OUTCOMES.credits_ok.take(key),
        )

    def _is_toll_free_number(self, a: Arrivals) -> NDArray[np.bool_]:
        if not len(self._tf_keys):
            return np.zeros(len(a), dtype=bool)
        numbers = self._tf_numbers
        index = np.minimum(np.searchsorted(numbers, a.to_number), len(numbers) - 1)
        keys = a.org.astype(np.int64) * len(numbers) + index
        pos = np.minimum(np.searchsorted(self._tf_keys, keys), len(self._tf_keys) - 1)
        return (numbers[index] == a.to_number) & (self._tf_keys[pos] == keys)


_ADMITTED_FIELDS = tuple(f.name for f in fields(Admitted))


@functools.cache  # users share a few license sets: 5,000 users cost 5,000 look-ups, not sums
def _license_bits(licenses: frozenset[str]) -> int:
    return sum(_LICENSE_BITS.get(x, 0) for x in licenses)


@dataclass(frozen=True)
class _RouteColumns:
    """Per tariff row (outbound rows, then toll-free rows, then the unrouted row at -1): what a
    call routed there is rated with, and its part of the outcome key."""

    rate: NDArray[np.int64]
    first_s: NDArray[np.int64]
    next_s: NDArray[np.int64]
    country: NDArray[np.int32]  # -1 for toll-free rows: they have no destination
    zone: NDArray[np.int32]
    key: NDArray[np.int64]

    @classmethod
    def build(cls, tariffs: tuple[Tariff, ...], toll_free: tuple[Tariff, ...], cidx: dict[str, int],
              zidx: dict[str, int], dial_zones: set[str]) -> "_RouteColumns":
        def route(t: Tariff, outbound: bool) -> int:
            return (_EXCLUDED if outbound and t.plan_excluded else 0) | (
                _DIAL_ZONE if outbound and t.zone in dial_zones else 0)

        rows = [(t, True) for t in tariffs] + [(t, False) for t in toll_free]
        return cls(
            rate=np.array([t.per_minute_micro for t, _ in rows] + [0], dtype=np.int64),
            first_s=np.array([t.first_s for t, _ in rows] + [1], dtype=np.int64),
            next_s=np.array([t.next_s for t, _ in rows] + [1], dtype=np.int64),
            country=np.array([cidx.get(t.country, -1) if out else -1 for t, out in rows] + [-1], dtype=np.int32),
            zone=np.array([zidx.get(t.zone, -1) if out else -1 for t, out in rows] + [-1], dtype=np.int32),
            key=np.array([route(t, out) for t, out in rows] + [UNROUTED], dtype=np.int64) * (_BITS * 2),
        )


@dataclass(frozen=True)
class _UserColumns:
    """Per user (then the no-user row at -1, for toll-free calls): country, part of the
    outcome key (license bits), and where its pools start in `pools`."""

    country: NDArray[np.int32]
    key: NDArray[np.int64]
    pool_base: NDArray[np.int64]
    pools: NDArray[np.int64]  # (org, country, pool kind) -> pool index, -1 for none; flattened

    @classmethod
    def build(cls, setup: RatingSetup, ledger: Ledger, cidx: dict[str, int]) -> "_UserColumns":
        n_countries = max(len(cidx), 1)
        pools = np.full((len(setup.orgs), n_countries, _POOL_KINDS), -1, dtype=np.int64)
        for p, (o, name) in enumerate(zip(ledger.pool_org, ledger.pool_names)):
            kind, _, cc = name.partition(":")
            if kind == "domestic":
                pools[o, cidx[cc], DOMESTIC_POOL] = p
            elif kind == "international":
                pools[o, cidx[cc], INTERNATIONAL_POOL] = p
            else:
                pools[o, :, DIAL_OUT_POOL] = p
        kinds = setup.user_kinds  # per run of users alike, then repeated for each of them
        counts = [k.count for k in kinds] + [1]
        bits = [_license_bits(k.licenses) for k in kinds]
        # the no-user row points at org 0's NO_POOL entries: toll-free calls draw from no pool
        base = [(k.org * n_countries + cidx[k.country]) * _POOL_KINDS for k in kinds]
        return cls(
            country=np.repeat(np.array([cidx[k.country] for k in kinds] + [-1], dtype=np.int32), counts),
            key=np.repeat(np.array(bits + [0], dtype=np.int64) * 2, counts),
            pool_base=np.repeat(np.array(base + [0], dtype=np.int64), counts),
            pools=pools.reshape(-1),
        )
