"""The report's charts: matplotlib (Agg) figures rendered to PNG bytes.

Each function takes curves already computed by `_series` and returns
PNG bytes; none reads a file.  Conventions, so an operator can read any chart
the same way: time axes in UTC dates, money in currency units, pool sizes in
minutes or hours, call types and end reasons always in the same colours and
under the names the CDRs and summary.json use.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit, same output everywhere

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES  # noqa: E402

from ._series import ActiveCalls, BalanceCurve, PoolCurve  # noqa: E402

WIDTH_IN = 11.0
DPI = 100

CALL_TYPE_COLORS = {
    "outbound": "#7f7f7f", "domestic": "#1f77b4", "international": "#ff7f0e",
    "conference_dial_out": "#9467bd", "toll_free": "#2ca02c",
}
END_REASON_COLORS = {
    "hangup": "#4c72b0", "dropped_balance_exhausted": "#d62728", "blocked_no_balance": "#ff7f0e",
    "not_licensed": "#8c564b", "unroutable": "#7f7f7f", "simulation_end": "#17becf",
}
# kind -> (label, marker, colour, size)
MARKERS = {
    "credits_purchased": ("credits purchased", "o", "#1f77b4", 45),
    "recharge_succeeded": ("recharge succeeded", "^", "#2ca02c", 55),
    "recharge_failed": ("recharge failed", "X", "#d62728", 70),
    "balance_exhausted": ("balance exhausted", "v", "#000000", 60),
    "credits_expired": ("credits expired", "D", "#7f7f7f", 40),
}
_EXHAUSTED_SHADE = "#d62728"

_STYLE = {
    "font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold", "axes.titlelocation": "left",
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#dddddd", "grid.linewidth": 0.6, "legend.frameon": False,
    "timezone": "UTC", "figure.dpi": DPI, "savefig.dpi": DPI,
}


class TimeAxis:
    """ms since the run start <-> datetime64 for matplotlib, and the UTC date ticks."""

    def __init__(self, start: datetime, duration_ms: int) -> None:
        self._start = np.datetime64(start.replace(tzinfo=None), "ms")
        self.duration_ms = duration_ms
        first, last = (self.x(t).astype(datetime).year for t in (0, duration_ms))
        self._xlabel = f"time (UTC, {first})" if first == last else "time (UTC)"

    def x(self, ms: NDArray[np.int64] | int) -> NDArray[np.datetime64]:
        return self._start + np.asarray(ms, dtype=np.int64).astype("timedelta64[ms]")

    def format(self, ax: Axes, *, label: bool = True) -> None:
        locator = mdates.AutoDateLocator(minticks=5, maxticks=12)
        ax.xaxis.set_major_locator(locator)
        # no offset text: the year is in the axis label, the date at each day's first tick
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
        ax.set_xlim(self.x(0), self.x(max(self.duration_ms, 1)))
        if label:
            ax.set_xlabel(self._xlabel)

    def label(self, ms: int, *, utc: bool = True) -> str:
        """'2026-11-01 00:52 UTC' (with seconds when the run is shorter than a day)."""
        moment = self.x(ms).astype(datetime)
        fmt = "%Y-%m-%d %H:%M:%S" if self.duration_ms <= 86_400_000 else "%Y-%m-%d %H:%M"
        return moment.strftime(fmt) + (" UTC" if utc else "")


def _figure(height_in: float, rows: int = 1, **kwargs) -> tuple[Figure, NDArray]:
    fig, axes = plt.subplots(rows, 1, figsize=(WIDTH_IN, height_in), squeeze=False,
                             layout="constrained", **kwargs)
    return fig, axes[:, 0]


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # no "Software" entry: the bytes do not change with the matplotlib patch version
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _message(title: str, text: str) -> bytes:
    with plt.rc_context(_STYLE):
        fig, (ax,) = _figure(1.2)
        ax.set_axis_off()
        ax.set_title(title)
        ax.text(0.0, 0.4, text, transform=ax.transAxes, fontsize=11, color="#444444")
        return _png(fig)


def _money_formatter(values: Sequence[float]) -> FuncFormatter:
    top = max((abs(v) for v in values), default=0.0)
    digits = 0 if top >= 100 else 2
    return FuncFormatter(lambda v, _pos: f"{v:,.{digits}f}")


def count_formatter() -> FuncFormatter:
    return FuncFormatter(lambda v, _pos: f"{v:,.0f}")


def duration_text(seconds: float) -> str:
    """A pool size for people: '140 min', '2,500 h'."""
    if seconds < 10 * 3600:
        return f"{seconds / 60:,.0f} min"
    return f"{seconds / 3600:,.0f} h"


# --- credit balance --------------------------------------------------------------------------


def balance_chart(curves: Sequence[BalanceCurve], currency: str, axis: TimeAxis,
                  titles: Sequence[str]) -> bytes:
    """One panel per org: the balance line, ledger markers, red shade while exhausted."""
    if not curves:
        return _message("Credit balance", "No org has communications credits in this run.")
    with plt.rc_context(_STYLE):
        fig, axes = _figure(1.0 + 2.5 * len(curves), len(curves), sharex=True)
        seen: set[str] = set()
        shaded = False
        banded = False
        band_widths: list[str] = []
        for ax, curve, title in zip(axes, curves, titles):
            jumps = sum(len(curve.markers[k][0]) for k in _JUMPS)
            if jumps > MAX_JUMPS_DRAWN:
                # hundreds of recharges: a saw with a tooth per pixel reads as a solid block;
                # draw the range the balance swept in each slice of time instead
                banded = True
                edges, low, high = _envelope(curve, axis.duration_ms)
                width = _duration_words(float(np.median(np.diff(edges))))
                band_widths += [] if width in band_widths else [width]
                ax.stairs(high, axis.x(edges), baseline=low, fill=True, color="#1f77b4", alpha=0.35,
                          linewidth=0)
            else:
                ax.plot(axis.x(curve.at_ms), curve.balance, color="#1f77b4", linewidth=1.3)
            for kind, (label, marker, color, size) in MARKERS.items():
                times, balances = curve.markers[kind]
                if len(times):
                    seen.add(kind)
                    crowded = len(times) > MAX_JUMPS_DRAWN
                    ax.scatter(axis.x(times), balances, marker=marker, s=size / 3 if crowded else size,
                               color=color, edgecolors="none" if crowded else "white",
                               linewidths=0.6, zorder=3, clip_on=False)
            for begin, end in _exhausted_spans(curve, axis.duration_ms):
                shaded = True
                ax.axvspan(axis.x(begin), axis.x(end), color=_EXHAUSTED_SHADE, alpha=0.10, linewidth=0)
            values = [*curve.balance, *(v for _, b in curve.markers.values() for v in b)]
            low, high = min(0.0, min(values)), max(values)
            ax.set_ylim(low, high + 0.08 * (high - low) if high > low else 1.0)
            ax.yaxis.set_major_formatter(_money_formatter(values))
            ax.set_ylabel(f"balance ({currency})")
            ax.set_title(title, fontsize=10.5)
            axis.format(ax, label=ax is axes[-1])
        handles = [Line2D([], [], color="#1f77b4", linewidth=1.3, label="balance (reconstructed)")]
        if banded and all(sum(len(c.markers[k][0]) for k in _JUMPS) > MAX_JUMPS_DRAWN for c in curves):
            handles = []  # no panel draws the line
        if banded:
            handles.append(Patch(color="#1f77b4", alpha=0.35,
                                 label=f"range of the balance in each {', '.join(band_widths)}"))
        handles += [Line2D([], [], linestyle="", marker=MARKERS[k][1], color=MARKERS[k][2],
                           markersize=8, label=MARKERS[k][0]) for k in MARKERS if k in seen]
        if shaded:
            handles.append(Patch(color=_EXHAUSTED_SHADE, alpha=0.15,
                                 label="exhausted (until credits are next added)"))
        # the chart title is the legend's title: constrained layout does not stack a suptitle
        # and an "outside" figure legend, they would overlap
        fig.legend(handles=handles, loc="outside upper left", ncol=min(len(handles), 4),
                   fontsize=9.5, alignment="left",
                   title=f"Communications-credit balance per org ({currency})",
                   title_fontproperties={"weight": "bold", "size": 12})
        return _png(fig)


_JUMPS = ("credits_purchased", "recharge_succeeded", "credits_expired")
MAX_JUMPS_DRAWN = 60  # more steps than this in one panel: draw the balance as a band
_ENVELOPE_BINS = 400


def _envelope(curve: BalanceCurve, duration_ms: int) -> tuple[NDArray[np.int64], NDArray, NDArray]:
    """Lowest and highest balance in slices of the run, each slice long enough to hold a
    couple of recharges (so it shows the whole swing, not a piece of one tooth), and at most
    `_ENVELOPE_BINS` of them.  The curve is sampled at every recharge and purchase (and the ms
    before), where its extremes are."""
    jumps = np.sort(np.concatenate([curve.markers[k][0] for k in _JUMPS]))
    typical_gap = float(np.median(np.diff(jumps))) if len(jumps) > 1 else 0.0
    width = max(duration_ms / _ENVELOPE_BINS, 2.5 * typical_gap, 1.0)
    count = max(1, int(round(duration_ms / width)))
    edges = np.unique(np.linspace(0, max(duration_ms, 1), count + 1).round().astype(np.int64))
    bins = np.clip(np.searchsorted(edges, curve.at_ms, side="right") - 1, 0, len(edges) - 2)
    present, first = np.unique(bins, return_index=True)
    low = np.full(len(edges) - 1, np.nan)
    high = np.full(len(edges) - 1, np.nan)
    low[present] = np.minimum.reduceat(curve.balance, first)
    high[present] = np.maximum.reduceat(curve.balance, first)
    return edges, low, high


def _duration_words(ms: float) -> str:
    if ms < 60_000:
        return f"{ms / 1000:.0f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.0f} min"
    return f"{ms / 3_600_000:.1f} h".replace(".0 h", " h")


def _exhausted_spans(curve: BalanceCurve, duration_ms: int) -> list[tuple[int, int]]:
    """From each balance_exhausted to the next purchase or successful recharge (or the end)."""
    exhausted = curve.markers["balance_exhausted"][0]
    refills = np.sort(np.concatenate([curve.markers["credits_purchased"][0],
                                      curve.markers["recharge_succeeded"][0]]))
    spans = []
    for t in exhausted:
        later = refills[refills > t]
        spans.append((int(t), int(later[0]) if len(later) else duration_ms))
    return spans


# --- pools -----------------------------------------------------------------------------------


def pool_chart(curves: Sequence[PoolCurve], axis: TimeAxis, titles: dict[int, str]) -> bytes:
    """One panel per org: each pool's remaining share of its capacity."""
    drawn = [c for c in curves if c.capacity_s > 0]
    if not drawn:
        return _message("Pool remaining", "No org has a pool of plan minutes in this run.")
    orgs = list(dict.fromkeys(c.org for c in drawn))
    with plt.rc_context(_STYLE):
        fig, axes = _figure(0.9 + 2.4 * len(orgs), len(orgs), sharex=True)
        palette = plt.get_cmap("tab10")
        for ax, org in zip(axes, orgs):
            mine = [c for c in drawn if c.org == org]
            for i, curve in enumerate(mine):
                percent = 100.0 * curve.remaining_s / curve.capacity_s
                ax.plot(axis.x(curve.at_ms), percent, color=palette(i % 10), linewidth=1.5,
                        label=_pool_label(curve, axis))
            for t in mine[0].refills_ms:
                ax.axvline(axis.x(t), color="#555555", linestyle="--", linewidth=0.9)
            ax.set_ylim(-3, 105)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0f} %"))
            ax.set_ylabel("remaining\n(% of capacity)")
            ax.set_title(titles[org], fontsize=10.5)
            ax.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=9)
            axis.format(ax, label=ax is axes[-1])
        refilled = any(len(c.refills_ms) for c in drawn)
        note = "  (dashed line: monthly refill, pools reset to capacity)" if refilled else ""
        fig.suptitle(f"Pools of plan minutes: remaining share of capacity{note}", x=0.01,
                     ha="left", fontweight="bold", fontsize=12)
        return _png(fig)


