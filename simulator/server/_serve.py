"""`callsim serve`: the rating core as a switch on the network (docs/server.md, docs/protocol.md).

Clients (PBXs, test rigs, Locust, `callsim loadgen`) connect over TCP, log in
for one org, and place and hang up calls; the server rates them with the
same `RatingEngine` as `callsim run`, in wall-clock time, and writes the same
cdrs.csv, events.jsonl and summary.json.

Tasks, all in one nursery (Trio structured concurrency):
  * the exchange (`_exchange`): the only task that touches the engine;
  * one handler per connection (`_connection`), reader + writer;
  * the output writer: every `file_flush_s` (every `flush_s` with metrics) it
    hands what the engine produced to the files (`_files`), which
    format it in a child process (`callsim serve`) or a worker thread (the
    library's default), beside the ticks, not in them;
  * the signal watcher: Ctrl-C / SIGTERM stops the exchange;
  * the memory keeper: once connections have closed, it gives the memory
    their buffers took back to the kernel (`return_freed_memory`).
Connections beyond `Limits.max_connections` are refused at once: an `error`
`too_many_connections` written without waiting, then closed.  What all the
connections together hold in buffers is bounded by `Limits.max_buffered_bytes`
(`_budget`).
Stopping: the exchange rates what it has received, ends every call still
connected as `simulation_end` and tells its client (`disconnected`);
connections get `grace_s` to deliver that, then are closed; the files are
flushed and summary.json written (`"complete": true` only when the scenario's
duration was reached).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import trio
from prometheus_client import CollectorRegistry

from rating_core import CdrBuffer, LedgerEvent, Step

from .._malloc import return_freed_memory
from ..metrics import MetricsServer, RunMetrics, ServerMetrics, declare_build_info
from ..outputs import WorkerFailed, write_error_text
from ..scenario import Scenario
from ..switch import WindowReport
from ._budget import BufferBudget
from ._connection import Connection, Limits
from ._directory import Directory
from ._exchange import Exchange
from ._files import ServerFiles, ServerFilesProcess
from ._wire import TOO_MANY_CONNECTIONS, ProtocolError, pack_frame

__all__ = ["Edge", "ServerConfig", "ServerInfo", "ServerResult", "serve"]

log = logging.getLogger("callsim.server")

DEFAULT_PORT = 7060


class Edge(Protocol):
    """Another front end fed by the same exchange (`simulator.sip.SipEdge`: SIP over UDP and TCP)."""

    async def bind(self) -> None:
        """Listen; raises OSError.  Called before the server creates its files."""

    async def run(self, exchange: Exchange, registry: CollectorRegistry, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve into `exchange` until cancelled; started once the exchange runs."""

    def describe(self) -> str:
        """The line `announce` prints about it, once bound."""


@dataclass
class ServerConfig:
    """Everything `callsim serve` takes besides the scenario (see its --help)."""

    out_dir: Path
    host: str = "127.0.0.1"
    port: int | None = DEFAULT_PORT  # 0: any free port (tests), reported in ServerInfo; None: no msgpack
    edges: list[Edge] = field(default_factory=list)  # other front ends on the same exchange (SIP)
    limits: Limits = field(default_factory=Limits)
    metrics: MetricsServer | None = None  # the /metrics endpoint, if one was asked for
    registry: CollectorRegistry | None = None  # without an endpoint: where metrics go (tests read it)
    tick_s: float = 0.001  # at most one advance of the engine per tick
    flush_s: float = 0.1  # how often the engine's output is handed to the writers
    # How often the writers format what they buffered and push it to the OS.  Short, so each
    # burst of formatting (a few ms of GIL hand-overs with the event loop) stays small: at 1 s,
    # p99 setup latency at 20,000 setups/s is 4-8 ms higher.
    file_flush_s: float = 0.2
    grace_s: float = 1.0  # after the stop: time for clients to receive their last messages
    handle_signals: bool = True
    # cdrs.msgpack next to cdrs.csv, as `callsim run` writes.  Off by default here: its per-row
    # encoding (~1.3 us a CDR) is CPU the two cores' server and load generator need.
    write_msgpack: bool = False
    # the CDRs as the Teams admin center's usage export too (`callsim serve --cdr-format teams`)
    teams_export: bool = False
    # Write the files from a child process at a lower priority (`callsim serve` does; see
    # _server_files); False: from a worker thread of this process, as the tests do.
    files_process: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    announce: Callable[[str], None] | None = None  # told where the server listens, once it does
    # called (in a thread) once connections have closed: `return_freed_memory`; tests count calls
    return_memory: Callable[[], object] = return_freed_memory
    return_memory_after_s: float = 1.0  # after a close, wait for the others of its wave first


