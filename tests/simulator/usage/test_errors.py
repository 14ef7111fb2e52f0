"""Hostile exports: each fatal problem is one line naming file, row and column; each warning
is counted with its rows and listed in the scenario; nothing is dropped silently."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from simulator import cli
from simulator.usage import UsageError, import_usage, refuse_too_large, scenario_text
from simulator.usage import EXPORT_HEADER

EXPORTS = Path(__file__).parent / "exports"
GOOD = ("u1,c1,,US,o1,alice@contoso.com,Alice,,user_out,Subscriber,Domestic,United States,+12125550100,"
        "2026-11-02T09:00:00Z,,60,0.00,0.00,USD,MCOPSTN1")


def _export(tmp_path: Path, *rows: str, header: bytes = EXPORT_HEADER) -> Path:
    """An export of `rows`, each GOOD-based row given its own UsageId (a repeated one is skipped)."""
    path = tmp_path / "PSTN.calls.test.csv"
    rows = tuple(f"u{number}{row[2:]}" if row.startswith("u1,") else row for number, row in enumerate(rows, 2))
    path.write_bytes(header + "".join(row + "\r\n" for row in rows).encode())
    return path


def _bad(field: int, value: str) -> str:
    cells = GOOD.split(",")
    cells[field] = value
    return ",".join(cells)


@pytest.mark.parametrize(("row", "message"), [
    (_bad(13, "02/11/2026 09:00"), 'row 3: Start Time: malformed date "02/11/2026 09:00"'),
    (_bad(13, "2026-11-02T09:00:00"), 'row 3: Start Time: malformed date "2026-11-02T09:00:00" (ISO 8601 with an offset'),
    (_bad(15, "60.5"), 'row 3: Duration Seconds: malformed duration "60.5"'),
    (_bad(15, "-1"), 'row 3: Duration Seconds: malformed duration "-1"'),
    (_bad(17, '"1,5"'), 'row 3: Charge: malformed charge "1,5"'),
    (_bad(17, "-0.10"), 'row 3: Charge: malformed charge "-0.10"'),
    (_bad(18, "US Dollar"), 'row 3: Currency: malformed currency "US Dollar"'),
    (_bad(18, "EUR"), 'row 3: Currency: "EUR", but'),
    (_bad(10, "Local"), 'row 3: Domestic/International: "Local" on a user_out call'),
    (_bad(8, ""), "row 3: Call Type: empty call type"),
])
def test_a_malformed_row_is_fatal_and_named_by_row_and_column(tmp_path: Path, row: str, message: str) -> None:
    path = _export(tmp_path, GOOD, row, GOOD)
    with pytest.raises(UsageError) as caught:
        import_usage([path])
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_row_with_an_unquoted_comma_is_named(tmp_path: Path) -> None:
    path = _export(tmp_path, GOOD, GOOD, _bad(17, "1,5"))
    with pytest.raises(UsageError, match=r"row 4: 21 fields where the header has 20: not a well-formed CSV"):
        import_usage([path])


def test_the_count_of_further_bad_rows_is_said(tmp_path: Path) -> None:
    path = _export(tmp_path, GOOD, _bad(15, "x"), _bad(15, "y"), _bad(15, "z"))
    with pytest.raises(UsageError, match=r"row 3: Duration Seconds: .* \(and 2 more rows\)"):
        import_usage([path])


def test_mixed_currencies_name_both_rows(tmp_path: Path) -> None:
    path = _export(tmp_path, GOOD, GOOD, _bad(18, "GBP"))
    with pytest.raises(UsageError) as caught:
        import_usage([path])
    assert f'row 4: Currency: "GBP", but {path}: row 2 has "USD": a file mixing currencies' in str(caught.value)


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty file"),
    (b"\xef\xbb\xbf\r\n", "empty file"),
    (EXPORT_HEADER, "no calls: the export has a header and no rows"),
    (EXPORT_HEADER.replace(b",Charge,", b","), 'no column "Charge"'),
    (b"a,b\r\n1,2\r\n", 'not a PSTN usage export: no column "UPN"'),
])
def test_files_that_are_no_export_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "PSTN.calls.x.csv"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        import_usage([path])


def test_an_empty_graph_page_is_said_to_have_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "page.json"
    path.write_text('{"value": []}')
    with pytest.raises(UsageError) as caught:
        import_usage([path])
    assert str(caught.value) == f'{path}: no calls: the export has no rows (its "value" arrays are empty)'


def test_a_header_of_one_column_is_named_in_the_singular(tmp_path: Path) -> None:
    path = tmp_path / "PSTN.calls.x.csv"
    path.write_bytes(b"Name\r\nalice\r\n")
    with pytest.raises(UsageError, match=r'\(the header has 1 column: "Name"\)'):
        import_usage([path])


def test_graph_errors_name_the_page_and_index(tmp_path: Path) -> None:
    pages = json.loads((EXPORTS / "getPstnCalls.pages.json").read_text())
    pages[1]["value"][0]["startDateTime"] = "yesterday"
    path = tmp_path / "pages.json"
    path.write_text(json.dumps(pages))
    with pytest.raises(UsageError, match=r'pages.json: \[1\]\.value\[0\]: startDateTime: malformed date "yesterday"'):
        import_usage([path])
    path.write_text('{"@odata.context": "x"}')
    with pytest.raises(UsageError, match='expected a page with a "value" array'):
        import_usage([path])
    path.write_text('{"value": [')
    with pytest.raises(UsageError, match="not valid JSON"):
        import_usage([path])


def test_a_zip_without_the_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Calls.Export.1.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("DirectRouting.calls.csv", "x")
    with pytest.raises(UsageError, match=r'no PSTN.calls.\*.csv in the archive \(it holds "DirectRouting.calls.csv"\)'):
        import_usage([path])


def test_unknown_call_types_and_capabilities_are_counted_warnings_listed_in_the_scenario(tmp_path: Path) -> None:
    path = _export(tmp_path, GOOD, _bad(8, "dr_out"), _bad(19, "MCOFUTURE"), _bad(8, "dr_in"),
                   _bad(12, "not-a-number"))
    model = import_usage([path])
    lines = [warning.line() for warning in model.warnings]
    assert f"unknown call type or number type (not simulated): 2 rows ({path}: row 3 Call Type 'dr_out', " \
           f"{path}: row 5 Call Type 'dr_in')" in lines
    assert f'unknown capability (no licence inferred from it): 1 row ({path}: row 4 "MCOFUTURE")' in lines
    assert any(line.startswith("destination number not E.164") and "row 6" in line for line in lines)
    text = scenario_text(model)
    assert "# Warnings (rows read but not fully used):" in text
    assert all(f"#   {line}" in text for line in lines)
    assert next(fit for fit in model.traffic if fit.type == "domestic").calls == 3  # rows 2, 4, 6


def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    path = _export(tmp_path, GOOD, _bad(13, "soon"))
    out = tmp_path / "s.toml"
    assert cli.main(["import", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"callsim: {path}: row 3: Start Time: malformed date")
    assert not out.exists() and not (tmp_path / "s.fit.html").exists()


def test_cli_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.toml"
    out.write_text("mine")
    assert cli.main(["import", str(EXPORTS / "PSTN.calls.2026-11-08.csv"), "--out", str(out), "--no-report"]) == 2
    assert "exists: --force to replace it" in capsys.readouterr().err
    assert out.read_text() == "mine"
    assert cli.main(["import", str(EXPORTS / "PSTN.calls.2026-11-08.csv"), "--out", str(out), "--no-report",
                     "--force"]) == 0
    assert out.read_text().startswith("# Imported by `callsim import`")


def test_an_export_too_large_for_the_memory_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = _export(tmp_path, *[GOOD] * 1000)
    with pytest.raises(UsageError, match=r"PSTN.calls.test.csv: ~.* GiB of memory to import, more than 80% of "
                                         r"this machine's 0.1 GiB available \(--force or CALLSIM_FORCE=1"):
        refuse_too_large([path], available=100 << 20)
    refuse_too_large([path], available=64 << 30)  # room enough: no refusal


def test_cli_options_are_checked(tmp_path: Path, capsys) -> None:
    export = str(EXPORTS / "PSTN.calls.2026-11-08.csv")
    with pytest.raises(SystemExit) as caught:
        cli.main(["import", export, "--out", str(tmp_path / "s.toml"), "--utc-offset", "+15:00"])
    assert caught.value.code == 2 and '--utc-offset: expected an offset "+HH:MM"' in capsys.readouterr().err
    assert cli.main(["import", export, "--out", str(tmp_path / "s.toml"), "--org", "a b"]) == 2
    assert '--org: expected letters, digits' in capsys.readouterr().err


def test_values_padded_with_spaces_are_read(tmp_path: Path) -> None:
    padded = ",".join(f" {cell} " if i in (8, 10, 13, 15, 17, 18) else cell for i, cell in enumerate(GOOD.split(",")))
    model = import_usage([_export(tmp_path, padded)])
    (fit,) = model.traffic
    assert (fit.type, fit.calls, model.currency) == ("domestic", 1, "USD")
    assert list(fit.durations_s) == [60]


def test_rows_read_twice_are_skipped_and_counted(tmp_path: Path, capsys) -> None:
    export = EXPORTS / "PSTN.calls.2026-11-08.csv"
    once = import_usage([export])
    twice = import_usage([export, export])
    assert [(f.type, f.calls) for f in twice.traffic] == [(f.type, f.calls) for f in once.traffic]
    assert twice.credits_paid_micro == once.credits_paid_micro and twice.rows == 2 * once.rows
    (warning,) = [w for w in twice.warnings if w.problem.startswith("UsageId already read")]
    assert warning.count == once.rows and warning.places[0] == f'{export}: row 2 "a1"'
    out = tmp_path / "s.toml"
    assert cli.main(["import", str(export), str(export), "--out", str(out), "--no-report"]) == 0
    assert f"warning: {warning.line()}" in capsys.readouterr().err
    assert f"#   {warning.line()}" in out.read_text()
    page = EXPORTS / "getPstnCalls.page1.json"
    pages = import_usage([page, page, EXPORTS / "getPstnCalls.page2.json"])
    assert sum(f.calls for f in pages.traffic) == sum(
        f.calls for f in import_usage([page, EXPORTS / "getPstnCalls.page2.json"]).traffic)
    assert any(w.line().startswith(f'UsageId already read (the row is skipped): ') and f'{page}: value[0] "g1"'
               in w.line() for w in pages.warnings)


def test_an_export_without_usage_ids_keeps_every_row(tmp_path: Path) -> None:
    header = EXPORT_HEADER.replace(b"UsageId,", b"")
    row = GOOD.split(",", 1)[1]
    model = import_usage([_export(tmp_path, row, row, header=header)])
    assert [(f.type, f.calls) for f in model.traffic] == [("domestic", 2)] and not model.warnings


def test_the_folders_of_out_are_created(tmp_path: Path, capsys) -> None:
    out = tmp_path / "missing" / "deeper" / "s.toml"
    assert cli.main(["import", str(EXPORTS / "PSTN.calls.2026-11-08.csv"), "--out", str(out)]) == 0
    assert out.read_text().startswith("# Imported by") and (out.parent / "s.fit.html").exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert cli.main(["import", str(EXPORTS / "PSTN.calls.2026-11-08.csv"), "--out", str(blocked / "s.toml"),
                     "--no-report"]) == 2
    assert f"cannot write {blocked / 's.toml'}: a file is in the way of its folder\n" in capsys.readouterr().err
