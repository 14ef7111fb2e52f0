"""The imported model written as an editable scenario: TOML with comments that say where each
value came from and which ones are guesses the administrator must check or fill in."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from ..units import format_duration, format_micro
from ._fit import HOURS_PER_WEEK, HoldingFit, offset_text
from ._mapping import TOLL_FREE
from ._model import ImportedModel, Tariff, TrafficFit
from ._problems import plural

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ESTIMATE_MARK = "# estimate: check against your tariff"
#: The licence a user needs for callsim to admit a call of each type (SPEC §3 step 2).
_NEEDS = {"domestic": {"domestic_calling_plan", "international_calling_plan"},
          "international": {"domestic_calling_plan", "international_calling_plan"},
          "conference_dial_out": {"audio_conferencing"}}
#: At most this many sources per traffic type when it is split by caller (`_split`).
MAX_SPLIT_USERS = 20


def scenario_text(model: ImportedModel, report: str | None = None, seed: int = 1) -> str:
    """The whole scenario file; `report` names the fit report written beside it."""
    lines = [*_header(model, report), "", *_simulation(model, seed), "", *_plans(model)]
    for tariff in model.tariffs:
        lines += ["", *_tariff("tariff", tariff, model.currency)]
    for tariff in model.toll_free_tariffs:
        lines += ["", *_tariff("toll_free_tariff", tariff, model.currency)]
    lines += ["", *_org(model)]
    for user in model.users:
        assumed = "  # no calling plan in the rows: assumed" if user.assumed_plan else ""
        lines += ["", "[[orgs.users]]",
                  f"id = {_s(user.id)}  # {_comment(user.upn)}, {plural(user.calls, 'outbound call')}",
                  f"country = {_s(user.country)}", f"licenses = {_list(user.licenses)}{assumed}"]
    for fit in model.traffic:
        split = _split(model, fit)
        for user, calls in split or [(None, fit.calls)]:
            lines += ["", *_traffic(model, fit, user, calls)]
    return "\n".join(lines) + "\n"


def _header(model: ImportedModel, report: str | None) -> list[str]:
    period = model.period
    counts = ", ".join(f"{fit.type} {fit.calls:,}" for fit in model.traffic) or "none"
    lines = [
        f"# Imported by `callsim import` from {', '.join(_comment(s) for s in model.sources)}.",
        f"# {model.rows:,} rows read; simulated: {counts}.",
        f"# Period: {_instant(period.start_ms)} to {_instant(period.end_ms)} (from {period.said_by});",
        f"# hours of the week are read on the local clock UTC{offset_text(period.offset_min)} ({period.offset_said_by}).",
        "# Estimated, to check: the tariffs' per_minute (Charge / minutes of the calls credits paid),",
        "# increments (60/60 assumed), zones, and the plans' minutes. To fill in: [orgs.credits].",
    ]
    if report:
        lines.append(f"# How well the traffic model fits the calls: {_comment(report)}")
    if model.skipped:
        lines.append("# Rows not simulated (known call types callsim does not rate):")
        lines += [f"#   {count:,} {_comment(reason)}" for reason, count in model.skipped.items()]
    if model.warnings:
        lines.append("# Warnings (rows read but not fully used):")
        lines += [f"#   {_comment(warning.line())}" for warning in model.warnings]
    return lines


def _simulation(model: ImportedModel, seed: int) -> list[str]:
    period = model.period
    currency = model.currency or "USD"
    return ["[simulation]", f"name = {_s(model.org + '-usage')}", f"seed = {seed}",
            f"start = {_s(_instant(period.start_ms))}  # the export's period",
            f"duration = {_s(format_duration(period.end_ms - period.start_ms))}",
            f"currency = {_s(currency.upper())}" + ("" if model.currency else
                                                    "  # no row named a currency: check")]


def _plans(model: ImportedModel) -> list[str]:
    minutes = model.domestic_minutes()
    domestic = ", ".join(["default = 3000", *(f"{country} = {m}" for country, (m, _) in minutes.items())])
    lines = ["[plans]  # callsim's defaults unless the export's capabilities say otherwise: check them",
             f"domestic_minutes = {{ {domestic} }}  # per calling-plan user and month"]
    for country, (m, mixed) in minutes.items():
        how = ("the mean of its users' plans (MCOPSTN5: 120, MCOPSTN6: 240, full: 3000), which keeps "
               "the pool's size" if mixed else "its users' MCOPSTN5/6 plans")
        lines.append(f"# {country}: {m} minutes, {how}")
    return lines + ["international_minutes = 600", "dial_out_minutes = 60",
                    'dial_out_zones = ["A"]  # every imported tariff is zone A: dial-outs use the pool first']


def _tariff(table: str, tariff: Tariff, currency: str | None) -> list[str]:
    lines = [f"[[{table}]]", f"prefix = {_s(tariff.prefix)}"]
    if table == "tariff":
        lines.append(f"country = {_s(tariff.country)}")
        lines.append('zone = "A"')
    rate = _money(tariff.per_minute_micro)
    if tariff.estimate is not None:
        shared = ("; none paid by credits alone: these calls' Charge is what a pool left, so the "
                  "rate is low" if tariff.estimate.pool_shared else "")
        note = (f"{ESTIMATE_MARK} (from {plural(tariff.estimate.paid_calls, 'paid call')}, "
                f"{tariff.estimate.paid_minutes:,} min{shared})")
    elif tariff.per_minute_micro:
        note = f"{ESTIMATE_MARK} (no paid call here: taken from {tariff.fallback})"
    else:
        note = f"{ESTIMATE_MARK} (no call paid credits: fill in)"
    lines += [f"per_minute = {_s(rate)}  {note}", 'increment = "60/60"  # assumed: check']
    return lines


def _org(model: ImportedModel) -> list[str]:
    lines = ["[[orgs]]", f"id = {_s(model.org)}"]
    if model.toll_free_numbers:
        lines.append(f"toll_free_numbers = {_list(model.toll_free_numbers)}")
        if model.toll_free_numbers_total > len(model.toll_free_numbers):
            lines.append(f"# ... the {len(model.toll_free_numbers)} most called of "
                         f"{model.toll_free_numbers_total:,} toll-free numbers")
    paid = format_micro(model.credits_paid_micro)
    days = (model.period.end_ms - model.period.start_ms) / 86_400_000
    monthly = format_micro(round(model.credits_paid_micro * 30 / days)) if days else paid
    currency = model.currency or ""
    lines += [
        "",
        "# Communications credits: fill in your own. Without this table the balance is 0 and every",
        "# call that credits would pay is blocked, which shows what the credits must cover.",
        f"# The export's calls cost {paid} {currency} over its period (about {monthly} {currency} per 30 days).",
        "# [orgs.credits]",
        '# initial = "..."            # one lot bought at the start',
        "# auto_recharge = true",
        '# recharge_below = "..."',
        '# recharge_amount = "..."',
        '# card_expires = "YYYY-MM-DD"',
    ]
    return lines


def _lacking(model: ImportedModel, kind: str) -> list[str]:
    """Ids of the org's users who lack the licence `kind` needs."""
    return [u.id for u in model.users if kind in _NEEDS and not _NEEDS[kind] & set(u.licenses)]


