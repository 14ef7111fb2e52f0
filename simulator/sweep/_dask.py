"""Many runs on Dask distributed: a LocalCluster of worker processes, or a running cluster.

Why Dask: a sweep is thousands of independent runs of a few seconds each, and the same sweep
should run on a laptop and on a cluster without a second code path.  Dask's futures give
both (a `LocalCluster` of one single-threaded worker process per core, or
`Client("tcp://HOST:8786")`), with its scheduler placing runs, moving results and
re-running the runs of a worker that died; callsim only submits `run_one` per RunSpec.

- The scenario's text goes to the workers once (`Client.scatter(broadcast=True)`); each run
  receives a reference to it, and each worker loads a grid point once (`load_point`'s cache).
- Runs are pure: a run's RunSummary depends on the text, the point and the seed only, so a
  sweep gives the same results locally, on a cluster, or run by run (`scheduler="sync"`: in
  this process, without Dask, as `callsim run --seed S --set ...` would).
- A run that raises is reported with its seed and point (`RunFailure`) and the others go on;
  a sweep in which no run finishes for `stall_timeout_s` gives up on the runs left (a
  cluster whose workers are gone would otherwise wait forever).
- Ctrl-C cancels the runs not finished and returns those that did (`interrupted=True`).
  Worker processes of the LocalCluster ignore SIGINT, which the terminal sends to the whole
  process group: the sweep shuts them down itself, without their tracebacks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._malloc import keep_freed_memory
from ._grid import Point, RunSpec
from ._keep import run_dir, write_run
from ._progress import RunProgress
from ._run_one import load_point, run_one
from ._summary import RunSummary

SYNC = "sync"
"""`scheduler=SYNC`: every run in this process, one after another, without Dask."""
STALL_TIMEOUT_S = 900.0  # no run finished for this long: the runs left are given up
CONNECT_TIMEOUT_S = 20.0  # to reach a --scheduler, and for its first worker to be there
_POLL_S = 0.5  # how often the waiting loop looks at the clock (Ctrl-C is immediate anyway)
#: LocalCluster workers: no statistical profiler (it samples the running task every 10 ms, for a
#: dashboard the sweep does not start) and slower memory and system monitors.  A run's CPU time
#: in a worker went from 0.172-0.174 s to 0.156-0.159 s (7-day enterprise_month, one worker).
_WORKER_CONFIG = {"distributed.worker.profile.enabled": False, "distributed.worker.profile.interval": "1s",
                  "distributed.worker.memory.monitor-interval": "1s",
                  "distributed.admin.system-monitor.interval": "2s"}


class ClusterError(Exception):
    """The Dask scheduler cannot be reached, or has no workers: one line for the user."""


@dataclass(frozen=True)
class RunFailure:
    """A run that did not finish: its spec and what went wrong, in one line."""

    spec: RunSpec
    problem: str

    def __str__(self) -> str:
        setting = ", ".join(str(o) for o in self.spec.point) or "the scenario as written"
        return f"run with seed {self.spec.seed} at {setting}: {self.problem}"


@dataclass
class Cluster:
    """A Dask client kept open for several `run_many` calls (`open_cluster`)."""

    client: Any
    scheduler: str | None
    workers: int


@contextlib.contextmanager
def open_cluster(scheduler: str | None = None, workers: int | None = None) -> Iterator[Cluster]:
    """A LocalCluster (or a client of `scheduler`) for several `run_many(..., cluster=)` calls,
    so that a search of several stages starts its worker processes once.

    Raises ClusterError as `run_many` does; the cluster is shut down on leaving.
    """
    with _quiet_dask(), _client(scheduler, workers) as client:
        yield Cluster(client, scheduler, len(client.scheduler_info()["workers"]))


@dataclass
class SweepResult:
    """What a sweep gave: `runs` finished (in the order of the specs asked for), `failures`,
    and whether Ctrl-C stopped it (`interrupted`: the runs not listed were cancelled)."""

    specs: list[RunSpec]
    runs: list[RunSummary] = field(default_factory=list)
    failures: list[RunFailure] = field(default_factory=list)
    interrupted: bool = False
    workers: int = 1
    wall_s: float = 0.0
    on_dask: bool = False


def read_scenario_text(path: Path) -> str:
    """The scenario file's text as the loader reads it (UTF-8, an editor's BOM tolerated)."""
    return path.read_bytes().decode("utf-8-sig")


def run_many(scenario_path: Path, specs: Sequence[RunSpec], *, scheduler: str | None = None,
             workers: int | None = None, progress: bool = False, keep_runs: Path | None = None,
             stall_timeout_s: float = STALL_TIMEOUT_S, run_bytes: float | None = None,
             cluster: Cluster | None = None) -> SweepResult:
    """Run every spec of the sweep and return their summaries.

    Args:
      scenario_path: the scenario file; its text is what the workers load.
      specs: the runs (`run_specs(points, seeds)`).
      scheduler: None for a LocalCluster of `workers` processes (default: one per core),
        `"tcp://HOST:8786"` for a running Dask cluster, `SYNC` for this process alone.
      workers: LocalCluster: how many worker processes; a running cluster: wait until this
        many workers are there (default: at least one).
      progress: show a progress bar counting runs on stderr.
      keep_runs: also write each run's files there, as `callsim run` would (`_keep`).
      stall_timeout_s: give up the runs left when none finishes for this long.
      run_bytes: the memory a run takes in a worker; a running cluster whose workers have
        less (their memory limit) is refused before any run (ClusterError).
      cluster: an `open_cluster` to run on (then `scheduler` and `workers` are its own).

    Returns:
      A SweepResult; runs that failed or timed out are in `failures`, never raised.

    Raises:
      ScenarioError: a grid point makes the scenario invalid (checked before any run).
      ClusterError: the scheduler cannot be reached, has no workers, or too little memory.
      OSError: the scenario file cannot be read.
    """
    text = read_scenario_text(scenario_path)
    source = str(scenario_path)
    points: dict[Point, int] = {}
    for spec in specs:
        if spec.point not in points:
            load_point(text, source, spec.point)  # every point checked before the first run
            points[spec.point] = len(points)
    keep = None if keep_runs is None else {i: run_dir(keep_runs, points[s.point], s.seed) for i, s in enumerate(specs)}
    result = SweepResult(list(specs))
    started = time.perf_counter()
    try:
        if cluster is not None:
            with _quiet_dask():
                _run_on_dask(text, source, specs, keep, progress, cluster, stall_timeout_s, run_bytes, result)
        elif scheduler == SYNC:
            _run_here(text, source, specs, keep, progress, result)
        else:
            with open_cluster(scheduler, workers) as opened:
                _run_on_dask(text, source, specs, keep, progress, opened, stall_timeout_s, run_bytes, result)
    finally:
        result.wall_s = time.perf_counter() - started
    return result


def run_task(scenario_text: str, source_name: str, spec: RunSpec, keep_dir: Path | None) -> RunSummary:
    """What a worker runs for one spec: `run_one`, and the files too with --keep-runs.

    The process's malloc first keeps freed memory (simulator/_malloc.py), as `callsim run`
    does: a Dask worker is a process callsim's entry points never set up, and a month of
    enterprise_month took 0.81 s there with glibc's defaults against 0.48 s with the run's
    settings (page faults for the arrays every window allocates and frees).
    """
    keep_freed_memory()
    summary = run_one(scenario_text, source_name, spec)
    if keep_dir is not None:
        write_run(scenario_text, source_name, spec, keep_dir)
    return summary


def _run_here(text: str, source: str, specs: Sequence[RunSpec], keep: dict[int, Path] | None,
              progress: bool, result: SweepResult) -> None:
    done: dict[int, RunSummary] = {}
    with RunProgress(len(specs), progress, "in this process") as bar:
        try:
            for i, spec in enumerate(specs):
                try:
                    done[i] = run_task(text, source, spec, keep[i] if keep else None)
                except Exception as err:  # noqa: BLE001 -- reported with its run, as on Dask
                    result.failures.append(RunFailure(spec, _one_line(err)))
                bar.advance(failed=i not in done)
        except KeyboardInterrupt:
            result.interrupted = True
    result.runs = [done[i] for i in sorted(done)]


def _run_on_dask(text: str, source: str, specs: Sequence[RunSpec], keep: dict[int, Path] | None,
                 progress: bool, cluster: Cluster, stall_timeout_s: float, run_bytes: float | None,
                 result: SweepResult) -> None:
    from distributed import wait

    try:
        from distributed.client import FuturesCancelledError
    except ImportError:  # before distributed 2024.12 `wait` does not raise for cancelled futures
        FuturesCancelledError = ()  # type: ignore[assignment]  # noqa: N806

    done: dict[int, RunSummary] = {}
    client, scheduler = cluster.client, cluster.scheduler
    info = client.scheduler_info()["workers"]
    result.workers, result.on_dask = len(info), True
    if scheduler is not None and run_bytes:
        _check_worker_memory(scheduler, info, run_bytes)
    where = f"on {result.workers} workers" + (f" at {scheduler}" if scheduler else "")
    with RunProgress(len(specs), progress, where) as bar:
        # a key of its own (hash=False): the same text scattered by an earlier sweep on this
        # cluster may be being forgotten, which would cancel runs depending on it
        text_ref = client.scatter(text, broadcast=True, hash=False)
        futures = {client.submit(run_task, text_ref, source, spec, keep[i] if keep else None,
                                 pure=False, key=f"callsim-sweep-run-{i}-{os.getpid()}-{time.time_ns()}"): i
                   for i, spec in enumerate(specs)}
        pending = set(futures)
        last_done = time.monotonic()
        try:
            while pending:
                try:
                    finished, pending = wait(pending, timeout=_POLL_S, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    if time.monotonic() - last_done > stall_timeout_s:
                        _give_up(client, pending, futures, specs, stall_timeout_s, result)
                        pending = set()
                    continue
                except FuturesCancelledError:  # the cluster cancelled some: failures like the others
                    finished = {f for f in pending if f.status != "pending"}
                    pending -= finished
                last_done = time.monotonic()
                for future in finished:
                    i = futures[future]
                    if future.status == "finished":
                        done[i] = future.result()
                    else:
                        result.failures.append(RunFailure(specs[i], _future_problem(future)))
                    future.release()
                    bar.advance(failed=i not in done)
        except KeyboardInterrupt:
            result.interrupted = True
            with contextlib.suppress(Exception):
                client.cancel(list(pending))
    result.runs = [done[i] for i in sorted(done)]


def _check_worker_memory(scheduler: str, workers: dict[str, dict], run_bytes: float) -> None:
    """Refuse a cluster whose smallest worker memory limit is below a run's estimate."""
    limits = [w.get("memory_limit") or 0 for w in workers.values()]
    smallest = min((m for m in limits if m), default=0)
    if smallest and smallest < run_bytes:
        raise ClusterError(f"--scheduler {scheduler}: a run needs ~{run_bytes / (1 << 30):.1f} GiB, "
                           f"its smallest worker may use {smallest / (1 << 30):.1f} GiB (dask worker "
                           "--memory-limit)")


