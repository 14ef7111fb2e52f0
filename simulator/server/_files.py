"""The output files of `callsim serve`: cdrs.csv, events.jsonl, summary.json (and cdrs.msgpack).

`ServerFiles` buffers what the engine produced, writes the files and builds
the summary.  The server hands it the engine's output every 0.2 s, either from
a worker thread (`ServerFiles` itself: the library's default, and the tests')
or, as `callsim serve` does, in a child process (`ServerFilesProcess`).

The child process is for setup latency.  In a thread, formatting takes and
gives back the GIL hundreds of times per hand-over, and each
time the event loop waits for it: ~30 ms of wall time per hand-over, during
which ticks are late.  The child gets the columns raw through a pipe and
runs at a lower priority (nice 10), so on two cores it formats with the CPU
the event loop and the load generator leave.  At 20,000 setups/s it lowered
p99 setup latency in 9 of 10 runs alternating with the thread (docs/server.md
§4).  Without the lower priority it had not helped: its formatting bursts took
the CPU from the event loop instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path

from rating_core import Step, Tables

from ..outputs import (
    CdrWriter,
    EventWriter,
    ExtraCdrFile,
    SummaryBuilder,
    WorkerFailed,
    WorkerProcess,
    receive_batch,
)

FILES_QUEUED = 64  # messages (2 per hand-over with rows) the child may fall behind before the server waits
FILES_NICE = 10  # the child's priority below the server's: the files can wait, setups cannot


class ServerFiles:
    """The writers and the summary of one server run, fed steps merged over many ticks
    (`extra_files`: more files of the CDRs, as `CdrWriter` takes them)."""

    def __init__(self, out_dir: Path, tables: Tables, start: datetime, currency: str,
                 scenario_name: str, seed: int, write_msgpack: bool,
                 extra_files: Sequence[ExtraCdrFile] = ()) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._out_dir = out_dir
        self.cdrs = CdrWriter(out_dir, tables, start, currency, write_msgpack=write_msgpack, extra_files=extra_files)
        self.events = EventWriter(out_dir, tables, start)
        self.summary = SummaryBuilder(tables, currency, scenario_name, seed, start=start)

    def write(self, step: Step, to_files: bool) -> None:
        """Take a step; `to_files`: also format what is buffered and push it to the OS."""
        self.events.write(step.events)  # first: a killed server's events cover its CDRs
        self.cdrs.write(step.cdrs)  # buffered: formatted in big batches, at flush or when full
        self.summary.add_cdrs(step.cdrs)
        self.summary.add_events(step.events)
        if to_files:
            self.flush()

    def flush(self) -> None:
        self.cdrs.flush()
        self.events.flush()

    def close(self, balances: list[int], pool_remaining: list[int], complete: bool, now: int) -> dict:
        """Write what is left and summary.json; returns the summary."""
        self.cdrs.close()
        self.events.close()
        summary = self.summary.finish(balances, pool_remaining, complete, now)
        self.summary.write(self._out_dir, summary)
        return summary


class ServerFilesProcess:
    """`ServerFiles` run by a child process (see the module's docstring); the same interface.

    Write errors surface as OSError from a later call (the child reports
    them through the pipe): `write` or `flush` after the failure, or `close`.
    """

    def __init__(self, out_dir: Path, tables: Tables, start: datetime, currency: str,
                 scenario_name: str, seed: int, write_msgpack: bool,
                 extra_files: Sequence[ExtraCdrFile] = ()) -> None:
        self._worker = WorkerProcess(_write_files, name="callsim-files", queued=FILES_QUEUED,
                                     nice=FILES_NICE)
        self._worker.put((str(out_dir), tables, start, currency, scenario_name, seed, write_msgpack,
                          tuple(extra_files)))
        opened = self._worker.receive()  # the files exist, or this raised why they cannot
        if opened != "opened":
            self._worker.close()
            raise WorkerFailed(f"callsim-files answered {opened!r}")

    def write(self, step: Step, to_files: bool) -> None:
        self._worker.put(("step", step.events, step.increments, to_files))
        self._worker.put(step.cdrs)

    def flush(self) -> None:
        self._worker.put(("flush",))

    def close(self, balances: list[int], pool_remaining: list[int], complete: bool, now: int) -> dict:
        if self._worker.closed:
            return {}
        self._worker.put(("finish", balances, pool_remaining, complete, now))
        return self._worker.close()


def _write_files(conn: Connection) -> dict:
    """The child's job: a `ServerFiles` fed through the pipe; returns the summary."""
    opened = conn.recv()
    if opened is None:
        return {}
    out_dir, *rest = opened
    files = ServerFiles(Path(out_dir), *rest)
    conn.send("opened")
    summary: dict = {}
    while (message := conn.recv()) is not None:
        kind, *args = message
        if kind == "step":
            events, increments, to_files = args
            conn.recv()  # the batch's length: its columns follow
            files.write(Step(receive_batch(conn), events, increments), to_files)
        elif kind == "flush":
            files.flush()
        elif kind == "finish":
            summary = files.close(*args)
    return summary
