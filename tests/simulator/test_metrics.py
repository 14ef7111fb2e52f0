"""`callsim run` metrics (simulator/metrics.py): scraped over real HTTP, during and after a run.

The counters must tell exactly the story of summary.json: same calls by end
reason and call type, same credits to the micro-unit, same recharges and
expiries, same final balances and pool remainders.  Orgs beyond
`max_org_labels` are summed under org="_other".
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import socket
import urllib.request
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from rating_core import (
    CALL_TYPE_NAMES,
    END_REASON_NAMES,
    MICRO,
    CdrBatch,
    Credits,
    LedgerEvent,
    Org,
    Plans,
    RatingEngine,
    RatingSetup,
    Step,
    Tariff,
    User,
)
from simulator import cli
from simulator.metrics import OTHER_ORGS, MetricsServer, RunMetrics, declare_build_info
from simulator.run import RunOptions, run_scenario
from simulator.scenario import parse_scenario
from simulator.switch import WindowReport
from tests.scenarios import QUICKSTART, US_TARIFF, scenario_toml, staff
from tests.scenarios import org as org_entry

# Four orgs, two days: pools that run dry, credits that recharge, a card that has expired
# (recharge_failed, then drops and blocks), an org without credits, every end reason.
MIX = scenario_toml(
    name="metrics_mix",
    seed=11,
    start="2026-03-01T00:00:00Z",
    duration="2d",
    currency="EUR",
    plans={"domestic_minutes": {"default": 20}, "international_minutes": 10, "dial_out_minutes": 10},
    tariffs=[US_TARIFF, {"prefix": "44", "country": "GB", "zone": "B", "per_minute": "0.035",
        "increment": "30/6"}],
    toll_free_tariffs=[{"prefix": "44", "per_minute": "0.05", "increment": "60/60"}],
    orgs=[
        org_entry("contoso", toll_free_numbers=["+18005550100"], credits={"initial": "5.00",
            "auto_recharge": True, "recharge_below": "2.00", "recharge_amount": "5.00",
            "card_expires": "2027-06-30"},
            users=[staff(4, ["e5", "domestic_calling_plan", "international_calling_plan",
                             "communications_credits"], group="sales"),
                   {"id": "carol", "country": "US", "licenses": ["e5"]}]),
        org_entry("fabrikam", toll_free_numbers=["+18005550200"], credits={"initial": "3.00",
            "auto_recharge": True, "recharge_below": "1.00", "recharge_amount": "5.00",
            "card_expires": "2026-01-31", "retry_after": "6h"}, users=[staff(3, group="ops")]),
        org_entry("tailspin", users=[staff(2, ["phone_system", "domestic_calling_plan"], group="dev")]),
        org_entry("wingtip", toll_free_numbers=["+18005550400"], credits={"initial": "1.00"},
            users=[staff(2, group="crew")]),
    ],
    traffic=[
        {"org": "contoso", "type": "domestic", "calls_per_hour": 20, "holding_mean": "5m"},
        {"org": "contoso", "type": "international", "calls_per_hour": 6, "holding_mean": "6m",
            "users": "sales"},
        {"org": "contoso", "type": "toll_free", "calls_per_hour": 6, "holding_mean": "4m",
            "destinations": ["44"]},
        {"org": "fabrikam", "type": "toll_free", "calls_per_hour": 8, "holding_mean": "5m",
            "destinations": ["44"]},
        {"org": "fabrikam", "type": "international", "calls_per_hour": 4, "holding_mean": "5m"},
        {"org": "tailspin", "type": "domestic", "calls_per_hour": 10, "holding_mean": "8m"},
        {"org": "wingtip", "type": "domestic", "calls_per_hour": 12, "holding_mean": "8m"},
    ],
    calls=[
        {"at": "1m", "org": "contoso", "user": "sales-0001", "type": "outbound", "to": "+33142685300",
            "duration": "5m"},
        # still connected at the end (simulation_end): contoso's credits recharge all run long
        {"at": "2879m", "org": "contoso", "user": "sales-0002", "type": "outbound", "to": "+12125550100",
            "duration": "1h"},
    ],
)

MAX_ORGS = 2  # contoso, fabrikam by name; tailspin and wingtip as "_other"


def scrape(url: str) -> dict[str, dict[frozenset, float]]:
    """GET /metrics over HTTP and parse it: sample name -> {frozenset(labels): value}."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[str, dict[frozenset, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][frozenset(sample.labels.items())] = sample.value
    return samples