@dataclass(frozen=True)
class ServerInfo:
    """What `serve` reports once it listens (`nursery.start(serve, ...)` returns it)."""

    host: str
    port: int | None  # None: no msgpack listener
    exchange: Exchange
    budget: BufferBudget  # what the connections hold in buffers, against `max_buffered_bytes`


@dataclass
class ServerResult:
    summary: dict  # summary.json's content ({} when the files could not be written)
    complete: bool  # the scenario's duration was reached (not stopped early)
    setups: int
    error: str | None = None  # why the server stopped early, if not by a signal or stop()


class _Outputs:
    """The server's output files, fed Step by Step by the exchange, written in batches."""

    def __init__(self, scenario: Scenario, exchange: Exchange, config: ServerConfig,
                 run_metrics: RunMetrics | None) -> None:
        setup = scenario.setup
        files = ServerFilesProcess if config.files_process else ServerFiles
        tables = exchange.engine.tables
        extra = []
        if config.teams_export:  # imported only when asked for: it brings polars (~0.5 s)
            from .. import usage

            extra.append(usage.teams_export(setup, tables, scenario.seed, config.out_dir, scenario.name))
        self._files = files(config.out_dir, tables, setup.start, setup.currency,
                            scenario.name, scenario.seed, config.write_msgpack, extra)
        self._out_dir = config.out_dir
        self._exchange = exchange
        self._metrics = run_metrics
        # what the ticks produced since the last hand-over, gathered as they come (see CdrBuffer)
        self._cdrs = CdrBuffer()
        self._events: list[LedgerEvent] = []
        self._increments = 0
        self.failed: str | None = None  # why the files could not be written
        self._t0 = 0  # engine instant of the last metrics report

    def add(self, step: Step) -> None:
        """Called by the exchange after every advance (synchronous, cheap)."""
        self._cdrs.append(step.cdrs)
        self._events += step.events
        self._increments += step.increments

    async def run(self, flush_s: float, file_flush_s: float) -> None:
        """Hand output to the writers every `flush_s` (every `file_flush_s` without metrics: each
        hand-over costs the event loop a thread hop, and with the files in a thread, formatting
        that contends for the GIL); a write error (disk full) stops the server."""
        last_file_flush = trio.current_time()
        while True:
            await trio.sleep(flush_s)
            to_files = trio.current_time() - last_file_flush >= file_flush_s
            if not to_files and self._metrics is None:
                continue  # nothing to fold in: hand the steps over once, when the files are written
            try:
                await self.flush(to_files)
            except (OSError, WorkerFailed) as err:
                self.fail(err)
                log.error("%s; stopping", self.failed)
                self._exchange.stop()
                return
            if to_files:
                last_file_flush = trio.current_time()

    def fail(self, err: OSError | WorkerFailed) -> None:
        """Note why the files could not be written (the server reports it and exits 1)."""
        self.failed = _cannot_write(self._out_dir, err)

    async def flush(self, to_files: bool = True) -> None:
        """Hand what the engine produced to the writers; `to_files`: format and write it out too."""
        if not len(self._cdrs) and not self._events and not self._increments:
            if to_files:
                await trio.to_thread.run_sync(self._files.flush)
            return
        step = Step(self._cdrs.take(), self._events, self._increments)
        self._events, self._increments = [], 0
        if self._metrics is not None:
            t1 = self._exchange.engine.now  # engine state matches this step: nothing ran since
            self._metrics.observe(WindowReport(self._t0, max(t1, self._t0 + 1), step, 0, 0.0, 0.0))
            self._t0 = t1
        await trio.to_thread.run_sync(self._files.write, step, to_files)

    def close(self, complete: bool) -> dict:
        engine = self._exchange.engine
        return self._files.close(engine.balances().tolist(), engine.pool_remaining().tolist(),
                                 complete, engine.now)


