"""The `callsim` command's entry point: the stop signals first, everything else after.

A console script imports its function's module before calling it, and importing
simulator.cli (argparse, the server's options, what they import) takes tens of
milliseconds.  A Ctrl-C in that time would print a KeyboardInterrupt traceback, and a
SIGTERM kill the process without a word.  This module imports nothing but the signal
handling (simulator/_stop_signals.py, standard library only), so `entry` takes both signals
over within the interpreter's first milliseconds, and only then imports the command line.
From there a signal at any instant ends the command in one line with exit status 130: a
run stops at its first window with its files complete, another command is interrupted.
"""

from __future__ import annotations

import signal
import sys
from types import ModuleType
from typing import NoReturn

from ._stop_signals import STOP_SIGNALS, StopSignals

__all__ = ["entry"]

EXIT_OK, EXIT_INTERRUPTED = 0, 130


def entry(command_line: ModuleType | None = None) -> NoReturn:
    """The `callsim` command: `cli.main`, then `cli.exit_now` on success, otherwise a normal
    exit with its status (130 for Ctrl-C or SIGTERM).

    `command_line`: simulator.cli when it is imported already (`python -m simulator.cli` runs
    it as `__main__`: importing it again would make a second copy); None imports it here.
    """
    stops = StopSignals()
    stops.take_over()
    cli = command_line
    try:
        if cli is None:
            from . import cli
        code = cli.main(stops=stops)
    except KeyboardInterrupt:  # a command other than run/check, or after a run's files are done
        print("callsim: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    finally:  # the command is over: a late Ctrl-C or SIGTERM must not break off the exit
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, signal.SIG_IGN)
    if cli is not None and (code == EXIT_OK or (code == EXIT_INTERRUPTED and stops.raising)):
        # Done, or a run stopped with its files complete and closed: the interpreter's teardown
        # would only free the engine's arrays one by one, ~0.3 s after a stop at 10^7 calls/h
        # (benchmarks/stop_latency.py) that a Ctrl-C should not wait out.
        cli.exit_now(code)
    sys.exit(code)  # a failed or interrupted command may have files open: let teardown flush them
