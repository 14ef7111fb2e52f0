"""`callsim run`: scenario -> traffic -> switch -> rating core -> CDRs, events, summary.

All long-lived tasks share one nursery: the switch produces a Step per
window; the writer task formats and appends it to the output files in a
worker thread (so formatting overlaps rating); progress and metrics observe.
Ctrl-C or SIGTERM stops the switch at a window boundary, ends the calls still
connected as `simulation_end` at that instant, and still writes every file
completely, with `"complete": false` in summary.json (see _stop_signals).
Windows hold at most `switch.MAX_WINDOW_CALLS` arrivals and the writer's
queue at most `ROWS_AHEAD` CDRs and events, so a run's memory follows its window and
its connected calls, not its total, and a stop is acted on within a window.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from rating_core import RatingEngine, Step, Tables, Tuning

from ._gc import gc_paused
from .clock import SimClock
from .outputs import CdrWorkers, CdrWriter, EventWriter, OutDir, SummaryBuilder
from ._stop_signals import StopSignals
from .scenario import Scenario
from .switch import MAX_WINDOW_CALLS, Switch, WindowReport, virtual_window_ms
from .traffic import TrafficPlan, expected_calls

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are served (~50-80 ms)
    from .metrics import MetricsServer
    from .outputs import ExtraCdrFile

CDR_WORKER_CALLS = 200_000  # expected calls below which worker processes cost more to start than they save


def start_cdr_workers(scenario: Scenario, fork: bool = False, msgpack: bool = True,
                      teams_export: bool = False) -> CdrWorkers | None:
    """The CDR files' worker processes for a run of `scenario`, started now, or None when the run
    is expected to be too small to be worth them (fewer than `CDR_WORKER_CALLS` calls).

    `fork=True`: before the caller runs an event loop or starts a thread, so that the children
    are forked (`outputs.CdrWorkers`); `msgpack=False`: no cdrs.msgpack, so no worker for it;
    `teams_export`: a worker for the Teams usage export (`RunOptions.teams_export`).
    """
    if expected_calls(scenario) < CDR_WORKER_CALLS:
        return None
    return CdrWorkers(fork, msgpack, extra=teams_export)


@dataclass
class RunOptions:
    out_dir: Path
    # the caller's claim on out_dir (simulator/outputs/_out_dir.py), held for longer than the run;
    # None: run_scenario claims the directory itself for the run's life
    out_dir_claim: OutDir | None = None
    speed: float | None = None  # None: as fast as possible (virtual time)
    # Ctrl-C and SIGTERM stop the run cleanly: through `signals` when the caller installed them
    # (`callsim run` does, before loading the scenario), else through handlers installed for the
    # run's duration unless `handle_sigint` is False.
    handle_sigint: bool = True
    signals: StopSignals | None = None
    observers: list[Callable[[WindowReport], None]] = field(default_factory=list)
    # called with the Switch once it exists (metrics and progress read live state from it)
    on_switch: list[Callable[[Switch], None]] = field(default_factory=list)
    # serve the run's metrics (simulator/metrics.py) on this endpoint; None: no metrics
    metrics: "MetricsServer | None" = None
    # orgs beyond this are labelled org="_other" (None: metrics.DEFAULT_MAX_ORG_LABELS)
    metrics_max_orgs: int | None = None
    # the CDR files' worker processes, if the caller started them early (`start_cdr_workers`);
    # None: the run starts them itself when the run is big enough to be worth it
    cdr_workers: CdrWorkers | None = None
    # cdrs.msgpack beside cdrs.csv (`callsim run --no-cdr-msgpack`: False)
    write_msgpack: bool = True
    # the CDRs in the Teams admin center's usage export layout too, PSTN.calls.<name>.csv
    # (`callsim run --cdr-format teams`; simulator/usage)
    teams_export: bool = False
    # False: never start CDR worker processes, format the files in this one (a Dask worker,
    # a daemonic process, may not have children: `simulator.sweep --keep-runs`)
    cdr_worker_processes: bool = True
    # arrivals per rating window at most (the outputs do not depend on it)
    max_window_calls: int = MAX_WINDOW_CALLS
    # length of a window at speed max (the outputs do not depend on it); None: sized by the
    # scenario's expected arrivals (`switch.virtual_window_ms`)
    virtual_window_ms: int | None = None


@dataclass
class RunResult:
    summary: dict
    complete: bool
    out_dir: Path


REALTIME_CDR_BUFFER_ROWS = 256

# Steps the switch may run ahead of the writer.  Writing a full CDR buffer (65,536 rows of
# CSV, ~0.1-0.2 s) is a burst, while an hour window of virtual time rates in a few ms: with
# room for only 4 steps the switch would sit idle through every burst (a third of its time).
STEPS_AHEAD = 64
# ... and CDRs: a step holds up to `switch.MAX_WINDOW_CALLS` (the last one every call still
# connected), and 64 of them queued behind the file workers would be ~0.5 GB at 10^7 calls/h.
# This many rows drain in a fraction of a second, which is also what a stopped run waits for
# before its files are complete.
ROWS_AHEAD = 131_072


def _teams_export(scenario: Scenario, tables: Tables, out_dir: Path) -> "ExtraCdrFile":
    """The run's Teams usage export (`RunOptions.teams_export`).  Imported here, when asked for:
    simulator.usage brings polars, whose threads would keep `callsim run` from forking its file
    workers (`outputs.forkable`) had it been imported before they start."""
    from . import usage

    return usage.teams_export(scenario.setup, tables, scenario.seed, out_dir, scenario.name)


class _Outputs:
    """The files of one run; `write` is called from a worker thread, with the Steps that are ready.

    At a finite speed CDRs are flushed in small batches: formatting a 64k-row
    batch takes ~0.1 s, partly holding the GIL, which would stall the switch.
    """

    def __init__(self, scenario: Scenario, engine: RatingEngine, out_dir: Path, realtime: bool,
                 workers: CdrWorkers | None, write_msgpack: bool = True, teams_export: bool = False,
                 processes: bool = True) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        setup, tables = scenario.setup, engine.tables
        buffer = {"buffer_rows": REALTIME_CDR_BUFFER_ROWS} if realtime else {}
        if processes:  # spawned: the event loop runs
            workers = workers or start_cdr_workers(scenario, msgpack=write_msgpack, teams_export=teams_export)
        try:
            extra = [_teams_export(scenario, tables, out_dir)] if teams_export else []
            self.cdrs = CdrWriter(out_dir, tables, setup.start, setup.currency, write_msgpack=write_msgpack,
                                  workers=workers or False, extra_files=extra, **buffer)
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
        """Complete the files, then write summary.json (the sign that they are complete).

        The last CDRs go to the file workers first: the summary (~0.1 s for 10,000 orgs) is
        made while they format them, instead of after.
        """
        try:
            self.cdrs.flush()
            summary = self.summary.finish(
                engine.balances().tolist(), engine.pool_remaining().tolist(), complete, engine.now
            )
        finally:
            self.cdrs.close()
        self.events.close()
        self.summary.write(self.out_dir, summary)
        return summary


async def run_scenario(scenario: Scenario, options: RunOptions) -> RunResult:
    """Run `scenario` to its end, or until a stop signal, writing every file in `options.out_dir`.

    Call it under Trio (`trio.run(run_scenario, scenario, options)`).  Same scenario and seed,
    same bytes in cdrs.csv, cdrs.msgpack and events.jsonl, whatever `options.speed`.

    Args:
      scenario: a loaded scenario (`simulator.scenario.load_scenario`).
      options: where the files go (`out_dir`, claimed for the run unless `out_dir_claim` is
        given), the speed (None: virtual time, as fast as possible), stop signals, observers
        of each window, metrics, and the CDR file workers if the caller started them
        (`start_cdr_workers`; None: started here when the run is big enough).

    Returns:
      A `RunResult`: summary.json's content, `complete` (False: stopped by SIGINT/SIGTERM,
      every file then complete up to the stop instant) and the output directory.

    Raises:
      OutDirBusy: another run holds `options.out_dir`.
      OSError: an output file cannot be written (the files are then incomplete).
      WorkerFailed: a CDR file worker process died (`simulator.outputs`).
    """
    if options.out_dir_claim is None:  # one run at a time in a directory, and no stale files
        with OutDir.claim(options.out_dir) as claim:
            return await run_scenario(scenario, replace(options, out_dir_claim=claim))
    stop = _Stop()
    with contextlib.ExitStack() as handling:
        signals = options.signals
        if signals is None and options.handle_sigint:
            signals = handling.enter_context(StopSignals.installed())
        if signals is not None:
            handling.enter_context(signals.waking(stop.request))
        return await _rate_and_write(scenario, options, stop)


class _Stop:
    """The stop request the switch reads (`is_set`, `wait`), made from a signal handler.

    `request` only sets a flag, which the switch sees at its next window boundary, and asks
    the Trio loop to wake a switch waiting for its next tick (`run_sync_soon`, the one Trio call
    a signal handler may make): setting a trio.Event there would reschedule tasks from inside
    whatever the loop was doing when the signal came.
    """

    def __init__(self) -> None:
        self._requested = False
        self._event = trio.Event()
        self._token = trio.lowlevel.current_trio_token()

    def is_set(self) -> bool:
        return self._requested

    async def wait(self) -> None:
        await self._event.wait()

    def request(self) -> None:
        self._requested = True
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._event.set)


async def _rate_and_write(scenario: Scenario, options: RunOptions, stop: _Stop) -> RunResult:
    # in real time the stepping loop keeps up by Python, and numba's load would stall the ticks
    tuning = Tuning(compile_after=None) if options.speed is not None else Tuning()
    # Setting up builds objects per org and per traffic source, none in a cycle: the collector's
    # passes over them would cost ~30 ms at 10,000 orgs.
    with gc_paused():
        engine = RatingEngine(scenario.setup, tuning)
        plan = TrafficPlan(scenario)
    window_ms = options.virtual_window_ms or virtual_window_ms(expected_calls(scenario),
                                                               scenario.setup.end_ms)
    switch = Switch(engine, plan, SimClock(options.speed), options.max_window_calls, window_ms)
    if options.metrics is not None:  # first, so later observers see this window in a scrape
        from .metrics import RunMetrics, declare_build_info

        limit = {} if options.metrics_max_orgs is None else {"max_org_labels": options.metrics_max_orgs}
        RunMetrics.attach(switch, options.metrics.registry, **limit)
        declare_build_info(options.metrics.registry, scenario.name, scenario.seed)
    switch.observers += options.observers
    for hook in options.on_switch:
        hook(switch)
    outputs = _Outputs(scenario, engine, options.out_dir, realtime=options.speed is not None,
                       workers=options.cdr_workers, write_msgpack=options.write_msgpack,
                       teams_export=options.teams_export, processes=options.cdr_worker_processes)
    channel, receive = trio.open_memory_channel[Step](STEPS_AHEAD)
    send = _StepSender(channel, ROWS_AHEAD)

    async def consume() -> None:
        # `receive` is left open when writing fails: closing it would raise BrokenResourceError
        # in the switch, whose cancelling of this task would replace the error worth reporting.
        async for step in receive:
            steps = [step, *_waiting(receive)]
            await trio.to_thread.run_sync(outputs.write, steps)
            send.written(steps)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        async with send:
            complete = await switch.run(send, stop)
    summary = await trio.to_thread.run_sync(outputs.close, engine, complete)
    return RunResult(summary, complete, options.out_dir)


class _StepSender(trio.abc.SendChannel[Step]):
    """The switch's end of the step channel, held back while the writer has `max_rows` rows
    (CDRs and ledger events) or more still to write: a channel bounded in steps alone is
    unbounded in rows, and an org that recharges at every increment has ~40 events a call."""

    def __init__(self, send: trio.MemorySendChannel[Step], max_rows: int) -> None:
        self._send = send
        self._max_rows = max_rows
        self._rows = 0
        self._room = trio.Event()

    async def send(self, step: Step) -> None:
        while self._rows >= self._max_rows:
            self._room = trio.Event()
            await self._room.wait()
        self._rows += _rows(step)
        await self._send.send(step)

    def written(self, steps: list[Step]) -> None:
        """The writer is done with `steps`: their rows no longer count."""
        self._rows -= sum(_rows(step) for step in steps)
        self._room.set()

    async def aclose(self) -> None:
        await self._send.aclose()


def _rows(step: Step) -> int:
    """Lines a step adds to the output files: its CDRs and its ledger events."""
    return len(step.cdrs) + len(step.events)


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