def _pool_label(curve: PoolCurve, axis: TimeAxis) -> str:
    capacity = duration_text(curve.capacity_s)
    approx = "" if curve.capacity_exact else "≈"
    dry = np.flatnonzero(curve.remaining_s <= 0.5)
    left = f"{100.0 * curve.remaining_s[-1] / curve.capacity_s:.0f} % left at end"
    status = f"first empty {axis.label(int(curve.at_ms[dry[0]]), utc=False)}, {left}" if len(dry) else left
    return f"{curve.pool_name}: capacity {approx}{capacity}\n{status}"


# --- active calls ----------------------------------------------------------------------------


def active_chart(active: ActiveCalls, axis: TimeAxis, bin_text: str) -> bytes:
    """Stacked areas: mean connected calls per bin by call type; a line: the peak in each bin."""
    types = [i for i, name in enumerate(CALL_TYPE_NAMES) if active.mean_by_type[i].any()]
    if not types:
        return _message("Connected calls", "No call was ever connected in this run.")
    with plt.rc_context(_STYLE):
        fig, (ax,) = _figure(4.4)
        x = axis.x(active.edges_ms)
        bottom = np.zeros(len(x) - 1)
        for i in types:
            name = CALL_TYPE_NAMES[i]
            top = bottom + active.mean_by_type[i]
            ax.stairs(top, x, baseline=bottom, fill=True, color=CALL_TYPE_COLORS[name], alpha=0.85,
                      linewidth=0, label=f"{name} (mean)")
            bottom = top
        ax.stairs(active.peak, x, baseline=None, color="#333333", linewidth=0.8, alpha=0.8,
                  label=f"peak in each {bin_text}")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_formatter(count_formatter())
        ax.set_ylim(0, max(1, active.peak.max()) * 1.05)
        ax.set_ylabel("connected calls")
        ax.set_title(f"Connected calls per {bin_text}: mean by call type (stacked) and peak — "
                     f"highest {active.max_level:,} at {axis.label(active.max_at_ms)}")
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.005, 0.5))
        axis.format(ax)
        return _png(fig)