def by(samples: dict[frozenset, float], label: str) -> dict[str, float]:
    """Sum the samples of one metric by one label."""
    out: dict[str, float] = defaultdict(float)
    for labels, value in samples.items():
        out[dict(labels)[label]] += value
    return dict(out)


def money(text: str) -> float:
    """summary.json's decimal string as the float Prometheus carries (correctly rounded)."""
    return float(text)


async def run_with_metrics(tmp_path: Path, text: str = MIX, **options):
    scenario = parse_scenario(text)
    server = MetricsServer("127.0.0.1", 0)
    result = await run_scenario(
        scenario,
        RunOptions(out_dir=tmp_path, metrics=server, metrics_max_orgs=MAX_ORGS,
                   handle_sigint=False, **options),
    )
    return server, result


async def test_counters_agree_exactly_with_summary_json(tmp_path: Path) -> None:
    server, result = await run_with_metrics(tmp_path)
    with server:
        m = scrape(server.url)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == result.summary
    total, orgs = summary["total"], summary["orgs"]
    # the scenario exercises what it claims to
    reasons = total["calls_by_end_reason"]
    assert all(reasons[r] > 0 for r in END_REASON_NAMES), reasons
    assert total["recharges_succeeded"] and total["recharges_failed"]

    ended = m["callsim_calls_ended_total"]
    assert by(ended, "end_reason") == {k: float(v) for k, v in reasons.items()}
    assert by(ended, "call_type") == {k: float(v) for k, v in total["calls_by_call_type"].items()}
    started = by(m["callsim_calls_started_total"], "call_type")
    assert started == {k: float(v) for k, v in total["calls_by_call_type"].items()}
    assert set(by(m["callsim_active_calls"], "call_type").values()) == {0.0}
    assert m["callsim_simulated_time_seconds"][frozenset()] == 2 * 86400

    def per_org(name: str, key: str, extra: dict[str, str]) -> None:
        """metric{org, **extra} == summary's orgs[org][key]; `_other` == the sum of the rest."""
        want: dict[str, Decimal] = defaultdict(Decimal)
        for i, (org, section) in enumerate(orgs.items()):
            want[org if i < MAX_ORGS else OTHER_ORGS] += Decimal(str(section[key]))
        got = {dict(k)["org"]: v for k, v in m[name].items()
               if all(dict(k)[l] == v2 for l, v2 in extra.items())}
        assert got == {org: float(v) for org, v in want.items()}, name

    per_org("callsim_credits_charged_total", "credits_charged", {"currency": "EUR"})
    per_org("callsim_credits_expired_total", "credits_expired", {"currency": "EUR"})
    per_org("callsim_credit_balance", "final_balance", {"currency": "EUR"})
    per_org("callsim_recharges_total", "recharges_succeeded", {"outcome": "succeeded"})
    per_org("callsim_recharges_total", "recharges_failed", {"outcome": "failed"})
    # exact to the micro-unit, not merely close: the sum over orgs is the summary's total string
    charged = sum(Decimal(repr(v)) for v in m["callsim_credits_charged_total"].values())
    assert charged == Decimal(total["credits_charged"])

    want_pools: dict[tuple[str, str], int] = defaultdict(int)
    for i, (org, section) in enumerate(orgs.items()):
        for pool, seconds in section["pool_remaining_s"].items():
            want_pools[(org if i < MAX_ORGS else OTHER_ORGS, pool)] += seconds
    got_pools = {(dict(k)["org"], dict(k)["pool"]): v
                 for k, v in m["callsim_pool_remaining_seconds"].items()}
    assert got_pools == {k: float(v) for k, v in want_pools.items()}


