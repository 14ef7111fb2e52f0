"""`callsim plan` end to end on a small scenario shaped like one `callsim import` writes (one
org, users by id with their licences, tariffs per prefix, flat traffic, a credits table), with
few seeds: the recommendation is re-run and holds, the next cheaper setting fails in the
plan's own evidence, and bad input is one line with exit status 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.plan import Setting, SweepEvaluator, plan_scenario, text, write
from simulator.scenario import ScenarioError, load_scenario
from simulator.sweep import SYNC, Override, RunSpec, run_one

# Twelve hours from 18:00; the card is valid through the first day, so recharges fail from 6 h on
# and the balance then has to carry the night's toll-free spend (40 calls/h x ~3.5 min x 0.05).
SCENARIO = """\
[simulation]
name = "imported-like"
seed = 5
start = "2026-11-02T18:00:00Z"
duration = "12h"
currency = "USD"

[plans]
domestic_minutes = { default = 3000 }

[[tariff]]
prefix = "1212"
country = "US"
zone = "A"
per_minute = "0.02"
increment = "60/60"

[[toll_free_tariff]]
prefix = "4420"
per_minute = "0.05"
increment = "60/60"

[[orgs]]
id = "contoso"
toll_free_numbers = ["+18005550100"]

[orgs.credits]
initial = "0"
card_expires = "2026-11-02"

[[orgs.users]]
id = "alice"
country = "US"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits"]

[[orgs.users]]
id = "bob"
country = "US"
licenses = ["phone_system", "domestic_calling_plan"]

[[orgs]]
id = "fourthcoffee"

[[orgs.users]]
id = "carol"
country = "US"
licenses = ["phone_system", "domestic_calling_plan"]

[[traffic]]
org = "contoso"
type = "toll_free"
calls_per_hour = 40
holding_mean = "3m"
destinations = ["4420"]

[[traffic]]
org = "contoso"
type = "domestic"
calls_per_hour = 2
holding_mean = "3m"
users = "alice"
destinations = ["1212"]

[[traffic]]
org = "fourthcoffee"
type = "domestic"
calls_per_hour = 1
holding_mean = "1m"
destinations = ["1212"]
"""


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "imported.toml"
    path.write_text(SCENARIO)
    return path


@pytest.fixture(scope="module")
def plan(scenario_file: Path):
    return plan_scenario(scenario_file, load_scenario(scenario_file), "contoso", 0.2, scheduler=SYNC)


def rerun(path: Path, org: str, setting: Setting, seed: int, fixed: tuple[Override, ...] = ()):
    """The org's figures of one run of `setting`, as `callsim run --seed S --set ...` gives them."""
    point = fixed + tuple(Override(f"orgs.{org}.credits.{k}", v) for k, v in (
        ("initial", str(setting.initial)), ("auto_recharge", True),
        ("recharge_below", str(setting.below)), ("recharge_amount", str(setting.amount))))
    return run_one(path.read_text(), str(path), RunSpec(point, seed)).orgs[org]


def test_recommendation_holds_when_re_run(plan, scenario_file: Path) -> None:
    rec = plan.recommended
    assert rec.risk.cuts == 0 and rec.seeds == 14 and rec.risk.upper < 0.2
    # the balance when the card stops (>= the trigger) carries the second day: the trigger is
    # about a day of spend, and the initial amount is trigger + amount
    assert rec.setting.initial == rec.setting.below + rec.setting.amount
    assert max(plan.window_micros) / 1e6 <= rec.setting.below + rec.setting.amount
    for outcome in rec.outcomes:
        again = rerun(scenario_file, "contoso", rec.setting, outcome.seed)
        assert again.calls_cut == outcome.cuts == 0
        assert again.credits_purchased_micros == outcome.purchased_micros
        assert again.recharges_succeeded == outcome.recharges
        assert again.lowest_balance_micros == outcome.lowest_balance_micros


def test_next_cheaper_setting_fails_the_target_in_the_evidence(plan, scenario_file: Path) -> None:
    cheaper = plan.cheaper
    assert cheaper is not None and cheaper.evidence is not None
    assert cheaper.setting.below < plan.recommended.setting.below
    assert cheaper.setting.amount == plan.recommended.setting.amount
    assert cheaper.evidence.risk.cuts > 0 and not cheaper.evidence.risk.below(0.2)
    cut_seed = next(o.seed for o in cheaper.evidence.outcomes if o.credit_cut)
    assert rerun(scenario_file, "contoso", cheaper.setting, cut_seed).calls_cut > 0


