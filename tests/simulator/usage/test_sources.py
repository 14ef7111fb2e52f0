"""Reading exports: the admin center CSV (BOM, CRLF, quoted commas), its zip with
parameters.json, and Graph getPstnCalls pages, each row keeping its place."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from simulator.usage import check_rows, import_usage, read_source

EXPORTS = Path(__file__).parent / "exports"
CSV = EXPORTS / "PSTN.calls.2026-11-08.csv"


def test_csv_with_bom_crlf_and_quoted_commas_reads_every_row_in_place() -> None:
    assert CSV.read_bytes().startswith(b"\xef\xbb\xbf") and b"\r\n" in CSV.read_bytes()
    source = read_source(CSV)
    frame = source.frame
    assert frame.height == 7
    assert frame["upn"][0] == "alice@contoso.com"  # the BOM did not stick to the first column
    assert frame["call_type"].to_list()[:4] == ["user_out", "user_out", "user_out", "conf_out"]
    assert frame["_row"].to_list() == [2, 3, 4, 5, 6, 7, 8]  # the header is row 1
    assert source.place(-1, 4) == f"{CSV}: row 4"


def test_zip_finds_the_csv_and_reads_the_period_from_parameters_json() -> None:
    source = read_source(EXPORTS / "Calls.Export.5b7c2e.zip")
    assert source.name.endswith("Calls.Export.5b7c2e.zip:PSTN.calls.2026-11-08.csv")
    assert source.frame.height == 7
    # EndDate is a day, inclusive: the period runs to the end of 2026-11-08
    assert source.period == (datetime(2026, 11, 2, tzinfo=timezone.utc), datetime(2026, 11, 9, tzinfo=timezone.utc))
    model = import_usage([EXPORTS / "Calls.Export.5b7c2e.zip"])
    assert model.period.said_by == "parameters.json"
    assert model.period.end_ms - model.period.start_ms == 7 * 86_400_000


def test_graph_pages_one_per_file_or_a_list_of_pages_give_the_same_rows() -> None:
    two_files = check_rows([read_source(EXPORTS / "getPstnCalls.page1.json"),
                            read_source(EXPORTS / "getPstnCalls.page2.json")])
    one_file = check_rows([read_source(EXPORTS / "getPstnCalls.pages.json")])
    columns = ["upn", "kind", "start_ms", "duration_s", "charge_micro", "destination"]
    assert two_files.frame.select(columns).equals(one_file.frame.select(columns))
    assert two_files.frame["kind"].to_list() == ["domestic", "international", "conference_dial_out"]
    assert two_files.frame["charge_micro"].to_list() == [0, 420_000, 0]
    assert one_file.place(2).endswith("getPstnCalls.pages.json: [1].value[0]")
    assert two_files.place(1).endswith("getPstnCalls.page1.json: value[1]")


def test_graph_import_keeps_the_currency_and_reads_hours_on_the_written_offset() -> None:
    model = import_usage([EXPORTS / "getPstnCalls.pages.json"])
    assert model.currency == "EUR"
    assert model.org == "fabrikam"
    assert model.period.offset_min == 60
    domestic = next(fit for fit in model.traffic if fit.type == "domestic")
    assert domestic.rates.busy_hour == 24 + 14  # Tuesday 14:00 local (+01:00), 13:00 UTC


def test_the_same_rows_as_csv_or_graph_json_give_the_same_scenario(tmp_path: Path) -> None:
    import json

    import polars as pl

    from simulator.usage import GRAPH_FIELDS, scenario_text

    from .synthetic import office_week, write_export

    csv = tmp_path / "PSTN.calls.x.csv"
    write_export(csv, office_week(5.0), weeks=1, seed=9)
    numbers = {"duration": int, "charge": float, "connectionCharge": float}
    rows = [{field: numbers.get(field, str)(row[column]) if row[column] else None
             for field, column in GRAPH_FIELDS.items()}
            for row in pl.read_csv(csv, infer_schema=False).iter_rows(named=True)]
    half = len(rows) // 2
    pages = tmp_path / "pages.json"
    pages.write_text(json.dumps([{"value": rows[:half], "@odata.nextLink": "https://..."}, {"value": rows[half:]}]))

    def body(path: Path) -> str:
        return scenario_text(import_usage([path])).split("\n", 1)[1]  # the first line names the file

    assert body(csv) == body(pages)
