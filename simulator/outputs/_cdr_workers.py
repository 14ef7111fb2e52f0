"""cdrs.csv and cdrs.msgpack written by two worker processes, for big runs.

Formatting costs ~0.6 µs a row for the CSV and ~1.3 µs for the msgpack stream
(`_csv_columns`, `_msgpack_columns`): together more CPU than rating the calls.
In the rating process they would hold the GIL the rating needs; each file gets
a child process instead, fed the raw CDR columns through a pipe, so on two cores
both files are written beside the rating.  The bytes are those `CdrWriter`
writes in-process (same functions, same batches, same order).

`callsim run` starts them as soon as it knows the run is big enough
(`simulator.run.start_cdr_workers(..., fork=True)`), before it has started a thread or
the event loop: the children are then forked, copies of a process that has
imported numpy and the formatters already.  Spawned, each costs ~0.3 s of CPU
to start (a fresh interpreter importing them): that is what a library caller's
run gets, and any process with a thread.
The files are named, and the tables sent, later (`open`).  The processes and
their pipes are `_worker_process.WorkerProcess`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from ._cdr_format import CdrFile, CdrLookups, CdrSink, ExtraCdrFile
from ._worker_process import EVENTS, PickledOnce, WorkerProcess, forkable, receive_batch, receive_events

if TYPE_CHECKING:
    from datetime import datetime

    from rating_core import CdrBatch, EventColumns, Tables

QUEUED_BATCHES = 4  # batches handed over but not yet in the pipe (16k rows, ~1.6 MB each)
# ledger events per message to the cdrs.csv worker (34 bytes each: ~4.5 MB), one of the queued
# items; an org recharging at every increment has ~30 a call
EVENT_CHUNK_ROWS = 131_072
FORMATS = ("csv", "msgpack")
EXTRA = "extra"  # the worker of the `ExtraCdrFile`s (`CdrWriter`'s extra_files)
EVENTS_FILE = "events_file"  # the message naming events.jsonl to the cdrs.csv worker


def _write_cdrs(conn: Connection) -> None:
    """A child's job: the file named by the first message, then every batch into it."""
    opened = conn.recv()
    if opened is None:  # closed before any file was named: the run ended early
        return
    fmt, path, tables, start, currency, extras = opened
    try:
        with contextlib.ExitStack() as closing:  # every file is closed, whatever fails first
            files: list[CdrSink] = []
            if fmt != EXTRA:
                files.append(CdrFile(Path(path), fmt, CdrLookups.build(tables, start, currency)))
                closing.callback(files[0].close)
            for extra in extras:
                files.append(extra.open())
                closing.callback(files[-1].close)
            events: _EventFile | None = None
            while (message := conn.recv()) is not None:
                if isinstance(message, int):  # a batch's length: its columns follow
                    batch = receive_batch(conn)
                    for cdr_file in files:
                        cdr_file.write(batch)
                elif message[0] == EVENTS:
                    if events is None:
                        raise RuntimeError("ledger events sent before their file was named")
                    events.write(receive_events(conn, message[1]))
                elif message[0] == EVENTS_FILE:
                    events = _EventFile(Path(message[1]), tables, start)
                    closing.callback(events.close)
                else:
                    raise RuntimeError(f"unexpected message {message!r}")
    except OSError as err:  # a failed write that names no file: cdrs.csv's (events.jsonl's names itself)
        err.filename = str(err.filename or path)  # one type, whatever the OS error held
        raise


class _EventFile:
    """events.jsonl in the cdrs.csv worker: each chunk written and pushed to the OS as it comes,
    before any CDR batch sent after it (what a killed run leaves, docs/outputs.md)."""

    def __init__(self, path: Path, tables: "Tables", start: "datetime") -> None:
        from ..units import epoch_ms
        from ._event_lines import EventLines

        self._path = path
        self._lines = EventLines(tables.org_ids, epoch_ms(start))
        self._file = open(path, "wb")

    def write(self, events: "EventColumns") -> None:
        try:
            self._lines.write(events, self._file)
            self._file.flush()
        except OSError as err:
            err.filename = str(self._path)
            raise

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as err:
            err.filename = str(self._path)
            raise