def test_plan_reads_as_the_admin_center_settings(plan, scenario_file: Path, tmp_path: Path) -> None:
    printed = text(plan, str(scenario_file))
    rec = plan.recommended.setting
    for line in (f"Initial amount:                      {rec.initial:,} USD", "Auto-recharge:",
                 f"Recharge when balance falls below:   {rec.below:,} USD",
                 f"Recharge amount:                     {rec.amount:,} USD",
                 "risk of a credit-caused cut: ≤ 19.3 % at 95 % confidence (0 of 14 runs cut)",
                 "Next cheaper setting, rejected",
                 "the payment card expires on 2026-11-02"):
        assert line in printed
    written = write(plan, str(scenario_file), tmp_path / "plan")
    document = json.loads(written[0].read_text())
    assert document["recommended"] == {"initial": rec.initial, "auto_recharge": True,
                                       "recharge_below": rec.below, "recharge_amount": rec.amount}
    assert document["evidence"]["risk"]["seeds_with_cut"] == 0
    assert document["cheaper"]["evidence"]["risk"]["seeds_with_cut"] > 0
    assert "<img" in written[1].read_text()


def test_org_without_credit_paid_traffic_needs_no_credits(scenario_file: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "no-credit-traffic.toml"
    path.write_text(SCENARIO.replace('type = "toll_free"', 'type = "domestic"\nusers = "bob"')
                    .replace('destinations = ["4420"]', 'destinations = ["1212"]')
                    .replace('domestic_minutes = { default = 3000 }', 'domestic_minutes = { default = 30000 }'))
    assert main(["plan", str(path), "--org", "contoso", "--max-cut-risk", "0.2", "--scheduler", "sync",
                 "--quiet", "--out", str(tmp_path / "out")]) == 0
    assert "No credits needed" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "plan.json").read_text())["no_credits_needed"] is True


@pytest.mark.parametrize(("args", "message"), [
    (["--org", "nobody", "--max-cut-risk", "0.01"], "no org 'nobody' (orgs: contoso, fourthcoffee)"),
    (["--org", "contoso", "--max-cut-risk", "1.5"], "--max-cut-risk: must be between 0 and 1, both excluded"),
    (["--org", "contoso", "--max-cut-risk", "0"], "--max-cut-risk: must be between 0 and 1"),
    (["--org", "contoso", "--max-cut-risk", "0.01", "--seeds", "50"], "at least 299"),
])
def test_bad_input_is_one_line_and_exit_2(scenario_file: Path, capsys, args: list[str], message: str) -> None:
    try:
        code = main(["plan", str(scenario_file), *args])
    except SystemExit as exit:  # argparse's own refusals
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err



def test_a_setting_the_scenario_cannot_take_is_named_as_its_set(scenario_file: Path) -> None:
    """A plan's runs are `callsim run --set ...`: the loader's refusal of one names that setting
    (cli.py prints it as one line, exit 2), not the line of the value it replaced."""
    evaluator = SweepEvaluator(scenario_file, "contoso", (Override("orgs.contoso.credits.card_expires", "someday"),),
                               scheduler=SYNC)
    with pytest.raises(ScenarioError) as err:
        evaluator.baseline([1], None)
    [problem] = err.value.problems
    assert not problem.file and str(problem).startswith(
        "--set orgs.contoso.credits.card_expires=someday: orgs[0].credits.card_expires: ")


def test_a_renewed_card_needs_only_the_lowest_trigger(scenario_file: Path) -> None:
    """With the card valid throughout, recharges never fail: only charges within one instant
    could outrun the balance, so the lowest typed trigger passes, and the amount is the cap's."""
    plan = plan_scenario(scenario_file, load_scenario(scenario_file), "contoso", 0.2, scheduler=SYNC,
                         card_renewed=True)
    rec = plan.recommended
    assert plan.card_dead_ms is None and plan.window_micros is None
    assert rec.setting.below == 1 and rec.risk.cuts == 0
    assert plan.cheaper.evidence is None and "recharges a month" in plan.cheaper.reason
    assert any("were renewed" in note for note in plan.notes)
    renewed = (Override("orgs.contoso.credits.card_expires", "9999-12-31"),)
    again = rerun(scenario_file, "contoso", rec.setting, rec.outcomes[0].seed, renewed)
    assert again.calls_cut == 0 and again.recharges_succeeded == rec.outcomes[0].recharges



def test_ctrl_c_stops_a_plan_with_exit_130(scenario_file: Path) -> None:
    """SIGINT to the process group, as a terminal sends it, once the search has started: the
    runs stop, one line, no traceback, 130."""
    command = [sys.executable, "-m", "simulator", "plan", str(scenario_file), "--org", "contoso",
               "--max-cut-risk", "0.01", "--scheduler", "sync"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        seen = ""
        while "callsim plan: screen:" not in seen:  # the baseline is done: the search is under way
            line = process.stderr.readline()
            assert line, seen
            seen += line
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "callsim: interrupted"
