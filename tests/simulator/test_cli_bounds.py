"""Numeric options out of range, and empty paths: one line and exit 2 before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import cli

from ..scenarios import REPO
QUICKSTART = str(REPO / "scenarios" / "quickstart.toml")


def _refused(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == cli.EXIT_USAGE
    [line] = capsys.readouterr().err.splitlines()
    return line


@pytest.mark.parametrize("option, value", [
    ("--speed", "1e308"), ("--speed", "1000001"), ("--speed", "0"), ("--speed", "nan"),
    ("--metrics-linger", "1e308"), ("--metrics-linger", "86401"),
    ("--metrics-max-orgs", "1000001"), ("--metrics-max-orgs", "9" * 40),
])
def test_a_run_option_beyond_its_bound_is_one_line_and_exit_2(tmp_path: Path, capsys,
                                                              option: str, value: str) -> None:
    line = _refused(capsys, ["run", QUICKSTART, "--out", str(tmp_path / "o"), option, value])
    assert option in line and value in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("option, value", [
    ("--calls", "-5"), ("--calls", "0"), ("--calls", "50000001"), ("--orgs", "-1"), ("--orgs", "0"),
    ("--orgs", "1000001"),
])
def test_a_bench_size_beyond_its_bound_is_one_line_and_exit_2(capsys, option: str, value: str) -> None:
    line = _refused(capsys, ["bench", "--skip-e2e", option, value])
    assert option in line and "whole number" in line


def test_serve_refuses_an_empty_out(capsys) -> None:
    """"" would be the current directory, whose summary.json the server would replace; the
    parser refuses it, before anything is loaded or listened on."""
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(["serve", str(REPO / "scenarios" / "server_demo.toml"),
                                       "--out", ""])
    assert stop.value.code == cli.EXIT_USAGE
    [line] = capsys.readouterr().err.splitlines()
    assert "--out" in line and "empty" in line


def test_the_fastest_speed_still_runs(tmp_path: Path, capsys) -> None:
    assert cli.main(["run", QUICKSTART, "--out", str(tmp_path), "--quiet", "--speed", "1e6"]) == 0


def test_validate_warns_of_two_orgs_sharing_a_token_variable(tmp_path: Path, capsys) -> None:
    """`acme-eu` and `acme_eu` are both CALLSIM_TOKEN_ACME_EU: valid to run, refused by serve."""
    text = (REPO / "scenarios" / "quickstart.toml").read_text()
    two = text + "\n".join(['', '[[orgs]]', 'id = "acme-eu"', '', '[[orgs]]', 'id = "acme_eu"', ''])
    path = tmp_path / "two.toml"
    path.write_text(two)
    assert cli.main(["validate", str(path)]) == cli.EXIT_OK
    warnings = [line for line in capsys.readouterr().err.splitlines() if "acme" in line]
    assert warnings == [f'warning: {path}: orgs "acme-eu" and "acme_eu" both take their token from '
                        "CALLSIM_TOKEN_ACME_EU: callsim serve refuses the file until one is renamed"]
