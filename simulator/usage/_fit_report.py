"""How well the imported model fits the calls: per traffic type, arrivals per hour (observed vs
fitted) and holding times (observed vs fitted CDF), as PNGs and one self-contained HTML page in
the style of `callsim report` (charts inlined as data URIs, the PNGs also written beside it).

Two figures say how good the model is, not just what it is:

- the **hour-by-hour series** over the whole period, each hour's observed calls against the
  fitted rate of its hour of the week, with the band a Poisson count falls in 90% of the time
  (mean +- 1.645 sqrt(mean), the normal approximation): if far more than 10% of the hours fall
  outside, the traffic varies more from week to week than a fixed weekly profile says;
- the **holding-time CDFs**, observed and fitted, on a log time axis, with their largest gap
  (the Kolmogorov-Smirnov distance D).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._fit import HOURS_PER_WEEK, hour_of_week, offset_text
from ._model import ImportedModel, TrafficFit

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_COLORS = {"domestic": "#1f77b4", "international": "#ff7f0e", "conference_dial_out": "#9467bd",
           "toll_free": "#2ca02c"}
_Z90 = 1.645
_CDF_POINTS = 4000

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1160px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } .meta { color: #555; margin-top: 0; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.how { color: #333; max-width: 62em; } img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.9em; margin-top: 0.6em; }
th, td { padding: 0.3em 0.6em; border-bottom: 1px solid #e5e5e5; text-align: right; }
th { background: #f0f2f5; } td.name, th.name { text-align: left; }
"""


@dataclass(frozen=True)
class FitQuality:
    """Figures of merit per traffic type, shown in the page's table (and tested)."""

    type: str
    calls: int
    hours: int
    outside_band: float  # share of the period's whole hours outside the 90% Poisson band
    ks_distance: float  # largest gap between the observed and fitted holding-time CDFs


def write_fit_report(model: ImportedModel, page: Path) -> list[FitQuality]:
    """Write `page` and its PNGs (in the folder named after it, without ".html"); return the
    figures of merit.  Raises OSError when they cannot be written."""
    import matplotlib

    matplotlib.use("Agg")
    folder = page.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    sections, qualities = [], []
    for fit in model.traffic:
        observed, fitted = hourly_series(fit, model)
        quality = _quality(fit, observed, fitted)
        qualities.append(quality)
        charts = [(f"{fit.type}.png", _figure_png(fit, observed, fitted, model, quality))]
        for name, png in charts:
            (folder / name).write_bytes(png)
        sections.append(_section(fit, quality, charts))
    page.write_text(_page(model, qualities, sections, folder.name), encoding="utf-8")
    return qualities


