"""`callsim serve`'s files written by a child process: the same bytes as in a thread, and errors
that come back as one line, not a hang or a traceback."""

from __future__ import annotations

import errno
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from rating_core import LedgerEvent, Step
from ..outputs.test_cdr_workers import failure_of
from ..outputs.test_outputs import START, TABLES, random_batch
from .support import ACME, call, start_server

from simulator.server._files import ServerFiles, ServerFilesProcess
from tests.scenarios import REPO

ROOT = REPO
FILES = ("cdrs.csv", "cdrs.msgpack", "events.jsonl", "summary.json")


def steps() -> list[tuple[Step, bool]]:
    """Hand-overs as the server makes them: some only buffer, some also write the files."""
    events = [LedgerEvent(0, 0, "credits_purchased", 5_000_000, 5_000_000),
              LedgerEvent(7, 1, "balance_exhausted", 0)]
    return [(Step(random_batch(1_500, seed=s), events[: s % 3], increments=10 * s), s % 2 == 1)
            for s in range(6)]


def write_all(files: ServerFiles | ServerFilesProcess) -> dict:
    for step, to_files in steps():
        files.write(step, to_files)
    files.flush()
    return files.close([1, 2], [3, 4, 5], False, 120_000)


def test_the_child_process_writes_the_same_files_and_summary(tmp_path: Path) -> None:
    summaries = {}
    for name, kind in (("thread", ServerFiles), ("process", ServerFilesProcess)):
        files = kind(tmp_path / name, TABLES, START, "USD", "demo", 7, True)
        summaries[name] = write_all(files)
    assert summaries["process"] == summaries["thread"]
    assert summaries["thread"]["total"]["calls"] == 6 * 1_500
    for name in FILES:
        assert (tmp_path / "process" / name).read_bytes() == (tmp_path / "thread" / name).read_bytes(), name
    assert (tmp_path / "thread" / "cdrs.csv").read_bytes().count(b"\n") == 6 * 1_500 + 1


def test_files_that_cannot_be_created_fail_at_once(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").mkdir()
    failure = failure_of(lambda: ServerFilesProcess(tmp_path, TABLES, START, "USD", "demo", 7, False))
    assert isinstance(failure, OSError) and failure.filename == str(tmp_path / "events.jsonl")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_mid_run_is_an_oserror_not_a_hang(tmp_path: Path) -> None:
    (tmp_path / "cdrs.msgpack").symlink_to("/dev/full")  # opened fine; every write of rows fails
    files = ServerFilesProcess(tmp_path, TABLES, START, "USD", "demo", 7, True)

    def write_more() -> None:
        for step, _ in steps() * 20:  # past the queue and the pipe: the failure must reach us
            files.write(step, True)
        files.close([1, 2], [3, 4, 5], False, 120_000)

    failure = failure_of(write_more)
    assert isinstance(failure, OSError) and failure.errno == errno.ENOSPC
    assert files.close([1, 2], [3, 4, 5], False, 0) == {}  # closed already: a no-op


def test_callsim_serve_with_an_output_file_it_cannot_create_says_so(tmp_path: Path) -> None:
    (tmp_path / "cdrs.csv").mkdir()
    done = subprocess.run([sys.executable, "-m", "simulator.cli", "serve", str(ROOT / "scenarios" / "server_demo.toml"),
                           "--port", "0", "--out", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"callsim: cannot write to {tmp_path}: ") and f"({tmp_path / 'cdrs.csv'})" in line


def test_a_parent_that_exits_without_closing_the_files_does_not_hang(tmp_path: Path) -> None:
    """The child ignores SIGTERM, which is all multiprocessing's exit hook sends before it joins;
    the constructor returns once the child has opened the files, so it is past that point."""
    code = ("import sys; from datetime import datetime, timezone; from rating_core import Tables; "
            "from simulator.server._files import ServerFilesProcess; "
            "ServerFilesProcess(__import__('pathlib').Path(sys.argv[1]), "
            "Tables(('o',), ('u',), (), (), (), ()), datetime(2026, 1, 1, tzinfo=timezone.utc), 'USD', 'x', 1, False); "
            "raise SystemExit(3)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "cdrs.csv").exists()


def test_a_child_that_dies_before_answering_is_a_runtime_error_not_a_hang(tmp_path: Path) -> None:
    failure = failure_of(lambda: ServerFilesProcess(tmp_path, None, START, "USD", "demo", 7, False))  # type: ignore[arg-type]
    assert isinstance(failure, RuntimeError) and "the callsim-files process failed" in str(failure)


async def _scripted_calls(nursery, out: Path, **config) -> dict:
    """A few calls through a real server (MockClock time): answered, hung up, cut at the stop."""
    server = await start_server(nursery, out, **config)
    client = await server.connect(ACME)
    for ref in range(1, 6):
        await client.send(call(ref))
        assert (await client.recv())["op"] == "answered"
        await trio.sleep(7)
    for ref in (2, 4):
        await client.send({"op": "hangup", "ref": ref})
        assert (await client.recv())["op"] == "ended"
    await trio.sleep(70)
    server.exchange.stop()
    result = await server.stop()
    assert result.error is None
    return result.summary


async def test_callsim_serve_files_from_the_child_match_the_thread(nursery, tmp_path, autojump_clock):
    thread = await _scripted_calls(nursery, tmp_path / "thread", write_msgpack=True)
    child = await _scripted_calls(nursery, tmp_path / "child", write_msgpack=True, files_process=True)
    assert child == thread and thread["total"]["calls"] == 5
    for name in FILES:
        assert (tmp_path / "child" / "out" / name).read_bytes() == (tmp_path / "thread" / "out" / name).read_bytes()


async def test_a_files_process_that_dies_stops_the_server_with_one_line(nursery, tmp_path):
    server = await start_server(nursery, tmp_path, files_process=True)
    [child] = [p for p in multiprocessing.active_children() if p.name == "callsim-files"]
    child.kill()
    with trio.fail_after(30):
        result = await server.finished()
    assert result.error == f"cannot write to {server.out_dir}: the callsim-files process failed (exit status -9)"
