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
    """One TOML value: booleans and numbers bare, text quoted, lists of these."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the ASCII the tests write
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def table(header: str, fields: Mapping[str, Any]) -> str:
    """`[header]` (or `[[header]]` when written so) and its fields, one a line."""
    lines = [header, *(f"{key} = {_value(value)}" for key, value in fields.items() if value is not None)]
    return "\n".join(lines) + "\n"


def staff(count: int = 100, licenses: Sequence[str] = ALL_LICENSES, group: str = "staff") -> dict[str, Any]:
    """A group of `count` US users."""
    return {"group": group, "count": count, "country": "US", "licenses": list(licenses)}


def scenario_toml(
    *,
    name: str = "test",
    seed: int = 1,
    duration: str = "1h",
    org: str = "acme",
    credits: Mapping[str, Any] | None = None,
    users: Sequence[Mapping[str, Any]] = (),
    traffic: Sequence[Mapping[str, Any]] = (),
    extra: str = "",
) -> str:
    """A scenario of one org under one US tariff (0.02 a minute, per-minute increments).

    `credits`: the org's [orgs.credits] table, if any; `users`: its [[orgs.users]] tables;
    `traffic`: [[traffic]] tables (`org` defaults to the org); `extra`: TOML appended as is.
    """
    parts = [
        table("[simulation]", {"name": name, "seed": seed, "start": START, "duration": duration,
                               "currency": "USD"}),
        table("[[tariff]]", {"prefix": "1", "country": "US", "zone": "A", "per_minute": "0.02",
                             "increment": "60/60"}),
        table("[[orgs]]", {"id": org}),
    ]
    if credits is not None:
        parts.append(table("[orgs.credits]", credits))
    parts += [table("[[orgs.users]]", user) for user in users]
    parts += [table("[[traffic]]", {"org": org, **source}) for source in traffic]
    return "\n".join(parts) + (("\n" + extra) if extra else "")
