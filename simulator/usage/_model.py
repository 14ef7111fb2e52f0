"""From checked rows to the model a scenario is written from: the org, its users and licences,
per traffic type the fitted arrivals, holding times and destinations, and the tariffs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ._fit import (
    MS_PER_DAY,
    HoldingFit,
    Period,
    RateEstimate,
    RateFit,
    country_code,
    destination_mix,
    fit_holding,
    fit_rates,
    most_common,
    per_minute_rates,
    prefix_of,
    region_of,
)
from ._mapping import (
    DIAL_OUT,
    DOMESTIC,
    OUTBOUND_TYPES,
    TOLL_FREE,
    TRAFFIC_TYPES,
    domestic_minutes,
    org_id,
    user_ids,
    user_licenses,
)
from ._problems import UsageWarning
from ._rows import UsageCalls

#: A full domestic calling plan's minutes: callsim's default `domestic_minutes`.
FULL_PLAN_MINUTES = 3000
#: toll_free_numbers written at most (the most called first): beyond, the comments say how many.
MAX_TOLL_FREE_NUMBERS = 100


@dataclass(frozen=True)
class User:
    id: str
    upn: str
    country: str
    licenses: list[str]
    calls: int
    assumed_plan: bool  # a calling plan given because the rows name none (`user_licenses`)
    plan_minutes: int | None  # domestic minutes a capability fixes (MCOPSTN5/6), else None


@dataclass(frozen=True)
class TrafficFit:
    """One `[[traffic]]` source: the calls of one type, fitted."""

    type: str
    calls: int
    rates: RateFit
    holding: HoldingFit
    durations_s: np.ndarray  # observed, for the report
    starts_ms: np.ndarray  # observed start instants (UTC ms), for the report
    destinations: list[tuple[str, int]]  # (prefix, calls); toll_free: callers' prefixes
    users: str | None  # the one user who placed them all, else None (every user of the org)
    callers: tuple[tuple[str, int], ...]  # (user id, calls) of the users who placed them, most first


@dataclass(frozen=True)
class Tariff:
    prefix: str
    country: str  # "" for toll-free tariffs
    estimate: RateEstimate | None
    per_minute_micro: int  # the estimate, or the fallback written
    fallback: str  # "" when estimated from this prefix's paid calls, else where it came from


@dataclass
class ImportedModel:
    org: str
    country: str
    currency: str | None
    period: Period
    users: list[User]
    traffic: list[TrafficFit]
    tariffs: list[Tariff]
    toll_free_tariffs: list[Tariff]
    toll_free_numbers: list[str]
    toll_free_numbers_total: int
    rows: int
    warnings: list[UsageWarning]
    skipped: dict[str, int]
    credits_paid_micro: int
    sources: list[str] = field(default_factory=list)

    def domestic_minutes(self) -> dict[str, tuple[int, bool]]:
        """Country -> (domestic minutes, mixed) where users hold MCOPSTN5/6 plans: the mean of
        the country's calling-plan users' minutes (3000 for a full plan), rounded, which keeps
        the pool's size (the vocabulary's `CAPABILITY_DOMESTIC_MINUTES`)."""
        found: dict[str, tuple[int, bool]] = {}
        for country in sorted({u.country for u in self.users if u.plan_minutes is not None}):
            minutes = [u.plan_minutes or FULL_PLAN_MINUTES for u in self.users if u.country == country
                       and {"domestic_calling_plan", "international_calling_plan"} & set(u.licenses)]
            found[country] = (round(sum(minutes) / len(minutes)), len(set(minutes)) > 1)
        return found


def build_model(calls: UsageCalls, period: Period, org: str | None = None) -> ImportedModel:
    """The scenario's content from the checked rows; rows outside `period` become a warning."""
    frame = calls.frame
    inside = (pl.col("start_ms") >= period.start_ms) & (pl.col("start_ms") < period.end_ms)
    outside = frame.with_row_index("_index").filter(~inside & pl.col("kind").is_not_null())
    if outside.height:
        warning = UsageWarning("Start Time outside the export's period (skipped)", outside.height,
                               [calls.place(i) for i in outside["_index"].head(UsageWarning.SHOWN)])
        calls.warnings.append(warning)
    used = frame.filter(inside & pl.col("kind").is_not_null())
    outbound = used.filter(pl.col("kind").is_in(OUTBOUND_TYPES))
    country = most_common(frame["location"]) or "US"
    users = _users(outbound, country)
    ids = {user.upn: user.id for user in users}
    traffic, tariff_prefixes, caller_prefixes = [], set(), set()
    for kind in TRAFFIC_TYPES:
        rows = used.filter(pl.col("kind") == kind)
        if rows.height == 0:
            continue
        digits = rows["caller" if kind == TOLL_FREE else "destination"]
        mix = destination_mix(digits)
        (caller_prefixes if kind == TOLL_FREE else tariff_prefixes).update(p for p, _ in mix)
        upns = rows.filter(pl.col("upn") != "")["upn"].unique().to_list()
        per_upn = rows.filter(pl.col("upn").is_in(list(ids))).group_by("upn").len()
        callers = tuple(sorted(((ids[u], n) for u, n in per_upn.iter_rows()), key=lambda c: (-c[1], c[0])))
        traffic.append(TrafficFit(
            kind, rows.height, fit_rates(rows["start_ms"].to_numpy(), period),
            fit_holding(rows["duration_s"].to_numpy()), rows["duration_s"].to_numpy(),
            rows["start_ms"].to_numpy(), mix,
            ids[upns[0]] if kind != TOLL_FREE and len(upns) == 1 and upns[0] in ids else None,
            callers if kind != TOLL_FREE else ()))
    tariffs = _tariffs(outbound, sorted(tariff_prefixes), users, country)
    toll_free = used.filter(pl.col("kind") == TOLL_FREE)
    toll_free_tariffs = _toll_free_tariffs(toll_free, sorted(caller_prefixes))
    numbers = toll_free.filter(pl.col("destination").is_not_null()).group_by("destination").len() \
        .sort(["len", "destination"], descending=[True, False])["destination"].to_list()
    return ImportedModel(
        org=org or org_id(_counts(frame["upn"].str.to_lowercase().str.extract(r"@(.+)$", 1))), country=country, currency=calls.currency,
        period=period, users=users, traffic=traffic, tariffs=tariffs,
        toll_free_tariffs=toll_free_tariffs,
        toll_free_numbers=[f"+{n}" for n in numbers[:MAX_TOLL_FREE_NUMBERS]],
        toll_free_numbers_total=len(numbers), rows=calls.rows_read, warnings=calls.warnings,
        skipped=calls.skipped, credits_paid_micro=int(used["charge_micro"].sum() or 0),
        sources=[s.name for s in calls.sources])


