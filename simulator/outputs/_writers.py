"""The run's output files: cdrs.csv, cdrs.msgpack, events.jsonl, summary.json (SPEC §4).

Plain synchronous classes: the Trio switch owns them and calls them from its
output task, possibly through `trio.to_thread.run_sync`, so nothing here knows
about Trio.  Each writer opens its files when constructed, or has its worker
processes create them (an empty run still leaves a header-only cdrs.csv and
empty streams behind), and appends batch after batch; the bytes depend only on the records, never on how they were batched
(CdrWriter even regroups them, see its docstring),
which is what makes "same scenario and seed => byte-identical outputs" hold
whatever the speed.  Formats are documented in docs/outputs.md.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from rating_core import CdrBatch, CdrBuffer, EventColumns, LedgerEvent, Tables

from ._cdr_format import CDR_COLUMNS, CdrFile, CdrLookups, CdrSink, ExtraCdrFile
from ._cdr_workers import CdrFileWorker, CdrWorkers
from ._worker_process import PickledOnce
from ..units import epoch_ms, format_epoch_ms_iso, format_micro
from ._event_lines import EventLines
from ._out_dir import CDRS_CSV, CDRS_MSGPACK, EVENTS_JSONL, SUMMARY_JSON
from ._summary import SummaryBuilder

__all__ = [
    "CDR_COLUMNS",
    "CDRS_CSV",
    "CDRS_MSGPACK",
    "DEFAULT_BUFFER_ROWS",
    "EVENTS_JSONL",
    "EVENT_FIELDS",
    "SUMMARY_JSON",
    "CdrWriter",
    "EventWriter",
    "SummaryBuilder",
    "event_line",
    "event_record",
]


#: CdrWriter formats this many buffered rows at a time (~6 MB of arrays) ...
DEFAULT_BUFFER_ROWS = 65_536
#: ... or hands this many to its worker processes: they start formatting sooner, and have less
#: left to format once the rating is over (a month's run: 0.15 s less wall time, 4 of 5 pairs).
WORKER_BUFFER_ROWS = 16_384


class CdrWriter:
    """Appends CdrBatches to `cdrs.csv` and (unless `write_msgpack=False`) `cdrs.msgpack`.

    Batches must arrive in output order, (end_time, call_id): the writer
    formats, it does not sort.  Rows are buffered until `buffer_rows` have
    accumulated (or `flush`/`close`; by default DEFAULT_BUFFER_ROWS, or
    WORKER_BUFFER_ROWS with workers): formatting a batch costs ~1 ms of
    fixed numpy overhead whatever its size, which would dominate batches of
    a few hundred rows.  The bytes do not depend on the batching.

    Big runs format in worker processes (`workers`, see _cdr_workers): True
    starts them here, `callsim run` passes the ones it started early.
    `write_msgpack=False` exists because the msgpack stream costs more than
    the CSV per row (see docs/outputs.md); SPEC §4 only promises the CSV.
    `extra_files` are more files of the same rows in layouts of their own
    (`ExtraCdrFile`, e.g. the Teams usage export), formatted where cdrs.csv is.
    """

    def __init__(
        self,
        out_dir: Path,
        tables: Tables,
        start: datetime,
        currency: str,
        *,
        write_msgpack: bool = True,
        buffer_rows: int | None = None,
        workers: "bool | CdrWorkers" = False,
        extra_files: Sequence[ExtraCdrFile] = (),
    ) -> None:
        if buffer_rows is None:
            buffer_rows = WORKER_BUFFER_ROWS if workers else DEFAULT_BUFFER_ROWS
        self._buffer_rows = buffer_rows
        self._pending = CdrBuffer()
        out_dir.mkdir(parents=True, exist_ok=True)
        if not write_msgpack:  # an earlier run's cdrs.msgpack here would pass for this run's
            (out_dir / CDRS_MSGPACK).unlink(missing_ok=True)
        self._sinks: list[CdrSink | CdrFileWorker] = []
        if workers:
            workers = CdrWorkers() if workers is True else workers
            # the extra files in a worker of their own if there is one, else beside cdrs.csv
            extra_worker = workers.extra
            sent = PickledOnce(tables) if write_msgpack else tables  # to both workers
            workers.csv.open(out_dir / CDRS_CSV, sent, start, currency, () if extra_worker else extra_files)
            self._sinks.append(workers.csv)
            if extra_worker is not None:
                if extra_files:
                    extra_worker.open_extras(extra_files)
                    self._sinks.append(extra_worker)
                else:
                    extra_worker.close()  # never given a file: it just exits
            if write_msgpack:
                if workers.msgpack is None:
                    raise ValueError("write_msgpack=True with workers started without msgpack")
                workers.msgpack.open(out_dir / CDRS_MSGPACK, sent, start, currency)
                self._sinks.append(workers.msgpack)
            elif workers.msgpack is not None:
                workers.msgpack.close()  # never given a file: it just exits
        else:
            lookups = CdrLookups.build(tables, start, currency)
            self._sinks.append(CdrFile(out_dir / CDRS_CSV, "csv", lookups))
            if write_msgpack:
                self._sinks.append(CdrFile(out_dir / CDRS_MSGPACK, "msgpack", lookups))
            self._sinks += [extra.open() for extra in extra_files]
        self._closed = False
        self.rows_written = 0

    def write(self, batch: CdrBatch) -> None:
        """Append one batch (any size, including empty); it reaches the files by `buffer_rows`."""
        self._pending.append(batch)
        if len(self._pending) >= self._buffer_rows:
            self._write_pending()

    def flush(self) -> None:
        """Format buffered rows and push them to the OS (or to the workers, which write each batch
        as it comes), e.g. for a progress report or on Ctrl-C."""
        self._write_pending()
        for sink in self._sinks:
            sink.flush()

    def close(self) -> None:
        """Write what is buffered and close; safe to call twice (a cancelled run closes in `finally`)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.ExitStack() as closing:  # every file is closed, whatever fails first
            for sink in self._sinks:
                closing.callback(sink.close)
            self._write_pending()

    def _write_pending(self) -> None:
        if not len(self._pending):
            return
        batch = self._pending.take()
        for sink in self._sinks:
            sink.write(batch)
        self.rows_written += len(batch)

    def __enter__(self) -> "CdrWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


