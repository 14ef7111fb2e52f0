"""The written scenario: the real loader accepts it, `callsim run` runs it, and its comments
mark what is estimated; the fit report is written beside it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

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
    assert "seen at most once in this export" in report.read_text()  # a one-week export
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


def test_a_western_offset_is_taken_as_written_after_its_option(tmp_path: Path) -> None:
    """`--utc-offset -05:00`: argparse alone reads "-05:00" as an option and refuses it."""
    out = tmp_path / "west.toml"
    assert cli.main(["import", str(EXPORTS / "getPstnCalls.page1.json"), "--out", str(out), "--no-report",
                     "--utc-offset", "-05:00"]) == 0
    assert 'utc_offset = "-05:00"' in out.read_text()


def _export_rows(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    from simulator.usage import EXPORT_HEADER

    path.write_bytes(EXPORT_HEADER + "".join(
        f"u{i},c,,US,o,{upn},,,{call_type},Subscriber,Domestic,United States,+12125550100,"
        f"2026-11-02T{9 + i % 10:02d}:00:00Z,,60,0.00,0.00,USD,{capability}\r\n"
        for i, (upn, call_type, capability) in enumerate(rows)).encode())
    return path


def test_a_type_some_users_lack_the_licence_for_is_one_source_per_caller(tmp_path: Path) -> None:
    """alice and bob call out, carol and bob dial out: each source draws only from its callers,
    at their shares, so the run makes no not_licensed call the export never had."""
    from simulator.usage import import_usage, scenario_text

    path = _export_rows(tmp_path / "PSTN.calls.x.csv", [
        ("alice@contoso.com", "user_out", "MCOPSTN1"), ("bob@contoso.com", "user_out", "MCOPSTN1"),
        ("bob@contoso.com", "user_out", "MCOPSTN1"), ("carol@contoso.com", "conf_out", "MCOMEETADD"),
        ("bob@contoso.com", "conf_out", "MCOMEETADD")])
    out = tmp_path / "s.toml"
    out.write_text(scenario_text(import_usage([path])))
    load_scenario(out)
    text = out.read_text()
    sources = sorted((t["type"], t["users"], t["calls_per_hour"]) for t in tomllib.loads(text)["traffic"])
    assert [(kind, users) for kind, users, _ in sources] == [
        ("conference_dial_out", "bob"), ("conference_dial_out", "carol"), ("domestic", "alice"), ("domestic", "bob")]
    assert sources[3][2] == pytest.approx(2 * sources[2][2], rel=1e-5)  # bob placed 2 of the 3 domestic calls
    assert "bob's 2 of the 3 domestic calls (one source per caller" in text
    assert "not_licensed" not in text


def test_a_type_with_too_many_callers_to_split_says_which_users_lack_its_licence(tmp_path: Path) -> None:
    from simulator.usage import import_usage, scenario_text

    callers = [(f"u{i:02d}@contoso.com", "user_out", "MCOPSTN1") for i in range(21)]
    path = _export_rows(tmp_path / "PSTN.calls.x.csv", [*callers, ("carol@contoso.com", "conf_out", "MCOMEETADD")])
    text = scenario_text(import_usage([path]))
    assert ("# drawn from all 22 users; 1 of them (carol) lack domestic_calling_plan or "
            "international_calling_plan: their calls will be not_licensed") in text
    assert text.count("[[traffic]]") == 2  # carol alone dials out: `users = "carol"`
