"""A run owns its --out directory (simulator/outputs/_out_dir.py, docs/outputs.md "The output directory"):
one run at a time, no stale outputs beside a new run's, and a run that did not finish is
detectable and refused by `callsim report` and `check_run` in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from simulator import cli
from simulator.outputs._cdr_format import CSV_HEADER
from simulator.outputs._out_dir import (RUNNING, NotRunOutput, OutDir, OutDirBusy, RunNotFinished,
                                        reading, unfinished)
from simulator.expect import check_run
from simulator.outputs import SummaryBuilder
from simulator.scenario import load_scenario
from tests.scenarios import QUICKSTART, SCENARIOS, scenario_toml, staff



def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize("command", [
    ["run", str(QUICKSTART), "--quiet"],
    ["check", str(QUICKSTART), "--quiet"],
    ["serve", str(SCENARIOS / "server_demo.toml"), "--port", "0"],
], ids=["run", "check", "serve"])
def test_a_second_run_into_a_held_directory_is_refused_at_once(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The lock is held here, as by another run: refused before anything is touched, naming the
    holder's pid (flock locks belong to an open file, so a claim in this process conflicts too)."""
    out = tmp_path / "out"
    with OutDir.claim(out):
        (out / "summary.json").write_text('{"complete": true}')  # the other run's files
        (out / "cdrs.csv").write_bytes(CSV_HEADER + b"1\n")
        assert cli.main([*command, "--out", str(out)]) == cli.EXIT_USAGE
        line = _one_line(capsys.readouterr().err)
        assert line == (f"callsim: --out {out}: in use by another callsim run (pid {os.getpid()}); "
                        "wait for it to finish or choose another directory")
        assert (out / "summary.json").read_text() == '{"complete": true}'
        assert (out / "cdrs.csv").read_bytes() == CSV_HEADER + b"1\n"
    assert cli.main(["run", str(QUICKSTART), "--quiet", "--out", str(out)]) == cli.EXIT_OK


def test_no_run_starts_while_a_report_reads_the_directory(tmp_path: Path) -> None:
    assert cli.main(["run", str(QUICKSTART), "--quiet", "--out", str(tmp_path)]) == cli.EXIT_OK
    with reading(tmp_path):
        with pytest.raises(OutDirBusy):
            OutDir.claim(tmp_path)
    OutDir.claim(tmp_path).release()


def test_a_claim_removes_callsims_earlier_outputs_and_nothing_else(tmp_path: Path) -> None:
    ours = ["cdrs.csv", "cdrs.msgpack", "events.jsonl", "summary.json", ".summary.json.partial",
            "report.html", "report/credit_balance.png", "report/pool_remaining.png",
            "report/active_calls.png", "report/calls_ended.png"]
    theirs = ["notes.txt", "summary.json.bak", "report/my_chart.png", "runs/cdrs.csv"]
    (tmp_path / RUNNING).write_text("99999\n")  # the marker of a run that was killed here
    for name in ours + theirs:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("old")
    with OutDir.claim(tmp_path):
        left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
        assert left == sorted([*theirs, RUNNING])  # the pid of the run that owns it
    assert not (tmp_path / RUNNING).exists()  # released: the run ended
    (tmp_path / "report/my_chart.png").unlink()
    (tmp_path / "report/calls_ended.png").write_text("")  # empty: nothing to lose
    OutDir.claim(tmp_path).release()
    assert not (tmp_path / "report").exists()  # nothing of the user's in it: it goes too


@pytest.mark.parametrize("name", ["summary.json", "report.html", "cdrs.csv", "events.jsonl",
                                  "report/calls_ended.png"])
def test_a_directory_that_never_held_a_run_keeps_a_file_under_callsims_names(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No marker, no summary.json of callsim's, no cdrs.csv of callsim's: the user's file is
    refused in one line naming it, and nothing is touched."""
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text('{"title": "my own"}')
    with pytest.raises(NotRunOutput):
        OutDir.claim(tmp_path)
    assert cli.main(["run", str(QUICKSTART), "--quiet", "--out", str(tmp_path)]) == cli.EXIT_USAGE
    assert _one_line(capsys.readouterr().err) == (
        f"callsim: --out {tmp_path}: holds {name}, which no callsim run wrote and a run would "
        "overwrite; move it or choose another directory")
    assert (tmp_path / name).read_text() == '{"title": "my own"}'
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(Path(name).parts)


@pytest.mark.parametrize("earlier", ["finished", "failed", "killed"])
def test_a_directory_that_held_a_run_is_cleared_for_the_next(
        earlier: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run (its summary.json), a failed one (its cdrs.csv), a killed one (its marker)."""
    assert cli.main(["run", str(QUICKSTART), "--quiet", "--out", str(tmp_path)]) == cli.EXIT_OK
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_OK
    if earlier != "finished":
        (tmp_path / "summary.json").unlink()
    if earlier == "killed":
        (tmp_path / "cdrs.csv").write_text("")
        (tmp_path / RUNNING).write_text("99999\n")
    OutDir.claim(tmp_path).release()
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "cdrs.csv").exists()


