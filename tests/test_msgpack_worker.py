"""cdrs.msgpack from the worker process is the same stream as the in-process writer's."""

from __future__ import annotations

from pathlib import Path

from test_outputs import START, TABLES, random_batch

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
