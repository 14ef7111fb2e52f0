"""cdrs.csv and cdrs.msgpack from the worker processes are the in-process writer's bytes."""

from __future__ import annotations

import contextlib
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
import pytest

from .test_outputs import START, TABLES, random_batch

from simulator.outputs import _cdr_workers
from simulator.outputs._cdr_workers import CdrFileWorker, CdrWorkers
from simulator.outputs import CdrWriter
from tests.scenarios import ENTERPRISE



def written(out: Path, batches: list, workers: "bool | CdrWorkers", **options) -> dict[str, bytes]:
    with CdrWriter(out, TABLES, START, "USD", workers=workers, **options) as writer:
        for batch in batches:
            writer.write(batch)
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "spawned"])
def test_workers_write_the_in_process_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: bool) -> None:
    monkeypatch.setattr(_cdr_workers, "forkable", lambda: True)  # pytest may have threads by now
    batches = [random_batch(3_000, seed=s) for s in range(3)]
    inline = written(tmp_path / "inline", batches, False, buffer_rows=1000)
    assert inline.keys() == {"cdrs.csv", "cdrs.msgpack"}
    assert len(inline["cdrs.csv"]) > 9_000 and len(inline["cdrs.msgpack"]) > 9_000
    workers = CdrWorkers(fork=fork)
    started = {w._proc._popen.method for w in (workers.csv, workers.msgpack)}
    assert started == {"fork" if fork else "spawn"}
    assert written(tmp_path / "workers", batches, workers, buffer_rows=1000) == inline


def test_workers_fork_only_when_asked_and_single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    for asked, allowed, method in ((False, True, "spawn"), (True, False, "spawn"), (True, True, "fork")):
        monkeypatch.setattr(_cdr_workers, "forkable", lambda: allowed)
        worker = CdrFileWorker("csv", fork=asked)
        try:
            assert worker._proc._popen.method == method
        finally:
            worker.close()


def test_workers_started_early_write_the_same_bytes(tmp_path: Path) -> None:
    """`callsim run` starts the workers before it has tables or file names (see _cdr_workers)."""
    batches = [random_batch(2_000, seed=s) for s in range(2)]
    workers = CdrWorkers()
    early = written(tmp_path / "early", batches, workers, buffer_rows=700)
    assert workers.closed
    assert early == written(tmp_path / "inline", batches, False, buffer_rows=700)
    workers.close()  # a second close (the CLI's `finally`) is harmless


def test_without_msgpack_the_workers_write_only_the_csv(tmp_path: Path) -> None:
    batches = [random_batch(500, seed=4)]
    workers = CdrWorkers()
    files = written(tmp_path / "w", batches, workers, write_msgpack=False)
    assert files == written(tmp_path / "i", batches, False, write_msgpack=False)
    assert list(files) == ["cdrs.csv"] and workers.closed


def test_an_empty_run_leaves_a_header_only_csv(tmp_path: Path) -> None:
    assert written(tmp_path / "w", [], True) == written(tmp_path / "i", [], False)
    assert (tmp_path / "w" / "cdrs.csv").read_bytes().count(b"\n") == 1


def test_workers_never_given_a_file_exit_when_closed(tmp_path: Path) -> None:
    """A run that fails before its outputs exist closes the early workers: they must not hang."""
    workers = CdrWorkers()
    workers.close()
    assert workers.closed and not workers.csv._proc.is_alive() and not workers.msgpack._proc.is_alive()
    assert list(tmp_path.iterdir()) == []


FORKABLE = """
import os, threading, time
from simulator.outputs._worker_process import forkable
print(forkable())
stop = threading.Event()
other = threading.Thread(target=stop.wait)
other.start()
print(forkable())
stop.set()
other.join()
# join() returns once the thread's Python code is done; the kernel drops the thread a moment
# later, and forkable() counts the kernel's threads: wait for that, not for a length of time
deadline = time.monotonic() + 30
while len(os.listdir("/proc/self/task")) > 1 and time.monotonic() < deadline:
    time.sleep(0.001)
print(forkable())
"""


