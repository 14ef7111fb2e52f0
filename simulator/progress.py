"""Progress of a run: a one-line live status on a terminal, plain periodic lines otherwise.

The status line shows simulated time, a bar with the share of the run done,
calls per wall second, active calls, drops (dropped or blocked for lack of
balance) and the wall time left.  It is laid out for the terminal's width
(`status_line`): on a narrow one (80 columns and less) the counts are
abbreviated, then the rate, the time left and the bar give way, so the line
never wraps and never loses the simulated time, the share done, the calls,
the active calls or the drops.

A stderr that is not a terminal (CI logs, `2> file`) gets the same figures
as one plain line every `PLAIN_EVERY_S` wall seconds instead: nothing that
redraws, nothing that floods a log.  `quiet` prints no progress at all.

It observes the switch's WindowReports and never slows the run down by more
than a few counter updates per window: rich redraws the line a few times a
second from its own thread, and plain lines are written at most every
`PLAIN_EVERY_S`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

import numpy as np

from rating_core import END_REASON_NAMES, EndReason

from .scenario import Scenario
from .switch import WindowReport

if TYPE_CHECKING:
    from rich.table import Table

PLAIN_EVERY_S = 5.0
REFRESH_PER_S = 4  # redraws of the status line per wall second
MIN_BAR = 8  # narrower than this, a bar shows nothing: leave it out
MAX_BAR = 40
# per end reason, whether it counts as a drop or block (a gather, not np.isin: ~0.15 ms a window)
_IS_DROP = np.zeros(len(END_REASON_NAMES), dtype=bool)
_IS_DROP[[EndReason.DROPPED_BALANCE_EXHAUSTED, EndReason.BLOCKED_NO_BALANCE]] = True


@dataclass(frozen=True)
class Figures:
    """What the status line shows, at one instant."""

    sim_ms: int
    done: float  # share of the simulated span rated, 0..1
    calls: int
    rate: float  # calls per wall second
    active: int
    drops: int
    left_s: float | None  # wall seconds left at the pace so far; None before any progress


def status_line(figures: Figures, width: int) -> tuple[str, int, str]:
    """The status line for a terminal `width` columns wide: (head, bar width, tail).

    The bar (0: none) goes between head and tail, one space either side.  The
    first of these layouts that fits, with a bar of at least MIN_BAR, wins:
    every figure in full; counts abbreviated; without the word "simulated";
    without the rate and the time left; then without the bar.  What is
    left is at most ~55 columns; a terminal narrower than that cuts its end.
    """
    f = figures
    pct = f"{100 * f.done:5.1f}%"
    left = "" if f.left_s is None else f" eta {_hms(round(f.left_s * 1000))}"
    full = f"{pct} {_counts(f)}{left}"
    short = f"{_short(f.calls)} calls {_short(f.active)} active {_short(f.drops)} drops"
    with_rate = (f"{_short(f.calls)} calls {_short(round(f.rate))}/s {_short(f.active)} active "
                 f"{_short(f.drops)} drops{left}")
    sim = _sim_time(f.sim_ms)
    layouts = (
        (f"simulated {sim}", full),
        (f"simulated {sim}", f"{pct} {with_rate}"),
        (sim, f"{pct} {with_rate}"),
        (sim, f"{pct} {short}"),
    )
    for head, tail in layouts:
        room = width - len(head) - len(tail) - 2
        if room >= MIN_BAR:
            return head, min(room, MAX_BAR), tail
    return sim, 0, f"{pct.lstrip()} {short}"


class Progress:
    """Observer of one run's windows; use as a context manager around the run.

    `wall` is the clock that paces plain lines and measures calls/s
    (`time.perf_counter`; tests pass a fake one instead of sleeping).
    """

    def __init__(
        self,
        scenario: Scenario,
        quiet: bool = False,
        stream: TextIO | None = None,
        wall: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.end_ms = scenario.setup.end_ms
        self.stream = stream or sys.stderr
        self.quiet = quiet
        isatty = getattr(self.stream, "isatty", None)
        self.rich = not quiet and bool(isatty and isatty())
        self.calls = 0
        self.ended = 0
        self.drops = 0
        self.sim_ms = 0
        self.active = 0
        self._wall = wall
        self._wall0 = wall()
        self._last_plain = self._wall0
        self._bar = None

    def __enter__(self) -> "Progress":
        if self.rich:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream)  # a terminal; rich reads its width (or $COLUMNS)
            self._bar = Live(get_renderable=lambda: self.render(console.width), console=console,
                             refresh_per_second=REFRESH_PER_S, transient=True)
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def figures(self, now: float) -> Figures:
        """The figures so far, `now` being the wall clock's reading."""
        elapsed = max(now - self._wall0, 1e-9)
        done = min(self.sim_ms / max(self.end_ms, 1), 1.0)
        left = elapsed * (1 - done) / done if done > 0 else None
        return Figures(self.sim_ms, done, self.calls, self.calls / elapsed, self.active, self.drops, left)

    def render(self, width: int) -> "Table":
        """The status line as rich draws it, `width` columns wide."""
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        head, bar, tail = status_line(self.figures(self._wall()), width)
        line = Table.grid(padding=(0, 1))
        line.add_column(no_wrap=True, min_width=len(head))  # a narrow terminal crops the tail
        cells: list = [head]
        if bar:
            line.add_column(no_wrap=True, width=bar)
            cells.append(ProgressBar(total=max(self.end_ms, 1), completed=self.sim_ms, width=bar))
        line.add_column(no_wrap=True, overflow="ellipsis")
        cells.append(tail)
        line.add_row(*cells)
        return line

    def observe(self, report: WindowReport) -> None:
        cdrs = report.step.cdrs
        self.calls += report.arrivals
        self.ended += len(cdrs)
        self.drops += int(np.count_nonzero(_IS_DROP.take(cdrs.end_reason)))
        self.sim_ms = report.t1_ms
        self.active = self.calls - self.ended
        if self._bar is not None or self.quiet:
            return  # the bar redraws itself from these counters
        now = self._wall()
        if now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float) -> str:
        """The plain progress line."""
        pct = 100 * self.sim_ms / max(self.end_ms, 1)
        return f"callsim: simulated {_hms(self.sim_ms)} ({pct:.1f}%) {self._stats(now)}"

    def _stats(self, now: float) -> str:
        return _counts(self.figures(now))

    def print_summary(self, result, wall_s: float) -> None:
        """A few lines on stdout: where the files are and what happened."""
        total = result.summary["total"]
        calls = total["calls"]
        state = "complete" if result.complete else "INTERRUPTED (partial run)"
        print(f"callsim: {state}: {calls:,} calls in {wall_s:.2f} s wall "
              f"({calls / max(wall_s, 1e-9):,.0f} calls/s) -> {result.out_dir}/")
        reasons = total["calls_by_end_reason"]
        print("  " + ", ".join(f"{k} {reasons[k]:,}" for k in END_REASON_NAMES if reasons.get(k)))
        print(f"  billed {total['billed_s']:,} s, credits charged {total['credits_charged']}, "
              f"recharges {total['recharges_succeeded']} ok / {total['recharges_failed']} failed")


def _counts(f: Figures) -> str:
    """The counts in full, as the plain lines and a wide status line show them."""
    return f"{f.calls:,} calls ({f.rate:,.0f}/s), {f.active:,} active, {f.drops:,} drops/blocks"


def _hms(ms: int) -> str:
    return str(timedelta(seconds=ms // 1000))


def _sim_time(ms: int) -> str:
    """Simulated time, narrow: "4:00:00", "23d 04:00:00"."""
    days, rest = divmod(ms // 1000, 86_400)
    clock = f"{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"
    return f"{days}d {clock}" if days else clock.removeprefix("0")


def _short(n: float) -> str:
    """A count in at most 5 characters: 9,999 / 12.3k / 105k / 1.12M / 2.5G."""
    if n < 10_000:
        return f"{n:,.0f}"
    for scale, unit in ((1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")):
        value = n / scale
        if value < 999.5:
            return f"{value:.3g}{unit}"
    return f"{n:.2g}"