async def test_scrape_during_run_sees_consistent_live_state(tmp_path: Path) -> None:
    """Scrape over HTTP from inside the run (an observer after the metrics one), mid-simulation.

    Publishing every window (publish_every_s=0) makes the scraped state exactly the state
    after the window just rated.
    """
    scenario = parse_scenario(MIX)
    server = MetricsServer("127.0.0.1", 0)
    arrivals = 0
    scrapes: list[tuple[int, dict]] = []

    def attach(switch) -> None:
        RunMetrics.attach(switch, server.registry, MAX_ORGS, publish_every_s=0.0)
        switch.observers.append(scrape_now)

    def scrape_now(report: WindowReport) -> None:
        nonlocal arrivals
        arrivals += report.arrivals
        if report.t1_ms % (6 * 3_600_000) == 0 and report.t1_ms < scenario.setup.end_ms:  # every 6 h
            scrapes.append((arrivals, scrape(server.url)))
            assert report.t1_ms / 1000 == scrapes[-1][1]["callsim_simulated_time_seconds"][frozenset()]

    with server:
        await run_scenario(scenario, RunOptions(out_dir=tmp_path, handle_sigint=False, on_switch=[attach],
                                                virtual_window_ms=3_600_000))  # windows end on the hour
    assert len(scrapes) == 7
    for calls, m in scrapes:
        started = by(m["callsim_calls_started_total"], "call_type")
        ended = by(m["callsim_calls_ended_total"], "call_type")
        active = by(m["callsim_active_calls"], "call_type")
        assert sum(started.values()) == calls
        assert {t: started[t] - ended[t] for t in CALL_TYPE_NAMES} == active
        assert m["callsim_rating_batch_duration_seconds_count"][frozenset()] > 0
        assert m["callsim_event_lag_seconds_count"][frozenset()] == 0  # virtual time: no lag
    # the consistency above is not vacuous: calls were connected at some of the scrapes
    assert any(sum(by(m["callsim_active_calls"], "call_type").values()) > 0 for _, m in scrapes)
    for (_, early), (_, late) in zip(scrapes, scrapes[1:]):
        for name, series in early.items():
            if name.endswith("_total"):  # counters never go down
                assert all(late[name][k] >= v for k, v in series.items()), name


async def test_orgs_beyond_max_org_labels_aggregate_as_other(tmp_path: Path) -> None:
    server, _ = await run_with_metrics(tmp_path)
    with server:
        m = scrape(server.url)
    for name in ("callsim_credit_balance", "callsim_credits_charged_total",
                 "callsim_recharges_total", "callsim_credits_expired_total",
                 "callsim_pool_remaining_seconds"):
        assert set(by(m[name], "org")) == {"contoso", "fabrikam", OTHER_ORGS}, name


async def test_series_exist_from_the_first_scrape_with_zero_values(tmp_path: Path) -> None:
    """Every label combination is exported from the start, so rate() works from the first point."""
    scenario = parse_scenario(MIX)
    registry = CollectorRegistry()
    engine = RatingEngine(scenario.setup)
    RunMetrics(registry, engine, max_org_labels=MAX_ORGS)
    ended = [s for f in registry.collect() if f.name == "callsim_calls_ended" for s in f.samples]
    assert len(ended) == len(CALL_TYPE_NAMES) * len(END_REASON_NAMES)
    assert {s.value for s in ended} == {0}


async def test_build_info_names_the_version_the_scenario_and_the_seed_used(tmp_path: Path) -> None:
    scenario = dataclasses.replace(parse_scenario(MIX), name="mix", seed=4242)  # as --seed does
    server = MetricsServer("127.0.0.1", 0)
    with server:
        await run_scenario(scenario, RunOptions(out_dir=tmp_path, metrics=server, handle_sigint=False))
        [family] = [f for f in text_string_to_metric_families(
            urllib.request.urlopen(server.url, timeout=10).read().decode()) if f.name == "callsim_build_info"]
    [sample] = family.samples
    assert family.type == "gauge" and family.documentation
    assert sample.labels == {"version": importlib.metadata.version("callsim"), "scenario": "mix",
                             "seed": "4242"}
    assert sample.value == 1


def test_build_info_is_declared_once_per_registry() -> None:
    registry = CollectorRegistry()
    declare_build_info(registry, "quickstart", 7)
    assert registry.get_sample_value(
        "callsim_build_info", {"version": importlib.metadata.version("callsim"), "scenario": "quickstart",
                               "seed": "7"}) == 1
    with pytest.raises(ValueError):  # a second one in the same registry is a bug, not a new series
        declare_build_info(registry, "other", 8)


