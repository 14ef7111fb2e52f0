"""The exchange: the one task that drives the rating core for `callsim serve`.

The engine is not task-safe, so connection handlers never call it.  They
queue setups and hang-ups here (plain list appends: Trio runs one task at a
time, and `_tick` never awaits), and this task, at most once a millisecond,
turns everything queued since the last tick into one `advance`: many setups
per call into the core, which is what makes the vectorised engine pay off.
An advance costs the core a fixed ~0.5-1 ms plus a pass over every connected
call, so after each tick the task pauses as long as the tick took: under
load the ticks stretch, each rates a bigger batch, and the connections keep
at least half of the process.
The outcome is routed back to the connections that asked (answered,
rejected, disconnected, ended) and handed to the output writer.

Time: simulated t = 0 is the moment the exchange starts, and one simulated
millisecond is one millisecond of `trio.current_time()` (so tests drive it
with `MockClock`).  A setup or hang-up takes the millisecond it was received
in, or the engine's `now` if that tick has already been processed: never
more than a tick late.  When nothing is queued the task sleeps until the
engine's next due instant (an increment boundary, a refill, a lot expiry),
so an idle server does not spin, and a call that cannot pay a boundary is
cut, and its client told, within the millisecond of that boundary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import trio

from rating_core import FOREVER_MS, Arrivals, EndReason, RatingEngine, RatingSetup, Step

from . import _server_messages as msgs
from ._wire import UNAVAILABLE, ProtocolError

_REJECTED = frozenset(
    int(r) for r in (EndReason.BLOCKED_NO_BALANCE, EndReason.NOT_LICENSED, EndReason.UNROUTABLE))
_EPS_MS = 1e-6  # float slack when mapping Trio time to whole milliseconds


class CallSink(Protocol):
    """What the exchange needs from a connection: somewhere to send each call's outcome."""

    wants_cdr: bool  # whether its `ended` messages carry the CDR columns

    def on_answered(self, ref: int | str, call_id: int) -> None: ...
    def on_rejected(self, ref: int | str, call_id: int, end_reason: int) -> None: ...
    def on_ended(self, ref: int | str, message: dict[str, Any]) -> None: ...


# A queued setup: (sink, ref, received trio time, call_id, t_ms, org, user, kind, to, from).
# A plain tuple: one is built per call at tens of thousands a second.
_Queued = tuple
_ROW = slice(3, None)


