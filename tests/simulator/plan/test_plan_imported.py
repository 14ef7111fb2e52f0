"""`callsim plan` on a fresh `callsim import` of the bundled sample export: the org has no
`[orgs.credits]` table (the import leaves it commented out) and no card, and is planned as if
credits with auto-recharge were set up, paid by a card that never expires; the recommendation
holds when its runs are re-run by hand."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.scenario import load_scenario
from simulator.sweep import RunSpec, run_one

SAMPLE = Path(__file__).parents[3] / "scenarios" / "usage" / "PSTN.calls.contoso-sample.csv"


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    """The imported scenario, what plan printed, and its plan.json (a loose target: 14 seeds)."""
    work = tmp_path_factory.mktemp("imported")
    scenario = work / "contoso.toml"
    assert main(["import", str(SAMPLE), "--out", str(scenario)]) == 0
    assert load_scenario(scenario).setup.orgs[0].credits is None  # the table is commented out
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["plan", str(scenario), "--org", "contoso", "--max-cut-risk", "0.2",
                     "--scheduler", "sync", "--quiet", "--out", str(work / "plan")])
    assert code == 0, printed.getvalue()
    return scenario, printed.getvalue(), json.loads((work / "plan" / "plan.json").read_text())


def test_an_imported_scenario_gets_a_recommendation(planned) -> None:
    scenario, printed, document = planned
    rec = document["recommended"]
    assert rec is not None and rec["auto_recharge"] is True
    assert f"Initial amount:                      {rec['initial']:,} USD" in printed
    assert f"Recharge when balance falls below:   {rec['recharge_below']:,} USD" in printed
    notes = [line for line in printed.splitlines() if "no [orgs.credits] table" in line]
    assert notes == ["Note: org contoso has no [orgs.credits] table in the scenario: planned as if "
                     "communications credits with auto-recharge were set up, paid by a card that "
                     "never expires."]
    assert document["card_stops_ms"] is None
    risk = document["evidence"]["risk"]
    assert risk["seeds"] == 14 and risk["seeds_with_cut"] == 0 and risk["upper_bound"] < 0.2
    assert risk["stated"] == "≤ 19.3 % at 95 % confidence (0 of 14 runs cut)"
    assert f"risk of a credit-caused cut: {risk['stated']}" in printed
    assert f"<td>{risk['stated']}</td>" in (scenario.parent / "plan" / "plan.html").read_text()


def test_the_recommendation_holds_when_re_run(planned) -> None:
    """Each verification seed re-run from the imported file with its commented-out credits
    table filled in as the recommendation says, as the administrator would (nothing of plan's)."""
    scenario, _, document = planned
    rec, evidence = document["recommended"], document["evidence"]
    table = (f'[orgs.credits]\ninitial = "{rec["initial"]}"\nauto_recharge = true\n'
             f'recharge_below = "{rec["recharge_below"]}"\nrecharge_amount = "{rec["recharge_amount"]}"\n')
    text, filled = re.subn(r"^# \[orgs\.credits\]\n(?:# .*\n)*", table, scenario.read_text(), flags=re.M)
    assert filled == 1
    purchased = []
    for seed in evidence["seeds"]:
        org = run_one(text, str(scenario), RunSpec((), seed)).orgs["contoso"]
        assert org.balance_exhausted == 0 and org.credits_spent_micros > 0
        purchased.append(org.credits_purchased_micros)
    mean = (2 * sum(purchased) + len(purchased)) // (2 * len(purchased))
    assert f"{mean / 1e6:.6f}" == evidence["credits_purchased_mean"].replace(",", "")


def test_a_credits_table_override_is_hashable_read_only_and_pickles() -> None:
    """sweep keys its points by their overrides, and one table serves every run of a point."""
    import pickle

    from simulator.plan._runner import CreditsTable

    table = CreditsTable({"initial": "29", "auto_recharge": True})
    assert hash(table) == hash(CreditsTable({"auto_recharge": True, "initial": "29"}))
    with pytest.raises(TypeError):
        table["initial"] = "30"
    again = pickle.loads(pickle.dumps(table))
    assert type(again) is CreditsTable and again == table
