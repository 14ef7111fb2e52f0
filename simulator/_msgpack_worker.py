"""cdrs.msgpack written by a worker process.

Encoding cdrs.msgpack costs ~1.3 us a row even a column at a time
(`_msgpack_columns`), the largest single cost of a big run after the rating
and the CSV.  In a separate process it runs on the machine's other core instead
of holding the GIL the rating core needs.  The bytes are those `CdrWriter`
writes in-process (same function, same order).

Starting the process costs ~0.6 s of CPU (a fresh interpreter importing numpy,
polars and msgspec), so `callsim run` starts it as soon as it knows the run is
big enough (`MsgpackWorker.for_scenario`), before importing the rest of itself: the child
then imports on the core the parent's start-up leaves idle.  This module
imports nothing heavy at the top for the same reason; the child imports what
it needs in `_work`.  The file is named, and the tables sent, later (`open`).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from ._malloc import keep_freed_memory

if TYPE_CHECKING:
    from datetime import datetime

    from rating_core._model import CdrBatch, Tables

    from .scenario import Scenario

MSGPACK_WORKER_CALLS = 200_000  # below this a worker process costs more to start than it saves
QUEUED_BATCHES = 4  # batches handed over but not yet in the pipe (a 64k-row batch is ~6 MB)


def _work(conn: Connection) -> None:
    # Ctrl-C, and a SIGTERM sent to the process group (`timeout`, a service manager), reach
    # this process too: the parent stops cleanly on both and then closes the pipe, so this
    # process must drain it rather than die mid-record under a parent still writing to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    keep_freed_memory()
    try:
        _encode(conn)
    except EOFError:  # the parent died without closing the pipe: nothing left to write to
        pass
    # The file is closed and the parent told: skip the interpreter's teardown (~0.3 s of
    # freeing numpy and polars), which the parent would otherwise wait out in `join`.
    os._exit(0)


def _encode(conn: Connection) -> None:
    from ._cdr_format import CdrLookups, write_msgpack
    from ._msgpack_columns import RowJoiner

    opened = conn.recv()
    if opened is None:  # closed before any file was named: the run ended early
        conn.send("closed")
        return
    path, tables, start, currency = opened
    lookups = CdrLookups.build(tables, start, currency)
    joiner = RowJoiner()
    try:
        with open(path, "wb") as out:
            while conn.recv() is not None:  # a batch's columns follow
                write_msgpack(_receive_batch(conn), lookups, joiner, out)
    except OSError as err:  # disk full, ...: the parent reports it as its own write error
        conn.send(("failed", err.errno, err.strerror, err.filename or path))
        return
    conn.send("closed")


def _send_batch(conn: Connection, batch: "CdrBatch") -> None:
    """A batch as its raw columns: no pickled copy of them made while holding the GIL."""
    import numpy as np

    from rating_core._model import CDR_DTYPES, CDR_FIELDS

    conn.send(len(batch))
    for name, dtype in zip(CDR_FIELDS, CDR_DTYPES):
        conn.send_bytes(np.ascontiguousarray(getattr(batch, name), dtype=dtype))


def _receive_batch(conn: Connection) -> "CdrBatch":
    import numpy as np

    from rating_core._model import CDR_DTYPES, CdrBatch

    return CdrBatch(*(np.frombuffer(conn.recv_bytes(), dtype=dtype) for dtype in CDR_DTYPES))


def _write_error(answer: object) -> OSError | None:
    """The worker's report of a write error (`_encode`), as the OSError it caught."""
    if isinstance(answer, tuple) and len(answer) == 4 and answer[0] == "failed":
        return OSError(answer[1], answer[2], answer[3])
    return None


class MsgpackWorker:
    """Same interface as an open file for `CdrWriter`: `open`, write batches, then close.

    Batches go into the pipe from a thread of ours, through a short queue: a
    `send` blocks until the worker has read the batch, and the worker reads
    only between batches, so sending from the caller's thread would hold the
    CSV writer back for the whole time the worker packs the batch before.
    """

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_work, args=(child,), daemon=True, name="callsim-msgpack")
        self._proc.start()
        child.close()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=QUEUED_BATCHES)
        self._failure: BaseException | None = None
        self._sender = threading.Thread(target=self._send_queued, daemon=True, name="callsim-msgpack-send")
        self._sender.start()
        self.closed = False

    @classmethod
    def for_scenario(cls, scenario: "Scenario") -> "MsgpackWorker | None":
        """A worker started now if a run of this scenario is big enough to be worth one, else None."""
        from .traffic import expected_calls

        return cls() if expected_calls(scenario) >= MSGPACK_WORKER_CALLS else None

    def open(self, path: Path, tables: "Tables", start: "datetime", currency: str) -> None:
        """Name the file (created now, by the worker) and give it what formatting needs."""
        self._put((str(path), tables, start, currency))

    def write(self, batch: "CdrBatch") -> None:
        """Queue the batch; its columns are read later, from the sender thread, so the caller
        must not change them (`CdrBuffer.take` hands over columns it never touches again)."""
        self._put(batch)  # blocks when the worker falls QUEUED_BATCHES behind: backpressure

    def close(self) -> None:
        """Send what is queued, wait for the file to be closed; RuntimeError if the worker failed."""
        if self.closed:
            return
        self.closed = True
        self._queue.put(None)
        self._sender.join()
        report = None
        try:
            # after a failed send the worker may wait for columns that will never come: ask it
            # only for what it has already said (a write error of its own)
            answer = self._conn.recv() if self._failure is None or self._conn.poll(1) else None
            if answer != "closed":
                report = _write_error(answer)
                raise report or self._failure or RuntimeError(f"unexpected answer {answer!r}")
        except BaseException as failure:
            self._proc.kill()  # it ignores SIGTERM (see _work)
            self._proc.join()
            if failure is report:  # the worker could not write its file: that is the error
                raise failure from None
            raise RuntimeError(f"msgpack worker failed (exit status {self._proc.exitcode})") from failure
        finally:
            self._conn.close()
        self._proc.join()

    def _put(self, item: object) -> None:
        if self._failure is not None:
            self.close()  # raises: the worker's write error if it reported one
        self._queue.put(item)

    def _send_queued(self) -> None:
        """Send what is queued, up to and including the None that closes; after a failure, drop it."""
        while True:
            item = self._queue.get()
            if self._failure is None:
                try:
                    if isinstance(item, tuple | None):  # open, close
                        self._conn.send(item)
                    else:
                        _send_batch(self._conn, item)
                except BaseException as failure:  # the worker died (or this thread failed):
                    self._failure = failure  # `write` and `close` report it; keep draining
            if item is None:
                return