def _users(outbound: pl.DataFrame, org_country: str) -> list[User]:
    """Users who placed outbound calls, licensed by the capabilities their calls name."""
    named = outbound.filter(pl.col("upn") != "")
    per_user = named.group_by("upn").agg(
        pl.col("capability").unique().alias("capabilities"),
        pl.col("location").filter(pl.col("location") != "").mode().sort().first().alias("country"),
        (pl.col("kind") != DIAL_OUT).any().alias("placed_user_calls"),
        pl.len().alias("calls")).sort("upn")
    ids = user_ids(per_user["upn"].to_list())
    users = []
    for upn, capabilities, country, placed_user_calls, count in per_user.iter_rows():
        country = (country or org_country).upper()
        licenses, assumed = user_licenses(set(capabilities), placed_user_calls)
        users.append(User(ids[upn], upn, country if len(country) == 2 and country.isalpha() else org_country,
                          licenses, count, assumed, domestic_minutes(set(capabilities))))
    return users


def _tariffs(outbound: pl.DataFrame, prefixes: list[str], users: list[User], org_country: str) -> list[Tariff]:
    """One tariff per destination prefix the traffic dials, its rate estimated from credits paid.

    Its country: the users' own country when most of its calls were domestic (so callsim calls
    them domestic too), else the main country of its country code."""
    frame = outbound.filter(pl.col("destination").is_not_null()).with_columns(
        prefix_of(pl.col("destination"), prefixes).alias("prefix"),
        country_code(pl.col("destination")).alias("code"))
    estimates = per_minute_rates(frame, "prefix")
    by_code = per_minute_rates(frame, "code")
    domestic = frame.group_by("prefix").agg(
        (pl.col("kind") == DOMESTIC).mean().alias("share"),
        pl.col("location").filter(pl.col("kind") == DOMESTIC).mode().sort().first().alias("country"))
    countries = {p: (c if share > 0.5 and c else None) for p, share, c in domestic.iter_rows()}
    return [_tariff(prefix, (countries.get(prefix) or region_of(_code(prefix))).upper(),
                    estimates, by_code, _code(prefix)) for prefix in prefixes]


def _toll_free_tariffs(toll_free: pl.DataFrame, prefixes: list[str]) -> list[Tariff]:
    frame = toll_free.filter(pl.col("caller").is_not_null()).with_columns(
        prefix_of(pl.col("caller"), prefixes).alias("prefix"), country_code(pl.col("caller")).alias("code"))
    estimates = per_minute_rates(frame, "prefix")
    by_code = per_minute_rates(frame, "code")
    return [_tariff(prefix, "", estimates, by_code, _code(prefix)) for prefix in prefixes]


def _code(prefix: str) -> str:
    return pl.select(country_code(pl.lit(prefix))).item()


def _tariff(prefix: str, country: str, estimates: dict[str, RateEstimate],
            by_code: dict[str, RateEstimate], code: str) -> Tariff:
    """The prefix's own estimate, else its country code's, else every paid call's median."""
    own = estimates.get(prefix)
    if own is not None:
        return Tariff(prefix, country, own, own.per_minute_micro, "")
    if code in by_code:
        shared = ", a pool paying part of them" if by_code[code].pool_shared else ""
        return Tariff(prefix, country, None, by_code[code].per_minute_micro, f"+{code} calls{shared}")
    rates = sorted(e.per_minute_micro for e in estimates.values())
    if rates:
        return Tariff(prefix, country, None, rates[len(rates) // 2], "the median of the other prefixes")
    return Tariff(prefix, country, None, 0, "nothing: no call paid credits")


def _counts(values: pl.Series) -> Counter[str]:
    counts = values.drop_nulls().value_counts()
    return Counter(dict(counts.iter_rows()))


def data_period(calls: UsageCalls, offset_min: int) -> tuple[int, int]:
    """Local midnight before the first call to local midnight after the last (UTC ms)."""
    starts = calls.frame["start_ms"]
    offset_ms = offset_min * 60_000
    first = (int(starts.min()) + offset_ms) // MS_PER_DAY * MS_PER_DAY - offset_ms
    last = (int(starts.max()) + offset_ms) // MS_PER_DAY * MS_PER_DAY - offset_ms + MS_PER_DAY
    return first, last
