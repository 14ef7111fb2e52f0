"""A child process that writes output files, fed through a pipe by a thread of ours.

Used for what would otherwise hold the GIL that the rating needs: the CDR files
of a big run (`_cdr_workers`) and every file of `callsim serve`
(`_files.ServerFilesProcess`).  The parent queues messages (picklable
tuples) and CDR batches; a sender thread hands them to the pipe, batches as
raw columns (`send_bytes`: no pickled copy made under the GIL).  The child
runs a *job*, a module-level function reading that pipe.

Protocol: the job reads until it receives None, then closes its files and
answers ("closed", result).  If it cannot write (disk full, no such
directory) it answers ("failed", errno, strerror, filename) at once and
stops reading; the parent raises that as an OSError from a later call (a
`put` once the pipe has broken, or `close`).  A child that dies otherwise
(killed, crashed) is a `WorkerFailed`.
This module imports nothing heavy: the child imports what its job needs.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import multiprocessing.util
import os
import pickle
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from .._malloc import keep_freed_memory

if TYPE_CHECKING:
    from rating_core import CdrBatch, EventColumns

Job = Callable[[Connection], Any]  # reads the pipe up to None; returns what close() returns


def _work(conn: Connection, job: Job, nice: int) -> None:
    # Ctrl-C, and a SIGTERM sent to the process group (`timeout`, a service manager), reach
    # this process too: the parent stops cleanly on both and then closes the pipe, so this
    # process must drain it rather than die mid-record under a parent still writing to it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked by the parent from before the fork (`start`)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _name_process(multiprocessing.current_process().name)
    if nice:
        os.nice(nice)
    keep_freed_memory()
    try:
        try:
            result = job(conn)
        except OSError as err:  # the parent reports it as its own write error
            conn.send(("failed", err.errno, err.strerror, err.filename))
        else:
            conn.send(("closed", result))
    except (EOFError, OSError):  # the parent died or closed the pipe: nobody to tell
        pass
    # The files are closed and the parent told: skip the interpreter's teardown (~0.3 s of
    # freeing numpy arrays and a big scenario), which the parent would otherwise wait out in `join`.
    os._exit(0)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back from this thread, and so from a child started meanwhile.

    A child inherits the mask (through exec too, for a spawned one) and unblocks the signals
    only once it ignores them (`_work`): one that arrived while it was starting up (a fresh
    interpreter takes ~0.3 s) would otherwise kill it, and with it the run's files.  Here they
    stay pending and reach this process's handlers when the mask is restored.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _name_process(name: str) -> None:
    """Show the worker as `name` in ps and top, not as another "python" (Linux; 15 bytes)."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def send_batch(conn: Connection, batch: "CdrBatch") -> None:
    """A batch as its raw columns: no pickled copy of them made while holding the GIL."""
    import numpy as np

    from rating_core import CDR_DTYPES, CDR_FIELDS

    conn.send(len(batch))
    for name, dtype in zip(CDR_FIELDS, CDR_DTYPES):
        conn.send_bytes(np.ascontiguousarray(getattr(batch, name), dtype=dtype))


def receive_batch(conn: Connection) -> "CdrBatch":
    """The batch `send_batch` sent, once its length has been received."""
    import numpy as np

    from rating_core import CDR_DTYPES, CdrBatch

    return CdrBatch(*(np.frombuffer(conn.recv_bytes(), dtype=dtype) for dtype in CDR_DTYPES))


EVENTS = "events"  # the message announcing ledger event columns (`send_events`)


def send_events(conn: Connection, events: "EventColumns") -> None:
    """Ledger events as their raw columns, announced by (`EVENTS`, count), written straight
    from the arrays in one `writev`: no copy of them made under the GIL, and one wait to take
    it back (while the rating runs a Python loop, a thread waits up to the switch interval
    for it each time)."""
    import numpy as np

    conn.send((EVENTS, len(events)))
    columns = [memoryview(np.ascontiguousarray(getattr(events, name))).cast("B") for name in events.__slots__]
    _write_all(conn.fileno(), columns)