class Exchange:
    """Owns the RatingEngine; `run` is its only driver."""

    def __init__(
        self,
        setup: RatingSetup,
        on_step: Callable[[Step], None],
        on_latency: Callable[[float], None] = lambda s: None,
        tick_s: float = 0.001,
        on_advance: Callable[[float, int], None] = lambda s, n: None,
    ) -> None:
        self.engine = RatingEngine(setup)
        self.setup = setup
        self._on_step = on_step
        self._on_latency = on_latency
        self._on_advance = on_advance
        self._tick_s = tick_s
        self._t0: float | None = None
        self._queue: list[_Queued] = []
        self._hangups: list[tuple[int, int]] = []  # (call_id, t_ms)
        self._routes: dict[int, tuple[CallSink, int | str]] = {}  # call_id -> who asked
        self._messages = msgs.CdrMessages(self.engine.tables, setup.start, setup.currency)
        self._next_id = 1
        self._wake = trio.Event()
        self.accepting = False
        self._stopping = False
        self.finished = False
        self.reached_end = False
        self.setups = 0

    # -- called by connection handlers (synchronous, never touch the engine) ---------------
    def submit_setup(self, sink: CallSink, ref: int | str, org: int, user: int, kind: int,
                     to_number: int, from_number: int, received: float, t: int) -> int:
        """Queue a setup received at trio time `received`, in simulated ms `t`; returns its call_id.

        Raises ProtocolError(UNAVAILABLE) when the server is stopping.
        """
        if not self.accepting or t >= self.setup.end_ms:
            raise ProtocolError(
                UNAVAILABLE, "the server is not taking calls (stopping, or the simulated period is over)", ref)
        call_id = self._next_id
        self._next_id += 1
        self._queue.append((sink, ref, received, call_id, t, org, user, kind, to_number, from_number))
        self._routes[call_id] = (sink, ref)
        self._wake.set()
        return call_id

    def submit_hangup(self, call_id: int, t: int) -> None:
        """Queue a hang-up, at simulated ms `t`, of a call routed here (answered or still queued)."""
        if self.finished:
            return
        self._hangups.append((call_id, t))
        self._wake.set()

    # -- time ---------------------------------------------------------------------------------
    def ms(self, trio_time: float) -> int:
        """The simulated millisecond a Trio instant falls in."""
        assert self._t0 is not None, "the exchange has not started"
        return int(math.floor((trio_time - self._t0) * 1000 + _EPS_MS))

    def wall(self, t_ms: int) -> float:
        assert self._t0 is not None
        return self._t0 + t_ms / 1000

    @property
    def active_calls(self) -> int:
        return len(self._routes)

    # -- the task -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask `run` to rate what is queued, end every call and return (Ctrl-C, SIGTERM)."""
        self._stopping = True
        self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> bool:
        """Rate until `stop()` or the end of the simulated period; then end every call.

        Returns True when the scenario's end was reached (summary `complete`).
        """
        self._t0 = trio.current_time()
        self.accepting = True
        task_status.started()
        end = self.setup.end_ms
        last = done = -math.inf
        cost = 0.0
        try:
            while self.engine.now < end and not self._stopping:
                if not self._queue and not self._hangups:
                    with trio.move_on_at(self.wall(min(self._next_due(), end))):
                        await self._wake.wait()
                    if self._stopping:
                        break
                # At most one advance per tick, only once the engine's `now` has come, and
                # after a pause as long as the last tick took (see the module docstring).
                await trio.sleep_until(max(last + self._tick_s, done + cost, self.wall(self.engine.now)))
                last = trio.current_time()
                self._tick(min(self.ms(last) + 1, end))
                done = trio.current_time()
                cost = done - last
        finally:
            self.accepting = False
            with trio.CancelScope(shield=True):
                self._finish()
        return self.reached_end

    def _tick(self, until: int) -> None:
        self._wake = trio.Event()
        queue, self._queue = self._queue, []
        hangups, self._hangups = self._hangups, []
        now = self.engine.now
        arrivals = self._arrivals(queue, now)
        self._apply_hangups(hangups, queue, arrivals, now)
        started = time.perf_counter()
        step = self.engine.advance(arrivals, until)
        self._on_advance(time.perf_counter() - started, len(queue))
        self._dispatch(step, queue)
        self._on_step(step)

    def _arrivals(self, queue: list[_Queued], now: int) -> Arrivals:
        if not queue:
            return Arrivals.empty()
        rows = np.array([q[_ROW] for q in queue], dtype=np.int64)
        t = np.maximum(rows[:, 1], now)  # received in a tick already processed: the next instant
        self.setups += len(queue)
        return Arrivals(
            call_id=rows[:, 0].copy(), t_ms=t, org=rows[:, 2].astype(np.int32),
            user=rows[:, 3].astype(np.int32), kind=rows[:, 4].astype(np.int8),
            to_number=rows[:, 5].copy(), from_number=rows[:, 6].copy(),
            holding_ms=np.full(len(queue), FOREVER_MS, dtype=np.int64),
        )

    def _apply_hangups(self, hangups: list[tuple[int, int]], queue: list[_Queued],
                       arrivals: Arrivals, now: int) -> None:
        """Hang-ups of calls in this batch become holding times; the others go to the engine."""
        if not hangups:
            return
        first = queue[0][3] if queue else 0
        by_time: dict[int, list[int]] = {}
        for call_id, t in hangups:
            t = max(t, now)
            i = call_id - first
            if queue and 0 <= i < len(queue):  # call ids in a batch are consecutive
                arrivals.holding_ms[i] = max(t - int(arrivals.t_ms[i]), 0)
            else:
                by_time.setdefault(t, []).append(call_id)
        for t, ids in sorted(by_time.items()):
            self.engine.hangup(np.unique(np.array(ids, dtype=np.int64)), t)

    def _dispatch(self, step: Step, queue: list[_Queued]) -> None:
        cdrs = step.cdrs
        ids: list[int] = cdrs.call_id.tolist()
        reasons: list[int] = cdrs.end_reason.tolist()
        ended_at = {cid: i for i, cid in enumerate(ids)} if ids else {}
        now = trio.current_time()
        observe, routes = self._on_latency, self._routes
        for sink, ref, received, call_id, *_ in queue:
            observe(now - received)
            i = ended_at.get(call_id)
            if i is not None and reasons[i] in _REJECTED:
                del ended_at[call_id]
                if routes.pop(call_id, None) is not None:
                    sink.on_rejected(ref, call_id, reasons[i])
            else:
                sink.on_answered(ref, call_id)
        rows: list[int] = []
        sinks: list[CallSink] = []
        refs: list[int | str] = []
        for call_id, i in ended_at.items():
            route = routes.pop(call_id, None)
            if route is not None:
                rows.append(i)
                sinks.append(route[0])
                refs.append(route[1])
        if rows:
            full = [sink.wants_cdr for sink in sinks]
            for sink, ref, message in zip(sinks, refs, self._messages.messages(cdrs, rows, refs, full)):
                sink.on_ended(ref, message)

    def _next_due(self) -> int:
        """The first instant at which the engine has something to do without new input.

        Reads the engine's call table directly (read-only): the rating core has
        no public "next due instant" yet.  If its internals change, this falls
        back to "now", i.e. an advance every tick, which is correct but costly.
        """
        engine = self.engine
        try:
            calls = engine.calls
            alive = calls.view("alive")
            fixed = int(engine.ledger.next_fixed_after(engine.now - 1))
            if not alive.any():
                return max(engine.now, fixed)
            nxt = int(np.minimum(calls.view("next_ms"), calls.view("hangup_ms"))[alive].min())
            return max(engine.now, min(nxt, fixed))
        except (AttributeError, KeyError, TypeError):
            return engine.now

    def _finish(self) -> None:
        """End every call still connected (`simulation_end`) at the instant reached, and route it."""
        if self.finished:
            return
        end = self.setup.end_ms
        if (self._queue or self._hangups) and self.engine.now < end:  # rate what came before the stop
            self._tick(min(max(self.engine.now + 1, self.ms(trio.current_time()) + 1), end))
        self.reached_end = self.engine.now >= end
        step = self.engine.finish(at_ms=None if self.reached_end else self.engine.now)
        self.finished = True
        self._dispatch(step, [])
        self._on_step(step)
        # Anything still routed was queued after the last tick it could join: nothing to rate.
        self._routes.clear()

