"""The switch: turns simulated time into rating windows.

One long-lived task.  Each turn it takes the arrivals of the next window from
the traffic plan, lets the rating core answer, charge, cut and hang up
everything due before the window's end, and sends the finished CDRs and
ledger events down a channel to the output writers.  At `--speed max`
windows are an hour of simulated time; at a finite speed they follow the
clock in ticks so due events are applied promptly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from rating_core import Arrivals, RatingEngine, Step

from .clock import SimClock
from .traffic import TrafficPlan

VIRTUAL_WINDOW_MS = 3_600_000
MAX_WINDOW_CALLS = 65_536
"""Arrivals per window at most (an instant is never split): a window's memory and wall time
follow its calls, so at 10^7 calls/h an hour is cut into ~150 windows rather than one of 10 M."""
TICK_S = 0.01  # wall seconds between windows at a finite speed


@dataclass
class WindowReport:
    """What the switch tells observers (metrics, progress) after each window."""

    t0_ms: int
    t1_ms: int
    step: Step
    arrivals: int
    rating_s: float  # wall seconds spent in the rating core
    # Wall seconds between the instant t0 falling due and the rating core returning the
    # window's decisions: an upper bound on the lag of every event applied in the window
    # (0 in virtual time, where nothing is ever "due" on a wall clock).
    lag_s: float
    final: bool = False  # the end-of-run step: calls still connected end (t0_ms == t1_ms)


def next_arrivals(engine: RatingEngine, plan: TrafficPlan, t1: int,
                  max_window_calls: int = MAX_WINDOW_CALLS) -> tuple[int, Arrivals]:
    """The next window to rate, from `engine.now` toward `t1`: its end and its arrivals.

    The window ends at `t1`, or earlier so that it holds at most `max_window_calls` arrivals
    (`TrafficPlan.window_end`).  What the switch does each turn before rating, shared with the
    callers that drive the engine without a clock or a channel (`simulator.sweep`).
    """
    t1 = plan.window_end(engine.now, t1, max_window_calls)
    return t1, plan.chunk(engine.now, t1)


class StopRequest(Protocol):
    """What the switch reads to stop early (a trio.Event will do)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> None: ...


class Switch:
    def __init__(self, engine: RatingEngine, plan: TrafficPlan, clock: SimClock,
                 max_window_calls: int = MAX_WINDOW_CALLS) -> None:
        self.engine = engine
        self.max_window_calls = max_window_calls
        self.plan = plan
        self.clock = clock
        self.observers: list[Callable[[WindowReport], None]] = []

    @property
    def now_ms(self) -> int:
        return self.engine.now

    async def run(self, out: trio.abc.SendChannel[Step], stop: StopRequest) -> bool:
        """Advance to the end of the simulation, sending each window's Step to `out`.

        Setting `stop` ends the run at the next window boundary: every Step
        rated so far has been sent, and the calls still connected are ended as
        `simulation_end` at that instant.  Returns True when the run reached
        the end of the simulation.
        """
        end = self.engine.setup.end_ms
        self.clock.start()
        while self.engine.now < end:
            t0 = self.engine.now
            t1 = await self._next_window_end(t0, end, stop)
            if stop.is_set():
                await out.send(self._finish(at_ms=t0))
                return False
            t1, arrivals = next_arrivals(self.engine, self.plan, t1, self.max_window_calls)
            started = time.perf_counter()
            step = self.engine.advance(arrivals, t1)
            rating_s = time.perf_counter() - started
            self._report(WindowReport(t0, t1, step, len(arrivals), rating_s, self.clock.lag_s(t0)))
            await out.send(step)
        await out.send(self._finish())
        return True

    def _finish(self, at_ms: int | None = None) -> Step:
        """End the calls still connected; observers see it as a last, empty-length window."""
        now = self.engine.now
        step = self.engine.finish(at_ms=at_ms)
        self._report(WindowReport(now, now, step, 0, 0.0, 0.0, final=True))
        return step

    def _report(self, report: WindowReport) -> None:
        for observe in self.observers:
            observe(report)

    async def _next_window_end(self, t0: int, end: int, stop: StopRequest) -> int:
        if self.clock.virtual:
            await trio.lowlevel.checkpoint()
            return min(end, t0 + VIRTUAL_WINDOW_MS)
        # wait for the next tick (or a stop), then take every instant the clock has reached
        tick_ms = max(1, int(TICK_S * self.clock.speed * 1000))
        with trio.move_on_at(self.clock.wall_of(min(end, t0 + tick_ms) - 1)):
            await stop.wait()
        return min(end, max(t0 + 1, self.clock.now_ms() + 1))
