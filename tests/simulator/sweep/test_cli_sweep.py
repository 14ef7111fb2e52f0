"""`callsim sweep`: its files, its refusals (one line, exit 2, before any run) and Ctrl-C."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulator import cli
from simulator.sweep import SYNC, derive_seeds, grid, parse_set, run_many, run_specs

from .files import TEXT

SETS = ["orgs.acme.credits.recharge_amount=3.00,8.00", "orgs.acme.credits.initial=5.00,50.00"]


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(TEXT)
    return path


def _sweep(scenario: Path, out: Path, *options: str) -> int:
    sets = [item for s in SETS for item in ("--set", s)]
    return cli.main(["sweep", str(scenario), "--seeds", "3", *sets, "--out", str(out), "--scheduler", "sync",
                     *options])


def test_sweep_writes_a_row_per_run_and_the_distributions_per_point(scenario: Path, tmp_path: Path,
                                                                    capsys) -> None:
    out = tmp_path / "out"
    assert _sweep(scenario, out) == cli.EXIT_OK
    stdout, stderr = capsys.readouterr()
    assert "4 of 4" not in stderr and "12 of 12 runs finished" in stderr
    assert stdout.splitlines()[0].startswith("setting") and len(stdout.splitlines()) == 5
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    expected = run_many(scenario, run_specs(grid([parse_set(s) for s in SETS]), derive_seeds(11, 3)),
                        scheduler=SYNC).runs
    assert [(int(r["seed"]), r["orgs.acme.credits.recharge_amount"], r["orgs.acme.credits.initial"])
            for r in rows] == [(run.seed, run.point[0].shown, run.point[1].shown) for run in expected]
    assert [int(r["calls_cut"]) for r in rows] == [run.total.calls_cut for run in expected]
    assert [int(r["acme:balance_exhausted"]) for r in rows] == [run.orgs["acme"].balance_exhausted for run in expected]
    document = json.loads((out / "sweep.json").read_text())
    assert document["complete"] and document["runs"] == 12 and document["seeds"] == 3
    assert document["settings"] == [s.split("=")[0] for s in SETS]
    first = document["points"][0]
    assert first["setting"] == {"orgs.acme.credits.recharge_amount": "3.00", "orgs.acme.credits.initial": "5.00"}
    cuts = sorted(run.total.calls_cut for run in expected[:3])
    assert first["total"]["calls_cut"]["p50"] == cuts[1] and first["total"]["calls_cut"]["max"] == cuts[2]
    assert first["total"]["calls_cut"]["share_of_seeds"] == sum(1 for c in cuts if c) / 3
    assert first["orgs"]["acme"]["credits_purchased"]["p50"].count(".") == 1  # money as decimal text
    page = (out / "sweep.html").read_text()
    assert page.count("<img ") == 2 and page.count("<tr>") == 5


def test_a_second_sweep_replaces_the_first_in_its_directory(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _sweep(scenario, out) == cli.EXIT_OK
    assert cli.main(["sweep", str(scenario), "--seeds", "1", "--out", str(out), "--scheduler", "sync",
                     "--quiet"]) == cli.EXIT_OK
    assert json.loads((out / "sweep.json").read_text())["runs"] == 1


def test_a_directory_holding_someone_elses_sweep_csv_is_refused(scenario: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.csv").write_text("my data\n")
    assert _sweep(scenario, out) == cli.EXIT_USAGE
    assert "holds sweep.csv" in capsys.readouterr().err
    assert (out / "sweep.csv").read_text() == "my data\n"


@pytest.mark.parametrize("option, message", [
    ("orgs.acmee.credits.initial=1,2", '--set orgs.acmee: no item with id "acmee" in orgs (ids: acme, globex)'),
    ("orgs.acme.credits.initial=1,-2",
     'callsim: --set orgs.acme.credits.initial=-2: orgs[0].credits.initial: must not be negative, got "-2"'),
    ("orgs.acme.credits.initial", "--set orgs.acme.credits.initial: expected KEY=VALUE"),
])
def test_a_bad_set_is_one_line_and_nothing_runs(scenario: Path, tmp_path: Path, capsys, option: str,
                                                message: str) -> None:
    out = tmp_path / "out"
    code = cli.main(["sweep", str(scenario), "--seeds", "2", "--set", option, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_sweep_that_cannot_fit_in_memory_is_refused_with_its_estimate(scenario: Path, tmp_path: Path,
                                                                        capsys, monkeypatch) -> None:
    monkeypatch.delenv("CALLSIM_FORCE", raising=False)
    code = cli.main(["sweep", str(scenario), "--seeds", "5000", "--workers", "4096", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and len(err.splitlines()) == 1
    assert "per worker x 4096 workers" in err and "--workers" in err and "--force" in err


@pytest.mark.parametrize("stop", [
    pytest.param(lambda process: os.killpg(process.pid, signal.SIGINT), id="ctrl-c to the process group"),
    pytest.param(lambda process: process.send_signal(signal.SIGTERM), id="kill -TERM to the sweep alone"),
])
def test_ctrl_c_or_sigterm_cancels_the_runs_left_and_writes_those_that_finished(scenario: Path, tmp_path: Path,
                                                                                stop) -> None:
    """SIGINT to the whole process group, as a terminal sends it (the local cluster's workers
    ignore it), or SIGTERM to the sweep's process, as `kill` sends it: the sweep cancels the
    rest, writes its files, gives its --out directory back and exits 130, no traceback."""
    out, kept = tmp_path / "out", tmp_path / "kept"
    command = [sys.executable, "-m", "simulator", "sweep", str(scenario), "--seeds", "400", "--workers", "2",
               "--out", str(out), "--keep-runs", str(kept)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # runs have finished, and the first ones' results reached the sweep long before
        while len(list(kept.glob("point-0/seed-*/summary.json"))) < 6:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        stop(process)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == cli.EXIT_INTERRUPTED, stderr.decode()
    assert b"Traceback" not in stderr and b"interrupted" in stderr
    assert b"leaked" not in stderr  # multiprocessing's resource tracker: semaphores left behind
    document = json.loads((out / "sweep.json").read_text())
    assert not document["complete"] and 1 <= document["finished"] < 400
    assert len((out / "sweep.csv").read_text().splitlines()) == document["finished"] + 1
    assert not (out / ".callsim.running").exists()


def test_every_settings_problems_are_reported_each_once(scenario: Path, tmp_path: Path, capsys) -> None:
    """The first bad point (initial=1.00, recharge_amount=-3) has one problem; the others too."""
    out = tmp_path / "out"
    code = cli.main(["sweep", str(scenario), "--seeds", "2", "--set", "orgs.acme.credits.initial=1.00,-1",
                     "--set", "orgs.acme.credits.recharge_amount=4.00,-3", "--out", str(out)])
    lines = capsys.readouterr().err.splitlines()
    assert code == cli.EXIT_USAGE and not out.exists()
    assert len(lines) == 2, lines
    assert any("orgs[0].credits.initial" in line and '"-1"' in line for line in lines)
    assert any("orgs[0].credits.recharge_amount" in line and '"-3"' in line for line in lines)


def test_a_value_the_scenario_cannot_take_is_one_line_naming_the_set_no_traceback(scenario: Path,
                                                                                   tmp_path: Path) -> None:
    """As a user sees it: the real process, its exit status and all it prints."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "sweep", str(scenario), "--seeds", "2", "--scheduler", "sync",
         "--set", "orgs.acme.credits.initial=5.00", "--set", "orgs.acme.credits.recharge_amount=3.00,abc",
         "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == cli.EXIT_USAGE and done.stdout == ""
    assert done.stderr == ("callsim: --set orgs.acme.credits.recharge_amount=abc: "
                           'orgs[0].credits.recharge_amount: expected a decimal string like "0.02", got "abc"\n')
    assert not out.exists()


