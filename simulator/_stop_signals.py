"""Ctrl-C and SIGTERM during `callsim run`: noted whenever they come, acted on where it is safe.

Python's own Ctrl-C raises KeyboardInterrupt at whatever line the main thread
is on: inside Trio's task groups it surfaces as a `BaseExceptionGroup`
traceback, between two writes it leaves a file torn, and a second Ctrl-C
lands in the clean-up of the first.  SIGTERM's default kills the process
with its buffers unwritten.  `StopSignals` takes both signals over for the
whole command instead (loading, forking the file workers, rating, writing):

* Until the run's files are complete, a signal only records itself and wakes
  the run's event loop (`waking`); the run stops at its next window
  boundary and writes every file completely (simulator/run.py).  A signal
  that comes before the run has started stops it at its first window.
* After that (`raise_next`), the first signal raises KeyboardInterrupt, so
  what is left (printing the summary, checking expectations, lingering to be
  scraped) stops where it is.
* Either way only the first signal counts: repeated Ctrl-C or a SIGTERM on
  top do nothing more, so they cannot interrupt the clean-up of the first.

Trio delivers KeyboardInterrupt itself only while SIGINT has Python's default
handler, so it stays out of the way while these handlers are installed.
Forked file workers inherit them until they ignore both signals
(`_worker_process`): a signal meant for the whole process group only marks
the child's copy, which nothing reads.

Every other command (sweep, import, report, ...) stops by KeyboardInterrupt, which it
handles where its outputs are safe: `hand_back` gives SIGINT back to Python and makes
SIGTERM raise KeyboardInterrupt the same way.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

__all__ = ["STOP_SIGNALS", "StopSignals", "unwake_at_exit"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def unwake_at_exit(run: Callable[..., Awaitable[T]], *args: object) -> T:
    """`await run(*args)`, then stop signals waking Trio's event loop: for `trio.run`.

    A signal writes a byte to the socket Trio set with `signal.set_wakeup_fd`, and
    Trio, as its run ends, closes that socket before it unsets it: a signal in
    between (a repeated Ctrl-C or SIGTERM while the run stops) makes Python print
    "Exception ignored when trying to write to the signal wakeup fd" and a
    BrokenPipeError.  Unset first, the loop is no longer woken; the handlers above
    still note the signal.
    """
    try:
        return await run(*args)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.set_wakeup_fd(-1)


class StopSignals:
    """The stop requests of one command; `installed()` makes it the handler of both signals."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None  # the first signal, if one came
        self._wake: Callable[[], None] | None = None
        self._raise = False
        self._previous: dict[signal.Signals, object] = {}

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[StopSignals]:
        """Handle SIGINT and SIGTERM with a new StopSignals, and restore the previous handlers
        on exit.  Outside the main thread, where Python allows no handlers, it only yields one
        that never receives anything."""
        stops = cls()
        if threading.current_thread() is not threading.main_thread():
            yield stops
            return
        previous = stops.take_over()
        try:
            yield stops
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def take_over(self) -> dict[signal.Signals, object]:
        """Make this the handler of both signals (main thread only); return the handlers it
        replaces, which `hand_back` restores.  The `callsim` entry point calls it first thing
        (simulator/_entry.py), for the whole command."""
        self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        return dict(self._previous)

    def hand_back(self) -> None:
        """Give the signals back to Python's Ctrl-C, for a command that stops by
        KeyboardInterrupt (sweep, import, ...): SIGINT gets the handler `take_over` replaced,
        SIGTERM raises KeyboardInterrupt as Ctrl-C does (its default would kill the process
        with nothing written and its --out directory still claimed).  Then raise
        KeyboardInterrupt if a signal came meanwhile, as Python's handler would have."""
        for s, handler in self._previous.items():
            signal.signal(s, signal.default_int_handler if s == signal.SIGTERM else handler)
        if self.received is not None:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def waking(self, wake: Callable[[], None]) -> Iterator[None]:
        """Call `wake` on the first signal while inside, or at once if one came already.

        `wake` runs in a signal handler: it must only hand the request over (Trio's
        `run_sync_soon` is made for that).
        """
        self._wake = wake
        try:
            if self.received is not None:
                wake()
            yield
        finally:
            self._wake = None

    def raise_next(self) -> None:
        """From now on the first signal raises KeyboardInterrupt (none does if one came already).

        A run calls it once every file it wrote is complete and closed (`raising` then says so).
        """
        self._raise = True

    @property
    def raising(self) -> bool:
        """Whether `raise_next` was called: for a run, its files are complete and closed."""
        return self._raise

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # stopping already: once is enough
        self.received = signal.Signals(signum)
        if self._raise:
            raise KeyboardInterrupt
        if self._wake is not None:
            self._wake()
