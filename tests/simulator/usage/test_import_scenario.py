"""The written scenario: the real loader accepts it, `callsim run` runs it, and its comments
mark what is estimated; the fit report is written beside it."""

from __future__ import annotations

from pathlib import Path

from simulator import cli
from simulator.scenario import load_scenario
from simulator.usage import ESTIMATE_MARK

EXPORTS = Path(__file__).parent / "exports"


def test_the_imported_scenario_loads_runs_and_has_its_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "contoso.toml"
    assert cli.main(["import", str(EXPORTS / "Calls.Export.5b7c2e.zip"), "--out", str(out)]) == 0
    text = out.read_text()
    scenario = load_scenario(out)
    assert {o.id for o in scenario.setup.orgs} == {"contoso"}
    assert sorted(spec.type for spec in scenario.traffic) == sorted(
        ["domestic", "international", "conference_dial_out", "toll_free"])
    assert 'toll_free_numbers = ["+18005550100"]' in text
    assert text.count("[[tariff]]") == text.count(ESTIMATE_MARK) - text.count("[[toll_free_tariff]]")
    assert "# [orgs.credits]" in text and 'start = "2026-11-02T00:00:00Z"' in text
    assert '# hours of the week are read on the local clock UTC+00:00' in text
    report = tmp_path / "contoso.fit.html"
    assert report.exists() and (tmp_path / "contoso.fit" / "domestic.png").exists()
    assert "holding-time gap D" in report.read_text()
    capsys.readouterr()
    assert cli.main(["run", str(out), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "cdrs.csv").exists()


def test_graph_pages_import_to_a_scenario_in_their_currency(tmp_path: Path) -> None:
    out = tmp_path / "fabrikam.toml"
    assert cli.main(["import", str(EXPORTS / "getPstnCalls.page1.json"), str(EXPORTS / "getPstnCalls.page2.json"),
                     "--out", str(out), "--no-report", "--utc-offset", "+01:00"]) == 0
    scenario = load_scenario(out)
    assert scenario.setup.currency == "EUR" if hasattr(scenario.setup, "currency") else True
    text = out.read_text()
    assert 'currency = "EUR"' in text and 'utc_offset = "+01:00"' in text
    assert 'prefix = "4420"' in text and 'country = "GB"' in text and 'country = "DE"' in text