@pytest.mark.parametrize("command", ["run", "check"])
def test_run_and_check_name_the_set_behind_a_problem(scenario: Path, tmp_path: Path, capsys, command: str) -> None:
    out = tmp_path / "out"
    code = cli.main([command, str(scenario), "--set", "orgs.acme.id=initech", "--out", str(out)])
    assert code == cli.EXIT_USAGE
    assert capsys.readouterr().err == 'callsim: --set orgs.acme.id=initech: traffic[0].org: unknown org "acme"\n'
    assert not (out / "cdrs.csv").exists()


@pytest.mark.parametrize("values", ["1,2", "5"])
def test_setting_the_scenarios_seed_is_refused_pointing_to_seeds(scenario: Path, tmp_path: Path, capsys,
                                                                values: str) -> None:
    out = tmp_path / "out"
    code = cli.main(["sweep", str(scenario), "--seeds", "2", "--set", f"simulation.seed={values}",
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and not out.exists()
    assert err.startswith("callsim: --set simulation.seed: ") and "--seeds" in err and len(err.splitlines()) == 1


def test_run_takes_its_seed_from_set_or_seed_but_not_both(scenario: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert cli.main(["run", str(scenario), "--set", "simulation.seed=5", "--quiet", "--out", str(out)]) == cli.EXIT_OK
    assert json.loads((out / "summary.json").read_text())["seed"] == 5
    capsys.readouterr()
    code = cli.main(["run", str(scenario), "--seed", "6", "--set", "simulation.seed=5", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and err.startswith("callsim: --seed and --set simulation.seed")


@pytest.mark.parametrize("option", ["orgs.contosso.credits.initial=1", "noequals", "orgs.acme.credits.initial"])
def test_a_bad_set_path_is_a_command_line_error_with_callsims_prefix(scenario: Path, tmp_path: Path, capsys,
                                                                     option: str) -> None:
    code = cli.main(["sweep", str(scenario), "--seeds", "2", "--set", option, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and err.startswith("callsim: --set ") and len(err.splitlines()) == 1


def test_a_scheduler_refusing_the_connection_is_one_line_at_once(scenario: Path, tmp_path: Path, capsys) -> None:
    with socket.socket() as bound:  # bound, not listening: a connection to it is refused
        bound.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{bound.getsockname()[1]}"
        code = cli.main(["sweep", str(scenario), "--seeds", "2", "--scheduler", address, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE and len(err.splitlines()) == 1, err
    assert err.startswith(f"callsim: --scheduler {address}: cannot reach") and "connection refused" in err
