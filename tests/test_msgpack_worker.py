"""cdrs.msgpack from the worker process is the same stream as the in-process writer's."""

from __future__ import annotations

from pathlib import Path

from test_outputs import START, TABLES, random_batch

from simulator._msgpack_worker import MsgpackWorker
from simulator.outputs import CdrWriter


def test_worker_process_writes_the_same_bytes(tmp_path: Path) -> None:
    batches = [random_batch(3_000, seed=s) for s in range(3)]
    for name, worker in (("inline", False), ("worker", True)):
        with CdrWriter(tmp_path / name, TABLES, START, "USD", msgpack_worker=worker, buffer_rows=1000) as w:
            for batch in batches:
                w.write(batch)
    inline = (tmp_path / "inline" / "cdrs.msgpack").read_bytes()
    assert len(inline) > 9_000
    assert (tmp_path / "worker" / "cdrs.msgpack").read_bytes() == inline
    assert (tmp_path / "worker" / "cdrs.csv").read_bytes() == (tmp_path / "inline" / "cdrs.csv").read_bytes()


def test_a_worker_started_early_writes_the_same_bytes(tmp_path: Path) -> None:
    """`callsim run` starts the worker before it has tables or a file name (see _msgpack_worker)."""
    batches = [random_batch(2_000, seed=s) for s in range(2)]
    worker = MsgpackWorker()
    for name, how in (("inline", False), ("early", worker)):
        with CdrWriter(tmp_path / name, TABLES, START, "USD", msgpack_worker=how, buffer_rows=700) as w:
            for batch in batches:
                w.write(batch)
    assert worker.closed
    early = (tmp_path / "early" / "cdrs.msgpack").read_bytes()
    assert len(early) > 6_000 and early == (tmp_path / "inline" / "cdrs.msgpack").read_bytes()
    worker.close()  # a second close (the CLI's `finally`) is harmless


def test_a_worker_never_given_a_file_exits_when_closed(tmp_path: Path) -> None:
    """A run that fails before its outputs exist closes the early worker: it must not hang."""
    worker = MsgpackWorker()
    worker.close()
    assert worker.closed and not worker._proc.is_alive()
    assert list(tmp_path.iterdir()) == []
