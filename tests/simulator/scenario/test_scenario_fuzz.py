"""Fuzzing the loader: no mutation of a bundled scenario may end in anything but a scenario
or one line per problem (SPEC §2: never a traceback).

Each example starts from a bundled scenario and applies a few seeded mutations, either to
the parsed document (delete or duplicate keys and items, change types, huge, negative, zero,
NaN and infinite numbers, long and odd strings, impossible dates) or to its text (lines
dropped or repeated, truncation, flipped bytes).  What loads must also survive what runs do
first with it: the calendar instants of its lots, cards and refills, and the work estimate.

CI runs `DEFAULT_EXAMPLES`; `CALLSIM_FUZZ_EXAMPLES=100000` runs more, and
`CALLSIM_FUZZ_SEED` starts elsewhere.  A failure names its example's seed: that seed alone
reproduces it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import tomllib
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any

import pytest

from rating_core import card_valid_until_ms, lot_expiry_ms, month_starts
from simulator.scenario import estimate
from simulator.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from tests.scenarios import SCENARIOS

BUNDLED = sorted(SCENARIOS.glob("*.toml"))
DEFAULT_EXAMPLES = 1_000
EXAMPLES = int(os.environ.get("CALLSIM_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
FIRST_SEED = int(os.environ.get("CALLSIM_FUZZ_SEED", 0))
MACHINE = estimate.Machine(memory_bytes=4 << 30, disk_bytes=10 << 30, disk_path="out")

ODD_VALUES: list[Any] = [
    0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**20, 10**4000, 999_999, 1_000_001,
    16**5000 - 1,  # TOML hex: beyond what str() converts
    0.0, -0.0, 0.5, 1e-300, 1e308, 1e12, math.nan, math.inf, -math.inf,
    True, False, "", " ", "x" * 10_000, "🙂", "\u0000", "\n", "é" * 50, "١٢٣", "+", "-1",
    "0", "1.5", "1e9", "99999999999999999999999", "9" * 5_000, "0." + "0" * 30 + "1",
    "1d", "0s", "-1s", "1.0001ms", "99999999999999999999999d", "36526d", "1/1", "0/0",
    "3601/1", "9" * 30 + "/1", "+12125550100", "+0", "+" + "1" * 20, "1" * 16,
    "2026-02-30", "9999-12-31", "0001-01-01", "10000-01-01", "2026-11-01T00:00:00Z",
    "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2026-11-01T00:00:00+01:00",
    "2026-11-01T00:00:00.0001Z", "2026-11-01 00:00:00",
    date(9999, 12, 31), date(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
    datetime(1, 1, 1, tzinfo=timezone.utc), datetime(2026, 11, 1), time(12, 0),
    [], [1, "a"], ["phone_system", "phone_system"], {}, {"x": 1}, [[[]]],
    "domestic", "toll_free", "outbound", "conference_dial_out", "USD", "US", "A",
]

ODD_KEYS = ["typo", "Seed", "users ", "expect", "a\nb", "x.y", "", "é", "calls", "id"]


def odd_value(rng: random.Random, near: Any) -> Any:
    """An odd value, or one of the same kind as `near` pushed to an edge."""
    if rng.random() < 0.3 and isinstance(near, int) and not isinstance(near, bool):
        return rng.choice([near * 10**rng.randint(1, 12), -near, near + 1, 0])
    if rng.random() < 0.3 and isinstance(near, str):
        return rng.choice([near * rng.randint(2, 300), near[: rng.randint(0, len(near))],
                           near + rng.choice("0.9-/+é "), near.upper(), near.lower()])
    return copy.deepcopy(rng.choice(ODD_VALUES))  # a fresh one: mutations must not share it


# -- mutations of the parsed document ------------------------------------------------------


def containers(node: Any, out: list[Any]) -> list[Any]:
    """Every table and array in the document, the document first."""
    out.append(node)
    children = node.values() if isinstance(node, dict) else node
    for child in children:
        if isinstance(child, (dict, list)):
            containers(child, out)
    return out


def mutate_document(rng: random.Random, doc: dict[str, Any]) -> None:
    nodes = [n for n in containers(doc, []) if n]
    # Whole tables (all traffic, all calls, the plans) go or change often enough to matter.
    node = doc if rng.random() < 0.1 else rng.choice(nodes)
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    key = rng.choice(keys)
    how = rng.random()
    if how < 0.15:
        del node[key]
    elif how < 0.3 and isinstance(node, list):
        node.insert(key, copy.deepcopy(node[key]))
    elif how < 0.35 and isinstance(node, dict):
        node[rng.choice(ODD_KEYS)] = odd_value(rng, None)
    elif how < 0.4:
        node[key] = [node[key]] if rng.random() < 0.5 else {"value": node[key]}
    else:
        node[key] = odd_value(rng, node[key])


def toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) \
        else json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """TOML for a value, tables and arrays inline (one line each, as TOML requires)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return hex(value) if value.bit_length() > 13_000 else str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(type(value))


