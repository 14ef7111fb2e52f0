"""docs/grafana/callsim.json is an importable dashboard over metrics callsim really exports.

Whether each query runs and returns data is checked against a real Prometheus
in test_prometheus_integration.py; this checks the file itself, without one.
"""

from __future__ import annotations

import json
import re

from prometheus_client import CollectorRegistry
from prometheus_client.samples import Sample

from rating_core import RatingEngine
from simulator.metrics import RunMetrics, SipMetrics
from simulator.scenario import load_scenario
from simulator.sip import SipStats
from tests.scenarios import REPO

DASHBOARD = json.loads((REPO / "docs" / "grafana" / "callsim.json").read_text())


def _exported_samples() -> list[Sample]:
    registry = CollectorRegistry()
    RunMetrics(registry, RatingEngine(load_scenario(REPO / "scenarios" / "quickstart.toml").setup))
    sip, stats = SipMetrics(registry), SipStats()  # `callsim serve --sip`: the dashboard's SIP row
    stats.requests["INVITE"] = stats.responses[200] = stats.auth_failures["bad_response"] = 1
    sip.watch(stats, lambda: 1)
    return [s for family in registry.collect() for s in family.samples]


def _exported_sample_names() -> set[str]:
    return {s.name for s in _exported_samples()}


def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    titles = " | ".join(p["title"].lower() for p in DASHBOARD["panels"])
    for wanted in ("calls per second by call type", "drops per minute by reason", "active calls",
                   "pool", "credit balance and recharges", "event lag p99"):
        assert wanted in titles, wanted


def test_every_panel_uses_the_datasource_variable_and_has_a_query() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].strip()


def test_queries_only_name_metrics_callsim_exports() -> None:
    exported = _exported_sample_names()
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            names = set(re.findall(r"\bcallsim_[a-z_]+", target["expr"]))
            assert names, target["expr"]
            assert names <= exported, (panel["title"], names - exported)


def test_rates_use_grafanas_rate_interval() -> None:
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            for window in re.findall(r"\[([^\]]+)\]", target["expr"]):
                assert window == "$__rate_interval", (panel["title"], window)


def _org_labelled_metrics() -> set[str]:
    """The exported sample names that carry an `org` label (per-org metrics)."""
    return {s.name for s in _exported_samples() if "org" in s.labels}


def test_org_variable_lists_the_orgs_of_an_org_labelled_metric() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    org = variables["org"]
    assert org["type"] == "query"
    assert org["datasource"]["uid"] == "${datasource}"
    match = re.fullmatch(r"label_values\((callsim_[a-z_]+), org\)", org["query"])
    assert match and match.group(1) in _org_labelled_metrics(), org["query"]
    assert org["definition"] == org["query"]
    assert org["multi"] and org["includeAll"] and org["allValue"] == ".*"  # "All" matches _other too


def test_every_per_org_query_filters_by_the_org_variable() -> None:
    per_org = _org_labelled_metrics()
    filtered = 0
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            for name, selector in re.findall(r"\b(callsim_[a-z_]+)(\{[^}]*\})?", target["expr"]):
                if name in per_org:
                    assert 'org=~"$org"' in selector, (panel["title"], target["expr"])
                    filtered += 1
    assert filtered >= 3  # pools, balances, recharges