def _give_up(client: Any, pending: set, futures: dict, specs: Sequence[RunSpec], stall_timeout_s: float,
             result: SweepResult) -> None:
    for future in pending:
        result.failures.append(RunFailure(specs[futures[future]], f"timed out: no run finished in "
                                                                  f"{stall_timeout_s:.0f} s"))
    with contextlib.suppress(Exception):
        client.cancel(list(pending))


def _future_problem(future: Any) -> str:
    if future.status == "cancelled":
        return "cancelled by the cluster"
    try:
        return _one_line(future.exception(timeout=CONNECT_TIMEOUT_S))
    except Exception as err:  # noqa: BLE001 -- the error itself could not be fetched
        return _one_line(err)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if scheduler is None:
        import dask

        # the worker processes inherit the ignored SIGINT (see the module docstring) and the config
        with _sigint_ignored(), dask.config.set(_WORKER_CONFIG):
            cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None, silence_logs=logging.CRITICAL)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    _check_reachable(scheduler)
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as err:
        raise ClusterError(f"--scheduler {scheduler}: cannot reach the Dask scheduler "
                           f"({_one_line(err)})") from None
    try:
        try:
            client.wait_for_workers(workers or 1, timeout=CONNECT_TIMEOUT_S)
        except TimeoutError:
            there = len(client.scheduler_info()["workers"])
            raise ClusterError(f"--scheduler {scheduler}: {there} workers there after "
                               f"{CONNECT_TIMEOUT_S:.0f} s, {workers or 1} wanted") from None
        yield client
    finally:
        client.close()


def _check_reachable(scheduler: str) -> None:
    """Raise ClusterError at once when nothing answers at the scheduler's host and port: Dask's
    Client retries a refused connection until its timeout, then says only "Timed out"."""
    from distributed.comm import get_address_host_port

    try:
        host, port = get_address_host_port(scheduler)
    except ValueError:
        return  # no host and port to try (another transport, a malformed address): Client says
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except ConnectionRefusedError:
        problem = f"connection refused: no scheduler listens on {host} port {port}"
    except socket.gaierror:
        problem = f"unknown host {host}"
    except TimeoutError:
        problem = f"no answer from {host} port {port} in {CONNECT_TIMEOUT_S:.0f} s"
    except OSError as err:
        problem = err.strerror or _one_line(err)
    else:
        return
    raise ClusterError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({problem})")


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: nothing to hand down
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """No Dask log lines or warnings on the terminal: the sweep reports what matters itself
    (a failed run, an unreachable scheduler), and a worker shutting down logs tracebacks."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
