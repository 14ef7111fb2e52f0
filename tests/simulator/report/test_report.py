"""`callsim report`: the page, its charts, the readers behind it, and bad input."""

from __future__ import annotations

import base64
import dataclasses
import html.parser
import json
import re
import warnings
from pathlib import Path

import msgpack
import numpy as np
import pytest

from simulator import cli
from simulator.report._data import Cdrs, ReportError, load_run
from simulator.report._series import (
    active_calls,
    balance_curves,
    connected_levels,
    pool_curves,
    spread_cumulative,
    time_grid,
)
from simulator.units import format_micro, format_micro_grouped
from simulator.report._charts import TimeAxis
from simulator.report._report import MAX_ORG_PANELS, _balance_title, build_report, rank_orgs
from tests.scenarios import REPO, scenario_toml

ROOT = REPO
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTIONS = ("at-a-glance", "credit-balance", "pool-remaining", "active-calls", "calls-ended",
            "top-orgs", "method")
CHARTS = ("credit_balance.png", "pool_remaining.png", "active_calls.png", "calls_ended.png")


def run_cli(*argv: str) -> int:
    return cli.main(list(argv))


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quickstart")
    assert run_cli("run", str(QUICKSTART), "--out", str(out), "--quiet") == 0
    return out


@pytest.fixture(scope="module")
def quickstart_report(quickstart_run: Path) -> Path:
    assert run_cli("report", str(quickstart_run)) == 0
    return quickstart_run / "report.html"


def many_orgs_scenario(n_orgs: int) -> str:
    """`n_orgs` orgs with credits, pools and traffic, across a month boundary (refills)."""
    parts = ["""
[simulation]
name = "many_orgs"
seed = 3
start = "2026-11-30T21:00:00Z"
duration = "6h"
currency = "EUR"

[plans]
domestic_minutes = { default = 20 }

[[tariff]]
prefix = "49"
country = "DE"
zone = "A"
per_minute = "0.05"
increment = "60/60"
"""]
    for i in range(n_orgs):
        parts.append(f"""
[[orgs]]
id = "org-{i:02d}"

[orgs.credits]
initial = "{2 + i}.00"
auto_recharge = {"true" if i % 2 else "false"}
recharge_below = "1.00"
recharge_amount = "3.00"
card_expires = "2027-06-30"
retry_after = "1h"

[[orgs.users]]
group = "staff"
count = 3
country = "DE"
licenses = ["phone_system", "domestic_calling_plan", "communications_credits"]

[[traffic]]
org = "org-{i:02d}"
type = "domestic"
calls_per_hour = {10 + 4 * i}
holding_mean = "5m"
destinations = ["4930"]
""")
    return "".join(parts)


@pytest.fixture(scope="module")
def many_orgs_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("many")
    scenario = base / "many.toml"
    scenario.write_text(many_orgs_scenario(MAX_ORG_PANELS + 4))
    out = base / "out"
    assert run_cli("run", str(scenario), "--out", str(out), "--quiet") == 0
    return out


