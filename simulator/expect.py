"""Checking a finished run against its scenario's `[[expect]]` tables (docs/expectations.md).

QA keeps scenario files as regression tests: `callsim run --check` and `callsim check` run the
scenario, then compare the run's own files with what the file expects -- CDRs for a call,
events.jsonl for events, summary.json for totals -- and print one block per failed expectation
(which one, then expected against actual for every field that differs).

The loader has checked the tables and kept them as frozen `Expectation` objects
(`Scenario.expectations`): here they are only compared.  The files are read, never the engine's
state: an expectation says what an operator or a billing system would see.  cdrs.csv may hold
millions of rows, so it is scanned lazily by polars and only the rows of the expected calls are
collected.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from .scenario import (
    Bound,
    CallExpectation,
    EventExpectation,
    Expected,
    TotalsExpectation,
    Scenario,
    say_ms,
)
from .event_counts import EventCounts, count_events, offset_ms
from .units import format_ms_iso, parse_money_micro, show
from .outputs import CDRS_CSV, EVENTS_JSONL, SUMMARY_JSON, RunNotFinished, unfinished

__all__ = ["CheckResult", "Failure", "Mismatch", "check_run", "format_report"]

_SHOWN_EVENTS = 5  # a failed event expectation lists at most this many similar events


@dataclass(frozen=True)
class Mismatch:
    """One field of an expectation that the run did not meet."""

    field: str
    expected: str
    actual: str


@dataclass(frozen=True)
class Failure:
    """A failed expectation: its place in the file, what it is about, and every mismatch."""

    index: int
    title: str
    mismatches: tuple[Mismatch, ...]
    note: tuple[str, ...] = ()  # lines that help read the diff (e.g. events that did happen)


@dataclass(frozen=True)
class CheckResult:
    checked: int
    failures: tuple[Failure, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def check_run(scenario: Scenario, out_dir: Path) -> CheckResult:
    """Compare the run in `out_dir` (cdrs.csv, events.jsonl, summary.json) with `scenario`.

    Raises `RunNotFinished` (one line: where, and why) for a directory without summary.json:
    its other files are those of a run killed or still going, and checking them would report
    failures that are only the missing rest.
    """
    if not (out_dir / SUMMARY_JSON).exists():
        raise RunNotFinished(out_dir, unfinished(out_dir) or f"no {SUMMARY_JSON}: not the "
                                                             "output directory of a run")
    expectations = scenario.expectations
    calls = [e for e in expectations if isinstance(e, CallExpectation)]
    events = [e for e in expectations if isinstance(e, EventExpectation)]
    totals = [e for e in expectations if isinstance(e, TotalsExpectation)]
    failures: list[Failure] = []
    if calls:
        failures += _CallChecker(scenario, out_dir).check(calls)
    if events:
        failures += _check_events(events, out_dir / EVENTS_JSONL, scenario.setup.start)
    if totals:
        summary = json.loads((out_dir / SUMMARY_JSON).read_text(encoding="utf-8"))
        failures += (f for e in totals if (f := _check_totals(e, summary)) is not None)
    failures.sort(key=lambda f: f.index)
    return CheckResult(len(expectations), tuple(failures))


def format_report(result: CheckResult) -> str:
    """The diff QA reads: one block per failure, then a one-line verdict."""
    blocks = []
    for f in result.failures:
        lines = [f"FAILED expect[{f.index}]: {f.title}"]
        lines += [f"  {m.field}: expected {m.expected}, actual {m.actual}" for m in f.mismatches]
        lines += [f"  {line}" for line in f.note]
        blocks.append("\n".join(lines))
    n = result.checked
    noun = "expectation" if n == 1 else "expectations"
    if result.passed:
        verdict = f"check: all {n} {noun} passed"
    else:
        verdict = f"check: {len(result.failures)} of {n} {noun} failed"
    return "\n\n".join([*blocks, verdict]) + "\n"


# -- comparing one value -----------------------------------------------------------------------


def _compare(
    field: str, expected: Expected, actual: int | str, shown: str | None = None
) -> Mismatch | None:
    """A mismatch when `actual` is not what `expected` allows; `shown` overrides its text."""
    if isinstance(expected, Bound):
        assert isinstance(actual, int)
        if expected.holds(actual):
            return None
        return Mismatch(field, str(expected), shown or expected.say(actual))
    if expected == actual:
        return None
    return Mismatch(field, show(expected), shown or show(actual))


def _seconds_ms(text: str) -> int:
    """A CDR `duration_s` (`3900.000`) as ms, without floats."""
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000 + int(frac.ljust(3, "0")[:3] or 0)


# -- calls: cdrs.csv ---------------------------------------------------------------------------


class _CallChecker:
    """Finds the CDR of each expected call with one lazy scan of cdrs.csv.

    `call = N` names the N-th `[[calls]]` entry, whose call_id depends on the generated traffic
    around it.  SPEC §3 numbers calls in arrival order with explicit calls first among calls
    arriving at the same instant, in file order; so its CDR is, among the CDRs that start at its
    instant, the k-th by call_id, where k counts the earlier entries at that same instant.
    """

    def __init__(self, scenario: Scenario, out_dir: Path) -> None:
        self.scenario = scenario
        self.start = scenario.setup.start
        self.path = out_dir / CDRS_CSV

    def check(self, expectations: Sequence[CallExpectation]) -> Iterator[Failure]:
        rows = self._rows(expectations)
        for e in expectations:
            row, title = self._find(e, rows)
            if row is None:  # only a call_id beyond the run's calls: `call = N` always arrives
                yield Failure(e.index, title, (Mismatch("CDR", "one row", "none"),))
                continue
            found = [m for m in self._compare(e, row) if m is not None]
            if found:
                yield Failure(e.index, title, tuple(found))

    def _rows(self, expectations: Sequence[CallExpectation]) -> pl.DataFrame:
        """The CDRs of the expected call ids and of the instants where expected entries arrive."""
        ids = sorted({str(e.call_id) for e in expectations if e.call_id is not None})
        instants = sorted({
            format_ms_iso(self.start, self.scenario.calls[e.call - 1].at_ms)
            for e in expectations if e.call is not None
        })
        scan = pl.scan_csv(self.path, infer_schema=False)  # all text: values stay exact
        wanted = pl.col("call_id").is_in(ids) | pl.col("start_time").is_in(instants)
        rows = scan.filter(wanted).collect()
        return rows.with_columns(pl.col("call_id").cast(pl.Int64)).sort("call_id")

    def _find(self, e: CallExpectation, rows: pl.DataFrame) -> tuple[dict[str, Any] | None, str]:
        if e.call_id is not None:
            match = rows.filter(pl.col("call_id") == e.call_id)
            return (match.row(0, named=True) if len(match) else None), f"call_id = {e.call_id}"
        assert e.call is not None
        calls = self.scenario.calls
        spec = calls[e.call - 1]
        rank = sum(1 for c in calls[: e.call - 1] if c.at_ms == spec.at_ms)
        at = format_ms_iso(self.start, spec.at_ms)
        same_instant = rows.filter(pl.col("start_time") == at)
        where = f"calls[{e.call - 1}], at {say_ms(spec.at_ms)}"
        if rank >= len(same_instant):
            return None, f"call = {e.call} ({where})"
        row = same_instant.row(rank, named=True)
        org = self.scenario.setup.orgs[spec.org].id
        if row["org_id"] != org:  # the numbering rule above is broken: a bug, not a failed check
            raise RuntimeError(f"call = {e.call}: CDR {row['call_id']} is of org {row['org_id']!r}")
        return row, f"call = {e.call} ({where}, call_id {row['call_id']})"

    def _compare(self, e: CallExpectation, row: Mapping[str, Any]) -> Iterator[Mismatch | None]:
        for field, expected in e.checks.items():
            if field == "end_at":
                end = offset_ms(row["end_time"], self.start)
                shown = f"{say_ms(end)} ({row['end_time']})"
                yield _compare(field, expected, end, shown)
            elif field == "duration":
                yield _compare(field, expected, _seconds_ms(row["duration_s"]))
            elif field in ("billed_s", "pool_s"):
                yield _compare(field, expected, int(row[field]))
            elif field == "credits_charged":
                yield _compare(field, expected, parse_money_micro(row[field]))
            else:  # end_reason, call_type, pool: text; an empty CSV field is ""
                yield _compare(field, expected, row[field] or "")


# -- events: events.jsonl ----------------------------------------------------------------------


def _check_events(
    expectations: Sequence[EventExpectation], path: Path, start: datetime
) -> Iterator[Failure]:
    """Count the matching lines of each expectation in one pass over events.jsonl."""
    counts, shown = count_events(expectations, path, start, _SHOWN_EVENTS)
    for e, found in zip(expectations, counts):
        if not e.count.holds(found.matched):
            mismatch = Mismatch("count", str(e.count), str(found.matched))
            yield Failure(e.index, _event_title(e), (mismatch,), _event_note(e, found, shown))


def _event_note(e: EventExpectation, found: EventCounts,
                lines: Mapping[int, tuple[int, Mapping[str, Any]]]) -> tuple[str, ...]:
    """What did happen, when the count alone does not tell: the events nearest to `at` (the
    first ones without), `_SHOWN_EVENTS` at most, from the lines of its kind and org."""
    who = f"of {e.org}" if e.org is not None else "of any org"
    if not found.similar:
        return (f"there are no {e.event} events {who} at all",)
    if e.at is None and not e.fields:
        return ()
    shown = [(t, _say_event(record, t, e.org is None)) for t, record in (lines[n] for n in found.shown_lines)]
    if e.at is not None:
        shown.sort()
    which = "nearest" if e.at is not None else "first"
    head = f"{found.similar} {e.event} events {who} in all"
    if found.similar > len(shown):
        head += f", the {len(shown)} {which}"
    return (head + ":", *(f"  {text}" for _, text in shown))


def _event_title(e: EventExpectation) -> str:
    parts = [e.event if e.org is None else f"{e.event} of {e.org}"]
    if e.at is not None:
        parts.append(f"at {e.at}" if e.at.exact else f"at {e.at} from the start")
    parts += [f"{key} {expected if isinstance(expected, Bound) else show(expected)}"
              for key, expected in e.fields.items()]
    return "event " + ", ".join(parts)


def _say_event(record: Mapping[str, Any], t: int, with_org: bool) -> str:
    extras = [f"{k} {record[k]}" for k in ("amount", "reason", "balance") if k in record]
    who = f"{record['org_id']} " if with_org else ""
    return f"{who}at {say_ms(t)}" + (f" ({', '.join(extras)})" if extras else "")


# -- totals: summary.json ----------------------------------------------------------------------


def _check_totals(e: TotalsExpectation, summary: Mapping[str, Any]) -> Failure | None:
    figures = summary["orgs"][e.org] if e.org is not None else summary["total"]
    found = []
    for key, expected in e.checks.items():
        value: Any = figures
        for part in key.split(".", 1):
            value = value[part]
        actual = parse_money_micro(value) if expected.unit == "money" else int(value)
        mismatch = _compare(key, expected, actual)
        if mismatch is not None:
            found.append(mismatch)
    if not found:
        return None
    title = f"totals of org {e.org}" if e.org is not None else "totals of the whole run"
    return Failure(e.index, title, tuple(found))

