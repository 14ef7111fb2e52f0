"""The output files of `callsim serve`: cdrs.csv, events.jsonl, summary.json (and cdrs.msgpack).

`ServerFiles` buffers what the engine produced, writes the files and builds
the summary.  The server runs it in a thread (tests: nothing to start) or,
from the command line, in a worker process (`FilesProcess`): formatting
cdrs.csv and folding the summary are only a few ms of CPU a second, but in
a thread of the server's process they take the GIL hundreds of times a
second, and each time the event loop waits.  Measured at 20,000 setups/s:
ticks ran 2-4x slower during each file flush, +4-6 ms of p99 setup latency.
Through a pipe the event loop's share is one pickle of the CDR arrays a
second, done in a thread that releases the GIL while the pipe is written.
"""

from __future__ import annotations

import multiprocessing
import signal
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path

from rating_core import Step, Tables

from .outputs import CdrWriter, EventWriter, SummaryBuilder


class ServerFiles:
    """The writers and the summary of one server run, fed steps merged over many ticks."""

    def __init__(self, out_dir: Path, tables: Tables, start: datetime, currency: str,
                 scenario_name: str, seed: int, write_msgpack: bool) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._out_dir = out_dir
        self.cdrs = CdrWriter(out_dir, tables, start, currency, write_msgpack=write_msgpack)
        self.events = EventWriter(out_dir, tables, start)
        self.summary = SummaryBuilder(tables, currency, scenario_name, seed, start=start)

    def write(self, step: Step, to_files: bool) -> None:
        """Take a step; `to_files`: also format what is buffered and push it to the OS."""
        self.cdrs.write(step.cdrs)  # buffered: formatted in big batches, at flush or when full
        self.events.write(step.events)
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


def _work(conn: Connection, *args: object) -> None:
    """The worker process: ServerFiles calls from the pipe; a failure (disk full) is reported once."""
    # Ctrl-C reaches the whole process group: the server decides when to stop and then closes
    # the files, so this process must finish them rather than die mid-row.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    failed: tuple[int, str] | None = None
    try:
        files = ServerFiles(*args)  # type: ignore[arg-type]
    except OSError as err:
        files, failed = None, (err.errno or 0, err.strerror or str(err))
        conn.send(("failed", *failed))
    while True:
        call, *values = conn.recv()
        try:
            if call == "close":
                if failed is None and files is not None:
                    conn.send(("closed", files.close(*values)))
                else:
                    conn.send(("close_failed", *(failed or (0, "the output files could not be written"))))
                return
            if failed is None and files is not None:
                getattr(files, call)(*values)
        except OSError as err:
            if call == "close":
                conn.send(("close_failed", err.errno or 0, err.strerror or str(err)))
                return
            if failed is None:
                failed = (err.errno or 0, err.strerror or str(err))
                conn.send(("failed", *failed))


class FilesProcess:
    """A ServerFiles in a worker process; the same calls, blocking, over a pipe.

    A write error in the worker comes back as an OSError from the next call.
    """

    def __init__(self, out_dir: Path, tables: Tables, start: datetime, currency: str,
                 scenario_name: str, seed: int, write_msgpack: bool) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_work, args=(child, out_dir, tables, start, currency, scenario_name, seed, write_msgpack),
            daemon=True, name="callsim-serve-files",
        )
        self._proc.start()
        child.close()

    def write(self, step: Step, to_files: bool) -> None:
        self._call("write", step, to_files)

    def flush(self) -> None:
        self._call("flush")

    def close(self, balances: list[int], pool_remaining: list[int], complete: bool, now: int) -> dict:
        try:
            self._conn.send(("close", balances, pool_remaining, complete, now))
            reply = self._conn.recv()
            while reply[0] == "failed":  # reported earlier, not read yet: the answer to "close" follows
                reply = self._conn.recv()
        except (EOFError, OSError):
            reply = ("close_failed", 0, "the output writer process died")
        self._proc.join()
        self._conn.close()
        if reply[0] != "closed":
            raise OSError(reply[1], reply[2])
        return reply[1]

    def _call(self, call: str, *values: object) -> None:
        try:
            if self._conn.poll():  # the worker reported a failure
                reply = self._conn.recv()
                raise OSError(reply[1], reply[2])
            self._conn.send((call, *values))  # blocks while the worker is behind: backpressure
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise OSError(0, "the output writer process died") from None
