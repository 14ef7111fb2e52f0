"""`callsim run`: scenario -> traffic -> switch -> rating core -> CDRs, events, summary.

All long-lived tasks share one nursery: the switch produces a Step per
window; the writer task formats and appends it to the output files in a
worker thread (so formatting overlaps rating); progress and metrics observe.
Ctrl-C (or any cancellation) stops the switch at a window boundary, ends the
calls still connected as `simulation_end` at that instant, and still writes
every file completely, with `"complete": false` in summary.json.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from rating_core import RatingEngine, Step

from .clock import SimClock
from ._cdr_workers import CdrWorkers
from ._out_dir import OutDir
from .outputs import CdrWriter, EventWriter, SummaryBuilder
from .scenario import Scenario
from .switch import Switch, WindowReport
from .traffic import TrafficPlan

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are served (~50-80 ms)
    from .metrics import MetricsServer


@dataclass
class RunOptions:
    out_dir: Path
    # the caller's claim on out_dir (simulator/_out_dir.py), held for longer than the run;
    # None: run_scenario claims the directory itself for the run's life
    out_dir_claim: OutDir | None = None
    speed: float | None = None  # None: as fast as possible (virtual time)
    handle_sigint: bool = True
    observers: list[Callable[[WindowReport], None]] = field(default_factory=list)
    # called with the Switch once it exists (metrics and progress read live state from it)
    on_switch: list[Callable[[Switch], None]] = field(default_factory=list)
    # serve the run's metrics (simulator/metrics.py) on this endpoint; None: no metrics
    metrics: "MetricsServer | None" = None
    # orgs beyond this are labelled org="_other" (None: metrics.DEFAULT_MAX_ORG_LABELS)
    metrics_max_orgs: int | None = None
    # the CDR files' worker processes, if the caller started them early (see _cdr_workers);
    # None: the run starts them itself when the run is big enough to be worth it
    cdr_workers: CdrWorkers | None = None
    # cdrs.msgpack beside cdrs.csv (`callsim run --no-cdr-msgpack`: False)
    write_msgpack: bool = True


@dataclass
class RunResult:
    summary: dict
    complete: bool
    out_dir: Path


REALTIME_CDR_BUFFER_ROWS = 256

# Steps the switch may run ahead of the writer.  Writing a full CDR buffer (65,536 rows of
# CSV, ~0.1-0.2 s) is a burst, while an hour window of virtual time rates in a few ms: with
# room for only 4 steps the switch sat idle through every burst (a third of its time).
STEPS_AHEAD = 64


class _Outputs:
    """The files of one run; `write` is called from a worker thread, with the Steps that are ready.

    At a finite speed CDRs are flushed in small batches: formatting a 64k-row
    batch takes ~0.1 s, partly holding the GIL, which would stall the switch.
    """

    def __init__(self, scenario: Scenario, engine: RatingEngine, out_dir: Path, realtime: bool,
                 workers: CdrWorkers | None, write_msgpack: bool = True) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        setup, tables = scenario.setup, engine.tables
        buffer = {"buffer_rows": REALTIME_CDR_BUFFER_ROWS} if realtime else {}
        # spawned: the event loop runs
        workers = workers or CdrWorkers.for_scenario(scenario, msgpack=write_msgpack)
        try:
            self.cdrs = CdrWriter(out_dir, tables, setup.start, setup.currency,
                                  write_msgpack=write_msgpack, workers=workers or False, **buffer)
            self.events = EventWriter(out_dir, tables, setup.start)
        except BaseException:
            if workers is not None:  # or its children would wait for files that never come
                with contextlib.suppress(OSError, RuntimeError):
                    workers.close()
            raise
        self.summary = SummaryBuilder(
            tables, setup.currency, scenario.name, scenario.seed, start=setup.start
        )
        self.out_dir = out_dir

    def write(self, steps: list[Step]) -> None:
        for step in steps:
            self.events.write(step.events)  # first: a killed run's events cover its CDRs
            self.cdrs.write(step.cdrs)
            self.summary.add_cdrs(step.cdrs)
            self.summary.add_events(step.events)

    def close(self, engine: RatingEngine, complete: bool) -> dict:
        self.cdrs.close()
        self.events.close()
        summary = self.summary.finish(
            engine.balances().tolist(), engine.pool_remaining().tolist(), complete, engine.now
        )
        self.summary.write(self.out_dir, summary)
        return summary


async def run_scenario(scenario: Scenario, options: RunOptions) -> RunResult:
    """Run `scenario` into `options.out_dir`; raises OutDirBusy when another run holds it."""
    if options.out_dir_claim is None:  # one run at a time in a directory, and no stale files
        with OutDir.claim(options.out_dir) as claim:
            return await run_scenario(scenario, replace(options, out_dir_claim=claim))
    engine = RatingEngine(scenario.setup)
    switch = Switch(engine, TrafficPlan(scenario), SimClock(options.speed))
    if options.metrics is not None:  # first, so later observers see this window in a scrape
        from .metrics import RunMetrics, declare_build_info

        limit = {} if options.metrics_max_orgs is None else {"max_org_labels": options.metrics_max_orgs}
        RunMetrics.attach(switch, options.metrics.registry, **limit)
        declare_build_info(options.metrics.registry, scenario.name, scenario.seed)
    switch.observers += options.observers
    for hook in options.on_switch:
        hook(switch)
    outputs = _Outputs(scenario, engine, options.out_dir, realtime=options.speed is not None,
                       workers=options.cdr_workers, write_msgpack=options.write_msgpack)
    send, receive = trio.open_memory_channel[Step](STEPS_AHEAD)
    stop = trio.Event()
    complete = False

    async def produce(helpers: trio.Nursery) -> None:
        nonlocal complete
        async with send:
            complete = await switch.run(send, stop)
        helpers.cancel_scope.cancel()  # the signal watcher has nothing left to watch

    async def consume() -> None:
        async with receive:
            async for step in receive:
                await trio.to_thread.run_sync(outputs.write, [step, *_waiting(receive)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        async with trio.open_nursery() as helpers:
            if options.handle_sigint:
                helpers.start_soon(_stop_on_signal, stop)
            helpers.start_soon(produce, helpers)
    summary = await trio.to_thread.run_sync(outputs.close, engine, complete)
    return RunResult(summary, complete, options.out_dir)


def _waiting(receive: trio.MemoryReceiveChannel[Step]) -> list[Step]:
    """The steps already in the channel.

    The writer takes them all at once: one thread hand-off a step would let it
    catch up by at most one step per window the switch rates, so after each
    burst of writing (a full CDR buffer) the switch would stay blocked on a
    full channel.
    """
    steps = []
    while True:
        try:
            steps.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return steps


async def _stop_on_signal(stop: trio.Event) -> None:
    """Ctrl-C / SIGTERM: finish the current window, then end the run cleanly."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            stop.set()
