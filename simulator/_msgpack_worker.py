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
it needs in `_encode`.  The file is named, and the tables sent, later (`open`).
The process and its pipe are `_worker_process.WorkerProcess`.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

from ._worker_process import WorkerProcess, receive_batch

if TYPE_CHECKING:
    from datetime import datetime

    from rating_core._model import CdrBatch, Tables

    from .scenario import Scenario

MSGPACK_WORKER_CALLS = 200_000  # below this a worker process costs more to start than it saves
QUEUED_BATCHES = 4  # batches handed over but not yet in the pipe (a 64k-row batch is ~6 MB)


def _encode(conn: Connection) -> None:
    """The child's job: the file named by the first message, then every batch into it."""
    from ._cdr_format import CdrLookups, write_msgpack
    from ._msgpack_columns import RowJoiner

    opened = conn.recv()
    if opened is None:  # closed before any file was named: the run ended early
        return
    path, tables, start, currency = opened
    lookups = CdrLookups.build(tables, start, currency)
    joiner = RowJoiner()
    try:
        with open(path, "wb") as out:
            while conn.recv() is not None:  # a batch's length: its columns follow
                write_msgpack(receive_batch(conn), lookups, joiner, out)
    except OSError as err:  # a failed write names no file: this one is the only one
        err.filename = err.filename or path
        raise


class MsgpackWorker(WorkerProcess):
    """Same interface as an open file for `CdrWriter`: `open`, write batches, then close."""

    def __init__(self) -> None:
        super().__init__(_encode, name="callsim-msgpack", queued=QUEUED_BATCHES)

    @classmethod
    def for_scenario(cls, scenario: "Scenario") -> "MsgpackWorker | None":
        """A worker started now if a run of this scenario is big enough to be worth one, else None."""
        from .traffic import expected_calls

        return cls() if expected_calls(scenario) >= MSGPACK_WORKER_CALLS else None

    def open(self, path: Path, tables: "Tables", start: "datetime", currency: str) -> None:
        """Name the file (created now, by the worker) and give it what formatting needs."""
        self.put((str(path), tables, start, currency))

    def write(self, batch: "CdrBatch") -> None:
        """Queue the batch; its columns are read later, from the sender thread, so the caller
        must not change them (`CdrBuffer.take` hands over columns it never touches again)."""
        self.put(batch)  # blocks when the worker falls QUEUED_BATCHES behind: backpressure
