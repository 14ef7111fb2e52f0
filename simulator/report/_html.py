"""The report page: one HTML file, CSS inline, charts as base64 PNG data URIs.

Every string that comes from the run (org ids, pool names, scenario name) is
escaped.  Money is shown exactly wherever it appears (`money_text`: all six
decimals of summary.json, thousands separated), since a report that says
0.00 where 0.000500 is left is wrong for a billing check; hours and other
derived quantities are rounded for reading.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from typing import Any

from ..units import format_micro_grouped
from ._charts import MAX_JUMPS_DRAWN
from ._data import RunData, micro

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1160px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta { color: #555; margin-top: 0; }
.warning { background: #fff3cd; border: 1px solid #e0c36b; padding: 0.6em 0.9em; }
.how { color: #333; max-width: 62em; }
.note { color: #555; font-style: italic; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
.glance { display: grid; grid-template-columns: repeat(auto-fill, minmax(13em, 1fr)); gap: 0.6em; }
.glance div { background: #f5f7fa; border-radius: 4px; padding: 0.5em 0.8em; }
.glance b { display: block; font-size: 1.25em; }
.glance span { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; margin-top: 0.6em; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid #e5e5e5; text-align: right;
         white-space: nowrap; }
th { background: #f0f2f5; vertical-align: bottom; white-space: normal; max-width: 7.5em; }
td.org, th.org { text-align: left; }
tr.total td { font-weight: bold; border-top: 2px solid #999; }
code { background: #f3f3f3; padding: 0 0.25em; }
"""


@dataclass(frozen=True)
class Chart:
    anchor: str  # section id in the page
    file_name: str  # PNG written next to the page
    title: str
    png: bytes
    note: str  # which orgs are shown, when not all


# How to read each chart, one paragraph each (docs/report.md says the same at more length).
_HOW = {
    "credit-balance": (
        "The communications-credit balance of each org over time, in {currency}. The line falls "
        "as calls are paid from credits and jumps up at a purchase or successful auto-recharge "
        "(green ▲). A red ✕ is a failed recharge (the payment card has expired), a black ▼ the "
        "moment a charge was refused because the balance was too low; the red band lasts until "
        "credits are next added, and in it credit-paid calls are blocked or dropped. Markers sit "
        "at the exact balance from events.jsonl; the line between them is reconstructed from the "
        "CDRs (see <a href=\"#method\">how the charts are made</a>)."),
    "pool-remaining": (
        "What is left of each pool of plan minutes (domestic:CC, international:CC, dial_out), as a "
        "share of its capacity; the legend gives the capacity and when the pool ran dry. Pools "
        "are used before credits, so a pool reaching 0 % is when calls start costing credits "
        "(or, for users without communications credits, start being cut). Dashed lines are the "
        "monthly refill."),
    "active-calls": (
        "Calls connected at the same time. The coloured areas are the average number connected "
        "in each interval (in Erlangs: connected call-hours per hour), stacked by call type, so "
        "their top edge is the average of all calls; the thin dark line is the most calls "
        "connected at any instant of the interval. The title gives the run's peak and when it "
        "was first reached. Blocked, unlicensed and unroutable calls never connect and do not "
        "count."),
    "calls-ended": (
        "How calls ended. Top: every call by end reason, split by call type, with the count and "
        "share. Bottom: the calls that did not end in a normal hang-up, over time, by the time "
        "they ended — drops (<code>dropped_balance_exhausted</code>) and blocks "
        "(<code>blocked_no_balance</code>) line up with the red bands of the balance chart; "
        "<code>not_licensed</code> and <code>unroutable</code> are scenario or provisioning "
        "problems, not money."),
}

