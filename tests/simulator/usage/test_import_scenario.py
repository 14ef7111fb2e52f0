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


def test_a_traffic_drawn_from_users_without_its_licence_says_so(tmp_path: Path) -> None:
    from simulator.usage import EXPORT_HEADER, import_usage, scenario_text

    def row(upn: str, call_type: str, capability: str, hour: int) -> str:
        return (f"u,c,,US,o,{upn},,,{call_type},Subscriber,Domestic,United States,+12125550100,"
                f"2026-11-02T{hour:02d}:00:00Z,,60,0.00,0.00,USD,{capability}\r\n")

    path = tmp_path / "PSTN.calls.x.csv"
    path.write_bytes(EXPORT_HEADER + "".join([
        row("alice@contoso.com", "user_out", "MCOPSTN1", 9), row("bob@contoso.com", "user_out", "MCOPSTN1", 10),
        row("carol@contoso.com", "conf_out", "MCOMEETADD", 11), row("bob@contoso.com", "conf_out", "MCOMEETADD", 12),
    ]).encode())
    text = scenario_text(import_usage([path]))
    assert ("# drawn from all 3 users; 1 of them (carol) lack domestic_calling_plan or "
            "international_calling_plan: their calls will be not_licensed") in text
    assert "# drawn from all 3 users; 1 of them (alice) lack audio_conferencing" in text
