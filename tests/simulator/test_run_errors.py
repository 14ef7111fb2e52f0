"""`callsim run` that cannot write its outputs: one line naming the problem, exit 1, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.scenarios import ENTERPRISE, QUICKSTART



def run_into(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simulator.cli", "run", str(QUICKSTART), "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "cdrs.csv").symlink_to("/dev/full")  # every write to it fails with ENOSPC
    done = run_into(tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"callsim: cannot write the outputs to {tmp_path}/: No space left on device; "
        "the files there are incomplete"
    ]


def test_an_output_file_that_cannot_be_created_is_named(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").mkdir()
    done = run_into(tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"callsim: cannot write the outputs to {tmp_path}/: ")
    assert f"({tmp_path / 'events.jsonl'})" in line


def _comm(pid: str) -> str:
    """A process's name, or "" once it has gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.parametrize("fmt", ["csv", "msgpack"])
def test_a_file_worker_killed_mid_run_is_one_line_and_exit_1(tmp_path: Path, fmt: str) -> None:
    """The OOM killer, say: the run reports that its files are incomplete, without a traceback."""
    big = ENTERPRISE
    proc = subprocess.Popen([sys.executable, "-m", "simulator.cli", "run", str(big), "--out", str(tmp_path),
                             "--quiet"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        workers: list[str] = []
        while not workers:  # the worker has been given its file and has named itself
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.02)
            if (tmp_path / "cdrs.msgpack").exists():
                workers = [pid for pid in children.read_text().split() if _comm(pid) == f"callsim-{fmt}"]
        [worker] = workers
        os.kill(int(worker), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line == (f"callsim: cannot write the outputs to {tmp_path}/: the callsim-{fmt} process failed "
                    "(exit status -9); the files there are incomplete")


def test_ctrl_c_before_a_command_runs_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while the CLI parses its arguments or imports (before `main` catches it)."""
    from simulator import cli
    from simulator._entry import entry

    def interrupted(argv=None, stops=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "main", interrupted)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as stop:
            entry(cli)
        # the command is over: a late signal must not break off its exit
        assert all(signal.getsignal(s) == signal.SIG_IGN for s in handlers)
    finally:
        for s, handler in handlers.items():  # this process goes on running tests
            signal.signal(s, handler)
    assert stop.value.code == 130
    assert capsys.readouterr().err == "callsim: interrupted\n"
