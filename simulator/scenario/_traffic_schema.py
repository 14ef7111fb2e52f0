"""The traffic shape tables of a `[[traffic]]` source: `rate_profile`, `holding` and weighted
`destinations` (docs/scenario.md), checked and turned into `_traffic_shapes` values.

Pydantic models check each table's keys and values one by one; the rules that relate them
(one of `hours`/`week`/`rates`, probabilities from 0 to 1 increasing, the distribution's own
keys) are checked here, each problem with the place of the key or item it is about, like
`traffic[2].rate_profile.week: 167 weights, expected 168`.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator

from .. import units
from ..units import show
from ._schema import MAX_CALLS_PER_HOUR, NonNegativeDuration, PositiveDuration, Prefix, E164, _Table, validate
from ._traffic_shapes import HOURS_PER_WEEK, Destination, Holding, RateProfile

__all__ = [
    "DISTRIBUTIONS", "MAX_DESTINATIONS", "MAX_POINTS", "MAX_SIGMA",
    "destinations", "holding", "rate_profile",
]

Problems = list[tuple[str, str]]

MAX_SIGMA = 4.0
"""Lognormal sigma: 4 puts the 99.99th percentile at ~3,000,000 x the median; real call
holding times fit between ~0.5 and ~2."""
MAX_POINTS = 10_000  # quantile points or histogram bins: a table, not a data set
MAX_DESTINATIONS = 100_000
MAX_WEIGHT = 1e9
MAX_UTC_OFFSET_MS = 14 * 3_600_000  # UTC+14:00 (Kiribati) is the farthest clock from UTC
DISTRIBUTIONS = ("exponential", "lognormal", "empirical", "histogram")


def _number(value: object, what: str) -> float:
    """A TOML integer or float, finite; `what` names it in the message."""
    if not (units.is_integer(value) or isinstance(value, float)):
        raise ValueError(f"expected {what} (a number), got {show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {show(value)}")
    return value  # type: ignore[return-value]


def _non_negative(what: str, maximum: float) -> PlainValidator:
    """A finite number from 0 to `maximum`; `what` names it when it is no number."""

    def check(value: object) -> float:
        number = _number(value, what)
        if number < 0:
            raise ValueError(f"must not be negative, got {show(value)}")
        if number > maximum:
            raise ValueError(f"too large: must be at most {maximum:.0e}, got {show(value)}")
        return float(number)

    return PlainValidator(check)


def _sigma(value: object) -> float:
    number = _number(value, "sigma")
    if not 0 <= number <= MAX_SIGMA:
        raise ValueError(f"must be from 0 to {MAX_SIGMA:g}, got {show(value)}")
    return float(number)


_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")


def _utc_offset(value: object) -> int:
    """ "+05:30", "-05:00" or "Z" -> ms east of UTC."""
    if value == "Z":
        return 0
    m = _OFFSET.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f'expected a UTC offset like "-05:00" or "+05:30", got {show(value)}')
    hours, minutes = int(m[2]), int(m[3])
    offset_ms = (hours * 60 + minutes) * 60_000
    if minutes >= 60 or offset_ms > MAX_UTC_OFFSET_MS:
        raise ValueError(f"must be from -14:00 to +14:00, got {show(value)}")
    return -offset_ms if m[1] == "-" else offset_ms


def _not_all_zero(noun: str, why: str = "this traffic would make no calls") -> AfterValidator:
    """A list of numbers of which at least one is above 0 (an empty one is a length problem)."""

    def check(values: list[float]) -> list[float]:
        if values and not any(values):
            raise ValueError(f"every {noun} is 0: {why}")
        return values

    return AfterValidator(check)


Weight = Annotated[float, _non_negative("a weight", MAX_WEIGHT)]
Rate = Annotated[float, _non_negative("a number of calls per hour", MAX_CALLS_PER_HOUR)]
Weights = Annotated[list[Weight], _not_all_zero("weight")]
Rates = Annotated[list[Rate], _not_all_zero("rate")]


class RateProfileModel(_Table):
    utc_offset: Annotated[int, PlainValidator(_utc_offset)] = 0
    hours: Weights | None = None
    week: Weights | None = None
    rates: Rates | None = None


def rate_profile(
    raw: object, place: str, calls_per_hour: float | None, rate_place: str
) -> tuple[RateProfile | None, float, Problems]:
    """(profile, peak rate, problems) of a `rate_profile` table; `calls_per_hour` as given (None
    when absent), `rate_place` where it is.  Without a table the rate is flat: (None, rate)."""
    if raw is None:
        if calls_per_hour is None:
            return None, 0.0, [(rate_place, "required (or rate_profile.rates)")]
        return None, calls_per_hour, []
    model, problems = validate(RateProfileModel, raw, place)
    if model is None:
        return None, 0.0, problems
    given = [key for key in ("hours", "week", "rates") if getattr(model, key) is not None]
    if len(given) != 1:
        what = "needs" if not given else "takes only one of"
        return None, 0.0, [(place, f'{what} "hours" (24 weights), "week" (168 weights) or '
                                   '"rates" (24 or 168 calls per hour)')]
    key = given[0]
    values: list[float] = getattr(model, key)
    lengths = (24, HOURS_PER_WEEK) if key == "rates" else (24 if key == "hours" else HOURS_PER_WEEK,)
    if len(values) not in lengths:
        noun = ("rate" if key == "rates" else "weight") + ("" if len(values) == 1 else "s")
        expected = " or ".join(str(n) for n in lengths)
        return None, 0.0, [(f"{place}.{key}", f"{len(values)} {noun}, expected {expected}")]
    if key == "rates":
        if calls_per_hour is not None:
            return None, 0.0, [(rate_place, "not allowed with rate_profile.rates (the rates are "
                                            "calls per hour already)")]
        per_hour = values
    else:
        if calls_per_hour is None:
            return None, 0.0, [(rate_place, f"required with rate_profile.{key} (the weights "
                                            "multiply it)")]
        per_hour = [calls_per_hour * w for w in values]
        k = max(range(len(values)), key=values.__getitem__)
        if per_hour[k] > MAX_CALLS_PER_HOUR:
            return None, 0.0, [(f"{place}.{key}[{k}]",
                                f"calls_per_hour x {show(values[k])} is above {MAX_CALLS_PER_HOUR:.0e} "
                                "calls per hour")]
    week = tuple(per_hour * (HOURS_PER_WEEK // len(per_hour)))
    profile = RateProfile(week, model.utc_offset)
    return profile, profile.peak, []


class _HoldingTable(_Table):
    distribution: str


class ExponentialModel(_HoldingTable):
    mean: PositiveDuration


class LognormalModel(_HoldingTable):
    median: PositiveDuration
    sigma: Annotated[float, PlainValidator(_sigma)]


def _probability(value: object) -> float:
    number = _number(value, "a probability")
    if not 0 <= number <= 1:
        raise ValueError(f"a probability must be from 0 to 1, got {show(value)}")
    return float(number)


def _quantile(value: object) -> tuple[float, int]:
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError(f'expected a [probability, duration] pair like [0.5, "2m"], got {show(value)}')
    probability = _probability(value[0])
    duration = units.parse_duration_ms(value[1])
    if duration < 0:
        raise ValueError(f"a duration must not be negative, got {show(value[1])}")
    return probability, duration


Points = Annotated[list[Annotated[tuple[float, int], PlainValidator(_quantile)]],
                   Field(min_length=2, max_length=MAX_POINTS)]


class EmpiricalModel(_HoldingTable):
    quantiles: Points


class HistogramModel(_HoldingTable):
    edges: Annotated[list[NonNegativeDuration], Field(min_length=2, max_length=MAX_POINTS + 1)]
    counts: Annotated[list[Annotated[float, _non_negative("a count", MAX_WEIGHT)]], _not_all_zero(
        "count", "the holding histogram has no counts to draw durations from")]


_HOLDING_MODELS: dict[str, type[_HoldingTable]] = {
    "exponential": ExponentialModel,
    "lognormal": LognormalModel,
    "empirical": EmpiricalModel,
    "histogram": HistogramModel,
}


def holding(raw: object, place: str, holding_mean_ms: int | None,
            mean_place: str) -> tuple[Holding | None, Problems]:
    """The holding-time distribution of a source: its `holding` table or `holding_mean`."""
    if raw is None:
        if holding_mean_ms is None:
            return None, [(mean_place, "required (or a [traffic.holding] table)")]
        return _exponential(holding_mean_ms), []
    if holding_mean_ms is not None:
        return None, [(place, "give either holding_mean or a holding table, not both")]
    if not isinstance(raw, dict):
        return None, [(place, f"expected a table, got {show(raw)}")]
    kind = raw.get("distribution")
    if not (isinstance(kind, str) and kind in _HOLDING_MODELS):
        listed = ", ".join(f'"{d}"' for d in DISTRIBUTIONS)
        problem = "required" if kind is None else f"expected one of {listed}, got {show(kind)}"
        return None, [(f"{place}.distribution", problem + ("" if kind is not None else
                                                           f" (one of {listed})"))]
    model, problems = validate(_HOLDING_MODELS[kind], raw, place)
    if model is None:
        return None, problems
    if isinstance(model, ExponentialModel):
        return _exponential(model.mean), []
    if isinstance(model, LognormalModel):
        return Holding.lognormal(model.median, model.sigma), []
    if isinstance(model, EmpiricalModel):
        return _empirical(model.quantiles, f"{place}.quantiles")
    assert isinstance(model, HistogramModel)
    return _histogram(model, place)


@lru_cache(maxsize=1024)
def _exponential(mean_ms: int) -> Holding:
    """One value per mean: files with thousands of sources repeat a few."""
    return Holding.exponential(mean_ms)


def _empirical(points: list[tuple[float, int]], place: str) -> tuple[Holding | None, Problems]:
    probabilities = [p for p, _ in points]
    durations = [d for _, d in points]
    if probabilities[0] != 0:
        return None, [(f"{place}[0]", f"the first probability must be 0, got {show(probabilities[0])}")]
    if probabilities[-1] != 1:
        return None, [(f"{place}[{len(points) - 1}]",
                       f"the last probability must be 1, got {show(probabilities[-1])}")]
    for i in range(1, len(points)):
        if probabilities[i] <= probabilities[i - 1]:
            return None, [(f"{place}[{i}]", f"probabilities must increase: {show(probabilities[i])} "
                                            f"after {show(probabilities[i - 1])}")]
        if durations[i] < durations[i - 1]:
            return None, [(f"{place}[{i}]", f"durations must not decrease: "
                                            f"{units.format_duration(durations[i])} after "
                                            f"{units.format_duration(durations[i - 1])}")]
    return Holding.inverse_cdf(tuple(probabilities), tuple(durations)), []


def _histogram(model: HistogramModel, place: str) -> tuple[Holding | None, Problems]:
    edges, counts = model.edges, model.counts
    if len(counts) != len(edges) - 1:
        return None, [(f"{place}.counts", f"{len(counts)} counts for {len(edges) - 1} bins "
                                          f"(one fewer than the {len(edges)} edges)")]
    for i in range(1, len(edges)):
        if edges[i] <= edges[i - 1]:
            return None, [(f"{place}.edges[{i}]", f"edges must increase: "
                                                  f"{units.format_duration(edges[i])} after "
                                                  f"{units.format_duration(edges[i - 1])}")]
    return Holding.histogram(tuple(edges), tuple(counts)), []


class DestinationModel(_Table):
    prefix: Prefix | None = None
    number: E164 | None = None
    weight: Weight = 1.0


_PLAIN_PREFIX = re.compile(r"[1-9][0-9]{0,14}", re.ASCII)  # `units.parse_prefix`'s pattern
_PLAIN_NUMBER = re.compile(r"\+[1-9][0-9]{1,14}", re.ASCII)  # `units.parse_e164`'s pattern


def _plain_destination(item: object) -> Destination | None:
    """`{ prefix = "44", weight = 2 }` or `{ number = "+4420...", weight = 2 }` read without
    `DestinationModel` (100,000 entries are normal): a `Prefix` or an `E164` and a `Weight` of
    the plain valid form, else None for the model to check and report."""
    if type(item) is not dict or not 1 <= len(item) <= 2:
        return None
    weight = item.get("weight", 1.0)
    if (type(weight) is not int and type(weight) is not float) or not 0 <= weight <= MAX_WEIGHT:
        return None  # NaN fails the comparison; bool is not int here
    if len(item) != 1 + ("weight" in item):
        return None  # a key but these
    prefix, number = item.get("prefix"), item.get("number")
    if type(prefix) is str and _PLAIN_PREFIX.fullmatch(prefix):
        return Destination(prefix, float(weight))
    if type(number) is str and _PLAIN_NUMBER.fullmatch(number):
        return Destination(number[1:], float(weight), number=True)
    return None


def destinations(
    items: list[object], place: str
) -> tuple[tuple[str, ...], tuple[Destination, ...] | None, Problems]:
    """(the digits of every entry, the weighted entries or None when all are plain prefixes,
    problems) of a `destinations` array whose items `_schema.TrafficModel` checked."""
    if all(isinstance(item, str) for item in items):
        return tuple(items), None, []  # type: ignore[arg-type]
    entries: list[Destination] = []
    problems: Problems = []
    for k, item in enumerate(items):
        if isinstance(item, str):
            entries.append(Destination(item))
            continue
        plain = _plain_destination(item)
        if plain is not None:
            entries.append(plain)
            continue
        at = f"{place}[{k}]"
        model, found = validate(DestinationModel, item, at)
        problems += found
        if model is None:
            continue
        if (model.prefix is None) == (model.number is None):
            problems.append((at, 'needs either "prefix" (completed with random digits) or '
                                 '"number" (dialled as is)'))
            continue
        if model.prefix is not None:
            entries.append(Destination(model.prefix, model.weight))
        else:
            entries.append(Destination(model.number.lstrip("+"), model.weight, number=True))
    if not problems and not any(e.weight for e in entries):
        problems.append((place, "all weights are 0: this traffic would make no calls"))
    if problems:
        return (), None, problems
    return tuple(e.digits for e in entries), tuple(entries), []