_METHOD = """
<p>The report reads only the run's files: <code>summary.json</code>, <code>events.jsonl</code> and
<code>{source}</code>. Counts, totals, the table and the markers are exact. Two curves are
reconstructions, because a CDR says what a call cost in total, not when each billing increment
was paid:</p>
<ul>
<li><b>Credit balance.</b> balance(t) = credits purchased by t &minus; credits expired by t
&minus; credits charged by t. Purchases, recharges and expiries come from events.jsonl with their
exact instants and amounts. A call's <code>credits_charged</code> is spread evenly over the part
of the call after its pool seconds (the pool pays first, see below), or over the whole call when
no pool paid. Increments are really paid at their start, so the line can lag the true balance by
up to one increment per connected call, and the markers (exact balances) can sit slightly off
it. At the end of the run the line equals summary.json's final balance. When an org has more
than {max_jumps} purchases and recharges, its panel shows the range the balance swept in each
slice of time (a band) instead of a line.</li>
<li><b>Pool remaining.</b> Each increment is paid from the pool first and a pool that runs dry
stays dry until the monthly refill, so a call's <code>pool_s</code> is taken as its first
<code>pool_s</code> seconds: spread evenly from its start over that time (clipped to its end).
A <code>pools_refilled</code> event resets the org's pools to capacity. The capacity is not in the
run files: it is the pool's <code>pool_remaining_s</code> at the end (summary.json) plus what calls
took from it since the org's last refill (or since the start). That is exact unless a call
straddled the last refill, in which case the legend marks the capacity with &asymp;.</li>
</ul>
<p>Active calls count a call from its <code>start_time</code> (inclusive) to its
<code>end_time</code> (exclusive); when one call ends and another starts at the same instant they
are not counted together (hang-ups come first). All times are UTC.</p>
"""


