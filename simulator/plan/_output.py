"""A plan for people: the recommendation as the admin center asks for it, then the evidence.

Three forms of the same content: `text` (what `callsim plan` prints), `document` (plan.json:
every figure, money as exact six-decimal strings, as every callsim output writes it) and
`write_page` (plan.html: the text's content as tables plus two charts, self-contained).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from ..units import format_duration, format_micro
from ._amounts import show_micros, show_units
from ._model import Evidence, Plan, Setting
from ._stats import Risk, percent_up, seeds_needed

ADMIN_CENTER = "Microsoft 365 admin center > Billing > Your products > Communication Credits"


def risk_line(r: Risk) -> str:
    """The one-sided upper bound the decision uses: '≤ 0.997 % at 95 % confidence (0 of 299 runs cut)'."""
    return r.stated


def setting_lines(s: Setting, currency: str) -> list[tuple[str, str]]:
    return [("Initial amount", show_units(s.initial, currency)), ("Auto-recharge", "on"),
            ("Recharge when balance falls below", show_units(s.below, currency)),
            ("Recharge amount", show_units(s.amount, currency))]


def evidence_lines(ev: Evidence, currency: str) -> list[tuple[str, str]]:
    return [
        ("risk of a credit-caused cut", risk_line(ev.risk)),
        ("credits spent", f"p50 {show_micros(ev.spent(0.5), currency)}, p95 {show_micros(ev.spent(0.95), currency)}"),
        ("credits purchased", f"mean {show_micros(ev.purchased_mean, currency)} (initial + recharges)"),
        ("bought but not spent", f"mean {show_micros(ev.unused_mean, currency)} at the end of the horizon"),
        ("recharges", f"{ev.recharges_per_month:.1f} a month on average ({ev.recharges_mean:.1f} a run)"),
        ("lowest balance", f"p5 {show_micros(ev.lowest_balance(0.05), currency)}"),
    ]


def text(plan: Plan, source: str) -> str:
    """The recommendation and its evidence, as `callsim plan` prints it."""
    cur = plan.currency
    lines = [f"callsim plan: org {plan.org} of {source}, horizon {format_duration(plan.horizon_ms)}, "
             f"target risk below {plan.target:g} at {plan.confidence:.0%} confidence"]
    base = plan.baseline
    if plan.no_credits_needed:
        lines.append(f"No credits needed: in {base.seeds} runs the org never paid anything from "
                     "credits (its calls fit in its pools, or credits may not pay them).")
        lines += _structural(plan)
        return "\n".join(lines) + "\n"
    rec = plan.recommended
    need = seeds_needed(plan.target, plan.confidence)
    lines.append(f"Seeds: {rec.seeds} fresh ones verify a setting; the target needs at least {need} "
                 f"(0 cuts in n seeds bound the risk by about 3/n at 95 %)")
    lines.append("")
    lines.append(f"Recommended ({ADMIN_CENTER}):")
    lines += [f"  {k + ':':<36} {v}" for k, v in setting_lines(rec.setting, cur)]
    lines.append("")
    lines.append(f"Evidence ({rec.seeds} fresh seeds at this setting; {plan.runs} runs in all):")
    lines += [f"  {k}: {v}" for k, v in evidence_lines(rec, cur)]
    lines.append(f"  spend with ample credit: p50 {show_micros(base.spent(0.5), cur)}, "
                 f"p95 {show_micros(base.spent(0.95), cur)}, max {show_micros(base.spent(1.0), cur)} "
                 f"({base.seeds} seeds)")
    if plan.window_micros is not None and plan.card_dead_ms and plan.card_dead_ms > 0:
        w = sorted(plan.window_micros)
        lines.append(f"  spend after the card stops working (from {format_duration(plan.card_dead_ms)} on): "
                     f"max {show_micros(w[-1], cur)} ({len(w)} seeds)")
    if plan.cheaper is not None:
        c = plan.cheaper
        lines.append("")
        lines.append(f"Next cheaper setting, rejected: initial {c.setting.initial:,}, below "
                     f"{c.setting.below:,}, amount {c.setting.amount:,} {cur}:")
        lines.append(f"  {c.reason}")
    lines += _structural(plan)
    for note in plan.notes:
        lines.append(f"Note: {note}.")
    return "\n".join(lines) + "\n"


def _structural(plan: Plan) -> list[str]:
    n = plan.baseline.structural_cut_seeds
    if not n:
        return []
    return [f"Note: {n} of {plan.baseline.seeds} runs with ample credit still cut calls: calls that "
            "credits may not pay (users without the communications_credits licence when a pool "
            "runs dry: docs/rating-rules.md); no credit setting prevents them and they are outside the risk."]


def _risk_doc(r: Risk) -> dict[str, Any]:
    return {"seeds": r.seeds, "seeds_with_cut": r.cuts, "estimate": r.estimate, "confidence": r.confidence,
            "upper_bound": r.upper, "stated": r.stated}


def _setting_doc(s: Setting | None) -> dict[str, int] | None:
    if s is None:
        return None
    return {"initial": s.initial, "auto_recharge": True, "recharge_below": s.below, "recharge_amount": s.amount}


def _evidence_doc(ev: Evidence) -> dict[str, Any]:
    return {
        "stage": ev.stage, "setting": _setting_doc(ev.setting), "risk": _risk_doc(ev.risk),
        "credits_spent_p50": format_micro(ev.spent(0.5)), "credits_spent_p95": format_micro(ev.spent(0.95)),
        "credits_purchased_mean": format_micro(ev.purchased_mean),
        "bought_not_spent_mean": format_micro(ev.unused_mean),
        "recharges_per_month": ev.recharges_per_month, "lowest_balance_p5": format_micro(ev.lowest_balance(0.05)),
        "seeds": [o.seed for o in ev.outcomes],
    }


def document(plan: Plan, source: str) -> dict[str, Any]:
    """plan.json's content."""
    return {
        "scenario": source, "org": plan.org, "currency": plan.currency, "horizon_ms": plan.horizon_ms,
        "max_cut_risk": plan.target, "confidence": plan.confidence,
        "max_recharges_per_month": plan.max_recharges_per_month, "card_stops_ms": plan.card_dead_ms,
        "no_credits_needed": plan.no_credits_needed,
        "recommended": _setting_doc(plan.recommended.setting) if plan.recommended else None,
        "evidence": _evidence_doc(plan.recommended) if plan.recommended else None,
        "cheaper": None if plan.cheaper is None else {
            "setting": _setting_doc(plan.cheaper.setting), "reason": plan.cheaper.reason,
            "evidence": _evidence_doc(plan.cheaper.evidence) if plan.cheaper.evidence else None},
        "baseline": _evidence_doc(plan.baseline),
        "spend_after_card_stops": None if plan.window_micros is None
        else [format_micro(w) for w in plan.window_micros],
        "probes": [_evidence_doc(p) for p in plan.probes],
        "runs": plan.runs, "notes": plan.notes,
    }


