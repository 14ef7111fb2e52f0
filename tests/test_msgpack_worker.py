"""cdrs.msgpack from the worker process is the same stream as the in-process writer's."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack

from test_outputs import START, TABLES, random_batch

from simulator._msgpack_worker import MsgpackWorker
from simulator.outputs import CdrWriter

ENTERPRISE = Path(__file__).resolve().parents[1] / "scenarios" / "enterprise_month.toml"


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


def test_sigterm_to_the_process_group_stops_a_big_run_with_complete_files(tmp_path: Path) -> None:
    """`timeout callsim run ...` or a service manager signals the whole group: the msgpack
    worker must outlive the parent's clean stop, so cdrs.msgpack holds every CDR of cdrs.csv."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "simulator.cli", "run", str(ENTERPRISE), "--out", str(out),
           "--speed", "20000", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        csv = out / "cdrs.csv"
        while not (csv.exists() and csv.stat().st_size > 100_000):  # rows are being written
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False
    rows = (out / "cdrs.csv").read_bytes().count(b"\n") - 1
    with open(out / "cdrs.msgpack", "rb") as stream:
        records = sum(1 for _ in msgpack.Unpacker(stream))
    assert rows == records == summary["total"]["calls"] > 0


def failure_of(action, within_s: float = 60) -> BaseException:
    """What `action()` raised, failing (not hanging) if it does not return in time."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as failure:
            raised.append(failure)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within_s)
    assert not thread.is_alive(), "hung"
    assert len(raised) == 1, "did not fail"
    return raised[0]


def test_a_worker_that_cannot_write_reports_the_write_error(tmp_path: Path) -> None:
    """The worker cannot create its file: the parent raises that OSError, and does not hang."""
    worker = MsgpackWorker()
    path = tmp_path / "no such dir" / "cdrs.msgpack"
    worker.open(path, TABLES, START, "USD")

    def write_all() -> None:
        for seed in range(20):  # more than the queue and the pipe hold
            worker.write(random_batch(2_000, seed=seed))
        worker.close()

    failure = failure_of(write_all)
    assert isinstance(failure, OSError) and failure.errno == errno.ENOENT and failure.filename == str(path)
    worker.close()  # closed already: a no-op
    assert not worker._proc.is_alive()


def test_a_worker_on_a_full_disk_reports_no_space(tmp_path: Path) -> None:
    (tmp_path / "cdrs.msgpack").symlink_to("/dev/full")
    worker = MsgpackWorker()
    worker.open(tmp_path / "cdrs.msgpack", TABLES, START, "USD")
    worker.write(random_batch(5_000, seed=1))
    failure = failure_of(worker.close)
    assert isinstance(failure, OSError) and failure.errno == errno.ENOSPC


def test_a_failure_in_the_sender_thread_is_reported_and_stops_the_worker(tmp_path: Path) -> None:
    """Whatever the sender thread trips on, close() raises and the worker does not linger."""
    worker = MsgpackWorker()
    worker.open(tmp_path / "cdrs.msgpack", TABLES, START, "USD")
    worker.write(random_batch(100, seed=1))
    worker.write("not a batch")  # type: ignore[arg-type]  # fails in the thread, not here
    failure = failure_of(worker.close)
    assert isinstance(failure, RuntimeError) and "the callsim-msgpack process failed" in str(failure)
    assert not worker._proc.is_alive()