def render_page(run: RunData, charts: list[Chart], table_orgs: list[int],
                peak: tuple[int, int], axis: Any, png_dir: str) -> str:
    """The whole page as a string."""
    summary, currency = run.summary, run.currency
    name = html.escape(str(summary.get("scenario", "")))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>callsim report: {name}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>callsim report: {name}</h1>",
        _meta(run),
    ]
    if summary.get("complete") is False:
        parts.append('<p class="warning"><b>Incomplete run:</b> it was stopped at '
                     f'{html.escape(summary["simulated_until"])}; everything below covers the '
                     "run up to that instant.</p>")
    parts += [_glance(run, peak, axis)]
    for chart in charts:
        uri = "data:image/png;base64," + base64.b64encode(chart.png).decode("ascii")
        how = _HOW[chart.anchor].format(currency=html.escape(currency))
        parts += [
            f'<section id="{chart.anchor}"><h2>{html.escape(chart.title)}</h2>',
            f'<p class="how">{how}</p>',
            f'<p class="note">{html.escape(chart.note)}</p>' if chart.note else "",
            f'<img src="{uri}" alt="{html.escape(chart.title)} chart">',
            "</section>",
        ]
    parts += [
        _table(run, table_orgs),
        '<section id="method"><h2>How the charts are made</h2>',
        _METHOD.format(source=html.escape(run.cdr_source), max_jumps=MAX_JUMPS_DRAWN),
        "</section>",
        f'<p class="note">The charts are also saved as PNG files in <code>{html.escape(png_dir)}/'
        "</code> next to this page.</p>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _plural(n: int | float, word: str) -> str:
    return f"{n:,g} {word}" + ("" if n == 1 else "s")


def _meta(run: RunData) -> str:
    s = run.summary
    days = run.duration_ms / 86_400_000
    span = _plural(round(days, 2), "day") if days >= 1 else _plural(round(run.duration_ms / 3_600_000, 2), "hour")
    status = "complete" if s.get("complete", True) else "stopped early"
    return (f'<p class="meta">seed {html.escape(str(s.get("seed", "")))} · currency '
            f'{html.escape(run.currency)} · {html.escape(s["start"])} → '
            f'{html.escape(s["simulated_until"])} ({span}, {status}) · '
            f'{_plural(len(run.org_ids), "org")} · from <code>{html.escape(str(run.out_dir))}</code></p>')


def money_text(text: str) -> str:
    """summary.json money as the report shows it: exact, six decimals, thousands separated
    (`"61499.999500"` -> `61,499.999500`); the digits go through integers, never floats."""
    return format_micro_grouped(micro(text))


def _glance(run: RunData, peak: tuple[int, int], axis: Any) -> str:
    total, currency = run.summary["total"], html.escape(run.currency)
    reasons = total["calls_by_end_reason"]
    cells = [
        (f"{total['calls']:,}", "calls"),
        (f"{peak[0]:,}", f"peak connected calls, {axis.label(peak[1])}"),
        (f"{total['billed_s'] / 3600:,.1f} h", "billed"),
        (f"{sum(total['pool_s_by_pool'].values()) / 3600:,.1f} h", "paid from pools"),
        (f"{money_text(total['credits_charged'])} {currency}", "credits charged"),
        (f"{total['recharges_succeeded']:,} ok / {total['recharges_failed']:,} failed",
         "auto-recharges"),
        (f"{money_text(total['final_balance'])} {currency}", "final balance, all orgs"),
        (f"{reasons.get('dropped_balance_exhausted', 0):,}", "calls dropped: balance exhausted"),
        (f"{reasons.get('blocked_no_balance', 0):,}", "calls blocked: no balance"),
        (f"{reasons.get('not_licensed', 0) + reasons.get('unroutable', 0):,}",
         "calls not licensed or unroutable"),
    ]
    body = "".join(f"<div><b>{value}</b><span>{label}</span></div>" for value, label in cells)
    return f'<section id="at-a-glance"><h2>At a glance</h2><div class="glance">{body}</div></section>'


#: (header, field, is money) of the top-orgs table; money is summary.json's exact text.
_COLUMNS = (
    ("calls", "calls", False),
    ("billed (h)", "billed_h", False),
    ("from pools (h)", "pool_h", False),
    ("credits charged", "credits_charged", True),
    ("credits purchased", "credits_purchased", True),
    ("recharges ok", "recharges_succeeded", False),
    ("recharges failed", "recharges_failed", False),
    ("credits expired", "credits_expired", True),
    ("final balance", "final_balance", True),
    ("dropped: balance exhausted", "dropped", False),
    ("blocked: no balance", "blocked", False),
)


def table_cells(section: dict[str, Any]) -> list[str]:
    """One table row's cells (after rank and org), from a summary.json section."""
    values = {
        "billed_h": f"{section['billed_s'] / 3600:,.1f}",
        "pool_h": f"{sum(section['pool_s_by_pool'].values()) / 3600:,.1f}",
        "dropped": f"{section['calls_by_end_reason'].get('dropped_balance_exhausted', 0):,}",
        "blocked": f"{section['calls_by_end_reason'].get('blocked_no_balance', 0):,}",
    }
    cells = []
    for _, field, money in _COLUMNS:
        value = values[field] if field in values else section[field]
        cells.append(money_text(value) if money else f"{value:,}" if isinstance(value, int) else str(value))
    return cells


def _table_intro(which: str, n: int) -> str:
    if n == 1:
        return "The run's only org."
    return f"{which[0].upper() + which[1:]}, by credits charged (then billed time)."


def _table(run: RunData, orgs: list[int]) -> str:
    currency = html.escape(run.currency)
    n = len(run.org_ids)
    which = ("the only org" if n == 1 else f"all {n:,} orgs" if len(orgs) == n
             else f"the top {len(orgs):,} of {n:,} orgs")
    heads = "".join(f"<th>{html.escape(h)}{f' ({currency})' if money else ''}</th>"
                    for h, _, money in _COLUMNS)
    rows = []
    for rank, org in enumerate(orgs, 1):
        org_id = run.org_ids[org]
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in table_cells(run.summary["orgs"][org_id]))
        rows.append(f'<tr data-org="{html.escape(org_id)}"><td>{rank}</td>'
                    f'<td class="org">{html.escape(org_id)}</td>{cells}</tr>')
    total = "".join(f"<td>{html.escape(c)}</td>" for c in table_cells(run.summary["total"]))
    rows.append(f'<tr class="total"><td></td><td class="org">total, {_plural(n, "org")}</td>{total}</tr>')
    return (f'<section id="top-orgs"><h2>Top orgs by credits charged</h2>'
            f'<p class="how">{_table_intro(which, n)} '
            f"Money is summary.json's exact figure in {currency}; hours are seconds / 3600.</p>"
            f'<table><thead><tr><th>#</th><th class="org">org</th>{heads}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></section>")
