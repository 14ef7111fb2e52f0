"""The exchange: the one task that drives the rating core for `callsim serve`.

The engine is not task-safe, so connection handlers never call it.  They
queue setups (a frame's setups as one `SetupBatch`) and hang-ups here (plain
list appends: Trio runs one task at a time, and `_tick` never awaits), and
this task, at most once a millisecond, turns everything queued since the
last tick into one `advance`: many setups per call into the core, which is
what makes the vectorised engine pay off.  Between two ticks the task
yields, so every connection with bytes waiting is read in between: under
load a tick takes longer than a millisecond, the next one starts as soon as
the readers have had their turn, and each rates a bigger batch.  (A pause as long
as the last tick took would double the cycle and with it the median setup
latency: 5-6 ms instead of 2.5-3 at 20,000 setups/s.)
The outcome is routed back to the connections that asked, in bulk: a
frame's answers together, handed to the kernel at once; the ends (`ended`,
`disconnected`) grouped by connection.  Then the step goes to the output
writer.

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

import itertools
import math
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import trio

from rating_core import (
    END_REASON_NAMES, FOREVER_MS, Arrivals, CdrBatch, EndReason, RatingEngine, RatingSetup, Step, Tuning,
)

from . import _messages as msgs
from ._wire import UNAVAILABLE, ProtocolError

_IS_REFUSED = np.zeros(len(END_REASON_NAMES), dtype=bool)  # end_reason code -> refused at setup
_IS_REFUSED[[EndReason.BLOCKED_NO_BALANCE, EndReason.NOT_LICENSED, EndReason.UNROUTABLE]] = True
_IS_CUT = np.zeros(len(END_REASON_NAMES), dtype=bool)  # end_reason code -> the server cut the call
_IS_CUT[[EndReason.DROPPED_BALANCE_EXHAUSTED, EndReason.SIMULATION_END]] = True
_EPS_MS = 1e-6  # float slack when mapping Trio time to whole milliseconds


class CallSink(Protocol):
    """What the exchange needs from a connection: somewhere to send each call's outcome.

    Outcomes come in bulk (a frame's setups together, a tick's ends per
    connection): per-call method calls and dict look-ups would be a large
    share of the server's CPU at 20,000 setups/s.
    """

    wants_cdr: bool  # whether its `ended` messages carry the CDR columns

    def on_answered_many(self, refs: list[int | str], first_call_id: int) -> None: ...
    def on_answered(self, ref: int | str, call_id: int) -> None: ...
    def on_rejected(self, ref: int | str, call_id: int, end_reason: int) -> None: ...
    def on_ended_many(self, refs: list[int | str], messages: list[msgs.Message]) -> None: ...
    def flush(self) -> None: ...  # send what the *_many calls queued (they leave that to the caller)


class SetupBatch:
    """Setups queued from one frame of one connection: same sink, org and arrival instant.

    Columns of plain lists (a frame of setups costs a few list appends per
    call); their call ids are consecutive from `first_id`, in frame order.
    """

    __slots__ = ("sink", "slot", "org", "received", "t_ms", "first_id",
                 "refs", "users", "kinds", "tos", "froms")

    def __init__(self, sink: CallSink, slot: int, org: int, received: float, t_ms: int,
                 first_id: int) -> None:
        self.sink, self.slot, self.org = sink, slot, org
        self.received, self.t_ms, self.first_id = received, t_ms, first_id
        self.refs: list[int | str] = []
        self.users: list[int] = []
        self.kinds: list[int] = []
        self.tos: list[int] = []
        self.froms: list[int] = []


class Exchange:
    """Owns the RatingEngine; `run` is its only driver."""

    def __init__(
        self,
        setup: RatingSetup,
        on_step: Callable[[Step], None],
        on_latency: Callable[[float, int], None] = lambda s, n: None,
        tick_s: float = 0.001,
        on_advance: Callable[[float, int], None] = lambda s, n: None,
    ) -> None:
        # a server's stepping keeps to real time by Python; compiling the loop would stall
        # every connection for numba's load (~0.3 s, ~5 s the first time after an install)
        self.engine = RatingEngine(setup, Tuning(compile_after=None))
        self.setup = setup
        self._on_step = on_step
        self._on_latency = on_latency  # (seconds, how many setups waited that long)
        self._on_advance = on_advance
        self._tick_s = tick_s
        self._t0: float | None = None
        self._queue: list[SetupBatch] = []
        self._hangup_ids: list[int] = []  # hang-ups queued for the next tick: call ids ...
        self._hangup_ms: list[int] = []  # ... and their instants
        # Where each answered call's end goes: call_id -> sink slot, and call_id -> ref.  Two
        # dicts of ints and strings, which the garbage collector never tracks: (sink, ref) tuples
        # would be 100,000 objects for every full collection to walk (~7 ms), and 20,000 new ones
        # a second for every young one (1-7 ms pauses).
        self._route_slot: dict[int, int] = {}
        self._route_ref: dict[int, int | str] = {}
        self._sinks: weakref.WeakValueDictionary[int, CallSink] = weakref.WeakValueDictionary()
        self._slots: weakref.WeakKeyDictionary[CallSink, int] = weakref.WeakKeyDictionary()
        self._messages = msgs.CdrMessages(self.engine.tables, setup.start, setup.currency)
        self._next_id = 1
        self._next_slot = 0
        self._to_flush: dict[CallSink, None] = {}  # connections whose `ended` wait for the next tick
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

        Setups of one frame (same sink, same `received`) join one SetupBatch.
        Raises ProtocolError(UNAVAILABLE) when the server is stopping.
        """
        if not self.accepting or t >= self.setup.end_ms:
            raise ProtocolError(
                UNAVAILABLE, "the server is not taking calls (stopping, or the simulated period is over)", ref)
        call_id = self._next_id
        self._next_id += 1
        queue = self._queue
        batch = queue[-1] if queue else None
        if batch is None or batch.sink is not sink or batch.received != received or batch.org != org:
            batch = SetupBatch(sink, self._slot(sink), org, received, t, call_id)
            queue.append(batch)
            self._wake.set()
        batch.refs.append(ref)
        batch.users.append(user)
        batch.kinds.append(kind)
        batch.tos.append(to_number)
        batch.froms.append(from_number)
        return call_id

    def submit_hangup(self, call_id: int, t: int) -> None:
        """Queue a hang-up, at simulated ms `t`, of a call routed here (answered or still queued)."""
        if self.finished:
            return
        self._hangup_ids.append(call_id)
        self._hangup_ms.append(t)
        self._wake.set()

    def _slot(self, sink: CallSink) -> int:
        """A small int naming `sink` in the routes (weakly held: a closed connection goes away)."""
        slot = self._slots.get(sink)
        if slot is None:  # never reused: a gone connection's calls must not reach a new one
            slot = self._slots[sink] = self._next_slot
            self._sinks[slot] = sink
            self._next_slot += 1
        return slot

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
        return len(self._route_slot)

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
        last = -math.inf
        try:
            while self.engine.now < end and not self._stopping:
                # At most one advance per tick, and only once the engine's `now` has come.  Even
                # when a tick took longer than `tick_s` this yields: connections with bytes waiting
                # are read between two ticks.
                await trio.sleep_until(max(last + self._tick_s, self.wall(self.engine.now)))
                if not self._queue and not self._hangup_ids:
                    self._flush_waiting()
                    # idle: sleep until something comes, or until the engine has work of its own.
                    # Asked only now, after the yield: finding the next due instant can take a pass
                    # over every connected call (when the call table's watch has lapsed), and
                    # under load the readers have queued work by now anyway.
                    with trio.move_on_at(self.wall(min(self._next_due(), end))):
                        await self._wake.wait()
                    if self._stopping:
                        break
                    # Tasks whose deadline is this same instant (a connection's idle timeout) see
                    # the state before the instant is rated: a call cut now was in progress.
                    await trio.lowlevel.checkpoint()
                last = trio.current_time()
                self._tick(min(self.ms(last) + 1, end))
        finally:
            self.accepting = False
            with trio.CancelScope(shield=True):
                self._finish()
        return self.reached_end

    def _tick(self, until: int) -> None:
        self._wake = trio.Event()
        queue, self._queue = self._queue, []
        hangup_ids, self._hangup_ids = self._hangup_ids, []
        hangup_ms, self._hangup_ms = self._hangup_ms, []
        now = self.engine.now
        arrivals = self._arrivals(queue, now)
        self._apply_hangups(hangup_ids, hangup_ms, queue, arrivals, now)
        started = time.perf_counter()
        step = self.engine.advance(arrivals, until)
        self._on_advance(time.perf_counter() - started, len(arrivals))
        self._dispatch(step, queue)
        self._on_step(step)

    def _arrivals(self, queue: list[SetupBatch], now: int) -> Arrivals:
        if not queue:
            return Arrivals.empty()
        users: list[int] = []
        kinds: list[int] = []
        tos: list[int] = []
        froms: list[int] = []
        counts: list[int] = []
        for b in queue:  # list concatenation, then one conversion per column
            users += b.users
            kinds += b.kinds
            tos += b.tos
            froms += b.froms
            counts.append(len(b.refs))
        n = len(users)
        self.setups += n
        per_batch = lambda values, dtype: np.repeat(np.array(values, dtype=dtype), counts)  # noqa: E731
        # received in a tick already processed: the next instant
        t = np.maximum(per_batch([b.t_ms for b in queue], np.int64), now)
        return Arrivals(
            call_id=np.arange(queue[0].first_id, queue[0].first_id + n, dtype=np.int64), t_ms=t,
            org=per_batch([b.org for b in queue], np.int32), user=np.array(users, dtype=np.int32),
            kind=np.array(kinds, dtype=np.int8), to_number=np.array(tos, dtype=np.int64),
            from_number=np.array(froms, dtype=np.int64), holding_ms=np.full(n, FOREVER_MS, dtype=np.int64),
        )

    def _apply_hangups(self, ids: list[int], at: list[int], queue: list[SetupBatch],
                       arrivals: Arrivals, now: int) -> None:
        """Hang-ups of calls in this batch become holding times; the others go to the engine,
        all in one call."""
        if not ids:
            return
        call_id = np.array(ids, dtype=np.int64)
        t = np.maximum(np.array(at, dtype=np.int64), now)
        if queue:  # call ids in a batch are consecutive from the first one
            i = call_id - queue[0].first_id
            mine = i >= 0
            for k in np.flatnonzero(mine).tolist():  # hung up before its answer: rare
                row = int(i[k])
                holding = max(int(t[k]) - int(arrivals.t_ms[row]), 0)
                arrivals.holding_ms[row] = min(int(arrivals.holding_ms[row]), holding)
            call_id, t = call_id[~mine], t[~mine]
        self.engine.hangup(call_id, t)

    def _dispatch(self, step: Step, queue: list[SetupBatch]) -> None:
        """Tell each connection what became of its calls: answers first, then ends.

        Answers are handed to the kernel at once (`flush`).  `ended` messages wait
        for the next tick's answers and leave with them, one write per connection a
        tick instead of two, unless a call was cut: `disconnected` leaves at once.
        """
        cdrs = step.cdrs
        waiting, self._to_flush = self._to_flush, {}
        if queue:
            self._answer(queue, self._refused(cdrs), trio.current_time())
            waiting.update(dict.fromkeys(b.sink for b in queue))
        for sink in waiting:
            sink.flush()
        ended = self._end(cdrs)
        if len(cdrs) and _IS_CUT[cdrs.end_reason].any():
            for sink in ended:
                sink.flush()
        else:
            self._to_flush.update(dict.fromkeys(ended))

    def _flush_waiting(self) -> None:
        """Send the `ended` messages held for the next tick (the server is going idle, or stopping)."""
        waiting, self._to_flush = self._to_flush, {}
        for sink in waiting:
            sink.flush()

    def _refused(self, cdrs: CdrBatch) -> dict[int, int]:
        """call_id -> end_reason of the calls refused at setup (all of them arrived this tick)."""
        mask = _IS_REFUSED[cdrs.end_reason]
        if not mask.any():
            return {}
        return dict(zip(cdrs.call_id[mask].tolist(), cdrs.end_reason[mask].tolist()))

    def _answer(self, queue: list[SetupBatch], refused: dict[int, int], now: float) -> None:
        observe, route_slot, route_ref = self._on_latency, self._route_slot, self._route_ref
        for b in queue:
            n, first = len(b.refs), b.first_id
            observe(now - b.received, n)
            ids = range(first, first + n)
            if refused and not refused.keys().isdisjoint(ids):
                self._answer_one_by_one(b, refused)
                continue
            b.sink.on_answered_many(b.refs, first)
            route_slot.update(dict.fromkeys(ids, b.slot))
            route_ref.update(zip(ids, b.refs))

    def _answer_one_by_one(self, b: SetupBatch, refused: dict[int, int]) -> None:
        """A batch with refused setups (rare under load): each call answered or rejected."""
        for call_id, ref in zip(itertools.count(b.first_id), b.refs):
            reason = refused.get(call_id)
            if reason is None:
                b.sink.on_answered(ref, call_id)
                self._route_slot[call_id] = b.slot
                self._route_ref[call_id] = ref
            else:
                b.sink.on_rejected(ref, call_id, reason)

    def _end(self, cdrs: CdrBatch) -> list[CallSink]:
        """`ended` / `disconnected` for the calls this step ended, grouped by connection (returned)."""
        if not len(cdrs):
            return []
        pop_slot, pop_ref = self._route_slot.pop, self._route_ref.pop
        groups: dict[int, tuple[list[int], list[int | str]]] = {}
        for row, call_id in enumerate(cdrs.call_id.tolist()):
            slot = pop_slot(call_id, None)
            if slot is None:
                continue  # refused (answered above), or its connection's setup came after a stop
            group = groups.get(slot)
            if group is None:
                group = groups[slot] = ([], [])
            group[0].append(row)
            group[1].append(pop_ref(call_id))
        sinks: list[CallSink] = []
        for slot, (rows, refs) in groups.items():
            sink = self._sinks.get(slot)
            if sink is not None:  # else the connection is gone: nobody to tell
                sink.on_ended_many(refs, self._messages.messages(cdrs, rows, refs, sink.wants_cdr))
                sinks.append(sink)
        return sinks

    def _next_due(self) -> int:
        """The first instant at which the engine has something to do without new input."""
        return max(self.engine.now, self.engine.next_due_ms())

    def _finish(self) -> None:
        """End every call still connected (`simulation_end`) at the instant reached, and route it."""
        if self.finished:
            return
        end = self.setup.end_ms
        if (self._queue or self._hangup_ids) and self.engine.now < end:  # rate what came before the stop
            self._tick(min(max(self.engine.now + 1, self.ms(trio.current_time()) + 1), end))
        self.reached_end = self.engine.now >= end
        step = self.engine.finish(at_ms=None if self.reached_end else self.engine.now)
        self.finished = True
        self._dispatch(step, [])
        self._flush_waiting()
        self._on_step(step)
        # Anything still routed was queued after the last tick it could join: nothing to rate.
        self._route_slot.clear()
        self._route_ref.clear()

