"""The `callsim` command line itself: usage, --version, --help, --seed, --json, --quiet, --no-cdr-msgpack.

Runs go through `cli.main` in this process (the quickstart takes well under a
second); what a user sees is stdout, stderr and the exit status.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
from pathlib import Path

import pytest

import simulator.run
from simulator import cli
from simulator.outputs import _cdr_workers
from tests.scenarios import REPO

QUICKSTART = REPO / "scenarios" / "quickstart.toml"
QUICKSTART_SEED = 7  # its [simulation] seed
FILES = ("cdrs.csv", "cdrs.msgpack", "events.jsonl", "summary.json")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _run(out: Path, *options: str) -> int:
    return cli.main(["run", str(QUICKSTART), "--out", str(out), *options])


def _files(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in FILES if (out / name).exists()}


# -- callsim, callsim --version, --help --------------------------------------------------------


def test_no_command_prints_usage_and_the_commands_on_stderr_and_exits_2(capsys) -> None:
    assert cli.main([]) == cli.EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"callsim {importlib.metadata.version('callsim')}\n\nusage: callsim ")
    for command in _subcommands():
        assert f"\n    {command} " in err, command


def test_version_prints_the_installed_package_version(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == cli.EXIT_OK
    assert capsys.readouterr().out == f"callsim {importlib.metadata.version('callsim')}\n"
    assert cli.build_parser().format_help().startswith(f"callsim {importlib.metadata.version('callsim')}\n")


def test_every_command_describes_every_argument_with_examples_and_exit_statuses(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps the help to the terminal's width
    commands = _subcommands()
    assert set(commands) == {"run", "check", "validate", "report", "bench", "serve", "loadgen", "import",
                             "sweep", "plan"}
    for name, parser in commands.items():
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
        epilog = parser.epilog or ""
        examples = epilog.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
        assert 2 <= len(examples) <= 3 and all(e.startswith(f"  callsim {name}") for e in examples), name
        statuses = epilog.split("exit status:\n", 1)[1]
        assert f"\n  {cli.EXIT_OK}   " in f"\n{statuses}", name
        assert f"\n  {cli.EXIT_USAGE}   " in f"\n{statuses}", name
        assert parser.formatter_class is argparse.RawDescriptionHelpFormatter, name  # kept as written
        assert max(map(len, parser.format_help().splitlines())) <= 80, name


# -- --seed ------------------------------------------------------------------------------------


def test_seed_overrides_the_scenarios_seed_and_reproduces(tmp_path: Path, capsys) -> None:
    runs = {"file": (), "same": ("--seed", str(QUICKSTART_SEED)), "other": ("--seed", "12345"),
            "other again": ("--seed", "12345")}
    files = {}
    for name, options in runs.items():
        assert _run(tmp_path / name, "--quiet", *options) == cli.EXIT_OK
        files[name] = _files(tmp_path / name)
    assert files["same"] == files["file"]  # --seed equal to the file's: the file's outputs
    assert files["other again"] == files["other"]  # same seed: byte-identical
    for name in ("cdrs.csv", "events.jsonl"):
        assert files["other"][name] != files["file"][name], name
    assert json.loads(files["other"]["summary.json"])["seed"] == 12345
    assert json.loads(files["file"]["summary.json"])["seed"] == QUICKSTART_SEED


@pytest.mark.parametrize("seed", ["-1", "x", "1.5", str(2**63)])
def test_a_bad_seed_is_one_line_and_exit_2(tmp_path: Path, capsys, seed: str) -> None:
    with pytest.raises(SystemExit) as stop:
        _run(tmp_path, "--seed", seed)
    assert stop.value.code == cli.EXIT_USAGE
    [line] = capsys.readouterr().err.splitlines()
    assert "--seed" in line and "whole number" in line


# -- --json ------------------------------------------------------------------------------------


def test_run_json_prints_the_summary_and_nothing_else_on_stdout(tmp_path: Path, capsys) -> None:
    assert _run(tmp_path, "--json") == cli.EXIT_OK
    out = capsys.readouterr().out
    assert json.loads(out) == json.loads((tmp_path / "summary.json").read_text())


def test_check_json_prints_the_summary_and_the_verdict(tmp_path: Path, capsys) -> None:
    assert cli.main(["check", str(QUICKSTART), "--out", str(tmp_path), "--json"]) == cli.EXIT_OK
    document = json.loads(capsys.readouterr().out)
    assert document["summary"] == json.loads((tmp_path / "summary.json").read_text())
    assert document["check"] == {"passed": True, "checked": 14, "failures": []}


def test_validate_json_prints_the_counts_and_the_estimate(capsys) -> None:
    assert cli.main(["validate", str(QUICKSTART), "--json"]) == cli.EXIT_OK
    document = json.loads(capsys.readouterr().out)
    work = document.pop("estimate")
    assert document == {
        "scenario": str(QUICKSTART), "ok": True, "orgs": 1, "users": 8, "traffic_sources": 4, "calls": 7}
    assert work["users"] == 8
    assert set(work) == {"users", "calls", "peak_connected", "window_calls", "memory_bytes",
                         "disk_bytes", "run_seconds"}
    assert 0 < work["calls"] < 10_000 and work["memory_bytes"] > 0


# -- --quiet -----------------------------------------------------------------------------------


def test_quiet_prints_nothing_on_success(tmp_path: Path, capsys) -> None:
    assert _run(tmp_path, "--quiet") == cli.EXIT_OK
    assert capsys.readouterr() == ("", "")
    assert cli.main(["check", str(QUICKSTART), "--quiet"]) == cli.EXIT_OK
    assert capsys.readouterr() == ("", "")


def test_quiet_still_prints_errors(tmp_path: Path, capsys) -> None:
    assert cli.main(["run", str(tmp_path / "missing.toml"), "--out", str(tmp_path), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "missing.toml" in err


# -- --no-cdr-msgpack --------------------------------------------------------------------------


def test_no_cdr_msgpack_writes_no_msgpack_file(tmp_path: Path, capsys) -> None:
    assert _run(tmp_path / "without", "--quiet", "--no-cdr-msgpack") == cli.EXIT_OK
    assert _run(tmp_path / "with", "--quiet") == cli.EXIT_OK
    assert not (tmp_path / "without" / "cdrs.msgpack").exists()
    written = _files(tmp_path / "with")
    del written["cdrs.msgpack"]
    assert _files(tmp_path / "without") == written  # the other files are untouched


def test_no_cdr_msgpack_removes_an_earlier_runs_msgpack(tmp_path: Path, capsys) -> None:
    assert _run(tmp_path, "--quiet") == cli.EXIT_OK
    assert _run(tmp_path, "--quiet", "--no-cdr-msgpack", "--seed", "1") == cli.EXIT_OK
    assert not (tmp_path / "cdrs.msgpack").exists()  # it held the other seed's CDRs


def test_no_cdr_msgpack_starts_no_msgpack_worker(tmp_path: Path, monkeypatch, capsys) -> None:
    """A run big enough for file workers (here: any run) starts only cdrs.csv's."""
    started = []

    class Recorded(_cdr_workers.CdrFileWorker):
        def __init__(self, fmt: str, fork: bool = False) -> None:
            started.append(fmt)
            super().__init__(fmt, fork)

    monkeypatch.setattr(simulator.run, "CDR_WORKER_CALLS", 0)
    monkeypatch.setattr(_cdr_workers, "CdrFileWorker", Recorded)
    assert _run(tmp_path, "--quiet", "--no-cdr-msgpack") == cli.EXIT_OK
    assert started == ["csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cdrs.csv", "events.jsonl", "summary.json"]