class CdrFileWorker(WorkerProcess):
    """One CDR file (`fmt`: "csv" or "msgpack") written by a child: `open`, `write`, `close`;
    or (`fmt` "extra") the extra files of a run (`open_extras`).

    `fork`: fork the child if this process allows it (`forkable`), else spawn it.
    """

    def __init__(self, fmt: str, fork: bool = False) -> None:
        if fmt not in (*FORMATS, EXTRA):
            raise ValueError(f"unknown CDR file format {fmt!r}")
        super().__init__(_write_cdrs, name=f"callsim-{fmt}", queued=QUEUED_BATCHES, fork=fork and forkable())
        self.fmt = fmt

    def open(self, path: Path, tables: "Tables | PickledOnce", start: "datetime", currency: str,
             extras: Sequence[ExtraCdrFile] = ()) -> None:
        """Name the file (created now, by the child) and give it what formatting needs (the
        tables may come pickled once for several workers); `extras` are more files of the same
        rows the child opens and writes beside it (pickled: they must be picklable)."""
        self.put((self.fmt, str(path), tables, start, currency, tuple(extras)))

    def open_extras(self, extras: Sequence[ExtraCdrFile]) -> None:
        """The "extra" worker's files (pickled to the child, which opens them)."""
        self.put((EXTRA, str(extras[0].path) if extras else "", None, None, None, tuple(extras)))

    def write(self, batch: "CdrBatch") -> None:
        """Queue the batch; its columns are read later, from the sender thread, so the caller
        must not change them (`CdrBuffer.take` hands over columns it never touches again)."""
        self.put(batch)  # blocks when the child falls QUEUED_BATCHES behind: backpressure

    def open_events(self, path: Path) -> None:
        """Have the cdrs.csv worker write events.jsonl too, at `path` (created now, by the child),
        after its `open`: events sent to it (`write_events`) then reach their file before the
        CDRs sent after them reach theirs, as they do in one process (docs/outputs.md)."""
        if self.fmt != "csv":
            raise ValueError(f"events.jsonl is written by the csv worker, not the {self.fmt} one")
        self.put((EVENTS_FILE, str(path)))

    def write_events(self, events: "EventColumns") -> None:
        """Queue ledger events (in output order) for events.jsonl, `EVENT_CHUNK_ROWS` per
        message: what waits in the queue stays a few MB, whatever a window holds.  Their
        columns are read later, from the sender thread: the caller must not change them."""
        for first in range(0, len(events), EVENT_CHUNK_ROWS):
            self.put(events.take(slice(first, first + EVENT_CHUNK_ROWS)))

    def flush(self) -> None:
        """Nothing to do here: the child writes each batch as it comes (the last few KB of its
        file buffer at close, which a stopped run still reaches)."""


class CdrWorkers:
    """The file workers of one run (cdrs.csv's, cdrs.msgpack's unless `msgpack=False`, and
    with `extra=True` one for the run's extra files), started together, written and closed
    together.

    `fork=True` is for a program's start-up, before it runs an event loop or a
    thread (`callsim run` and the bench): the children are then forked.  By
    default, and whenever the process has a thread, they are spawned.
    """

    def __init__(self, fork: bool = False, msgpack: bool = True, extra: bool = False) -> None:
        # every child before any sender thread (the first `open` starts them): all forked
        self.csv = CdrFileWorker("csv", fork)
        self.msgpack = CdrFileWorker("msgpack", fork) if msgpack else None
        self.extra = CdrFileWorker(EXTRA, fork) if extra else None

    @property
    def workers(self) -> tuple[CdrFileWorker, ...]:
        return tuple(w for w in (self.csv, self.msgpack, self.extra) if w is not None)

    @property
    def closed(self) -> bool:
        return all(worker.closed for worker in self.workers)

    def close(self) -> None:
        """Wait for every file to be complete; the first failure (the csv worker's, if both
        fail) is raised once all are closed."""
        failures = []
        for worker in self.workers:
            try:
                worker.close()
            except BaseException as failure:
                failures.append(failure)
        if failures:
            raise failures[0]