#: The fields after time, org_id and event, per event kind, in output order (SPEC §4).
#: (key in the JSON object, LedgerEvent attribute)
EVENT_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "credits_purchased": (("amount", "amount_micro"), ("balance", "balance_micro")),
    "recharge_succeeded": (("amount", "amount_micro"), ("balance", "balance_micro")),
    "recharge_failed": (("reason", "reason"), ("balance", "balance_micro")),
    "balance_exhausted": (("balance", "balance_micro"),),
    "credits_expired": (("amount", "amount_micro"), ("balance", "balance_micro")),
    "pools_refilled": (),
}


def event_record(event: LedgerEvent, tables: Tables, start_epoch_ms: int) -> dict[str, Any]:
    """One LedgerEvent as its events.jsonl object: time, org_id, event, then its kind's fields.

    The shape comes from the kind (`EVENT_FIELDS`), not from which attributes
    happen to be set, so a missing field is a bug in the producer and raises
    rather than silently writing a different shape.  Shared with the server,
    which streams the same objects.
    """
    try:
        fields = EVENT_FIELDS[event.kind]
    except KeyError:
        raise ValueError(f"unknown ledger event kind {event.kind!r}") from None
    record: dict[str, Any] = {
        "time": format_epoch_ms_iso(start_epoch_ms + event.time_ms),
        "org_id": tables.org_ids[event.org],
        "event": event.kind,
    }
    for key, attribute in fields:
        value = getattr(event, attribute)
        if value is None:
            raise ValueError(f"{event.kind} event at {event.time_ms} ms has no {attribute}")
        record[key] = format_micro(value) if attribute.endswith("_micro") else value
    return record


def event_line(record: dict[str, Any]) -> str:
    """The JSONL text of one record: `json.dumps` defaults (`, ` and `: `), UTF-8 kept as is."""
    return json.dumps(record, ensure_ascii=False) + "\n"


class EventWriter:
    """Appends ledger events to `events.jsonl`, one JSON object per line, in the order given.

    With `worker` (the cdrs.csv worker of the run's `CdrWorkers`, already given its file by
    `CdrWriter`) the lines are formatted and written by that child process: an org that
    recharges at every increment has tens of events a call, whose formatting in this
    process would take the GIL from the rating.  The child closes the file when the
    worker is closed (`CdrWriter.close`), not here.
    """

    def __init__(self, out_dir: Path, tables: Tables, start: datetime,
                 worker: CdrFileWorker | None = None) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._worker = worker
        self._file = None
        if worker is not None:
            worker.open_events(out_dir / EVENTS_JSONL)
        else:
            self._lines = EventLines(tables.org_ids, epoch_ms(start))
            self._file = open(out_dir / EVENTS_JSONL, "wb")
        self.events_written = 0

    def write(self, events: EventColumns | Iterable[LedgerEvent]) -> None:
        """Append events (already in SPEC order: time, org, in-instant order) and push them to
        the OS at once (or queue them for the worker, which does, before any CDR batch handed
        to it later): the run writes a step's events before its CDRs, so the files of a
        killed run have every event up to its last CDR (docs/outputs.md).  EventColumns given
        to a worker are read later: the caller must not change them."""
        if not isinstance(events, EventColumns):
            events = EventColumns.from_events(list(events))
        if len(events):
            if self._worker is not None:
                self._worker.write_events(events)
            else:
                self._lines.write(events, self._file)
                self._file.flush()
        self.events_written += len(events)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close; safe to call twice."""
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