def toml_document(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in doc.items())


# -- mutations of the text -----------------------------------------------------------------


def mutate_text(rng: random.Random, data: bytes) -> bytes:
    if not data:  # truncated to nothing already
        return data
    lines = data.split(b"\n")
    how = rng.random()
    if how < 0.3:
        del lines[rng.randrange(len(lines))]
    elif how < 0.5:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif how < 0.6:
        return data[: rng.randrange(len(data))]
    elif how < 0.8:
        i = rng.randrange(len(data))
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:]
    else:
        i = rng.randrange(len(lines))
        if b"=" in lines[i]:
            key = lines[i].split(b"=", 1)[0]
            value = toml_value(odd_value(rng, None)).encode()
            lines[i] = key + b"= " + value
    return b"\n".join(lines)


# -- the property ----------------------------------------------------------------------------


def example(seed: int, tmp_path: Path) -> tuple[str, Scenario | ScenarioError]:
    """The mutated text of example `seed`, and what loading it gave."""
    rng = random.Random(seed)
    original = rng.choice(BUNDLED).read_bytes()
    if rng.random() < 0.6:
        doc = tomllib.loads(original.decode())
        for _ in range(rng.randint(1, 8)):
            if doc:  # every key deleted: nothing left to mutate
                mutate_document(rng, doc)
        data = toml_document(doc).encode()
    else:
        data = original
        for _ in range(rng.randint(1, 3)):
            data = mutate_text(rng, data)
    machine = MACHINE if rng.random() < 0.5 else None
    try:
        if rng.random() < 0.2:  # through the file, for the bytes that are not UTF-8
            path = tmp_path / "fuzz.toml"
            path.write_bytes(data)
            return data.decode(errors="replace"), load_scenario(path, machine)
        return data.decode(errors="replace"), parse_scenario(data.decode(), "fuzz.toml", machine)
    except UnicodeDecodeError:
        return "", ScenarioError([])
    except ScenarioError as err:
        return data.decode(errors="replace"), err


def check_loaded(scenario: Scenario) -> None:
    """What a run does first with a scenario: calendar instants and the estimate."""
    setup = scenario.setup
    month_starts(setup.start, setup.end_ms)
    lot_expiry_ms(setup.start, setup.end_ms - 1)
    for org in setup.orgs:
        if org.credits is not None:
            card_valid_until_ms(setup.start, org.credits.card_expires)
    assert scenario.workload is not None
    est = estimate.estimate(scenario.workload)
    est.describe()
    estimate.refusals(scenario.workload, estimate.Machine(memory_bytes=1, disk_bytes=1))
    for warning in scenario.warnings:
        assert "\n" not in warning.located()


def test_no_mutation_of_a_bundled_scenario_ends_in_a_traceback(tmp_path: Path) -> None:
    outcomes = {"loaded": 0, "refused": 0}
    for seed in range(FIRST_SEED, FIRST_SEED + EXAMPLES):
        try:
            text, result = example(seed, tmp_path)
            if isinstance(result, ScenarioError):
                outcomes["refused"] += 1
                for problem in result.problems:
                    line = problem.located()
                    assert line and "\n" not in line and "\r" not in line, line
                    assert len(line) < 1_000, line  # shown values are shortened
            else:
                outcomes["loaded"] += 1
                check_loaded(result)
        except Exception as exc:
            pytest.fail(f"seed {seed}: {type(exc).__name__}: {str(exc)[:500]}")
    # Both outcomes happen: a fuzzer that only ever breaks the file tests little.
    assert outcomes["loaded"] > EXAMPLES // 20 and outcomes["refused"] > EXAMPLES // 4, outcomes
