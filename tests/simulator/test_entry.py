"""The `callsim` console script: a signal while it starts (importing the command line) ends
it in one line with exit status 130, never a traceback or a death by the signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from ..scenarios import REPO
QUICKSTART = REPO / "scenarios" / "quickstart.toml"

# Runs pyproject's `callsim` entry point as the console script does (import its module, call
# its function), with a signal sent to itself while simulator.cli is being imported: the
# instant a Ctrl-C lands in most often, ~50 ms of start-up.
CONSOLE_SCRIPT = textwrap.dedent("""\
    import importlib, importlib.abc, os, signal, sys

    sig = signal.Signals[sys.argv.pop(1)]
    module, function = sys.argv.pop(1).split(":")

    class SignalOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "simulator.cli":
                sys.meta_path.remove(self)
                os.kill(os.getpid(), sig)
            return None

    sys.meta_path.insert(0, SignalOnImport())
    sys.exit(getattr(importlib.import_module(module), function)())
""")


def _console_script() -> str:
    with open(REPO / "pyproject.toml", "rb") as project:
        return tomllib.load(project)["project"]["scripts"]["callsim"]


def _callsim(sig: signal.Signals, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", CONSOLE_SCRIPT, sig.name, _console_script(), *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_callsim_starts_a_run_stops_it_in_one_line(tmp_path: Path, sig) -> None:
    done = _callsim(sig, "run", str(QUICKSTART), "--out", str(tmp_path), "--quiet")
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"callsim: stopped by {sig.name}")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"] is False and summary["total"]["calls"] == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_callsim_starts_another_command_interrupts_it(sig) -> None:
    done = _callsim(sig, "validate", str(QUICKSTART))
    assert (done.returncode, done.stderr, done.stdout) == (130, "callsim: interrupted\n", "")


def test_python_m_simulator_is_the_callsim_command() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "simulator", "validate", str(QUICKSTART)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith(f"{QUICKSTART}: ok"), done.stderr


def _entry_with(monkeypatch: pytest.MonkeyPatch, main) -> tuple[str, int]:
    """How `entry` ends when `cli.main` is `main`: ("exit_now" or "sys.exit", status)."""
    from simulator import _entry, cli

    class Ended(Exception):
        pass

    def exit_now(code: int):
        raise Ended("exit_now", code)

    monkeypatch.setattr(cli, "main", main)
    monkeypatch.setattr(cli, "exit_now", exit_now)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            _entry.entry()
        except Ended as ended:
            return ended.args
        except SystemExit as stop:
            return "sys.exit", stop.code
    finally:
        for s, handler in handlers.items():  # this process goes on running tests
            signal.signal(s, handler)
    raise AssertionError("entry returned")


def test_a_run_stopped_with_its_files_complete_skips_the_interpreters_teardown(monkeypatch) -> None:
    """The teardown frees a big run's arrays one by one (~0.3 s at 10^7 calls/h): a stopped run
    whose files are closed leaves at once, as a finished one does."""
    def stopped_run(argv=None, stops=None):
        stops.raise_next()  # what `callsim run` does once every file is complete
        return 130

    def failed_run(argv=None, stops=None):
        return 130  # stopped before its files were complete (not expected; still a plain exit)

    assert _entry_with(monkeypatch, stopped_run) == ("exit_now", 130)
    assert _entry_with(monkeypatch, failed_run) == ("sys.exit", 130)
    assert _entry_with(monkeypatch, lambda argv=None, stops=None: 0) == ("exit_now", 0)
