"""Sweeps on Dask: a LocalCluster, a real scheduler with two workers on loopback, and run by
run in this process give the same RunSummaries, equal to what `callsim run --seed S --set ...`
writes; a run that fails is reported with its seed and setting, and the others still finish."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from simulator import cli
from simulator.sweep import SYNC, derive_seeds, grid, open_cluster, parse_set, run_many, run_specs

from .cluster import dask_cluster
from .files import TEXT, summary_from_files

SETS = ["orgs.acme.credits.recharge_amount=3.00,8.00"]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> str:
    with dask_cluster(2, tmp_path_factory.mktemp("dask-logs")) as address:
        yield address


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(TEXT)
    return path


def test_local_cluster_real_scheduler_and_one_by_one_agree_with_callsim_run(
        scheduler: str, scenario: Path, tmp_path: Path) -> None:
    specs = run_specs(grid([parse_set(s) for s in SETS]), derive_seeds(11, 2))
    here = run_many(scenario, specs, scheduler=SYNC)
    local = run_many(scenario, specs, workers=2)
    remote = run_many(scenario, specs, scheduler=scheduler, workers=2)
    assert (local.workers, remote.workers) == (2, 2)
    for result in (here, local, remote):
        assert not result.failures and not result.interrupted
        assert [(r.point, r.seed) for r in result.runs] == [(s.point, s.seed) for s in specs]
    assert local.runs == here.runs == remote.runs
    for i, run in enumerate(here.runs):
        out = tmp_path / f"run-{i}"
        options = [item for o in run.point for item in ("--set", str(o))]
        assert cli.main(["run", str(scenario), "--out", str(out), "--seed", str(run.seed), "--quiet",
                         *options]) == cli.EXIT_OK
        files = summary_from_files(out)
        assert {org: replace(s, credits_spent_by_day_micros=()) for org, s in
                {**run.orgs, "total": run.total}.items()} == files


def test_one_cluster_serves_several_sweeps(scheduler: str, scenario: Path) -> None:
    specs = run_specs([()], derive_seeds(11, 2))
    with open_cluster(scheduler, 2) as cluster:
        first = run_many(scenario, specs, cluster=cluster)
        second = run_many(scenario, specs[:1], cluster=cluster)
    assert second.runs == first.runs[:1] and first.workers == 2


def test_a_failed_run_is_reported_with_its_seed_and_setting(scheduler: str, scenario: Path,
                                                            tmp_path: Path) -> None:
    """Its files cannot be kept (a file stands where the runs' directory should be): every
    run fails in its worker, each is named, and the sweep returns."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    specs = run_specs(grid([parse_set(s) for s in SETS]), derive_seeds(11, 2))
    result = run_many(scenario, specs, scheduler=scheduler, keep_runs=blocked)
    assert result.runs == [] and len(result.failures) == len(specs)
    for failure, spec in zip(sorted(result.failures, key=lambda f: specs.index(f.spec)), specs):
        assert failure.spec == spec
        assert str(failure).startswith(f"run with seed {spec.seed} at {spec.point[0]}: ")
        assert "Error" in failure.problem and "\n" not in str(failure)


def test_keep_runs_writes_each_runs_files_as_callsim_run(scheduler: str, scenario: Path, tmp_path: Path) -> None:
    specs = run_specs(grid([parse_set(s) for s in SETS]), derive_seeds(11, 1))
    result = run_many(scenario, specs, scheduler=scheduler, keep_runs=tmp_path / "kept")
    for i, run in enumerate(result.runs):
        kept = tmp_path / "kept" / f"point-{i}" / f"seed-{run.seed}"
        files = summary_from_files(kept)
        assert files["total"] == replace(run.total, credits_spent_by_day_micros=())
        assert {p.name for p in kept.iterdir()} >= {"cdrs.csv", "events.jsonl", "summary.json"}