def _split(model: ImportedModel, fit: TrafficFit) -> list[tuple[str, int]] | None:
    """One source per calling user, each at its share of the rate, when some users of the org
    lack the type's licence (a source drawn from all of them would make not_licensed calls the
    export never had) and the callers are few enough to list; None: one source."""
    lacking = set(_lacking(model, fit.type))
    if fit.users is not None or not lacking or not 1 < len(fit.callers) <= MAX_SPLIT_USERS:
        return None
    if any(user in lacking for user, _ in fit.callers):
        return None
    return list(fit.callers)


def _traffic(model: ImportedModel, fit: TrafficFit, user: str | None, calls: int) -> list[str]:
    rates = fit.rates
    busy = rates.busy_hour
    share = calls / fit.calls
    lines = ["[[traffic]]", f"org = {_s(model.org)}", f"type = {_s(fit.type)}"]
    if user is None:
        lines.append(f"calls_per_hour = {_float(rates.calls_per_hour)}  # the week's mean: "
                     f"{plural(fit.calls, 'call')} in the export; busiest hour {_DAYS[busy // 24]} "
                     f"{busy % 24:02d}:00 ({_float(rates.rates[busy])}/h)")
    else:
        lines += [f"calls_per_hour = {_float(rates.calls_per_hour * share)}  # {user}'s {calls:,} of the "
                  f"{fit.calls:,} {fit.type} calls (one source per caller: other users lack the licence)",
                  f"users = {_s(user)}"]
    if user is None and fit.users is not None:
        lines.append(f"users = {_s(fit.users)}  # the only user who placed these calls")
    elif user is None and fit.type in _NEEDS:
        unlicensed = _lacking(model, fit.type)
        if unlicensed:
            shown = ", ".join(unlicensed[:3]) + (", ..." if len(unlicensed) > 3 else "")
            lines.append(f"# drawn from all {len(model.users):,} users; {len(unlicensed):,} of them ({shown}) lack "
                         f"{' or '.join(sorted(_NEEDS[fit.type]))}: their calls will be not_licensed")
    if fit.destinations:
        what = "callers' prefixes" if fit.type == TOLL_FREE else "destination prefixes"
        lines.append(f"destinations = [  # {what}, weighted by the calls in the export")
        lines += [f"  {{ prefix = {_s(prefix)}, weight = {count} }}," for prefix, count in fit.destinations]
        lines.append("]")
    lines += ["", "[traffic.rate_profile]  # calls_per_hour times these weights, Monday 00:00-01:00 first",
              f"utc_offset = {_s(offset_text(model.period.offset_min))}", "week = ["]
    weights = rates.weights
    for day in range(7):
        for half in (0, 12):
            values = ", ".join(_weight(w) for w in weights[day * 24 + half:day * 24 + half + 12])
            lines.append(f"  {values},  # {_DAYS[day]} {half:02d}:00-{half + 12:02d}:00")
    lines += ["]", "", *_holding(fit.holding, len(fit.durations_s))]
    assert len(weights) == HOURS_PER_WEEK
    return lines