def write(plan: Plan, source: str, out: Path) -> list[Path]:
    """plan.json and plan.html in `out` (created); returns their paths.  Raises OSError."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / "plan.json"
    data.write_text(json.dumps(document(plan, source), indent=2) + "\n")
    page = out / "plan.html"
    page.write_text(_page(plan, source))
    return [data, page]


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in pairs)


def _page(plan: Plan, source: str) -> str:
    cur = plan.currency
    parts = [f"<h1>Credit plan: org {html.escape(plan.org)}</h1>",
             f"<p>{html.escape(text(plan, source).splitlines()[0])}</p>"]
    if plan.no_credits_needed:
        parts.append("<p><b>No credits needed</b>: the org never paid anything from credits.</p>")
    else:
        rec = plan.recommended
        parts.append(f"<h2>Recommended</h2><p>{html.escape(ADMIN_CENTER)}</p>"
                     f"<table>{_rows(setting_lines(rec.setting, cur))}</table>")
        parts.append(f"<h2>Evidence</h2><table>{_rows(evidence_lines(rec, cur))}</table>")
        if plan.cheaper is not None:
            c = plan.cheaper
            parts.append("<h2>Next cheaper setting, rejected</h2>"
                         f"<table>{_rows(setting_lines(c.setting, cur))}</table><p>{html.escape(c.reason)}</p>")
        parts.append(f'<h2>Every probe</h2><img alt="probes" src="data:image/png;base64,{_chart(plan)}">')
        parts.append("<table><tr><th>stage</th><th>initial</th><th>below</th><th>amount</th><th>seeds</th>"
                     "<th>with a cut</th><th>upper bound</th><th>recharges a month</th></tr>" + "".join(
                         f"<tr><td>{p.stage}</td><td>{p.setting.initial:,}</td><td>{p.setting.below:,}</td>"
                         f"<td>{p.setting.amount:,}</td><td>{p.seeds}</td><td>{p.risk.cuts}</td>"
                         f"<td>{html.escape(percent_up(p.risk.upper))}</td><td>{p.recharges_per_month:.1f}</td></tr>"
                         for p in plan.probes) + "</table>")
    for note in plan.notes + _structural(plan):
        parts.append(f"<p>{html.escape(note)}</p>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse;"
             "margin:.5em 0}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>callsim plan {html.escape(plan.org)}"
            f"</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def _chart(plan: Plan) -> str:
    """Share of seeds with a credit-caused cut at each probed trigger (or initial amount, when
    recharges never work), screen and verification apart; base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_initial = plan.card_dead_ms == 0
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    for stage, marker in (("screen", "o"), ("verify", "s")):
        pts = [p for p in plan.probes if p.stage == stage]
        xs = [p.setting.initial if by_initial else p.setting.below for p in pts]
        ax.scatter(xs, [p.risk.estimate for p in pts], marker=marker, label=stage)
    ax.axhline(plan.target, color="#d62728", linewidth=1, label=f"target {plan.target:g}")
    ax.set_xlabel(f"{'initial amount' if by_initial else 'recharge when below'} ({plan.currency})")
    ax.set_ylabel("share of seeds with a cut")
    ax.legend(frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")
