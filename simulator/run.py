"""`callsim run`: scenario -> traffic -> switch -> rating core -> CDRs, events, summary.

All long-lived tasks share one nursery: the switch produces a Step per
window; a writer thread takes it from a queue at once and appends it to the
output files (so writing overlaps rating; a big run's files are formatted by
the worker processes it feeds); progress and metrics observe.
Ctrl-C or SIGTERM stops the switch at a window boundary, ends the calls still
connected as `simulation_end` at that instant, and still writes every file
completely, with `"complete": false` in summary.json (see _stop_signals).
Windows hold at most `switch.MAX_WINDOW_CALLS` arrivals (and at speed max are cut
down toward `WINDOW_ROWS` CDRs and events) and the writer's queue at most `ROWS_AHEAD`
CDRs and events, so a run's memory follows its window and its connected calls, not its
total, and a stop is acted on within a window.
"""

from __future__ import annotations

import contextlib
import queue
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from rating_core import RatingEngine, Step, Tables, Tuning

from ._gc import gc_paused
from .clock import SimClock
from .outputs import CdrWorkers, CdrWriter, EventWriter, OutDir, SummaryBuilder, summary_text
from ._stop_signals import StopSignals
from .scenario import Scenario
from .switch import MAX_WINDOW_CALLS, Switch, WindowReport, virtual_window_ms
from .traffic import TrafficPlan, expected_calls

if TYPE_CHECKING:  # prometheus_client is imported only when metrics are served (~50-80 ms)
    from .metrics import MetricsServer
    from .outputs import ExtraCdrFile

CDR_WORKER_CALLS = 200_000  # expected calls below which worker processes cost more to start than they save

# Rows (CDRs and ledger events) a window at speed max is cut down toward (`_WindowRows`).  An
# org that recharges at every increment has ~3 M events an hour: in hour-long windows the
# rating core's arrays for them took ~0.5 GB and the last window's lines were ~0.3 s of
# writing after the rating had ended.
WINDOW_ROWS = 262_144
# ... and the shortest window that cuts to (an instant is never split anyway)
SHORTEST_WINDOW_MS = 1_000
FIRST_WINDOW_PARTS = 16  # the first window at speed max, as a part of the length it was sized for


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
    # scenario's expected arrivals (`switch.virtual_window_ms`), then shortened while windows
    # have more than `max_window_rows` CDRs and ledger events (`_WindowRows`; None: not, and
    # the first window not started short either)
    virtual_window_ms: int | None = None
    max_window_rows: int | None = WINDOW_ROWS


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


class _WindowRows:
    """An observer that shortens the switch's next windows at speed max while a window's output
    (CDRs and ledger events) exceeds `max_rows`, in proportion, and lengthens them again, up to
    the length they were sized for, while it is under a quarter of that; the first window is
    a `FIRST_WINDOW_PARTS`th of that length.

    Windows are sized by expected calls (`switch.virtual_window_ms`), which says nothing of
    ledger events: a busy org with a small recharge amount has tens a call.  A window's
    memory, in the rating core and in the writer, follows its rows, as does what is left to
    write once the rating has ended.  The outputs do not depend on the windows.
    """

    def __init__(self, switch: Switch, max_rows: int) -> None:
        self._switch = switch
        self._max_rows = max_rows
        self._longest = switch.virtual_window_ms
        # the first window's rows are anyone's guess: start short, lengthen by doubling
        switch.virtual_window_ms = max(SHORTEST_WINDOW_MS, self._longest // FIRST_WINDOW_PARTS)

    def __call__(self, report: WindowReport) -> None:
        span = report.t1_ms - report.t0_ms
        if report.final or span <= 0:
            return
        rows = _rows(report.step)
        window = self._switch.virtual_window_ms
        if rows > self._max_rows:
            window = max(SHORTEST_WINDOW_MS, span * self._max_rows // rows)
        elif rows < self._max_rows // 4:
            window = min(self._longest, 2 * window)
        self._switch.virtual_window_ms = window


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
            # with workers, events.jsonl is the cdrs.csv worker's too: its formatting stays off the GIL
            self.events = EventWriter(out_dir, tables, setup.start, worker=workers.csv if workers else None)
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

        The last CDRs go to the file workers first: the summary and its text (~0.1 s for
        10,000 orgs) are made while they format them, instead of after.
        """
        try:
            self.cdrs.flush()
            summary = self.summary.finish(
                engine.balances().tolist(), engine.pool_remaining().tolist(), complete, engine.now
            )
            text = summary_text(summary)
        finally:
            self.cdrs.close()
        self.events.close()
        self.summary.write(self.out_dir, text)
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
    if options.speed is None and options.virtual_window_ms is None and options.max_window_rows is not None:
        switch.observers.append(_WindowRows(switch, options.max_window_rows))
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
    send = _StepQueue(ROWS_AHEAD)

    async def write() -> None:
        await trio.to_thread.run_sync(send.write_all, outputs.write)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        async with send:
            complete = await switch.run(send, stop)
    summary = await trio.to_thread.run_sync(outputs.close, engine, complete)
    return RunResult(summary, complete, options.out_dir)


class _StepQueue(trio.abc.SendChannel[Step]):
    """The switch's steps, handed to the writer thread (`write_all`) as they are sent.

    The thread takes a step from a plain queue the moment `send` puts it there: handed over
    through a Trio channel and a task, it would wait for scheduler passes, while the switch
    goes on rating its next window without yielding, so a window's writing would start only
    when the next window's rating had ended, never beside it.  `send` is held back while the
    writer has `max_steps` steps, or `max_rows` rows (CDRs and ledger events) or more, still
    to write: bounded in steps alone the queue would be unbounded in rows, and an org that
    recharges at every increment has ~40 events a call.
    """

    def __init__(self, max_rows: int, max_steps: int = STEPS_AHEAD) -> None:
        self._steps: queue.SimpleQueue[Step | None] = queue.SimpleQueue()
        self._max_rows, self._max_steps = max_rows, max_steps
        self._rows = self._queued = 0
        self._room = trio.Event()
        self._token = trio.lowlevel.current_trio_token()

    async def send(self, step: Step) -> None:
        while self._rows >= self._max_rows or self._queued >= self._max_steps:
            self._room = trio.Event()
            await self._room.wait()
        self._rows += _rows(step)
        self._queued += 1
        self._steps.put(step)
        await trio.lowlevel.checkpoint()

    def written(self, step: Step) -> None:
        """The writer is done with `step`: its rows no longer count."""
        self._rows -= _rows(step)
        self._queued -= 1
        self._room.set()

    async def aclose(self) -> None:
        """No more steps: `write_all` returns once it has written those sent."""
        self._steps.put(None)
        await trio.lowlevel.checkpoint()

    def write_all(self, write: Callable[[list[Step]], None]) -> None:
        """In the writer thread: `write` each step sent, in order, until `aclose`; the queue
        hears of each written step through the Trio loop (the loop is running: the task
        that waits for this thread keeps it so)."""
        while (step := self._steps.get()) is not None:
            write([step])
            self._token.run_sync_soon(self.written, step)


def _rows(step: Step) -> int:
    """Lines a step adds to the output files: its CDRs and its ledger events."""
    return len(step.cdrs) + len(step.events)
