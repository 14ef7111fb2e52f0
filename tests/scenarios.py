"""Scenario files for the simulator's tests: the bundled ones by path, and small scenarios
built from one base text instead of re-typed in each test file.

`scenario_toml` writes the common shape (one simulation, one US tariff, orgs with their
credits and user groups, traffic sources); a test names only what it varies.  Values are
written as TOML the way docs/scenarios.md shows them (money and durations as strings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"
BENCHMARKS = REPO / "benchmarks"
QUICKSTART = SCENARIOS / "quickstart.toml"
ENTERPRISE = SCENARIOS / "enterprise_month.toml"
SERVER_DEMO = SCENARIOS / "server_demo.toml"

START = "2026-11-01T00:00:00Z"
ALL_LICENSES = ("phone_system", "domestic_calling_plan", "communications_credits")


def _value(value: Any) -> str:
    """One TOML value: booleans and numbers bare, text quoted, lists and inline tables of these."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the ASCII the tests write
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key} = {_value(item)}" for key, item in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def table(header: str, fields: Mapping[str, Any]) -> str:
    """`[header]` (or `[[header]]` when written so) and its fields, one a line."""
    lines = [header, *(f"{key} = {_value(value)}" for key, value in fields.items() if value is not None)]
    return "\n".join(lines) + "\n"


def staff(count: int = 100, licenses: Sequence[str] = ALL_LICENSES, group: str = "staff") -> dict[str, Any]:
    """A group of `count` US users."""
    return {"group": group, "count": count, "country": "US", "licenses": list(licenses)}


US_TARIFF = {"prefix": "1", "country": "US", "zone": "A", "per_minute": "0.02", "increment": "60/60"}


def org(id: str, *, credits: Mapping[str, Any] | None = None, users: Sequence[Mapping[str, Any]] = (),
        **fields: Any) -> dict[str, Any]:
    """One [[orgs]] entry for `scenario_toml(orgs=...)`: its own fields (`toll_free_numbers`),
    its [orgs.credits] table if any, and its [[orgs.users]] tables."""
    return {"id": id, **fields, "credits": credits, "users": users}


def _org_tables(entry: Mapping[str, Any]) -> list[str]:
    fields = {k: v for k, v in entry.items() if k not in ("credits", "users")}
    parts = [table("[[orgs]]", fields)]
    if entry.get("credits") is not None:
        parts.append(table("[orgs.credits]", entry["credits"]))
    return parts + [table("[[orgs.users]]", user) for user in entry.get("users", ())]


def scenario_toml(
    *,
    name: str = "test",
    seed: int = 1,
    start: str = START,
    duration: str = "1h",
    currency: str = "USD",
    plans: Mapping[str, Any] | None = None,
    tariffs: Sequence[Mapping[str, Any]] = (US_TARIFF,),
    toll_free_tariffs: Sequence[Mapping[str, Any]] = (),
    org: str = "acme",
    credits: Mapping[str, Any] | None = None,
    users: Sequence[Mapping[str, Any]] = (),
    orgs: Sequence[Mapping[str, Any]] | None = None,
    traffic: Sequence[Mapping[str, Any]] = (),
    calls: Sequence[Mapping[str, Any]] = (),
    extra: str = "",
) -> str:
    """A scenario's text; by default one org (`org`, with `credits` and `users`) under the US
    tariff (0.02 a minute, per-minute increments).

    `orgs`: several orgs instead (`org(...)` each); `traffic`: [[traffic]] tables (`org`
    defaults to the single org's id); `calls`: [[calls]] tables; `extra`: TOML appended as is.
    """
    parts = [table("[simulation]", {"name": name, "seed": seed, "start": start, "duration": duration,
                                    "currency": currency})]
    if plans is not None:
        parts.append(table("[plans]", plans))
    parts += [table("[[tariff]]", tariff) for tariff in tariffs]
    parts += [table("[[toll_free_tariff]]", tariff) for tariff in toll_free_tariffs]
    for entry in orgs if orgs is not None else [{"id": org, "credits": credits, "users": users}]:
        parts += _org_tables(entry)
    parts += [table("[[traffic]]", {"org": org, **source}) for source in traffic]
    parts += [table("[[calls]]", call) for call in calls]
    return "\n".join(parts) + (("\n" + extra) if extra else "")
