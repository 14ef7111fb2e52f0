"""A finished (or interrupted) sweep's files, and the lines the command prints about it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..scenario import Scenario
from ..units import format_micro_grouped
from ._dask import SweepResult
from ._files import SweepInfo, write_csv, write_json
from ._grid import Point
from ._html import write_html
from ._stats import TOTAL, PointStats, point_stats


@dataclass(frozen=True)
class Outcome:
    """What the command prints: a table of the points (stdout) and a one-line verdict."""

    stats: list[PointStats]
    table: str
    line: str


def write_outputs(out_dir: Path, scenario: Scenario, source: Path, seeds: Sequence[int],
                  points: Sequence[Point], result: SweepResult) -> Outcome:
    """Write sweep.csv, sweep.html and sweep.json (last) in `out_dir` from `result`."""
    settings = tuple(o.path for o in points[0]) if points else ()
    info = SweepInfo(scenario.name, str(source), scenario.setup.start, scenario.seed, len(seeds), settings,
                     tuple(points))
    stats = point_stats(points, result.runs)
    line = _verdict(result)
    write_csv(out_dir, info, result.runs)
    write_html(out_dir, info, stats, scenario.setup.currency, line)
    write_json(out_dir, info, result, stats)
    return Outcome(stats, _table(stats), line)


def _verdict(result: SweepResult) -> str:
    runs = len(result.specs)
    where = "in this process" if result.workers == 1 and not result.on_dask else (
        f"on {result.workers} worker{'s' if result.workers != 1 else ''}")
    text = f"{len(result.runs)} of {runs} runs finished in {result.wall_s:.1f} s {where}"
    if result.failures:
        text += f", {len(result.failures)} failed"
    if result.interrupted:
        text += ", interrupted (the others were cancelled)"
    return text


def _table(stats: Sequence[PointStats]) -> str:
    rows = [("setting", "runs", "cut risk", "calls cut p50/p95/max", "purchased p50", "spent p50",
             "recharges p50", "peak calls p95")]
    for p in stats:
        t = p.orgs[TOTAL]
        rows.append((", ".join(str(o) for o in p.point) or "(as written)", str(len(p.seeds)),
                     f"{t.cut_share:.1%}", f"{t.calls_cut.p50}/{t.calls_cut.p95}/{t.calls_cut.max}",
                     format_micro_grouped(t.credits_purchased.p50), format_micro_grouped(t.credits_spent.p50),
                     str(t.recharges_succeeded.p50), str(t.peak_concurrent_calls.p95)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))) for row in rows)
