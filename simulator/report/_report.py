"""`callsim report OUT_DIR`: a finished run as one self-contained HTML page of charts.

The page (OUT_DIR/report.html unless --output says otherwise) embeds its PNGs
as data URIs, so it can be mailed or attached to a ticket as one file; the
same PNGs are also written next to it (OUT_DIR/report/*.png) for slides and
wikis.  It is built from the run's files only -- summary.json, events.jsonl,
cdrs.csv (or cdrs.msgpack) -- not from the scenario; see docs/report.md for
how to read it and `_series` for how the curves are reconstructed.

Layout of the implementation: `_data` reads the directory into
integer columns, `_series` turns them into time profiles (vectorised),
`_charts` draws them, `_html` writes the page; this module
chooses what to show and ties them together.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rating_core import CALL_TYPE_NAMES, END_REASON_NAMES

from ..outputs import REPORT_HTML, RunNotFinished, reading
from ..units import format_micro_grouped
from ._data import ReportError, RunData, load_run, micro
from ._series import (
    active_calls,
    balance_curves,
    ends_per_bin,
    pool_curves,
    time_grid,
)

__all__ = ["DEFAULT_HTML", "Report", "ReportError", "build_report", "main"]

DEFAULT_HTML = REPORT_HTML
#: orgs drawn in the per-org charts (one panel each); the table lists more.
MAX_ORG_PANELS = 6
MAX_TABLE_ORGS = 25

_NICE_BINS_MS = [(60_000, "minute"), (5 * 60_000, "5 minutes"), (15 * 60_000, "15 minutes"),
                 (3_600_000, "hour"), (6 * 3_600_000, "6 hours"), (86_400_000, "day"),
                 (7 * 86_400_000, "week")]
_MAX_BINS = 150  # calls-ended-over-time chart
_MAX_ACTIVE_BINS = 800  # active-calls chart: finer, it is an area


@dataclass(frozen=True)
class Report:
    html: Path
    pngs: tuple[Path, ...]
    seconds: float  # wall time to build it


def build_report(out_dir: Path, output: Path | None = None) -> Report:
    """Read the run in `out_dir`, write the HTML page and its PNGs, return where they are.

    Raises `ReportError` (path: problem) for input that is not a finished run
    (a run still writing there, or one killed before its summary.json, is said
    so in those words) or an output that cannot be written.  No run can start
    in `out_dir` while the report reads it (`_out_dir.reading`).
    """
    try:
        with reading(out_dir):
            return _build_report(out_dir, output)
    except RunNotFinished as err:
        raise ReportError(err.path, err.problem) from None


def _build_report(out_dir: Path, output: Path | None) -> Report:
    started = time.perf_counter()
    from . import _charts as charts  # matplotlib: imported only when a report is made
    from ._html import Chart, render_page

    html_path = output if output is not None else out_dir / DEFAULT_HTML
    run = load_run(out_dir)
    axis = charts.TimeAxis(run.start, run.duration_ms)
    grid = time_grid(run.duration_ms)
    ranked = rank_orgs(run.summary)
    credit_orgs = [o for o in ranked if _has_credits(run, o)]
    pool_orgs = sorted((o for o in ranked if _pool_names(run, o)), key=lambda o: -_pool_s(run, o))
    shown_credit, shown_pool = credit_orgs[:MAX_ORG_PANELS], pool_orgs[:MAX_ORG_PANELS]

    balances = balance_curves(run, shown_credit, grid)
    pools = pool_curves(run, shown_pool, grid)
    bin_ms, bin_text = _bin_for(run.duration_ms, _MAX_BINS)
    active_bin_ms, active_bin_text = _bin_for(run.duration_ms, _MAX_ACTIVE_BINS)
    active = active_calls(run, len(CALL_TYPE_NAMES), active_bin_ms)
    by_reason_type = np.bincount(
        run.cdrs.end_reason.astype(np.intp) * len(CALL_TYPE_NAMES) + run.cdrs.call_type,
        minlength=len(END_REASON_NAMES) * len(CALL_TYPE_NAMES),
    ).reshape(len(END_REASON_NAMES), len(CALL_TYPE_NAMES))

    currency = run.currency
    rendered = [
        Chart("credit-balance", "credit_balance.png", "Credit balance",
              charts.balance_chart(balances, currency, axis,
                                   [_balance_title(run, o, axis) for o in shown_credit]),
              _selection_note(len(shown_credit), len(credit_orgs), "with communications credits",
                              "the most credits charged")),
        Chart("pool-remaining", "pool_remaining.png", "Pool remaining",
              charts.pool_chart(pools, axis, {o: _pool_title(run, o) for o in shown_pool}),
              _selection_note(len(shown_pool), len(pool_orgs), "with pools of plan minutes",
                              "the most pool seconds used")),
        Chart("active-calls", "active_calls.png", "Active calls",
              charts.active_chart(active, axis, active_bin_text), ""),
        Chart("calls-ended", "calls_ended.png", "Calls ended by reason",
              charts.ends_chart(by_reason_type, ends_per_bin(run, len(END_REASON_NAMES), bin_ms),
                                bin_text, axis), ""),
    ]
    peak = (active.max_level, active.max_at_ms)
    page = render_page(run, rendered, ranked[:MAX_TABLE_ORGS], peak, axis, html_path.stem)
    pngs = _write(html_path, page, rendered)
    return Report(html_path, pngs, time.perf_counter() - started)


def main(args: Any, usage_error: type[Exception]) -> int:
    """`callsim report`: build it, print where it is; input problems become `usage_error`."""
    try:
        report = build_report(args.out_dir, args.output)
    except ReportError as err:
        raise usage_error(str(err)) from None
    print(f"callsim: report {report.html} ({len(report.pngs)} charts also in "
          f"{report.pngs[0].parent}/) in {report.seconds:.1f} s")
    return 0


# --- what to show ----------------------------------------------------------------------------


def rank_orgs(summary: dict[str, Any]) -> list[int]:
    """Org indexes by credits charged (exact), then billed seconds, then scenario order."""
    sections = list(summary["orgs"].values())
    return sorted(range(len(sections)), key=lambda o: (-micro(sections[o]["credits_charged"]),
                                                       -sections[o]["billed_s"], o))


def _section(run: RunData, org: int) -> dict[str, Any]:
    return run.summary["orgs"][run.org_ids[org]]


def _has_credits(run: RunData, org: int) -> bool:
    s = _section(run, org)
    return micro(s["credits_purchased"]) > 0 or micro(s["credits_charged"]) > 0 \
        or s["recharges_failed"] > 0 \
        or bool(np.any((run.events.org == org) & ~run.events.of("pools_refilled")))


def _pool_names(run: RunData, org: int) -> list[str]:
    return list(_section(run, org).get("pool_remaining_s", {}))


def _pool_s(run: RunData, org: int) -> int:
    return sum(_section(run, org)["pool_s_by_pool"].values())


def _selection_note(shown: int, of: int, which: str, by: str) -> str:
    if of <= shown:
        return ""
    return (f"Showing the {shown} orgs with {by}, of the {of} orgs {which}; "
            "the table below lists more.")


def _balance_title(run: RunData, org: int, axis: Any) -> str:
    s, currency = _section(run, org), run.currency
    failed = f" ({s['recharges_failed']:,} failed)" if s["recharges_failed"] else ""
    exhausted = run.events.time_ms[run.events.of("balance_exhausted", org)]
    first_exhausted = f" · exhausted {axis.label(int(exhausted[0]))}" if len(exhausted) else ""
    return (f"{run.org_ids[org]}: {format_micro_grouped(micro(s['credits_charged']))} {currency} charged · "
            f"{s['recharges_succeeded']:,} recharges{failed} · "
            f"final {format_micro_grouped(micro(s['final_balance']))} {currency}{first_exhausted}")


def _pool_title(run: RunData, org: int) -> str:
    return f"{run.org_ids[org]}: {_pool_s(run, org) / 3600:,.1f} h paid from pools"


def _bin_for(duration_ms: int, max_bins: int) -> tuple[int, str]:
    """The shortest round interval that cuts the run into at most `max_bins` bins."""
    for ms, words in _NICE_BINS_MS:
        if duration_ms / ms <= max_bins:
            return ms, words
    return _NICE_BINS_MS[-1]


# --- files -----------------------------------------------------------------------------------


def _write(html_path: Path, page: str, charts: list) -> tuple[Path, ...]:
    """The PNGs in a folder named after the page (report.html -> report/), then the page;
    each written to a temporary name and renamed, so a reader never sees half a file."""
    png_dir = html_path.with_suffix("")
    try:
        png_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for chart in charts:
            paths.append(_replace(png_dir / chart.file_name, chart.png))
        _replace(html_path, page.encode("utf-8"))
    except OSError as err:
        raise ReportError(Path(err.filename or html_path), f"cannot write the report "
                          f"({err.strerror or err})") from None
    return tuple(paths)


def _replace(path: Path, data: bytes) -> Path:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
    return path