def hourly_series(fit: TrafficFit, model: ImportedModel) -> tuple[np.ndarray, np.ndarray]:
    """Observed calls in each whole hour of the period, and the fitted rate of each."""
    period, starts = model.period, fit.starts_ms
    hours = max((period.end_ms - period.start_ms) // 3_600_000, 1)
    index = (starts - period.start_ms) // 3_600_000
    observed = np.bincount(index[(index >= 0) & (index < hours)], minlength=hours)[:hours]
    hour_starts = period.start_ms + np.arange(hours, dtype=np.int64) * 3_600_000
    fitted = fit.rates.calls_per_hour * _written_weights(fit)[hour_of_week(hour_starts, period.offset_min)]
    return observed, fitted


def _written_weights(fit: TrafficFit) -> np.ndarray:
    """The weights as the scenario writes them (4 decimals): the model that will run."""
    return np.round(fit.rates.weights, 4)


def _quality(fit: TrafficFit, observed: np.ndarray, fitted: np.ndarray) -> FitQuality:
    low, high = _band(fitted)
    outside = float(np.mean((observed < low) | (observed > high))) if len(observed) else 0.0
    seconds = np.sort(np.maximum(fit.durations_s.astype(float), 1.0))
    empirical = np.arange(1, len(seconds) + 1) / len(seconds)
    model_cdf = fit.holding.cdf(seconds)
    distance = float(np.max(np.maximum(np.abs(empirical - model_cdf),
                                       np.abs(empirical - 1 / len(seconds) - model_cdf)))) if len(seconds) else 0.0
    return FitQuality(fit.type, fit.calls, len(observed), outside, distance)


def _band(mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    spread = _Z90 * np.sqrt(mean)
    return np.maximum(mean - spread, 0), mean + spread


def _figure_png(fit: TrafficFit, observed: np.ndarray, fitted: np.ndarray, model: ImportedModel,
                quality: FitQuality) -> bytes:
    """One figure per traffic type, three panels: the week, every hour, the holding times.
    One figure with fixed margins, not tight_layout: it measures every tick label, which
    costs more than drawing."""
    import matplotlib.pyplot as plt

    fig, (week, series, holding) = plt.subplots(3, 1, figsize=(11, 9.6), dpi=100)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.96, bottom=0.06, hspace=0.42)
    _week_panel(week, fit, model)
    _series_panel(series, fit, observed, fitted)
    _holding_panel(holding, fit, quality)
    for axis in (week, series, holding):
        axis.grid(color="#dddddd", lw=0.6)
        axis.legend(frameon=False, fontsize=8)
    return _png(fig)


def _week_panel(axis, fit: TrafficFit, model: ImportedModel) -> None:
    color = _COLORS.get(fit.type, "#1f77b4")
    hours = np.arange(HOURS_PER_WEEK)
    observed_rate = np.divide(fit.rates.counts, fit.rates.covered, out=np.full(HOURS_PER_WEEK, np.nan),
                              where=fit.rates.covered > 0)
    axis.step(hours, fit.rates.calls_per_hour * _written_weights(fit), where="post", color=color,
              label="fitted rate (the scenario's week)")
    axis.plot(hours + 0.5, observed_rate, "o", ms=3, color="#333", label="observed: calls / hours covered")
    axis.set_xticks(range(0, HOURS_PER_WEEK + 1, 24), [*_DAYS, ""])
    axis.set_xlim(0, HOURS_PER_WEEK)
    axis.set_ylabel("calls per hour")
    axis.set_title(f"{fit.type}: the week on the local clock (UTC{offset_text(model.period.offset_min)})", loc="left")


def _series_panel(axis, fit: TrafficFit, observed: np.ndarray, fitted: np.ndarray) -> None:
    color = _COLORS.get(fit.type, "#1f77b4")
    low, high = _band(fitted)
    x = np.arange(len(observed))
    axis.fill_between(x, low, high, step="post", color=color, alpha=0.2, label="90% Poisson band")
    axis.step(x, fitted, where="post", color=color, lw=1, label="fitted")
    axis.step(x, observed, where="post", color="#333", lw=0.7, label="observed")
    axis.set_xlabel("hours since the start of the period")
    axis.set_ylabel("calls in the hour")
    axis.set_title("every hour of the period: observed vs fitted", loc="left")


def _holding_panel(axis, fit: TrafficFit, quality: FitQuality) -> None:
    seconds = np.sort(np.maximum(fit.durations_s.astype(float), 1.0))
    shares = np.arange(1, len(seconds) + 1) / len(seconds)
    if len(seconds) > _CDF_POINTS:  # a million steps draw as the same curve as a few thousand
        keep = np.unique(np.linspace(0, len(seconds) - 1, _CDF_POINTS).astype(np.int64))
        seconds, shares = seconds[keep], shares[keep]
    axis.step(seconds, shares, where="post", color="#333", label=f"observed ({fit.calls:,} calls)")
    grid = np.geomspace(1, max(seconds.max(), 2) * 1.5, 400)
    axis.plot(grid, fit.holding.cdf(grid), color=_COLORS.get(fit.type, "#1f77b4"),
              label=f"fitted: {fit.holding.distribution}")
    axis.set_xscale("log")
    axis.set_xlabel("holding time (s, log scale)")
    axis.set_ylabel("share of calls shorter")
    axis.set_title(f"holding times, largest gap D = {quality.ks_distance:.3f}", loc="left")


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _section(fit: TrafficFit, quality: FitQuality, charts: list[tuple[str, bytes]]) -> str:
    seen = int(fit.rates.covered.max())
    caution = ("" if seen >= 2 else
               '<p class="how"><b>Each hour of the week is seen at most once in this export:</b> the fitted '
               "rates are the observations themselves, so the band says nothing; a few weeks of usage "
               "show how well one weekly profile holds.</p>")
    images = "".join(f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" '
                     f'alt="{html.escape(name)}">' for name, png in charts)
    return (f'<section id="{fit.type}"><h2>{html.escape(fit.type)}: {fit.calls:,} calls</h2>'
            f'<p class="how">Top: the fitted rate of each hour of the week (what the scenario writes) and '
            f"the observed average it comes from. Middle: every hour of the export; "
            f"{quality.outside_band:.0%} of them fall outside the 90% Poisson band (about 10% if the "
            f"weekly profile explains the traffic). Bottom: holding times, observed and fitted "
            f"({html.escape(fit.holding.distribution)}).</p>{caution}{images}</section>")


def _page(model: ImportedModel, qualities: list[FitQuality], sections: list[str], folder: str) -> str:
    rows = "".join(f'<tr><td class="name">{html.escape(q.type)}</td><td>{q.calls:,}</td><td>{q.hours:,}</td>'
                   f"<td>{q.outside_band:.1%}</td><td>{q.ks_distance:.3f}</td></tr>" for q in qualities)
    sources = ", ".join(html.escape(s) for s in model.sources)
    return "".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>callsim import: fit for {html.escape(model.org)}</title><style>{_CSS}</style></head><body>",
        f"<h1>callsim import: how the model fits {html.escape(model.org)}'s calls</h1>",
        f'<p class="meta">From {sources}; {model.rows:,} rows. PNGs in <code>{html.escape(folder)}/</code>.</p>',
        '<table><tr><th class="name">traffic</th><th>calls</th><th>hours</th>'
        "<th>hours outside the 90% band</th><th>holding-time gap D</th></tr>", rows, "</table>",
        *sections, "</body></html>\n"])