async def serve(scenario: Scenario, config: ServerConfig, *,
                task_status: trio.TaskStatus[ServerInfo] = trio.TASK_STATUS_IGNORED) -> ServerResult:
    """Serve the rating core of `scenario` over TCP until stopped, then write the summary.

    Listens on `config.host`:`config.port`, rates every client's setups and hang-ups in one
    exchange (docs/protocol.md), and writes cdrs.csv, events.jsonl and summary.json (and
    cdrs.msgpack) in `config.out_dir` as the engine produces them.  It stops on SIGINT or
    SIGTERM, on `info.exchange.stop()`, or at the end of the scenario's duration: calls still
    connected then end as `simulation_end`, and every file is complete.

    Args:
      scenario: a loaded scenario; its orgs, users, tariffs, plans and credits are served,
        its traffic and explicit calls ignored.
      config: address, limits per connection (`Limits`), metrics, output directory and how
        the files are written (`files_process`: in a child process, as `callsim serve` does).
      task_status: for `nursery.start(serve, ...)`: started with a `ServerInfo` (the bound
        port, the exchange) once the server listens and its files exist.

    Returns:
      A `ServerResult`: summary.json's content, `complete` (the scenario's end was reached),
      the number of setups rated and `error`, why the server stopped early when its files
      could not be written (then the other fields say what was written).

    Raises:
      OSError: the address (or an edge's) cannot be listened on (before anything is created).
    """
    directory = Directory(scenario.setup, config.environ)
    registry = config.metrics.registry if config.metrics else config.registry or CollectorRegistry()
    metrics = ServerMetrics(registry)
    declare_build_info(registry, scenario.name, scenario.seed)
    latency = metrics.setup_latency.observe

    def on_step(step: Step) -> None:
        outputs.add(step)

    exchange = Exchange(scenario.setup, on_step, latency, tick_s=config.tick_s,
                        on_advance=_advance_observer(metrics))
    run_metrics = RunMetrics(registry, exchange.engine) if config.metrics or config.registry else None
    # Listen before any task starts, so "address in use" reaches the caller as a plain OSError;
    # and before the files exist, which are closed by the `finally` below once they do.
    listeners = [] if config.port is None else await trio.open_tcp_listeners(config.port, host=config.host)
    port = listeners[0].socket.getsockname()[1] if listeners else None
    try:
        for edge in config.edges:
            await edge.bind()
    except OSError:
        for listener in listeners:
            await listener.aclose()
        raise
    complete = False
    try:
        outputs = _Outputs(scenario, exchange, config, run_metrics)
    except (OSError, WorkerFailed) as err:  # the files cannot be created: nothing to serve into
        for listener in listeners:
            await listener.aclose()
        return ServerResult({}, False, 0, _cannot_write(config.out_dir, err))

    budget = BufferBudget(config.limits.max_buffered_bytes)
    metrics.buffered_bytes.set_function(lambda: budget.total)
    gate = _ConnectionGate(config.limits.max_connections, metrics, config.return_memory,
                           config.return_memory_after_s)

    async def handler(stream: trio.SocketStream) -> None:
        if not gate.admit(stream):
            await stream.aclose()
            return
        try:
            await Connection(stream, exchange, directory, config.limits, metrics, budget).serve()
        finally:
            gate.leave()

    async def drive(nursery: trio.Nursery, *, task_status: trio.TaskStatus[None]) -> None:
        nonlocal complete
        complete = await exchange.run(task_status=task_status)
        await trio.sleep(config.grace_s)  # let connections deliver their last `disconnected`
        nursery.cancel_scope.cancel()

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(drive, nursery)
            for edge in config.edges:
                await nursery.start(edge.run, exchange, registry)
            if listeners:
                nursery.start_soon(trio.serve_listeners, handler, listeners)
            nursery.start_soon(outputs.run, config.flush_s, config.file_flush_s)
            nursery.start_soon(gate.return_memory)
            if config.handle_signals:
                nursery.start_soon(_stop_on_signal, exchange)
            if config.announce is not None:
                config.announce("\n".join([_describe(scenario, directory, config.host, port),
                                            *(edge.describe() for edge in config.edges)]))
            task_status.started(ServerInfo(config.host, port, exchange, budget))
    finally:
        summary: dict = {}
        if outputs.failed is None:
            with trio.CancelScope(shield=True):
                try:
                    await outputs.flush()
                    summary = await trio.to_thread.run_sync(outputs.close, complete)
                except (OSError, WorkerFailed) as err:  # the last rows, or the summary, were not written
                    outputs.fail(err)
    return ServerResult(summary, complete, exchange.setups, outputs.failed)


