"""The bundled sample usage export is what its scenario makes, and `callsim import` reads it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trio

from simulator.run import RunOptions, run_scenario
from simulator.scenario import load_scenario

REPO = Path(__file__).parents[3]
SAMPLES = REPO / "scenarios" / "usage"


def test_the_sample_is_what_its_scenario_writes(tmp_path: Path) -> None:
    """Regenerate it (docs in the scenario's header) when the traffic's draws change."""
    scenario = load_scenario(SAMPLES / "contoso_sample.toml")
    trio.run(run_scenario, scenario, RunOptions(out_dir=tmp_path, handle_sigint=False, teams_export=True))
    written = (tmp_path / "PSTN.calls.contoso-sample.csv").read_bytes()
    assert written == (SAMPLES / "PSTN.calls.contoso-sample.csv").read_bytes()


def test_callsim_import_reads_the_sample(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "simulator", "import", str(SAMPLES / "PSTN.calls.contoso-sample.csv"),
                           "--out", str(tmp_path / "contoso.toml"), "--utc-offset=-05:00", "--no-report"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "28 users, domestic 960, international 366, conference_dial_out 257, toll_free 397" in done.stdout
    assert load_scenario(tmp_path / "contoso.toml").setup.orgs[0].id == "contoso"
