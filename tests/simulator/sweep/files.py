"""A small scenario for sweep tests, and the RunSummary figures read back from a run's files.

The scenario makes every figure of a RunSummary move: a pool that runs dry, recharges that
succeed until the card expires and then fail, calls dropped and blocked for lack of credit,
and a second org without credits (balance 0).  Every tariff bills per minute ("60/60") in a
single month, which lets `summary_from_files` find each pool's exhaustion instant from
cdrs.csv alone: a call's pool-paid increments are its first ones, so its last pool charge is
at start + 60 s x (its pool minutes - 1), and the pool hit 0 at the latest of those.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

from rating_core import MICRO
from simulator.sweep import OrgRunSummary
from tests.scenarios import org, scenario_toml, staff

LICENSES = ["phone_system", "domestic_calling_plan", "communications_credits"]

TEXT = scenario_toml(
    name="sweep-test", seed=11, duration="2d", plans={"domestic_minutes": {"default": 30}},
    orgs=[
        org("acme", credits={"initial": "5.00", "auto_recharge": True, "recharge_below": "2.00",
                             "recharge_amount": "5.00", "card_expires": "2026-11-01"},
            users=[staff(20, LICENSES)]),
        org("globex", users=[staff(10, LICENSES)]),
    ],
    traffic=[{"org": "acme", "type": "domestic", "calls_per_hour": 60, "holding_mean": "3m"},
             {"org": "globex", "type": "domestic", "calls_per_hour": 30, "holding_mean": "3m"}],
)
START_MS = int(datetime.fromisoformat("2026-11-01T00:00:00+00:00").timestamp() * 1000)


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000) - START_MS


def _micro(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * MICRO + int(frac.ljust(6, "0"))


def summary_from_files(out: Path) -> dict[str, OrgRunSummary]:
    """Per org id and "total": the RunSummary figures that `callsim run`'s files imply (the
    spend per day left empty: the files do not date each charge)."""
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader((out / "cdrs.csv").open()))
    events = [json.loads(line) for line in (out / "events.jsonl").open()]
    found = {}
    for org_id in [*summary["orgs"], "total"]:
        section = summary["total"] if org_id == "total" else summary["orgs"][org_id]
        mine = rows if org_id == "total" else [r for r in rows if r["org_id"] == org_id]
        ledger = events if org_id == "total" else [e for e in events if e["org_id"] == org_id]
        found[org_id] = OrgRunSummary(
            calls=section["calls"],
            cut_dropped=section["calls_by_end_reason"]["dropped_balance_exhausted"],
            cut_blocked=section["calls_by_end_reason"]["blocked_no_balance"],
            credits_spent_micros=_micro(section["credits_charged"]),
            credits_purchased_micros=_micro(section["credits_purchased"]),
            recharges_succeeded=section["recharges_succeeded"],
            recharges_failed=section["recharges_failed"],
            lowest_balance_micros=_lowest_balance(summary, ledger, org_id),
            pool_exhausted_ms=_pool_exhausted(summary, rows, org_id),
            peak_concurrent_calls=_peak(mine),
            billed_s=section["billed_s"],
            balance_exhausted=sum(1 for e in ledger if e["event"] == "balance_exhausted"),
            credits_spent_by_day_micros=(),  # no charge instants in the files: see test_run_one
        )
    return found


def _lowest_balance(summary: dict, ledger: list[dict], org_id: str) -> int:
    """Per org: the final balance and each balance just before a recharge; total: the lowest org's."""
    if org_id == "total":
        return min(_lowest_balance(summary, [e for e in ledger if e["org_id"] == o], o) for o in summary["orgs"])
    lows = [_micro(summary["orgs"][org_id]["final_balance"])]
    lows += [_micro(e["balance"]) - _micro(e["amount"]) for e in ledger if e["event"] == "recharge_succeeded"]
    return min(lows)


def _pool_exhausted(summary: dict, rows: list[dict], org_id: str) -> int | None:
    """Per org: the first of its pools to hit 0; total: the first org's (pools of different
    orgs share names, so the total is not read from the total section)."""
    if org_id == "total":
        found = [_pool_exhausted(summary, rows, o) for o in summary["orgs"]]
        return min((t for t in found if t is not None), default=None)
    section = summary["orgs"][org_id]
    instants = []
    for pool, left in section["pool_remaining_s"].items():
        if left == 0:
            instants.append(max(_ms(r["start_time"]) + 60_000 * (-(-int(r["pool_s"]) // 60) - 1)
                                for r in rows
                                if r["org_id"] == org_id and r["pool"] == pool and int(r["pool_s"]) > 0))
    return min(instants) if instants else None


def _peak(rows: list[dict]) -> int:
    """The most calls connected at once ([start, end)), counted after each instant."""
    changes: dict[int, int] = {}
    for r in rows:
        start, end = _ms(r["start_time"]), _ms(r["end_time"])
        changes[start] = changes.get(start, 0) + 1
        changes[end] = changes.get(end, 0) - 1
    count = peak = 0
    for t in sorted(changes):
        count += changes[t]
        peak = max(peak, count)
    return peak
