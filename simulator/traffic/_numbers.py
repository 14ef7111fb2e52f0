"""Number tables of the traffic sources: the destinations (or toll-free callers) a source
dials, and the vectorised picks among them.

A number is a destination prefix followed by uniform random digits (`Prefixes`), or a whole
number dialled as is (a weighted entry with `number`).  Plain `destinations` (and the
tariffs' prefixes when a source names none) are picked uniformly (`Groups`); a weighted
table by its weights (`Weighted`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from rating_core import RatingSetup

if TYPE_CHECKING:  # the loader's values; traffic only reads them
    from ..scenario import Destination, TrafficSpec

E164_MIN_DIGITS = 11  # generated numbers are at least this long ...
E164_MAX_DIGITS = 15  # ... and never longer than E.164 allows (unless the prefix already is)


@dataclass(frozen=True)
class Prefixes:
    """Distinct digit prefixes and how to complete each one into a full number.

    A number is `value * scale + uniform(0, scale)`: the prefix followed by random digits up to
    max(11, len(prefix) + 1) digits, capped at 15 (E.164).  The extra digit for long prefixes
    keeps the numbers of one prefix distinct from each other.
    """

    digits: tuple[str, ...]
    value: NDArray[np.int64]
    scale: NDArray[np.int64]  # 10 ** trailing digits

    @classmethod
    def of(cls, prefixes: Sequence[str]) -> Prefixes:
        digits = tuple(dict.fromkeys(prefixes))  # dedupe, keep first-seen order
        lengths = [min(E164_MAX_DIGITS, max(E164_MIN_DIGITS, len(p) + 1)) for p in digits]
        trailing = [max(0, n - len(p)) for p, n in zip(digits, lengths)]
        return cls(
            digits=digits,
            value=np.array([int(p) for p in digits], dtype=np.int64),
            scale=np.array([10**k for k in trailing], dtype=np.int64),
        )

    @classmethod
    def of_entries(cls, entries: Sequence[Destination]) -> Prefixes:
        """One row per weighted entry, in order (not deduplicated: the weights are per entry).

        A prefix completes as in `of`; a whole number has no trailing digits (scale 1).
        """
        digits = tuple(e.digits for e in entries)
        lengths = [len(e.digits) if e.number
                   else min(E164_MAX_DIGITS, max(E164_MIN_DIGITS, len(e.digits) + 1))
                   for e in entries]
        return cls(
            digits=digits,
            value=np.array([int(p) for p in digits], dtype=np.int64),
            scale=np.array([10 ** max(0, n - len(p)) for p, n in zip(digits, lengths)],
                           dtype=np.int64),
        )

    @cached_property
    def largest_scale(self) -> int:
        """The bound of `draw_trailing`'s draws."""
        return int(self.scale.max())

    def draw_trailing(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        """n draws of trailing digits, one below the largest scale per call.

        Scales are powers of ten, so each divides the largest: one draw below the largest,
        taken modulo each call's scale (`number`), is exactly uniform and much faster than
        per-call bounds.  When every entry is a whole number (largest scale 1) the draw has
        one possible value and takes nothing from the generator, so it is not made.
        """
        if self.largest_scale == 1:
            return np.zeros(n, dtype=np.int64)
        return rng.integers(0, self.largest_scale, size=n, dtype=np.int64)

    def number(self, idx: NDArray[np.intp], trailing: NDArray[np.int64]) -> NDArray[np.int64]:
        """The full numbers of the prefixes `idx` completed by `draw_trailing`'s draws."""
        scale = self.scale[idx]
        return self.value[idx] * scale + trailing % scale


@dataclass(frozen=True)
class Groups:
    """Candidate prefix lists, one per group, concatenated (CSR layout) for vectorised picks."""

    members: NDArray[np.intp]  # prefix indices, group after group
    offset: NDArray[np.intp]
    count: NDArray[np.intp]
    common: int  # a multiple of every count (their lcm), 0 if too large for one int64 draw

    @classmethod
    def of(cls, groups: Sequence[Sequence[int]]) -> Groups:
        count = np.array([len(g) for g in groups], dtype=np.intp)
        offset = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.intp)
        members = np.array([i for g in groups for i in g], dtype=np.intp)
        lcm = math.lcm(*(int(c) for c in count if c > 0))
        return cls(members=members, offset=offset, count=count, common=lcm if lcm < 2**62 else 0)

    def draw(self, rng: np.random.Generator, slot_group: NDArray[np.intp],
             slot: NDArray[np.int64]) -> NDArray[np.int64]:
        """For each call (its caller `slot`, of group `slot_group[slot]`), a draw whose remainder
        by its group's size is the place of its uniform member (`member`).

        A draw below a common multiple of the group sizes, modulo each size, is exactly uniform
        and ~3x faster than a draw with one bound per call (the fallback for huge multiples).
        With one candidate in every group (a common multiple of 1) there is one possible
        value, which takes nothing from the generator, so the draw is not made.
        """
        if self.common > 1:
            return rng.integers(0, self.common, size=len(slot))
        if self.common == 1:
            return np.zeros(len(slot), dtype=np.int64)
        return rng.integers(0, self.count[slot_group[slot]])

    def member(self, group: NDArray[np.intp], drawn: NDArray[np.int64]) -> NDArray[np.intp]:
        """The members the calls of groups `group` picked with `draw`'s values."""
        return self.members[self.offset[group] + drawn % self.count[group]]