def _write_all(fd: int, buffers: list[memoryview]) -> None:
    """`os.writev` until every byte is written (a write a signal cut short returns its count)."""
    buffers = [b for b in buffers if len(b)]
    while buffers:
        written = os.writev(fd, buffers)
        while buffers and written >= len(buffers[0]):
            written -= len(buffers[0])
            buffers.pop(0)
        if buffers and written:
            buffers[0] = buffers[0][written:]


def receive_events(conn: Connection, count: int) -> "EventColumns":
    """The events `send_events` sent, once its (`EVENTS`, count) message has been received."""
    import numpy as np

    from rating_core import EventColumns

    sizes = [count * np.dtype(dtype).itemsize for dtype in _EVENT_DTYPES]
    data = bytearray(sum(sizes))
    view, got = memoryview(data), 0
    while got < len(data):
        read = os.readv(conn.fileno(), [view[got:]])
        if not read:
            raise EOFError("the pipe closed inside a message")
        got += read
    columns, offset = [], 0
    for dtype, size in zip(_EVENT_DTYPES, sizes):
        columns.append(np.frombuffer(data, dtype=dtype, count=count, offset=offset))
        offset += size
    return EventColumns(*columns)


# `EventColumns`' column types, in its __slots__ order (tests/simulator/outputs pin them)
_EVENT_DTYPES = ("int64", "int64", "int8", "int64", "int64", "int8")


def forkable() -> bool:
    """Whether a worker may be forked rather than spawned: fork exists here and this process has
    no other thread (the ones fork would not copy could hold locks the child then needs)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    try:
        with open("/proc/self/status") as status:
            threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    except (OSError, StopIteration, ValueError):  # not Linux: do not guess
        return False
    return threads == 1


class PickledOnce:
    """A value sent to several children, pickled once: it unpickles as the value itself.

    A run's string tables go to both CDR workers (1.6 MB pickled at 10,000 orgs, ~25 ms),
    from sender threads that hold the GIL the rating needs.
    """

    def __init__(self, value: object) -> None:
        self._pickled = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def __reduce__(self) -> tuple[Callable[[bytes], object], tuple[bytes]]:
        return pickle.loads, (self._pickled,)


class WorkerFailed(RuntimeError):
    """The child process died, or the pipe to it failed, without a write error to report."""


def write_error_text(err: OSError | WorkerFailed) -> str:
    """Why output could not be written, for a one-line report: the OS's reason and the file
    (when the error names one), or what became of the child process."""
    if isinstance(err, WorkerFailed):
        return str(err)
    where = f" ({err.filename})" if err.filename else ""
    return f"{err.strerror or err}{where}"


def _write_error(answer: object) -> OSError | None:
    """The child's report of a write error (`_work`), as the OSError it caught."""
    if isinstance(answer, tuple) and len(answer) == 4 and answer[0] == "failed":
        return OSError(answer[1], answer[2], answer[3])
    return None