def test_an_empty_out_or_output_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """"" would be the current directory: its summary.json and report.html stay."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "summary.json").write_text("{}")
    for argv in (["run", str(QUICKSTART), "--out", ""], ["check", str(QUICKSTART), "--out", ""],
                 ["report", ""], ["report", str(tmp_path), "--output", " "]):
        with pytest.raises(SystemExit) as stop:
            cli.main(argv)
        assert stop.value.code == cli.EXIT_USAGE
        assert "expected a path, got an empty one" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_a_failed_run_does_not_sit_beside_the_previous_runs_summary_or_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's case: a reused --out kept summary.json (complete: true) and report.html."""
    assert cli.main(["run", str(QUICKSTART), "--quiet", "--out", str(tmp_path)]) == cli.EXIT_OK
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # a finished run leaves no marker
        "cdrs.csv", "cdrs.msgpack", "events.jsonl", "summary.json"]
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_OK
    (tmp_path / "cdrs.csv").unlink()
    (tmp_path / "cdrs.csv").symlink_to("/dev/full")  # the next run's writes fail: ENOSPC
    capsys.readouterr()
    assert cli.main(["run", str(QUICKSTART), "--quiet", "--out", str(tmp_path)]) == cli.EXIT_CHECK_FAILED
    assert not (tmp_path / "summary.json").exists()
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "report").exists()
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_USAGE
    assert _one_line(capsys.readouterr().err) == (
        f"callsim: {tmp_path}: no summary.json: the run that wrote it did not finish; "
        "its files are incomplete")


def test_summary_json_is_replaced_by_a_rename_not_rewritten_in_place(tmp_path: Path) -> None:
    """A reader (or a kill) never sees half of it: a hard link to the old file keeps the old text."""
    (tmp_path / "summary.json").write_text("old")
    os.link(tmp_path / "summary.json", tmp_path / "old.json")
    SummaryBuilder.write(tmp_path, {"complete": True})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"complete": True}
    assert (tmp_path / "old.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json", "summary.json"]


# 100 calls a second of simulated time at 5x: CDRs reach cdrs.csv within a second of wall time,
# and the run would last 12 minutes; big enough (360,000 calls) for the CDR file workers.
KILLED = scenario_toml(name="killed", credits={"initial": "100.00"}, users=[staff(100)],
                       traffic=[{"type": "domestic", "calls_per_hour": 360000, "holding_mean": "1s"}])


def test_a_run_killed_mid_way_leaves_a_directory_that_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "killed.toml"
    scenario.write_text(KILLED)
    out = tmp_path / "out"
    (out / "report").mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps(  # a previous run's
        {"scenario": "killed", "seed": 1, "complete": True, "orgs": {}, "total": {}}))
    run = subprocess.Popen([sys.executable, "-m", "simulator.cli", "run", str(scenario), "--out",
                            str(out), "--speed", "5", "--quiet"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _lines(out / "cdrs.csv") < 2:  # the header and a CDR: the run is under way
            assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
        assert run.wait(timeout=60) == -signal.SIGKILL
    finally:
        if run.poll() is None:
            run.kill()
        run.stderr.close()
    assert not (out / "summary.json").exists()
    assert (out / RUNNING).read_text() == f"{run.pid}\n"  # the run that never ended
    # every step's events are pushed out before its CDRs: the purchase at 0 s is there
    first = (out / "events.jsonl").read_text().splitlines()[0]
    assert json.loads(first)["event"] == "credits_purchased"

    expected = (f"no summary.json: the run (pid {run.pid}) ended before it finished (killed?); "
                "its files are incomplete")
    assert unfinished(out) == expected
    assert cli.main(["report", str(out)]) == cli.EXIT_USAGE
    assert _one_line(capsys.readouterr().err) == f"callsim: {out}: {expected}"
    assert not (out / "report.html").exists()
    with pytest.raises(RunNotFinished) as caught:
        check_run(load_scenario(QUICKSTART), out)
    assert str(caught.value) == f"{out}: {expected}"
    with OutDir.claim(out):  # the lock died with the run (and its forked file workers let go)
        assert not (out / "cdrs.csv").exists() and not (out / "events.jsonl").exists()


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


HOLDER = """
import os, sys
from pathlib import Path
from simulator.outputs._out_dir import OutDir
claim = OutDir.claim(Path(sys.argv[1]))
read, write = os.pipe()
if os.fork() == 0:  # a worker, blocked on a pipe it holds both ends of: it outlives the run
    print(os.getpid(), flush=True)  # its code runs after the fork's hooks: they are done
    os.read(read, 1)
    os._exit(0)
os.kill(os.getpid(), 9)
"""


def test_a_forked_child_does_not_keep_a_killed_runs_lock(tmp_path: Path) -> None:
    """A CDR file worker outliving its killed run for a moment must not hold the directory."""
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        assert holder.wait(timeout=60) == -signal.SIGKILL
        assert Path(f"/proc/{child}").exists()  # still waiting on its pipe (nobody wrote to it)
        OutDir.claim(tmp_path).release()
    finally:
        os.kill(child, signal.SIGKILL)
        holder.stdout.close()