def test_metric_names_follow_prometheus_conventions() -> None:
    scenario = parse_scenario(MIX)
    registry = CollectorRegistry()
    RunMetrics(registry, RatingEngine(scenario.setup))
    families = {f.name: f for f in registry.collect()}
    required = {
        "callsim_calls_started": ("counter", {"call_type"}),
        "callsim_calls_ended": ("counter", {"call_type", "end_reason"}),
        "callsim_active_calls": ("gauge", {"call_type"}),
        "callsim_pool_remaining_seconds": ("gauge", {"org", "pool"}),
        "callsim_credit_balance": ("gauge", {"org", "currency"}),
        "callsim_credits_charged": ("counter", {"org", "currency"}),
        "callsim_recharges": ("counter", {"org", "outcome"}),
        "callsim_credits_expired": ("counter", {"org", "currency"}),
        "callsim_rating_batch_size": ("histogram", set()),
        "callsim_rating_batch_duration_seconds": ("histogram", set()),
        "callsim_event_lag_seconds": ("histogram", set()),
        "callsim_simulated_time_seconds": ("gauge", set()),
    }
    for name, (kind, labels) in required.items():
        family = families[name]
        assert family.type == kind, name
        assert family.documentation, name
        got = {k for s in family.samples for k in s.labels} - {"le"}
        assert got == labels, name
        if kind == "counter":
            assert all(s.name in (name + "_total", name + "_created") for s in family.samples)


def _engine_with_credits() -> RatingEngine:
    return RatingEngine(RatingSetup(
        start=datetime(2026, 1, 1, tzinfo=timezone.utc), end_ms=10**9, currency="USD",
        plans=Plans(), tariffs=(Tariff("1", 20_000, 60, 60, "US", "A"),), toll_free_tariffs=(),
        orgs=tuple(Org(f"org{i}", (User("u", "US", frozenset({"phone_system"})),),
                       credits=Credits(initial_micro=10 * MICRO)) for i in range(3)),
    ))


def _empty_cdrs() -> CdrBatch:
    return CdrBatch(*(np.empty(0, dtype=np.int64) for _ in range(15)))


def test_ledger_events_count_recharges_and_expiries_per_org_label() -> None:
    """Lot expiries need a year of simulated time: feed the events to `observe` directly."""
    registry = CollectorRegistry()
    metrics = RunMetrics(registry, _engine_with_credits(), max_org_labels=1, publish_every_s=0.0)
    events = [
        LedgerEvent(5, 0, "credits_expired", balance_micro=0, amount_micro=1_234_567),
        LedgerEvent(5, 1, "credits_expired", balance_micro=0, amount_micro=1),
        LedgerEvent(5, 2, "credits_expired", balance_micro=0, amount_micro=2),
        LedgerEvent(6, 2, "recharge_failed", balance_micro=0, reason="card_expired"),
        LedgerEvent(7, 0, "recharge_succeeded", balance_micro=5, amount_micro=5),
        LedgerEvent(8, 0, "balance_exhausted", balance_micro=0),
    ]
    metrics.observe(WindowReport(0, 10, Step(_empty_cdrs(), events), 0, 0.001, 0.0))
    s = metrics.snapshot()
    assert metrics.org_labels == ["org0", OTHER_ORGS]
    assert s.expired_micro.tolist() == [1_234_567, 3]
    assert s.recharges.tolist() == [[1, 0], [0, 1]]
    values = {(f.name, tuple(sorted(x.labels.items()))): x.value
              for f in registry.collect() for x in f.samples}
    assert values[("callsim_credits_expired", (("currency", "USD"), ("org", "org0")))] == 1.234567
    assert values[("callsim_credit_balance", (("currency", "USD"), ("org", OTHER_ORGS)))] == 20.0


def test_publishes_at_most_every_interval_and_always_at_the_end() -> None:
    wall = [100.0]
    metrics = RunMetrics(CollectorRegistry(), _engine_with_credits(), publish_every_s=1.0,
                         wall=lambda: wall[0])
    recharge = [LedgerEvent(5, 0, "recharge_failed", balance_micro=0, reason="card_expired")]

    def window(t0: int, final: bool = False) -> None:
        step = Step(_empty_cdrs(), recharge)
        metrics.observe(WindowReport(t0, t0 if final else t0 + 10, step, 0, 0.0, 0.0, final=final))

    window(0)
    window(10)
    assert metrics.snapshot().recharges.sum() == 0  # folded in, not yet published
    wall[0] += 1.0
    window(20)
    assert metrics.snapshot().recharges.sum() == 3
    window(30)
    window(40, final=True)  # the end of the run is always published, whatever the time
    assert metrics.snapshot().recharges.sum() == 5