# --- calls ended by reason -------------------------------------------------------------------


def ends_chart(by_reason_type: NDArray[np.int64], bins: tuple[NDArray[np.int64], NDArray[np.int64]],
               bin_text: str, axis: TimeAxis) -> bytes:
    """Top: calls by end reason (bars split by call type).  Below: one small panel per
    reason other than hangup, its calls over time, each on its own scale (blocks can
    outnumber drops a thousand to one, and both matter)."""
    edges, counts = bins
    if not by_reason_type.any():
        return _message("Calls ended by reason", "No calls in this run.")
    shown = [r for r, name in enumerate(END_REASON_NAMES) if name != "hangup" and counts[r].any()]
    with plt.rc_context(_STYLE):
        fig = plt.figure(figsize=(WIDTH_IN, 3.6 + 1.3 * max(len(shown), 0.6)), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[3.2, 1.3 * max(len(shown), 0.6)])
        _reason_bars(top.subplots(), by_reason_type)
        if not shown:
            ax = bottom.subplots()
            ax.set_axis_off()
            ax.text(0.0, 0.5, "Every call ended with a normal hang-up.", transform=ax.transAxes,
                    color="#444444", fontsize=11)
            return _png(fig)
        bottom.suptitle(f"Calls that did not end in a hang-up, per {bin_text} by end time "
                        "(each row on its own scale)", x=0.01, ha="left", fontweight="bold",
                        fontsize=11)
        axes = bottom.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
        x = axis.x(edges)
        for ax, r in zip(axes, shown):
            name = END_REASON_NAMES[r]
            ax.stairs(counts[r], x, fill=True, color=END_REASON_COLORS[name], alpha=0.8)
            ax.set_ylim(0, max(1, counts[r].max()) * 1.15)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True))
            ax.yaxis.set_major_formatter(count_formatter())
            total = int(counts[r].sum())
            ax.set_title(f"{name}: {total:,} call{'s' if total != 1 else ''}", fontsize=9.5,
                         fontweight="bold", color=END_REASON_COLORS[name], pad=2)
            axis.format(ax, label=ax is axes[-1])
        bottom.supylabel(f"calls per {bin_text}", fontsize=10)
        return _png(fig)