def test_only_a_single_threaded_process_forks() -> None:
    """What `callsim run` relies on (no OpenBLAS thread, nothing started yet), in a fresh process:
    forkable() reads the thread count when asked, so it changes as threads come and go."""
    done = subprocess.run([sys.executable, "-c", FORKABLE], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"}, check=True)
    assert done.stdout.split() == ["True", "False", "True"]


ORPHAN = """
import os, sys
from simulator.outputs._cdr_workers import CdrWorkers
workers = CdrWorkers(fork=True)
assert workers.csv._proc._popen.method == "fork", workers.csv._proc._popen.method
print(workers.csv._proc.pid, workers.msgpack._proc.pid, flush=True)
os.kill(os.getpid(), 9)
"""


def test_forked_workers_exit_when_the_run_is_killed(tmp_path: Path) -> None:
    """A forked child has copies of the parent's ends of both pipes: it closes them, or with the
    parent SIGKILLed it would wait on its pipe for ever (and keep its sibling waiting too)."""
    run = subprocess.Popen([sys.executable, "-c", ORPHAN], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    pids = [int(p) for p in run.stdout.readline().split()]
    try:
        assert run.wait(timeout=60) == -signal.SIGKILL
        assert len(pids) == 2
        deadline = time.monotonic() + 30
        while any(_running(pid) for pid in pids):
            assert time.monotonic() < deadline, "an orphaned worker is still waiting on its pipe"
            time.sleep(0.05)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run.stdout.close()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_sigterm_to_the_process_group_stops_a_big_run_with_complete_files(tmp_path: Path) -> None:
    """`timeout callsim run ...` or a service manager signals the whole group: the file workers
    must outlive the parent's clean stop, so cdrs.msgpack holds every CDR of cdrs.csv."""
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


@pytest.mark.parametrize("fmt", _cdr_workers.FORMATS)
def test_a_worker_that_cannot_write_reports_the_write_error(tmp_path: Path, fmt: str) -> None:
    """The worker cannot create its file: the parent raises that OSError, and does not hang."""
    worker = CdrFileWorker(fmt)
    path = tmp_path / "no such dir" / f"cdrs.{fmt}"
    worker.open(path, TABLES, START, "USD")

    def write_all() -> None:
        for seed in range(20):  # more than the queue and the pipe hold
            worker.write(random_batch(2_000, seed=seed))
        worker.close()

    failure = failure_of(write_all)
    assert isinstance(failure, OSError) and failure.errno == errno.ENOENT and failure.filename == str(path)
    worker.close()  # closed already: a no-op
    assert not worker._proc.is_alive()


@pytest.mark.parametrize("fmt", _cdr_workers.FORMATS)
def test_a_worker_on_a_full_disk_reports_no_space(tmp_path: Path, fmt: str) -> None:
    (tmp_path / f"cdrs.{fmt}").symlink_to("/dev/full")
    worker = CdrFileWorker(fmt)
    worker.open(tmp_path / f"cdrs.{fmt}", TABLES, START, "USD")
    worker.write(random_batch(5_000, seed=1))
    failure = failure_of(worker.close)
    assert isinstance(failure, OSError) and failure.errno == errno.ENOSPC


def test_a_failure_in_the_sender_thread_is_reported_and_stops_the_worker(tmp_path: Path) -> None:
    """Whatever the sender thread trips on, close() raises and the worker does not linger."""
    worker = CdrFileWorker("msgpack")
    worker.open(tmp_path / "cdrs.msgpack", TABLES, START, "USD")
    worker.write(random_batch(100, seed=1))
    worker.write("not a batch")  # type: ignore[arg-type]  # fails in the thread, not here
    failure = failure_of(worker.close)
    assert isinstance(failure, RuntimeError) and "the callsim-msgpack process failed" in str(failure)
    assert not worker._proc.is_alive()


def test_one_failing_worker_still_lets_the_other_finish_its_file(tmp_path: Path) -> None:
    """CdrWriter.close raises the csv worker's error only after cdrs.msgpack is complete."""
    (tmp_path / "cdrs.csv").symlink_to("/dev/full")
    batches = [random_batch(3_000, seed=2)]
    workers = CdrWorkers()
    writer = CdrWriter(tmp_path, TABLES, START, "USD", workers=workers)
    for batch in batches:
        writer.write(batch)
    failure = failure_of(writer.close)
    assert isinstance(failure, OSError) and failure.errno == errno.ENOSPC
    assert workers.closed
    inline = written(tmp_path / "inline", batches, False)
    assert (tmp_path / "cdrs.msgpack").read_bytes() == inline["cdrs.msgpack"]


def test_when_both_workers_fail_the_csv_error_is_raised_after_both_closed(tmp_path: Path) -> None:
    for name in ("cdrs.csv", "cdrs.msgpack"):
        (tmp_path / name).symlink_to("/dev/full")
    workers = CdrWorkers()
    workers.csv.open(tmp_path / "cdrs.csv", TABLES, START, "USD")
    workers.msgpack.open(tmp_path / "cdrs.msgpack", TABLES, START, "USD")
    for worker in (workers.csv, workers.msgpack):
        worker.write(random_batch(5_000, seed=3))
    failure = failure_of(workers.close)
    assert isinstance(failure, OSError) and failure.errno == errno.ENOSPC
    assert failure.filename == str(tmp_path / "cdrs.csv")
    assert workers.closed and not workers.msgpack._proc.is_alive()