class _PageParser(html.parser.HTMLParser):
    """Sections, images and the top-orgs table rows of a report page."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "section":
            self.sections.append(attributes.get("id") or "")
        elif tag == "img":
            self.images.append(attributes.get("src") or "")
        elif tag == "tr" and self.sections and self.sections[-1] == "top-orgs":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None


def parse_page(path: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


# --- the page ---------------------------------------------------------------------------------


def test_report_has_every_section_and_embeds_the_pngs_written_next_to_it(quickstart_report: Path) -> None:
    page = parse_page(quickstart_report)
    assert [s for s in page.sections if s] == list(SECTIONS)
    png_dir = quickstart_report.parent / "report"
    assert sorted(p.name for p in png_dir.iterdir()) == sorted(CHARTS)
    embedded = [base64.b64decode(src.removeprefix("data:image/png;base64,")) for src in page.images]
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert embedded == [(png_dir / name).read_bytes() for name in CHARTS]
    assert all(png.startswith(PNG_SIGNATURE) for png in embedded)


def test_report_is_self_contained(quickstart_report: Path) -> None:
    text = quickstart_report.read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(?!data:|#)', text)  # no external file or URL


def test_top_orgs_table_shows_summary_json_figures(quickstart_run: Path, quickstart_report: Path) -> None:
    summary = json.loads((quickstart_run / "summary.json").read_text())
    rows = parse_page(quickstart_report).rows
    header, body, total = rows[0], rows[1:-1], rows[-1]
    assert header[:3] == ["#", "org", "calls"]
    column = {name: i for i, name in enumerate(header)}
    assert [row[1] for row in body] == list(summary["orgs"])
    for row, section in [(r, summary["orgs"][r[1]]) for r in body] + [(total, summary["total"])]:
        assert row[column["calls"]] == f"{section['calls']:,}"
        for money in ("credits charged", "credits purchased", "final balance"):
            field = money.replace(" ", "_")
            assert row[column[f"{money} (USD)"]].replace(",", "") == section[field]
        assert row[column["recharges ok"]] == str(section["recharges_succeeded"])
        assert row[column["recharges failed"]] == str(section["recharges_failed"])
        assert row[column["billed (h)"]] == f"{section['billed_s'] / 3600:,.1f}"
        assert row[column["dropped: balance exhausted"]] == \
            str(section["calls_by_end_reason"]["dropped_balance_exhausted"])


def _glance(page: Path) -> dict[str, str]:
    """The At-a-glance cells of a report page: label -> value."""
    section = re.search(r'<section id="at-a-glance">(.*?)</section>', page.read_text(encoding="utf-8"))
    assert section is not None
    return {label: value for value, label in
            re.findall(r"<div><b>(.*?)</b><span>(.*?)</span></div>", section.group(1))}


def test_money_is_shown_exactly_at_a_glance_in_the_table_and_in_panel_titles(
        quickstart_run: Path, tmp_path: Path) -> None:
    """The figures of a month whose balance ran out: 61499.999500 charged, 0.000500 left, never
    rounded to 61,500.00 and 0.00."""
    run = _copy(quickstart_run, tmp_path / "run", *ALL_FILES)
    summary = json.loads((run / "summary.json").read_text())
    for section in (summary["orgs"]["contoso"], summary["total"]):
        section.update(credits_charged="61499.999500", credits_purchased="61500.000000",
                       final_balance="0.000500")
    (run / "summary.json").write_text(json.dumps(summary))
    assert run_cli("report", str(run)) == 0
    glance = _glance(run / "report.html")
    assert glance["credits charged"] == "61,499.999500 USD"
    assert glance["final balance, all orgs"] == "0.000500 USD"
    rows = parse_page(run / "report.html").rows
    column = {name: i for i, name in enumerate(rows[0])}
    for row in rows[1:]:
        assert row[column["credits charged (USD)"]] == "61,499.999500"
        assert row[column["credits purchased (USD)"]] == "61,500.000000"
        assert row[column["final balance (USD)"]] == "0.000500"
    data = load_run(run)
    title = _balance_title(data, data.org_ids.index("contoso"), TimeAxis(data.start, data.duration_ms))
    assert "61,499.999500 USD charged" in title and "final 0.000500 USD" in title


@pytest.mark.parametrize(("micro", "text"), [
    (0, "0.000000"), (500, "0.000500"), (-500, "-0.000500"), (999_999_999, "999.999999"),
    (1_000_000_000, "1,000.000000"), (61_499_999_500, "61,499.999500"),
    (-1_234_567_000_001, "-1,234,567.000001"), (2**63 - 1, "9,223,372,036,854.775807"),
])
def test_money_for_people_is_exact_with_thousands_separators(micro: int, text: str) -> None:
    assert format_micro_grouped(micro) == text
    assert format_micro_grouped(micro).replace(",", "") == format_micro(micro)


def test_output_option_puts_page_and_pngs_where_asked(quickstart_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "pages" / "qs.html"
    assert run_cli("report", str(quickstart_run), "--output", str(target)) == 0
    assert target.is_file()
    assert sorted(p.name for p in (tmp_path / "pages" / "qs").iterdir()) == sorted(CHARTS)


def test_many_orgs_panels_are_capped_and_the_page_says_so(many_orgs_run: Path) -> None:
    report = build_report(many_orgs_run)
    text = report.html.read_text(encoding="utf-8")
    summary = json.loads((many_orgs_run / "summary.json").read_text())
    n = len(summary["orgs"])
    assert n > MAX_ORG_PANELS
    assert f"Showing the {MAX_ORG_PANELS} orgs with the most credits charged, of the {n} orgs" in text
    rows = parse_page(report.html).rows
    ranked = [list(summary["orgs"])[o] for o in rank_orgs(summary)]
    assert [row[1] for row in rows[1:-1]] == ranked  # every org fits in the table, by rank
    charged = [summary["orgs"][org]["credits_charged"] for org in ranked]
    assert charged == sorted(charged, key=lambda c: -float(c))


def test_pools_drain_and_refill_to_capacity_across_a_month_boundary(many_orgs_run: Path) -> None:
    run = load_run(many_orgs_run)
    assert run.events.of("pools_refilled").any()
    curves = pool_curves(run, [0, len(run.org_ids) - 1], time_grid(run.duration_ms))
    assert curves
    for curve in curves:
        if curve.capacity_exact:
            assert curve.capacity_s == 3 * 20 * 60  # 3 users x 20 domestic minutes
        refill = np.searchsorted(curve.at_ms, curve.refills_ms[0])
        assert curve.remaining_s[refill - 1] < curve.capacity_s  # drained before ...
        assert curve.remaining_s[refill] == pytest.approx(curve.capacity_s)  # ... full again


EMPTY_SCENARIO = scenario_toml(name="empty", org="quiet", users=[{"id": "u", "country": "US", "licenses": ["phone_system"]}])


@pytest.mark.parametrize("keep_msgpack", [True, False])
def test_a_run_without_calls_or_events_renders_without_warnings(tmp_path: Path, keep_msgpack: bool) -> None:
    scenario = tmp_path / "empty.toml"
    scenario.write_text(EMPTY_SCENARIO)
    out = tmp_path / "out"
    assert run_cli("run", str(scenario), "--out", str(out), "--quiet") == 0
    if not keep_msgpack:
        (out / "cdrs.msgpack").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "no artists with labels"
        report = build_report(out)
    page = parse_page(report.html)
    assert [s for s in page.sections if s] == list(SECTIONS)
    assert len(page.images) == len(CHARTS)
    assert len(load_run(out).cdrs) == 0
    assert page.rows[-1][2] == "0"  # the total row: no calls


# --- reconstructions --------------------------------------------------------------------------


def test_spread_cumulative_ramps_each_amount_over_its_interval() -> None:
    at = np.array([0, 5, 10, 15, 20, 30])
    keys = np.array([0, 0, 1])
    got = spread_cumulative(keys, 2, np.array([0, 10, 5]), np.array([10, 20, 5]),
                            np.array([10.0, 5.0, 3.0]), at)
    assert got.tolist() == [[0, 5, 10, 12.5, 15, 15], [0, 3, 3, 3, 3, 3]]


def test_balance_curve_ends_on_the_final_balance(quickstart_run: Path) -> None:
    run = load_run(quickstart_run)
    summary = run.summary
    for curve in balance_curves(run, list(range(len(run.org_ids))), time_grid(run.duration_ms)):
        final = summary["orgs"][run.org_ids[curve.org]]["final_balance"]
        assert curve.at_ms[-1] == run.duration_ms
        assert curve.balance[-1] == pytest.approx(float(final), abs=1e-6)


def test_pool_curve_ends_on_the_remaining_seconds(quickstart_run: Path) -> None:
    run = load_run(quickstart_run)
    remaining = run.summary["orgs"]["contoso"]["pool_remaining_s"]
    curves = pool_curves(run, [0], time_grid(run.duration_ms))
    assert {c.pool_name for c in curves} == set(remaining)
    for curve in curves:
        assert curve.remaining_s[-1] == pytest.approx(remaining[curve.pool_name])
        assert curve.remaining_s[0] == pytest.approx(curve.capacity_s)


def test_active_calls_mean_integrates_to_connected_time_and_peak_is_exact(quickstart_run: Path) -> None:
    run = load_run(quickstart_run)
    active = active_calls(run, 5, 300_000)
    connected_ms = (active.mean_by_type * np.diff(active.edges_ms)).sum()
    assert connected_ms == pytest.approx(float((run.cdrs.end_ms - run.cdrs.start_ms).sum()))
    # brute force: at each start, count calls with start <= t < end
    s, e = run.cdrs.start_ms, run.cdrs.end_ms
    connected = e > s
    brute = max(int(((s[connected] <= t) & (t < e[connected])).sum()) for t in s[connected])
    assert active.max_level == brute == active.peak.max()
    times, level = connected_levels(run)
    assert level[-1] == 0 and np.all(np.diff(times) >= 0)


# --- readers ----------------------------------------------------------------------------------


def _same_cdrs(a: Cdrs, b: Cdrs) -> None:
    for field in dataclasses.fields(Cdrs):
        assert np.array_equal(getattr(a, field.name), getattr(b, field.name)), field.name


def test_msgpack_and_csv_give_the_same_columns(quickstart_run: Path, tmp_path: Path) -> None:
    only_msgpack = _copy(quickstart_run, tmp_path / "msgpack", "summary.json", "events.jsonl", "cdrs.msgpack")
    only_csv = _copy(quickstart_run, tmp_path / "csv", "summary.json", "events.jsonl", "cdrs.csv")
    from_msgpack, from_csv = load_run(only_msgpack), load_run(only_csv)
    assert (from_msgpack.cdr_source, from_csv.cdr_source) == ("cdrs.msgpack", "cdrs.csv")
    assert len(from_csv.cdrs.org) > 0
    _same_cdrs(from_msgpack.cdrs, from_csv.cdrs)


def test_with_both_files_the_report_reads_cdrs_csv(quickstart_run: Path) -> None:
    """The faster of the two to read (polars); cdrs.msgpack is the fallback."""
    assert load_run(quickstart_run).cdr_source == "cdrs.csv"


def test_a_stream_with_keys_in_another_order_reads_the_same(quickstart_run: Path, tmp_path: Path) -> None:
    for name in ("summary.json", "events.jsonl"):
        (tmp_path / name).write_bytes((quickstart_run / name).read_bytes())
    rows = list(msgpack.Unpacker(open(quickstart_run / "cdrs.msgpack", "rb"), timestamp=3))
    with open(tmp_path / "cdrs.msgpack", "wb") as out:
        for row in rows:  # same values, keys in reverse order, datetimes for times
            out.write(msgpack.packb(dict(reversed(row.items())), datetime=True))
    _same_cdrs(load_run(tmp_path).cdrs, load_run(quickstart_run).cdrs)


def test_without_cdrs_csv_the_report_reads_cdrs_msgpack(quickstart_run: Path, tmp_path: Path) -> None:
    for name in ("summary.json", "events.jsonl", "cdrs.msgpack"):
        (tmp_path / name).write_bytes((quickstart_run / name).read_bytes())
    run = load_run(tmp_path)
    assert run.cdr_source == "cdrs.msgpack"
    _same_cdrs(run.cdrs, load_run(quickstart_run).cdrs)
    assert run_cli("report", str(tmp_path)) == 0
    assert "<code>cdrs.msgpack</code>" in (tmp_path / "report.html").read_text()


# --- bad input --------------------------------------------------------------------------------


def _copy(src: Path, dst: Path, *names: str) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


ALL_FILES = ("summary.json", "events.jsonl", "cdrs.msgpack", "cdrs.csv")


MSGPACK_CASES = ("truncated cdrs.msgpack", "garbage cdrs.msgpack", "cdrs.msgpack of other data",
                 "cdrs.msgpack from a different run")


def _broken(case: str, good: Path, where: Path) -> Path:
    if case == "missing directory":
        return where / "nope"
    if case == "a file, not a directory":
        (where / "file").write_text("x")
        return where / "file"
    if case == "empty directory":
        (where / "empty").mkdir()
        return where / "empty"
    d = _copy(good, where / "run", *ALL_FILES)
    if case == "no events.jsonl":
        (d / "events.jsonl").unlink()
    elif case == "no cdrs at all":
        (d / "cdrs.msgpack").unlink()
        (d / "cdrs.csv").unlink()
    elif case == "summary.json is not JSON":
        (d / "summary.json").write_text("{not json")
    elif case == "summary.json is another JSON":
        (d / "summary.json").write_text('{"hello": "world"}')
    elif case == "summary.json with a wrong type":
        summary = json.loads((d / "summary.json").read_text())
        summary["orgs"]["contoso"]["credits_charged"] = 12
        (d / "summary.json").write_text(json.dumps(summary))
    elif case in MSGPACK_CASES:
        (d / "cdrs.csv").unlink()  # with it there, the report reads cdrs.csv (see _read_cdrs)
        _break_msgpack(case, d)
    elif case == "cdrs.csv from a different run":
        lines = (d / "cdrs.csv").read_text().splitlines(keepends=True)
        (d / "cdrs.csv").write_text("".join(lines[:-1]))
    elif case == "bad cdrs.csv":
        (d / "cdrs.msgpack").unlink()
        (d / "cdrs.csv").write_text("call_id,org_id\n1,contoso\n")
    elif case == "bad cdrs.csv, good cdrs.msgpack":  # the CSV is read first, and its problem shown
        (d / "cdrs.csv").write_text("call_id,org_id\n1,contoso\n")
    elif case == "bad events.jsonl":
        (d / "events.jsonl").write_text('{"time": "soon", "org_id": "contoso"}\n')
    elif case == "events.jsonl names an unknown org":
        (d / "events.jsonl").write_text('{"time": "2026-11-01T00:00:00.000Z", "org_id": "nobody", '
                                         '"event": "pools_refilled"}\n')
    else:
        raise AssertionError(case)
    return d


def _break_msgpack(case: str, d: Path) -> None:
    if case == "truncated cdrs.msgpack":
        data = (d / "cdrs.msgpack").read_bytes()
        (d / "cdrs.msgpack").write_bytes(data[: len(data) - 7])
    elif case == "garbage cdrs.msgpack":
        (d / "cdrs.msgpack").write_bytes(b"\xc1" * 100)
    elif case == "cdrs.msgpack of other data":
        (d / "cdrs.msgpack").write_bytes(msgpack.packb([1, 2, 3]) + msgpack.packb({"a": 1}))
    elif case == "cdrs.msgpack from a different run":
        data = (d / "cdrs.msgpack").read_bytes()
        rows = list(msgpack.Unpacker(open(d / "cdrs.msgpack", "rb")))
        (d / "cdrs.msgpack").write_bytes(b"".join(msgpack.packb(r) for r in rows[:-1]))
        assert data


@pytest.mark.parametrize("case", [
    "missing directory", "a file, not a directory", "empty directory", "no events.jsonl",
    "no cdrs at all", "summary.json is not JSON", "summary.json is another JSON",
    "summary.json with a wrong type", "truncated cdrs.msgpack", "garbage cdrs.msgpack",
    "cdrs.msgpack of other data", "cdrs.msgpack from a different run", "bad cdrs.csv",
    "bad cdrs.csv, good cdrs.msgpack", "cdrs.csv from a different run",
    "bad events.jsonl", "events.jsonl names an unknown org",
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(case: str, quickstart_run: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    target = _broken(case, quickstart_run, tmp_path)
    assert run_cli("report", str(target)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("callsim: ") and "Traceback" not in err
    assert str(target) in err or target.name in err
    assert not (target / "report.html").exists() if target.is_dir() else True


def test_unwritable_output_is_a_usage_error(quickstart_run: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blocker").write_text("a file where the PNG folder should go")
    assert run_cli("report", str(quickstart_run), "--output", str(tmp_path / "blocker.html")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write the report" in err


def test_report_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ReportError) as caught:
        load_run(tmp_path)
    assert caught.value.path == tmp_path and "summary.json" in caught.value.problem