def _reason_bars(bars: Axes, by_reason_type: NDArray[np.int64]) -> None:
    totals = by_reason_type.sum(axis=1)
    grand = max(int(totals.sum()), 1)
    rows = np.arange(len(END_REASON_NAMES))[::-1]  # hangup at the top
    left = np.zeros(len(END_REASON_NAMES))
    for t, name in enumerate(CALL_TYPE_NAMES):
        counts = by_reason_type[:, t]
        if counts.any():
            bars.barh(rows, counts, left=left, color=CALL_TYPE_COLORS[name], label=name, height=0.65)
            left += counts
    for r, total in enumerate(totals):
        share = 100.0 * total / grand
        share_text = "" if total == 0 else "  (<0.1 %)" if share < 0.1 else f"  ({share:.1f} %)"
        bars.text(total + totals.max() * 0.008, rows[r], f"{total:,}{share_text}",
                  va="center", fontsize=9.5)
    bars.set_yticks(rows, END_REASON_NAMES)
    bars.xaxis.set_major_formatter(count_formatter())
    bars.set_xlim(0, max(int(totals.max()), 1) * 1.25)
    bars.set_xlabel("calls")
    bars.grid(axis="y", visible=False)
    bars.set_title(f"Calls by end reason ({int(totals.sum()):,} calls; bars split by call type)")
    bars.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), title="call type")