def _holding(holding: HoldingFit, calls: int) -> list[str]:
    if holding.distribution == "empirical":
        points = ", ".join(f"[{p}, {_s(_duration(ms))}]" for p, ms in holding.quantiles)
        return [f"[traffic.holding]  # the quantiles of the {calls:,} calls' durations",
                'distribution = "empirical"', f"quantiles = [{points}]"]
    if holding.distribution == "lognormal":
        return [f"[traffic.holding]  # lognormal fitted to {calls:,} calls (too few for quantiles)",
                'distribution = "lognormal"', f"median = {_s(_duration(holding.median_ms))}",
                f"sigma = {_float(holding.sigma)}"]
    return [f"[traffic.holding]  # exponential: {calls:,} call(s), too few to fit a shape",
            'distribution = "exponential"', f"mean = {_s(_duration(holding.mean_ms))}"]


def _duration(ms: int) -> str:
    """"2m", "95s", "104.785s": whole units when exact, else seconds with milliseconds."""
    if ms % 1000 == 0:
        return format_duration(ms)
    return f"{ms // 1000}.{ms % 1000:03d}".rstrip("0") + "s"


def _instant(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"



def _money(micro: int) -> str:
    text = format_micro(micro).rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _float(value: float) -> str:
    text = f"{value:.6g}"
    return text if re.search(r"[.e]", text) else f"{text}.0"


def _weight(value: float) -> str:
    return f"{value:.4f}"


def _s(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=False)


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_s(item) for item in items) + "]"


def _comment(text: str) -> str:
    """Text from the export made safe for a comment: one line, no control characters."""
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", "?", text)