def test_max_org_labels_zero_puts_every_org_under_other() -> None:
    metrics = RunMetrics(CollectorRegistry(), _engine_with_credits(), max_org_labels=0)
    assert metrics.org_labels == [OTHER_ORGS]
    assert metrics.snapshot().balance_micro.tolist() == [30 * MICRO]


# --- the command line ------------------------------------------------------------------------



def test_metrics_server_binds_loopback_by_default() -> None:
    args = cli.build_parser().parse_args(["run", "x.toml", "--out", "o", "--metrics-port", "0"])
    assert args.metrics_host == "127.0.0.1"
    assert args.metrics_max_orgs == 50 and args.metrics_linger == 0
    with MetricsServer(args.metrics_host, 0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass


def test_metrics_are_off_unless_a_port_is_given() -> None:
    args = cli.build_parser().parse_args(["run", "x.toml", "--out", "o"])
    assert args.metrics_port is None


def test_cli_run_serves_metrics_and_prints_the_url(tmp_path: Path, capsys) -> None:
    status = cli.main(["run", str(QUICKSTART), "--out", str(tmp_path), "--quiet",
                       "--metrics-port", "0", "--metrics-max-orgs", "1"])
    assert status == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "callsim: metrics at http://127.0.0.1:" in err


def test_metrics_port_in_use_is_a_usage_error(tmp_path: Path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = cli.main(["run", str(QUICKSTART), "--out", str(tmp_path), "--metrics-port", str(port)])
    assert status == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"callsim: --metrics-port {port}: cannot listen on")


@pytest.mark.parametrize("argv, problem", [
    (["--metrics-port", "70000"], "--metrics-port"),
    (["--metrics-port", "-1"], "--metrics-port"),
    (["--metrics-port", "0", "--metrics-max-orgs", "x"], "--metrics-max-orgs"),
    (["--metrics-port", "0", "--metrics-linger", "-2"], "--metrics-linger"),
])
def test_bad_metrics_options_exit_2_with_one_line(argv, problem, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", str(QUICKSTART), "--out", str(tmp_path), *argv])
    assert exit_.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0]


def test_linger_without_a_port_is_a_usage_error(tmp_path: Path, capsys) -> None:
    status = cli.main(["run", str(QUICKSTART), "--out", str(tmp_path), "--metrics-linger", "5"])
    assert status == cli.EXIT_USAGE
    assert "--metrics-linger needs --metrics-port" in capsys.readouterr().err


def test_bulk_histogram_exposes_what_one_observe_per_value_would() -> None:
    """The server's setup latency is observed a frame at a time (value, count)."""
    from prometheus_client import Histogram, generate_latest

    from simulator.metrics import BulkHistogram

    buckets = (0.001, 0.01, 1.0)
    bulk_registry, plain_registry = CollectorRegistry(), CollectorRegistry()
    bulk = BulkHistogram("lat_seconds", "Latency.", buckets, bulk_registry)
    plain = Histogram("lat_seconds", "Latency.", buckets=buckets, registry=plain_registry)
    for value, count in ((0.001, 3), (0.0005, 1), (0.5, 2), (7.0, 1), (0.01, 0)):
        bulk.observe(value, count)
        for _ in range(count):
            plain.observe(value)

    def samples(registry: CollectorRegistry) -> set[str]:  # the sum may differ in its last bits
        return {line for line in generate_latest(registry).decode().splitlines()
                if not line.startswith("#") and "_created" not in line and "_sum" not in line}

    assert samples(bulk_registry) == samples(plain_registry)
    assert bulk_registry.get_sample_value("lat_seconds_count") == 7
    assert bulk_registry.get_sample_value("lat_seconds_sum") == pytest.approx(
        plain_registry.get_sample_value("lat_seconds_sum"))
