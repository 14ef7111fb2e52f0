"""cdrs.msgpack written by a worker process.

Encoding one msgpack map per CDR is per-row Python (~2.5 us a row with
msgspec), the largest single cost of a big run after the rating itself.  In a separate process it runs on the
machine's other core instead of holding the GIL the rating core needs.  The
bytes are those `CdrWriter` writes in-process (same function, same order).
"""

from __future__ import annotations

import multiprocessing
import signal
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path

import msgspec

from rating_core._model import CdrBatch, Tables

from ._cdr_format import CdrLookups, write_msgpack


def _work(conn: Connection, path: str, tables: Tables, start: datetime, currency: str) -> None:
    # Ctrl-C reaches the whole process group: the parent decides when to stop, and then
    # closes the pipe, so this process must drain it rather than die mid-record.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lookups = CdrLookups.build(tables, start, currency)
    encoder = msgspec.msgpack.Encoder()
    with open(path, "wb") as out:
        while (batch := conn.recv()) is not None:
            write_msgpack(batch, lookups, encoder, out)
    conn.send("closed")


class MsgpackWorker:
    """Same interface as an open file for `CdrWriter`: write batches, then close."""

    def __init__(self, path: Path, tables: Tables, start: datetime, currency: str) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_work, args=(child, str(path), tables, start, currency), daemon=True,
            name="callsim-msgpack",
        )
        self._proc.start()
        child.close()
        self.closed = False

    def write(self, batch: CdrBatch) -> None:
        self._conn.send(batch)  # blocks when the worker falls behind: backpressure

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._conn.send(None)
        if self._conn.recv() != "closed":
            raise RuntimeError("msgpack worker failed")
        self._proc.join()
        self._conn.close()
