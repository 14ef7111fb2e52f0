"""sweep.csv (one row per run) and sweep.json (per grid point), docs/sweep.md.

Money is written as summary.json writes it (decimal text, 6 decimals, exact); instants as
cdrs.csv writes them (ISO-8601 UTC with ms).  sweep.json is written last, under a temporary
name then renamed: it is the sign that a sweep's files are complete (an interrupted sweep
says so inside it, `"complete": false`, with the runs that finished).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..outputs import SWEEP_CSV, SWEEP_JSON
from ..units import epoch_ms, format_epoch_ms_iso, format_micro
from ._dask import SweepResult
from ._grid import Point
from ._stats import TOTAL, Distribution, OrgStats, PointStats
from ._summary import ORG_FIELDS, OrgRunSummary, RunSummary

_MONEY_FIELDS = {"credits_spent_micros", "credits_purchased_micros", "lowest_balance_micros"}
_CSV_FIELDS = tuple(name for name in ORG_FIELDS if name != "credits_spent_by_day_micros")  # a column a day: left out


@dataclass(frozen=True)
class SweepInfo:
    """What the files say about the sweep besides its runs."""

    scenario_name: str
    source: str
    start: datetime
    base_seed: int
    seeds: int
    settings: tuple[str, ...]  # the swept paths, in --set order
    points: tuple[Point, ...]


def write_csv(out_dir: Path, info: SweepInfo, runs: Sequence[RunSummary]) -> None:
    """sweep.csv: point, the setting of each swept path, seed, then the total's figures (and
    each org's, `ORG:figure`, when the scenario has more than one org)."""
    index = {point: i for i, point in enumerate(info.points)}
    org_ids = list(runs[0].orgs) if runs else []
    per_org = org_ids if len(org_ids) > 1 else []
    header = ["point", *info.settings, "seed", *_figure_names()]
    header += [f"{org}:{name}" for org in per_org for name in _figure_names()]
    path = out_dir / SWEEP_CSV
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        for run in runs:
            row = [index[run.point], *(o.shown for o in run.point), run.seed, *_figures(run.total, info.start)]
            for org in per_org:
                row += _figures(run.orgs[org], info.start)
            writer.writerow(row)


def write_json(out_dir: Path, info: SweepInfo, result: SweepResult, stats: Sequence[PointStats]) -> dict[str, Any]:
    """sweep.json: the sweep, then per grid point the distributions over its seeds."""
    document = {
        "scenario": info.scenario_name,
        "source": info.source,
        "base_seed": info.base_seed,
        "seeds": info.seeds,
        "settings": list(info.settings),
        "runs": len(result.specs),
        "finished": len(result.runs),
        "failed": [str(f) for f in result.failures],
        "complete": not result.interrupted and not result.failures,
        "workers": result.workers,
        "wall_s": round(result.wall_s, 3),
        "points": [_point(p, info.start) for p in stats],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    partial = out_dir / f".{SWEEP_JSON}.partial"
    partial.write_text(text, encoding="utf-8", newline="\n")
    partial.replace(out_dir / SWEEP_JSON)
    return document


def _figure_names() -> list[str]:
    names = []
    for name in _CSV_FIELDS:
        if name == "pool_exhausted_ms":
            names.append("pool_exhausted_at")
        else:
            names.append(name.removesuffix("_micros"))
        if name == "cut_blocked":
            names.append("calls_cut")
    return names


def _figures(org: OrgRunSummary, start: datetime) -> list[str | int]:
    row: list[str | int] = []
    for name in _CSV_FIELDS:
        value = getattr(org, name)
        if name in _MONEY_FIELDS:
            row.append(format_micro(value))
        elif name == "pool_exhausted_ms":
            row.append("" if value is None else _instant(start, value))
        else:
            row.append(value)
        if name == "cut_blocked":
            row.append(org.calls_cut)
    return row


def _instant(start: datetime, ms: int) -> str:
    return format_epoch_ms_iso(epoch_ms(start) + ms)


def _point(stats: PointStats, start: datetime) -> dict[str, Any]:
    return {
        "index": stats.index,
        "setting": {o.path: o.shown for o in stats.point},  # as typed: "50.00" stays 50.00
        "runs": len(stats.seeds),
        TOTAL: _org(stats.orgs[TOTAL], start),
        "orgs": {org: _org(s, start) for org, s in stats.orgs.items() if org != TOTAL},
    }


def _org(s: OrgStats, start: datetime) -> dict[str, Any]:
    exhausted: dict[str, Any] = {"share_of_seeds": s.pool_exhausted_share}
    if s.pool_exhausted_ms is not None:
        exhausted.update(_dist(s.pool_exhausted_ms, lambda ms: _instant(start, ms)))
    return {
        "calls": _dist(s.calls),
        "calls_cut": {"share_of_seeds": s.cut_share, **_dist(s.calls_cut)},
        "cut_dropped": _dist(s.cut_dropped),
        "cut_blocked": _dist(s.cut_blocked),
        "credits_spent": _dist(s.credits_spent, format_micro),
        "credits_purchased": _dist(s.credits_purchased, format_micro),
        "recharges_succeeded": _dist(s.recharges_succeeded),
        "recharges_failed": _dist(s.recharges_failed),
        "lowest_balance": _dist(s.lowest_balance, format_micro),
        "pool_exhausted": exhausted,
        "peak_concurrent_calls": _dist(s.peak_concurrent_calls),
    }


def _dist(d: Distribution, show=None) -> dict[str, Any]:
    """A distribution's fields; `show` writes a value (money, instant) as the files do."""
    if show is None:
        return {"mean": round(d.mean, 3), "min": d.min, "p5": d.p5, "p50": d.p50, "p95": d.p95, "max": d.max}
    return {"mean": show(round(d.mean)), "min": show(d.min), "p5": show(d.p5), "p50": show(d.p50),
            "p95": show(d.p95), "max": show(d.max)}
