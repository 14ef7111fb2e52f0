"""A real Dask cluster on loopback for the sweep's integration tests: `dask scheduler` and two
`dask worker` processes, as an operator starts them (docs/sweep.md).

No port is chosen here: a port found free and handed over later can be taken meanwhile by any
process on the machine.  The scheduler binds port 0 and writes the address it got to its
`--scheduler-file`; the workers read that file (they wait for it) and bind ports of the system's
choosing too."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 120  # a loaded CI machine may take a while to import distributed thrice
POLL_S = 0.05


def dask_command() -> str:
    """The `dask` script of this Python (pip installs it beside the interpreter)."""
    beside = Path(sys.executable).with_name("dask")
    return str(beside) if beside.exists() else (shutil.which("dask") or "dask")


def _scheduler_address(scheduler_file: Path, scheduler: subprocess.Popen, deadline: float,
                       log_dir: Path) -> str:
    """The address in the scheduler file, once the scheduler has written all of it (it writes
    the file in place, so a read may see it half written: read again)."""
    while True:
        try:
            return str(json.loads(scheduler_file.read_text())["address"])
        except (OSError, ValueError, KeyError):
            pass
        if scheduler.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Dask scheduler did not write {scheduler_file}: "
                               f"see {log_dir}/dask-0.log")
        time.sleep(POLL_S)


@contextlib.contextmanager
def dask_cluster(workers: int, log_dir: Path) -> Iterator[str]:
    """Start a scheduler and `workers` single-threaded workers; yield the scheduler's address
    once every worker has joined (polled through a client); stop them all at the end."""
    from distributed import Client

    scheduler_file = log_dir / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)  # the address must be this scheduler's, not a stale one
    dask = dask_command()
    commands = [[dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                 "--scheduler-file", str(scheduler_file)]]
    commands += [[dask, "worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                  "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--memory-limit", "2GiB"]] * workers
    processes, logs = [], []
    try:
        for i, command in enumerate(commands):
            logs.append(log := (log_dir / f"dask-{i}.log").open("wb"))
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                              env=os.environ.copy(), start_new_session=True))
        deadline = time.monotonic() + START_TIMEOUT_S
        address = _scheduler_address(scheduler_file, processes[0], deadline, log_dir)
        while True:  # poll until the scheduler answers with every worker
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    raise RuntimeError(f"the Dask cluster did not start: see {log_dir}/dask-*.log") from None
        yield address
    finally:
        for p in reversed(processes):
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
