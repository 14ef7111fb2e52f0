"""Progress of a run: a rich progress bar on a terminal, plain periodic lines otherwise.

The bar shows simulated time, the share of the run done, calls per wall
second, active calls and drops (dropped or blocked for lack of balance).
`--quiet`, or a stderr that is not a terminal (CI logs, `2> file`), gets the
same figures as one plain line every `PLAIN_EVERY_S` wall seconds instead:
nothing that redraws, nothing that floods a log.

It observes the switch's WindowReports and never slows the run down by more
than a few counter updates per window: rich throttles its own redraws, and
plain lines are written at most every `PLAIN_EVERY_S`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TextIO

import numpy as np

from rating_core import END_REASON_NAMES, EndReason

from .scenario import Scenario
from .switch import WindowReport

PLAIN_EVERY_S = 5.0
# per end reason, whether it counts as a drop or block (a gather, not np.isin: ~0.15 ms a window)
_IS_DROP = np.zeros(len(END_REASON_NAMES), dtype=bool)
_IS_DROP[[EndReason.DROPPED_BALANCE_EXHAUSTED, EndReason.BLOCKED_NO_BALANCE]] = True


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
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._bar = RichProgress(
                TextColumn("[bold]simulated[/] {task.fields[sim]}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),  # the stream we checked is a terminal
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("run", total=self.end_ms, sim="0:00:00", stats="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def observe(self, report: WindowReport) -> None:
        cdrs = report.step.cdrs
        self.calls += report.arrivals
        self.ended += len(cdrs)
        self.drops += int(np.count_nonzero(_IS_DROP.take(cdrs.end_reason)))
        self.sim_ms = report.t1_ms
        self.active = self.calls - self.ended
        now = self._wall()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.sim_ms, sim=_hms(self.sim_ms), stats=self._stats(now))
        elif now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            print(self.line(now), file=self.stream, flush=True)

    def line(self, now: float) -> str:
        """The plain progress line."""
        pct = 100 * self.sim_ms / max(self.end_ms, 1)
        return f"callsim: simulated {_hms(self.sim_ms)} ({pct:.1f}%) {self._stats(now)}"

    def _stats(self, now: float) -> str:
        rate = self.calls / max(now - self._wall0, 1e-9)
        return f"{self.calls:,} calls ({rate:,.0f}/s), {self.active:,} active, {self.drops:,} drops/blocks"

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


def _hms(ms: int) -> str:
    return str(timedelta(seconds=ms // 1000))
