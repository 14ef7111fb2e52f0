"""events.jsonl written by the cdrs.csv worker process (`EventWriter(worker=...)`) holds the bytes
the in-process writer writes: every kind, edge money, org ids that need escaping, writes of
any size (cut into `EVENT_CHUNK_ROWS` messages), and whole runs."""

from __future__ import annotations

import errno
import os
import random
from multiprocessing import Pipe
from pathlib import Path

import numpy as np
import pytest
import trio

from rating_core import EventColumns, Tables
from simulator.outputs import _cdr_workers
from simulator.outputs import CdrWorkers, CdrWriter, EventWriter
from simulator.outputs._worker_process import receive_events, send_events
from simulator.run import RunOptions, run_scenario
from simulator.scenario import parse_scenario
from tests.simulator.test_run_windows import RECHARGING

from .test_event_lines import ORGS, START, random_events

TABLES = Tables(ORGS, (), (), (), (), ())


def _events_jsonl(out: Path, parts: list[EventColumns], workers: CdrWorkers | None) -> bytes:
    cdrs = CdrWriter(out, TABLES, START, "USD", workers=workers or False,
                     write_msgpack=workers is None or workers.msgpack is not None)
    events = EventWriter(out, TABLES, START, worker=workers.csv if workers else None)
    for part in parts:
        events.write(part)
    cdrs.close()  # the workers' files are complete once they are closed
    events.close()
    return (out / "events.jsonl").read_bytes()


@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cdr_workers, "forkable", lambda: True)  # pytest may have threads by now


def test_the_worker_writes_the_in_process_lines(tmp_path: Path, forked: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cdr_workers, "EVENT_CHUNK_ROWS", 700)  # writes of several messages
    rng = random.Random(3)
    parts = [EventColumns.from_events(random_events(rng, n)) for n in (1, 0, 2_000, 699, 700, 701, 3)]
    inline = _events_jsonl(tmp_path / "inline", parts, None)
    assert inline.count(b"\n") == 2_000 + 699 + 700 + 701 + 4
    assert _events_jsonl(tmp_path / "worker", parts, CdrWorkers(fork=True)) == inline


def test_a_run_without_events_leaves_an_empty_file(tmp_path: Path, forked: None) -> None:
    assert _events_jsonl(tmp_path, [], CdrWorkers(fork=True, msgpack=False)) == b""


def test_the_worker_reports_a_write_error_naming_events_jsonl(tmp_path: Path, forked: None) -> None:
    (tmp_path / "events.jsonl").symlink_to("/dev/full")
    workers = CdrWorkers(fork=True, msgpack=False)
    cdrs = CdrWriter(tmp_path, TABLES, START, "USD", workers=workers, write_msgpack=False)
    events = EventWriter(tmp_path, TABLES, START, worker=workers.csv)
    events.write(EventColumns.from_events(random_events(random.Random(1), 5_000)))
    with pytest.raises(OSError) as failure:
        cdrs.close()
    assert failure.value.errno == errno.ENOSPC and failure.value.filename == str(tmp_path / "events.jsonl")


def test_only_the_csv_worker_writes_events(tmp_path: Path) -> None:
    worker = _cdr_workers.CdrFileWorker("msgpack")
    try:
        with pytest.raises(ValueError, match="csv worker"):
            worker.open_events(tmp_path / "events.jsonl")
    finally:
        worker.close()


def test_event_columns_cross_the_pipe_unchanged() -> None:
    events = EventColumns.from_events(random_events(random.Random(5), 1_000))
    sending, receiving = Pipe()
    with sending, receiving:
        send_events(sending, events.take(slice(100, 900)))  # a view, as the chunks are
        message = receiving.recv()
        got = receive_events(receiving, message[1])
    assert message == ("events", 800)
    for name in EventColumns.__slots__:
        want = getattr(events, name)[100:900]
        assert getattr(got, name).dtype == want.dtype and np.array_equal(getattr(got, name), want)


def _run(out: Path, **options) -> dict[str, bytes]:
    trio.run(run_scenario, parse_scenario(RECHARGING), RunOptions(out_dir=out, handle_sigint=False, **options))
    return {name: (out / name).read_bytes() for name in ("cdrs.csv", "cdrs.msgpack", "events.jsonl")}


def test_a_run_with_workers_writes_the_in_process_bytes(tmp_path: Path, forked: None) -> None:
    inline = _run(tmp_path / "inline", cdr_worker_processes=False)
    assert inline["events.jsonl"].count(b"recharge_succeeded") > 10 * inline["cdrs.csv"].count(b"\n")
    assert _run(tmp_path / "workers", cdr_workers=CdrWorkers(fork=True)) == inline


def test_event_columns_cross_the_pipe_whole_when_writes_are_cut_short(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write cut short by a signal returns its count: the rest follows, in order."""
    writev = os.writev
    monkeypatch.setattr(os, "writev", lambda fd, buffers: writev(fd, [bytes(buffers[0])[:777]]))
    events = EventColumns.from_events(random_events(random.Random(6), 300))
    sending, receiving = Pipe()
    with sending, receiving:
        send_events(sending, events)
        got = receive_events(receiving, receiving.recv()[1])
    assert list(got) == list(events)


def test_events_go_to_the_worker_in_messages_of_at_most_event_chunk_rows(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Each message is one of the worker's few queued items: a window's events, however many,
    wait in the parent as views of its columns, a bounded number of chunks ahead of the child."""
    monkeypatch.setattr(_cdr_workers, "EVENT_CHUNK_ROWS", 100)
    worker = _cdr_workers.CdrFileWorker("csv")
    sent: list[EventColumns] = []
    monkeypatch.setattr(worker, "put", sent.append)
    events = EventColumns.from_events(random_events(random.Random(8), 250))
    worker.write_events(events)
    assert [len(chunk) for chunk in sent] == [100, 100, 50]
    assert all(np.shares_memory(chunk.time_ms, events.time_ms) for chunk in sent)  # no copies
    assert _cdr_workers.QUEUED_BATCHES == 4  # what the parent holds ahead of the child, in chunks
    monkeypatch.undo()
    worker.close()
