"""A run's output directory and the files in it: cdrs.csv, cdrs.msgpack, events.jsonl,
summary.json (SPEC §4, docs/outputs.md).

General layout:

- `_writers`: `CdrWriter`, `EventWriter`: batches in, files out, the same bytes
  however the records were batched.
- `_cdr_format`: a CDR batch as cdrs.csv or cdrs.msgpack bytes (`CdrFile`), built from
  the column encoders `_csv_columns` and `_msgpack_columns` over `_byte_columns`; other
  layouts of the same rows plug in as `ExtraCdrFile`s, built on `csv_columns` and `RowJoiner`.
- `_cdr_workers`: the two CDR files formatted in child processes for big runs, over
  `_worker_process` (a child, its pipe and the batches sent through it).
- `_summary`: `SummaryBuilder`, summary.json's totals.
- `_out_dir`: who owns an --out directory, and when its files may be read.

Nothing here estimates traffic or knows about Trio: the caller (`simulator.run`, the
server) decides whether a run gets worker processes and hands the writers their batches.
"""

from . import _csv_columns as csv_columns
from ._byte_columns import ByteTable, Field, RowJoiner, fast_width
from ._cdr_format import CDR_COLUMNS, CdrFile, CdrLookups, CdrSink, ExtraCdrFile, used_pool
from ._cdr_workers import CdrFileWorker, CdrWorkers
from ._out_dir import (
    CDRS_CSV,
    CDRS_MSGPACK,
    EVENTS_JSONL,
    REPORT_HTML,
    SUMMARY_JSON,
    SWEEP_CSV,
    SWEEP_HTML,
    SWEEP_JSON,
    OutDir,
    OutDirBusy,
    RunNotFinished,
    claim_for_command,
    reading,
    unfinished,
)
from ._summary import SummaryBuilder, SummaryCounts, summary_text
from ._worker_process import WorkerFailed, WorkerProcess, forkable, receive_batch, write_error_text
from ._writers import DEFAULT_BUFFER_ROWS, EVENT_FIELDS, CdrWriter, EventWriter, event_line, event_record

__all__ = [
    "CDRS_CSV", "CDRS_MSGPACK", "CDR_COLUMNS", "DEFAULT_BUFFER_ROWS", "EVENTS_JSONL", "EVENT_FIELDS",
    "REPORT_HTML", "SUMMARY_JSON", "SWEEP_CSV", "SWEEP_HTML", "SWEEP_JSON", "ByteTable", "CdrFile",
    "CdrFileWorker", "CdrLookups", "CdrSink", "CdrWorkers", "CdrWriter", "EventWriter", "ExtraCdrFile",
    "Field", "OutDir", "OutDirBusy", "RowJoiner", "RunNotFinished", "SummaryBuilder", "SummaryCounts",
    "WorkerFailed", "WorkerProcess", "claim_for_command", "csv_columns", "event_line", "event_record",
    "fast_width", "forkable", "reading", "receive_batch", "summary_text", "unfinished", "used_pool",
    "write_error_text",
]
