"""A real Dask cluster on loopback for the sweep's integration tests: `dask scheduler` and two
`dask worker` processes, as an operator starts them (docs/sweep.md), on free ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 120  # a loaded CI machine may take a while to import distributed thrice


def dask_command() -> str:
    """The `dask` script of this Python (pip installs it beside the interpreter)."""
    beside = Path(sys.executable).with_name("dask")
    return str(beside) if beside.exists() else (shutil.which("dask") or "dask")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dask_cluster(workers: int, log_dir: Path) -> Iterator[str]:
    """Start a scheduler and `workers` single-threaded workers; yield the scheduler's address
    once every worker has joined (polled through a client); stop them all at the end."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = dask_command()
    commands = [[dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]]
    commands += [[dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                  "--no-dashboard", "--memory-limit", "2GiB"]] * workers
    processes = []
    try:
        for i, command in enumerate(commands):
            log = (log_dir / f"dask-{i}.log").open("wb")
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                              env=os.environ.copy(), start_new_session=True))
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # the scheduler may not listen yet: poll until it answers with every worker
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
