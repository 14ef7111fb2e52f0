"""Progress output (simulator/progress.py): a rich bar on a terminal, plain lines otherwise.

`--quiet` and a stderr that is not a terminal both fall back to one plain
line every PLAIN_EVERY_S wall seconds.  The wall clock is injected, so the
pacing is tested without sleeping.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import trio

from simulator import cli
from simulator.progress import PLAIN_EVERY_S, Progress
from simulator.run import RunOptions, run_scenario
from simulator.scenario import load_scenario
from simulator.switch import WindowReport

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.toml"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeWall:
    """A wall clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _windows() -> list[WindowReport]:
    """The quickstart's windows in virtual time (one per simulated hour, then the end)."""
    reports: list[WindowReport] = []
    with tempfile.TemporaryDirectory() as out:
        options = RunOptions(out_dir=Path(out), handle_sigint=False, observers=[reports.append])
        trio.run(run_scenario, load_scenario(QUICKSTART), options)
    return reports


WINDOWS = _windows()


def _feed(progress: Progress, wall: FakeWall, step_s: float) -> None:
    with progress:
        for report in WINDOWS:
            wall.now += step_s
            progress.observe(report)


def test_quiet_prints_plain_lines_every_period_even_on_a_terminal() -> None:
    stream, wall = Terminal(), FakeWall()
    progress = Progress(load_scenario(QUICKSTART), quiet=True, stream=stream, wall=wall)
    assert not progress.rich
    _feed(progress, wall, step_s=1.0)  # 25 reports, one wall second apart
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(WINDOWS) // PLAIN_EVERY_S
    assert all(line.startswith("callsim: simulated ") for line in lines)
    assert "\x1b" not in stream.getvalue()  # no terminal control codes


def test_not_a_terminal_prints_plain_lines() -> None:
    stream, wall = io.StringIO(), FakeWall()
    progress = Progress(load_scenario(QUICKSTART), stream=stream, wall=wall)
    assert not progress.rich
    _feed(progress, wall, step_s=2.5)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(WINDOWS) // 2
    calls = sum(r.arrivals for r in WINDOWS[:2])
    active = calls - sum(len(r.step.cdrs) for r in WINDOWS[:2])
    assert lines[0].startswith(
        f"callsim: simulated 2:00:00 (8.3%) {calls} calls ({calls / 5:.0f}/s), {active} active, ")


def test_short_runs_print_no_progress_line() -> None:
    stream, wall = io.StringIO(), FakeWall()
    _feed(Progress(load_scenario(QUICKSTART), quiet=True, stream=stream, wall=wall), wall, step_s=0.1)
    assert stream.getvalue() == ""


def test_counts_match_the_run_summary() -> None:
    stream, wall = io.StringIO(), FakeWall()
    progress = Progress(load_scenario(QUICKSTART), quiet=True, stream=stream, wall=wall)
    _feed(progress, wall, step_s=0.0)
    assert progress.calls == progress.ended == 304  # the end-of-run step is counted too
    assert progress.active == 0
    assert progress.drops == 2  # dropped_balance_exhausted 1 + blocked_no_balance 1
    assert progress.sim_ms == 86_400_000


def test_terminal_gets_a_rich_bar_on_the_same_stream() -> None:
    stream, wall = Terminal(), FakeWall()
    progress = Progress(load_scenario(QUICKSTART), stream=stream, wall=wall)
    assert progress.rich
    _feed(progress, wall, step_s=1.0)
    text = stream.getvalue()
    assert "simulated" in text and "active" in text and "drops/blocks" in text
    assert "\x1b" in text  # drawn with terminal control codes, then cleared (transient)


def test_cli_quiet_run_writes_summary_on_stdout_and_no_bar(tmp_path: Path, capsys) -> None:
    assert cli.main(["run", str(QUICKSTART), "--out", str(tmp_path), "--quiet"]) == cli.EXIT_OK
    captured = capsys.readouterr()
    assert captured.out.startswith("callsim: complete: 304 calls in ")
    assert "\x1b" not in captured.err
    assert all(line.startswith("callsim: simulated ") for line in captured.err.splitlines())
