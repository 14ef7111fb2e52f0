"""The output files of `callsim serve`: cdrs.csv, events.jsonl, summary.json (and cdrs.msgpack).

`ServerFiles` buffers what the engine produced, writes the files and builds
the summary; the server calls it from a worker thread, every 0.2 s,
so the formatting (polars, which releases the GIL for the heavy part) runs
beside the ticks.  A worker process was tried too: it spares the event loop
the GIL hand-overs, but its formatting bursts then compete for the two cores
with the server and the load generator, and p99 setup latency at 20,000
setups/s was 2-4 ms worse than with the thread.  Tried again on 2026-11-26 with
the columns sent raw (no pickling under the GIL): no clear change either way
(docs/server.md §4).
"""

from __future__ import annotations

from datetime import datetime
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
