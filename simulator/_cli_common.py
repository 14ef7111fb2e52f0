"""What every `callsim` command shares: exit statuses, option types, help epilogs, the
scenario loading that weighs a scenario against this machine, and the exit without teardown.

`cli` builds the parser and dispatches; `_cli_server` adds `serve` and `loadgen`.  Both
import from here, so neither imports the other's module.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


#: The longest duration option (--metrics-linger, serve's timeouts): a day; a sleep of
#: ~1e308 s would overflow time_t.
MAX_SECONDS = 86_400


class UsageError(Exception):
    """A mistake in the command line, reported as one line with exit status 2."""


def port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f'expected a TCP port 0-65535, got "{text}"')
    return int(text)


def count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f'expected a whole number >= 0, got "{text}"')
    return int(text)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f'expected a number of seconds 0 to {MAX_SECONDS:,}, '
                                         f'got "{text}"')
    return value


def whole_number(least: int, most: int):
    """An argparse type: a whole number from `least` to `most`, else one line saying so."""
    def parse(text: str) -> int:
        if not text.isdigit() or not least <= int(text) <= most:
            raise argparse.ArgumentTypeError(f'expected a whole number {least:,} to {most:,}, '
                                             f'got "{text}"')
        return int(text)
    return parse


def path(text: str) -> Path:
    """A file or directory named on the command line: "" would be the current directory,
    whose summary.json or report.html a run or a report would replace."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty one")
    return Path(text)


def epilog(examples: Sequence[str], exits: Sequence[tuple[int, str]]) -> str:
    """A command's help epilog: examples to copy, then what each exit status means."""
    lines = ["examples:", *(f"  {example}" for example in examples), "", "exit status:"]
    lines += [textwrap.fill(meaning, 78, initial_indent=f"  {code:<4}", subsequent_indent=" " * 6)
              for code, meaning in exits]
    return "\n".join(lines)


#: Exit statuses every command that reads a scenario or its options shares.
EXIT_BAD_INPUT = (EXIT_USAGE, "bad input: the scenario or an option (one line per problem on stderr)")
def add_force_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="accept a scenario whose estimated memory or output exceeds this "
                             "machine (also CALLSIM_FORCE=1; README: Scenarios)")


def load_checked(path: Path, force: bool, out: Path | None = None, serving: bool = False,
                 edit=None):
    """The scenario at `path`, refused when its estimated work exceeds this machine (unless
    forced), with its warnings printed to stderr; raises `ScenarioError`.

    `serving`: `callsim serve` ignores traffic and calls, so only its users are weighed, and
    warnings about them would mislead.  `edit`: the `--set` overrides, a `sweep.OverrideEdit`
    (`scenario.load_scenario`); a problem they cause names its `--set`.
    """
    from dataclasses import replace

    from .scenario import ScenarioError, estimate, load_scenario

    machine = None if estimate.forced(force) else estimate.this_machine(out)
    if machine is not None and serving:
        machine = replace(machine, disk_bytes=None, runs_traffic=False)
    try:
        scenario = load_scenario(path, machine, edit)
    except ScenarioError as err:
        if edit is None:
            raise
        raise edit.blame(err, lambda: load_scenario(path, machine)) from None
    for warning in () if serving else scenario.warnings:
        print(f"warning: {warning.located()}", file=sys.stderr)
    return scenario


def exit_now(code: int) -> NoReturn:
    """Flush stdout and stderr and end the process without the interpreter's teardown.

    Only after a command that succeeded: every file it wrote is closed by then,
    and what the teardown would do is free numpy arrays and a big scenario's
    objects one by one, ~0.3 s after a month run that a user timing
    `callsim run` would wait out for nothing.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):  # `callsim ... | head`, or a closed stream
            pass
    os._exit(code)