class WorkerProcess:
    """The parent's end: queue messages and batches (`put`), then `close` for the job's result.

    The queue is short, so a child that falls behind holds the caller back
    (backpressure) rather than letting batches pile up in memory.  The sender
    thread exists because a `send` blocks until the child has read it, and
    the child reads only between batches.
    """

    def __init__(self, job: Job, *, name: str, queued: int, nice: int = 0, fork: bool = False) -> None:
        # spawn: a fresh interpreter, whatever threads this process has; fork (see `forkable`):
        # a copy of this process, which has imported everything already (~0.3 s less CPU)
        ctx = multiprocessing.get_context("fork" if fork else "spawn")
        self._conn, child = ctx.Pipe()
        # A forked child (this one, or a later worker's) gets this end too; it must close it, or
        # the child would never see the pipe close when this process dies.
        multiprocessing.util.register_after_fork(self, WorkerProcess._close_parent_end)
        self._proc = ctx.Process(target=_work, args=(child, job, nice), daemon=True, name=name)
        if fork:  # a child that failed would flush its copy of what we had not printed yet
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
        with _stop_signals_held():
            self._proc.start()
        child.close()
        self._name = name
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queued)
        self._failure: BaseException | None = None
        # started by the first put: until then this process may still fork another worker
        self._sender = threading.Thread(target=self._send_queued, daemon=True, name=f"{name}-send")
        self.closed = False
        # A parent that exits without close() (an error on the way) must not wait for a child
        # that ignores SIGTERM: multiprocessing's own exit hook would join it forever.
        atexit.register(self._kill)

    def _close_parent_end(self) -> None:
        self._conn.close()

    def _enqueue(self, item: object) -> None:
        if self._sender.ident is None:  # not started yet
            self._sender.start()
        self._queue.put(item)

    def _kill(self) -> None:
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()

    def put(self, item: "tuple | CdrBatch | EventColumns") -> None:
        """Queue a message (a tuple), a CDR batch or ledger events, whose columns the caller
        must not change."""
        if self.closed:
            raise WorkerFailed(f"the {self._name} process is closed")
        if self._failure is not None:
            self.close()  # raises: the child's write error if it reported one
        self._enqueue(item)

    def receive(self) -> Any:
        """The child's next message to us (a job may answer before the end); raises the child's
        write error as an OSError, and stops it, if that is what it sent."""
        try:
            answer = self._conn.recv()
        except (EOFError, OSError) as failure:  # it died before it could say why
            self._abandon()
            raise self._failed() from failure
        report = _write_error(answer)
        if report is not None:
            self._abandon()
            raise report
        return answer

    def _abandon(self) -> None:
        """Stop the child, and the sender thread, without waiting for what is queued."""
        self.closed = True
        atexit.unregister(self._kill)
        self._failure = self._failure or WorkerFailed("abandoned")  # the sender sends nothing more
        self._kill()
        self._enqueue(None)  # room comes: the sender drains (a send to the dead child fails fast)
        self._sender.join()
        self._conn.close()

    def _failed(self) -> WorkerFailed:
        return WorkerFailed(f"the {self._name} process failed (exit status {self._proc.exitcode})")

    def close(self) -> Any:
        """Send what is queued, wait for the files to be closed; the job's result.

        Raises the child's write error as an OSError, and RuntimeError if it failed otherwise.
        """
        if self.closed:
            return None
        self.closed = True
        atexit.unregister(self._kill)
        self._enqueue(None)
        self._sender.join()
        report = None
        try:
            # after a failed send the child may wait for columns that will never come: ask it
            # only for what it has already said (a write error of its own)
            answer = self._conn.recv() if self._failure is None or self._conn.poll(1) else None
            if not (isinstance(answer, tuple) and answer[:1] == ("closed",)):
                report = _write_error(answer)
                raise report or self._failure or RuntimeError(f"unexpected answer {answer!r}")
        except BaseException as failure:
            self._kill()  # it ignores SIGTERM (see _work)
            if failure is report:  # the child could not write its files: that is the error
                raise failure from None
            raise self._failed() from failure
        finally:
            self._conn.close()
        self._proc.join()
        return answer[1]

    def _send_queued(self) -> None:
        """Send what is queued, up to and including the None that closes; after a failure, drop it."""
        while True:
            item = self._queue.get()
            if self._failure is None:
                try:
                    if isinstance(item, tuple | None):
                        self._conn.send(item)
                    elif hasattr(item, "reason"):  # EventColumns (rating_core, not imported here)
                        send_events(self._conn, item)
                    else:
                        send_batch(self._conn, item)
                except BaseException as failure:  # the child died (or this thread failed):
                    self._failure = failure  # `put` and `close` report it; keep draining
            if item is None:
                return