class _ConnectionGate:
    """Counts open connections, refuses those past the limit, and returns memory after closes."""

    def __init__(self, limit: int, metrics: ServerMetrics, return_memory: Callable[[], object],
                 return_after_s: float) -> None:
        self._limit = limit
        self._metrics = metrics
        self._return_memory = return_memory
        self._return_after_s = return_after_s
        self.open = 0
        self._closed = trio.Event()
        refusal = ProtocolError(TOO_MANY_CONNECTIONS, f"the server has {limit} connections, its limit; "
                                                      f"try again later")
        self._refusal = pack_frame([refusal.reply()])

    def admit(self, stream: trio.SocketStream) -> bool:
        """True if `stream` may be served; otherwise it has been told why (if its socket took the
        bytes at once: a refused client is never waited for) and the caller closes it."""
        if self.open < self._limit:
            self.open += 1
            return True
        self._metrics.protocol_errors.labels(TOO_MANY_CONNECTIONS).inc()
        try:
            os.write(stream.socket.fileno(), self._refusal)
        except OSError:
            pass
        return False

    def leave(self) -> None:
        self.open -= 1
        self._closed.set()

    async def return_memory(self) -> None:
        """After each wave of closes, once: the freed buffers go back to the kernel, not kept by
        malloc for a load that has gone (`keep_freed_memory` keeps them otherwise)."""
        while True:
            await self._closed.wait()
            await trio.sleep(self._return_after_s)
            self._closed = trio.Event()
            await trio.to_thread.run_sync(self._return_memory)


def _cannot_write(out_dir: Path, err: OSError | WorkerFailed) -> str:
    return f"cannot write to {out_dir}: {write_error_text(err)}"


def _advance_observer(metrics: ServerMetrics):
    duration, batch = metrics.advance_duration.observe, metrics.setups_per_advance.observe

    def observe(seconds: float, setups: int) -> None:
        duration(seconds)
        if setups:
            batch(setups)
    return observe


async def _stop_on_signal(exchange: Exchange) -> None:
    """Ctrl-C / SIGTERM: a normal stop for a server (rate what was received, end calls, flush)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            exchange.stop()


def _describe(scenario: Scenario, directory: Directory, host: str, port: int | None) -> str:
    """The startup line: where it listens, and which orgs can log in."""
    locked = directory.without_token()
    orgs = ", ".join(o.id for o in scenario.setup.orgs)
    where = f" on {host}:{port}" if port is not None else ""
    text = f"callsim: serving {scenario.name}{where} (orgs: {orgs})"
    if locked and port is not None:
        text += f"; no token, cannot log in: {', '.join(locked)}"
    return text

