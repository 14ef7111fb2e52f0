"""sweep.html: cut risk and spend against each swept setting, and a table of every point.

One file: CSS inline, charts as base64 PNG (matplotlib, Agg).  A chart per swept setting:
its values along x (as numbers when every value reads as one, money included, else in
`--set` order), one line per combination of the other settings; left the cut risk (share
of seeds with a call cut for lack of credit), right the median credits purchased and spent.
Strings from the scenario or the command line are escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ..outputs import SWEEP_HTML
from ..units import format_micro_grouped
from ._files import SweepInfo
from ._stats import TOTAL, PointStats

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1160px; padding: 0 1em; color: #222; line-height: 1.45; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #555; } .warning { background: #fff3cd; border: 1px solid #e0c36b; padding: 0.5em; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.88em; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid #e5e5e5; text-align: right; white-space: nowrap; }
th { background: #f0f2f5; vertical-align: bottom; white-space: normal; }
td.setting, th.setting { text-align: left; }
"""


def write_html(out_dir: Path, info: SweepInfo, stats: Sequence[PointStats], currency: str,
               outcome: str) -> None:
    """sweep.html in `out_dir`; `outcome` is the one-line verdict (runs, failures, interruption)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>callsim sweep: "
             f"{_e(info.scenario_name)}</title><style>{_CSS}</style></head><body>",
             f"<h1>Sweep of {_e(info.scenario_name)}</h1>",
             f"<p class='meta'>{_e(info.source)}: {len(info.points)} settings x {info.seeds} seeds "
             f"(derived from seed {info.base_seed}). {_e(outcome)}</p>"]
    if stats and info.settings:
        parts.append("<h2>Cut risk and spend by setting</h2><p>Cut risk: the share of seeds in which at "
                     "least one call was dropped or blocked for lack of credit (all orgs). Spend: the "
                     f"median over seeds of the credits purchased and spent ({_e(currency)}).</p>")
        for path in info.settings:
            parts.append(f"<img alt='cut risk and spend against {_e(path)}' src='data:image/png;base64,"
                         f"{base64.b64encode(_chart(path, info, stats, currency)).decode()}'>")
    parts.append("<h2>Every setting</h2>" + _table(info, stats))
    parts.append("</body></html>\n")
    (out_dir / SWEEP_HTML).write_text("".join(parts), encoding="utf-8")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(info: SweepInfo, stats: Sequence[PointStats]) -> str:
    head = ["setting", "runs", "cut risk", "calls cut p50", "p95", "max", "credits purchased p50", "p95",
            "credits spent p50", "recharges p50", "lowest balance p5", "pool dry (share)", "peak calls p50",
            "p95"]
    rows = ["<table><tr>" + "".join(f"<th{' class=setting' if h == 'setting' else ''}>{_e(h)}</th>" for h in head)
            + "</tr>"]
    for p in stats:
        t = p.orgs[TOTAL]
        setting = ", ".join(str(o) for o in p.point) or "as written"
        cells = [len(p.seeds), f"{t.cut_share:.1%}", t.calls_cut.p50, t.calls_cut.p95, t.calls_cut.max,
                 format_micro_grouped(t.credits_purchased.p50), format_micro_grouped(t.credits_purchased.p95),
                 format_micro_grouped(t.credits_spent.p50), t.recharges_succeeded.p50,
                 format_micro_grouped(t.lowest_balance.p5), f"{t.pool_exhausted_share:.0%}",
                 t.peak_concurrent_calls.p50, t.peak_concurrent_calls.p95]
        rows.append(f"<tr><td class=setting>{_e(setting)}</td>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
    return "".join(rows) + "</table>"


def _number(shown: str) -> float | None:
    try:
        return float(Decimal(shown.strip('"')))
    except (InvalidOperation, ValueError):
        return None


def _chart(path: str, info: SweepInfo, stats: Sequence[PointStats], currency: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axis = info.settings.index(path)
    values = list(dict.fromkeys(p.point[axis].shown for p in stats))
    numbers = [_number(v) for v in values]
    numeric = all(n is not None for n in numbers)
    x_of = dict(zip(values, numbers if numeric else range(len(values))))
    lines: dict[str, list[PointStats]] = {}
    for p in stats:
        others = ", ".join(str(o) for i, o in enumerate(p.point) if i != axis)
        lines.setdefault(others, []).append(p)
    fig, (risk, spend) = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, points in lines.items():
        points = sorted(points, key=lambda p: x_of[p.point[axis].shown])
        x = [x_of[p.point[axis].shown] for p in points]
        name = f" ({label})" if label else ""
        risk.plot(x, [100 * p.orgs[TOTAL].cut_share for p in points], marker="o", label=label or None)
        bought = spend.plot(x, [p.orgs[TOTAL].credits_purchased.p50 / 1e6 for p in points], marker="o",
                            label=f"purchased{name}")
        spend.plot(x, [p.orgs[TOTAL].credits_spent.p50 / 1e6 for p in points], marker="x", linestyle="--",
                   color=bought[0].get_color(), label=f"spent{name}")
    risk.set_title("cut risk (share of seeds with a call cut)")
    risk.set_ylabel("% of seeds")
    risk.set_ylim(bottom=0)
    spend.set_title(f"credits, median over seeds ({currency})")
    spend.set_ylim(bottom=0)
    for ax in (risk, spend):
        ax.set_xlabel(path)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        if not numeric:
            ax.set_xticks(range(len(values)), values)
    if len(lines) > 1:
        risk.legend(fontsize=8)
    spend.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()
