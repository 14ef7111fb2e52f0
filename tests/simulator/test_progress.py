"""Progress output (simulator/progress.py): a live status line on a terminal, plain lines otherwise.

A stderr that is not a terminal falls back to one plain line every
PLAIN_EVERY_S wall seconds; `--quiet` prints no progress at all.  The wall
clock is injected, so the pacing is tested without sleeping.
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import pytest
import trio
from rich.console import Console

from simulator import cli
from simulator.progress import PLAIN_EVERY_S, Figures, Progress, status_line
from simulator.run import RunOptions, run_scenario
from simulator.scenario import load_scenario
from simulator.switch import VIRTUAL_WINDOW_MS, WindowReport
from tests.scenarios import QUICKSTART



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
        options = RunOptions(out_dir=Path(out), handle_sigint=False, observers=[reports.append],
                             virtual_window_ms=VIRTUAL_WINDOW_MS)
        trio.run(run_scenario, load_scenario(QUICKSTART), options)
    return reports


WINDOWS = _windows()


def _feed(progress: Progress, wall: FakeWall, step_s: float) -> None:
    with progress:
        for report in WINDOWS:
            wall.now += step_s
            progress.observe(report)


def test_quiet_prints_no_progress_even_on_a_terminal() -> None:
    stream, wall = Terminal(), FakeWall()
    progress = Progress(load_scenario(QUICKSTART), quiet=True, stream=stream, wall=wall)
    assert not progress.rich
    _feed(progress, wall, step_s=PLAIN_EVERY_S)  # a plain line every window, were it not quiet
    assert stream.getvalue() == ""


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
    _feed(Progress(load_scenario(QUICKSTART), stream=stream, wall=wall), wall, step_s=0.1)
    assert stream.getvalue() == ""


def test_counts_match_the_run_summary() -> None:
    stream, wall = io.StringIO(), FakeWall()
    progress = Progress(load_scenario(QUICKSTART), quiet=True, stream=stream, wall=wall)
    _feed(progress, wall, step_s=0.0)
    assert progress.calls == progress.ended == 309  # the end-of-run step is counted too
    assert progress.active == 0
    assert progress.drops == 2  # dropped_balance_exhausted 1 + blocked_no_balance 1
    assert progress.sim_ms == 86_400_000


def test_terminal_gets_a_rich_bar_on_the_same_stream() -> None:
    stream, wall = Terminal(), FakeWall()
    progress = Progress(load_scenario(QUICKSTART), stream=stream, wall=wall)
    assert progress.rich
    _feed(progress, wall, step_s=1.0)
    text = stream.getvalue()
    assert "1d 00:00:00" in text and "309 calls" in text and "active" in text and "drops" in text
    assert "\x1b" in text  # drawn with terminal control codes, then cleared (transient)


def test_cli_run_writes_summary_on_stdout_and_plain_lines_on_a_non_terminal_stderr(tmp_path: Path,
                                                                                    capsys) -> None:
    assert cli.main(["run", str(QUICKSTART), "--out", str(tmp_path)]) == cli.EXIT_OK
    captured = capsys.readouterr()
    assert captured.out.startswith("callsim: complete: 309 calls in ")
    assert "\x1b" not in captured.err
    assert all(line.startswith("callsim: simulated ") for line in captured.err.splitlines())


# -- the status line on a terminal: readable at 80 columns and less --------------------------

MONTH = Figures(sim_ms=(23 * 24 + 4) * 3_600_000, done=0.77, calls=1_123_456, rate=412_345.0,
                active=105_000, drops=12_345, left_s=62.0)
DAY = Figures(sim_ms=3_600_000, done=0.04, calls=12, rate=1_200.0, active=3, drops=0, left_s=None)
#: what the line must always show of MONTH, whatever the width
MONTH_ESSENTIALS = ("23d 04:00:00", "77.0%", "1.12M calls", "105k active", "12.3k drops")


def _drawn(figures: Figures, width: int) -> list[str]:
    """The status line as a terminal `width` columns wide shows it."""
    progress = Progress(load_scenario(QUICKSTART), stream=io.StringIO(), wall=FakeWall())
    for name in ("sim_ms", "calls", "active", "drops"):
        setattr(progress, name, getattr(figures, name))
    progress.end_ms = round(figures.sim_ms / figures.done)
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(progress.render(width))
    return console.export_text().splitlines()


@pytest.mark.parametrize("width", [60, 80])
def test_status_line_fits_a_narrow_terminal_on_one_line_with_every_essential(width: int) -> None:
    head, bar, tail = status_line(MONTH, width)
    assert len(head) + len(tail) + (bar + 1 if bar else 0) + 1 <= width
    text = f"{head} {tail}"
    for essential in MONTH_ESSENTIALS:
        assert essential in text, (width, essential, text)
    if width >= 80:
        assert bar >= 8  # the bar stays at 80 columns


@pytest.mark.parametrize("width", [60, 80, 120])
def test_status_line_is_drawn_on_one_line(width: int) -> None:
    [line] = _drawn(DAY, width)
    assert len(line) <= width
    assert re.search(r"\b1:00:00 .*4\.0% 12 calls", line), line


def test_status_line_shows_every_figure_in_full_on_a_wide_terminal() -> None:
    head, bar, tail = status_line(MONTH, 150)
    assert head == "simulated 23d 04:00:00" and bar == 40
    assert tail == " 77.0% 1,123,456 calls (412,345/s), 105,000 active, 12,345 drops/blocks eta 0:01:02"


def test_terminal_at_80_columns_gets_one_line_that_fits(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # what rich reads for a terminal's width
    stream, wall = Terminal(), FakeWall()
    progress = Progress(load_scenario(QUICKSTART), stream=stream, wall=wall)
    _feed(progress, wall, step_s=1.0)
    visible = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())  # colours, cursor moves
    lines = [line for line in re.split(r"[\r\n]", visible) if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines), lines
    assert all(re.search(r"\d:\d\d:\d\d .*%.* calls .* active .* drops", line) for line in lines), lines
    assert "1d 00:00:00" in lines[-1] and "100.0% 309 calls" in lines[-1]