@dataclass(frozen=True)
class Weighted:
    """Entries picked by their weights, the same table for every caller."""

    cumulative: NDArray[np.float64]  # running sum of the weights, the total last
    last: int  # the last entry with a positive weight

    @classmethod
    def of(cls, weights: Sequence[float]) -> Weighted:
        positive = [i for i, w in enumerate(weights) if w > 0]
        return cls(np.cumsum(np.array(weights, dtype=np.float64)), positive[-1])

    def draw(self, rng: np.random.Generator, slot_group: NDArray[np.intp],
             slot: NDArray[np.int64]) -> NDArray[np.intp]:
        """One entry per call (the callers `slot`: all share this table), by its place.

        Inverse CDF of one uniform draw: the first entry whose running sum is above u x total
        (`side="right"`), so an entry of weight 0 is never picked.
        """
        u = rng.random(len(slot)) * self.cumulative[-1]
        return np.minimum(np.searchsorted(self.cumulative, u, side="right"), self.last)


class DefaultDestinations:
    """Tariff prefixes a source calls when it names no `destinations`.

    domestic: prefixes of the caller's own country; international: of any other country;
    conference_dial_out: all.  When a caller's country leaves nothing (no tariff of its
    country, or only its country), it falls back to all prefixes: the call is then rated as it
    routes (e.g. an international source whose only tariff is domestic makes domestic calls).
    One group per distinct caller country keeps the per-call pick vectorised.

    Built once for all sources: the prefix table, every user's country and each country's
    candidates are shared, so resolving a source costs its own callers, not the whole setup
    (10,000 one-user orgs with a source each would otherwise be quadratic).
    """

    def __init__(self, setup: RatingSetup) -> None:
        first_country: dict[str, str] = {}
        for t in setup.tariffs:
            first_country.setdefault(t.prefix, t.country)
        self._prefixes = Prefixes.of(list(first_country))
        self._countries = list(first_country.values())
        self._everything = list(range(len(self._countries)))
        # every user's country as an index into `_country_names`, read per run of users alike
        kinds = setup.user_kinds
        self._country_names = sorted({k.country for k in kinds})
        code = {c: i for i, c in enumerate(self._country_names)}
        self._user_country = np.repeat(np.array([code[k.country] for k in kinds], dtype=np.intp),
                                       [k.count for k in kinds])
        self._candidates: dict[tuple[str, bool], list[int]] = {}
        # the groups of each (caller countries, domestic): one object for the sources alike
        self._groups: dict[tuple[tuple[str, ...], bool] | None, Groups] = {
            None: Groups.of([self._everything])}

    def of(self, spec: TrafficSpec) -> tuple[Prefixes, NDArray[np.intp], Groups]:
        """The source's prefixes, each caller's candidate group, and the groups."""
        if spec.type == "conference_dial_out":
            return self._prefixes, np.zeros(len(spec.users), dtype=np.intp), self._groups[None]
        slot_country = self._user_country[np.asarray(spec.users, dtype=np.intp)]
        one = len(slot_country) and bool((slot_country == slot_country[0]).all())
        if one:  # the usual source: its callers share a country (10,000 one-user orgs: no sort each)
            in_order = slot_country[:1]
        else:
            codes, first = np.unique(slot_country, return_index=True)
            in_order = codes[np.argsort(first)]  # the callers' countries, as they first appear
        distinct = tuple(self._country_names[c] for c in in_order.tolist())
        domestic = spec.type == "domestic"
        key = (distinct, domestic) if distinct else None
        if key not in self._groups:
            self._groups[key] = Groups.of([self._candidates_of(c, domestic) for c in distinct])
        if one:
            return self._prefixes, np.zeros(len(slot_country), dtype=np.intp), self._groups[key]
        group_of = np.zeros(len(self._country_names), dtype=np.intp)
        group_of[in_order] = np.arange(len(in_order))
        return self._prefixes, group_of[slot_country], self._groups[key]

    def _candidates_of(self, country: str, domestic: bool) -> list[int]:
        key = (country, domestic)
        if key not in self._candidates:
            own = [i for i, tc in enumerate(self._countries) if (tc == country) == domestic]
            self._candidates[key] = own or self._everything
        return self._candidates[key]
